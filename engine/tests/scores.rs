//! Health scores (`"score"` in a `users` query) through the engine API:
//! a worked example, errors naming their JSON path, the scope, and a
//! proptest against a naive reference computed straight from a random
//! event stream.

mod common;

use common::{open, profile};
use footprint_engine::{Engine, ErrorKind, Format, QueryOptions, Scope};
use proptest::prelude::*;
use serde_json::{json, Value as Json};

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const DAY: i64 = 86_400_000;

fn ingest(e: &Engine, rows: &[(&str, &str, i64)]) {
    let text: String = rows
        .iter()
        .map(|(u, ev, t)| format!("{{\"user\":\"{u}\",\"event\":\"{ev}\",\"time\":{t}}}\n"))
        .collect();
    e.ingest_text(&text, Format::Auto).unwrap();
}

fn err(e: &Engine, q: Json) -> footprint_engine::QueryError {
    match e.query_json(&q, QueryOptions::default()) {
        Err(footprint_engine::Error::Query(q)) => q,
        other => panic!("expected a query error, got {other:?}"),
    }
}

/// The components of the README's example: logins in the last 30 days
/// (2 points each, at most 10 counted), a key feature used at all (20
/// points), support tickets (−5 each).
fn health() -> Json {
    json!({"components": [
        {"name": "logins", "event": "login", "within": {"value": 30, "unit": "day"},
         "weight": 2, "cap": 10},
        {"name": "reports", "event": "create_report", "within": {"value": 30, "unit": "day"},
         "measure": "did", "weight": 20},
        {"name": "tickets", "event": "ticket", "weight": -5},
        {"name": "active_days", "event": "$any", "within": {"value": 7, "unit": "day"},
         "measure": "days", "weight": 1}
    ], "top": 2, "histogram": {"bins": 2}})
}

#[test]
fn scores_a_worked_example() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let end = T0 + 60 * DAY;
    let mut rows = Vec::new();
    // a: 12 logins in the window (capped at 10), 3 of them in the last
    // week on 2 days, a report: 2·10 + 20 + 2 = 42.
    for i in 0..9 {
        rows.push(("a", "login", end - 20 * DAY + i * 1000));
    }
    rows.push(("a", "login", end - 3 * DAY));
    rows.push(("a", "login", end - 3 * DAY + 1000));
    rows.push(("a", "login", end - DAY));
    rows.push(("a", "create_report", end - 10 * DAY));
    // b: 2 logins long ago (outside 30 days), 1 ticket, one day active
    // in the last week: −5 + 1 = −4.
    rows.push(("b", "login", end - 50 * DAY));
    rows.push(("b", "login", end - 49 * DAY));
    rows.push(("b", "ticket", end - 2 * DAY));
    // c: 1 login in the window, one day active: 2 + 1 = 3.
    rows.push(("c", "login", end - 2 * DAY));
    ingest(&e, &rows);
    // d: a profile and no event.
    profile(&e, "d", json!({"plan": "pro"}));
    profile(&e, "a", json!({"plan": "pro"}));

    let range = json!({"from": T0, "to": end});
    let r = e
        .query_json(
            &json!({"kind": "users", "time_range": range, "score": health()}),
            QueryOptions::default(),
        )
        .unwrap();
    // With a time_range the members are the users with an event in it.
    assert_eq!(r["users"], 3, "{r}");
    assert_eq!(r["min"], -4);
    assert_eq!(r["max"], 42);
    assert_eq!(r["median"], 3);
    assert_eq!(r["mean"], json!(41.0 / 3.0));
    assert_eq!(
        r["top"],
        json!([
            {"user": "a", "score": 42, "components": {"logins": 12, "reports": 1, "tickets": 0, "active_days": 2}},
            {"user": "c", "score": 3, "components": {"logins": 1, "reports": 0, "tickets": 0, "active_days": 1}},
        ]),
        "{r}"
    );
    assert_eq!(r["bottom"][0]["user"], "b");
    assert_eq!(r["bottom"][1]["user"], "c");
    assert_eq!(
        r["histogram"],
        json!([{"from": -4, "to": 19, "users": 2}, {"from": 19, "to": 42, "users": 1}])
    );

    // Over all time (windows end now, long after these events) every
    // known user is scored, d with no event at 0; a profile condition
    // picks whom.
    let r = e
        .query_json(
            &json!({"kind": "users", "profile": {"prop": "plan", "op": "eq", "value": "pro"},
                    "score": {"components": [{"name": "logins", "event": "login", "weight": 1}]}}),
            QueryOptions::default(),
        )
        .unwrap();
    assert_eq!(r["users"], 2, "{r}");
    assert_eq!(
        r["top"][0],
        json!({"user": "a", "score": 12, "components": {"logins": 12}})
    );
    assert_eq!(
        r["top"][1],
        json!({"user": "d", "score": 0, "components": {"logins": 0}})
    );

    // Every member's score, as a saved score writes them.
    let all = e
        .score_all(
            &json!({"kind": "users", "time_range": range, "score": health()}),
            QueryOptions::default(),
        )
        .unwrap();
    let mut named: Vec<(String, f64)> = all
        .iter()
        .map(|(u, s)| (e.store().user_names(&[*u])[0].clone(), *s))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        named,
        [("a".into(), 42.0), ("b".into(), -4.0), ("c".into(), 3.0)]
    );

    // A scoped caller scores only its people.
    let alice = QueryOptions {
        scope: Some(
            Scope::new(json!({"prop": "plan", "op": "eq", "value": "pro"}), "users").unwrap(),
        ),
        ..Default::default()
    };
    let r = e
        .query_json(
            &json!({"kind": "users", "time_range": range, "score": health()}),
            alice,
        )
        .unwrap();
    assert_eq!(r["users"], 1, "{r}");
    assert_eq!(r["bottom"][0]["user"], "a");
}

