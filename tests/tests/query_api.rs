//! The query JSON contract: results have the documented shape, and every
//! invalid query gets an error naming the JSON path and what is allowed.

use footprint_engine::{Engine, EngineOptions, ErrorKind, Event, QueryOptions, Value};
use serde_json::{json, Value as Json};

/// An engine over an empty temporary directory.
fn empty_engine() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(
        dir.path(),
        EngineOptions {
            background: false,
            ..Default::default()
        },
    )
    .unwrap();
    (dir, e)
}

fn engine() -> (tempfile::TempDir, Engine) {
    let (dir, e) = empty_engine();
    let mut evs = Vec::new();
    for u in 0..40 {
        let t0 = 1_767_225_600_000 + u * 3_600_000;
        let src = ["baidu", "google"][(u % 2) as usize];
        evs.push(Event {
            user: format!("u{u}"),
            event: "visit".into(),
            time: t0,
            props: vec![("utm_source".into(), Value::Str(src.into()))],
        });
        if u % 2 == 0 {
            evs.push(Event {
                user: format!("u{u}"),
                event: "signup".into(),
                time: t0 + 60_000,
                props: vec![],
            });
        }
        if u % 4 == 0 {
            evs.push(Event {
                user: format!("u{u}"),
                event: "pay".into(),
                time: t0 + 86_400_000 * 2,
                props: vec![("amount".into(), Value::Float(99.5))],
            });
        }
    }
    e.ingest(evs).unwrap();
    (dir, e)
}

fn err(e: &Engine, q: Json) -> (String, String, ErrorKind) {
    match e.query_json(&q, QueryOptions::default()) {
        Ok(r) => panic!("query {q} succeeded: {r}"),
        Err(footprint_engine::Error::Query(qe)) => (qe.path, qe.message, qe.kind),
        Err(other) => panic!("unexpected error {other}"),
    }
}

#[test]
fn funnel_result_shape() {
    let (_d, e) = engine();
    let r = e
        .query_json(
            &json!({"kind": "funnel", "steps": [{"event": "visit"}, {"event": "signup"}, {"event": "pay"}],
                    "window": {"value": 7, "unit": "day"}, "breakdown": [{"event_prop": "utm_source"}]}),
            QueryOptions::default(),
        )
        .unwrap();
    let users: Vec<u64> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["users"].as_u64().unwrap())
        .collect();
    assert_eq!(users, vec![40, 20, 10]);
    assert_eq!(r["steps"][1]["conversion_from_previous"], json!(0.5));
    assert_eq!(r["steps"][2]["conversion_from_first"], json!(0.25));
    assert_eq!(r["steps"][1]["median_ms_from_first"], json!(60000.0));
    assert_eq!(r["steps"][2]["avg_ms_from_first"], json!(172800000.0));
    assert!(r["steps"][0]["median_ms_from_first"].is_null());
    let groups = r["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["key"], json!({"utm_source": "baidu"}));
    assert_eq!(groups[0]["steps"][2]["users"], json!(10));
    assert_eq!(groups[1]["steps"][1]["users"], json!(0));
}

