//! Property tests: on random event streams, the answers of every analysis
//! kind (through ingest, storage and the parallel executor) equal a
//! deliberately naive reference implementation written here, in every
//! storage layout (see [`Layout`]). Some strategies aim at the fast paths on
//! purpose: the funnel's per-event runs and bitmap level-1 counting, and the
//! scans that skip event times.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::{Datelike, TimeZone};
use chrono_tz::Tz;
use footprint_engine::storage::SegmentFormat;
use footprint_engine::{
    Engine, EngineOptions, Event, ProfileOp, ProfileUpdate, QueryOptions, ScanStats, StoreOptions,
    Value,
};
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
        plan(),
    )
        .prop_map(|(u, e, t, plan)| Event {
            user: format!("u{u}"),
            event: NAMES[e].into(),
            time: t,
            props: plan.into_iter().map(|p| ("plan".to_string(), p)).collect(),
        })
}

/// An event's `plan`: missing, two strings, or a number.
fn plan() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(Value::Str("pro".into()))),
        Just(Some(Value::Str("free".into()))),
        Just(Some(Value::Int(3)))
    ]
}

/// Events packed into 16 milliseconds of a few users, so that equal times,
/// and events exactly on a window's edge (`t1 + window`), are common.
fn dense_event() -> impl Strategy<Value = Event> {
    (0u8..5, 0usize..4, 0i64..16, plan()).prop_map(|(u, e, t, plan)| Event {
        user: format!("u{u}"),
        event: NAMES[e].into(),
        time: 1_700_000_000_000 + t,
        props: plan.into_iter().map(|p| ("plan".to_string(), p)).collect(),
    })
}

/// Where a test's events end up before it queries them. Each layout sends
/// queries down other scan paths: merged memtable rows, format 2 segments
/// (per-event runs, time-free scans), format 1 segments, merges across
/// segments of both formats and the memtable, a compacted shard.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// All events in the memtable.
    Memtable,
    /// All events flushed to one format 2 segment per shard.
    Flushed,
    /// All events flushed to one format 1 segment per shard.
    FlushedV1,
    /// A third in format 1 segments, a third in format 2, a third in the
    /// memtable.
    Split,
    /// Three flushes merged into one format 2 segment per shard.
    Compacted,
    /// The first `n` events flushed (format 2), the rest in the memtable.
    FlushedAt(usize),
}

/// Every layout, with `flush_at` for the partly flushed one.
fn layouts(flush_at: usize) -> [Layout; 6] {
    [
        Layout::Memtable,
        Layout::Flushed,
        Layout::FlushedV1,
        Layout::Split,
        Layout::Compacted,
        Layout::FlushedAt(flush_at),
    ]
}

fn open_engine(dir: &std::path::Path, segment_format: SegmentFormat) -> Engine {
    let opts = EngineOptions {
        store: StoreOptions {
            shards: 2,
            memtable_rows: 1 << 30,
            max_segments_per_shard: 64,
            segment_format,
            ..Default::default()
        },
        background: false,
        query_threads: 2,
        ..Default::default()
    };
    Engine::open(dir, opts).unwrap()
}

/// An engine holding `events` (sent in this order) in `layout`.
fn engine_in(events: &[Event], layout: Layout) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let (v1, v2) = (SegmentFormat::TimeOrder, SegmentFormat::EventMajor);
    let thirds = |events: &[Event]| -> Vec<Vec<Event>> {
        let a = events.len() / 3;
        let b = 2 * events.len() / 3;
        vec![
            events[..a].to_vec(),
            events[a..b].to_vec(),
            events[b..].to_vec(),
        ]
    };
    let engine = match layout {
        Layout::Memtable => {
            let e = open_engine(dir.path(), v2);
            e.ingest(events.to_vec()).unwrap();
            e
        }
        Layout::Flushed | Layout::FlushedV1 => {
            let format = if matches!(layout, Layout::Flushed) {
                v2
            } else {
                v1
            };
            let e = open_engine(dir.path(), format);
            e.ingest(events.to_vec()).unwrap();
            e.flush().unwrap();
            e
        }
        Layout::Split => {
            let [a, b, c]: [Vec<Event>; 3] = thirds(events).try_into().unwrap();
            let e = open_engine(dir.path(), v1);
            e.ingest(a).unwrap();
            e.flush().unwrap();
            drop(e);
            let e = open_engine(dir.path(), v2);
            e.ingest(b).unwrap();
            e.flush().unwrap();
            e.ingest(c).unwrap();
            e
        }
        Layout::Compacted => {
            let e = open_engine(dir.path(), v2);
            for part in thirds(events) {
                e.ingest(part).unwrap();
                e.flush().unwrap();
            }
            e.store().compact_all().unwrap();
            e
        }
        Layout::FlushedAt(n) => {
            let e = open_engine(dir.path(), v2);
            let (a, b) = events.split_at(n.min(events.len()));
            e.ingest(a.to_vec()).unwrap();
            e.flush().unwrap();
            e.ingest(b.to_vec()).unwrap();
            e
        }
    };
    (dir, engine)
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
        let q = json!({"kind": "funnel", "steps": steps.iter().map(step_json).collect::<Vec<_>>(),
                       "window": window, "mode": modes, "time_range": range_json(range)});
        let levels: Vec<usize> = by_user(&events, range)
            .values()
            .map(|rows| naive_level(rows, &steps, window, distinct, strict))
            .collect();
        for layout in layouts(flush_at) {
            let (_d, engine) = engine_in(&events, layout);
            let got = engine.query_json(&q, Default::default()).unwrap();
            prop_assert_eq!(got_steps(&got), steps_users(&levels, steps.len()), "{:?}: query {}", layout, q);
        }
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
        for layout in layouts(flush_at) {
            let (_d, engine) = engine_in(&events, layout);
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
        for layout in layouts(flush_at) {
            let (_d, engine) = engine_in(&events, layout);
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
}

/// Where [`dense_event`] times start.
const DENSE: i64 = 1_700_000_000_000;

/// Ranges over [`dense_event`] times: none, one that covers every event
/// (the per-event bitmaps are then exact for it), or a slice of them.
fn dense_range() -> impl Strategy<Value = Option<(i64, i64)>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some((DENSE - 1, DENSE + 1_000))),
        2 => (0i64..8, 1i64..12).prop_map(|(f, l)| Some((DENSE + f, DENSE + f + l))),
    ]
}