#[test]
fn score_errors_name_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    ingest(&e, &[("a", "login", T0)]);
    let comp = |extra: Json| {
        let mut c = json!({"name": "logins", "event": "login", "weight": 2});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        json!({"kind": "users", "score": {"components": [
            {"name": "x", "event": "login", "weight": 1}, c]}})
    };
    for (q, path) in [
        (comp(json!({"weight": "2"})), "score.components[1].weight"),
        (comp(json!({"cap": -1})), "score.components[1].cap"),
        (
            comp(json!({"measure": "sum"})),
            "score.components[1].measure",
        ),
        (
            comp(json!({"within": {"value": 1, "unit": "fortnight"}})),
            "score.components[1].within.unit",
        ),
        (comp(json!({"name": "x"})), "score.components[1].name"),
        (comp(json!({"evnt": "x"})), "score.components[1].evnt"),
        (
            json!({"kind": "users", "score": {"components": []}}),
            "score.components",
        ),
        (
            json!({"kind": "users", "score": {"components": [{"name": "a", "event": "login", "weight": 1}], "top": 5000}}),
            "score.top",
        ),
        (
            json!({"kind": "users", "score": {"components": [{"name": "a", "event": "login", "weight": 1}], "histogram": {"bins": 0}}}),
            "score.histogram.bins",
        ),
        (
            json!({"kind": "users", "return_users": 5, "score": {"components": [{"name": "a", "event": "login", "weight": 1}]}}),
            "return_users",
        ),
        (
            json!({"kind": "users", "save_as": "x", "score": {"components": [{"name": "a", "event": "login", "weight": 1}]}}),
            "save_as",
        ),
    ] {
        let x = err(&e, q.clone());
        assert_eq!(x.kind, ErrorKind::Invalid, "{q}: {x}");
        assert_eq!(x.path, path, "{q}: {x}");
    }
    let x = err(
        &e,
        json!({"kind": "users", "score": {"unit": {"group": "company"},
            "components": [{"name": "a", "event": "login", "weight": 1}]}}),
    );
    assert_eq!(
        (x.kind, x.path.as_str()),
        (ErrorKind::NotSupported, "score.unit"),
        "{x}"
    );
    // A cohort definition has no score.
    let def = json!({"kind": "users", "score": {"components": [{"name": "a", "event": "login", "weight": 1}]}});
    assert!(e
        .create_cohort("c", &def, &QueryOptions::default())
        .is_err());
}

// ---- proptest against a naive reference ----

#[derive(Debug, Clone)]
struct Ev {
    user: u8,
    event: u8,
    /// Minutes after T0.
    minute: u32,
    chat: bool,
}

const EVENTS: [&str; 3] = ["login", "create_report", "ticket"];

#[derive(Debug, Clone)]
struct Comp {
    event: Option<u8>, // None: $any
    chat_only: bool,
    within_days: Option<i64>,
    measure: u8, // 0 count, 1 days, 2 did
    weight: f64,
    cap: Option<f64>,
}

