//! Property tests for the session-based kinds (`sessions`, `paths`,
//! `heatmap`): on random event streams full of equal times, ignored events
//! and gaps exactly at the timeout, Footprint's answers (through ingest,
//! storage and the parallel executor, in every layout of `layouts`) equal
//! a deliberately naive reference written here: sessionizing with a plain
//! loop, counting paths with maps, binning clicks one by one.

use std::collections::{BTreeMap, BTreeSet};

use footprint_engine::{Event, Value};
use proptest::prelude::*;
use serde_json::{json, Value as Json};

mod layouts;
use layouts::{load, LAYOUTS};

const NAMES: [&str; 5] = ["$pageview", "click", "$identify", "signup", "$autocapture"];
/// 2024-06-01T23:59:59.900Z: the streams cross a UTC midnight.
const BASE: i64 = 1_717_286_399_900;

fn event() -> impl Strategy<Value = Event> {
    (
        0u8..5,
        0usize..NAMES.len(),
        // Steps of 5 ms (so gaps equal to a timeout are common) plus ties.
        (0i64..40, 0i64..2),
        prop::option::of(prop_oneof![Just("/a"), Just("/b"), Just("/c")]),
        prop::option::of(prop_oneof![Just("s1"), Just("s2")]),
        prop::option::of((-5i64..1200, 0i64..300, -1i64..1001)),
    )
        .prop_map(|(u, e, (k, d), page, sid, xy)| {
            let mut props = Vec::new();
            if let Some(p) = page {
                props.push(("page".to_string(), Value::Str(p.into())));
            }
            if let Some(s) = sid {
                props.push(("sid".to_string(), Value::Str(s.into())));
            }
            if let Some((x, y, w)) = xy {
                props.push(("x".to_string(), Value::Int(x)));
                props.push(("y".to_string(), Value::Int(y)));
                props.push(("w".to_string(), Value::Int(w)));
            }
            Event {
                user: format!("u{u}"),
                event: NAMES[e].into(),
                time: BASE + k * 5 + d,
                props,
            }
        })
}

/// Session rules as the query states them.
#[derive(Debug, Clone)]
struct Rules {
    timeout: i64,
    max_length: Option<i64>,
    /// 0 inactivity, 1 midnight, 2 by `sid`.
    split: u8,
    /// `None`: the default list.
    ignore: Option<Vec<&'static str>>,
    /// Keep only events whose page is not "/b" (a missing page fails `ne`).
    where_not_b: bool,
    range: Option<(i64, i64)>,
}

fn rules() -> impl Strategy<Value = Rules> {
    (
        prop_oneof![Just(5i64), Just(10), Just(15)],
        prop::option::of(prop_oneof![Just(20i64), Just(35)]),
        0u8..3,
        prop_oneof![
            Just(None),
            Just(Some(vec![])),
            Just(Some(vec!["click"])),
            Just(Some(vec!["$identify", "signup"]))
        ],
        any::<bool>(),
        prop::option::of((0i64..100, 100i64..220)),
    )
        .prop_map(
            |(timeout, max_length, split, ignore, where_not_b, r)| Rules {
                timeout,
                max_length,
                split,
                ignore,
                where_not_b,
                range: r.map(|(a, b)| (BASE + a, BASE + b)),
            },
        )
}

impl Rules {
    fn json(&self, kind: &str) -> Json {
        let mut q = json!({"kind": kind, "timeout": self.timeout});
        if let Some(m) = self.max_length {
            q["max_length"] = json!(m);
        }
        q["split"] = match self.split {
            0 => json!("inactivity"),
            1 => json!("midnight"),
            _ => json!({"prop": "sid"}),
        };
        if let Some(ig) = &self.ignore {
            q["ignore_events"] = json!(ig);
        }
        if self.where_not_b {
            q["where"] = json!({"prop": "page", "op": "ne", "value": "/b"});
        }
        if let Some((a, b)) = self.range {
            q["time_range"] = json!({"from": a, "to": b});
        }
        q
    }

