//! Shared helpers for Footprint's integration tests.

use footprint_engine::{Engine, Event, Value};

/// A canonical, order-independent form of an event for multiset comparisons.
pub fn canon(e: &Event) -> (String, i64, String, String) {
    let mut props: Vec<String> = e
        .props
        .iter()
        .map(|(k, v)| format!("{k}={}", value_key(v)))
        .collect();
    props.sort();
    (e.user.clone(), e.time, e.event.clone(), props.join("\u{1}"))
}

fn value_key(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("s:{s}"),
        Value::Int(i) => format!("i:{i}"),
        Value::Float(f) => format!("f:{:016x}", f.to_bits()),
        Value::Bool(b) => format!("b:{b}"),
    }
}

/// Every stored event, canonicalised and sorted.
pub fn all_events(engine: &Engine) -> Vec<(String, i64, String, String)> {
    let mut out = Vec::new();
    engine
        .store()
        .for_each_event(|e| out.push(canon(&e)))
        .expect("scan");
    out.sort();
    out
}

/// Events per user as stored, checking each user's events come in time order.
pub fn assert_time_ordered(engine: &Engine) {
    let mut last: Option<(String, i64)> = None;
    engine
        .store()
        .for_each_event(|e| {
            if let Some((u, t)) = &last {
                if *u == e.user {
                    assert!(*t <= e.time, "user {u}: {t} then {}", e.time);
                }
            }
            last = Some((e.user.clone(), e.time));
        })
        .expect("scan");
}
