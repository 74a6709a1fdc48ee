//! A deterministic synthetic data set shaped like a SaaS product's event
//! stream: ad clicks with `utm_source`, landing-page visits, signups, demo
//! views, reports, payments, renewals and churn, in sessions of events
//! close in time, with a skewed number of events per user, plus CRM-style
//! user profiles. The same arguments give the same bytes on every machine.
//! Clicks carry the page they happen on, the element clicked and its
//! coordinates (`x`, `y`, `viewport_width`) for heatmaps; those come from
//! a random stream of their own, so every other event is as before.

use footprint_engine::{Event, ProfileOp, ProfileUpdate, Value};

use crate::rng::Rng;

/// Parameters of a data set.
#[derive(Debug, Clone, Copy)]
pub struct GenSpec {
    /// Number of users.
    pub users: u64,
    /// Exact number of events.
    pub events: u64,
    /// Days the data spans.
    pub days: u32,
    /// Seed.
    pub seed: u64,
}

/// The first instant of generated data: 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600_000;
const DAY: i64 = 86_400_000;

const SOURCES: [&str; 8] = [
    "baidu",
    "google",
    "wechat",
    "direct",
    "linkedin",
    "newsletter",
    "bing",
    "zhihu",
];
const SOURCE_W: [f64; 8] = [30.0, 22.0, 15.0, 12.0, 8.0, 6.0, 4.0, 3.0];
const PAGES: [&str; 10] = [
    "/",
    "/pricing",
    "/docs",
    "/blog",
    "/demo",
    "/features",
    "/customers",
    "/about",
    "/signup",
    "/contact",
];
const PAGE_W: [f64; 10] = [30.0, 14.0, 12.0, 10.0, 8.0, 8.0, 6.0, 5.0, 4.0, 3.0];
const ACTIVE: [&str; 8] = [
    "view_page",
    "click",
    "search",
    "create_report",
    "view_demo",
    "export_report",
    "invite",
    "pay",
];
const ACTIVE_W: [f64; 8] = [40.0, 25.0, 12.0, 8.0, 6.0, 4.0, 3.0, 2.0];
const PLANS: [&str; 4] = ["free", "pro", "team", "enterprise"];
const PLAN_W: [f64; 4] = [55.0, 25.0, 14.0, 6.0];
const INDUSTRIES: [&str; 6] = [
    "saas",
    "retail",
    "finance",
    "education",
    "manufacturing",
    "healthcare",
];
const CSMS: [&str; 5] = ["alice", "bob", "carol", "dan", "erin"];
/// Elements clicked, with where they sit: (name, weight, x from, x to as
/// a share of the viewport, y from, y to in px).
const ELEMENTS: [(&str, f64, f64, f64, i64, i64); 6] = [
    ("nav_signup", 20.0, 0.80, 0.95, 10, 50),
    ("hero_cta", 30.0, 0.35, 0.65, 300, 380),
    ("pricing_table", 20.0, 0.10, 0.90, 600, 1400),
    ("docs_link", 12.0, 0.05, 0.30, 10, 50),
    ("footer_contact", 8.0, 0.40, 0.60, 2200, 2300),
    ("chat_widget", 10.0, 0.90, 0.99, 700, 760),
];
const VIEWPORTS: [i64; 4] = [1440, 1920, 390, 1280];
const VIEWPORT_W: [f64; 4] = [35.0, 25.0, 30.0, 10.0];
/// Stream of the click coordinates (apart from the main one per user).
const CLICK_STREAM: u64 = 0xC11C_0000_0000_0000;

/// The id of user `i`.
pub fn user_name(i: u64) -> String {
    format!("u{i:08}")
}

