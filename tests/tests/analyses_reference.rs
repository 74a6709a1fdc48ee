//! Property tests of the ANALYSES.md kinds (attribution, channels,
//! lifecycle, stickiness, funnel trends and the funnel extras): on random
//! event streams with many equal times, Footprint's answer in every storage
//! layout of `layouts` equals a deliberately naive reference written here
//! from the spec's words.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, TimeZone};
use chrono_tz::Tz;
use footprint_engine::{Engine, Event, Value};
use proptest::prelude::*;
use serde_json::{json, Value as Json};

mod layouts;
use layouts::{load, LAYOUTS};

/// Cases per property: `default`, or `PROPTEST_CASES` for a longer run.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// 2026-01-05T00:00:00Z, a Monday.
const T0: i64 = 1_767_571_200_000;
const HALF_HOUR: i64 = 1_800_000;
const DAY: i64 = 86_400_000;

const NAMES: [&str; 4] = ["visit", "signup", "pay", "other"];
const SOURCES: [&str; 5] = ["baidu", "weibo", "news", "", "Baidu"];

/// An event of one of 6 users within 12 days, on half-hour slots (so equal
/// times are common), with a source (missing, empty, a number, or one of a
/// few names), maybe a medium, and an amount (a number, or a string).
fn event() -> impl Strategy<Value = Event> {
    (
        0u8..6,
        0usize..4,
        0i64..(12 * 48),
        0usize..7,
        0usize..4,
        0i64..4,
    )
        .prop_map(|(u, e, slot, src, med, amount)| {
            let mut props = Vec::new();
            match src {
                0..=4 => props.push(("utm_source".to_owned(), Value::Str(SOURCES[src].into()))),
                5 => props.push(("utm_source".to_owned(), Value::Int(7))),
                _ => {}
            }
            match med {
                1 => props.push(("utm_medium".to_owned(), Value::Str("cpc".into()))),
                2 => props.push(("utm_medium".to_owned(), Value::Str("email".into()))),
                _ => {}
            }
            props.push((
                "amount".to_owned(),
                if amount == 3 {
                    Value::Str("n/a".into())
                } else {
                    Value::Int(amount * 10)
                },
            ));
            Event {
                user: format!("u{u}"),
                event: NAMES[e].into(),
                time: T0 + slot * HALF_HOUR,
                props,
            }
        })
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    proptest::collection::vec(event(), 1..80)
}

/// A time range of whole days inside (or around) the data, or none.
fn day_range() -> impl Strategy<Value = Option<(i64, i64)>> {
    prop_oneof![
        1 => Just(None),
        4 => (0i64..8, 1i64..6).prop_map(|(a, n)| Some((T0 + a * DAY, T0 + (a + n) * DAY))),
    ]
}

fn range_json(q: &mut Json, r: Option<(i64, i64)>) {
    if let Some((from, to)) = r {
        q["time_range"] = json!({"from": from, "to": to});
    }
}

/// A user's events in (time, arrival) order, arrival being list order.
fn by_user(events: &[Event]) -> BTreeMap<String, Vec<Event>> {
    let mut m: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    for e in events {
        m.entry(e.user.clone()).or_default().push(e.clone());
    }
    for v in m.values_mut() {
        v.sort_by_key(|e| e.time); // stable: ties keep arrival order
    }
    m
}

/// The answer without its warnings (a step naming an event the random
/// stream lacks warns).
fn query(engine: &Engine, q: &Json) -> Json {
    let mut r = engine
        .query_json(q, Default::default())
        .unwrap_or_else(|e| panic!("{q}: {e}"));
    if let Some(m) = r.as_object_mut() {
        m.remove("warnings");
    }
    r
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()) + 1e-9
}

// ------------------------------------------------------------ attribution

/// The channel of an event over this test's few sources and mediums,
/// written from the rule list: paid mediums first, then direct, email,
/// the search/social sources, and unassigned.
fn naive_channel(e: &Event) -> String {
    let norm = |k: &str| match e.prop(k) {
        Some(Value::Str(s)) if !s.is_empty() => Some(s.to_lowercase()),
        Some(Value::Int(i)) => Some(i.to_string()),
        _ => None,
    };
    let (src, med) = (norm("utm_source"), norm("utm_medium"));
    let class = match src.as_deref() {
        Some("baidu") => "Search",
        Some("weibo") => "Social",
        _ => "",
    };
    let name = if med.as_deref() == Some("cpc") {
        if class.is_empty() {
            "Paid Other".to_owned()
        } else {
            format!("Paid {class}")
        }
    } else if src.is_none() && med.is_none() {
        "Direct".to_owned()
    } else if med.as_deref() == Some("email") {
        "Email".to_owned()
    } else if !class.is_empty() {
        format!("Organic {class}")
    } else {
        "Unassigned".to_owned()
    };
    name
}

