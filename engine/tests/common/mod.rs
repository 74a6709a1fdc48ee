//! Helpers the engine's integration tests share.

#![allow(dead_code)] // each test binary uses its own part

use footprint_engine::{Engine, EngineOptions};
use serde_json::{json, Value as Json};

/// An engine over `dir` without background work, on one query thread.
pub fn open(dir: &std::path::Path) -> Engine {
    let opts = EngineOptions {
        background: false,
        query_threads: 1,
        ..Default::default()
    };
    Engine::open(dir, opts).unwrap()
}

/// Sets `props` on `user`'s profile.
pub fn profile(e: &Engine, user: &str, props: Json) {
    let row = json!({"user": user, "op": "set", "props": props});
    let up = footprint_engine::storage::parse::parse_profile_update(row).unwrap();
    e.upsert_profiles(vec![up]).unwrap();
}

/// The `ids` of a `users` answer, sorted.
pub fn sorted_ids(v: &Json) -> Vec<String> {
    let mut ids: Vec<String> = v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}