#[derive(Debug, Clone)]
struct Case {
    events: Vec<Ev>,
    flush_after: usize,
    plans: Vec<(u8, bool)>,
    comps: Vec<Comp>,
    ranged: bool,
    from_day: i64,
    pro_only: bool,
    did_login: bool,
    top: usize,
    bins: usize,
}

fn comp() -> impl Strategy<Value = Comp> {
    (
        prop::option::of(0u8..3),
        any::<bool>(),
        prop::option::of(1i64..8),
        0u8..3,
        prop_oneof![
            Just(1.0),
            Just(2.0),
            Just(-3.0),
            Just(0.5),
            Just(2.5),
            Just(-0.25)
        ],
        prop::option::of(prop_oneof![Just(0.0), Just(1.0), Just(3.0), Just(2.5)]),
    )
        .prop_map(
            |(event, chat_only, within_days, measure, weight, cap)| Comp {
                event,
                chat_only,
                within_days,
                measure,
                weight,
                cap,
            },
        )
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(
            (0u8..12, 0u8..3, 0u32..(12 * 1440), any::<bool>()).prop_map(
                |(user, event, minute, chat)| Ev {
                    user,
                    event,
                    minute,
                    chat,
                },
            ),
            0..60,
        ),
        0usize..60,
        prop::collection::vec((0u8..15, any::<bool>()), 0..10),
        prop::collection::vec(comp(), 1..5),
        (any::<bool>(), 0i64..4, any::<bool>(), any::<bool>()),
        (1usize..5, 1usize..6),
    )
        .prop_map(
            |(
                events,
                flush_after,
                plans,
                comps,
                (ranged, from_day, pro_only, did_login),
                (top, bins),
            )| Case {
                events,
                flush_after,
                plans,
                comps,
                ranged,
                from_day,
                pro_only,
                did_login,
                top,
                bins,
            },
        )
}

fn query(c: &Case) -> Json {
    let comps: Vec<Json> = c
        .comps
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let measure = ["count", "days", "did"][k.measure as usize];
            let mut j = json!({
                "name": format!("c{i}"),
                "event": k.event.map_or("$any", |e| EVENTS[e as usize]),
                "measure": measure,
                "weight": k.weight,
            });
            if k.chat_only {
                j["where"] = json!({"prop": "chat", "op": "eq", "value": true});
            }
            if let (Some(d), true) = (k.within_days, c.ranged) {
                j["within"] = json!({"value": d, "unit": "day"});
            }
            if let Some(cap) = k.cap {
                j["cap"] = json!(cap);
            }
            j
        })
        .collect();
    let mut q = json!({"kind": "users",
        "score": {"components": comps, "top": c.top, "histogram": {"bins": c.bins}}});
    if c.ranged {
        q["time_range"] = json!({"from": T0 + c.from_day * DAY, "to": T0 + 12 * DAY});
    }
    if c.pro_only {
        q["profile"] = json!({"prop": "plan", "op": "eq", "value": "pro"});
    }
    if c.did_login {
        q["did"] = json!([{"event": "login"}]);
    }
    q
}