/// Profiles: `tier` for three of the five users, one of them a number.
fn tier(user: &str) -> Option<Value> {
    match user {
        "u0" => Some(Value::Str("gold".into())),
        "u1" => Some(Value::Str("silver".into())),
        "u2" => Some(Value::Int(1)),
        _ => None,
    }
}

fn set_tiers(engine: &Engine) {
    let updates = (0..5)
        .filter_map(|u| {
            let user = format!("u{u}");
            let t = tier(&user)?;
            Some(ProfileUpdate {
                user,
                op: ProfileOp::Set,
                props: vec![("tier".into(), t)],
            })
        })
        .collect();
    engine.upsert_profiles(updates).unwrap();
}

/// A funnel exclusion: event `event` (with `plan == "pro"` if `pro`)
/// between 0-based steps `from` and `to`.
#[derive(Debug, Clone)]
struct Exclusion {
    event: usize,
    pro: bool,
    from: usize,
    to: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Dim {
    None,
    /// `{"event_prop": "plan"}`: the plan of the chain's step-1 event.
    Plan,
    /// `{"user_prop": "tier"}`.
    Tier,
}

/// A funnel query of the reference tests.
#[derive(Debug, Clone)]
struct FunnelQuery {
    steps: Vec<Step>,
    window: i64,
    modes: &'static [&'static str],
    exclusions: Vec<Exclusion>,
    breakdown: Dim,
    /// A query-wide `where`: `plan != "free"`.
    global: bool,
    range: Option<(i64, i64)>,
}

/// Mode sets the greedy model of SEMANTICS.md §1.3 covers (`strict_once`
/// is the declarative test's).
const GREEDY_MODES: [&[&str]; 6] = [
    &[],
    &["strict_increase"],
    &["strict_deduplication"],
    &["strict_order"],
    &["strict_order", "allow_reentry"],
    &["strict_order", "strict_deduplication", "strict_increase"],
];

impl FunnelQuery {
    fn json(&self) -> Json {
        let mut q = json!({"kind": "funnel", "steps": self.steps.iter().map(step_json).collect::<Vec<_>>(),
                           "window": self.window, "mode": self.modes, "time_range": range_json(self.range)});
        if !self.exclusions.is_empty() {
            q["exclusions"] = self
                .exclusions
                .iter()
                .map(|x| {
                    let mut j = json!({"event": NAMES[x.event], "between": [x.from, x.to]});
                    if x.pro {
                        j["where"] = json!({"prop": "plan", "op": "eq", "value": "pro"});
                    }
                    j
                })
                .collect();
        }
        match self.breakdown {
            Dim::None => {}
            Dim::Plan => q["breakdown"] = json!([{"event_prop": "plan"}]),
            Dim::Tier => q["breakdown"] = json!([{"user_prop": "tier"}]),
        }
        if self.global {
            q["where"] = json!({"prop": "plan", "op": "ne", "value": "free"});
        }
        q
    }

    fn mode(&self, m: &str) -> bool {
        self.modes.contains(&m)
    }
}

fn passes_global(q: &FunnelQuery, e: &Event) -> bool {
    !q.global || matches!(e.prop("plan"), Some(Value::Str(s)) if s != "free")
}

/// A level's chain in [`greedy_chain`]: start time, last time, the times of
/// its steps, the row of its step 1.
type Level = (i64, i64, Vec<i64>, usize);

/// The chain that gives a user's level, by SEMANTICS.md §1.3 as written
/// (one state per level, overwritten, no `strict_once`): the times of its
/// steps and the row of its step-1 event; `None` at level 0. `rows` are
/// the user's visible rows in the order they were sent.
fn greedy_chain(rows: &[Event], q: &FunnelQuery) -> Option<(Vec<i64>, usize)> {
    let n = q.steps.len();
    let strict_order = q.mode("strict_order");
    // §1.2: an entry (t, step, row) per step a row matches; under
    // strict_order an unrelated row gives (t, 0, row). Sorted by (t, step),
    // equal entries in the order sent.
    let mut entries: Vec<(i64, usize, usize)> = Vec::new();
    for (r, e) in rows.iter().enumerate() {
        let before = entries.len();
        for (i, s) in q.steps.iter().enumerate() {
            if matches(s, e) {
                entries.push((e.time, i + 1, r));
            }
        }
        if strict_order && entries.len() == before {
            entries.push((e.time, 0, r));
        }
    }
    entries.sort();
    let &(t0, _, r0) = entries.iter().find(|e| e.1 != 0)?;
    if !strict_order && n == 1 {
        return Some((vec![t0], r0));
    }
    let mut lv: Vec<Option<Level>> = vec![None; n];
    let top = |lv: &[Option<Level>]| {
        lv.iter()
            .rev()
            .flatten()
            .next()
            .map(|(_, _, times, row)| (times.clone(), *row))
    };
    let mut started = false;
    for (t, i, r) in entries {
        if i == 0 {
            if started {
                break;
            }
            continue;
        }
        if i == 1 {
            lv[0] = Some((t, t, vec![t], r));
            started = true;
            continue;
        }
        let k = i - 1;
        if q.mode("strict_deduplication") && lv[k].is_some() {
            return top(&lv);
        }
        if strict_order && started && lv[k - 1].is_none() {
            if q.mode("allow_reentry") {
                continue;
            }
            return top(&lv);
        }
        if let Some((first, last, times, row)) = lv[k - 1].clone() {
            if t <= first + q.window && (!q.mode("strict_increase") || last < t) {
                let mut times = times;
                times.push(t);
                lv[k] = Some((first, t, times, row));
                if k + 1 == n {
                    return top(&lv);
                }
            }
        }
    }
    top(&lv)
}

