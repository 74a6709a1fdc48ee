//! Regression tests of the query layer's defects from issue 11 (empty
//! ranges, group order, the cell-cap panic, memory limits, the `users`
//! breakdown, time-free scans), each in the storage layouts where the
//! answer could differ.

use footprint_engine::storage::SegmentFormat;
use footprint_engine::{
    Engine, EngineOptions, ErrorKind, Event, ProfileOp, ProfileUpdate, QueryError, QueryOptions,
    StoreOptions, Value,
};
use serde_json::{json, Value as Json};

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;

fn ev(user: &str, event: &str, time: i64, props: &[(&str, Value)]) -> Event {
    Event {
        user: user.into(),
        event: event.into(),
        time,
        props: props
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    }
}

fn s(x: &str) -> Value {
    Value::Str(x.into())
}

/// Where the events of a test live when it queries them.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// Never flushed.
    Memtable,
    /// One flush: one segment per shard.
    Flushed(SegmentFormat),
    /// Two flushes: two segments per shard.
    Split(SegmentFormat),
    /// Two flushes compacted into one segment per shard.
    Compacted(SegmentFormat),
    /// The first half in segments, the second in the memtable.
    Mixed,
}

fn layouts() -> Vec<Layout> {
    let mut out = vec![Layout::Memtable, Layout::Mixed];
    for f in [
        SegmentFormat::TimeOrder,
        SegmentFormat::EventMajor,
        SegmentFormat::EventMajorWithoutOrder,
    ] {
        out.extend([Layout::Flushed(f), Layout::Split(f), Layout::Compacted(f)]);
    }
    out
}

fn open(format: SegmentFormat, shards: u32) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(
        dir.path(),
        EngineOptions {
            store: StoreOptions {
                shards,
                memtable_rows: 1 << 30,
                max_segments_per_shard: 64,
                segment_format: format,
                ..Default::default()
            },
            background: false,
            ..Default::default()
        },
    )
    .unwrap();
    (dir, e)
}

/// An engine with `events` stored in `layout`.
fn engine_in(layout: Layout, events: &[Event], shards: u32) -> (tempfile::TempDir, Engine) {
    let format = match layout {
        Layout::Flushed(f) | Layout::Split(f) | Layout::Compacted(f) => f,
        Layout::Memtable | Layout::Mixed => SegmentFormat::default(),
    };
    let (dir, e) = open(format, shards);
    let (a, b) = events.split_at(events.len() / 2);
    match layout {
        Layout::Memtable => {
            e.ingest(events.to_vec()).unwrap();
        }
        Layout::Flushed(_) => {
            e.ingest(events.to_vec()).unwrap();
            e.flush().unwrap();
        }
        Layout::Split(_) | Layout::Compacted(_) => {
            e.ingest(a.to_vec()).unwrap();
            e.flush().unwrap();
            e.ingest(b.to_vec()).unwrap();
            e.flush().unwrap();
            if let Layout::Compacted(_) = layout {
                e.store().compact_all().unwrap();
            }
        }
        Layout::Mixed => {
            e.ingest(a.to_vec()).unwrap();
            e.flush().unwrap();
            e.ingest(b.to_vec()).unwrap();
        }
    }
    (dir, e)
}

fn run(e: &Engine, q: &Json) -> Json {
    e.query_json(q, QueryOptions::default())
        .unwrap_or_else(|err| panic!("{q}: {err}"))
}

fn fail(e: &Engine, q: &Json) -> QueryError {
    match e.query_json(q, QueryOptions::default()) {
        Ok(r) => panic!("{q} succeeded: {r}"),
        Err(footprint_engine::Error::Query(qe)) => qe,
        Err(other) => panic!("{q}: unexpected error {other}"),
    }
}

/// A small data set every kind has something to say about.
fn sample_events() -> Vec<Event> {
    let mut out = Vec::new();
    for u in 0..12 {
        let user = format!("u{u}");
        let t = T0 + u * 3_600_000;
        let page = ["home", "docs", "blog"][(u % 3) as usize];
        out.push(ev(&user, "visit", t, &[("page", s(page))]));
        out.push(ev(&user, "signup", t + 60_000, &[]));
        out.push(ev(
            &user,
            "pay",
            t + 86_400_000,
            &[("amount", Value::Float(u as f64 + 0.5))],
        ));
    }
    out
}