fn touch_value(e: &Event, channel: bool) -> Option<String> {
    if channel {
        return Some(naive_channel(e));
    }
    match e.prop("utm_source")? {
        Value::Str(s) if s.is_empty() => None,
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        other => Some(other.to_string()),
    }
}

const MODELS: [&str; 6] = [
    "first",
    "last",
    "linear",
    "position",
    "time_decay",
    "participation",
];

/// Rows by value: per model (conversions, revenue); and the totals.
type Credits = BTreeMap<String, BTreeMap<String, (f64, f64)>>;

#[allow(clippy::too_many_arguments)]
fn naive_attribution(
    events: &[Event],
    range: Option<(i64, i64)>,
    touch_any: bool,
    channel: bool,
    lookback: i64,
    half: i64,
    models: &[&str],
) -> (Credits, u64, u64, f64) {
    let mut rows: Credits = BTreeMap::new();
    let (mut convs, mut users, mut revenue) = (0u64, 0u64, 0.0);
    for evs in by_user(events).values() {
        let mut converted = false;
        for (ci, c) in evs.iter().enumerate() {
            if c.event != "pay" || range.is_some_and(|(f, t)| c.time < f || c.time >= t) {
                continue;
            }
            converted = true;
            convs += 1;
            let amount = match c.prop("amount") {
                Some(Value::Int(i)) => *i as f64,
                _ => 0.0,
            };
            revenue += amount;
            let tps: Vec<(i64, String)> = evs[..=ci]
                .iter()
                .filter(|e| c.time - lookback < e.time)
                .filter(|e| touch_any || e.event == "visit")
                .filter_map(|e| touch_value(e, channel).map(|v| (e.time, v)))
                .collect();
            let n = tps.len();
            let mut credit = |v: &str, m: &str, x: f64| {
                let cell = rows
                    .entry(v.to_owned())
                    .or_default()
                    .entry(m.to_owned())
                    .or_insert((0.0, 0.0));
                cell.0 += x;
                cell.1 += x * amount;
            };
            if n == 0 {
                for m in models {
                    credit("(direct)", m, 1.0);
                }
                continue;
            }
            let raw: Vec<f64> = tps
                .iter()
                .map(|(t, _)| 2f64.powf(-((c.time - t) as f64) / half as f64))
                .collect();
            let sum: f64 = raw.iter().sum();
            let mut seen = BTreeSet::new();
            for (i, (_, v)) in tps.iter().enumerate() {
                let i = i + 1;
                for m in models {
                    let x = match *m {
                        "first" => f64::from(u8::from(i == 1)),
                        "last" => f64::from(u8::from(i == n)),
                        "linear" => 1.0 / n as f64,
                        "position" if n == 1 => 1.0,
                        "position" if n == 2 => 0.5,
                        "position" if i == 1 || i == n => 0.4,
                        "position" => 0.2 / (n - 2) as f64,
                        "time_decay" => raw[i - 1] / sum,
                        _ => f64::from(u8::from(!seen.contains(v))),
                    };
                    credit(v, m, x);
                }
                seen.insert(v.clone());
            }
        }
        users += u64::from(converted);
    }
    (rows, convs, users, revenue)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(48), ..ProptestConfig::default() })]

    /// Attribution equals the naive per-conversion credits: every model,
    /// lookback across the range's start, touches at the conversion's
    /// millisecond (before or after it), `$any` touches that include the
    /// conversion, revenue with non-numeric amounts, by a property or by
    /// channel.
    #[test]
    fn attribution_matches_naive_credits(
        events in events(),
        range in day_range(),
        touch_any in any::<bool>(),
        channel in any::<bool>(),
        lookback_h in prop_oneof![Just(0i64), Just(1i64), 1i64..100],
        half_h in 1i64..48,
        models in Just(MODELS.to_vec()).prop_shuffle().prop_flat_map(|m| (Just(m), 1usize..=6)),
    ) {
        let models: Vec<&str> = models.0[..models.1].to_vec();
        let (lookback, half) = (lookback_h * 3_600_000, half_h * 3_600_000);
        let mut q = json!({
            "kind": "attribution", "conversion": {"event": "pay"},
            "by": if channel { json!({"channel": true}) } else { json!({"event_prop": "utm_source"}) },
            "lookback": lookback, "half_life": {"value": half_h, "unit": "hour"},
            "models": models, "value_prop": "amount",
        });
        if !touch_any {
            q["touch"] = json!({"event": "visit"});
        }
        range_json(&mut q, range);
        let (rows, convs, users, revenue) =
            naive_attribution(&events, range, touch_any, channel, lookback, half, &models);
        for layout in LAYOUTS {
            let (_d, engine) = load(&events, layout);
            let got = query(&engine, &q);
            prop_assert_eq!(&got["total"]["conversions"], &json!(convs), "{:?}", layout);
            prop_assert_eq!(&got["total"]["users"], &json!(users));
            prop_assert!(close(got["total"]["revenue"].as_f64().unwrap(), revenue));
            let list = got["rows"].as_array().unwrap();
            let values: BTreeSet<&str> = list.iter().map(|r| r["value"].as_str().unwrap()).collect();
            let want: BTreeSet<&str> = rows.keys().map(String::as_str).collect();
            prop_assert_eq!(values, want, "{:?} {}", layout, got);
            for r in list {
                let v = r["value"].as_str().unwrap();
                for m in &models {
                    let (c, rev) = rows[v][*m];
                    let (gc, grev) = (r[*m]["conversions"].as_f64().unwrap(), r[*m]["revenue"].as_f64().unwrap());
                    prop_assert!(close(gc, c) && close(grev, rev), "{:?} {} {}: got {} {} want {} {}", layout, v, m, gc, grev, c, rev);
                }
            }
            // Ordered by the first model's conversions, ties by value.
            for w in list.windows(2) {
                let (a, b) = (w[0][models[0]]["conversions"].as_f64().unwrap(), w[1][models[0]]["conversions"].as_f64().unwrap());
                prop_assert!(a > b || (close(a, b) && w[0]["value"].as_str() < w[1]["value"].as_str()), "order {}", got);
            }
        }
    }
}

