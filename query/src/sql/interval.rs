//! interval as SQL: per user, each `from` row's next `to` row (the
//! earliest at or after it that is not the same row), pairs formed by an
//! `arrayFold` as the engine forms them (SEMANTICS.md §3), then the
//! window, exact quantiles (`quantileExactInclusive`) and the histogram.

use super::{event_cond, num_leaf};
use crate::error::Result;
use crate::interval::{Interval, Pairs, BOUNDS};
use crate::model::Common;

/// The interval's SQL after `WITH ev AS (…),`.
pub(super) fn sql(q: &Interval, c: &Common) -> Result<String> {
    let from = event_cond(&q.from, "from")?;
    let to = event_cond(&q.to, "to")?;
    // Rows as (time, arrival, breakdown key) tuples, in the user's order;
    // a pair's group is that of its `from` row.
    let key = super::groups::key(c)?.unwrap_or_else(|| "''".to_owned());
    let per_user = format!(
        "SELECT arraySort(groupArrayIf((ts, seq, {key}), {from})) AS fs, \
         arraySort(groupArrayIf((ts, seq), {to})) AS tos FROM ev GROUP BY user"
    );
    // Each `from` with the time of its next `to` (flag 0: none).
    let next =
        "arrayMap(f -> (f.1, arrayFirstIndex(t -> t.1 >= f.1 AND t.2 != f.2, tos), f.3), fs)";
    let with_to = format!("arrayMap(p -> (p.1, tos[p.2].1, p.2 > 0, p.3), {next})");
    // Pairs as (length, key).
    let pairs = match q.pairs {
        Pairs::First => format!("arrayMap(p -> (p.2 - p.1, p.4), arrayFilter(p -> p.3, arraySlice({with_to}, 1, 1)))"),
        // A pair starts at a `from` strictly after the previous pair's `to`.
        Pairs::Each => format!(
            "arrayFold((acc, p) -> if(NOT p.3 OR (acc.1 AND p.1 <= acc.2), acc, (true, p.2, arrayPushBack(acc.3, (p.2 - p.1, p.4)))), \
             {with_to}, (false, toInt64(0), CAST([], 'Array(Tuple(Int64, String))'))).3"
        ),
    };
    let kept = match q.window {
        Some(w) => format!("arrayFilter(p -> p.1 <= {w}, {pairs})"),
        None => pairs,
    };
    let hist = BOUNDS
        .iter()
        .zip(super::bins(&BOUNDS, "d"))
        .enumerate()
        .map(|(i, (lo, n))| match BOUNDS.get(i + 1) {
            Some(hi) => format!("({lo}, toNullable({hi}), {n})"),
            None => format!("({lo}, CAST(NULL AS Nullable(Int64)), {n})"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let (head, grouped) = super::groups::grouping(c);
    let agg = format!(
        "SELECT {head}count() AS n, min(d) AS mn, max(d) AS mx, avg(d) AS av, \
         quantilesExactInclusive(0.25, 0.5, 0.75)(d) AS qs, \
         arrayFilter(h -> h.3 > 0, [{hist}]) AS hist \
         FROM (SELECT p.1 AS d, p.2 AS g FROM (SELECT arrayJoin({kept}) AS p FROM ({per_user}))){grouped}"
    );
    Ok(format!(
        "pairs AS ({agg})\n{}",
        super::groups::render(c, "SELECT * FROM pairs", "n", leaves)
    ))
}

/// The statistics' leaves, paths starting with `pre`.
fn leaves(pre: &str) -> String {
    let p = |path: &str| format!("concat({pre}, {path})");
    let stat =
        |name: &str, v: &str| num_leaf(&p(&format!("'{name}'")), &format!("if(n = 0, NULL, {v})"));
    format!(
        "arrayConcat([{}, {}, {}, {}, {}, {}, {}, {}], arrayFlatten(arrayMap((h, i) -> [{}, {}, {}], hist, arrayEnumerate(hist))))",
        num_leaf(&p("'count'"), "n"),
        stat("min", "mn"),
        stat("p25", "qs[1]"),
        stat("median", "qs[2]"),
        stat("p75", "qs[3]"),
        stat("max", "mx"),
        stat("avg", "av"),
        num_leaf(&p("'histogram[]'"), "NULL"),
        num_leaf(&p("concat('histogram[', toString(i - 1), '].from')"), "h.1"),
        num_leaf(&p("concat('histogram[', toString(i - 1), '].to')"), "h.2"),
        num_leaf(&p("concat('histogram[', toString(i - 1), '].count')"), "h.3"),
    )
}
