//! The long form of a result: one row per leaf, `(path, num, text)`, and
//! [`rebuild`], which turns those rows back into the result JSON.
//!
//! A path is a chain of object keys and array indices from the root:
//! `steps[1].users`, `cohorts[0].retained[3]`, `histogram[2].to`. A row's
//! value is a boolean when both `num` and `text` are set (`num` 1 or 0,
//! `text` `true` or `false`: only breakdown keys have booleans), else
//! `text` when it is not NULL, else `num` (an integral number below 2^53
//! in magnitude becomes a JSON integer), else `null`. A path
//! ending in `[]` only declares an array (so an empty one still appears):
//! `cohorts[]`. Row order does not matter; indices place array elements,
//! and an index past the end grows the array with nulls.
//!
//! The same function in Python, 30 lines, is `tests/sql/rebuild.py` (the
//! equality test uses it, and `docs/SQL.md` shows it).

use serde_json::{Map, Value as Json};

/// One long-form row: the leaf's path, its number, its text.
pub type Leaf = (String, Option<f64>, Option<String>);

enum Step<'a> {
    Key(&'a str),
    Index(usize),
    Declare,
}

fn steps(path: &str) -> Result<Vec<Step<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(|| format!("{path}: unclosed ["))?;
            let idx = &r[..end];
            out.push(if idx.is_empty() {
                Step::Declare
            } else {
                Step::Index(
                    idx.parse()
                        .map_err(|_| format!("{path}: bad index {idx}"))?,
                )
            });
            rest = &r[end + 1..];
        } else {
            let r = rest.strip_prefix('.').unwrap_or(rest);
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                return Err(format!("{path}: empty key"));
            }
            out.push(Step::Key(&r[..end]));
            rest = &r[end..];
        }
    }
    Ok(out)
}

fn value(num: Option<f64>, text: Option<String>) -> Json {
    match (text, num) {
        (Some(_), Some(x)) => Json::Bool(x != 0.0),
        (Some(t), None) => Json::String(t),
        (None, Some(x)) if x.fract() == 0.0 && x.abs() < 9.0e15 => Json::from(x as i64),
        (None, Some(x)) => serde_json::Number::from_f64(x).map_or(Json::Null, Json::Number),
        (None, None) => Json::Null,
    }
}

/// The child of `node` at `step`, created as `make()` when missing.
fn child<'j>(
    node: &'j mut Json,
    step: &Step<'_>,
    make: fn() -> Json,
) -> Result<&'j mut Json, String> {
    match (step, node) {
        (Step::Key(k), Json::Object(m)) => Ok(m.entry(k.to_string()).or_insert_with(make)),
        (Step::Index(i), Json::Array(a)) => {
            if a.len() <= *i {
                a.resize(i + 1, Json::Null);
            }
            let slot = &mut a[*i];
            if slot.is_null() {
                *slot = make();
            }
            Ok(slot)
        }
        _ => Err("a path uses a key on an array or an index on an object".to_owned()),
    }
}

/// Rebuilds the result JSON from its long-form rows (see the module
/// documentation). Fails on a malformed path or on paths that disagree
/// about a node's shape.
pub fn rebuild(rows: impl IntoIterator<Item = Leaf>) -> Result<Json, String> {
    let mut root = Json::Object(Map::new());
    for (path, num, text) in rows {
        let steps = steps(&path)?;
        let mut node = &mut root;
        for (i, step) in steps.iter().enumerate() {
            let next = steps.get(i + 1);
            match (step, next) {
                (Step::Declare, _) => break,
                (_, None) => {
                    let v = value(num, text);
                    *child(node, step, || Json::Null).map_err(|e| format!("{path}: {e}"))? = v;
                    break;
                }
                (_, Some(Step::Key(_))) => {
                    node = child(node, step, || Json::Object(Map::new()))
                        .map_err(|e| format!("{path}: {e}"))?;
                }
                (_, Some(_)) => {
                    node = child(node, step, || Json::Array(Vec::new()))
                        .map_err(|e| format!("{path}: {e}"))?;
                }
            }
        }
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn leaf(p: &str, n: Option<f64>, t: Option<&str>) -> Leaf {
        (p.to_owned(), n, t.map(str::to_owned))
    }

    #[test]
    fn rebuilds_nested_results() {
        let rows = vec![
            leaf("steps[1].users", Some(2.0), None),
            leaf("steps[0].event", None, Some("visit")),
            leaf("steps[0].users", Some(4.0), None),
            leaf("steps[1].avg", Some(1.5), None),
            leaf("steps[1].event", None, Some("signup")),
            leaf("steps[0].avg", None, None),
            leaf("histogram[]", None, None),
            leaf("total.retained[1]", Some(3.0), None),
            leaf("total.retained[0]", Some(5.0), None),
            leaf("groups[0].key.utm_source", None, Some("baidu")),
            leaf("groups[0].key.paid", Some(1.0), Some("true")),
        ];
        let got = rebuild(rows).unwrap();
        assert_eq!(
            got,
            json!({
                "steps": [{"event": "visit", "users": 4, "avg": null},
                          {"event": "signup", "users": 2, "avg": 1.5}],
                "histogram": [],
                "total": {"retained": [5, 3]},
                "groups": [{"key": {"utm_source": "baidu", "paid": true}}],
            })
        );
    }

    #[test]
    fn malformed_paths_are_errors() {
        assert!(rebuild(vec![leaf("a[x]", None, None)]).is_err());
        assert!(rebuild(vec![leaf("a[1", None, None)]).is_err());
        assert!(rebuild(vec![leaf("a[0]", None, None), leaf("a.b", None, None)]).is_err());
    }
}