// ---------------------------------------------------- lifecycle, stickiness

/// A calendar bucket as (sortable key, label), computed with chrono.
fn bucket(t: i64, unit: &str, tz: Tz) -> (i64, String) {
    let d = tz.timestamp_millis_opt(t).unwrap().date_naive();
    match unit {
        "day" => (
            i64::from(d.num_days_from_ce()),
            d.format("%Y-%m-%d").to_string(),
        ),
        "week" => {
            let monday = d - chrono::Duration::days(i64::from(d.weekday().num_days_from_monday()));
            (
                i64::from(monday.num_days_from_ce()),
                monday.format("%Y-%m-%d").to_string(),
            )
        }
        _ => (
            i64::from(d.year()) * 12 + i64::from(d.month0()),
            format!("{:04}-{:02}", d.year(), d.month()),
        ),
    }
}

fn step_of(unit: &str) -> i64 {
    if unit == "week" {
        7
    } else {
        1
    }
}

/// The buckets of `[from, to)`: keys and labels.
fn range_buckets(from: i64, to: i64, unit: &str, tz: Tz) -> Vec<(i64, String)> {
    let (k0, k1) = (bucket(from, unit, tz).0, bucket(to - 1, unit, tz).0);
    let mut out = Vec::new();
    let mut t = from;
    // Walk by hours so labels come from real instants.
    while t < to + 40 * DAY {
        let b = bucket(t, unit, tz);
        if b.0 > k1 {
            break;
        }
        if b.0 >= k0 && out.last().is_none_or(|l: &(i64, String)| l.0 != b.0) {
            out.push(b);
        }
        t += 3_600_000;
    }
    out
}