/// One query of every implemented kind, each with a breakdown.
fn every_kind() -> Vec<Json> {
    vec![
        json!({"kind": "funnel", "steps": [{"event": "visit"}, {"event": "signup"}], "window": 86_400_000,
               "breakdown": [{"event_prop": "page"}]}),
        json!({"kind": "retention", "start": {"event": "visit"}, "return": {"event": "pay"},
               "breakdown": [{"event_prop": "page"}]}),
        json!({"kind": "interval", "from": {"event": "visit"}, "to": {"event": "pay"},
               "breakdown": [{"event_prop": "page"}]}),
        json!({"kind": "events", "interval": "day", "metrics": [{"event": "visit"}, {"event": "pay", "agg": "p50", "prop": "amount"}],
               "breakdown": [{"event_prop": "page"}]}),
        json!({"kind": "events", "interval": "total", "metrics": [{"event": "visit"}],
               "breakdown": [{"event_prop": "page"}]}),
        json!({"kind": "distribution", "event": "visit", "breakdown": [{"event_prop": "page"}]}),
        json!({"kind": "users", "did": [{"event": "visit"}], "breakdown": [{"user_prop": "plan"}]}),
        json!({"kind": "users", "did_not": [{"event": "churn"}]}),
    ]
}

/// Defect 4: under the half-open `[from, to)`, `from == to` is a valid,
/// empty range: every kind answers nothing, with a warning, in every
/// layout; `from > to` stays an error.
#[test]
fn empty_time_range_is_valid_and_empty_for_every_kind() {
    let events = sample_events();
    for layout in layouts() {
        let (_d, e) = engine_in(layout, &events, 4);
        // Inside the data: a non-empty range there would count something.
        let at = T0 + 3_600_000;
        for mut q in every_kind() {
            let whole = run(&e, &q);
            q["time_range"] = json!({"from": at, "to": at});
            let r = run(&e, &q);
            let warned = r["warnings"].as_array().is_some_and(|w| {
                w.iter()
                    .any(|w| w.as_str().unwrap().contains("time_range: from equals to"))
            });
            assert!(warned, "{layout:?} {q}: {r}");
            let kind = q["kind"].as_str().unwrap();
            match kind {
                "funnel" => {
                    for step in r["steps"].as_array().unwrap() {
                        assert_eq!(step["users"], json!(0), "{layout:?} {q}: {r}");
                    }
                }
                "retention" => {
                    assert_eq!(r["cohorts"], json!([]), "{layout:?} {q}: {r}");
                    assert_eq!(r["total"]["users"], json!(0));
                }
                "interval" => {
                    assert_eq!(r["count"], json!(0), "{layout:?} {q}: {r}");
                    assert!(r["median"].is_null());
                }
                "events" if q["interval"] == "total" => {
                    assert_eq!(r["series"][0]["values"], json!([0]), "{layout:?} {q}: {r}");
                }
                "events" => {
                    assert_eq!(r["buckets"], json!([]), "{layout:?} {q}: {r}");
                    assert_eq!(r["series"][0]["total"], json!(0));
                    assert!(r["series"][1]["total"].is_null());
                }
                "distribution" => {
                    assert_eq!(r["users"], json!(0), "{layout:?} {q}: {r}");
                    assert_eq!(r["below"], json!(0));
                }
                "users" => {
                    assert_eq!(r["users"], json!(0), "{layout:?} {q}: {r}");
                    assert_eq!(r["ids"], json!([]));
                }
                other => panic!("{other}"),
            }
            if q.get("breakdown").is_some() {
                assert_eq!(r["groups"], json!([]), "{layout:?} {q}: {r}");
                assert!(
                    whole["groups"].as_array().is_some_and(|g| !g.is_empty()),
                    "{layout:?} {q}: the whole range has groups: {whole}"
                );
            }
            // Backwards stays an error naming the field.
            q["time_range"] = json!({"from": at + 1, "to": at});
            let err = fail(&e, &q);
            assert_eq!(
                (err.path.as_str(), err.kind),
                ("time_range", ErrorKind::Invalid)
            );
            assert!(err.message.contains("is after to"), "{}", err.message);
        }
    }
}