fn number(x: f64) -> Json {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

/// An event's time.
fn t(e: &Ev) -> i64 {
    T0 + i64::from(e.minute) * 60_000
}

/// The answer computed the plain way: every user, every event, no index.
fn reference(c: &Case) -> Json {
    let range = c.ranged.then(|| (T0 + c.from_day * DAY, T0 + 12 * DAY));
    let visible = |e: &Ev| range.is_none_or(|(a, b)| t(e) >= a && t(e) < b);
    let mut plan: std::collections::BTreeMap<u8, bool> = Default::default();
    for &(u, pro) in &c.plans {
        plan.insert(u, pro);
    }
    let mut users: std::collections::BTreeSet<u8> = c
        .events
        .iter()
        .filter(|&e| visible(e))
        .map(|e| e.user)
        .collect();
    if range.is_none() && !c.did_login {
        // Over all time the profile-only users are members too.
        users.extend(plan.keys());
    }
    let mut scored: Vec<(f64, String, Vec<u64>)> = Vec::new();
    for u in users {
        if c.pro_only && plan.get(&u) != Some(&true) {
            continue;
        }
        let mine: Vec<&Ev> = c
            .events
            .iter()
            .filter(|&e| e.user == u && visible(e))
            .collect();
        if c.did_login && !mine.iter().any(|e| e.event == 0) {
            continue;
        }
        let mut values = Vec::new();
        let mut score = 0.0;
        for k in &c.comps {
            let hits: Vec<&&Ev> = mine
                .iter()
                .filter(|e| k.event.is_none_or(|x| x == e.event))
                .filter(|e| !k.chat_only || e.chat)
                .filter(|e| match (k.within_days, range) {
                    (Some(d), Some((_, end))) => t(e) >= end - d * DAY,
                    _ => true,
                })
                .collect();
            let days: std::collections::BTreeSet<i64> =
                hits.iter().map(|e| t(e).div_euclid(DAY)).collect();
            let v = match k.measure {
                0 => hits.len() as u64,
                1 => days.len() as u64,
                _ => u64::from(!hits.is_empty()),
            };
            let capped = k.cap.map_or(v as f64, |cap| (v as f64).min(cap));
            score += k.weight * capped;
            values.push(v);
        }
        scored.push((score, format!("u{u}"), values));
    }
    let n = scored.len();
    let mut sorted: Vec<f64> = scored.iter().map(|s| s.0).collect();
    sorted.sort_by(f64::total_cmp);
    let member = |s: &(f64, String, Vec<u64>)| {
        let comps: serde_json::Map<String, Json> =
            s.2.iter()
                .enumerate()
                .map(|(i, v)| (format!("c{i}"), json!(v)))
                .collect();
        json!({"user": s.1, "score": number(s.0), "components": comps})
    };
    let mut top = scored.clone();
    top.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let mut bottom = scored.clone();
    bottom.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    let median = (n > 0).then(|| {
        let pos = 0.5 * (n - 1) as f64;
        let lo = pos.floor() as usize;
        let (a, b) = (sorted[lo], sorted[(lo + 1).min(n - 1)]);
        a + (b - a) * (pos - lo as f64)
    });
    let histogram: Vec<Json> = match (sorted.first(), sorted.last()) {
        (Some(&lo), Some(&hi)) if lo != hi && c.bins > 1 => {
            let w = (hi - lo) / c.bins as f64;
            (0..c.bins)
                .map(|i| {
                    let from = lo + w * i as f64;
                    let to = if i + 1 == c.bins {
                        hi
                    } else {
                        lo + w * (i + 1) as f64
                    };
                    let users = sorted
                        .iter()
                        .filter(|&&s| (((s - lo) / w).floor() as usize).min(c.bins - 1) == i)
                        .count();
                    json!({"from": number(from), "to": number(to), "users": users})
                })
                .collect()
        }
        (Some(&lo), Some(&hi)) => vec![json!({"from": number(lo), "to": number(hi), "users": n})],
        _ => Vec::new(),
    };
    json!({
        "users": n,
        "min": sorted.first().map_or(Json::Null, |&x| number(x)),
        "max": sorted.last().map_or(Json::Null, |&x| number(x)),
        "mean": if n > 0 { number(sorted.iter().sum::<f64>() / n as f64) } else { Json::Null },
        "median": median.map_or(Json::Null, number),
        "histogram": histogram,
        "top": top.iter().take(c.top).map(member).collect::<Vec<_>>(),
        "bottom": bottom.iter().take(c.top).map(member).collect::<Vec<_>>(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn score_equals_naive_reference(c in case()) {
        let dir = tempfile::tempdir().unwrap();
        let e = open(dir.path());
        let mut rows = String::new();
        for (i, ev) in c.events.iter().enumerate() {
            rows.push_str(&format!(
                "{{\"user\":\"u{}\",\"event\":\"{}\",\"time\":{},\"props\":{{\"chat\":{}}}}}\n",
                ev.user, EVENTS[ev.event as usize], T0 + i64::from(ev.minute) * 60_000, ev.chat
            ));
            if i + 1 == c.flush_after {
                // Part of the events in a segment, the rest in the memtable.
                e.ingest_text(&rows, Format::Auto).unwrap();
                rows.clear();
                e.flush().unwrap();
            }
        }
        if !rows.is_empty() {
            e.ingest_text(&rows, Format::Auto).unwrap();
        }
        for &(u, pro) in &c.plans {
            profile(&e, &format!("u{u}"), json!({"plan": if pro { "pro" } else { "free" }}));
        }
        let mut got = e.query_json(&query(&c), QueryOptions::default()).unwrap();
        // Events or properties not stored in this case only warn.
        if let Some(m) = got.as_object_mut() {
            m.remove("warnings");
        }
        prop_assert_eq!(got, reference(&c));
    }
}
