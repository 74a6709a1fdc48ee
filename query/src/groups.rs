//! Breakdown groups in results, one rule for every kind: largest first by
//! the exact size of the group, ties by key, then cut at `limit`.
//!
//! A kind says what a group's size is ([`Size`]): its users for funnels,
//! retention, distributions and cohorts, its pairs for intervals, and the
//! first metric's total for event trends — which may be fractional or
//! negative (`sum`, `avg`, `min`, `max`, percentiles) or missing (an
//! average over no values). Missing sizes come last.

use std::cmp::Ordering;

use serde_json::{json, Map, Value as Json};

use crate::model::{Breakdown, Key};

/// How large a group is, for ordering.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Size {
    /// A count (users, pairs, events), compared exactly.
    Count(u64),
    /// A measured value (a sum, an average, a percentile…).
    Value(f64),
    /// No value (an average of nothing): after every group that has one.
    Missing,
}

impl From<Option<f64>> for Size {
    fn from(v: Option<f64>) -> Size {
        match v {
            Some(x) if !x.is_nan() => Size::Value(x),
            _ => Size::Missing,
        }
    }
}

impl Size {
    /// Largest first, missing last. Counts compare as integers; a count
    /// and a value (never both in one result) compare as numbers.
    pub fn cmp_desc(self, other: Size) -> Ordering {
        match (self, other) {
            (Size::Missing, Size::Missing) => Ordering::Equal,
            (Size::Missing, _) => Ordering::Greater,
            (_, Size::Missing) => Ordering::Less,
            (Size::Count(a), Size::Count(b)) => b.cmp(&a),
            (a, b) => {
                let f = |s: Size| match s {
                    Size::Count(n) => n as f64,
                    Size::Value(x) => x,
                    Size::Missing => f64::NEG_INFINITY,
                };
                // No NaN here (see `From`); -0.0 and 0.0 are one size.
                f(b).partial_cmp(&f(a)).unwrap_or(Ordering::Equal)
            }
        }
    }
}

/// Renders a key as a JSON object `{dimension: value}`.
pub fn key_json(dims: &[Breakdown], key: &Key) -> Json {
    let mut m = Map::new();
    for (d, v) in dims.iter().zip(key) {
        m.insert(
            d.name().to_owned(),
            v.as_ref().map_or(Json::Null, |v| v.to_json()),
        );
    }
    Json::Object(m)
}

/// Orders `groups` (see the module doc), keeps `limit` of them and sets
/// `out["groups"]` to each rendered as `render(group)` plus its `key`;
/// when groups were cut, `out["groups_truncated"]` says how many there were.
pub fn render<T>(
    out: &mut Json,
    dims: &[Breakdown],
    limit: usize,
    groups: Vec<(Key, T)>,
    size: impl Fn(&T) -> Size,
    mut render: impl FnMut(T) -> Json,
) {
    // Render each key once, not once per comparison.
    let mut groups: Vec<(Size, String, Json, T)> = groups
        .into_iter()
        .map(|(k, g)| {
            let key = key_json(dims, &k);
            (size(&g), key.to_string(), key, g)
        })
        .collect();
    groups.sort_by(|a, b| a.0.cmp_desc(b.0).then_with(|| a.1.cmp(&b.1)));
    let total = groups.len();
    groups.truncate(limit);
    let list = groups
        .into_iter()
        .map(|(_, _, key, g)| {
            let mut v = render(g);
            if let Some(m) = v.as_object_mut() {
                m.insert("key".into(), key);
            }
            v
        })
        .collect();
    out["groups"] = Json::Array(list);
    if total > limit {
        out["groups_truncated"] = json!(total);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_sizes_largest_first_ties_by_key_missing_last() {
        let dims = [Breakdown::User("k".into())];
        let key = |s: &str| vec![Some(footprint_storage::Value::Str(s.into()))];
        let groups = vec![
            (key("a"), Size::Value(2.25)),
            (key("b"), Size::Value(-1.0)),
            (key("c"), Size::Value(2.75)),
            (key("d"), Size::Value(-3.0)),
            (key("e"), Size::Value(0.5)),
            (key("f"), Size::Missing),
            (key("g"), Size::Value(2.25)),
            (key("h"), Size::Value(-0.0)),
            (key("i"), Size::Value(0.0)),
        ];
        let names = |limit: usize| {
            let mut out = json!({});
            render(
                &mut out,
                &dims,
                limit,
                groups.clone(),
                |s| *s,
                |_| json!({}),
            );
            let list: Vec<String> = out["groups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g["key"]["k"].as_str().unwrap().to_owned())
                .collect();
            (list.join(""), out.get("groups_truncated").cloned())
        };
        assert_eq!(names(100), ("cagehibdf".into(), None));
        assert_eq!(names(4), ("cage".into(), Some(json!(9))));
        // Counts compare exactly, beyond f64's integers.
        let big = vec![
            (key("x"), Size::Count(u64::MAX - 1)),
            (key("y"), Size::Count(u64::MAX)),
            (key("z"), Size::Count(0)),
        ];
        let mut out = json!({});
        render(&mut out, &dims, 2, big, |s| *s, |_| json!({}));
        assert_eq!(out["groups"][0]["key"]["k"], json!("y"));
        assert_eq!(out["groups"][1]["key"]["k"], json!("x"));
        assert_eq!(out["groups_truncated"], json!(3));
    }
}
