//! attribution as SQL: per conversion in the range, the user's touchpoints
//! up to it in (time, arrival) order within the lookback (which reaches
//! before the range), each model's credit per distinct value, summed per
//! value; rows by the first model's conversions, values that tie (within
//! 1e-9) by value, as the engine orders them.

use serde_json::Value as Json;

use super::heatmap::string_form;
use super::{event_cond, long_form, num_leaf, quote, text_leaf};
use crate::attribution::{Attribution, By, Model, DIRECT};
use crate::error::Result;
use crate::model::Common;

/// One model's credit to value `v` of a conversion whose touchpoints are
/// `tp` (value `.5`, time `.1`), `n` of them.
fn credit(m: Model) -> &'static str {
    match m {
        Model::First => "toFloat64(tp[1].5 = v)",
        Model::Last => "toFloat64(tp[n].5 = v)",
        Model::Linear => "countEqual(vals, v) / n",
        Model::Position => {
            "multiIf(n = 1, 1., n = 2, 0.5 * ((tp[1].5 = v) + (tp[n].5 = v)), \
             0.4 * ((tp[1].5 = v) + (tp[n].5 = v)) + 0.2 * countEqual(arraySlice(vals, 2, n - 2), v) / (n - 2))"
        }
        Model::TimeDecay => {
            "arraySum(arrayMap(x -> if(x.5 = v, exp2(-(tp[n].1 - x.1) / h), 0.), tp)) / \
             arraySum(arrayMap(x -> exp2(-(tp[n].1 - x.1) / h), tp))"
        }
        Model::Participation => "1.",
    }
}

/// The attribution's SQL after `WITH ev AS (…),`; `all` is the events
/// relation before the range's end (touchpoints reach back).
pub(super) fn sql(q: &Attribution, c: &Common, query: &Json, all: &str) -> Result<String> {
    // Every touch has a channel; a property's value must be present and
    // not empty.
    let value = match q.by {
        By::Channel(_) => super::channels::channel()?,
        By::Prop(_) => {
            let by = query["by"]["event_prop"].as_str().unwrap_or_default();
            string_form(by, "by.event_prop")?
        }
    };
    let touch = event_cond(&q.touch, "touch")?;
    let conv = event_cond(&q.conversion, "conversion")?;
    let in_range = c.range.map_or("1".to_owned(), |(from, to)| {
        format!("ts >= {from} AND ts < {to}")
    });
    let amount = match query.get("value_prop").and_then(Json::as_str) {
        Some(p) => {
            let k = quote(p);
            format!(
                "if(JSONType(props, {k}) IN ('Int64', 'UInt64', 'Double'), JSONExtractFloat(props, {k}), 0.)"
            )
        }
        None => "0.".to_owned(),
    };
    let rows = format!(
        "SELECT user, arraySort(groupArray((ts, seq, {touch}, {conv} AND {in_range}, ifNull({value}, ''), {amount}))) AS rs \
         FROM ({all}) WHERE {touch} OR {conv} GROUP BY user"
    );
    let credits = q
        .models
        .iter()
        .map(|m| credit(*m))
        .collect::<Vec<_>>()
        .join(", ");
    let nm = q.models.len();
    // Per conversion: (touchpoints, amount); then per distinct value its
    // credits in every model.
    let per_conv = format!(
        "SELECT user, cv.2 AS amount, cv.1 AS tp, length(tp) AS n, arrayMap(x -> x.5, tp) AS vals, \
         toFloat64({h}) AS h FROM (SELECT user, arrayJoin(arrayMap(i -> (arrayFilter(x -> x.3 AND x.1 > rs[i].1 - {lb} \
         AND x.5 != '', arraySlice(rs, 1, i)), rs[i].6), arrayFilter(i -> rs[i].4, arrayEnumerate(rs)))) AS cv FROM ({rows}))",
        h = q.half_life,
        lb = q.lookback,
    );
    let per_value = format!(
        "SELECT user, amount, arrayJoin(if(n = 0, [({direct}, arrayWithConstant({nm}, 1.))], \
         arrayMap(v -> (v, [{credits}]), arrayDistinct(vals)))) AS vc FROM ({per_conv})",
        direct = quote(DIRECT)
    );
    let values = format!(
        "SELECT vc.1 AS value, sumForEach(vc.2) AS conv, sumForEach(arrayMap(x -> x * amount, vc.2)) AS rev \
         FROM ({per_value}) GROUP BY value"
    );
    // The engine's order: first model's conversions descending; runs of
    // values within 1e-9 of each other by value.
    let ordered = "arrayMap(r -> r.2, arraySort(r -> (r.1, r.2.1), arrayMap((r, run) -> (run, r), sorted, \
         arrayFold((acc, i) -> arrayPushBack(acc, if(i = 1, 0, acc[i - 1] + \
         toUInt64(NOT (abs(sorted[i - 1].2[1] - sorted[i].2[1]) <= 1e-9 * greatest(abs(sorted[i - 1].2[1]), abs(sorted[i].2[1])) + 1e-12)))), \
         arrayEnumerate(sorted), CAST([], 'Array(UInt64)')))))";
    let agg = format!(
        "SELECT {ordered} AS rows_, (SELECT count() FROM ({per_conv})) AS conversions, \
         (SELECT uniqExact(user) FROM ({per_conv})) AS users, (SELECT sum(amount) FROM ({per_conv})) AS revenue \
         FROM (SELECT arraySort(r -> (-r.2[1], r.1), groupArray((value, conv, rev))) AS sorted FROM ({values}))"
    );
    let with_revenue = query.get("value_prop").is_some();
    let limit = c.limit;
    let mut row = vec![text_leaf(
        "concat('rows[', toString(i - 1), '].value')",
        "r.1",
    )];
    for (k, m) in q.models.iter().enumerate() {
        let p = |f: &str| format!("concat('rows[', toString(i - 1), '].{}.{f}')", m.name());
        row.push(num_leaf(&p("conversions"), &format!("r.2[{}]", k + 1)));
        if with_revenue {
            row.push(num_leaf(&p("revenue"), &format!("r.3[{}]", k + 1)));
        }
    }
    let mut total = vec![
        num_leaf("'rows[]'", "NULL"),
        num_leaf("'total.conversions'", "conversions"),
        num_leaf("'total.users'", "users"),
    ];
    if with_revenue {
        total.push(num_leaf("'total.revenue'", "revenue"));
    }
    let leaves = format!(
        "arrayConcat([{}], arrayFlatten(arrayMap((r, i) -> [{}], arraySlice(rows_, 1, {limit}), \
         arrayEnumerate(arraySlice(rows_, 1, {limit})))))",
        total.join(", "),
        row.join(", ")
    );
    Ok(format!(
        "agg AS ({agg})\n{}",
        long_form(&leaves, "SELECT * FROM agg")
    ))
}
