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
    let starts = if r.first_time {
        let (b, _) = bucket(r.unit, &tz, "min(ts)");
        format!("SELECT user, {b} AS c FROM ev WHERE {start} GROUP BY user")
    } else {
        let (b, _) = bucket(r.unit, &tz, "ts");
        format!("SELECT DISTINCT user, {b} AS c FROM ev WHERE {start}")
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
        "SELECT s.c AS c, arrayMap(k -> toUInt64(has(arrayMap(b -> {k}, r.bs), k)), range(1, {p} + 1)) AS flags \
         FROM starts AS s LEFT JOIN returns AS r ON s.user = r.user"
    );
    let cohorts = format!(
        "SELECT c, formatDateTime(c, '{label}') AS label, count() AS users, \
         arrayConcat([users], arrayResize(sumForEach(flags), {p})) AS retained, \
         row_number() OVER (ORDER BY c) - 1 AS idx FROM members GROUP BY c"
    );
    let cohort_leaves = format!(
        "arrayConcat([{}, {}], arrayMap((x, i) -> {}, retained, arrayEnumerate(retained)))",
        text_leaf("concat('cohorts[', toString(idx), '].cohort')", "label"),
        num_leaf("concat('cohorts[', toString(idx), '].users')", "users"),
        num_leaf(
            "concat('cohorts[', toString(idx), '].retained[', toString(i - 1), ']')",
            "x"
        ),
    );
    let total = format!(
        "SELECT sum(users) AS users, arrayResize(sumForEach(retained), {w}) AS retained FROM cohorts",
        w = p + 1
    );
    let total_leaves = format!(
        "arrayConcat([{}, {}, {}], arrayMap((x, i) -> {}, retained, arrayEnumerate(retained)))",
        num_leaf("'cohorts[]'", "NULL"),
        num_leaf("'total.users'", "users"),
        num_leaf("'total.retained[]'", "NULL"),
        num_leaf("concat('total.retained[', toString(i - 1), ']')", "x"),
    );
    Ok(format!(
        "starts AS ({starts}),\nreturns AS ({returns}),\nmembers AS ({members}),\ncohorts AS ({cohorts})\n\
         {}\nUNION ALL\n{}",
        long_form(&cohort_leaves, "SELECT * FROM cohorts"),
        long_form(&total_leaves, &total)
    ))
}
