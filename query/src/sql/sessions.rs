//! sessions as SQL: each user's visible, not ignored events in (time,
//! arrival) order cut into sessions by the engine's rules (timeout, max
//! length, midnight, a property's change) with an `arrayFold`, then per
//! session its start, duration, events, page events and entry and exit
//! values, and the statistics per bucket of the session start.

use serde_json::Value as Json;

use super::buckets::{bucket, offset, Grid};
use super::heatmap::string_form;
use super::{num_leaf, quote, text_leaf};
use crate::error::Result;
use crate::model::Common;
use crate::sessionize::{SessionRules, Split, DEFAULT_IGNORE};
use crate::sessions::{Sessions, HISTOGRAM};
use crate::time::Unit;

/// Event names of a list field of the query, or `default`.
pub(super) fn names(query: &Json, key: &str, default: &[&str]) -> Vec<String> {
    match query.get(key).and_then(Json::as_array) {
        Some(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        None => default.iter().map(|s| (*s).to_owned()).collect(),
    }
}

pub(super) fn in_list(names: &[String]) -> String {
    if names.is_empty() {
        return "0".to_owned();
    }
    let l: Vec<String> = names.iter().map(|n| quote(n)).collect();
    format!("event IN ({})", l.join(", "))
}

/// The sessionizer (`crate::sessionize`): the expressions of a row's local
/// day (for `split: "midnight"`) and split value (for a property split;
/// equal values, 10 and 10.0 too, are equal strings, '' when absent), and
/// the fold that numbers the sessions of `rs`, a user's rows sorted by
/// (time, arrival) as tuples (time, arrival, day, split value, …).
pub(super) fn sessionizer(r: &SessionRules, tz: &str, query: &Json) -> (String, String, String) {
    let day = match r.split {
        Split::Midnight => bucket(Unit::Day, tz, "ts").0,
        _ => "toDate('1970-01-01')".to_owned(),
    };
    let split = match (&r.split, query["split"]["prop"].as_str()) {
        (Split::Prop(_), Some(name)) => {
            let k = quote(name);
            format!(
                "multiIf(JSONType(props, {k}) = 'String', concat('s', JSONExtractString(props, {k})), \
                 JSONType(props, {k}) = 'Bool', concat('b', toString(JSONExtractBool(props, {k}))), \
                 JSONType(props, {k}) IN ('Int64', 'UInt64', 'Double'), concat('n', toString(JSONExtractFloat(props, {k}))), '')"
            )
        }
        _ => "''".to_owned(),
    };
    let midnight = matches!(r.split, Split::Midnight);
    // State: (previous time, session start, previous day, the session's
    // last split value ('' none), session number, numbers so far).
    let new = format!(
        "length(acc.6) = 0 OR x.1 - acc.1 >= {timeout} OR x.1 - acc.2 >= {max_len}{mid} \
         OR (x.4 != '' AND acc.4 != '' AND x.4 != acc.4)",
        timeout = r.timeout,
        max_len = r.max_length,
        mid = if midnight { " OR x.3 != acc.3" } else { "" },
    );
    let fold = format!(
        "arrayFold((acc, x) -> arrayMap(nw -> (x.1, if(nw, x.1, acc.2), x.3, if(x.4 != '', x.4, if(nw, '', acc.4)), \
         acc.5 + nw, arrayPushBack(acc.6, acc.5 + nw)), [{new}])[1], rs, \
         (toInt64(0), toInt64(0), toDate('1970-01-01'), '', toUInt64(0), CAST([], 'Array(UInt64)'))).6"
    );
    (day, split, fold)
}

/// The events a list field names (`ignore_events`, default
/// `DEFAULT_IGNORE`), as a condition.
pub(super) fn ignored(query: &Json) -> String {
    in_list(&names(query, "ignore_events", &DEFAULT_IGNORE))
}

/// The sessions query's SQL after `WITH ev AS (…),`.
pub(super) fn sql(q: &Sessions, c: &Common, g: &Grid, query: &Json) -> Result<String> {
    let tz = quote(c.tz.name());
    let n = g.labels.len();
    let r = &q.rules;
    let ignored = ignored(query);
    let pages = in_list(&names(query, "page_events", &["$pageview", "$screen"]));
    let page_prop = query
        .get("page_prop")
        .and_then(Json::as_str)
        .unwrap_or("$current_url");
    let page_val = string_form(page_prop, "page_prop")?;
    let (day, split, fold) = sessionizer(r, &tz, query);
    // A session's group is that of its first event (the landing event).
    let key = super::groups::key(c)?.unwrap_or_else(|| "''".to_owned());
    let rows = format!(
        "SELECT user, arraySort(groupArray((ts, seq, {day}, {split}, toUInt8({pages}), tuple({page_val}), {key}))) AS rs \
         FROM ev WHERE NOT ({ignored}) GROUP BY user"
    );
    let sessions = format!(
        "SELECT user, sid, min(x.1) AS start, max(x.1) - min(x.1) AS d, count() AS events, \
         sum(x.5) AS pages, argMinIf(x.6, (x.1, x.2), x.5 = 1).1 AS entry, argMaxIf(x.6, (x.1, x.2), x.5 = 1).1 AS exit, argMin(x.7, (x.1, x.2)) AS g, \
         pages > 0 AND pages <= 1 AND d < {bu} AS bounce, {b} AS b \
         FROM (SELECT user, rs, {fold} AS sids FROM ({rows})) ARRAY JOIN rs AS x, sids AS sid GROUP BY user, sid",
        bu = q.bounce_under,
        b = offset(g.unit, &tz, g.from, "start"),
    );
    let rs = format!("Resample(0, {n}, 1)");
    let rs2 = format!("Resample(0.5, 0, {n}, 1)");
    let ratio = |a: &str, b: &str| format!("arrayMap((x, y) -> if(y = 0, NULL, x / y), {a}, {b})");
    let hist = super::bins(&HISTOGRAM, "d").join(", ");
    let (head, grouped) = super::groups::grouping(c);
    let agg = format!(
        "SELECT {head}count{rs}(b) AS bs, uniqExact{rs}(user, b) AS bu, sum{rs}(d, b) AS bd, \
         quantileExactInclusive{rs2}(d, b) AS bm, sum{rs}(events, b) AS be, \
         sum{rs}(toUInt64(bounce), b) AS bb, countIf{rs}(pages > 0, b) AS bp, \
         count() AS ts_, uniqExact(user) AS tu, sum(d) AS td, quantileExactInclusive(0.5)(d) AS tm, \
         sum(events) AS te, sum(toUInt64(bounce)) AS tb, countIf(pages > 0) AS tp, [{hist}] AS hist, \
         (SELECT arraySort(x -> (-x.2, x.1), groupArray((e, s, bo))) FROM (SELECT entry AS e, count() AS s, \
         sum(toUInt64(bounce)) AS bo FROM sessions WHERE entry IS NOT NULL GROUP BY entry)) AS entries, \
         (SELECT arraySort(x -> (-x.2, x.1), groupArray((e, s))) FROM (SELECT exit AS e, count() AS s \
         FROM sessions WHERE exit IS NOT NULL GROUP BY exit)) AS exits \
         FROM sessions WHERE b >= 0 AND b < {n}{grouped}"
    );
    // Groups have the series and the total; the rest is the top level's.
    let mut top_only = vec![g.label_leaves()];
    let mut leaves = Vec::new();
    let series = [
        ("sessions", "bs".to_owned()),
        ("users", "bu".to_owned()),
        ("avg_duration_ms", ratio("bd", "bs")),
        (
            "median_duration_ms",
            "arrayMap((x, y) -> if(y = 0, NULL, x), bm, bs)".to_owned(),
        ),
        ("events_per_session", ratio("be", "bs")),
        ("bounce_rate", ratio("bb", "bp")),
    ];
    for (name, arr) in series {
        leaves.push(format!(
            "[{}], arrayMap((x, i) -> {}, {arr}, arrayEnumerate({arr}))",
            num_leaf(&format!("concat(pre, '{name}[]')"), "NULL"),
            num_leaf(
                &format!("concat(pre, '{name}[', toString(i - 1), ']')"),
                "x"
            )
        ));
    }
    let div = |a: &str, b: &str| format!("if({b} = 0, NULL, {a} / {b})");
    leaves.push(format!(
        "[{}]",
        [
            num_leaf("concat(pre, 'total.sessions')", "ts_"),
            num_leaf("concat(pre, 'total.users')", "tu"),
            num_leaf("concat(pre, 'total.avg_duration_ms')", &div("td", "ts_")),
            num_leaf(
                "concat(pre, 'total.median_duration_ms')",
                "if(ts_ = 0, NULL, tm)"
            ),
            num_leaf("concat(pre, 'total.events_per_session')", &div("te", "ts_")),
            num_leaf("concat(pre, 'total.bounce_rate')", &div("tb", "tp")),
            num_leaf("concat(pre, 'total.sessions_per_user')", &div("ts_", "tu")),
        ]
        .join(", ")
    ));
    let mut hist_leaves = Vec::new();
    for (i, lo) in HISTOGRAM.iter().enumerate() {
        hist_leaves.push(num_leaf(
            &format!("'duration_histogram[{i}].from_ms'"),
            &lo.to_string(),
        ));
        hist_leaves.push(num_leaf(
            &format!("'duration_histogram[{i}].sessions'"),
            &format!("hist[{}]", i + 1),
        ));
    }
    top_only.push(format!("[{}]", hist_leaves.join(", ")));
    let top = q.top;
    top_only.push(format!(
        "[{}, {}], arrayFlatten(arrayMap((x, i) -> [{}, {}, {}], arraySlice(entries, 1, {top}), arrayEnumerate(arraySlice(entries, 1, {top})))), \
         arrayFlatten(arrayMap((x, i) -> [{}, {}], arraySlice(exits, 1, {top}), arrayEnumerate(arraySlice(exits, 1, {top}))))",
        num_leaf("'entry[]'", "NULL"),
        num_leaf("'exit[]'", "NULL"),
        text_leaf("concat('entry[', toString(i - 1), '].value')", "x.1"),
        num_leaf("concat('entry[', toString(i - 1), '].sessions')", "x.2"),
        num_leaf("concat('entry[', toString(i - 1), '].bounce_rate')", "x.3 / x.2"),
        text_leaf("concat('exit[', toString(i - 1), '].value')", "x.1"),
        num_leaf("concat('exit[', toString(i - 1), '].sessions')", "x.2"),
    ));
    let top_only = format!("arrayConcat({})", top_only.join(", "));
    let top_only = if c.breakdown.is_empty() {
        top_only
    } else {
        format!("if(is_total, {top_only}, [])")
    };
    let all = format!("arrayConcat({top_only}, {})", leaves.join(", "));
    Ok(format!(
        "sessions AS ({sessions}),\nagg AS ({agg})\n{}",
        super::groups::render(c, "SELECT * FROM agg", "ts_", |_| all.clone())
    ))
}
