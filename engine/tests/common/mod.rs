//! Helpers the engine's integration tests share.

use serde_json::Value as Json;

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