/// Defect 5: breakdown groups are ordered by the first metric's exact
/// total, largest first, ties by key, groups without a value last — not
/// by the total truncated to an unsigned integer, which kept the wrong
/// groups under `limit` for fractional and negative totals.
#[test]
fn groups_order_by_exact_value_ties_by_key() {
    // One pay per page; `f` has no amount, `g` ties with `a`.
    let amounts: [(&str, Option<f64>); 7] = [
        ("a", Some(2.25)),
        ("b", Some(-1.0)),
        ("c", Some(2.75)),
        ("d", Some(-3.0)),
        ("e", Some(0.5)),
        ("f", None),
        ("g", Some(2.25)),
    ];
    let mut events = Vec::new();
    for (i, (page, amount)) in amounts.iter().enumerate() {
        let mut props = vec![("page", s(page))];
        if let Some(x) = amount {
            props.push(("amount", Value::Float(*x)));
        }
        events.push(ev(&format!("u{i}"), "pay", T0 + i as i64, &props));
    }
    for layout in [
        Layout::Memtable,
        Layout::Compacted(SegmentFormat::EventMajor),
    ] {
        let (_d, e) = engine_in(layout, &events, 3);
        for agg in ["sum", "avg", "min", "max", "p50", "p90", "p99"] {
            for limit in [4, 100] {
                let q = json!({"kind": "events", "interval": "total", "limit": limit,
                               "metrics": [{"event": "pay", "agg": agg, "prop": "amount"}, {"event": "pay"}],
                               "breakdown": [{"event_prop": "page"}]});
                let r = run(&e, &q);
                let got: String = r["groups"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|g| g["key"]["page"].as_str().unwrap())
                    .collect();
                // A sum of nothing is 0; an average of nothing is null.
                let want = if agg == "sum" { "cagefbd" } else { "cagebdf" };
                assert_eq!(got, want[..limit.min(7)], "{layout:?} {q}: {r}");
                if limit == 4 {
                    assert_eq!(r["groups_truncated"], json!(7));
                }
            }
        }
        // The case: totals 2.75, 2.25, 0.5, -1, -3, limit 4.
        let r = run(
            &e,
            &json!({"kind": "events", "interval": "day", "limit": 4,
                    "where": {"prop": "page", "op": "not_in", "value": ["f", "g"]},
                    "metrics": [{"event": "pay", "agg": "sum", "prop": "amount"}],
                    "breakdown": [{"event_prop": "page"}]}),
        );
        let got: Vec<(&str, f64)> = r["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                let total = g["series"][0]["total"].as_f64().unwrap();
                (g["key"]["page"].as_str().unwrap(), total)
            })
            .collect();
        assert_eq!(got, [("c", 2.75), ("a", 2.25), ("e", 0.5), ("b", -1.0)]);
        // Counts order the same way, ties by key (every page has one pay).
        let r = run(
            &e,
            &json!({"kind": "distribution", "event": "pay", "limit": 3,
                    "breakdown": [{"event_prop": "page"}]}),
        );
        let keys: Vec<&str> = r["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["key"]["page"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["a", "b", "c"]);
    }
}