/// Users per level and, per step, the ms from step 1 of every user
/// reaching it.
struct FunnelAgg {
    levels: Vec<u64>,
    gaps: Vec<Vec<i64>>,
}

impl FunnelAgg {
    fn new(n: usize) -> Self {
        FunnelAgg {
            levels: vec![0; n + 1],
            gaps: vec![Vec::new(); n],
        }
    }

    fn add(&mut self, times: &[i64]) {
        self.levels[times.len()] += 1;
        for k in 1..times.len() {
            self.gaps[k].push(times[k] - times[0]);
        }
    }

    fn steps_json(&self) -> Json {
        let n = self.gaps.len();
        let users: Vec<u64> = (1..=n).map(|k| self.levels[k..].iter().sum()).collect();
        let ratio = |a: u64, b: u64| {
            if b == 0 {
                Json::Null
            } else {
                json!(a as f64 / b as f64)
            }
        };
        (0..n)
            .map(|i| {
                let (median, avg) = match &self.gaps[i] {
                    g if i == 0 || g.is_empty() => (Json::Null, Json::Null),
                    g => {
                        let mut v = g.clone();
                        v.sort_unstable();
                        let pos = 0.5 * (v.len() - 1) as f64;
                        let lo = pos.floor() as usize;
                        let hi = (lo + 1).min(v.len() - 1);
                        let median = v[lo] as f64 + (v[hi] - v[lo]) as f64 * (pos - lo as f64);
                        let avg = v.iter().sum::<i64>() as f64 / v.len() as f64;
                        (json!(median), json!(avg))
                    }
                };
                json!({
                    "users": users[i],
                    "conversion_from_previous": if i == 0 { ratio(users[0], users[0]) } else { ratio(users[i], users[i - 1]) },
                    "conversion_from_first": ratio(users[i], users[0]),
                    "median_ms_from_first": median,
                    "avg_ms_from_first": avg,
                })
            })
            .collect()
    }
}

/// The funnel's answer from [`greedy_chain`]: per step users, conversions,
/// median and mean ms from step 1 (on the chain that gave the level), and
/// the breakdown groups, largest first. A user is left out whole when an
/// exclusion's event lies strictly between the chain's steps `from` and
/// `to` (QUERY_API.md, README: "strictly between its step a and step b").
fn naive_funnel(events: &[Event], q: &FunnelQuery) -> Json {
    let n = q.steps.len();
    let mut all = FunnelAgg::new(n);
    let mut groups: BTreeMap<String, (Json, FunnelAgg)> = BTreeMap::new();
    for (user, rows) in by_user(events, q.range) {
        let rows: Vec<Event> = rows.into_iter().filter(|e| passes_global(q, e)).collect();
        let chain = greedy_chain(&rows, q);
        if q.modes.is_empty() {
            // The model against the declarative form (§1.4).
            let level = naive_level(&rows, &q.steps, q.window, false, false);
            assert_eq!(
                chain.as_ref().map_or(0, |c| c.0.len()),
                level,
                "model: {user} {rows:?}"
            );
        }
        let Some((times, first)) = chain else {
            continue;
        };
        let excluded = q.exclusions.iter().any(|x| {
            times.len() > x.to
                && rows.iter().any(|e| {
                    e.time > times[x.from]
                        && e.time < times[x.to]
                        && matches(&Step(x.event, x.pro), e)
                })
        });
        if excluded {
            continue;
        }
        all.add(&times);
        let key = match q.breakdown {
            Dim::None => continue,
            Dim::Plan => {
                json!({"plan": rows[first].prop("plan").map_or(Json::Null, |v| v.to_json())})
            }
            Dim::Tier => json!({"tier": tier(&user).map_or(Json::Null, |v| v.to_json())}),
        };
        groups
            .entry(key.to_string())
            .or_insert_with(|| (key, FunnelAgg::new(n)))
            .1
            .add(&times);
    }
    let mut out = json!({"steps": all.steps_json()});
    if q.breakdown != Dim::None {
        let mut groups: Vec<(String, Json, FunnelAgg)> =
            groups.into_iter().map(|(s, (k, a))| (s, k, a)).collect();
        let size = |a: &FunnelAgg| a.levels[1..].iter().sum::<u64>();
        groups.sort_by(|a, b| size(&b.2).cmp(&size(&a.2)).then_with(|| a.0.cmp(&b.0)));
        out["groups"] = groups
            .into_iter()
            .map(|(_, key, a)| json!({"key": key, "steps": a.steps_json()}))
            .collect();
    }
    out
}

/// Compares `got` with `want` where `want` has a field: numbers within
/// rounding, everything else exactly. Returns where they differ.
fn differs(got: &Json, want: &Json, at: &str) -> Option<String> {
    match (got, want) {
        (Json::Object(g), Json::Object(w)) => w
            .iter()
            .find_map(|(k, wv)| differs(g.get(k).unwrap_or(&Json::Null), wv, &format!("{at}.{k}"))),
        (Json::Array(g), Json::Array(w)) if g.len() == w.len() => g
            .iter()
            .zip(w)
            .enumerate()
            .find_map(|(i, (g, w))| differs(g, w, &format!("{at}[{i}]"))),
        _ if same_number(got, want) => None,
        _ => Some(format!("{at}: got {got}, want {want}")),
    }
}

/// Runs `q` over `events` in every layout and compares the answer with
/// [`naive_funnel`]. Returns the engines' scan statistics, per layout.
fn check_funnel(
    events: &[Event],
    q: &FunnelQuery,
    flush_at: usize,
) -> Result<Vec<(Layout, Arc<ScanStats>)>, TestCaseError> {
    let want = naive_funnel(events, q);
    let qj = q.json();
    let mut stats = Vec::new();
    for layout in layouts(flush_at) {
        let (_d, engine) = engine_in(events, layout);
        set_tiers(&engine);
        let st = Arc::new(ScanStats::default());
        let opts = QueryOptions {
            stats: Some(st.clone()),
            ..Default::default()
        };
        let got = engine.query_json(&qj, opts).unwrap();
        if q.breakdown == Dim::None {
            prop_assert!(
                got.get("groups").is_none(),
                "{:?}: groups without a breakdown",
                layout
            );
        }
        if let Some(d) = differs(&got, &want, "") {
            return Err(TestCaseError::fail(format!(
                "{layout:?}: {d}\nquery {qj}\ngot  {got}\nwant {want}"
            )));
        }
        stats.push((layout, st));
    }
    Ok(stats)
}