fn tz_of(i: usize) -> Tz {
    [Tz::UTC, Tz::Asia__Shanghai, Tz::America__New_York][i]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(48), ..ProptestConfig::default() })]

    /// Lifecycle equals the naive statuses: new from the first matching
    /// event ever (history before the range counts), returning, resurrecting,
    /// and dormant after an active bucket (the one before the range read).
    #[test]
    fn lifecycle_matches_naive_statuses(
        events in events(),
        from_day in 0i64..9,
        days in 1i64..10,
        unit in prop_oneof![Just("day"), Just("week")],
        tz in 0usize..3,
        any_event in any::<bool>(),
    ) {
        let tz = tz_of(tz);
        let from = tz.timestamp_millis_opt(T0 + from_day * DAY).unwrap().date_naive()
            .and_hms_opt(0, 0, 0).unwrap().and_local_timezone(tz).unwrap().timestamp_millis();
        let to = from + days * DAY;
        let buckets = range_buckets(from, to, unit, tz);
        let mut q = json!({"kind": "lifecycle", "interval": unit, "timezone": tz.name(),
            "time_range": {"from": from, "to": to}});
        if !any_event {
            q["event"] = json!({"event": "visit"});
        }
        let (mut new, mut ret, mut res, mut dorm) = (vec![0i64; buckets.len()], vec![0i64; buckets.len()], vec![0i64; buckets.len()], vec![0i64; buckets.len()]);
        let prev_key = |k: i64| k - step_of(unit);
        for evs in by_user(&events).values() {
            let evs: Vec<&Event> = evs.iter().filter(|e| any_event || e.event == "visit").collect();
            let Some(first) = evs.first() else { continue };
            let first = bucket(first.time, unit, tz).0;
            let before = prev_key(buckets[0].0);
            let active: BTreeSet<i64> = evs.iter().filter(|e| {
                let k = bucket(e.time, unit, tz).0;
                (e.time >= from && e.time < to) || k == before
            }).map(|e| bucket(e.time, unit, tz).0).collect();
            for (i, (k, _)) in buckets.iter().enumerate() {
                let was = active.contains(&prev_key(*k));
                if active.contains(k) {
                    if *k == first { new[i] += 1 } else if was { ret[i] += 1 } else { res[i] += 1 }
                } else if was {
                    dorm[i] -= 1;
                }
            }
        }
        let labels: Vec<&str> = buckets.iter().map(|b| b.1.as_str()).collect();
        let want = json!({"buckets": labels, "new": new, "returning": ret, "resurrecting": res, "dormant": dorm});
        for layout in LAYOUTS {
            let (_d, engine) = load(&events, layout);
            prop_assert_eq!(query(&engine, &q), want.clone(), "{:?}", layout);
        }
    }

    /// Stickiness equals the naive per-user count of active buckets (or
    /// longest run), exact or cumulative, with a criteria on the count.
    #[test]
    fn stickiness_matches_naive_counts(
        events in events(),
        range in day_range().prop_filter("a range", Option::is_some),
        unit in prop_oneof![Just("day"), Just("week")],
        tz in 0usize..3,
        op in prop_oneof![Just("gte"), Just("eq"), Just("lte"), Just("gt"), Just("ne"), Just("lt")],
        value in 0i64..4,
        cumulative in any::<bool>(),
        consecutive in any::<bool>(),
    ) {
        let (from, to) = range.unwrap_or((T0, T0 + DAY));
        let tz = tz_of(tz);
        let buckets = range_buckets(from, to, unit, tz);
        let q = json!({"kind": "stickiness", "event": {"event": "visit"}, "interval": unit,
            "timezone": tz.name(), "time_range": {"from": from, "to": to},
            "criteria": {"op": op, "value": value}, "cumulative": cumulative, "consecutive": consecutive});
        let holds = |c: i64| c >= 1 && match op {
            "gte" => c >= value, "eq" => c == value, "lte" => c <= value,
            "gt" => c > value, "ne" => c != value, _ => c < value,
        };
        let mut counts = vec![0u64; buckets.len()];
        for evs in by_user(&events).values() {
            let mut per: BTreeMap<usize, i64> = BTreeMap::new();
            for e in evs.iter().filter(|e| e.event == "visit" && e.time >= from && e.time < to) {
                let k = bucket(e.time, unit, tz).0;
                let i = buckets.iter().position(|b| b.0 == k).unwrap();
                *per.entry(i).or_default() += 1;
            }
            let active: Vec<usize> = per.iter().filter(|(_, &c)| holds(c)).map(|(&i, _)| i).collect();
            let k = if consecutive {
                let (mut best, mut run) = (0, 0);
                for (j, &i) in active.iter().enumerate() {
                    run = if j > 0 && active[j - 1] + 1 == i { run + 1 } else { 1 };
                    best = best.max(run);
                }
                best
            } else {
                active.len()
            };
            if cumulative {
                for c in counts.iter_mut().take(k) { *c += 1; }
            } else if k > 0 {
                counts[k - 1] += 1;
            }
        }
        for layout in LAYOUTS {
            let (_d, engine) = load(&events, layout);
            prop_assert_eq!(query(&engine, &q), json!({"counts": counts.clone()}), "{:?}", layout);
        }
    }
}

// ------------------------------------------------------------- funnels

/// Entries of a user's events: (time, step 1-based, arrival), one per step
/// an event fills, sorted by (time, step, arrival).
fn entries(evs: &[Event], steps: &[&str]) -> Vec<(i64, usize, usize)> {
    let mut out = Vec::new();
    for (r, e) in evs.iter().enumerate() {
        for (k, s) in steps.iter().enumerate() {
            if e.event == *s {
                out.push((e.time, k + 1, r));
            }
        }
    }
    out.sort();
    out
}

/// ClickHouse `windowFunnel` (default mode), written as its docs describe.
fn window_funnel(entries: &[(i64, usize, usize)], n: usize, window: i64) -> usize {
    if entries.is_empty() {
        return 0;
    }
    if n == 1 {
        return 1;
    }
    let mut start: Vec<Option<i64>> = vec![None; n + 1];
    for &(t, k, _) in entries {
        if k == 1 {
            start[1] = Some(t);
        } else if let Some(s) = start[k - 1] {
            if t <= s + window {
                start[k] = Some(s);
                if k == n {
                    return n;
                }
            }
        }
    }
    (1..=n).rev().find(|&k| start[k].is_some()).unwrap_or(0)
}

