//! Breakdown groups in SQL with the engine's rule (`crate::groups`): a
//! group's key is the JSON text of `{dimension: value}` (values as the
//! export's JSON has them), groups come largest first, ties by that text,
//! and are cut at `limit` (`groups_truncated` then says how many there
//! were).

use super::{num_leaf, quote};
use crate::error::{QueryError, Result};
use crate::model::{Breakdown, Common};

/// The key of the current row (`props`) as the engine prints it, or
/// `None` without a breakdown.
pub(super) fn key(c: &Common) -> Result<Option<String>> {
    if c.breakdown.is_empty() {
        return Ok(None);
    }
    let mut parts = Vec::new();
    for (i, d) in c.breakdown.iter().enumerate() {
        let path = format!("breakdown[{i}]");
        let sep = if i == 0 { "" } else { "," };
        let (col, name, field) = match d {
            Breakdown::Event { name, .. } => ("props", name, "event_prop"),
            Breakdown::User(name) => ("uprops", name, "user_prop"),
            Breakdown::Channel(_) => {
                // A channel name is a plain string.
                parts.push(format!(
                    "{}, '\"', {}, '\"'",
                    quote(&format!("{sep}\"channel\":")),
                    super::channels::channel()?
                ));
                continue;
            }
        };
        if name.contains(['.', '[', ']']) {
            return Err(QueryError::not_translatable(
                format!("{path}.{field}"),
                "a name with '.', '[' or ']' does not fit a result path",
            ));
        }
        let raw = super::raw_value(col, name, &format!("{path}.{field}"))?;
        let label = serde_json::to_string(name).unwrap_or_default();
        parts.push(format!(
            "{}, ifNull({raw}, 'null')",
            quote(&format!("{sep}{label}:"))
        ));
    }
    Ok(Some(format!("concat('{{', {}, '}}')", parts.join(", "))))
}

/// The long form of a kind's answer with its groups. `agg` has one row
/// per group (column `g`, the key) and the total row (`is_total`, from
/// `GROUPING SETS ((g), ())`), or only the total row without a
/// breakdown; `size` orders groups; `leaves(pre)` is the Array of leaf
/// tuples of one row, with paths starting with the String expression
/// `pre` (always the column `pre`: the group's prefix, or '').
pub(super) fn render(c: &Common, agg: &str, size: &str, leaves: impl Fn(&str) -> String) -> String {
    if c.breakdown.is_empty() {
        return super::long_form(&leaves("pre"), &format!("SELECT *, '' AS pre FROM ({agg})"));
    }
    let limit = c.limit;
    let pre = "if(is_total, '', concat('groups[', toString(idx), '].'))";
    let extra = format!("if(is_total, {}, {})", declare(limit, "ng"), key_leaves(c));
    let ranked = format!(
        "SELECT *, {pre} AS pre FROM (SELECT *, \
         if(is_total, 0, row_number() OVER (PARTITION BY is_total ORDER BY {size} DESC, g ASC) - 1) AS idx, \
         countIf(NOT is_total) OVER () AS ng FROM ({agg})) WHERE is_total OR idx < {limit}"
    );
    super::long_form(&format!("arrayConcat({}, {extra})", leaves("pre")), &ranked)
}

/// The select-list head (`is_total`, `g`) and the `GROUP BY` of a kind's
/// aggregate over rows with a key column `g`: both empty without a
/// breakdown.
pub(super) fn grouping(c: &Common) -> (&'static str, &'static str) {
    if c.breakdown.is_empty() {
        ("", "")
    } else {
        (
            "grouping(g) = 1 AS is_total, g, ",
            " GROUP BY GROUPING SETS ((g), ())",
        )
    }
}

/// The leaves of a group's key (`pre` its prefix, `g` its key text), an
/// Array expression.
pub(super) fn key_leaves(c: &Common) -> String {
    let keys = c
        .breakdown
        .iter()
        .map(|d| {
            let k = quote(d.name());
            let path = format!("concat(pre, 'key.', {k})");
            format!(
                "tuple({path}, \
                 multiIf(JSONType(g, {k}) = 'Bool', toFloat64(JSONExtractBool(g, {k})), \
                 JSONType(g, {k}) IN ('Int64', 'UInt64', 'Double'), JSONExtractFloat(g, {k}), NULL), \
                 multiIf(JSONType(g, {k}) = 'String', JSONExtractString(g, {k}), \
                 JSONType(g, {k}) = 'Bool', if(JSONExtractBool(g, {k}), 'true', 'false'), NULL))"
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!("[{keys}]")
}

/// The top-level `groups` array's declaration, and `groups_truncated`
/// when `ng` (the number of groups) is over `limit`: an Array expression.
pub(super) fn declare(limit: usize, ng: &str) -> String {
    format!(
        "[{}, tuple(if({ng} > {limit}, 'groups_truncated', 'groups[]'), \
         CAST(if({ng} > {limit}, {ng}, NULL) AS Nullable(Float64)), CAST(NULL AS Nullable(String)))]",
        num_leaf("'groups[]'", "NULL")
    )
}
