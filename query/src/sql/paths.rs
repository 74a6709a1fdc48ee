//! paths as SQL: sessions cut as `sessions` cuts them, each session's walk
//! (from its first `start` event, or back from its first `end` event, or
//! from its first event) as an `arrayFold`, labels collapsed, then per step
//! the `top` labels by count (the rest `$other`), nodes, drop-offs and
//! links counted per session or per user.

use serde_json::Value as Json;

use super::heatmap::string_form;
use super::sessions::{ignored, in_list, sessionizer};
use super::{event_cond, long_form, num_leaf, quote, text_leaf};
use crate::error::Result;
use crate::model::Common;
use crate::paths::{Anchor, Paths, OTHER};

/// The paths query's SQL after `WITH ev AS (…),`.
pub(super) fn sql(q: &Paths, c: &Common, query: &Json) -> Result<String> {
    let tz = quote(c.tz.name());
    let (day, split, fold) = sessionizer(&q.rules, &tz, query);
    // A row's label: its name, or the label property's value (for the
    // label events) when present.
    let label = match query["label"]["prop"].as_str() {
        Some(p) => {
            let v = string_form(p, "label.prop")?;
            let events = match query["label"].get("events").and_then(Json::as_array) {
                Some(a) => in_list(
                    &a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect::<Vec<_>>(),
                ),
                None => "1".to_owned(),
            };
            format!("if({events} AND {v} IS NOT NULL, assumeNotNull({v}), event)")
        }
        None => "event".to_owned(),
    };
    let anchor = match &q.anchor {
        Anchor::First => "0".to_owned(),
        Anchor::Start(r) => event_cond(r, "start")?,
        Anchor::End(r) => event_cond(r, "end")?,
    };
    let rows = format!(
        "SELECT user, arraySort(groupArray((ts, seq, {day}, {split}, {label}, toUInt8({anchor})))) AS rs \
         FROM ev WHERE NOT ({ignored}) GROUP BY user",
        ignored = ignored(query)
    );
    let steps = q.steps;
    let start = matches!(q.anchor, Anchor::Start(_));
    let end = matches!(q.anchor, Anchor::End(_));
    // The walk: (anchored, done, labels).
    let push = if q.collapse {
        "if(length(acc.3) > 0 AND acc.3[-1] = x.1, acc.3, arrayPushBack(acc.3, x.1))"
    } else {
        "arrayPushBack(acc.3, x.1)"
    };
    let done = if end {
        "x.2 = 1".to_owned()
    } else {
        format!("length(l) >= {steps}")
    };
    let step = format!("arrayMap(l -> (toUInt8(1), toUInt8({done}), l), [{push}])[1]");
    let body = if start {
        format!("if(acc.2 = 1, acc, if(acc.1 = 0 AND x.2 = 0, acc, {step}))")
    } else {
        format!("if(acc.2 = 1, acc, {step})")
    };
    let walk = format!(
        "arrayFold((acc, x) -> {body}, arrayMap(y -> (y.3, y.4), arraySort(groupArray((x.1, x.2, x.5, x.6)))), \
         (toUInt8({a0}), toUInt8(0), CAST([], 'Array(String)')))",
        a0 = u8::from(!start)
    );
    let kept = if end {
        format!("if(w.2 = 1, arraySlice(w.3, greatest(toInt64(length(w.3)) - {steps} + 1, 1)), [])")
    } else if start {
        format!("if(w.1 = 1, arraySlice(w.3, 1, {steps}), [])")
    } else {
        format!("arraySlice(w.3, 1, {steps})")
    };
    let sessions = format!(
        "SELECT user, {kept} AS path FROM (SELECT user, sid, {walk} AS w FROM \
         (SELECT user, rs, {fold} AS sids FROM ({rows})) ARRAY JOIN rs AS x, sids AS sid GROUP BY user, sid) \
         WHERE length(path) > 0"
    );
    // Counting units: a session (its path), or a user (their distinct paths).
    let units = if q.users {
        format!("SELECT user, groupUniqArray(path) AS ps FROM ({sessions}) GROUP BY user")
    } else {
        format!("SELECT user, [path] AS ps FROM ({sessions})")
    };
    let other = quote(OTHER);
    let top = q.top;
    let keep = format!(
        "(SELECT groupArray((k, l)) FROM (SELECT kl.1 AS k, kl.2 AS l, count() AS c, \
         row_number() OVER (PARTITION BY k ORDER BY c DESC, l ASC) AS rn FROM units \
         ARRAY JOIN arrayDistinct(arrayFlatten(arrayMap(p -> arrayMap((l, k) -> (k, l), p, arrayEnumerate(p)), ps))) AS kl \
         GROUP BY k, l) WHERE rn <= {top})"
    );
    let merged = format!(
        "SELECT user, arrayMap(p -> arrayMap((l, k) -> if(has(keep, (k, l)), l, {other}), p, arrayEnumerate(p)), ps) AS mp \
         FROM units, (SELECT {keep} AS keep) AS kp"
    );
    let through = "SELECT n.1 AS k, n.2 AS l, count() AS cnt FROM merged ARRAY JOIN \
         arrayDistinct(arrayFlatten(arrayMap(p -> arrayMap((l, k) -> (k, l), p, arrayEnumerate(p)), mp))) AS n \
         GROUP BY k, l";
    // A path shorter than `steps` drops off at its last node.
    let drops = format!(
        "SELECT d.1 AS k, d.2 AS l, count() AS dc FROM merged ARRAY JOIN \
         arrayDistinct(arrayMap(p -> (length(p), p[-1]), arrayFilter(p -> length(p) < {steps}, mp))) AS d \
         GROUP BY k, l"
    );
    let nodes = format!(
        "SELECT t.k AS k, t.l AS l, t.cnt AS cnt, d.dc AS drop FROM ({through}) AS t \
         LEFT JOIN ({drops}) AS d ON t.k = d.k AND t.l = d.l"
    );
    let links = "SELECT e.1 AS k, e.2 AS a, e.3 AS b, count() AS cnt FROM merged ARRAY JOIN \
         arrayDistinct(arrayFlatten(arrayMap(p -> arrayMap(i -> (i, p[i], p[i + 1]), range(1, length(p))), mp))) AS e \
         GROUP BY k, a, b";
    let agg = "SELECT (SELECT count() FROM units) AS total, \
         (SELECT arraySort(x -> (x.1, -x.3, x.2), groupArray((k, l, cnt, drop))) FROM nodes) AS ns, \
         (SELECT arraySort(x -> (x.1, -x.4, x.2, x.3), groupArray((k, a, b, cnt))) FROM links) AS ls";
    let p = |path: &str| format!("concat('{path}[', toString(i - 1), ']')");
    let leaves = format!(
        "arrayConcat([{paths}, {count}, {nd}, {ld}], \
         arrayFlatten(arrayMap((x, i) -> [{step}, {lab}, {cnt}, {drop}], ns, arrayEnumerate(ns))), \
         arrayFlatten(arrayMap((x, i) -> [{f0}, {f1}, {t0}, {t1}, {lc}], ls, arrayEnumerate(ls))))",
        paths = num_leaf("'paths'", "total"),
        count = text_leaf(
            "'count'",
            &quote(if q.users { "users" } else { "sessions" })
        ),
        nd = num_leaf("'nodes[]'", "NULL"),
        ld = num_leaf("'links[]'", "NULL"),
        step = num_leaf(&format!("concat({}, '.step')", p("nodes")), "x.1"),
        lab = text_leaf(&format!("concat({}, '.label')", p("nodes")), "x.2"),
        cnt = num_leaf(&format!("concat({}, '.count')", p("nodes")), "x.3"),
        drop = num_leaf(&format!("concat({}, '.dropoff')", p("nodes")), "x.4"),
        f0 = num_leaf(&format!("concat({}, '.from[0]')", p("links")), "x.1"),
        f1 = text_leaf(&format!("concat({}, '.from[1]')", p("links")), "x.2"),
        t0 = num_leaf(&format!("concat({}, '.to[0]')", p("links")), "x.1 + 1"),
        t1 = text_leaf(&format!("concat({}, '.to[1]')", p("links")), "x.3"),
        lc = num_leaf(&format!("concat({}, '.count')", p("links")), "x.4"),
    );
    Ok(format!(
        "units AS ({units}),\nmerged AS ({merged}),\nnodes AS ({nodes}),\nlinks AS ({links}),\nagg AS ({agg})\n{}",
        long_form(&leaves, "SELECT * FROM agg")
    ))
}