    fn ignored(&self, name: &str) -> bool {
        match &self.ignore {
            None => ["$identify", "$create_alias", "$set", "$merge_dangerously"].contains(&name),
            Some(l) => l.contains(&name),
        }
    }

    fn visible(&self, e: &Event) -> bool {
        self.range.is_none_or(|(a, b)| a <= e.time && e.time < b)
            && (!self.where_not_b || prop(e, "page").is_some_and(|p| p != "/b"))
    }
}

fn prop<'e>(e: &'e Event, name: &str) -> Option<&'e str> {
    e.props
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| match v {
            Value::Str(s) => Some(s.as_str()),
            _ => None,
        })
}

fn int(e: &Event, name: &str) -> Option<i64> {
    e.props
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| match v {
            Value::Int(i) => Some(*i),
            _ => None,
        })
}

/// The reference sessionizer: per user, visible events in (time, list
/// order), ignored ones skipped, cut by the rules one by one.
fn sessionize<'e>(r: &Rules, events: &'e [Event]) -> Vec<(String, Vec<&'e Event>)> {
    let mut users: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in events {
        if r.visible(e) && !r.ignored(&e.event) {
            users.entry(&e.user).or_default().push(e);
        }
    }
    let mut out = Vec::new();
    for (user, mut evs) in users {
        evs.sort_by_key(|e| e.time); // stable: ties keep list order
        let mut cur: Vec<&Event> = Vec::new();
        let mut last_sid: Option<&str> = None;
        for e in evs {
            let mut new = cur.is_empty();
            if let (Some(first), Some(prev)) = (cur.first(), cur.last()) {
                let day = |t: i64| t.div_euclid(86_400_000);
                if e.time - prev.time >= r.timeout
                    || e.time - first.time >= r.max_length.unwrap_or(86_400_000)
                    || (r.split == 1 && day(e.time) != day(prev.time))
                {
                    new = true;
                }
                if r.split == 2 {
                    if let (Some(s), Some(l)) = (prop(e, "sid"), last_sid) {
                        if s != l {
                            new = true;
                        }
                    }
                }
            }
            if new && !cur.is_empty() {
                out.push((user.to_owned(), std::mem::take(&mut cur)));
                last_sid = None;
            }
            if let Some(s) = prop(e, "sid") {
                last_sid = Some(s);
            }
            cur.push(e);
        }
        if !cur.is_empty() {
            out.push((user.to_owned(), cur));
        }
    }
    out
}

fn ratio(a: f64, b: f64) -> Json {
    if b == 0.0 {
        Json::Null
    } else {
        json!(a / b)
    }
}

fn median(mut v: Vec<i64>) -> Json {
    if v.is_empty() {
        return Json::Null;
    }
    v.sort();
    let pos = 0.5 * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    json!(v[lo] as f64 + (v[hi] - v[lo]) as f64 * (pos - lo as f64))
}

/// Summary of one session.
struct Summary {
    user: String,
    /// The `page` of its first event (the breakdown key).
    landing: Option<String>,
    start: i64,
    duration: i64,
    events: usize,
    pages: usize,
    entry: Option<String>,
    exit: Option<String>,
    bounce: bool,
}

fn summaries(r: &Rules, events: &[Event], bounce_under: i64) -> Vec<Summary> {
    sessionize(r, events)
        .into_iter()
        .map(|(user, s)| {
            let pages: Vec<&&Event> = s.iter().filter(|e| e.event == "$pageview").collect();
            let duration = s[s.len() - 1].time - s[0].time;
            Summary {
                user,
                landing: prop(s[0], "page").map(str::to_owned),
                start: s[0].time,
                duration,
                events: s.len(),
                pages: pages.len(),
                entry: pages
                    .first()
                    .and_then(|e| prop(e, "page"))
                    .map(str::to_owned),
                exit: pages
                    .last()
                    .and_then(|e| prop(e, "page"))
                    .map(str::to_owned),
                bounce: pages.len() == 1 && duration < bounce_under,
            }
        })
        .collect()
}