#[test]
fn retention_and_interval_shapes() {
    let (_d, e) = engine();
    let r = e
        .query(r#"{"kind": "retention", "start": {"event": "signup"}, "return": {"event": "pay"}, "unit": "day", "periods": 3}"#)
        .unwrap();
    assert_eq!(r["total"]["users"], json!(20));
    assert_eq!(r["total"]["retained"], json!([20, 0, 10, 0]));
    assert_eq!(r["cohorts"][0]["cohort"], json!("2026-01-01"));
    let r = e.query(r#"{"kind": "interval", "from": {"event": "signup"}, "to": {"event": "pay"}, "pairs": "first"}"#).unwrap();
    assert_eq!(r["count"], json!(10));
    assert_eq!(r["min"], json!(172_740_000));
    let r = e
        .query(r#"{"kind": "interval", "from": {"event": "pay"}, "to": {"event": "visit"}}"#)
        .unwrap();
    assert_eq!(r["count"], json!(0));
    assert!(r["median"].is_null());
}

#[test]
fn unknown_event_that_is_not_a_typo_counts_zero_with_a_warning() {
    let (_d, e) = engine();
    let r = e.query(r#"{"kind": "funnel", "steps": [{"event": "visit"}, {"event": "churn"}], "window": 1000}"#).unwrap();
    assert_eq!(r["steps"][1]["users"], json!(0));
    assert!(r["warnings"][0]
        .as_str()
        .unwrap()
        .contains("steps[1].event"));
}

#[test]
fn errors_name_the_path() {
    let (_d, e) = engine();
    let cases = [
        (json!({"steps": []}), "kind", "is required"),
        (json!({"kind": "funel"}), "kind", "did you mean \"funnel\""),
        (
            json!({"kind": "funnel", "steps": [{"event": "visit"}], "window": 1, "windw": 2}),
            "windw",
            "unknown field",
        ),
        (
            json!({"kind": "funnel", "steps": [], "window": 1}),
            "steps",
            "at least one step",
        ),
        (
            json!({"kind": "funnel", "steps": [{"event": "visit"}, {"event": "sigup"}], "window": 1}),
            "steps[1].event",
            "did you mean \"signup\"",
        ),
        (
            json!({"kind": "funnel", "steps": [{"event": "visit", "where": {"prop": "utm_sorce", "op": "eq", "value": "x"}}], "window": 1}),
            "steps[0].where",
            "did you mean \"utm_source\"",
        ),
        (
            json!({"kind": "funnel", "steps": [{"event": "visit"}], "window": -5}),
            "window",
            "non-negative",
        ),
        (
            json!({"kind": "funnel", "steps": [{"event": "visit"}], "window": {"value": 1, "unit": "year"}}),
            "window.unit",
            "allowed",
        ),
        (
            json!({"kind": "funnel", "steps": [{"event": "visit"}], "window": 1, "mode": ["allow_reentry"]}),
            "mode",
            "needs strict_order",
        ),
        (
            json!({"kind": "funnel", "steps": [{"event": "visit"}], "window": 1, "mode": ["strict"]}),
            "mode[0]",
            "unknown mode",
        ),
        (
            json!({"kind": "funnel", "steps": [{"event": "visit"}], "window": 1, "time_range": {"from": 11, "to": 10}}),
            "time_range",
            "is after to",
        ),
        (
            json!({"kind": "funnel", "steps": [{"event": "visit"}], "window": 1, "time_range": {"from": "yesterday", "to": 10}}),
            "time_range.from",
            "RFC 3339",
        ),
        (
            json!({"kind": "funnel", "steps": [{"event": "visit"}], "window": 1, "timezone": "Mars/Base"}),
            "timezone",
            "unknown time zone",
        ),
        (
            json!({"kind": "funnel", "steps": [{"event": "visit"}], "window": 1, "limit": 0}),
            "limit",
            "at least 1",
        ),
        (
            json!({"kind": "funnel", "steps": [{"event": 5}], "window": 1}),
            "steps[0].event",
            "expected a string",
        ),
        (
            json!({"kind": "funnel", "steps": "visit", "window": 1}),
            "steps",
            "expected an array",
        ),
        (
            json!({"kind": "retention", "start": {"event": "signup"}, "return": {"event": "pay"}, "unit": "fortnight"}),
            "unit",
            "allowed: hour, day, week, month",
        ),
        (
            json!({"kind": "interval", "from": {"event": "signup"}, "to": {"event": "pay"}, "pairs": "all"}),
            "pairs",
            "allowed: each, first",
        ),
        (
            json!({"kind": "funnel", "steps": [{"event": "visit"}], "window": 1, "breakdown": [{"prop": "x"}]}),
            "breakdown[0]",
            "event_prop",
        ),
    ];
    let events = [
        (
            json!({"kind": "events", "metrics": []}),
            "metrics",
            "at least one metric",
        ),
        (json!({"kind": "events"}), "metrics", "is required"),
        (
            json!({"kind": "events", "interval": "fortnight", "metrics": [{"event": "visit"}]}),
            "interval",
            "allowed: minute, hour, day, week, month, total",
        ),
        (
            json!({"kind": "events", "metrics": [{"event": "visit", "agg": "uniq"}]}),
            "metrics[0].agg",
            "allowed: count, users",
        ),
        (
            json!({"kind": "events", "metrics": [{"event": "pay", "agg": "sum"}]}),
            "metrics[0].prop",
            "needs a numeric event property",
        ),
        (
            json!({"kind": "events", "metrics": [{"event": "pay", "agg": "count", "prop": "amount"}]}),
            "metrics[0].prop",
            "takes no property",
        ),
        (
            json!({"kind": "events", "metrics": [{"event": "pay", "agg": "avg", "prop": "amont"}]}),
            "metrics[0].prop",
            "did you mean \"amount\"",
        ),
        (
            json!({"kind": "events", "metrics": [{"event": "pay", "agg": "avg", "prop": "amount", "by": 1}]}),
            "metrics[0].by",
            "unknown field",
        ),
        (
            json!({"kind": "events", "metrics": [{"event": "sigup"}]}),
            "metrics[0].event",
            "did you mean \"signup\"",
        ),
        (
            json!({"kind": "events", "interval": "minute", "metrics": [{"event": "visit"}],
                   "time_range": {"from": "2020-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}}),
            "interval",
            "narrow time_range or use a coarser interval",
        ),
    ];
    let distribution = [
        (
            json!({"kind": "distribution", "event": "visit", "buckets": []}),
            "buckets",
            "lower bounds",
        ),
        (
            json!({"kind": "distribution", "event": "visit", "buckets": [1, 3, 2]}),
            "buckets[2]",
            "strictly increasing",
        ),
        (
            json!({"kind": "distribution", "event": "visit", "buckets": [1, "2"]}),
            "buckets[1]",
            "expected a number",
        ),
        (
            json!({"kind": "distribution", "event": "visit", "measure": "sum"}),
            "measure",
            "{\"sum\": PROP}",
        ),
        (
            json!({"kind": "distribution", "event": "pay", "measure": {"sum": "amont"}}),
            "measure.sum",
            "did you mean \"amount\"",
        ),
        (
            json!({"kind": "distribution", "event": 5}),
            "event",
            "expected an event name",
        ),
        (
            json!({"kind": "distribution", "event": {"event": "visit", "whre": {}}}),
            "event.whre",
            "unknown field",
        ),
    ];
    for (q, path, msg) in cases.into_iter().chain(events).chain(distribution) {
        let (p, m, k) = err(&e, q.clone());
        assert_eq!(p, path, "{q}: {m}");
        assert!(m.contains(msg), "{q}: {m}");
        assert_eq!(k, ErrorKind::Invalid);
    }
    // Every kind of the contract is answered now: a bare query of any kind
    // is refused for what it lacks, never as not supported.
    for kind in footprint_engine::query::KINDS {
        if let Err(footprint_engine::Error::Query(qe)) =
            e.query_json(&json!({ "kind": kind }), QueryOptions::default())
        {
            assert_eq!(qe.kind, ErrorKind::Invalid, "{kind}: {}", qe.message);
        }
    }
    let (p, m, k) = err(
        &e,
        json!({"kind": "funnel", "steps": [{"event": "visit"}], "window": 1, "users": {"cohort": "x"}}),
    );
    assert_eq!((p.as_str(), k), ("users.cohort", ErrorKind::Invalid));
    assert!(m.contains("no cohort named \"x\""), "{m}");
    let r = e.query("{not json");
    assert!(r.unwrap_err().to_string().contains("line 1 column 2"));
}

#[test]
fn session_kinds_shapes_and_errors() {
    let (_dir, e) = engine();
    let r = e
        .query_json(
            &json!({"kind": "sessions", "page_events": ["visit"], "page_prop": "utm_source",
                    "time_range": {"from": "2026-01-01T00:00:00Z", "to": "2026-01-03T00:00:00Z"}}),
            QueryOptions::default(),
        )
        .unwrap();
    assert_eq!(r["buckets"], json!(["2026-01-01", "2026-01-02"]));
    // 40 users: visit, and for half a signup a minute later.
    assert_eq!(r["total"]["sessions"], json!(40));
    // Baidu's users (the even ones) sign up a minute later: no bounce.
    assert_eq!(
        r["entry"],
        json!([{"value": "baidu", "sessions": 20, "bounce_rate": 0.0},
               {"value": "google", "sessions": 20, "bounce_rate": 1.0}])
    );
    assert!(r.get("warnings").is_none(), "default names warn: {r}");
    let r = e
        .query_json(
            &json!({"kind": "paths", "start": {"event": "visit"}, "steps": 2}),
            QueryOptions::default(),
        )
        .unwrap();
    assert_eq!(r["paths"], json!(40));
    assert_eq!(
        r["links"],
        json!([{"from": [1, "visit"], "to": [2, "signup"], "count": 20}])
    );
    let r = e
        .query_json(
            &json!({"kind": "heatmap", "event": {"event": "visit"}, "by": {"element": "utm_source"}, "limit": 1}),
            QueryOptions::default(),
        )
        .unwrap();
    assert_eq!(r["clicks"], json!(40));
    assert_eq!(r["elements"][0]["element"], json!("baidu"));
    for (q, path, msg) in [
        (
            json!({"kind": "paths", "start": {"event": "visit"}, "end": {"event": "signup"}}),
            "end",
            "cannot be used together",
        ),
        (json!({"kind": "paths", "steps": 1}), "steps", "2 to 20"),
        (json!({"kind": "paths", "steps": 21}), "steps", "2 to 20"),
        (
            json!({"kind": "paths", "count": "events"}),
            "count",
            "sessions, users",
        ),
        (
            json!({"kind": "paths", "stepz": 3}),
            "stepz",
            "did you mean \"steps\"",
        ),
        (
            json!({"kind": "paths", "breakdown": [{"event_prop": "utm_source"}]}),
            "breakdown",
            "no breakdown",
        ),
        (
            json!({"kind": "sessions", "timeout": 0}),
            "timeout",
            "longer than 0",
        ),
        (
            json!({"kind": "sessions", "timeout": {"value": 0, "unit": "minute"}}),
            "timeout",
            "longer than 0",
        ),
        (
            json!({"kind": "sessions", "max_length": -5}),
            "max_length",
            "non-negative",
        ),
        (
            json!({"kind": "sessions", "split": "weekly"}),
            "split",
            "midnight",
        ),
        (
            json!({"kind": "sessions", "split": {"prop": "x", "y": 1}}),
            "split.y",
            "unknown field",
        ),
        (
            json!({"kind": "sessions", "interval": "year"}),
            "interval",
            "allowed",
        ),
        (json!({"kind": "sessions", "top": 0}), "top", "at least 1"),
        (
            json!({"kind": "sessions", "ignore_events": [1]}),
            "ignore_events[0]",
            "event name",
        ),
        (
            json!({"kind": "sessions", "limit": 3}),
            "limit",
            "no breakdown",
        ),
        (
            json!({"kind": "heatmap", "event": {"event": "visit"}, "by": {"grid": {"cols": 0}}}),
            "by.grid.cols",
            "at least 1",
        ),
        (
            json!({"kind": "heatmap", "event": {"event": "visit"}, "by": {}}),
            "by",
            "element",
        ),
        (
            json!({"kind": "heatmap", "event": {"event": "visit"}, "by": {"element": "utm_source", "grid": {}}}),
            "by",
            "element",
        ),
        (
            json!({"kind": "heatmap", "by": {"element": "utm_source"}}),
            "event",
            "required",
        ),
        (
            json!({"kind": "heatmap", "event": {"event": "visit"}, "by": {"grid": {"colz": 3}}}),
            "by.grid.colz",
            "unknown field",
        ),
    ] {
        let (p, m, k) = err(&e, q.clone());
        assert_eq!(p, path, "{q}: {m}");
        assert!(m.contains(msg), "{q}: {m}");
        assert_eq!(k, ErrorKind::Invalid);
    }
}

#[test]
fn sessions_by_profile_and_for_a_users_filter() {
    let (_d, e) = engine();
    e.upsert_profiles(
        ["u0", "u1", "u2"]
            .iter()
            .map(|u| footprint_engine::ProfileUpdate {
                user: (*u).into(),
                op: footprint_engine::ProfileOp::Set,
                props: vec![("plan".into(), Value::Str("pro".into()))],
            })
            .collect(),
    )
    .unwrap();
    // u0 pays two days after its visit: 2 sessions; u1 and u2: 1 each.
    let r = e
        .query(r#"{"kind": "sessions", "users": {"prop": "plan", "op": "eq", "value": "pro"}}"#)
        .unwrap();
    assert_eq!(r["total"]["sessions"], json!(4));
    assert_eq!(r["total"]["users"], json!(3));
    let r = e
        .query(r#"{"kind": "sessions", "breakdown": [{"user_prop": "plan"}]}"#)
        .unwrap();
    let groups = r["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    let pro = groups
        .iter()
        .find(|g| g["key"] == json!({"plan": "pro"}))
        .unwrap();
    assert_eq!(pro["total"]["sessions"], json!(4));
    assert_eq!(pro["total"]["sessions_per_user"], json!(4.0 / 3.0));
    let none = groups
        .iter()
        .find(|g| g["key"] == json!({"plan": null}))
        .unwrap();
    assert_eq!(none["total"]["users"], json!(37));
}

#[test]
fn cancelled_query_stops_with_a_clear_error() {
    let (_d, e) = engine();
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    // Enough users that the executor reaches a check.
    let evs: Vec<Event> = (0..5000)
        .map(|u| Event {
            user: format!("x{u}"),
            event: "visit".into(),
            time: 1,
            props: vec![],
        })
        .collect();
    e.ingest(evs).unwrap();
    let q = json!({"kind": "funnel", "steps": [{"event": "visit"}], "window": 1});
    match e.query_json(
        &q,
        QueryOptions {
            timeout: None,
            cancel: Some(cancel),
            ..Default::default()
        },
    ) {
        Err(footprint_engine::Error::Query(qe)) => assert_eq!(qe.kind, ErrorKind::Cancelled),
        other => panic!("{other:?}"),
    }
    match e.query_json(
        &q,
        QueryOptions {
            timeout: Some(std::time::Duration::ZERO),
            ..Default::default()
        },
    ) {
        Err(footprint_engine::Error::Query(qe)) => {
            assert_eq!(qe.kind, ErrorKind::Timeout);
            assert!(qe.message.contains("time budget"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn filters_user_props_and_where() {
    let (_d, e) = engine();
    e.upsert_profiles(vec![footprint_engine::ProfileUpdate {
        user: "u0".into(),
        op: footprint_engine::ProfileOp::Set,
        props: vec![("plan".into(), Value::Str("enterprise".into()))],
    }])
    .unwrap();
    let r = e
        .query(r#"{"kind": "funnel", "steps": [{"event": "visit"}, {"event": "signup"}], "window": 100000,
                   "users": {"prop": "plan", "op": "eq", "value": "enterprise"}}"#)
        .unwrap();
    assert_eq!(r["steps"][0]["users"], json!(1));
    let r = e
        .query(r#"{"kind": "funnel", "steps": [{"event": "visit"}, {"event": "signup"}], "window": 100000,
                   "where": {"or": [{"prop": "utm_source", "op": "eq", "value": "baidu"}, {"prop": "utm_source", "op": "is_not_set"}]}}"#)
        .unwrap();
    assert_eq!(r["steps"][0]["users"], json!(20));
    assert_eq!(r["steps"][1]["users"], json!(20));
    let r = e
        .query(r#"{"kind": "funnel", "steps": [{"event": "visit"}, {"event": "pay", "where": {"prop": "amount", "op": "between", "value": [99, 100]}}], "window": 1e10,
                   "breakdown": [{"user_prop": "plan"}]}"#)
        .unwrap();
    assert_eq!(r["steps"][1]["users"], json!(10));
    assert_eq!(r["groups"][0]["key"], json!({"plan": null}));
}

#[test]
fn aliases_make_one_person_at_read_time() {
    let (_dir, e) = empty_engine();
    let ev = |u: &str, name: &str, t: i64| Event {
        user: u.into(),
        event: name.into(),
        time: t,
        props: vec![],
    };
    // An anonymous visitor clicks an ad, later signs up under a known id.
    e.ingest(vec![
        ev("cookie-1", "visit", 1_000),
        ev("cookie-2", "visit", 1_500),
        ev("other", "visit", 2_000),
    ])
    .unwrap();
    e.flush().unwrap();
    e.ingest(vec![ev("u1", "signup", 5_000), ev("u1", "pay", 9_000)])
        .unwrap();
    let q = json!({"kind": "funnel", "steps": [{"event": "visit"}, {"event": "signup"}, {"event": "pay"}], "window": 100_000});
    let before = e.query_json(&q, QueryOptions::default()).unwrap();
    assert_eq!(before["steps"][0]["users"], json!(3));
    assert_eq!(before["steps"][1]["users"], json!(0));
    // Both cookies are the same person as u1 (one through a chain).
    e.alias(vec![
        footprint_engine::Alias {
            anonymous: "cookie-1".into(),
            known: "u1".into(),
        },
        footprint_engine::Alias {
            anonymous: "cookie-2".into(),
            known: "cookie-1".into(),
        },
    ])
    .unwrap();
    for round in 0..2 {
        let r = e.query_json(&q, QueryOptions::default()).unwrap();
        let users: Vec<u64> = r["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["users"].as_u64().unwrap())
            .collect();
        assert_eq!(users, vec![2, 1, 1], "round {round}: {r}");
        let iv = e
            .query_json(&json!({"kind": "interval", "from": {"event": "visit"}, "to": {"event": "pay"}, "pairs": "first"}), QueryOptions::default())
            .unwrap();
        assert_eq!(iv["count"], json!(1));
        assert_eq!(iv["min"], json!(8_000));
        e.flush().unwrap();
    }
}

#[test]
fn breakdowns_of_retention_and_interval() {
    let (_d, e) = engine();
    // Users u0, u4, u8, … (u % 4 == 0) paid two days after their visit; all of them came from baidu.
    let r = e
        .query(r#"{"kind": "retention", "start": {"event": "visit"}, "return": {"event": "pay"}, "unit": "day", "periods": 3,
                   "breakdown": [{"event_prop": "utm_source"}]}"#)
        .unwrap();
    assert_eq!(r["total"]["retained"], json!([40, 0, 10, 0]));
    let groups = r["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    let baidu = groups
        .iter()
        .find(|g| g["key"]["utm_source"] == "baidu")
        .unwrap();
    assert_eq!(baidu["total"]["retained"], json!([20, 0, 10, 0]));
    let google = groups
        .iter()
        .find(|g| g["key"]["utm_source"] == "google")
        .unwrap();
    assert_eq!(google["total"]["retained"], json!([20, 0, 0, 0]));
    let r = e
        .query(r#"{"kind": "interval", "from": {"event": "visit"}, "to": {"event": "signup"}, "pairs": "first",
                   "breakdown": [{"event_prop": "utm_source"}, {"user_prop": "plan"}]}"#)
        .unwrap();
    assert_eq!(r["count"], json!(20));
    assert_eq!(r["groups"].as_array().unwrap().len(), 1);
    assert_eq!(
        r["groups"][0]["key"],
        json!({"utm_source": "baidu", "plan": null})
    );
    assert_eq!(r["groups"][0]["median"], json!(60000.0));
}

#[test]
fn events_trend_shape() {
    let (_d, e) = engine();
    let r = e
        .query_json(
            &json!({"kind": "events", "interval": "day",
                    "time_range": {"from": "2026-01-01T00:00:00Z", "to": "2026-01-05T00:00:00Z"},
                    "metrics": [{"event": "visit", "agg": "count"},
                                {"event": "visit", "agg": "users"},
                                {"event": "pay", "agg": "sum", "prop": "amount"},
                                {"event": "pay", "agg": "avg", "prop": "amount"},
                                {"event": "signup", "agg": "per_user"}],
                    "breakdown": [{"event_prop": "utm_source"}]}),
            QueryOptions::default(),
        )
        .unwrap();
    // Every day of the range is on the axis, including days with nothing.
    assert_eq!(
        r["buckets"],
        json!(["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"])
    );
    // 40 visits one hour apart from midnight: 24 on day 1, 16 on day 2.
    assert_eq!(r["series"][0]["values"], json!([24, 16, 0, 0]));
    assert_eq!(r["series"][0]["total"], json!(40));
    assert_eq!(r["series"][1]["values"], json!([24, 16, 0, 0]));
    // Pays (users 0, 4, …, 36) two days after their visit, 99.5 each.
    assert_eq!(r["series"][2]["values"], json!([0, 0, 597, 398]));
    assert_eq!(r["series"][2]["total"], json!(995));
    assert_eq!(r["series"][3]["values"], json!([null, null, 99.5, 99.5]));
    assert_eq!(r["series"][4]["total"], json!(1));
    assert_eq!(r["series"][2]["prop"], json!("amount"));
    // By the visit's source; pays and signups carry no utm_source.
    let groups = r["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 3);
    let key = |g: &Json| g["key"]["utm_source"].clone();
    assert_eq!(key(&groups[0]), json!("baidu"));
    assert_eq!(groups[0]["series"][0]["values"], json!([12, 8, 0, 0]));
    assert_eq!(key(&groups[2]), Json::Null);
    assert_eq!(groups[2]["series"][0]["total"], json!(0));
    assert_eq!(groups[2]["series"][2]["total"], json!(995));
    // One total bucket.
    let r = e
        .query(r#"{"kind": "events", "interval": "total", "metrics": [{"event": "$any", "agg": "users"}]}"#)
        .unwrap();
    assert_eq!(r["buckets"], json!(["total"]));
    assert_eq!(r["series"][0]["values"], json!([40]));
}

#[test]
fn distribution_shape() {
    let (_d, e) = engine();
    let r = e
        .query(r#"{"kind": "distribution", "event": "visit", "buckets": [1, 2, 3]}"#)
        .unwrap();
    assert_eq!(r["users"], json!(40));
    assert_eq!(r["below"], json!(0));
    assert_eq!(
        r["buckets"],
        json!([{"from": 1, "to": 2, "users": 40}, {"from": 2, "to": 3, "users": 0},
               {"from": 3, "to": null, "users": 0}])
    );
    assert_eq!(
        (r["min"].clone(), r["median"].clone()),
        (json!(1), json!(1.0))
    );
    // Revenue per paying user, by the source of… their first pay (none).
    let r = e
        .query_json(
            &json!({"kind": "distribution", "event": {"event": "pay"}, "measure": {"sum": "amount"},
                    "buckets": [0, 100], "breakdown": [{"user_prop": "plan"}]}),
            QueryOptions::default(),
        )
        .unwrap();
    assert_eq!(r["buckets"][0]["users"], json!(10));
    assert_eq!(r["avg"], json!(99.5));
    assert_eq!(r["groups"][0]["key"], json!({"plan": null}));
    // Days active, in a time zone; users below the first bound are counted apart.
    let r = e
        .query(r#"{"kind": "distribution", "event": "$any", "measure": "days", "buckets": [2, 3], "timezone": "Asia/Shanghai"}"#)
        .unwrap();
    // The 10 payers were active on their visit day and their pay day.
    assert_eq!(r["below"], json!(30));
    assert_eq!(r["buckets"][0]["users"], json!(10));
}

#[test]
fn users_cohorts_save_and_restrict_other_queries() {
    let (_d, e) = engine();
    // Signed up, never paid: even users not divisible by 4.
    let r = e
        .query_json(
            &json!({"kind": "users", "did": [{"event": "signup"}], "did_not": [{"event": "pay"}],
                    "save_as": "unpaid", "return_users": 3}),
            QueryOptions::default(),
        )
        .unwrap();
    assert_eq!(r["users"], json!(10));
    assert_eq!(r["ids"].as_array().unwrap().len(), 3);
    assert_eq!(r["saved_as"], json!("unpaid"));
    // The cohort restricts any query.
    let f = e
        .query_json(
            &json!({"kind": "funnel", "steps": [{"event": "visit"}, {"event": "signup"}], "window": 60000,
                    "users": {"cohort": "unpaid"}}),
            QueryOptions::default(),
        )
        .unwrap();
    assert_eq!(f["steps"][0]["users"], json!(10));
    assert_eq!(f["steps"][1]["users"], json!(10));
    let t = e
        .query_json(
            &json!({"kind": "events", "interval": "total", "metrics": [{"event": "$any", "agg": "users"}],
                    "users": {"and": [{"cohort": "unpaid"}, {"prop": "plan", "op": "is_not_set"}]}}),
            QueryOptions::default(),
        )
        .unwrap();
    assert_eq!(t["series"][0]["total"], json!(10));
    // Counts and windows: paid within the day before the range's end.
    let r = e
        .query_json(
            &json!({"kind": "users", "time_range": {"from": "2026-01-01T00:00:00Z", "to": "2026-01-03T12:00:00Z"},
                    "did": [{"event": "pay", "within": {"value": 1, "unit": "day"}},
                            {"event": "visit", "count": {"op": "eq", "value": 1}}]}),
            QueryOptions::default(),
        )
        .unwrap();
    assert_eq!(r["users"], json!(3), "{r}");
    // Errors name the path.
    for (q, path, msg) in [
        (
            json!({"kind": "funnel", "steps": [{"event": "visit"}], "window": 1, "users": {"cohort": "unpayd"}}),
            "users.cohort",
            "did you mean \"unpaid\"",
        ),
        (
            json!({"kind": "funnel", "steps": [{"event": "visit"}], "window": 1,
                   "users": {"or": [{"cohort": "unpaid"}]}}),
            "users.or[0].cohort",
            "top-level",
        ),
        (
            json!({"kind": "users", "did": [{"event": "visit", "count": {"op": "ge", "value": 1}}]}),
            "did[0].count.op",
            "allowed: eq, ne, gt, gte, lt, lte",
        ),
        (
            json!({"kind": "users", "did_not": [{"event": "visit", "count": {"op": "eq", "value": 1}}]}),
            "did_not[0].count",
            "unknown field",
        ),
        (
            json!({"kind": "users", "did": [{"event": "visit"}], "save_as": "../x"}),
            "save_as",
            "invalid cohort name",
        ),
    ] {
        let (p, m, _) = err(&e, q.clone());
        assert_eq!(p, path, "{q}: {m}");
        assert!(m.contains(msg), "{q}: {m}");
    }
}
