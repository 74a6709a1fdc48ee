//! Property test: profile updates (logged, and bulk imports) interleaved
//! with event ingest, aliases,
//! flushes (merging the profile changes into a new base file at a tiny
//! threshold), compactions and reopens read exactly like the same writes
//! made at once into a fresh store — both the profiles themselves and a
//! query that reads them (a `users` breakdown by a profile property with a
//! profile condition).

use footprint_engine::storage::{ProfileOp, ProfileUpdate};
use footprint_engine::{Engine, EngineOptions, Event, StoreOptions, Value};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Profiles(Vec<ProfileUpdate>),
    /// A bulk import (`Store::import_profiles`).
    Import(Vec<ProfileUpdate>),
    Events(Vec<Event>),
    Alias(String, String),
    Flush,
    CompactAll,
    Reopen,
}

fn user() -> impl Strategy<Value = String> {
    (0..12u8).prop_map(|i| format!("u{i}"))
}

fn update() -> impl Strategy<Value = ProfileUpdate> {
    let op = prop_oneof![
        3 => Just(ProfileOp::Set),
        1 => Just(ProfileOp::SetOnce),
        1 => Just(ProfileOp::Unset),
        1 => Just(ProfileOp::Add),
        1 => Just(ProfileOp::Append),
        1 => Just(ProfileOp::Remove),
    ];
    let value = prop_oneof![
        prop::sample::select(vec!["free", "pro", "ent"]).prop_map(|s| Value::Str(s.into())),
        (0i64..5).prop_map(Value::Int),
    ];
    (
        user(),
        op,
        prop::collection::vec(
            (prop::sample::select(vec!["plan", "seats", "tags"]), value),
            1..3,
        ),
    )
        .prop_map(|(user, op, props)| {
            let mut seen = std::collections::BTreeMap::new();
            for (k, v) in props {
                seen.insert(k.to_owned(), v);
            }
            ProfileUpdate {
                user,
                op,
                props: seen.into_iter().collect(),
            }
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec(update(), 1..6).prop_map(Op::Profiles),
        2 => prop::collection::vec(update(), 1..12).prop_map(Op::Import),
        2 => prop::collection::vec((user(), 0i64..1000), 1..5).prop_map(|evs| Op::Events(
            evs.into_iter()
                .map(|(user, t)| Event { user, event: "login".into(), time: 1_767_225_600_000 + t, props: vec![] })
                .collect()
        )),
        1 => (user(), user()).prop_map(|(a, b)| Op::Alias(a, b)),
        2 => Just(Op::Flush),
        1 => Just(Op::CompactAll),
        1 => Just(Op::Reopen),
    ]
}

fn opts() -> EngineOptions {
    EngineOptions {
        store: StoreOptions {
            shards: 2,
            memtable_rows: 20,
            // Merge into a new base file after 3 changed users.
            profile_merge_at: 3,
            ..Default::default()
        },
        background: false,
        ..Default::default()
    }
}

const QUERIES: [&str; 3] = [
    r#"{"kind":"users","breakdown":[{"user_prop":"plan"}],"return_users":100}"#,
    r#"{"kind":"users","profile":{"user_prop":"seats","op":"gte","value":2},"return_users":100}"#,
    r#"{"kind":"users","did":[{"event":"login"}],"breakdown":[{"user_prop":"tags"}],"return_users":100}"#,
];

/// The answers, with returned ids sorted (ids follow the order users were
/// first seen, which interleaving changes).
fn answers(e: &Engine) -> Vec<serde_json::Value> {
    QUERIES
        .iter()
        .map(|q| {
            let mut a = e.query(q).unwrap();
            if let Some(ids) = a["ids"].as_array_mut() {
                ids.sort_by_key(|v| v.to_string());
            }
            a
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn interleaved_writes_read_like_a_fresh_store(ops in prop::collection::vec(op(), 1..30)) {
        let dir = tempfile::tempdir().unwrap();
        let mut e = Engine::open(dir.path(), opts()).unwrap();
        let (mut ups, mut evs, mut links) = (Vec::new(), Vec::new(), Vec::new());
        for op in ops {
            match op {
                Op::Profiles(u) => {
                    ups.extend(u.iter().cloned());
                    e.upsert_profiles(u).unwrap();
                }
                Op::Import(u) => {
                    ups.extend(u.iter().cloned());
                    e.store().import_profiles(u).unwrap();
                }
                Op::Events(v) => {
                    evs.extend(v.iter().cloned());
                    e.ingest(v).unwrap();
                }
                Op::Alias(a, k) => {
                    let l = footprint_engine::storage::Alias { anonymous: a, known: k };
                    links.push(l.clone());
                    e.alias(vec![l]).unwrap();
                }
                Op::Flush => e.flush().unwrap(),
                Op::CompactAll => {
                    e.store().compact_all().unwrap();
                }
                Op::Reopen => {
                    drop(e);
                    e = Engine::open(dir.path(), opts()).unwrap();
                }
            }
        }
        let fresh_dir = tempfile::tempdir().unwrap();
        let fresh = Engine::open(fresh_dir.path(), opts()).unwrap();
        fresh.upsert_profiles(ups).unwrap();
        fresh.ingest(evs).unwrap();
        fresh.alias(links).unwrap();
        prop_assert_eq!(e.store().profiles(), fresh.store().profiles());
        prop_assert_eq!(answers(&e), answers(&fresh));
        drop(e);
        let reopened = Engine::open(dir.path(), opts()).unwrap();
        prop_assert_eq!(reopened.store().profiles(), fresh.store().profiles());
    }
}