fn stats(ss: &[&Summary]) -> Json {
    let n = ss.len() as f64;
    let users: BTreeSet<&str> = ss.iter().map(|s| s.user.as_str()).collect();
    let paged = ss.iter().filter(|s| s.pages > 0).count() as f64;
    json!({
        "sessions": ss.len(),
        "users": users.len(),
        "avg_duration_ms": ratio(ss.iter().map(|s| s.duration as f64).sum(), n),
        "median_duration_ms": median(ss.iter().map(|s| s.duration).collect()),
        "events_per_session": ratio(ss.iter().map(|s| s.events as f64).sum(), n),
        "bounce_rate": ratio(ss.iter().filter(|s| s.bounce).count() as f64, paged),
        "sessions_per_user": ratio(n, users.len() as f64),
    })
}

fn naive_sessions(r: &Rules, events: &[Event], bounce_under: i64, top: usize) -> Json {
    let ss = summaries(r, events, bounce_under);
    let day = |t: i64| t.div_euclid(86_400_000);
    let days: Vec<i64> = match r.range {
        Some((a, b)) => (day(a)..=day(b - 1)).collect(),
        None => match (
            ss.iter().map(|s| day(s.start)).min(),
            ss.iter().map(|s| day(s.start)).max(),
        ) {
            (Some(a), Some(b)) => (a..=b).collect(),
            _ => Vec::new(),
        },
    };
    let per: Vec<Json> = days
        .iter()
        .map(|&d| stats(&ss.iter().filter(|s| day(s.start) == d).collect::<Vec<_>>()))
        .collect();
    // Groups by the first event's page: each group's total and per-day
    // sessions and users.
    let mut groups: BTreeMap<Option<&str>, Vec<&Summary>> = BTreeMap::new();
    for s in &ss {
        groups.entry(s.landing.as_deref()).or_default().push(s);
    }
    let groups: Vec<Json> = groups
        .into_iter()
        .map(|(k, g)| {
            let per_day = |f: &dyn Fn(&[&Summary]) -> usize| -> Vec<usize> {
                days.iter()
                    .map(|&d| {
                        f(&g.iter()
                            .copied()
                            .filter(|s| day(s.start) == d)
                            .collect::<Vec<_>>())
                    })
                    .collect()
            };
            json!({
                "key": {"page": k},
                "total": stats(&g),
                "sessions": per_day(&|v| v.len()),
                "users": per_day(&|v| v.iter().map(|s| &s.user).collect::<BTreeSet<_>>().len()),
            })
        })
        .collect();
    let col = |k: &str| per.iter().map(|p| p[k].clone()).collect::<Vec<_>>();
    let bounds = [
        0, 10_000, 30_000, 60_000, 180_000, 600_000, 1_800_000, 3_600_000, 10_800_000,
    ];
    let histogram: Vec<Json> = bounds
        .iter()
        .enumerate()
        .map(|(i, &lo)| {
            let hi = bounds.get(i + 1).copied().unwrap_or(i64::MAX);
            json!({"from_ms": lo, "sessions": ss.iter().filter(|s| s.duration >= lo && s.duration < hi).count()})
        })
        .collect();
    let mut entry: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut exit: BTreeMap<&str, u64> = BTreeMap::new();
    for s in &ss {
        if let Some(e) = &s.entry {
            let x = entry.entry(e).or_default();
            x.0 += 1;
            x.1 += u64::from(s.bounce);
        }
        if let Some(e) = &s.exit {
            *exit.entry(e).or_default() += 1;
        }
    }
    let mut entry: Vec<_> = entry.into_iter().collect();
    entry.sort_by_key(|(v, (n, _))| (std::cmp::Reverse(*n), *v));
    let mut exit: Vec<_> = exit.into_iter().collect();
    exit.sort_by_key(|(v, n)| (std::cmp::Reverse(*n), *v));
    json!({
        "sessions": col("sessions"),
        "users": col("users"),
        "avg_duration_ms": col("avg_duration_ms"),
        "median_duration_ms": col("median_duration_ms"),
        "events_per_session": col("events_per_session"),
        "bounce_rate": col("bounce_rate"),
        "total": stats(&ss.iter().collect::<Vec<_>>()),
        "duration_histogram": histogram,
        "entry": entry.iter().take(top).map(|(v, (n, b))| json!({"value": v, "sessions": n, "bounce_rate": *b as f64 / *n as f64})).collect::<Vec<_>>(),
        "exit": exit.iter().take(top).map(|(v, n)| json!({"value": v, "sessions": n})).collect::<Vec<_>>(),
        "groups": groups,
    })
}