/// The deepest chain by brute force: every choice of entries in order,
/// within the window of step 1, each within its step's `within` of the
/// previous one, all carrying step 1's `utm_source` when holding.
fn brute_level(
    evs: &[Event],
    ents: &[(i64, usize, usize)],
    n: usize,
    window: i64,
    within: &[Option<i64>],
    hold: bool,
) -> usize {
    #[allow(clippy::too_many_arguments)]
    fn go(
        evs: &[Event],
        ents: &[(i64, usize, usize)],
        n: usize,
        window: i64,
        within: &[Option<i64>],
        hold: bool,
        chain: &mut Vec<usize>,
        best: &mut usize,
    ) {
        *best = (*best).max(chain.len());
        if chain.len() == n {
            return;
        }
        let last = *chain.last().unwrap();
        let first = ents[chain[0]];
        let held = evs[first.2].prop("utm_source");
        for j in last + 1..ents.len() {
            let e = ents[j];
            let ok = e.1 == chain.len() + 1
                && e.0 <= first.0 + window
                && within[chain.len()].is_none_or(|w| e.0 - ents[last].0 <= w)
                && (!hold || (held.is_some() && evs[e.2].prop("utm_source") == held));
            if ok {
                chain.push(j);
                go(evs, ents, n, window, within, hold, chain, best);
                chain.pop();
            }
        }
    }
    let mut best = 0;
    for (i, e) in ents.iter().enumerate() {
        if e.1 == 1 {
            let mut chain = vec![i];
            go(evs, ents, n, window, within, hold, &mut chain, &mut best);
        }
    }
    best
}

fn users_per_step(levels: &[usize], n: usize) -> Vec<u64> {
    (1..=n)
        .map(|k| levels.iter().filter(|&&l| l >= k).count() as u64)
        .collect()
}