fn arb_window() -> impl Strategy<Value = i64> {
    prop_oneof![Just(0i64), 1i64..8, Just(1_000i64)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Default-mode funnels with unfiltered steps: the ones the fast paths
    /// take. A lone format 2 segment hands users over as per-event runs
    /// (Flushed, Compacted, and single-segment users of Split); without a
    /// range (or with one covering every event) users who did step 1 but
    /// never step 2's event are counted from the bitmaps. Dense times put
    /// events on window edges and at equal times. With a breakdown, the
    /// same funnels must leave both paths (a user property needs no event
    /// property, so only the funnel itself keeps it off the runs path).
    #[test]
    fn funnel_fast_paths_match_reference(
        events in proptest::collection::vec(dense_event(), 0..48),
        steps in proptest::collection::vec(0usize..4, 1..5),
        window in arb_window(),
        breakdown in prop_oneof![2 => Just(Dim::None), 1 => Just(Dim::Tier), 1 => Just(Dim::Plan)],
        range in dense_range(),
        flush_at in 0usize..48,
    ) {
        let q = FunnelQuery {
            steps: steps.iter().map(|&e| Step(e, false)).collect(),
            window,
            modes: &[],
            exclusions: Vec::new(),
            breakdown,
            global: false,
            range,
        };
        let stats = check_funnel(&events, &q, flush_at)?;
        // The bitmap path was taken: it counted exactly the users who did
        // step 1's event but never step 2's.
        let ever = |u: &str, e: usize| events.iter().any(|x| x.user == u && x.event == NAMES[e]);
        let stored = |e: usize| events.iter().any(|x| x.event == NAMES[e]);
        let bitmaps = breakdown == Dim::None && range.is_none_or(|(f, _)| f < DENSE);
        if let (true, Some(&second)) = (bitmaps, steps.get(1)) {
            if stored(second) {
                let users: BTreeSet<&str> = events.iter().map(|e| e.user.as_str()).collect();
                let only_first = users.iter().filter(|u| ever(u, steps[0]) && !ever(u, second)).count() as u64;
                for (layout, st) in stats {
                    prop_assert_eq!(st.users_from_bitmaps.load(Ordering::Relaxed), only_first, "{:?}", layout);
                }
            }
        }
    }

    /// Funnels with everything the fast paths leave to the merged scan:
    /// step filters, a query-wide `where`, breakdowns by event and user
    /// property, exclusions, and the modes of the greedy scan. Every
    /// number of the answer (users, conversions, median and mean time
    /// from step 1, groups) against the reference, in every layout.
    #[test]
    fn funnel_details_match_reference(
        events in proptest::collection::vec(dense_event(), 0..40),
        steps in proptest::collection::vec((0usize..4, any::<bool>()).prop_map(|(e, w)| Step(e, w)), 1..5),
        window in arb_window(),
        mode in 0usize..GREEDY_MODES.len(),
        exclusions in proptest::collection::vec((0usize..4, any::<bool>(), 0usize..4, 1usize..4), 0..3),
        breakdown in prop_oneof![Just(Dim::None), Just(Dim::Plan), Just(Dim::Tier)],
        global in any::<bool>(),
        range in dense_range(),
        flush_at in 0usize..40,
    ) {
        let n = steps.len();
        let q = FunnelQuery {
            steps,
            window,
            modes: GREEDY_MODES[mode],
            exclusions: exclusions
                .into_iter()
                .filter(|&(_, _, from, span)| from + span < n)
                .map(|(event, pro, from, span)| Exclusion { event, pro, from, to: from + span })
                .collect(),
            breakdown,
            global,
            range,
        };
        check_funnel(&events, &q, flush_at)?;
    }

    /// Exclusions alone, on unfiltered default-mode funnels: the shape
    /// that would take the per-event runs path if exclusions were ignored.
    /// Windows are never 0 here, so events can lie strictly between steps.
    #[test]
    fn funnel_exclusions_match_reference(
        events in proptest::collection::vec(dense_event(), 8..48),
        steps in prop_oneof![
            // Each event one step (the runs path's condition), or any steps.
            3 => (Just(vec![0usize, 1, 2, 3]).prop_shuffle(), 2usize..5).prop_map(|(v, n)| v[..n].to_vec()),
            1 => proptest::collection::vec(0usize..4, 2..5),
        ],
        window in prop_oneof![2i64..10, Just(1_000i64)],
        exclusions in proptest::collection::vec((0usize..4, 0usize..4, 1usize..4), 1..3),
        breakdown in prop_oneof![3 => Just(Dim::None), 1 => Just(Dim::Tier)],
        range in dense_range(),
        flush_at in 0usize..48,
    ) {
        let n = steps.len();
        let q = FunnelQuery {
            steps: steps.iter().map(|&e| Step(e, false)).collect(),
            window,
            modes: &[],
            exclusions: exclusions
                .into_iter()
                .map(|(event, from, span)| {
                    let from = from % (n - 1);
                    Exclusion { event, pro: false, from, to: (from + span).min(n - 1) }
                })
                .collect(),
            breakdown,
            global: false,
            range,
        };
        check_funnel(&events, &q, flush_at)?;
    }
}

/// The `events` kind's time buckets, straight from chrono-tz: minutes and
/// hours are real minutes and hours starting at a local clock minute or
/// hour (so at a fall-back the repeated hour's buckets repeat their labels),
/// days, weeks (from Monday) and months are local calendar units.
struct NaiveBuckets {
    zone: Tz,
    unit: &'static str,
}

impl NaiveBuckets {
    /// The bucket of instant `t`: (ordinal, label). Ordinals of adjacent
    /// buckets differ by one.
    fn of(&self, t: i64) -> (i64, String) {
        let local = self.zone.timestamp_millis_opt(t).unwrap().naive_local();
        let date = local.date();
        let days = date
            .signed_duration_since(chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
            .num_days();
        let real = |per: i64, fmt: &str| {
            let start = t - local.and_utc().timestamp_millis().rem_euclid(per);
            let label = self.zone.timestamp_millis_opt(start).unwrap().naive_local();
            (start.div_euclid(per), label.format(fmt).to_string())
        };
        match self.unit {
            "minute" => real(60_000, "%Y-%m-%dT%H:%M"),
            "hour" => real(3_600_000, "%Y-%m-%dT%H"),
            "day" => (days, date.format("%Y-%m-%d").to_string()),
            "week" => {
                let back = date.weekday().num_days_from_monday() as i64;
                let monday = date - chrono::Duration::days(back);
                (
                    (days - back).div_euclid(7),
                    monday.format("%Y-%m-%d").to_string(),
                )
            }
            "month" => (
                date.year() as i64 * 12 + date.month0() as i64,
                date.format("%Y-%m").to_string(),
            ),
            _ => (0, "total".to_string()),
        }
    }

    /// Every bucket from the one of `lo` to the one of `hi`, in order;
    /// `None` past 100,000 buckets (the most a query may have).
    fn axis(&self, lo: i64, hi: i64) -> Option<Vec<(i64, String)>> {
        let (first, last) = (self.of(lo).0, self.of(hi).0);
        if last - first >= 100_000 {
            return None;
        }
        // Walk instants: one step never skips a bucket (a minute, a real
        // hour, or half a day), and the ordinal says when a new one begins.
        let step = match self.unit {
            "minute" => 60_000,
            "hour" => 3_600_000,
            _ => 12 * 3_600_000,
        };
        let mut out = vec![self.of(lo)];
        let start = match self.unit {
            "minute" | "hour" => lo - lo.rem_euclid(step) + step,
            _ => lo,
        };
        let mut t = start;
        while out.last().unwrap().0 < last {
            let b = self.of(t.min(hi));
            if b.0 != out.last().unwrap().0 {
                out.push(b);
            }
            t += step;
        }
        Some(out)
    }
}

/// Events with a numeric `amount` (int or float, sometimes missing or a
/// string) besides the `plan` of [`event`].
fn event_with_amount() -> impl Strategy<Value = Event> {
    (
        event(),
        prop_oneof![
            Just(None),
            (-5i64..50).prop_map(|i| Some(Value::Int(i))),
            (-5.0f64..50.0).prop_map(|f| Some(Value::Float((f * 4.0).round() / 4.0))),
            Just(Some(Value::Str("7".into())))
        ],
    )
        .prop_map(|(mut e, amount)| {
            if let Some(a) = amount {
                e.props.push(("amount".into(), a));
            }
            e
        })
}

/// The naive value of one metric over some events.
fn naive_metric(rows: &[&Event], agg: &str) -> Json {
    let vals: Vec<f64> = rows
        .iter()
        .filter_map(|e| match e.prop("amount") {
            Some(Value::Int(i)) => Some(*i as f64),
            Some(Value::Float(f)) => Some(*f),
            _ => None,
        })
        .collect();
    let users: BTreeSet<&str> = rows.iter().map(|e| e.user.as_str()).collect();
    let f = |x: f64| json!(x);
    match agg {
        "count" => json!(rows.len()),
        "users" => json!(users.len()),
        "per_user" if users.is_empty() => Json::Null,
        "per_user" => f(rows.len() as f64 / users.len() as f64),
        "sum" => f(vals.iter().sum()),
        _ if vals.is_empty() => Json::Null,
        "avg" => f(vals.iter().sum::<f64>() / vals.len() as f64),
        "min" => f(vals.iter().copied().fold(f64::INFINITY, f64::min)),
        "max" => f(vals.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
        _ => {
            let mut v = vals.clone();
            v.sort_by(f64::total_cmp);
            let pos = 0.9 * (v.len() - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = (lo + 1).min(v.len() - 1);
            f(v[lo] + (v[hi] - v[lo]) * (pos - lo as f64))
        }
    }
}

fn same_number(a: &Json, b: &Json) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
        _ => a == b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn events_match_naive_buckets(
        events in proptest::collection::vec(event_with_amount(), 0..60),
        ev in 0usize..5,
        agg in 0usize..8,
        unit in 0usize..6,
        tz in 0usize..4,
        by_plan in any::<bool>(),
        with_where in any::<bool>(),
        range in arb_range(),
        flush_at in 0usize..60,
    ) {
        let tzname = ["UTC", "Asia/Shanghai", "America/New_York", "Asia/Kolkata"][tz];
        let unitname = ["minute", "hour", "day", "week", "month", "total"][unit];
        let aggname = ["count", "users", "per_user", "sum", "avg", "min", "max", "p90"][agg];
        let event_name = if ev == 4 { "$any" } else { NAMES[ev] };
        let mut metric = json!({"event": event_name, "agg": aggname});
        if agg >= 3 {
            metric["prop"] = json!("amount");
        }
        if with_where {
            metric["where"] = json!({"prop": "plan", "op": "ne", "value": "free"});
        }
        let mut q = json!({"kind": "events", "interval": unitname, "metrics": [metric],
                           "timezone": tzname, "time_range": range_json(range)});
        if by_plan {
            q["breakdown"] = json!([{"event_prop": "plan"}]);
        }
        let zone: Tz = tzname.parse().unwrap();
        let buckets = NaiveBuckets { zone, unit: unitname };
        let rows: Vec<&Event> = events.iter()
            .filter(|e| range.is_none_or(|(f, t)| e.time >= f && e.time < t))
            .filter(|e| event_name == "$any" || e.event == event_name)
            .filter(|e| !with_where || matches!(e.prop("plan"), Some(Value::Str(s)) if s != "free"))
            .collect();
        // The axis covers the range, or the stored events' span.
        let span = range.map(|(f, t)| (f, t - 1)).or_else(|| {
            let ts = events.iter().map(|e| e.time);
            Some((ts.clone().min()?, ts.max()?))
        });
        let axis = span.map(|(lo, hi)| buckets.axis(lo, hi));
        for layout in layouts(flush_at) {
            let (_d, engine) = engine_in(&events, layout);
            let got = match engine.query_json(&q, Default::default()) {
                Ok(g) => g,
                Err(e) => {
                    // Only a minute or hour axis from 1970 to 2024 is too long.
                    prop_assert!(matches!(axis, Some(None)), "{} for {}", e, q);
                    prop_assert!(e.to_string().contains("at most 100000"), "{}", e);
                    continue;
                }
            };
            let labels: Vec<&str> = got["buckets"].as_array().unwrap().iter()
                .map(|b| b.as_str().unwrap()).collect();
            // Bucket k is the k-th bucket of the axis; labels may repeat (the
            // minutes and hours of a fall-back night), so events are matched
            // to buckets by instant, not by label.
            let ords: Vec<i64> = match &axis {
                Some(None) => {
                    return Err(TestCaseError::fail(format!("{layout:?}: more than 100000 buckets for {q}")));
                }
                Some(Some(axis)) => {
                    prop_assert_eq!(labels.len(), axis.len(), "{:?}: axis of {}", layout, q);
                    for (k, (l, (_, want))) in labels.iter().zip(axis).enumerate() {
                        prop_assert_eq!(*l, want.as_str(), "{:?}: bucket {} of {}", layout, k, q);
                    }
                    axis.iter().map(|(o, _)| *o).collect()
                }
                None => vec![i64::MIN; labels.len()],
            };
            let check = |series: &Json, rows: &[&Event]| -> Result<(), TestCaseError> {
                let values = series["values"].as_array().unwrap();
                prop_assert_eq!(values.len(), ords.len());
                for ((&o, l), v) in ords.iter().zip(&labels).zip(values) {
                    let in_b: Vec<&Event> = rows.iter().copied().filter(|e| buckets.of(e.time).0 == o).collect();
                    let want = naive_metric(&in_b, aggname);
                    prop_assert!(same_number(v, &want), "{:?}: bucket {} got {} want {} query {}", layout, l, v, want, q);
                }
                let want = naive_metric(rows, aggname);
                prop_assert!(same_number(&series["total"], &want), "{:?}: total got {} want {} query {}", layout, series["total"], want, q);
                Ok(())
            };
            check(&got["series"][0], &rows)?;
            if by_plan {
                let mut keys: BTreeMap<String, Vec<&Event>> = BTreeMap::new();
                for e in &rows {
                    keys.entry(e.prop("plan").map_or(Json::Null, |v| v.to_json()).to_string()).or_default().push(e);
                }
                let groups = got["groups"].as_array().unwrap();
                prop_assert_eq!(groups.len(), keys.len(), "groups of {}", q);
                for g in groups {
                    let k = g["key"]["plan"].to_string();
                    let rows = keys.get(&k).cloned().unwrap_or_default();
                    prop_assert!(!rows.is_empty(), "group {} has no events", k);
                    check(&g["series"][0], &rows)?;
                }
            }
        }
    }

    #[test]
    fn distribution_matches_naive_per_user_values(
        events in proptest::collection::vec(event_with_amount(), 0..60),
        ev in 0usize..4,
        measure in 0usize..3,
        tz in 0usize..4,
        bounds in proptest::collection::btree_set(-3i64..8, 1..5),
        by_plan in any::<bool>(),
        with_where in any::<bool>(),
        range in arb_range(),
        flush_at in 0usize..60,
    ) {
        let tzname = ["UTC", "Asia/Shanghai", "America/New_York", "Asia/Kolkata"][tz];
        let bounds: Vec<i64> = bounds.into_iter().collect();
        let mut event = json!({"event": NAMES[ev]});
        if with_where {
            event["where"] = json!({"prop": "plan", "op": "ne", "value": "free"});
        }
        let measure_json = match measure {
            0 => json!("count"),
            1 => json!("days"),
            _ => json!({"sum": "amount"}),
        };
        let mut q = json!({"kind": "distribution", "event": event, "measure": measure_json,
                           "buckets": bounds, "timezone": tzname, "time_range": range_json(range)});
        if by_plan {
            q["breakdown"] = json!([{"event_prop": "plan"}]);
        }
        for layout in layouts(flush_at) {
            let (_d, engine) = engine_in(&events, layout);
            let got = engine.query_json(&q, Default::default()).unwrap();
            let zone: Tz = tzname.parse().unwrap();
            // Per user: the value, and the plan of their first matching event.
            let mut values: Vec<(f64, Json)> = Vec::new();
            for rows in by_user(&events, range).values() {
                let mut m: Vec<&Event> = rows.iter()
                    .filter(|e| e.event == NAMES[ev])
                    .filter(|e| !with_where || matches!(e.prop("plan"), Some(Value::Str(s)) if s != "free"))
                    .collect();
                if m.is_empty() {
                    continue;
                }
                m.sort_by_key(|e| e.time);
                let v = match measure {
                    0 => m.len() as f64,
                    1 => m.iter().map(|e| zone.timestamp_millis_opt(e.time).unwrap().date_naive())
                            .collect::<BTreeSet<_>>().len() as f64,
                    _ => m.iter().filter_map(|e| match e.prop("amount") {
                            Some(Value::Int(i)) => Some(*i as f64),
                            Some(Value::Float(f)) => Some(*f),
                            _ => None,
                        }).sum(),
                };
                // Ties at the first time keep the order the events were sent in.
                let first_t = m[0].time;
                let first = rows.iter().find(|e| e.time == first_t && m.iter().any(|x| std::ptr::eq(*x, *e))).unwrap();
                values.push((v, first.prop("plan").map_or(Json::Null, |v| v.to_json())));
            }
            let check = |got: &Json, vals: &[f64]| -> Result<(), TestCaseError> {
                let mut v = vals.to_vec();
                v.sort_by(f64::total_cmp);
                let below = v.iter().filter(|&&x| x < bounds[0] as f64).count();
                prop_assert_eq!(got["below"].as_u64(), Some(below as u64), "{}", q);
                prop_assert_eq!(got["users"].as_u64(), Some((v.len() - below) as u64), "{}", q);
                for (i, b) in got["buckets"].as_array().unwrap().iter().enumerate() {
                    let lo = bounds[i] as f64;
                    let hi = bounds.get(i + 1).map(|&h| h as f64);
                    let n = v.iter().filter(|&&x| x >= lo && hi.is_none_or(|h| x < h)).count();
                    prop_assert_eq!(b["users"].as_u64(), Some(n as u64), "bucket {} of {}", i, q);
                }
                if v.is_empty() {
                    prop_assert!(got["median"].is_null() && got["avg"].is_null());
                } else {
                    let avg = v.iter().sum::<f64>() / v.len() as f64;
                    let pos = 0.5 * (v.len() - 1) as f64;
                    let lo = pos.floor() as usize;
                    let hi = (lo + 1).min(v.len() - 1);
                    let median = v[lo] + (v[hi] - v[lo]) * (pos - lo as f64);
                    prop_assert!(same_number(&got["avg"], &json!(avg)), "avg {} vs {} in {}", got["avg"], avg, q);
                    prop_assert!(same_number(&got["median"], &json!(median)), "median {} vs {}", got["median"], median);
                    prop_assert!(same_number(&got["min"], &json!(v[0])));
                    prop_assert!(same_number(&got["max"], &json!(v[v.len() - 1])));
                }
                Ok(())
            };
            let all: Vec<f64> = values.iter().map(|(v, _)| *v).collect();
            check(&got, &all)?;
            if by_plan {
                let mut keys: BTreeMap<String, Vec<f64>> = BTreeMap::new();
                for (v, k) in &values {
                    keys.entry(k.to_string()).or_default().push(*v);
                }
                let groups = got["groups"].as_array().unwrap();
                prop_assert_eq!(groups.len(), keys.len());
                for g in groups {
                    let vals = keys.get(&g["key"]["plan"].to_string()).cloned().unwrap_or_default();
                    check(g, &vals)?;
                }
            }
        }
    }
    #[test]
    fn users_match_naive_conditions(
        events in proptest::collection::vec(event(), 0..60),
        did in proptest::collection::vec((0usize..4, 0usize..3, 0u64..3, 0usize..5), 0..3),
        did_not in proptest::collection::vec((0usize..4, 0usize..5), 0..2),
        range in arb_range(),
        flush_at in 0usize..60,
    ) {
        // Short windows start on event times often (their start is inclusive).
        let windows = [None, Some(3i64), Some(10), Some(1_000_000), Some(86_400_000)];
        let ops = ["gte", "eq", "lt"];
        let window_json = |w: Option<i64>| w.map_or(Json::Null, |w| json!(w));
        let did_json: Vec<Json> = did.iter().map(|&(e, op, v, w)| json!({
            "event": NAMES[e], "count": {"op": ops[op], "value": v}, "within": window_json(windows[w])
        })).collect();
        let not_json: Vec<Json> = did_not.iter().map(|&(e, w)| json!({
            "event": NAMES[e], "within": window_json(windows[w])
        })).collect();
        let q = json!({"kind": "users", "did": did_json, "did_not": not_json,
                       "time_range": range_json(range), "return_users": 100});
        for layout in layouts(flush_at) {
            let (_d, engine) = engine_in(&events, layout);
            let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
            let got = engine.query_json(&q, Default::default()).unwrap();
            // Windows end at the range's end, or now (all generated times are long past).
            let end = range.map_or(before, |r| r.1);
            let mut want: BTreeSet<String> = BTreeSet::new();
            for (user, rows) in by_user(&events, range) {
                let count = |e: usize, w: Option<i64>| rows.iter()
                    .filter(|x| x.event == NAMES[e] && w.is_none_or(|w| x.time >= end - w))
                    .count() as u64;
                let ok_did = did.iter().all(|&(e, op, v, w)| {
                    let n = count(e, windows[w]);
                    match ops[op] { "gte" => n >= v, "eq" => n == v, _ => n < v }
                });
                let ok_not = did_not.iter().all(|&(e, w)| count(e, windows[w]) == 0);
                if ok_did && ok_not {
                    want.insert(user);
                }
            }
            prop_assert_eq!(got["users"].as_u64(), Some(want.len() as u64), "{}", q);
            let ids: BTreeSet<String> = got["ids"].as_array().unwrap().iter()
                .map(|v| v.as_str().unwrap().to_string()).collect();
            prop_assert_eq!(ids, want);
        }
    }

    /// Queries that never read event times, over all time: in a layout
    /// with one segment per shard and nothing in the memtable (Flushed,
    /// FlushedV1, Compacted) they scan without decoding times. `events`
    /// totals, distributions of counts and sums, `users` without `within`;
    /// with a time range, the same queries must read times after all.
    #[test]
    fn time_free_scans_match_reference(
        events in proptest::collection::vec(event_with_amount(), 0..60),
        ev in 0usize..4,
        bounds in proptest::collection::btree_set(-3i64..8, 1..5),
        did in proptest::collection::vec((0usize..4, 0usize..3, 0u64..3), 0..3),
        did_not in proptest::collection::vec(0usize..4, 0..2),
        range in arb_range(),
        flush_at in 0usize..60,
    ) {
        let visible: Vec<Event> = by_user(&events, range).into_values().flatten().collect();
        let aggs = ["count", "users", "per_user", "sum"];
        let metric = |name: &str, agg: &str| {
            let mut m = json!({"event": name, "agg": agg});
            if agg == "sum" {
                m["prop"] = json!("amount");
            }
            m
        };
        let trend = json!({"kind": "events", "interval": "total", "breakdown": [{"event_prop": "plan"}],
                           "time_range": range_json(range),
                           "metrics": aggs.iter().map(|a| metric(NAMES[ev], a))
                               .chain(aggs.iter().map(|a| metric("$any", a))).collect::<Vec<_>>()});
        let ops = ["gte", "eq", "lt"];
        let cohort = json!({"kind": "users", "return_users": 100, "time_range": range_json(range),
            "did": did.iter().map(|&(e, op, v)| json!({"event": NAMES[e], "count": {"op": ops[op], "value": v}})).collect::<Vec<_>>(),
            "did_not": did_not.iter().map(|&e| json!({"event": NAMES[e]})).collect::<Vec<_>>()});
        let amount = |e: &Event| match e.prop("amount") {
            Some(Value::Int(i)) => Some(*i as f64),
            Some(Value::Float(f)) => Some(*f),
            _ => None,
        };
        // The naive answers.
        let of = |name: &str| -> Vec<&Event> { visible.iter().filter(|e| name == "$any" || e.event == name).collect() };
        let mut plans: BTreeMap<String, Vec<&Event>> = BTreeMap::new();
        for e in &visible {
            plans.entry(e.prop("plan").map_or(Json::Null, |v| v.to_json()).to_string()).or_default().push(e);
        }
        let users = by_user(&events, range);
        let per_user = |f: &dyn Fn(&[Event]) -> f64| -> Vec<f64> {
            users.values().filter(|r| r.iter().any(|e| e.event == NAMES[ev])).map(|r| f(r)).collect()
        };
        let counts = per_user(&|r| r.iter().filter(|e| e.event == NAMES[ev]).count() as f64);
        let sums = per_user(&|r| r.iter().filter(|e| e.event == NAMES[ev]).filter_map(amount).sum());
        let members: BTreeSet<String> = users.iter().filter(|(_, rows)| {
            let n = |e: usize| rows.iter().filter(|x| x.event == NAMES[e]).count() as u64;
            did.iter().all(|&(e, op, v)| match ops[op] { "gte" => n(e) >= v, "eq" => n(e) == v, _ => n(e) < v })
                && did_not.iter().all(|&e| n(e) == 0)
        }).map(|(u, _)| u.clone()).collect();
        for layout in layouts(flush_at) {
            let (_d, engine) = engine_in(&events, layout);
            let got = engine.query_json(&trend, Default::default()).unwrap();
            for (i, a) in aggs.iter().enumerate() {
                for (k, name) in [NAMES[ev], "$any"].into_iter().enumerate() {
                    let s = &got["series"][k * aggs.len() + i];
                    let want = naive_metric(&of(name), a);
                    prop_assert!(same_number(&s["total"], &want), "{:?}: {} {} got {} want {}", layout, name, a, s["total"], want);
                }
            }
            let groups = got["groups"].as_array().unwrap();
            prop_assert_eq!(groups.len(), plans.len(), "{:?}: groups", layout);
            for g in groups {
                let rows = plans.get(&g["key"]["plan"].to_string()).cloned().unwrap_or_default();
                for (i, a) in aggs.iter().enumerate() {
                    for (k, name) in [NAMES[ev], "$any"].into_iter().enumerate() {
                        let rows: Vec<&Event> = rows.iter().copied().filter(|e| name == "$any" || e.event == name).collect();
                        let want = naive_metric(&rows, a);
                        let s = &g["series"][k * aggs.len() + i]["total"];
                        prop_assert!(same_number(s, &want), "{:?}: group {} {} {} got {} want {}", layout, g["key"], name, a, s, want);
                    }
                }
            }
            for (measure, vals) in [(json!("count"), &counts), (json!({"sum": "amount"}), &sums)] {
                let q = json!({"kind": "distribution", "event": NAMES[ev], "measure": measure, "buckets": bounds,
                               "time_range": range_json(range)});
                let got = engine.query_json(&q, Default::default()).unwrap();
                let below = vals.iter().filter(|&&v| v < *bounds.first().unwrap() as f64).count();
                prop_assert_eq!(got["below"].as_u64(), Some(below as u64), "{:?}: {}", layout, q);
                prop_assert_eq!(got["users"].as_u64(), Some((vals.len() - below) as u64), "{:?}: {}", layout, q);
                let b: Vec<i64> = bounds.iter().copied().collect();
                for (i, bucket) in got["buckets"].as_array().unwrap().iter().enumerate() {
                    let n = vals.iter().filter(|&&v| v >= b[i] as f64 && b.get(i + 1).is_none_or(|&h| v < h as f64)).count();
                    prop_assert_eq!(bucket["users"].as_u64(), Some(n as u64), "{:?}: bucket {} of {}", layout, i, q);
                }
            }
            let got = engine.query_json(&cohort, Default::default()).unwrap();
            let ids: BTreeSet<String> = got["ids"].as_array().unwrap().iter()
                .map(|v| v.as_str().unwrap().to_string()).collect();
            prop_assert_eq!(&ids, &members, "{:?}: {}", layout, cohort);
        }
    }
}

/// `within` reaches back from the end of the range, and its start is
/// inclusive: an event exactly `within` before the end counts, one a
/// millisecond earlier does not; the end itself is outside the range.
#[test]
fn users_within_includes_its_start() {
    let end = 1_700_000_000_000i64;
    let at = |user: &str, time: i64| Event {
        user: user.into(),
        event: "login".into(),
        time,
        props: Vec::new(),
    };
    let events = vec![
        at("on_start", end - 10),
        at("before_start", end - 11),
        at("before_start", end - 1_000),
        at("last_ms", end - 1),
        at("at_end", end),
        at("at_end", end - 500),
    ];
    for layout in layouts(2) {
        let (_d, engine) = engine_in(&events, layout);
        let ids = |q: Json| -> Vec<String> {
            let r = engine.query_json(&q, Default::default()).unwrap();
            let mut ids: Vec<String> = r["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        };
        let range = json!({"from": end - 2_000, "to": end});
        let did = ids(
            json!({"kind": "users", "time_range": range, "return_users": 10,
            "did": [{"event": "login", "count": {"op": "gte", "value": 1}, "within": 10}]}),
        );
        assert_eq!(did, ["last_ms", "on_start"], "{layout:?}");
        let did_not = ids(
            json!({"kind": "users", "time_range": range, "return_users": 10,
            "did_not": [{"event": "login", "within": {"value": 10, "unit": "millisecond"}}]}),
        );
        assert_eq!(did_not, ["at_end", "before_start"], "{layout:?}");
    }
}
