//! Arbitrary query JSON never panics the query layer: it answers or returns
//! an error naming a path.
#![no_main]

use std::sync::OnceLock;

use footprint_storage::{Event, Store, StoreOptions, Value};
use libfuzzer_sys::fuzz_target;

fn store() -> &'static Store {
    static STORE: OnceLock<(tempfile::TempDir, Store)> = OnceLock::new();
    &STORE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let (store, _) = Store::open(dir.path(), StoreOptions { shards: 2, ..Default::default() }).unwrap();
            let evs = (0..200)
                .map(|i| Event {
                    user: format!("u{}", i % 13),
                    event: ["visit", "signup", "pay"][i % 3].into(),
                    time: 1_700_000_000_000 + (i as i64) * 3_600_000,
                    props: vec![("plan".into(), Value::Str(["free", "pro"][i % 2].into())), ("n".into(), Value::Int(i as i64))],
                })
                .collect();
            store.ingest(evs).unwrap();
            store.flush().unwrap();
            (dir, store)
        })
        .1
}

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    match footprint_query::execute(store(), &v, Default::default()) {
        Ok(r) => assert!(r.is_object()),
        Err(e) => assert!(!e.message.is_empty()),
    }
});
