//! Property tests: on random event streams, funnel, retention and interval
//! answers (through ingest, storage and the parallel executor) equal a
//! deliberately naive reference implementation written here.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, TimeZone};
use chrono_tz::Tz;
use footprint_engine::{Engine, EngineOptions, Event, StoreOptions, Value};
use proptest::prelude::*;
use serde_json::{json, Value as Json};

const NAMES: [&str; 4] = ["a", "b", "c", "d"];

fn event() -> impl Strategy<Value = Event> {
    (
        0u8..6,
        0usize..4,
        prop_oneof![
            0i64..40,
            1_717_200_000_000i64..1_717_200_000_030,
            1_730_500_000_000i64..1_730_700_000_000
        ],
        prop_oneof![
            Just(None),
            Just(Some(Value::Str("pro".into()))),
            Just(Some(Value::Str("free".into()))),
            Just(Some(Value::Int(3)))
        ],
    )
        .prop_map(|(u, e, t, plan)| Event {
            user: format!("u{u}"),
            event: NAMES[e].into(),
            time: t,
            props: plan.into_iter().map(|p| ("plan".to_string(), p)).collect(),
        })
}

fn engine_with(events: &[Event], flush_at: usize) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let opts = EngineOptions {
        store: StoreOptions {
            shards: 2,
            memtable_rows: 1 << 30,
            max_segments_per_shard: 64,
        },
        background: false,
        query_threads: 2,
        ..Default::default()
    };
    let e = Engine::open(dir.path(), opts).unwrap();
    let (a, b) = events.split_at(flush_at.min(events.len()));
    e.ingest(a.to_vec()).unwrap();
    e.flush().unwrap();
    e.ingest(b.to_vec()).unwrap();
    (dir, e)
}

/// A step: event name and an optional `plan == "pro"` condition.
#[derive(Debug, Clone)]
struct Step(usize, bool);

fn step_json(s: &Step) -> Json {
    if s.1 {
        json!({"event": NAMES[s.0], "where": {"prop": "plan", "op": "eq", "value": "pro"}})
    } else {
        json!({"event": NAMES[s.0]})
    }
}

fn matches(s: &Step, e: &Event) -> bool {
    e.event == NAMES[s.0] && (!s.1 || e.prop("plan") == Some(&Value::Str("pro".into())))
}

fn by_user(events: &[Event], range: Option<(i64, i64)>) -> BTreeMap<String, Vec<Event>> {
    let mut m: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    for e in events {
        if range.is_none_or(|(f, t)| e.time >= f && e.time < t) {
            m.entry(e.user.clone()).or_default().push(e.clone());
        }
    }
    m
}

/// Declarative funnel: the largest k with events e1..ek matching steps 1..k,
/// t1 <= ... <= tk <= t1 + window (strictly increasing if `strict`), rows
/// pairwise distinct if `distinct`. Brute force.
fn naive_level(rows: &[Event], steps: &[Step], window: i64, distinct: bool, strict: bool) -> usize {
    #[allow(clippy::too_many_arguments)]
    fn dfs(
        rows: &[Event],
        steps: &[Step],
        w: i64,
        distinct: bool,
        strict: bool,
        k: usize,
        t0: i64,
        prev: i64,
        used: &mut Vec<usize>,
        best: &mut usize,
    ) {
        *best = (*best).max(k);
        if k == steps.len() {
            return;
        }
        for (r, e) in rows.iter().enumerate() {
            if !matches(&steps[k], e)
                || e.time > t0 + w
                || e.time < prev
                || (strict && k > 0 && e.time <= prev)
            {
                continue;
            }
            if distinct && used.contains(&r) {
                continue;
            }
            used.push(r);
            dfs(
                rows,
                steps,
                w,
                distinct,
                strict,
                k + 1,
                t0,
                e.time,
                used,
                best,
            );
            used.pop();
            if *best == steps.len() {
                return;
            }
        }
    }
    let mut best = 0;
    for (r, e) in rows.iter().enumerate() {
        if matches(&steps[0], e) {
            let mut used = vec![r];
            dfs(
                rows, steps, window, distinct, strict, 1, e.time, e.time, &mut used, &mut best,
            );
        }
    }
    best
}

