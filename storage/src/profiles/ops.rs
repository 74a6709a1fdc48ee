//! What each profile operation does to one user's properties.
//!
//! List properties are stored like lists in events: as the JSON text of an
//! array (`["a","b"]`), so conditions such as `contains` read them.
//! `append` adds one element, `union` adds the elements not present yet,
//! `remove` drops every element equal to the given one.

use serde_json::Value as Json;

use crate::event::{ProfileOp, ProfileUpdate};
use crate::value::Value;

use super::PropMap;

/// A value as a list element.
fn element(v: &Value) -> Json {
    match v {
        Value::Str(s) => Json::String(s.clone()),
        Value::Int(i) => Json::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Bool(b) => Json::Bool(*b),
    }
}

/// The elements of a stored list, or `None` when the value is not one.
fn list(v: Option<&Value>) -> Option<Vec<Json>> {
    match v {
        Some(Value::Str(s)) if s.starts_with('[') => match serde_json::from_str(s) {
            Ok(Json::Array(a)) => Some(a),
            _ => None,
        },
        _ => None,
    }
}

/// The elements a `union` adds: a list's elements, or the value itself.
fn elements(v: &Value) -> Vec<Json> {
    list(Some(v)).unwrap_or_else(|| vec![element(v)])
}

fn store_list(p: &mut PropMap, k: &str, items: Vec<Json>) {
    let text = Json::Array(items).to_string();
    p.insert(k.to_owned(), Value::Str(text));
}

/// Applies one update to one user's properties.
pub fn apply_ops(p: &mut PropMap, u: &ProfileUpdate) {
    for (k, v) in &u.props {
        match u.op {
            ProfileOp::Set => {
                p.insert(k.clone(), v.clone());
            }
            ProfileOp::SetOnce => {
                p.entry(k.clone()).or_insert_with(|| v.clone());
            }
            ProfileOp::Unset => {
                p.remove(k);
            }
            ProfileOp::Add => {
                let cur = p.get(k).cloned();
                let next = match (cur, v) {
                    (Some(Value::Int(a)), Value::Int(b)) => match a.checked_add(*b) {
                        Some(s) => Value::Int(s),
                        None => Value::Float(a as f64 + *b as f64),
                    },
                    (None, Value::Int(b)) => Value::Int(*b),
                    (cur, v) => {
                        // A non-numeric current value is replaced: `add`
                        // defines the property as a counter.
                        let a = cur.and_then(|c| c.as_f64()).unwrap_or(0.0);
                        Value::Float(a + v.as_f64().unwrap_or(0.0))
                    }
                };
                p.insert(k.clone(), next);
            }
            ProfileOp::Append => {
                // A value that is not a list is replaced, as `add` does.
                let mut items = list(p.get(k)).unwrap_or_default();
                items.push(element(v));
                store_list(p, k, items);
            }
            ProfileOp::Union => {
                let mut items = list(p.get(k)).unwrap_or_default();
                for e in elements(v) {
                    if !items.contains(&e) {
                        items.push(e);
                    }
                }
                store_list(p, k, items);
            }
            ProfileOp::Remove => {
                if let Some(mut items) = list(p.get(k)) {
                    let gone: Vec<Json> = elements(v);
                    items.retain(|e| !gone.contains(e));
                    store_list(p, k, items);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(p: &mut PropMap, op: ProfileOp, k: &str, v: Value) {
        apply_ops(
            p,
            &ProfileUpdate {
                user: "u".into(),
                op,
                props: vec![(k.into(), v)],
            },
        );
    }

    #[test]
    fn list_ops() {
        let mut p = PropMap::new();
        let s = |x: &str| Value::Str(x.into());
        run(&mut p, ProfileOp::Append, "tags", s("a"));
        run(&mut p, ProfileOp::Append, "tags", Value::Int(2));
        run(&mut p, ProfileOp::Append, "tags", s("a"));
        assert_eq!(p["tags"], s(r#"["a",2,"a"]"#));
        run(&mut p, ProfileOp::Union, "tags", s(r#"["b","a"]"#));
        assert_eq!(p["tags"], s(r#"["a",2,"a","b"]"#));
        run(&mut p, ProfileOp::Remove, "tags", s("a"));
        assert_eq!(p["tags"], s(r#"[2,"b"]"#));
        // Remove from a missing or non-list property changes nothing.
        run(&mut p, ProfileOp::Remove, "none", s("a"));
        assert!(!p.contains_key("none"));
        run(&mut p, ProfileOp::Set, "plan", s("pro"));
        run(&mut p, ProfileOp::Remove, "plan", s("pro"));
        assert_eq!(p["plan"], s("pro"));
        // Append to a non-list starts a list.
        run(&mut p, ProfileOp::Append, "plan", s("x"));
        assert_eq!(p["plan"], s(r#"["x"]"#));
    }
}