/// `None` when `got` has `want` (objects over `want`'s keys, floats within 1e-9).
fn differs(want: &Json, got: &Json, at: &str) -> Option<String> {
    match (want, got) {
        (Json::Object(w), Json::Object(g)) => w.iter().find_map(|(k, v)| match g.get(k) {
            None => Some(format!("{at}.{k}: missing")),
            Some(x) => differs(v, x, &format!("{at}.{k}")),
        }),
        (Json::Array(w), Json::Array(g)) if w.len() == g.len() => w
            .iter()
            .zip(g)
            .enumerate()
            .find_map(|(i, (a, b))| differs(a, b, &format!("{at}[{i}]"))),
        (Json::Number(a), Json::Number(b)) => {
            let (x, y) = (
                a.as_f64().unwrap_or(f64::NAN),
                b.as_f64().unwrap_or(f64::NAN),
            );
            ((x - y).abs() > 1e-9 * x.abs().max(y.abs()) + 1e-12)
                .then(|| format!("{at}: want {want} got {got}"))
        }
        _ => (want != got).then(|| format!("{at}: want {want} got {got}")),
    }
}

fn check(events: &[Event], q: &Json, want: &Json) -> Result<(), TestCaseError> {
    let mut want = want.clone();
    let groups = want.as_object_mut().and_then(|w| w.remove("groups"));
    for layout in LAYOUTS {
        let (_dir, engine) = load(events, layout);
        let got = engine
            .query_json(q, Default::default())
            .map_err(|e| TestCaseError::fail(format!("{layout:?}: {e} for {q}")))?;
        if let Some(Json::Array(groups)) = &groups {
            let got_groups = got["groups"].as_array().cloned().unwrap_or_default();
            prop_assert_eq!(
                groups.len(),
                got_groups.len(),
                "{:?}: groups of {}",
                layout,
                got
            );
            for g in groups {
                let h = got_groups.iter().find(|h| h["key"] == g["key"]);
                let d = h.map_or_else(
                    || Some(format!("group {} missing", g["key"])),
                    |h| differs(g, h, "groups"),
                );
                if let Some(d) = d {
                    return Err(TestCaseError::fail(format!(
                        "{layout:?}: {d}\nquery {q}\ngot {got}"
                    )));
                }
            }
        }
        let want = &want;
        if let Some(d) = differs(want, &got, "") {
            return Err(TestCaseError::fail(format!(
                "{layout:?}: {d}\nquery {q}\nwant {want}\ngot {got}"
            )));
        }
    }
    Ok(())
}

/// Labels a session's events: `$pageview` by its page, others by name.
fn labels(s: &[&Event]) -> Vec<String> {
    s.iter()
        .map(|e| match (e.event.as_str(), prop(e, "page")) {
            ("$pageview", Some(p)) => p.to_owned(),
            (name, _) => name.to_owned(),
        })
        .collect()
}

