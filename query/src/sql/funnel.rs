//! funnel as SQL: the level of each user from `windowFunnel` with the
//! query's modes, and the chain's step times (for `median_ms_from_first`
//! and `avg_ms_from_first`) from the engine's scan (SEMANTICS.md §1.3)
//! written as an `arrayFold` over the user's entries sorted by (time,
//! step, arrival), as the engine sorts them. Under `strict_once` the fold
//! keeps every partial chain per level, as the engine does.

use super::buckets::{offset, Grid};
use super::{event_cond, long_form, num_leaf, quote, text_leaf};
use crate::error::{QueryError, Result};
use crate::funnel::Funnel;
use crate::model::Common;

/// Added to times for `windowFunnel`, which takes unsigned times only:
/// events before 1970 keep their order and gaps.
const OFFSET: i64 = 1 << 62;

/// The funnel's SQL after `WITH ev AS (…),`.
pub(super) fn sql(f: &Funnel, c: &Common, grid: Option<&Grid>) -> Result<String> {
    refuse(f)?;
    if grid.is_some() && !c.breakdown.is_empty() {
        return Err(QueryError::not_translatable(
            "trend",
            "a funnel trend with a breakdown is not translated yet",
        ));
    }
    let n = f.steps.len();
    let conds = f
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| event_cond(s, &format!("steps[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    let m = f.modes;
    let mut modes = String::new();
    for (on, name) in [
        (m.strict_order, "strict_order"),
        (m.strict_deduplication, "strict_deduplication"),
        (m.strict_increase, "strict_increase"),
        (m.strict_once, "strict_once"),
        (m.allow_reentry, "allow_reentry"),
    ] {
        if on {
            modes.push_str(&format!(", '{name}'"));
        }
    }
    // The steps each row fills (1-based); under strict_order a row that
    // fills none is an entry of step 0, which ends a started search.
    let marks = format!(
        "[{}]",
        conds
            .iter()
            .enumerate()
            .map(|(i, c)| format!("toUInt8(if({c}, {}, 0))", i + 1))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let filled = format!("arrayFilter(k -> k > 0, {marks})");
    let row_steps = if m.strict_order {
        format!("if(arrayExists(k -> k > 0, {marks}), {filled}, [toUInt8(0)])")
    } else {
        filled
    };
    // Each entry carries its row's breakdown key (the group of a chain is
    // that of its step-1 row).
    let key = super::groups::key(c)?.unwrap_or_else(|| "''".to_owned());
    // Exclusions: the times of each one's events (a user is left out when
    // one falls strictly between the chain's steps it names).
    let mut ex_cols = String::new();
    let mut excluded = Vec::new();
    for (j, ex) in f.exclusions.iter().enumerate() {
        let cond = event_cond(&ex.event, &format!("exclusions[{j}]"))?;
        ex_cols.push_str(&format!(", groupArrayIf(ts, {cond}) AS x{j}"));
        excluded.push(format!(
            "(level > {to} AND arrayExists(t -> t > ch.1[{a}] AND t < ch.1[{b}], x{j}))",
            to = ex.to,
            a = ex.from + 1,
            b = ex.to + 1
        ));
    }
    let keep = if excluded.is_empty() {
        String::new()
    } else {
        format!(" AND NOT ({})", excluded.join(" OR "))
    };
    let per_user = format!(
        "SELECT user, windowFunnel({w}{modes})(toUInt64(ts + {OFFSET}), {cs}) AS level, \
         arraySort(groupArrayArray(arrayMap(k -> (ts, k, seq, {key}), {row_steps}))) AS entries{ex_cols} \
         FROM ev GROUP BY user",
        w = f.window,
        cs = conds.join(", "),
    );
    // (step times, step-1 row) of the chain that reached `level`.
    let chain = if m.strict_once {
        format!(
            "arrayMap(c -> (c.3, c.4[1]), [({}).3[level][1]])[1]",
            fold_once(f, n)
        )
    } else if n == 1 && !m.strict_order {
        // The first step-1 row, as the engine takes it.
        "([entries[1].1], entries[1].3)".to_owned()
    } else {
        format!(
            "arrayMap(s -> (s.6[level], s.7[level]), [{}])[1]",
            fold(f, n)
        )
    };
    let mut aggs = Vec::new();
    for i in 1..=n {
        aggs.push(format!("countIf(level >= {i}) AS u{i}"));
        if i >= 2 {
            let d = format!("chain[{i}] - chain[1]");
            aggs.push(format!(
                "quantileExactInclusiveIf(0.5)({d}, level >= {i}) AS m{i}, avgIf({d}, level >= {i}) AS a{i}"
            ));
        }
    }
    let (head, grouped) = super::groups::grouping(c);
    let agg = format!(
        "SELECT {head}{} FROM (SELECT level, ch.1 AS chain, \
         arrayFirst(e -> e.3 = ch.2, entries).4 AS g FROM \
         (SELECT *, {chain} AS ch FROM per_user WHERE level > 0{keep})){grouped}",
        aggs.join(", ")
    );
    let leaves = |pre: &str| -> String {
        let mut leaves = Vec::new();
        for (j, s) in f.steps.iter().enumerate() {
            leaves.extend(step_leaves(pre, j, &s.name));
        }
        format!("[{}]", leaves.join(", "))
    };
    let mut out = format!(
        "per_user AS ({per_user})\n{}",
        super::groups::render(c, &agg, "u1", leaves)
    );
    if let Some(g) = grid {
        out.push_str("\nUNION ALL\n");
        out.push_str(&trend(f, c, g, &conds, &modes));
    }
    Ok(out)
}

/// The leaves of step `j` (0-based), paths starting with `pre`.
fn step_leaves(pre: &str, j: usize, name: &str) -> Vec<String> {
    let mut leaves = Vec::new();
    {
        let i = j + 1;
        let p = |field: &str| format!("concat({pre}, 'steps[{j}].{field}')");
        let ratio = |a: usize, b: usize| format!("if(u{b} = 0, NULL, u{a} / u{b})");
        leaves.push(text_leaf(&p("event"), &quote(name)));
        leaves.push(num_leaf(&p("users"), &format!("u{i}")));
        leaves.push(num_leaf(
            &p("conversion_from_previous"),
            &ratio(i, i.saturating_sub(1).max(1)),
        ));
        leaves.push(num_leaf(&p("conversion_from_first"), &ratio(i, 1)));
        let (med, avg) = if i == 1 {
            ("NULL".to_owned(), "NULL".to_owned())
        } else {
            (
                format!("if(u{i} = 0, NULL, m{i})"),
                format!("if(u{i} = 0, NULL, a{i})"),
            )
        };
        leaves.push(num_leaf(&p("median_ms_from_first"), &med));
        leaves.push(num_leaf(&p("avg_ms_from_first"), &avg));
    }
    leaves
}

/// The trend: per bucket of the grid, the funnel of each user whose step 1
/// must lie in that bucket (`windowFunnel` with condition 1 "step 1 in
/// bucket b"; the engine's rule, ANALYSES.md "funnel trends").
fn trend(f: &Funnel, c: &Common, g: &Grid, conds: &[String], modes: &str) -> String {
    let n = f.steps.len();
    if g.labels.is_empty() {
        // An empty range: no buckets.
        return long_form(&format!("[{}]", num_leaf("'trend[]'", "NULL")), "SELECT 1");
    }
    let tz = quote(c.tz.name());
    let at = |ts: &str| offset(g.unit, &tz, g.from, ts);
    let buckets = format!(
        "SELECT DISTINCT user, {b} AS b FROM ev WHERE {c1} AND b >= 0 AND b < {m}",
        b = at("ts"),
        c1 = conds[0],
        m = g.labels.len()
    );
    let mut cs = conds.to_vec();
    cs[0] = format!("({} AND {} = tb.b)", conds[0], at("e.ts"));
    let levels = format!(
        "SELECT tb.b AS b, windowFunnel({w}{modes})(toUInt64(e.ts + {OFFSET}), {cs}) AS level \
         FROM ev AS e INNER JOIN ({buckets}) AS tb ON e.user = tb.user GROUP BY e.user, tb.b",
        w = f.window,
        cs = cs.join(", ")
    );
    let users = (1..=n)
        .map(|i| format!("countIf(level >= {i})"))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = format!(
        "SELECT groupArray((toInt64(b), s)) AS rows FROM (SELECT b, [{users}] AS s FROM ({levels}) GROUP BY b)"
    );
    let labels = g
        .labels
        .iter()
        .map(|l| quote(l))
        .collect::<Vec<_>>()
        .join(", ");
    let p = |field: &str| format!("concat('trend[', toString(k), '].{field}')");
    // `arrayMap(s -> …, [e])[1]` names a value computed once.
    let leaves = format!(
        "arrayConcat([{decl}], arrayFlatten(arrayMap((k, label) -> arrayMap(s -> arrayConcat([{bucket}, {conv}], \
         arrayMap((x, i) -> {step}, s, arrayEnumerate(s))), [arrayResize(arrayFirst(r -> r.1 = k, rows).2, {n})])[1], \
         range({m}), [{labels}])))",
        decl = num_leaf("'trend[]'", "NULL"),
        bucket = text_leaf(&p("bucket"), "label"),
        conv = num_leaf(&p("conversion"), &format!("if(s[1] = 0, NULL, s[{n}] / s[1])")),
        step = num_leaf(
            "concat('trend[', toString(k), '].steps[', toString(i - 1), ']')",
            "x"
        ),
        m = g.labels.len(),
    );
    long_form(&leaves, &rows)
}

/// The parts of a funnel this translation refuses, by field.
fn refuse(f: &Funnel) -> Result<()> {
    let no = |path: &str, why: &str| Err(QueryError::not_translatable(path, why));
    if !f.exclusions.is_empty() && f.trend.is_some() {
        return no(
            "exclusions",
            "exclusions in a funnel trend are not translated yet",
        );
    }
    if let Some(i) = f.extras.within.iter().position(Option::is_some) {
        return no(
            &format!("steps[{i}].within"),
            "per-step windows are not translated yet",
        );
    }
    if !f.extras.hold.is_empty() {
        return no("hold", "held properties are not translated yet");
    }
    if !f.explain.is_empty() {
        return no("explain_users", "explain_users is not translated");
    }
    Ok(())
}

/// The engine's scan as an `arrayFold` over `entries`: the state is
/// (stopped, started, per level: reached, step-1 time, last time, the
/// chain's step times, its step-1 row).
fn fold(f: &Funnel, n: usize) -> String {
    let m = f.modes;
    let set = |arr: &str, val: &str| {
        format!("arrayMap((v, j) -> if(j = x.2, {val}, v), {arr}, arrayEnumerate({arr}))")
    };
    let stop = "(toUInt8(1), acc.2, acc.3, acc.4, acc.5, acc.6, acc.7)";
    let step1 = format!(
        "(acc.1, toUInt8(1), {}, {}, {}, {}, {})",
        set("acc.3", "toUInt8(1)"),
        set("acc.4", "x.1"),
        set("acc.5", "x.1"),
        set("acc.6", "[x.1]"),
        set("acc.7", "x.3")
    );
    let extend = format!(
        "(toUInt8(x.2 = {n}), acc.2, {}, {}, {}, {}, {})",
        set("acc.3", "toUInt8(1)"),
        set("acc.4", "acc.4[x.2 - 1]"),
        set("acc.5", "x.1"),
        set("acc.6", "arrayPushBack(acc.6[x.2 - 1], x.1)"),
        set("acc.7", "acc.7[x.2 - 1]")
    );
    let increase = if m.strict_increase {
        " AND acc.5[x.2 - 1] < x.1"
    } else {
        ""
    };
    let mut body = format!(
        "if(acc.3[x.2 - 1] = 1 AND x.1 - acc.4[x.2 - 1] <= {w}{increase}, {extend}, acc)",
        w = f.window
    );
    if m.strict_order {
        let skip = if m.allow_reentry { "acc" } else { stop };
        body = format!("if(acc.2 = 1 AND acc.3[x.2 - 1] = 0, {skip}, {body})");
    }
    if m.strict_deduplication {
        body = format!("if(acc.3[x.2] = 1, {stop}, {body})");
    }
    body = format!("if(x.2 = 1, {step1}, {body})");
    if m.strict_order {
        body = format!("if(x.2 = 0, if(acc.2 = 1, {stop}, acc), {body})");
    }
    format!(
        "arrayFold((acc, x) -> if(acc.1 = 1, acc, {body}), entries, \
         (toUInt8(0), toUInt8(0), arrayWithConstant({n}, toUInt8(0)), arrayWithConstant({n}, toInt64(0)), \
         arrayWithConstant({n}, toInt64(0)), arrayWithConstant({n}, CAST([], 'Array(Int64)')), \
         arrayWithConstant({n}, toUInt64(0))))"
    )
}

/// The engine's `strict_once` scan as an `arrayFold`: the state is
/// (stopped, started, per level the partial chains in the order they were
/// made, each (step-1 time, last time, step times, rows used)). Before a
/// step extends the chains of the level below, those out of the window are
/// dropped, but the last one stays when all are out (the engine removes
/// one only while another remains).
fn fold_once(f: &Funnel, n: usize) -> String {
    let m = f.modes;
    let w = f.window;
    let chain_ty = "Array(Tuple(Int64, Int64, Array(Int64), Array(UInt64)))";
    let stop = "(toUInt8(1), acc.2, acc.3)";
    let set = |arr: &str, at: &str, val: &str| {
        format!("arrayMap((v, j) -> if(j = {at}, {val}, v), {arr}, arrayEnumerate({arr}))")
    };
    let prev = "acc.3[x.2 - 1]";
    let kept = format!(
        "if(arrayExists(c -> x.1 - c.1 <= {w}, {prev}), arrayFilter(c -> x.1 - c.1 <= {w}, {prev}), arraySlice({prev}, -1))"
    );
    let increase = if m.strict_increase {
        " AND c.2 < x.1"
    } else {
        ""
    };
    let grown = format!(
        "arrayMap(c -> (c.1, x.1, arrayPushBack(c.3, x.1), arrayPushBack(c.4, x.3)), \
         arrayFilter(c -> x.1 - c.1 <= {w} AND NOT has(c.4, x.3){increase}, kept))"
    );
    // The first chain to reach the last step ends the scan. `arrayMap(v
    // -> …, [e])[1]` names a value computed once.
    let cur =
        format!("if(x.2 = {n} AND notEmpty(grown), [grown[1]], arrayConcat(acc.3[x.2], grown))");
    let extend = format!(
        "arrayMap(kept -> arrayMap(grown -> (toUInt8(x.2 = {n} AND notEmpty(grown)), acc.2, {}), [{grown}])[1], [{kept}])[1]",
        set(&set("acc.3", "x.2 - 1", "kept"), "x.2", &cur)
    );
    let mut body = format!("if(notEmpty({prev}), {extend}, acc)");
    if m.strict_order {
        let skip = if m.allow_reentry { "acc" } else { stop };
        body = format!("if(acc.2 = 1 AND empty({prev}), {skip}, {body})");
    }
    if m.strict_deduplication {
        body = format!("if(notEmpty(acc.3[x.2]), {stop}, {body})");
    }
    let step1 = format!(
        "(acc.1, toUInt8(1), {})",
        set(
            "acc.3",
            "1",
            "arrayPushBack(acc.3[1], (x.1, x.1, [x.1], [x.3]))"
        )
    );
    body = format!("if(x.2 = 1, {step1}, {body})");
    if m.strict_order {
        body = format!("if(x.2 = 0, if(acc.2 = 1, {stop}, acc), {body})");
    }
    format!(
        "arrayFold((acc, x) -> if(acc.1 = 1, acc, {body}), entries, \
         (toUInt8(0), toUInt8(0), arrayWithConstant({n}, CAST([], '{chain_ty}'))))"
    )
}