/// Defect 13: a kind that takes "the first row" needs rows in time order,
/// so it must not use the time-free scan, in which a lone format 2 segment
/// hands over a user's rows grouped by event (`a` before `b`, whatever
/// their times). The distribution's `event_prop` breakdown takes the
/// user's earliest matching event.
#[test]
fn first_row_breakdowns_see_rows_in_time_order_in_every_layout() {
    let events = vec![
        ev("u0", "a", T0, &[("plan", s("pro"))]),
        ev("u1", "b", T0 + 1, &[("plan", s("free"))]),
        ev("u1", "a", T0 + 2, &[("plan", s("pro"))]),
    ];
    for shards in [1, 3] {
        for layout in layouts() {
            let (_d, e) = engine_in(layout, &events, shards);
            let ctx = format!("{shards} shards, {layout:?}");
            let mut q = json!({"kind": "distribution", "event": "$any", "buckets": [1, 2, 3],
                               "breakdown": [{"event_prop": "plan"}]});
            let r = run(&e, &q);
            let want = vec![("free".to_owned(), 1), ("pro".to_owned(), 1)];
            assert_eq!(tally(&r, "plan", "/users"), want, "{ctx}: {r}");
            assert_eq!(r["groups"][0]["key"]["plan"], json!("free"), "{ctx}: {r}");
            assert_eq!(
                r["groups"][0]["buckets"][1]["users"],
                json!(1),
                "{ctx}: {r}"
            );
            // The same with a time range, which always reads times.
            q["time_range"] = json!({"from": T0, "to": T0 + 10});
            assert_eq!(
                tally(&run(&e, &q), "plan", "/users"),
                want,
                "{ctx} with a range"
            );
            // Order-free kinds may still skip times: each row counts for
            // its own value.
            let r = run(
                &e,
                &json!({"kind": "events", "interval": "total", "metrics": [{"event": "$any"}],
                        "breakdown": [{"event_prop": "plan"}]}),
            );
            let totals: Vec<(&str, &Json)> = r["groups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| (g["key"]["plan"].as_str().unwrap(), &g["series"][0]["total"]))
                .collect();
            assert_eq!(
                totals,
                [("pro", &json!(2)), ("free", &json!(1))],
                "{ctx}: {r}"
            );
            // Interval pairs and retention cohorts read times: u1's `b`
            // comes before its `a`.
            let r = run(
                &e,
                &json!({"kind": "interval", "from": {"event": "b"}, "to": {"event": "a"}}),
            );
            assert_eq!(
                (&r["count"], &r["min"]),
                (&json!(1), &json!(1)),
                "{ctx}: {r}"
            );
            let r = run(
                &e,
                &json!({"kind": "retention", "start": {"event": "$any"}, "return": {"event": "a"},
                        "breakdown": [{"event_prop": "plan"}], "periods": 1}),
            );
            assert_eq!(tally(&r, "plan", "/total/users"), want, "{ctx}: {r}");
        }
    }
}

/// Each group's `prop` value and the count at JSON pointer `count`, by value.
fn tally(r: &Json, prop: &str, count: &str) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let key = g["key"][prop].as_str().unwrap().to_owned();
            (key, g.pointer(count).and_then(Json::as_u64).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// Minutes in 60 days.
const TWO_MONTHS: i64 = 60 * 86_400_000;

/// Events over two months: 64 users on 16 pages, so every shard sees many
/// pages.
fn two_months_of_pages() -> Vec<Event> {
    let mut out = Vec::new();
    for u in 0..64i64 {
        for k in 0..8i64 {
            let page = format!("/p{}", (u + k) % 16);
            let t = T0 + (u * 8 + k) * (TWO_MONTHS / 512);
            out.push(ev(
                &format!("u{u}"),
                "view",
                t,
                &[("page", s(&page)), ("ms", Value::Int(k))],
            ));
        }
    }
    out
}

/// Defect 6: an `events` query per minute with 32 metrics and a `page`
/// breakdown over two months panicked ("index out of bounds") when two
/// shards overflowed the cell cap. It is an invalid-query error naming the
/// limit, both when the grid alone is too large (before the scan) and when
/// the groups overflow in several shards during the scan.
#[test]
fn events_over_the_cell_cap_is_an_invalid_query_not_a_panic() {
    let events = two_months_of_pages();
    let metrics = |n: usize| -> Json {
        (0..n)
            .map(|i| {
                if i % 2 == 0 {
                    json!({"event": "view"})
                } else {
                    json!({"event": "view", "agg": "users"})
                }
            })
            .collect()
    };
    let range = json!({"from": T0, "to": T0 + TWO_MONTHS});
    for layout in [
        Layout::Memtable,
        Layout::Split(SegmentFormat::EventMajor),
        Layout::Compacted(SegmentFormat::TimeOrder),
    ] {
        let (_d, e) = engine_in(layout, &events, 16);
        for n in [32, 8] {
            let q = json!({"kind": "events", "interval": "minute", "time_range": range,
                           "metrics": metrics(n), "breakdown": [{"event_prop": "page"}]});
            let err = fail(&e, &q);
            assert_eq!(err.kind, ErrorKind::Invalid, "{layout:?}, {n} metrics");
            assert!(
                err.message.contains("more than 20000000 cells")
                    && err.message.contains("coarser interval"),
                "{layout:?}, {n} metrics: {}",
                err.message
            );
        }
        // The trend of 32 p99 metrics per minute took 2.4 GB, mostly the
        // per-shard grids of sample lists.
        let p99: Vec<Json> = (0..32)
            .map(|_| json!({"event": "view", "agg": "p99", "prop": "ms"}))
            .collect();
        let q =
            json!({"kind": "events", "interval": "minute", "time_range": range, "metrics": p99});
        let err = fail(&e, &q);
        assert_eq!(err.kind, ErrorKind::Invalid, "{layout:?}");
        assert!(err.message.contains("cells"), "{layout:?}: {}", err.message);
        // A day of it fits.
        let q = json!({"kind": "events", "interval": "minute", "time_range": {"from": T0, "to": T0 + 86_400_000},
                       "metrics": metrics(32), "breakdown": [{"event_prop": "page"}]});
        let r = run(&e, &q);
        assert_eq!(r["buckets"].as_array().unwrap().len(), 1440);
    }
}

/// Defect 7c: retention had no cell cap (hourly retention over 1,000
/// periods with a `page` breakdown took 801 MB); now it stops at the
/// default cell limit with an error that says how to narrow it.
#[test]
fn hourly_retention_with_a_wide_breakdown_stops_at_the_cell_limit() {
    // 21,000 (page, hour) cohorts of 1,001 periods: 21 M cells.
    let mut events = Vec::new();
    for u in 0..21_000i64 {
        let page = format!("/p{}", u % 50);
        let hour = u / 50;
        events.push(ev(
            &format!("u{u}"),
            "view",
            T0 + hour * 3_600_000,
            &[("page", s(&page))],
        ));
    }
    let (_d, e) = engine_in(Layout::Flushed(SegmentFormat::EventMajor), &events, 4);
    let mut q = json!({"kind": "retention", "start": {"event": "view"}, "return": {"event": "view"},
                       "unit": "hour", "periods": 1000, "breakdown": [{"event_prop": "page"}]});
    let err = fail(&e, &q);
    assert_eq!((err.kind, err.path.as_str()), (ErrorKind::Invalid, ""));
    assert!(
        err.message.contains("more than 20000000 cells") && err.message.contains("fewer periods"),
        "{}",
        err.message
    );
    q["periods"] = json!(100);
    let r = run(&e, &q);
    assert_eq!(r["total"]["users"], json!(21_000));
}

/// Defect 7c: every kind meters its cells and kept samples against one
/// shared limit (summed over the shards, the alias path included) and
/// fails with an error naming the limit it exceeded.
#[test]
fn every_kind_stops_at_its_cell_and_sample_limits() {
    let mut events = Vec::new();
    for u in 0..300i64 {
        let user = format!("u{u}");
        let t = T0 + u * 600_000;
        let page = format!("/p{}", u % 30);
        events.push(ev(&user, "visit", t, &[("page", s(&page))]));
        events.push(ev(&user, "signup", t + 60_000, &[]));
        events.push(ev(
            &user,
            "pay",
            t + 120_000,
            &[("amount", Value::Int(u)), ("page", s(&page))],
        ));
    }
    let breakdown = json!([{"event_prop": "page"}]);
    // (query, holds over 60 cells, keeps over 100 samples)
    let queries = [
        (
            json!({"kind": "funnel", "steps": [{"event": "visit"}, {"event": "signup"}], "window": 86_400_000,
                "breakdown": breakdown}),
            true,
            true,
        ),
        (
            json!({"kind": "retention", "start": {"event": "visit"}, "return": {"event": "pay"},
                "unit": "hour", "breakdown": breakdown}),
            true,
            false,
        ),
        (
            json!({"kind": "interval", "from": {"event": "visit"}, "to": {"event": "pay"},
                "breakdown": breakdown}),
            true,
            true,
        ),
        (
            json!({"kind": "distribution", "event": "pay", "measure": {"sum": "amount"},
                "breakdown": breakdown}),
            true,
            true,
        ),
        (
            json!({"kind": "events", "interval": "hour",
                "metrics": [{"event": "pay", "agg": "p99", "prop": "amount"}], "breakdown": breakdown}),
            true,
            true,
        ),
        (
            json!({"kind": "events", "interval": "total",
                "metrics": [{"event": "pay", "agg": "p50", "prop": "amount"}]}),
            false,
            true,
        ),
    ];
    for layout in [
        Layout::Memtable,
        Layout::Compacted(SegmentFormat::EventMajor),
    ] {
        let (_d, e) = engine_in(layout, &events, 4);
        set_profiles(
            &e,
            (0..300).map(|u| (format!("u{u}"), "tier", s(&format!("t{}", u % 40)))),
        );
        // One person under two ids: read apart, through the alias path.
        e.alias(vec![footprint_engine::Alias {
            anonymous: "u1".into(),
            known: "u2".into(),
        }])
        .unwrap();
        let with = |q: &Json, cells: u64, samples: u64| {
            e.query_json_with_limits(
                q,
                QueryOptions::default(),
                footprint_engine::Limits { cells, samples },
            )
        };
        for (q, holds_cells, keeps_samples) in &queries {
            let ctx = format!("{layout:?} {q}");
            run(&e, q);
            let few_cells = with(q, 60, u64::MAX);
            if *holds_cells {
                match few_cells {
                    Err(footprint_engine::Error::Query(err)) => {
                        assert_eq!(err.kind, ErrorKind::Invalid, "{ctx}");
                        assert!(
                            err.message.contains("more than 60 cells"),
                            "{ctx}: {}",
                            err.message
                        );
                    }
                    other => panic!("{ctx}: {other:?}"),
                }
            } else {
                few_cells.unwrap();
            }
            let few_samples = with(q, u64::MAX, 100);
            if *keeps_samples {
                match few_samples {
                    Err(footprint_engine::Error::Query(err)) => {
                        assert_eq!(err.kind, ErrorKind::Invalid, "{ctx}");
                        assert!(
                            err.message
                                .contains("more than 100 values for exact percentiles"),
                            "{ctx}: {}",
                            err.message
                        );
                    }
                    other => panic!("{ctx}: {other:?}"),
                }
            } else {
                few_samples.unwrap();
            }
            // Just enough is enough: the limits count what is kept.
            with(q, 100_000, 1_200).unwrap();
        }
    }
}

fn set_profiles(e: &Engine, props: impl IntoIterator<Item = (String, &'static str, Value)>) {
    let updates = props
        .into_iter()
        .map(|(user, k, v)| ProfileUpdate {
            user,
            op: ProfileOp::Set,
            props: vec![(k.to_owned(), v)],
        })
        .collect();
    e.upsert_profiles(updates).unwrap();
}

/// Defect 12: a `users` query with a breakdown used to answer the total
/// alone. It groups the members by profile values (property analysis):
/// users and share per value, ordered and cut like every kind's groups.
#[test]
fn users_breakdown_groups_members_by_profile_values() {
    let mut events = Vec::new();
    for u in 0..20i64 {
        let user = format!("u{u}");
        events.push(ev(&user, "visit", T0 + u, &[("page", s("home"))]));
        if u % 2 == 0 {
            events.push(ev(&user, "pay", T0 + 1000 + u, &[]));
        }
    }
    // plan: 8 pro, 6 free, 2 team, 4 without one; region: two values.
    let plan = |u: i64| match u % 5 {
        0 | 1 => Some("pro"),
        2 | 3 if u < 15 => Some("free"),
        2 | 3 => Some("team"),
        _ => None,
    };
    for layout in layouts() {
        let (_d, e) = engine_in(layout, &events, 3);
        set_profiles(
            &e,
            (0..20i64).flat_map(|u| {
                let region = ("region", s(if u < 10 { "eu" } else { "us" }));
                let plan = plan(u).map(|p| ("plan", s(p)));
                plan.into_iter()
                    .chain([region])
                    .map(move |(k, v)| (format!("u{u}"), k, v))
            }),
        );
        let q = json!({"kind": "users", "did": [{"event": "visit"}], "breakdown": [{"user_prop": "plan"}]});
        let r = run(&e, &q);
        assert_eq!(r["users"], json!(20), "{layout:?}: {r}");
        let rows: Vec<(Json, u64, f64)> = r["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                let users = g["users"].as_u64().unwrap();
                (
                    g["key"]["plan"].clone(),
                    users,
                    g["share"].as_f64().unwrap(),
                )
            })
            .collect();
        let want = [
            (json!("pro"), 8, 0.4),
            (json!("free"), 6, 0.3),
            (Json::Null, 4, 0.2),
            (json!("team"), 2, 0.1),
        ];
        assert_eq!(rows.len(), want.len(), "{layout:?}: {r}");
        for (got, want) in rows.iter().zip(&want) {
            assert_eq!((&got.0, got.1), (&want.0, want.1), "{layout:?}: {r}");
            assert!((got.2 - want.2).abs() < 1e-12, "{layout:?}: {r}");
        }
        // Members only, several dimensions, cut at limit.
        let q = json!({"kind": "users", "did": [{"event": "pay"}], "limit": 2,
                       "breakdown": [{"user_prop": "region"}, {"user_prop": "plan"}]});
        let r = run(&e, &q);
        assert_eq!(r["users"], json!(10), "{layout:?}: {r}");
        // eu/pro, eu/free and us/pro have 2 members each; ties by key.
        assert_eq!(r["groups_truncated"], json!(7), "{layout:?}: {r}");
        assert_eq!(
            r["groups"][0]["key"],
            json!({"region": "eu", "plan": "free"})
        );
        assert_eq!(r["groups"][0]["users"], json!(2));
        assert_eq!(r["groups"][0]["share"], json!(0.2));
        assert_eq!(
            r["groups"][1]["key"],
            json!({"region": "eu", "plan": "pro"})
        );
        // An event property does not describe a member: refused, by path.
        let err = fail(
            &e,
            &json!({"kind": "users", "did": [{"event": "visit"}],
                    "breakdown": [{"user_prop": "plan"}, {"event_prop": "page"}]}),
        );
        assert_eq!(
            (err.path.as_str(), err.kind),
            ("breakdown[1].event_prop", ErrorKind::Invalid)
        );
        assert!(err.message.contains("user_prop"), "{}", err.message);
    }
}

/// Defect 12's audit: accepted fields are never ignored. `limit` without a
/// breakdown has nothing to cut and is refused; `where` in a `users` query
/// without conditions hides events as it does everywhere.
#[test]
fn accepted_fields_are_honoured_or_refused() {
    let events = sample_events();
    let (_d, e) = engine_in(Layout::Compacted(SegmentFormat::EventMajor), &events, 3);
    for mut q in every_kind() {
        if let Some(m) = q.as_object_mut() {
            m.remove("breakdown");
        }
        q["limit"] = json!(5);
        let err = fail(&e, &q);
        assert_eq!(
            (err.path.as_str(), err.kind),
            ("limit", ErrorKind::Invalid),
            "{q}"
        );
        assert!(err.message.contains("no breakdown"), "{q}: {}", err.message);
        if q["kind"] == "users" {
            assert!(err.message.contains("return_users"), "{}", err.message);
        }
    }
    let home = json!({"prop": "page", "op": "eq", "value": "home"});
    for q in [
        json!({"kind": "users", "where": home}),
        json!({"kind": "users", "where": home, "did_not": [{"event": "churn"}]}),
        json!({"kind": "users", "where": home, "did": [{"event": "visit"}]}),
    ] {
        // u0, u3, u6, u9 visited home.
        let r = run(&e, &q);
        assert_eq!(r["users"], json!(4), "{q}: {r}");
    }
}