fn funnel_steps() -> impl Strategy<Value = Vec<&'static str>> {
    proptest::collection::vec(
        prop_oneof![Just("visit"), Just("signup"), Just("pay")],
        1..5,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(48), ..ProptestConfig::default() })]

    /// The funnel trend equals, per bucket, windowFunnel with step 1
    /// restricted to that bucket (later steps anywhere in the range).
    #[test]
    fn funnel_trend_matches_per_bucket_window_funnel(
        events in events(),
        steps in funnel_steps(),
        window_h in prop_oneof![Just(0i64), 1i64..30],
        range in day_range().prop_filter("a range", Option::is_some),
        unit in prop_oneof![Just("day"), Just("week")],
        tz in 0usize..3,
    ) {
        let (from, to) = range.unwrap_or((T0, T0 + DAY));
        let tz = tz_of(tz);
        let n = steps.len();
        let window = window_h * 3_600_000;
        let buckets = range_buckets(from, to, unit, tz);
        let q = json!({"kind": "funnel", "steps": steps.iter().map(|s| json!({"event": s})).collect::<Vec<_>>(),
            "window": window, "trend": {"interval": unit}, "timezone": tz.name(),
            "time_range": {"from": from, "to": to}});
        let visible: Vec<Event> = events.iter().filter(|e| e.time >= from && e.time < to).cloned().collect();
        let users = by_user(&visible);
        let mut trend = Vec::new();
        for (k, label) in &buckets {
            let levels: Vec<usize> = users.values().map(|evs| {
                let ents: Vec<_> = entries(evs, &steps).into_iter()
                    .filter(|e| e.1 != 1 || bucket(e.0, unit, tz).0 == *k).collect();
                window_funnel(&ents, n, window)
            }).collect();
            let s = users_per_step(&levels, n);
            let conv = if s[0] == 0 { Json::Null } else { json!(s[n - 1] as f64 / s[0] as f64) };
            trend.push(json!({"bucket": label, "steps": s, "conversion": conv}));
        }
        let mut by_source = q.clone();
        by_source["breakdown"] = json!([{"event_prop": "utm_source"}]);
        // An exclusion of an event nobody did changes nothing, but takes
        // the bucket-by-bucket path (the one strict modes take).
        let mut excluding = q.clone();
        if n > 1 {
            excluding["exclusions"] = json!([{"event": "zzz_never_stored", "between": [0, n - 1]}]);
        }
        for layout in LAYOUTS {
            let (_d, engine) = load(&events, layout);
            let got = query(&engine, &q);
            prop_assert_eq!(&got["trend"], &Json::Array(trend.clone()), "{:?}", layout);
            let got = query(&engine, &excluding);
            prop_assert_eq!(&got["trend"], &Json::Array(trend.clone()), "{:?} excluding", layout);
            // Each user's bucket funnel lands in one group: the groups'
            // trends add up to the whole.
            let got = query(&engine, &by_source);
            prop_assert_eq!(&got["trend"], &Json::Array(trend.clone()));
            for (i, row) in trend.iter().enumerate() {
                let mut sum = vec![0u64; n];
                for g in got["groups"].as_array().unwrap() {
                    for (k, x) in g["trend"][i]["steps"].as_array().unwrap().iter().enumerate() {
                        sum[k] += x.as_u64().unwrap();
                    }
                }
                prop_assert_eq!(&json!(sum), &row["steps"], "{:?} {}", layout, got);
            }
        }
    }

    /// With per-step windows and hold, a user's level is the deepest chain
    /// a brute-force search finds; without them the answer is the plain
    /// funnel's, to the last field. `explain_users` reports every user's
    /// counted level, and reasons only below the last step.
    #[test]
    fn funnel_extras_match_brute_force_chains(
        events in events(),
        steps in funnel_steps(),
        window_h in prop_oneof![Just(0i64), 1i64..60],
        within_h in proptest::collection::vec(proptest::option::of(0i64..10), 5),
        hold in any::<bool>(),
        range in day_range(),
    ) {
        let n = steps.len();
        let window = window_h * 3_600_000;
        let within: Vec<Option<i64>> = (0..n).map(|i| if i == 0 { None } else { within_h[i].map(|h| h * 3_600_000) }).collect();
        let mut plain = json!({"kind": "funnel", "steps": steps.iter().map(|s| json!({"event": s})).collect::<Vec<_>>(), "window": window});
        range_json(&mut plain, range);
        let mut extra = plain.clone();
        for (i, w) in within.iter().enumerate() {
            if let Some(w) = w {
                extra["steps"][i]["within"] = json!(w);
            }
        }
        if hold {
            extra["hold"] = json!([{"event_prop": "utm_source"}]);
        }
        let user_names: Vec<String> = (0..6).map(|u| format!("u{u}")).collect();
        extra["explain_users"] = json!(user_names);
        let visible: Vec<Event> = events.iter().filter(|e| range.is_none_or(|(f, t)| e.time >= f && e.time < t)).cloned().collect();
        let users = by_user(&visible);
        let mut level_of = BTreeMap::new();
        for (u, evs) in &users {
            let ents = entries(evs, &steps);
            level_of.insert(u.clone(), brute_level(evs, &ents, n, window, &within, hold));
        }
        let levels: Vec<usize> = level_of.values().copied().collect();
        let want = users_per_step(&levels, n);
        // With a range, a daily trend: per bucket, the brute-force level
        // with step 1 in that bucket.
        let mut want_trend = Vec::new();
        if let Some((from, to)) = range {
            extra["trend"] = json!({"interval": "day"});
            for (k, label) in range_buckets(from, to, "day", Tz::UTC) {
                let levels: Vec<usize> = users.values().map(|evs| {
                    let ents: Vec<_> = entries(evs, &steps).into_iter()
                        .filter(|e| e.1 != 1 || bucket(e.0, "day", Tz::UTC).0 == k).collect();
                    brute_level(evs, &ents, n, window, &within, hold)
                }).collect();
                let s = users_per_step(&levels, n);
                let conv = if s[0] == 0 { Json::Null } else { json!(s[n - 1] as f64 / s[0] as f64) };
                want_trend.push(json!({"bucket": label, "steps": s, "conversion": conv}));
            }
        }
        for layout in LAYOUTS {
            let (_d, engine) = load(&events, layout);
            let got = query(&engine, &extra);
            if range.is_some() {
                prop_assert_eq!(&got["trend"], &Json::Array(want_trend.clone()), "{:?} trend", layout);
            }
            let counted: Vec<u64> = got["steps"].as_array().unwrap().iter().map(|s| s["users"].as_u64().unwrap()).collect();
            prop_assert_eq!(&counted, &want, "{:?} {}", layout, got);
            for e in got["explain"].as_array().unwrap() {
                let u = e["user"].as_str().unwrap();
                let level = level_of.get(u).copied().unwrap_or(0);
                prop_assert_eq!(&e["level"], &json!(level), "{} {}", u, e);
                prop_assert_eq!(e["times"].as_array().unwrap().len(), level);
                prop_assert_eq!(e["reason"].is_null(), level == n, "{}", e);
            }
            // Without within and hold: the plain funnel exactly.
            let mut bare = extra.clone();
            for s in bare["steps"].as_array_mut().unwrap() {
                s.as_object_mut().unwrap().remove("within");
            }
            bare.as_object_mut().unwrap().remove("hold");
            bare.as_object_mut().unwrap().remove("trend");
            let with_explain = query(&engine, &bare);
            let base = query(&engine, &plain);
            prop_assert_eq!(&with_explain["steps"], &base["steps"], "{:?}", layout);
            let plain_levels: Vec<usize> = users.values().map(|evs| window_funnel(&entries(evs, &steps), n, window)).collect();
            let counted: Vec<u64> = base["steps"].as_array().unwrap().iter().map(|s| s["users"].as_u64().unwrap()).collect();
            prop_assert_eq!(counted, users_per_step(&plain_levels, n));
            // Explain's level is the plain funnel's level too.
            for e in with_explain["explain"].as_array().unwrap() {
                let u = e["user"].as_str().unwrap();
                let level = users.get(u).map_or(0, |evs| window_funnel(&entries(evs, &steps), n, window));
                prop_assert_eq!(&e["level"], &json!(level), "{} {}", u, e);
            }
        }
    }
}

