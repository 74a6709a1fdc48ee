//! heatmap as SQL: clicks by element (the property's string form, as the
//! engine prints it), or in a grid of cells from x, y and the viewport
//! width, with the engine's integer and float arithmetic.

use serde_json::Value as Json;

use super::{event_cond, long_form, num_leaf, quote, text_leaf};
use crate::error::Result;
use crate::heatmap::{By, Heatmap};
use crate::model::Common;

/// The heatmap's SQL after `WITH ev AS (…),`; `query` is the query JSON
/// (for the grid's property names).
pub(super) fn sql(q: &Heatmap, c: &Common, query: &Json) -> Result<String> {
    let cond = event_cond(&q.event, "event")?;
    match &q.by {
        By::Element(_) => element(c, query, &cond),
        By::Grid(g) => {
            let name = |key: &str, default: &str| {
                query["by"]["grid"][key]
                    .as_str()
                    .unwrap_or(default)
                    .to_owned()
            };
            grid(
                &cond,
                [
                    name("x", "$x"),
                    name("y", "$y"),
                    name("width", "$viewport_width"),
                ],
                g.cols,
                g.row_px,
            )
        }
    }
}

/// A property's string form (strings as they are, numbers as the JSON
/// the engine prints, booleans `true`/`false`); NULL when absent.
pub(super) fn string_form(name: &str, path: &str) -> Result<String> {
    let raw = super::raw_value("props", name, path)?;
    let k = quote(name);
    Ok(format!(
        "multiIf(JSONType(props, {k}) = 'String', JSONExtractString(props, {k}), \
         JSONType(props, {k}) = 'Bool', if(JSONExtractBool(props, {k}), 'true', 'false'), {raw})"
    ))
}

fn element(c: &Common, query: &Json, cond: &str) -> Result<String> {
    let name = query["by"]["element"].as_str().unwrap_or_default();
    let el = string_form(name, "by.element")?;
    let per = format!(
        "SELECT el, count() AS clicks, uniqExact(user) AS users FROM (SELECT user, {el} AS el FROM ev WHERE {cond}) \
         WHERE el IS NOT NULL GROUP BY el"
    );
    let agg = format!(
        "SELECT (SELECT count() FROM ev WHERE {cond}) AS total, \
         arraySort(x -> (-x.2, x.1), groupArray((assumeNotNull(el), clicks, users))) AS els FROM ({per})"
    );
    let limit = c.limit;
    let p = |f: &str| format!("concat('elements[', toString(i - 1), '].{f}')");
    // `elements_truncated` only when rows were cut (else a harmless
    // declaration of the array).
    let trunc = format!(
        "tuple(if(length(els) > {limit}, 'elements_truncated', 'elements[]'), \
         CAST(if(length(els) > {limit}, length(els), NULL) AS Nullable(Float64)), CAST(NULL AS Nullable(String)))"
    );
    let leaves = format!(
        "arrayConcat([{clicks}, {decl}, {trunc}], arrayFlatten(arrayMap((x, i) -> [{e}, {cl}, {us}, {sh}], \
         arraySlice(els, 1, {limit}), arrayEnumerate(arraySlice(els, 1, {limit})))))",
        clicks = num_leaf("'clicks'", "total"),
        decl = num_leaf("'elements[]'", "NULL"),
        e = text_leaf(&p("element"), "x.1"),
        cl = num_leaf(&p("clicks"), "x.2"),
        us = num_leaf(&p("users"), "x.3"),
        sh = num_leaf(&p("share"), "if(total = 0, NULL, x.2 / total)"),
    );
    Ok(format!(
        "agg AS ({agg})\n{}",
        long_form(&leaves, "SELECT * FROM agg")
    ))
}

fn grid(cond: &str, names: [String; 3], cols: u64, row_px: u64) -> Result<String> {
    let [x, y, w] = names.map(|n| quote(&n));
    let is_int = |k: &str| format!("JSONType(props, {k}) = 'Int64'");
    let is_num = |k: &str| format!("JSONType(props, {k}) IN ('Int64', 'UInt64', 'Double')");
    let int = |k: &str| format!("JSONExtractInt(props, {k})");
    let float = |k: &str| format!("JSONExtractFloat(props, {k})");
    // Integers divide exactly (in Int128, as the engine does), anything
    // else in floats; negative x or y and a width of 0 or less skip.
    let ints = format!("{} AND {}", is_int(&x), is_int(&w));
    let valid = format!(
        "{} AND {} AND {} AND {} >= 0 AND {} > 0 AND {} >= 0",
        is_num(&x),
        is_num(&y),
        is_num(&w),
        float(&x),
        float(&w),
        float(&y)
    );
    let col = format!(
        "least(toUInt64(if({ints}, intDiv(toInt128({xi}) * {cols}, toInt128({wi})), floor({xf} * {cols} / {wf}))), {last})",
        xi = int(&x),
        wi = int(&w),
        xf = float(&x),
        wf = float(&w),
        last = cols - 1
    );
    let row = format!(
        "toUInt64(if({}, intDiv({}, {row_px}), floor({} / {row_px})))",
        is_int(&y),
        int(&y),
        float(&y)
    );
    let per = format!(
        "SELECT row, col, count() AS clicks, uniqExact(user) AS users FROM \
         (SELECT user, {row} AS row, {col} AS col FROM ev WHERE {cond} AND {valid}) GROUP BY row, col"
    );
    let agg = format!(
        "SELECT (SELECT countIf(NOT ({valid})) FROM ev WHERE {cond}) AS skipped, \
         arraySort(groupArray((row, col, clicks, users))) AS cells FROM ({per})"
    );
    let p = |f: &str| format!("concat('cells[', toString(i - 1), '].{f}')");
    let leaves = format!(
        "arrayConcat([{sk}, {decl}], arrayFlatten(arrayMap((x, i) -> [{c}, {r}, {cl}, {us}], cells, arrayEnumerate(cells))))",
        sk = num_leaf("'skipped'", "skipped"),
        decl = num_leaf("'cells[]'", "NULL"),
        c = num_leaf(&p("col"), "x.2"),
        r = num_leaf(&p("row"), "x.1"),
        cl = num_leaf(&p("clicks"), "x.3"),
        us = num_leaf(&p("users"), "x.4"),
    );
    Ok(format!(
        "agg AS ({agg})\n{}",
        long_form(&leaves, "SELECT * FROM agg")
    ))
}
