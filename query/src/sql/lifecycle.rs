//! lifecycle as SQL: per user the bucket of their first matching event
//! ever (history before the range counts) and their active buckets in
//! the grid (and the one before it), then per bucket new, returning,
//! resurrecting and dormant users.

use super::buckets::{offset, Grid};
use super::{event_cond, long_form, num_leaf, quote};
use crate::error::{QueryError, Result};
use crate::lifecycle::Lifecycle;
use crate::model::Common;

/// The lifecycle query's SQL after `WITH ev AS (…),`; `all` is the events
/// relation before the range's end, without its start (lifecycle looks
/// back).
pub(super) fn sql(q: &Lifecycle, c: &Common, g: &Grid, all: &str) -> Result<String> {
    if q.new_by.is_some() {
        return Err(QueryError::not_translatable(
            "new_by",
            "profile times are not translated yet",
        ));
    }
    let n = g.labels.len();
    let cond = event_cond(&q.event, "event")?;
    let k = offset(g.unit, &quote(c.tz.name()), g.from, "ts");
    let per_user = format!(
        "SELECT user, min(k) AS first, groupUniqArrayIf(k, (ts >= {from} AND k >= 0 AND k < {n}) OR k = -1) AS act \
         FROM (SELECT user, ts, {k} AS k FROM ({all}) WHERE {cond}) GROUP BY user",
        from = g.from
    );
    let agg = format!(
        "SELECT countIfResample(0, {n}, 1)(has(act, b) AND b = first, b) AS new, \
         countIfResample(0, {n}, 1)(has(act, b) AND b != first AND has(act, b - 1), b) AS returning, \
         countIfResample(0, {n}, 1)(has(act, b) AND b != first AND NOT has(act, b - 1), b) AS resurrecting, \
         arrayMap(x -> -toInt64(x), countIfResample(0, {n}, 1)(NOT has(act, b) AND has(act, b - 1), b)) AS dormant \
         FROM ({per_user}) ARRAY JOIN arrayMap(x -> toInt64(x), range({n})) AS b"
    );
    let mut leaves = vec![g.label_leaves()];
    for f in ["new", "returning", "resurrecting", "dormant"] {
        leaves.push(format!(
            "[{}], arrayMap((x, i) -> {}, {f}, arrayEnumerate({f}))",
            num_leaf(&format!("'{f}[]'"), "NULL"),
            num_leaf(&format!("concat('{f}[', toString(i - 1), ']')"), "x")
        ));
    }
    Ok(format!(
        "agg AS ({agg})\n{}",
        long_form(
            &format!("arrayConcat({})", leaves.join(", ")),
            "SELECT * FROM agg"
        )
    ))
}