// ------------------------------------------------------------- by hand

fn ev(user: &str, event: &str, minutes: i64, source: &str) -> Event {
    Event {
        user: user.into(),
        event: event.into(),
        time: T0 + minutes * 60_000,
        props: vec![("utm_source".into(), Value::Str(source.into()))],
    }
}

/// `explain_users` names the level, the chain's times and the reason for
/// each way of leaving a funnel.
#[test]
fn explain_users_gives_each_reason() {
    let events = vec![
        // step_window: signup 2 h after the visit, step 2 allows 1 h.
        ev("u1", "visit", 0, "a"),
        ev("u1", "signup", 120, "a"),
        // held_value_differs: the signup came from another source.
        ev("u2", "visit", 0, "a"),
        ev("u2", "signup", 10, "b"),
        // outside_window: two days later.
        ev("u3", "visit", 0, "a"),
        ev("u3", "signup", 2 * 24 * 60, "a"),
        // no_event.
        ev("u4", "visit", 0, "a"),
        // all three steps.
        ev("u5", "visit", 0, "a"),
        ev("u5", "signup", 10, "a"),
        ev("u5", "pay", 20, "a"),
        // excluded: a cancel between step 1 and step 2.
        ev("u6", "visit", 0, "a"),
        ev("u6", "cancel", 5, "a"),
        ev("u6", "signup", 10, "a"),
    ];
    let q = json!({"kind": "funnel",
        "steps": [{"event": "visit"}, {"event": "signup", "within": {"value": 1, "unit": "hour"}}, {"event": "pay"}],
        "window": {"value": 1, "unit": "day"},
        "hold": [{"event_prop": "utm_source"}],
        "exclusions": [{"event": "cancel", "between": [0, 1]}],
        "explain_users": ["u1", "u2", "u3", "u4", "u5", "u6", "nobody"]});
    let m = 60_000;
    let want = json!([
        {"user": "u1", "level": 1, "times": [T0], "reason": "step_window"},
        {"user": "u2", "level": 1, "times": [T0], "reason": "held_value_differs"},
        {"user": "u3", "level": 1, "times": [T0], "reason": "outside_window"},
        {"user": "u4", "level": 1, "times": [T0], "reason": "no_event"},
        {"user": "u5", "level": 3, "times": [T0, T0 + 10 * m, T0 + 20 * m], "reason": null},
        {"user": "u6", "level": 0, "times": [T0, T0 + 10 * m], "reason": "excluded"},
        {"user": "nobody", "level": 0, "times": [], "reason": "no_event"},
    ]);
    for layout in LAYOUTS {
        let (_d, engine) = load(&events, layout);
        let got = query(&engine, &q);
        assert_eq!(got["explain"], want, "{layout:?}");
        let users: Vec<u64> = got["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["users"].as_u64().unwrap())
            .collect();
        assert_eq!(users, [5, 1, 1], "{layout:?}");
    }
}

/// Invalid queries fail with the JSON path of the field at fault.
#[test]
fn errors_name_their_paths() {
    let events = vec![ev("u1", "visit", 0, "a"), ev("u1", "pay", 1, "a")];
    let (_d, engine) = load(&events, layouts::Layout::Memtable);
    let attr = |extra: Json| {
        let mut q = json!({"kind": "attribution", "conversion": {"event": "pay"}, "by": {"event_prop": "utm_source"}});
        for (k, v) in extra.as_object().unwrap() {
            q[k] = v.clone();
        }
        q
    };
    let funnel = |steps: Json, extra: Json| {
        let mut q = json!({"kind": "funnel", "steps": steps, "window": 1000});
        for (k, v) in extra.as_object().unwrap() {
            q[k] = v.clone();
        }
        q
    };
    let two = json!([{"event": "visit"}, {"event": "pay"}]);
    let cases = [
        (
            attr(json!({"models": ["first", "u_shape"]})),
            "models[1]: unknown model \"u_shape\" (allowed: first, last, linear, position, time_decay, participation)",
        ),
        (attr(json!({"models": ["last", "last"]})), "models[1]"),
        (attr(json!({"by": {"channel": false}})), "by.channel"),
        (attr(json!({"by": {"user_prop": "plan"}})), "by"),
        (attr(json!({"half_life": 0})), "half_life"),
        (attr(json!({"lookback": {"value": 1, "unit": "year"}})), "lookback.unit"),
        (attr(json!({"breakdown": [{"event_prop": "utm_source"}]})), "breakdown"),
        (json!({"kind": "attribution", "by": {"channel": true}}), "conversion"),
        (json!({"kind": "lifecycle", "interval": "fortnight"}), "interval"),
        (json!({"kind": "lifecycle", "new_by": {"prop": "created_at"}}), "new_by.user_prop"),
        (json!({"kind": "stickiness", "criteria": {"op": "gteq", "value": 2}}), "criteria.op"),
        (json!({"kind": "stickiness", "criteria": {"value": "2"}}), "criteria.value"),
        (json!({"kind": "stickiness", "consecutive": 1}), "consecutive"),
        (funnel(json!([{"event": "visit", "within": 5}, {"event": "pay"}]), json!({})), "steps[0].within"),
        (funnel(json!([{"event": "visit"}, {"event": "pay", "within": {"value": 1, "unit": "eon"}}]), json!({})), "steps[1].within.unit"),
        (funnel(two.clone(), json!({"hold": [{"prop": "utm_source"}]})), "hold[0].event_prop"),
        (funnel(two.clone(), json!({"hold": [{"event_prop": "utm_source"}], "mode": ["strict_order"]})), "mode"),
        (funnel(two.clone(), json!({"explain_users": (0..101).map(|i| format!("u{i}")).collect::<Vec<_>>()})), "explain_users"),
        (funnel(two.clone(), json!({"explain_users": [1]})), "explain_users[0]"),
        (funnel(two.clone(), json!({"trend": {"interval": "year"}})), "trend.interval"),
        (funnel(two.clone(), json!({"trend": {"every": "day"}})), "trend.every"),
        (funnel(two, json!({"breakdown": [{"channel": 1}]})), "breakdown[0].channel"),
        (json!({"kind": "users", "breakdown": [{"channel": true}]}), "breakdown[0].channel"),
    ];
    for (q, path) in cases {
        let err = engine
            .query_json(&q, Default::default())
            .expect_err(&q.to_string())
            .to_string();
        assert!(err.contains(path), "{q}: {err} does not name {path}");
        assert!(!err.contains("not implemented"), "{q}: {err}");
    }
}

/// `new_by: {"user_prop": P}` takes "new" from the bucket of the profile
/// time (epoch ms or RFC 3339); a user without it falls back to their
/// first matching event.
#[test]
fn lifecycle_new_by_profile_time() {
    use footprint_engine::{ProfileOp, ProfileUpdate};
    let day = |d: i64, user: &str| Event {
        user: user.into(),
        event: "login".into(),
        time: T0 + d * DAY + 3_600_000,
        props: Vec::new(),
    };
    // u1 created on day 0 (before its first login on day 1): returning
    // would need day 0 activity, so day 1 is resurrecting. u2 created on
    // day 2 (RFC 3339), active days 1 and 2: day 2 is new. u3 has no
    // profile: new on its first login, day 1.
    let events = vec![day(1, "u1"), day(1, "u2"), day(2, "u2"), day(1, "u3")];
    let q = json!({"kind": "lifecycle", "event": {"event": "login"}, "interval": "day",
        "new_by": {"user_prop": "created_at"},
        "time_range": {"from": T0, "to": T0 + 3 * DAY}});
    for layout in LAYOUTS {
        let (_d, engine) = load(&events, layout);
        engine
            .upsert_profiles(vec![
                ProfileUpdate {
                    user: "u1".into(),
                    op: ProfileOp::Set,
                    props: vec![("created_at".into(), Value::Int(T0 + 60_000))],
                },
                ProfileUpdate {
                    user: "u2".into(),
                    op: ProfileOp::Set,
                    props: vec![(
                        "created_at".into(),
                        Value::Str("2026-01-07T08:00:00Z".into()),
                    )],
                },
            ])
            .unwrap();
        let got = query(&engine, &q);
        assert_eq!(
            got,
            json!({"buckets": ["2026-01-05", "2026-01-06", "2026-01-07"],
                "new": [0, 1, 1], "returning": [0, 0, 0], "resurrecting": [0, 2, 0],
                "dormant": [0, 0, -2]}),
            "{layout:?}"
        );
    }
}