/// How many events each user gets: a heavy-tailed share of the total,
/// at least one each, summing exactly to `spec.events`.
pub fn budgets(spec: &GenSpec) -> Vec<u64> {
    let n = spec.users.max(1) as usize;
    let mut rng = Rng::new(spec.seed, u64::MAX);
    let weights: Vec<f64> = (0..n)
        .map(|_| (1.0 - rng.f64()).powf(-1.0 / 1.6).min(300.0))
        .collect();
    let total_w: f64 = weights.iter().sum();
    let base = spec.events.saturating_sub(n as u64) as f64;
    let mut out: Vec<u64> = weights
        .iter()
        .map(|w| {
            if spec.events >= n as u64 {
                1 + (w / total_w * base) as u64
            } else {
                0
            }
        })
        .collect();
    let assigned: u64 = out.iter().sum();
    let mut rest = spec.events.saturating_sub(assigned);
    let mut i = 0usize;
    while rest > 0 {
        out[i % n] += 1;
        rest -= 1;
        i += 1;
    }
    out
}

/// Generates user `i`'s events (with a budget of `budget`), in time order.
pub fn user_events(spec: &GenSpec, i: u64, budget: u64, out: &mut Vec<Event>) {
    if budget == 0 {
        return;
    }
    let start = out.len();
    let mut rng = Rng::new(spec.seed, i);
    let mut clicks = Rng::new(spec.seed ^ CLICK_STREAM, i);
    let user = user_name(i);
    let span = i64::from(spec.days.max(1)) * DAY;
    // Users arrive over the first 85% of the span.
    let first = (rng.f64() * 0.85 * span as f64) as i64;
    let mut t = T0 + first + rng.below(DAY as u64 / 2) as i64;
    let mut left = budget;
    let push = |out: &mut Vec<Event>, t: i64, name: &str, props: Vec<(String, Value)>| {
        out.push(Event {
            user: user.clone(),
            event: name.to_owned(),
            time: t.min(T0 + span - 1),
            props,
        });
    };
    let gap = |rng: &mut Rng| 2_000 + rng.exp(45_000.0) as i64;
    let source = SOURCES[rng.weighted(&SOURCE_W)];
    // First session: ad click → landing page → maybe the activation funnel.
    let page = PAGES[rng.weighted(&PAGE_W)];
    push(out, t, "visit", visit_props(source, page, t));
    left -= 1;
    let mut paid = false;
    let funnel = [
        ("signup", 0.42),
        ("view_demo", 0.62),
        ("create_report", 0.55),
        ("pay", 0.35),
    ];
    for (name, p) in funnel {
        if left == 0 || !rng.chance(p) {
            break;
        }
        t += gap(&mut rng) * if name == "pay" { 20 } else { 1 };
        let props = match name {
            "pay" => {
                paid = true;
                vec![("amount".into(), Value::Float(amount(&mut rng)))]
            }
            "signup" => vec![("utm_source".into(), Value::Str(source.into()))],
            _ => Vec::new(),
        };
        push(out, t, name, props);
        left -= 1;
    }
    // Later sessions until the budget is spent.
    let end = T0 + span;
    let sessions = left.div_ceil(8).max(1);
    let mean_gap = ((end - t) as f64 / (sessions as f64 + 1.0)).max(60_000.0);
    let mut last_renew = t;
    while left > 0 {
        t += 600_000 + rng.exp(mean_gap) as i64;
        if t >= end {
            t = end - 1 - rng.below(3_600_000) as i64;
        }
        let size = (1 + rng.below(12)).min(left);
        let opener = if rng.chance(0.3) { "visit" } else { "login" };
        // The page the user is on, for clicks (a login lands on "/").
        let mut page = PAGES[0];
        let props = if opener == "visit" {
            let source = SOURCES[rng.weighted(&SOURCE_W)];
            page = PAGES[rng.weighted(&PAGE_W)];
            visit_props(source, page, t)
        } else {
            Vec::new()
        };
        push(out, t, opener, props);
        left -= 1;
        for _ in 1..size {
            if left == 0 {
                break;
            }
            t += gap(&mut rng);
            let mut name = ACTIVE[rng.weighted(&ACTIVE_W)];
            if paid && t - last_renew > 30 * DAY && rng.chance(0.3) {
                name = "renew";
                last_renew = t;
            }
            let props = match name {
                "view_page" => {
                    page = PAGES[rng.weighted(&PAGE_W)];
                    vec![("page".into(), Value::Str(page.into()))]
                }
                "click" => click(&mut clicks, page),
                "pay" | "renew" => {
                    paid = true;
                    vec![("amount".into(), Value::Float(amount(&mut rng)))]
                }
                _ => Vec::new(),
            };
            push(out, t, name, props);
            left -= 1;
        }
        if left == 1 && rng.chance(0.25) {
            t += gap(&mut rng);
            push(out, t, "churn", Vec::new());
            left -= 1;
        }
    }
    out[start..].sort_by_key(|e| e.time);
}