fn steps_users(levels: &[usize], n: usize) -> Vec<u64> {
    (1..=n)
        .map(|k| levels.iter().filter(|&&l| l >= k).count() as u64)
        .collect()
}

fn got_steps(r: &Json) -> Vec<u64> {
    r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["users"].as_u64().unwrap())
        .collect()
}

fn range_json(r: Option<(i64, i64)>) -> Json {
    r.map_or(Json::Null, |(f, t)| json!({"from": f, "to": t}))
}

fn arb_range() -> impl Strategy<Value = Option<(i64, i64)>> {
    prop_oneof![
        3 => Just(None),
        1 => (0i64..30, 1i64..40).prop_map(|(f, l)| Some((f, f + l))),
        1 => Just(Some((1_717_200_000_005, 1_717_200_000_025))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn funnel_matches_declarative_definition(
        events in proptest::collection::vec(event(), 0..60),
        steps in proptest::collection::vec((0usize..4, any::<bool>()).prop_map(|(e, w)| Step(e, w)), 1..5),
        window in prop_oneof![Just(0i64), 1i64..20, Just(1_000_000_000i64)],
        mode in 0usize..3,
        range in arb_range(),
        flush_at in 0usize..60,
    ) {
        let (modes, distinct, strict) = match mode {
            0 => (json!([]), false, false),
            1 => (json!(["strict_once"]), true, false),
            _ => (json!(["strict_once", "strict_increase"]), true, true),
        };
        let (_d, engine) = engine_with(&events, flush_at);
        let q = json!({"kind": "funnel", "steps": steps.iter().map(step_json).collect::<Vec<_>>(),
                       "window": window, "mode": modes, "time_range": range_json(range)});
        let got = engine.query_json(&q, Default::default()).unwrap();
        let levels: Vec<usize> = by_user(&events, range)
            .values()
            .map(|rows| naive_level(rows, &steps, window, distinct, strict))
            .collect();
        prop_assert_eq!(got_steps(&got), steps_users(&levels, steps.len()), "query {}", q);
    }

    #[test]
    fn interval_matches_naive_pairs(
        events in proptest::collection::vec(event(), 0..60),
        from in 0usize..4,
        to in 0usize..4,
        each in any::<bool>(),
        window in prop_oneof![Just(None), (0i64..20).prop_map(Some)],
        range in arb_range(),
        flush_at in 0usize..60,
    ) {
        let (_d, engine) = engine_with(&events, flush_at);
        let mut q = json!({"kind": "interval", "from": {"event": NAMES[from]}, "to": {"event": NAMES[to]},
                           "pairs": if each { "each" } else { "first" }, "time_range": range_json(range)});
        if let Some(w) = window { q["window"] = json!(w); }
        let got = engine.query_json(&q, Default::default()).unwrap();
        // Naive: plain loops over each user's rows.
        let mut deltas = Vec::new();
        for rows in by_user(&events, range).values() {
            let mut idx: Vec<usize> = (0..rows.len()).collect();
            idx.sort_by_key(|&i| rows[i].time);
            let froms: Vec<usize> = idx.iter().copied().filter(|&i| rows[i].event == NAMES[from]).collect();
            let tos: Vec<usize> = idx.iter().copied().filter(|&i| rows[i].event == NAMES[to]).collect();
            let next_to = |fi: usize| tos.iter().filter(|&&t| t != fi && rows[t].time >= rows[fi].time).map(|&t| rows[t].time).min();
            if !each {
                if let Some(&f) = froms.first() {
                    if let Some(t) = next_to(f) { deltas.push(t - rows[f].time); }
                }
                continue;
            }
            let mut last: Option<i64> = None;
            for &f in &froms {
                if last.is_some_and(|l| rows[f].time <= l) { continue; }
                if let Some(t) = next_to(f) { deltas.push(t - rows[f].time); last = Some(t); }
            }
        }
        if let Some(w) = window { deltas.retain(|&d| d <= w); }
        deltas.sort_unstable();
        prop_assert_eq!(got["count"].as_u64().unwrap() as usize, deltas.len(), "query {}", q);
        if let (Some(&lo), Some(&hi)) = (deltas.first(), deltas.last()) {
            prop_assert_eq!(got["min"].as_i64(), Some(lo));
            prop_assert_eq!(got["max"].as_i64(), Some(hi));
            let n = deltas.len();
            let pos = 0.5 * (n - 1) as f64;
            let (a, b) = (deltas[pos.floor() as usize] as f64, deltas[(pos.floor() as usize + 1).min(n - 1)] as f64);
            let median = a + (b - a) * (pos - pos.floor());
            prop_assert!((got["median"].as_f64().unwrap() - median).abs() < 1e-9);
            let avg = deltas.iter().sum::<i64>() as f64 / n as f64;
            prop_assert!((got["avg"].as_f64().unwrap() - avg).abs() < 1e-6);
        } else {
            prop_assert!(got["median"].is_null());
        }
    }

    #[test]
    fn retention_matches_naive_buckets(
        events in proptest::collection::vec(event(), 0..60),
        start in 0usize..4,
        ret in 0usize..4,
        unit in 0usize..4,
        tz in 0usize..4,
        first_time in any::<bool>(),
        periods in 1usize..5,
        range in arb_range(),
        flush_at in 0usize..60,
    ) {
        let tzname = ["UTC", "Asia/Shanghai", "America/New_York", "Asia/Kolkata"][tz];
        let unitname = ["hour", "day", "week", "month"][unit];
        let (_d, engine) = engine_with(&events, flush_at);
        let q = json!({"kind": "retention", "start": {"event": NAMES[start]}, "return": {"event": NAMES[ret]},
                       "unit": unitname, "periods": periods, "first_time": first_time, "timezone": tzname,
                       "time_range": range_json(range)});
        let got = engine.query_json(&q, Default::default()).unwrap();
        let zone: Tz = tzname.parse().unwrap();
        // Naive bucket: (sort key, period ordinal, label) straight from chrono-tz.
        let bucket = |t: i64| -> (i64, i64, String) {
            let local = zone.timestamp_millis_opt(t).unwrap().naive_local();
            let lms = local.and_utc().timestamp_millis();
            let date = local.date();
            let days = date.signed_duration_since(chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days();
            match unitname {
                "hour" => {
                    let s = t - lms.rem_euclid(3_600_000);
                    let sl = zone.timestamp_millis_opt(s).unwrap().naive_local();
                    (s, s / 3_600_000, sl.format("%Y-%m-%dT%H").to_string())
                }
                "day" => (days, days, date.format("%Y-%m-%d").to_string()),
                "week" => {
                    let monday = date - chrono::Duration::days(date.weekday().num_days_from_monday() as i64);
                    let md = days - date.weekday().num_days_from_monday() as i64;
                    (md, md / 7, monday.format("%Y-%m-%d").to_string())
                }
                _ => {
                    let m = date.year() as i64 * 12 + date.month0() as i64;
                    (m, m, date.format("%Y-%m").to_string())
                }
            }
        };
        let mut cells: BTreeMap<(i64, String), Vec<u64>> = BTreeMap::new();
        for rows in by_user(&events, range).values() {
            let mut starts: Vec<&Event> = rows.iter().filter(|e| e.event == NAMES[start]).collect();
            starts.sort_by_key(|e| e.time);
            if first_time { starts.truncate(1); }
            let cohorts: BTreeSet<(i64, i64, String)> = starts.iter().map(|e| bucket(e.time)).collect();
            let returns: Vec<(i64, i64, String)> = rows.iter().filter(|e| e.event == NAMES[ret]).map(|e| bucket(e.time)).collect();
            for (key, ord, label) in cohorts {
                let cell = cells.entry((key, label)).or_insert_with(|| vec![0; periods + 1]);
                cell[0] += 1;
                for k in 1..=periods as i64 {
                    if returns.iter().any(|(_, o, _)| o - ord == k) {
                        cell[k as usize] += 1;
                    }
                }
            }
        }
        let want: Vec<Json> = cells.iter().map(|((_, l), r)| json!({"cohort": l, "users": r[0], "retained": r})).collect();
        let have: Vec<Json> = got["cohorts"].as_array().unwrap().iter()
            .map(|c| json!({"cohort": c["cohort"], "users": c["users"], "retained": c["retained"]})).collect();
        prop_assert_eq!(have, want, "query {}", q);
    }
}