/// The reference paths: sessions' label lists, cut at the anchor,
/// collapsed, kept to `steps`, then merged into `$other` step by step and
/// counted with maps.
fn naive_paths(
    r: &Rules,
    events: &[Event],
    anchor: u8,
    steps: usize,
    collapse: bool,
    users: bool,
    top: usize,
) -> Json {
    let mut paths: Vec<(String, Vec<String>)> = Vec::new();
    for (user, s) in sessionize(r, events) {
        let hit = s.iter().position(|e| e.event == "signup");
        let seq: &[&Event] = match (anchor, hit) {
            (0, _) => &s,
            (1, Some(h)) => &s[h..],
            (2, Some(h)) => &s[..=h],
            _ => continue,
        };
        let mut labs = labels(seq);
        if collapse {
            labs.dedup();
        }
        let labs = if anchor == 2 {
            labs[labs.len().saturating_sub(steps)..].to_vec()
        } else {
            labs.into_iter().take(steps).collect()
        };
        paths.push((user, labs));
    }
    let measure = |members: &[usize], paths: &[(String, Vec<String>)]| -> u64 {
        if users {
            members
                .iter()
                .map(|&i| &paths[i].0)
                .collect::<BTreeSet<_>>()
                .len() as u64
        } else {
            members.len() as u64
        }
    };
    for k in 0..steps {
        let mut at: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, (_, p)) in paths.iter().enumerate() {
            if let Some(l) = p.get(k) {
                at.entry(l.clone()).or_default().push(i);
            }
        }
        let mut ranked: Vec<(u64, String)> = at
            .iter()
            .map(|(l, m)| (measure(m, &paths), l.clone()))
            .collect();
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let keep: BTreeSet<String> = ranked.into_iter().take(top).map(|x| x.1).collect();
        for (_, p) in paths.iter_mut() {
            if let Some(l) = p.get_mut(k) {
                if !keep.contains(l) {
                    *l = "$other".into();
                }
            }
        }
    }
    let mut nodes: BTreeMap<(usize, String), Vec<usize>> = BTreeMap::new();
    let mut drops: BTreeMap<(usize, String), Vec<usize>> = BTreeMap::new();
    let mut links: BTreeMap<(usize, String, String), Vec<usize>> = BTreeMap::new();
    for (i, (_, p)) in paths.iter().enumerate() {
        for (k, l) in p.iter().enumerate() {
            nodes.entry((k + 1, l.clone())).or_default().push(i);
            if let Some(n) = p.get(k + 1) {
                links
                    .entry((k + 1, l.clone(), n.clone()))
                    .or_default()
                    .push(i);
            }
        }
        if p.len() < steps {
            drops
                .entry((p.len(), p[p.len() - 1].clone()))
                .or_default()
                .push(i);
        }
    }
    let mut node_rows: Vec<(usize, u64, String, u64)> = nodes
        .iter()
        .map(|((s, l), m)| {
            let d = drops
                .get(&(*s, l.clone()))
                .map_or(0, |d| measure(d, &paths));
            (*s, measure(m, &paths), l.clone(), d)
        })
        .collect();
    node_rows.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(b.1.cmp(&a.1))
            .then_with(|| a.2.cmp(&b.2))
    });
    let mut link_rows: Vec<(usize, u64, String, String)> = links
        .iter()
        .map(|((s, a, b), m)| (*s, measure(m, &paths), a.clone(), b.clone()))
        .collect();
    link_rows.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(b.1.cmp(&a.1))
            .then_with(|| a.2.cmp(&b.2))
            .then_with(|| a.3.cmp(&b.3))
    });
    let all: Vec<usize> = (0..paths.len()).collect();
    json!({
        "paths": measure(&all, &paths),
        "nodes": node_rows.iter().map(|(s, c, l, d)| json!({"step": s, "label": l, "count": c, "dropoff": d})).collect::<Vec<_>>(),
        "links": link_rows.iter().map(|(s, c, a, b)| json!({"from": [s, a], "to": [s + 1, b], "count": c})).collect::<Vec<_>>(),
    })
}