/// A click's properties: its page, the element and where it was clicked.
fn click(rng: &mut Rng, page: &str) -> Vec<(String, Value)> {
    let weights: Vec<f64> = ELEMENTS.iter().map(|e| e.1).collect();
    let (element, _, x0, x1, y0, y1) = ELEMENTS[rng.weighted(&weights)];
    let width = VIEWPORTS[rng.weighted(&VIEWPORT_W)];
    let x = ((x0 + (x1 - x0) * rng.f64()) * width as f64) as i64;
    let y = y0 + rng.below((y1 - y0) as u64) as i64;
    vec![
        ("page".into(), Value::Str(page.into())),
        ("element".into(), Value::Str(element.into())),
        ("x".into(), Value::Int(x)),
        ("y".into(), Value::Int(y)),
        ("viewport_width".into(), Value::Int(width)),
    ]
}

/// A visit's properties: its page and where it came from, as a tracker
/// records it. Each source lands with a medium or a referring domain of
/// its kind (`cpc` with a `gclid` on some Google visits, `email` for the
/// newsletter, `social` on some WeChat shares…), picked by the visit's
/// time so the random stream stays as it was; direct visits carry no
/// `utm_source` and `$referring_domain` `$direct`. Attribution by
/// channel then sees every channel class.
fn visit_props(source: &str, page: &str, t: i64) -> Vec<(String, Value)> {
    let s = |v: &str| Value::Str(v.into());
    let third = (t / 1000).rem_euclid(3);
    let mut props = Vec::with_capacity(4);
    if source != "direct" {
        props.push(("utm_source".into(), s(source)));
    }
    props.push(("page".into(), s(page)));
    let (medium, domain) = match (source, third) {
        ("baidu", 0) => (Some("cpc"), None),
        ("baidu", _) => (None, Some("www.baidu.com")),
        ("google", 0) => (Some("cpc"), None),
        ("google", _) => (None, Some("www.google.com.hk")),
        ("wechat", 0) => (Some("social"), None),
        ("wechat", _) => (None, Some("weixin.qq.com")),
        ("newsletter", _) => (Some("email"), None),
        ("linkedin", 0) => (Some("paid_social"), None),
        ("linkedin", _) => (None, Some("www.linkedin.com")),
        ("bing", _) => (None, Some("cn.bing.com")),
        ("zhihu", _) => (None, Some("www.zhihu.com")),
        ("direct", _) => (None, Some("$direct")),
        _ => (None, None),
    };
    if let Some(m) = medium {
        props.push(("utm_medium".into(), s(m)));
        if source == "google" {
            props.push(("gclid".into(), s(&format!("g{t:x}"))));
        }
    }
    if let Some(d) = domain {
        props.push(("$referring_domain".into(), s(d)));
    }
    props
}

fn amount(rng: &mut Rng) -> f64 {
    let base = [49.0, 99.0, 299.0, 999.0][rng.weighted(&[50.0, 30.0, 15.0, 5.0])];
    // Whole cents.
    ((base * (0.8 + 0.4 * rng.f64())) * 100.0).round() / 100.0
}

