//! stickiness as SQL: per user the buckets of the grid whose count of
//! matching events meets the criteria, then how many users have k such
//! buckets (or a longest run of k), as counts by k.

use super::buckets::{offset, Grid};
use super::{event_cond, long_form, num_leaf, quote};
use crate::error::Result;
use crate::model::Common;
use crate::stickiness::{Op, Stickiness};

/// The stickiness query's SQL after `WITH ev AS (…),`.
pub(super) fn sql(q: &Stickiness, c: &Common, g: &Grid) -> Result<String> {
    let n = g.labels.len();
    let cond = event_cond(&q.event, "event")?;
    let b = offset(g.unit, &quote(c.tz.name()), g.from, "ts");
    let op = match q.criteria.op {
        Op::Eq => "=",
        Op::Ne => "!=",
        Op::Gt => ">",
        Op::Gte => ">=",
        Op::Lt => "<",
        Op::Lte => "<=",
    };
    let active = format!(
        "SELECT user, b FROM (SELECT user, {b} AS b FROM ev WHERE {cond}) WHERE b >= 0 AND b < {n} \
         GROUP BY user, b HAVING toFloat64(count()) {op} {:?}",
        q.criteria.value
    );
    // Buckets, or the longest run of consecutive ones.
    let k = if q.consecutive {
        "arrayFold((acc, x) -> (x, if(x = acc.1 + 1, acc.2 + 1, 1), greatest(acc.3, if(x = acc.1 + 1, acc.2 + 1, 1))), \
         arraySort(groupArray(b)), (toInt64(-2), toUInt64(0), toUInt64(0))).3"
    } else {
        "count()"
    };
    let by_k = format!("countResample(1, {}, 1)(k)", n + 1);
    let counts = if q.cumulative {
        format!("arrayReverse(arrayCumSum(arrayReverse({by_k})))")
    } else {
        by_k
    };
    let agg = format!(
        "SELECT {counts} AS counts FROM (SELECT user, toInt64({k}) AS k FROM ({active}) GROUP BY user)"
    );
    let leaves = format!(
        "arrayConcat([{}], arrayMap((x, i) -> {}, counts, arrayEnumerate(counts)))",
        num_leaf("'counts[]'", "NULL"),
        num_leaf("concat('counts[', toString(i - 1), ']')", "x")
    );
    Ok(format!(
        "agg AS ({agg})\n{}",
        long_form(&leaves, "SELECT * FROM agg")
    ))
}
