//! events (trends) as SQL: every metric's per-bucket values as arrays
//! over the grid with the `-Resample` combinator, and its total over the
//! whole range (distinct users over the range, not summed per bucket).

use super::buckets::{offset, Grid};
use super::{event_cond, num_leaf, quote, text_leaf};
use crate::error::Result;
use crate::events::{Agg, Events};
use crate::model::Common;

/// The events query's SQL after `WITH ev AS (…),`. `grid` is `None` for
/// `interval: total` (one bucket, `total`).
pub(super) fn sql(q: &Events, c: &Common, grid: Option<&Grid>) -> Result<String> {
    let tz = quote(c.tz.name());
    let (b, n, labels, interval) = match grid {
        None => ("0".to_owned(), 1, vec!["total".to_owned()], "total"),
        Some(g) => (
            offset(g.unit, &tz, g.from, "ts"),
            g.labels.len(),
            g.labels.clone(),
            crate::events::unit_name(g.unit),
        ),
    };
    let rs = format!("Resample(0, {n}, 1)");
    let mut cols = Vec::new();
    let mut top = vec![
        text_leaf("'interval'", &quote(interval)),
        num_leaf("'buckets[]'", "NULL"),
    ];
    for (k, l) in labels.iter().enumerate() {
        top.push(text_leaf(&format!("'buckets[{k}]'"), &quote(l)));
    }
    // Series leaves, their paths starting with column `pre` (the group's
    // prefix, see `groups::render`).
    let mut leaves = Vec::new();
    let mut size = String::new();
    let mut any = Vec::new();
    for (j, m) in q.metrics.iter().enumerate() {
        let cond = event_cond(&m.event, &format!("metrics[{j}]"))?;
        any.push(cond.clone());
        let (v, num) = match &m.prop {
            Some(p) => (
                format!("JSONExtractFloat(props, {})", quote(p)),
                format!(
                    "{cond} AND JSONType(props, {}) IN ('Int64', 'UInt64', 'Double')",
                    quote(p)
                ),
            ),
            None => (String::new(), cond.clone()),
        };
        // Per bucket `a{j}` (an array) and in all `t{j}`, with `an{j}`/`tn{j}`
        // the counts of numeric values and `au{j}`/`tu{j}` distinct users.
        let (values, total) = match m.agg {
            Agg::Count => {
                cols.push(format!(
                    "countIf{rs}({cond}, b) AS a{j}, countIf({cond}) AS t{j}"
                ));
                (format!("a{j}"), format!("t{j}"))
            }
            Agg::Users => {
                cols.push(format!(
                    "uniqExactIf{rs}(user, {cond}, b) AS a{j}, uniqExactIf(user, {cond}) AS t{j}"
                ));
                (format!("a{j}"), format!("t{j}"))
            }
            Agg::PerUser => {
                cols.push(format!(
                    "countIf{rs}({cond}, b) AS a{j}, countIf({cond}) AS t{j}, \
                     uniqExactIf{rs}(user, {cond}, b) AS au{j}, uniqExactIf(user, {cond}) AS tu{j}"
                ));
                (
                    format!("arrayMap((x, u) -> if(u = 0, NULL, x / u), a{j}, au{j})"),
                    format!("if(tu{j} = 0, NULL, t{j} / tu{j})"),
                )
            }
            agg => {
                let (name, level) = prop_agg(agg);
                let params = level.map_or(String::new(), |l| format!("{l:?}, "));
                let tcall = level.map_or(format!("{name}If"), |l| format!("{name}If({l:?})"));
                cols.push(format!(
                    "{name}IfResample({params}0, {n}, 1)({v}, {num}, b) AS a{j}, {tcall}({v}, {num}) AS t{j}, \
                     countIf{rs}({num}, b) AS an{j}, countIf({num}) AS tn{j}"
                ));
                match agg {
                    Agg::Sum => (format!("a{j}"), format!("t{j}")),
                    Agg::Avg => (
                        format!("arrayMap((x, c) -> if(c = 0, NULL, x / c), a{j}, an{j})"),
                        format!("if(tn{j} = 0, NULL, t{j} / tn{j})"),
                    ),
                    _ => (
                        format!("arrayMap((x, c) -> if(c = 0, NULL, x), a{j}, an{j})"),
                        format!("if(tn{j} = 0, NULL, t{j})"),
                    ),
                }
            }
        };
        let p = |f: &str| format!("concat(pre, 'series[{j}].{f}')");
        if j == 0 {
            // Groups are ordered by the first metric's total.
            size.clone_from(&total);
        }
        leaves.push(text_leaf(&p("event"), &quote(&m.event.name)));
        leaves.push(text_leaf(&p("agg"), &quote(m.agg.name())));
        if let Some(prop) = &m.prop {
            leaves.push(text_leaf(&p("prop"), &quote(prop)));
        }
        leaves.push(num_leaf(&p("values[]"), "NULL"));
        leaves.push(num_leaf(&p("total"), &total));
        let path = format!("concat(pre, 'series[{j}].values[', toString(k - 1), ']')");
        leaves.push(format!(
            "arrayMap((x, k) -> {}, {values}, arrayEnumerate({values}))",
            num_leaf(&path, "x")
        ));
    }
    // Scalar leaves as one-element arrays, so every item is an array.
    let arrays = |v: &[String]| {
        v.iter()
            .map(|l| {
                if l.starts_with("tuple(") {
                    format!("[{l}]")
                } else {
                    l.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let top = format!("arrayConcat({})", arrays(&top));
    let series = arrays(&leaves);
    let grouped = !c.breakdown.is_empty();
    let all = |_: &str| {
        let top = if grouped {
            format!("if(is_total, {top}, [])")
        } else {
            top.clone()
        };
        format!("arrayConcat({top}, {series})")
    };
    // A row's group is its own key; only rows some metric reads make one.
    let key = super::groups::key(c)?.unwrap_or_else(|| "''".to_owned());
    let (head, by) = super::groups::grouping(c);
    let agg = format!(
        "SELECT {head}{} FROM (SELECT user, props, event, {b} AS b, {key} AS g FROM ev WHERE {}) WHERE b >= 0 AND b < {n}{by}",
        cols.join(", "),
        any.join(" OR ")
    );
    Ok(format!(
        "agg AS ({agg})\n{}",
        super::groups::render(c, "SELECT * FROM agg", &size, all)
    ))
}

/// The ClickHouse aggregate of a property agg and its level (percentiles).
fn prop_agg(agg: Agg) -> (&'static str, Option<f64>) {
    match agg {
        Agg::Min => ("min", None),
        Agg::Max => ("max", None),
        Agg::Quantile(p) => ("quantileExactInclusive", Some(f64::from(p) / 100.0)),
        // Sum and avg (count, users and per_user read no property).
        _ => ("sum", None),
    }
}