fn naive_heatmap(r: &Rules, events: &[Event], grid: bool, limit: usize) -> Json {
    let clicks: Vec<&Event> = events
        .iter()
        .filter(|e| r.visible(e) && e.event == "$autocapture")
        .collect();
    if grid {
        let (cols, row_px) = (7i64, 40i64);
        let mut cells: BTreeMap<(i64, i64), (u64, BTreeSet<&str>)> = BTreeMap::new();
        let mut skipped = 0;
        for e in &clicks {
            match (int(e, "x"), int(e, "y"), int(e, "w")) {
                (Some(x), Some(y), Some(w)) if x >= 0 && y >= 0 && w > 0 => {
                    let c = cells
                        .entry((y / row_px, (x * cols / w).min(cols - 1)))
                        .or_default();
                    c.0 += 1;
                    c.1.insert(&e.user);
                }
                _ => skipped += 1,
            }
        }
        return json!({
            "cells": cells.iter().map(|((row, col), (n, u))| json!({"col": col, "row": row, "clicks": n, "users": u.len()})).collect::<Vec<_>>(),
            "skipped": skipped,
        });
    }
    let mut by: BTreeMap<&str, (u64, BTreeSet<&str>)> = BTreeMap::new();
    for e in &clicks {
        if let Some(p) = prop(e, "page") {
            let x = by.entry(p).or_default();
            x.0 += 1;
            x.1.insert(&e.user);
        }
    }
    let mut rows: Vec<_> = by.into_iter().collect();
    rows.sort_by_key(|(v, (n, _))| (std::cmp::Reverse(*n), *v));
    json!({
        "clicks": clicks.len(),
        "elements": rows.iter().take(limit).map(|(v, (n, u))| json!({"element": v, "clicks": n, "users": u.len(), "share": *n as f64 / clicks.len() as f64})).collect::<Vec<_>>(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn sessions_match_the_naive_sessionizer(
        events in prop::collection::vec(event(), 0..60),
        r in rules(),
        bounce_under in prop_oneof![Just(0i64), Just(10), Just(20)],
        top in 1usize..4,
        by_landing in any::<bool>(),
    ) {
        let mut q = r.json("sessions");
        q["interval"] = json!("day");
        q["page_events"] = json!(["$pageview"]);
        q["page_prop"] = json!("page");
        q["bounce_under"] = json!(bounce_under);
        q["top"] = json!(top);
        let mut want = naive_sessions(&r, &events, bounce_under, top);
        if by_landing {
            q["breakdown"] = json!([{"event_prop": "page"}]);
        } else if let Some(w) = want.as_object_mut() {
            w.remove("groups");
        }
        check(&events, &q, &want)?;
    }

    #[test]
    fn paths_match_the_naive_counts(
        events in prop::collection::vec(event(), 0..60),
        r in rules(),
        anchor in 0u8..3,
        steps in 2usize..5,
        collapse in any::<bool>(),
        users in any::<bool>(),
        top in 1usize..4,
    ) {
        let mut q = r.json("paths");
        match anchor {
            1 => q["start"] = json!({"event": "signup"}),
            2 => q["end"] = json!({"event": "signup"}),
            _ => {}
        }
        q["steps"] = json!(steps);
        q["collapse_repeats"] = json!(collapse);
        q["count"] = json!(if users { "users" } else { "sessions" });
        q["top"] = json!(top);
        q["label"] = json!({"prop": "page", "events": ["$pageview"]});
        let want = naive_paths(&r, &events, anchor, steps, collapse, users, top);
        check(&events, &q, &want)?;
    }

    #[test]
    fn heatmaps_match_the_naive_bins(
        events in prop::collection::vec(event(), 0..60),
        r in rules(),
        grid in any::<bool>(),
        limit in 1usize..4,
    ) {
        let mut q = json!({"kind": "heatmap", "event": {"event": "$autocapture"}});
        q["by"] = if grid {
            json!({"grid": {"x": "x", "y": "y", "width": "w", "cols": 7, "row_px": 40}})
        } else {
            json!({"element": "page"})
        };
        if !grid {
            q["limit"] = json!(limit);
        }
        if r.where_not_b {
            q["where"] = json!({"prop": "page", "op": "ne", "value": "/b"});
        }
        if let Some((a, b)) = r.range {
            q["time_range"] = json!({"from": a, "to": b});
        }
        let want = naive_heatmap(&r, &events, grid, if grid { 100 } else { limit });
        check(&events, &q, &want)?;
    }
}