/// The CRM profile of user `i`.
pub fn user_profile(spec: &GenSpec, i: u64) -> ProfileUpdate {
    let mut rng = Rng::new(spec.seed ^ 0x5EED_F00D, i);
    let plan = PLANS[rng.weighted(&PLAN_W)];
    let end_day = rng.below(u64::from(spec.days.max(1)) + 365) as i64;
    let end = T0 + end_day * DAY;
    let date = chrono_date(end);
    ProfileUpdate {
        user: user_name(i),
        op: ProfileOp::Set,
        props: vec![
            ("plan".into(), Value::Str(plan.into())),
            (
                "industry".into(),
                Value::Str(INDUSTRIES[rng.below(6) as usize].into()),
            ),
            (
                "csm_owner".into(),
                Value::Str(CSMS[rng.below(5) as usize].into()),
            ),
            ("contract_end".into(), Value::Str(date)),
            ("seats".into(), Value::Int(1 + rng.below(200) as i64)),
        ],
    }
}

/// `YYYY-MM-DD` of an epoch-ms instant (UTC).
fn chrono_date(ms: i64) -> String {
    let (y, m, d) = footprint_engine::query::time::civil(ms.div_euclid(DAY));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Appends one event as an NDJSON line.
pub fn write_ndjson(e: &Event, out: &mut String) {
    use std::fmt::Write;
    let mut obj = serde_json::Map::new();
    for (k, v) in &e.props {
        obj.insert(k.clone(), v.to_json());
    }
    let _ = writeln!(
        out,
        "{{\"user\":{},\"event\":{},\"time\":{},\"props\":{}}}",
        serde_json::Value::String(e.user.clone()),
        serde_json::Value::String(e.event.clone()),
        e.time,
        serde_json::Value::Object(obj)
    );
}

/// Appends one profile update as an NDJSON line.
pub fn write_profile_ndjson(u: &ProfileUpdate, out: &mut String) {
    let mut obj = serde_json::Map::new();
    for (k, v) in &u.props {
        obj.insert(k.clone(), v.to_json());
    }
    let line = serde_json::json!({"user": u.user, "op": "set", "props": obj});
    out.push_str(&line.to_string());
    out.push('\n');
}

/// The header of [`write_profile_csv`]'s rows: a CRM export with typed
/// columns, for `footprint profiles import`.
pub const PROFILE_CSV_HEADER: &str = "user,plan,industry,csm_owner,contract_end:time,seats:int\n";

/// Appends one profile (as [`user_profile`] makes them) as a CSV row.
pub fn write_profile_csv(u: &ProfileUpdate, out: &mut String) {
    out.push_str(&u.user);
    for name in ["plan", "industry", "csm_owner", "contract_end", "seats"] {
        out.push(',');
        if let Some((_, v)) = u.props.iter().find(|(k, _)| k == name) {
            out.push_str(&v.to_string());
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_counts_and_deterministic() {
        let spec = GenSpec {
            users: 100,
            events: 5000,
            days: 30,
            seed: 7,
        };
        let b = budgets(&spec);
        assert_eq!(b.iter().sum::<u64>(), 5000);
        let mut a = Vec::new();
        let mut c = Vec::new();
        for (i, &n) in b.iter().enumerate() {
            user_events(&spec, i as u64, n, &mut a);
            user_events(&spec, i as u64, n, &mut c);
        }
        assert_eq!(a.len(), 10000 / 2);
        assert_eq!(a, c);
        assert!(a.iter().all(|e| e.time >= T0 && e.time < T0 + 30 * DAY));
        for name in [
            "visit",
            "signup",
            "login",
            "view_demo",
            "create_report",
            "pay",
        ] {
            assert!(a.iter().any(|e| e.event == name), "{name}");
        }
        // Clicks carry coordinates inside their viewport.
        let clicks: Vec<&Event> = a.iter().filter(|e| e.event == "click").collect();
        assert!(!clicks.is_empty());
        for e in clicks {
            let get = |k: &str| e.props.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let (Some(Value::Int(x)), Some(Value::Int(w))) = (get("x"), get("viewport_width"))
            else {
                panic!("click without coordinates: {e:?}");
            };
            assert!((0..w).contains(&x), "{e:?}");
            assert!(get("element").is_some() && get("page").is_some(), "{e:?}");
        }
        assert_eq!(chrono_date(T0), "2026-01-01");
        assert_eq!(chrono_date(T0 + 59 * DAY), "2026-03-01");
    }
}
