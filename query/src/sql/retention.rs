//! retention as SQL: calendar buckets from ClickHouse's own time-zone
//! functions (SEMANTICS.md §2.1–2.4), one membership per (user, cohort
//! bucket), periods as `dateDiff` between bucket starts.

use super::{event_cond, long_form, num_leaf, quote, text_leaf};
use crate::error::Result;
use crate::model::Common;
use crate::retention::Retention;
use crate::time::Unit;

use super::buckets::{bucket, periods};

/// The retention's SQL after `WITH ev AS (…),`.
pub(super) fn sql(r: &Retention, c: &Common) -> Result<String> {
    let tz = quote(c.tz.name());
    let start = event_cond(&r.start, "start")?;
    let ret = event_cond(&r.ret, "return")?;
    let p = r.periods;
    // A membership's group is that of its start row (the first start
    // row of the user, or of the user in that bucket).
    let key = super::groups::key(c)?.unwrap_or_else(|| "''".to_owned());
    let starts = if r.first_time {
        let (b, _) = bucket(r.unit, &tz, "min(ts)");
        format!(
            "SELECT user, {b} AS c, argMin({key}, (ts, seq)) AS g FROM ev WHERE {start} GROUP BY user"
        )
    } else {
        let (b, _) = bucket(r.unit, &tz, "ts");
        format!(
            "SELECT user, {b} AS c, argMin({key}, (ts, seq)) AS g FROM ev WHERE {start} GROUP BY user, c"
        )
    };
    let (rb, label) = bucket(r.unit, &tz, "ts");
    let returns =
        format!("SELECT user, groupUniqArray({rb}) AS bs FROM ev WHERE {ret} GROUP BY user");
    // groupUniqArray drops the time zone of DateTime buckets, and
    // dateDiff reads each side in its own zone: put it back.
    let b = match r.unit {
        Unit::Minute | Unit::Hour => format!("toTimeZone(b, {tz})"),
        _ => "b".to_owned(),
    };
    let k = periods(r.unit, "s.c", &b);
    // Per membership: retained in period k (1..=periods) when some return
    // bucket lies k periods after the cohort's.
    let members = format!(
        "SELECT s.c AS c, s.g AS g, arrayMap(k -> toUInt64(has(arrayMap(b -> {k}, r.bs), k)), range(1, {p} + 1)) AS flags \
         FROM starts AS s LEFT JOIN returns AS r ON s.user = r.user"
    );
    // Cohort rows overall (`is_total`) and per group.
    let cohorts = format!(
        "SELECT *, row_number() OVER (PARTITION BY is_total, g ORDER BY c) - 1 AS idx FROM \
         (SELECT grouping(g) = 1 AS is_total, g, c, formatDateTime(c, '{label}') AS label, \
         count() AS users, arrayConcat([users], arrayResize(sumForEach(flags), {p})) AS retained \
         FROM members GROUP BY GROUPING SETS ((g, c), (c)))"
    );
    let w = p + 1;
    let cohort_leaves = format!(
        "arrayConcat([{}, {}], arrayMap((x, i) -> {}, retained, arrayEnumerate(retained)))",
        text_leaf(
            "concat(pre, 'cohorts[', toString(idx), '].cohort')",
            "label"
        ),
        num_leaf("concat(pre, 'cohorts[', toString(idx), '].users')", "users"),
        num_leaf(
            "concat(pre, 'cohorts[', toString(idx), '].retained[', toString(i - 1), ']')",
            "x"
        ),
    );
    let total_leaves = |extra: &str| {
        format!(
            "arrayConcat([{}, {}, {}], arrayMap((x, i) -> {}, retained, arrayEnumerate(retained)), {extra})",
            num_leaf("concat(pre, 'cohorts[]')", "NULL"),
            num_leaf("concat(pre, 'total.users')", "users"),
            num_leaf("concat(pre, 'total.retained[]')", "NULL"),
            num_leaf("concat(pre, 'total.retained[', toString(i - 1), ']')", "x"),
        )
    };
    let total = format!(
        "SELECT '' AS pre, sum(users) AS users, arrayResize(sumForEach(retained), {w}) AS retained \
         FROM cohorts WHERE is_total"
    );
    let mut out = format!(
        "starts AS ({starts}),\nreturns AS ({returns}),\nmembers AS ({members}),\ncohorts AS ({cohorts})\n\
         {}\nUNION ALL\n{}",
        long_form(&cohort_leaves, "SELECT *, '' AS pre FROM cohorts WHERE is_total"),
        long_form(&total_leaves("[]"), &total)
    );
    if !c.breakdown.is_empty() {
        // Groups: largest (most cohort users) first, ties by key, cut at
        // limit.
        let limit = c.limit;
        let ranks = "SELECT g, row_number() OVER (ORDER BY size DESC, g ASC) - 1 AS gi FROM \
             (SELECT g, sum(users) AS size FROM cohorts WHERE NOT is_total GROUP BY g)";
        let pre = "concat('groups[', toString(gi), '].') AS pre";
        let group_cohorts = format!(
            "SELECT *, {pre} FROM cohorts AS co INNER JOIN ({ranks}) AS rk ON co.g = rk.g \
             WHERE NOT co.is_total AND rk.gi < {limit}"
        );
        let group_totals = format!(
            "SELECT *, {pre} FROM (SELECT g, sum(users) AS users, arrayResize(sumForEach(retained), {w}) AS retained \
             FROM cohorts WHERE NOT is_total GROUP BY g) AS t INNER JOIN ({ranks}) AS rk ON t.g = rk.g \
             WHERE rk.gi < {limit}"
        );
        let declared = "SELECT uniqExactIf(g, NOT is_total) AS ng FROM cohorts";
        out.push_str(&format!(
            "\nUNION ALL\n{}\nUNION ALL\n{}\nUNION ALL\n{}",
            long_form(&cohort_leaves, &group_cohorts),
            long_form(&total_leaves(&super::groups::key_leaves(c)), &group_totals),
            long_form(&super::groups::declare(limit, "ng"), declared)
        ));
    }
    Ok(out)
}
