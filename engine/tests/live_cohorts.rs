//! Proptest: after any interleaving of ingest, profile updates, aliases,
//! flushes and compactions, a live cohort read (through `{"cohort": NAME}`
//! in a query, and through `Engine::cohort`) has the members a fresh
//! evaluation of its definition has.

mod common;

use footprint_engine::{Alias, Engine, EngineOptions, Format, QueryOptions};
use proptest::prelude::*;
use serde_json::{json, Value as Json};

#[derive(Debug, Clone)]
enum Op {
    Event { user: u8, pay: bool, t: u16 },
    Plan { user: u8, pro: bool },
    Alias { anon: u8, known: u8 },
    Flush,
    Compact,
    Read,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..10, any::<bool>(), 0u16..500).prop_map(|(user, pay, t)| Op::Event { user, pay, t }),
        3 => (0u8..10, any::<bool>()).prop_map(|(user, pro)| Op::Plan { user, pro }),
        1 => (6u8..10, 0u8..6).prop_map(|(anon, known)| Op::Alias { anon, known }),
        1 => Just(Op::Flush),
        1 => Just(Op::Compact),
        3 => Just(Op::Read),
    ]
}

fn definitions() -> Vec<Json> {
    vec![
        json!({"kind": "users", "profile": {"prop": "plan", "op": "eq", "value": "pro"}}),
        json!({"kind": "users", "did": [{"event": "login", "count": {"op": "gte", "value": 2}}]}),
        json!({"kind": "users", "did": [{"event": "pay"}], "did_not": [{"event": "login"}]}),
        json!({"kind": "users", "profile": {"prop": "plan", "op": "ne", "value": "pro"},
               "did": [{"event": "login"}]}),
        // A cohort read through another.
        json!({"kind": "users", "users": {"cohort": "c0"}, "did": [{"event": "pay"}]}),
    ]
}

use common::sorted_ids as ids;

fn check(e: &Engine) {
    let now = QueryOptions {
        cohort_max_age: Some(std::time::Duration::ZERO),
        ..Default::default()
    };
    for (i, def) in definitions().iter().enumerate() {
        let name = format!("c{i}");
        let mut fresh_q = def.clone();
        fresh_q["return_users"] = json!(1000);
        let fresh = ids(&e.query_json(&fresh_q, now.clone()).unwrap());
        let via_query = ids(&e
            .query_json(
                &json!({"kind": "users", "users": {"cohort": name}, "return_users": 1000}),
                now.clone(),
            )
            .unwrap());
        assert_eq!(via_query, fresh, "{name} read by a query");
        let c = e.cohort(&name, &now).unwrap();
        let members: Vec<u32> = c.members.iter().collect();
        let mut names = e.store().user_names(&members);
        names.sort();
        assert_eq!(names, fresh, "{name} read by Engine::cohort");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn live_cohorts_equal_fresh_evaluations(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let opts = EngineOptions { background: false, query_threads: 1, ..Default::default() };
        let e = Engine::open(dir.path(), opts).unwrap();
        for (i, def) in definitions().iter().enumerate() {
            e.create_cohort(&format!("c{i}"), def, &QueryOptions::default()).unwrap();
        }
        for op in ops {
            match op {
                Op::Event { user, pay, t } => {
                    let ev = if pay { "pay" } else { "login" };
                    let line = format!(
                        r#"{{"user":"u{user}","event":"{ev}","time":{}}}"#,
                        1_767_225_600_000i64 + i64::from(t) * 1000
                    );
                    e.ingest_text(&line, Format::Auto).unwrap();
                }
                Op::Plan { user, pro } => {
                    let plan = if pro { "pro" } else { "free" };
                    let row = json!({"user": format!("u{user}"), "op": "set", "props": {"plan": plan}});
                    let up = footprint_engine::storage::parse::parse_profile_update(row).unwrap();
                    e.upsert_profiles(vec![up]).unwrap();
                }
                Op::Alias { anon, known } => e
                    .alias(vec![Alias { anonymous: format!("u{anon}"), known: format!("u{known}") }])
                    .unwrap(),
                Op::Flush => e.flush().unwrap(),
                Op::Compact => {
                    e.compact().unwrap();
                }
                Op::Read => check(&e),
            }
        }
        check(&e);
    }
}
