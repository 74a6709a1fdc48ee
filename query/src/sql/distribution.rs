//! distribution as SQL: one value per user who did the event (events,
//! distinct local days, or the sum of a property added in the user's
//! (time, arrival) order, as the engine adds it), then the buckets by
//! lower bounds and the statistics.

use super::buckets::bucket;
use super::{event_cond, num_leaf, quote};
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
    // A user's group is that of their first matching row.
    let key = super::groups::key(c)?.unwrap_or_else(|| "''".to_owned());
    let per_user = format!(
        "SELECT user, {value} AS v, argMin({key}, (ts, seq)) AS g FROM ev WHERE {cond} GROUP BY user"
    );
    let b = &q.bounds;
    let hist = super::bins(b, "v").join(", ");
    let (head, grouped) = super::groups::grouping(c);
    let agg = format!(
        "SELECT {head}count() AS n, countIf(v < {b0:?}) AS below, [{hist}] AS hist, min(v) AS mn, \
         quantileExactInclusive(0.5)(v) AS med, avg(v) AS av, max(v) AS mx FROM ({per_user}){grouped}",
        b0 = b[0]
    );
    Ok(format!(
        "agg AS ({agg})\n{}",
        super::groups::render(c, "SELECT * FROM agg", "n", |pre| leaves(pre, b))
    ))
}

/// The leaves of one distribution, paths starting with `pre`.
fn leaves(pre: &str, b: &[f64]) -> String {
    let p = |path: &str| format!("concat({pre}, {path})");
    let stat =
        |name: &str, v: &str| num_leaf(&p(&format!("'{name}'")), &format!("if(n = 0, NULL, {v})"));
    let mut leaves = vec![
        num_leaf(&p("'users'"), "n - below"),
        num_leaf(&p("'below'"), "below"),
        stat("min", "mn"),
        stat("median", "med"),
        stat("avg", "av"),
        stat("max", "mx"),
    ];
    for (i, lo) in b.iter().enumerate() {
        let f = |f: &str| p(&format!("'buckets[{i}].{f}'"));
        leaves.push(num_leaf(&f("from"), &format!("{lo:?}")));
        let hi = b.get(i + 1).map_or("NULL".to_owned(), |h| format!("{h:?}"));
        leaves.push(num_leaf(&f("to"), &hi));
        leaves.push(num_leaf(&f("users"), &format!("hist[{}]", i + 1)));
    }
    format!("[{}]", leaves.join(", "))
}
