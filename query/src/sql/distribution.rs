//! distribution as SQL: one value per user who did the event (events,
//! distinct local days, or the sum of a property added in the user's
//! (time, arrival) order, as the engine adds it), then the buckets by
//! lower bounds and the statistics.

use super::buckets::bucket;
use super::{event_cond, long_form, num_leaf, quote};
use crate::distribution::{Distribution, Measure};
use crate::error::Result;
use crate::model::Common;
use crate::time::Unit;

/// The distribution's SQL after `WITH ev AS (…),`.
pub(super) fn sql(q: &Distribution, c: &Common) -> Result<String> {
    let cond = event_cond(&q.event, "event")?;
    let value = match &q.measure {
        Measure::Count => "toFloat64(count())".to_owned(),
        Measure::Days => {
            let (day, _) = bucket(Unit::Day, &quote(c.tz.name()), "ts");
            format!("toFloat64(uniqExact({day}))")
        }
        Measure::Sum { prop, .. } => {
            let key = quote(prop);
            // Float addition depends on order: add as the engine does.
            format!(
                "arrayFold((acc, x) -> acc + x.3, arraySort(groupArray((ts, seq, \
                 if(JSONType(props, {key}) IN ('Int64', 'UInt64', 'Double'), JSONExtractFloat(props, {key}), 0.)))), 0.)"
            )
        }
    };
    let per_user = format!("SELECT user, {value} AS v FROM ev WHERE {cond} GROUP BY user");
    let b = &q.bounds;
    let hist = b
        .iter()
        .enumerate()
        .map(|(i, lo)| match b.get(i + 1) {
            Some(hi) => format!("countIf(v >= {lo:?} AND v < {hi:?})"),
            None => format!("countIf(v >= {lo:?})"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let agg = format!(
        "SELECT count() AS n, countIf(v < {b0:?}) AS below, [{hist}] AS hist, min(v) AS mn, \
         quantileExactInclusive(0.5)(v) AS med, avg(v) AS av, max(v) AS mx FROM ({per_user})",
        b0 = b[0]
    );
    let stat =
        |name: &str, v: &str| num_leaf(&format!("'{name}'"), &format!("if(n = 0, NULL, {v})"));
    let mut leaves = vec![
        num_leaf("'users'", "n - below"),
        num_leaf("'below'", "below"),
        stat("min", "mn"),
        stat("median", "med"),
        stat("avg", "av"),
        stat("max", "mx"),
    ];
    for (i, lo) in b.iter().enumerate() {
        let p = |f: &str| format!("'buckets[{i}].{f}'");
        leaves.push(num_leaf(&p("from"), &format!("{lo:?}")));
        let hi = b.get(i + 1).map_or("NULL".to_owned(), |h| format!("{h:?}"));
        leaves.push(num_leaf(&p("to"), &hi));
        leaves.push(num_leaf(&p("users"), &format!("hist[{}]", i + 1)));
    }
    Ok(format!(
        "agg AS ({agg})\n{}",
        long_form(&format!("[{}]", leaves.join(", ")), "SELECT * FROM agg")
    ))
}
