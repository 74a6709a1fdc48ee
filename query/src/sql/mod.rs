//! Query JSON → ClickHouse SQL with the engine's semantics (issue 19).
//!
//! [`translate`] parses a query with the same parser, validation and errors
//! as [`crate::execute`], then writes one ClickHouse `SELECT` that computes
//! the same answer from the tables of `footprint export --parquet`:
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `user` | String | the user id |
//! | `event` | String | the event name |
//! | `time` | DateTime64(3) | the event time (epoch milliseconds) |
//! | `seq` | UInt64 | the event's place in its user's (time, arrival) order |
//! | `props` | String | every property as a JSON object |
//!
//! [`Options::table`] is that relation: a table name or a table function
//! such as `file('out/events/*/*/*.parquet', Parquet, 'user String, event
//! String, time DateTime64(3, \'UTC\'), seq UInt64, props String')` (name
//! `props` String there: ClickHouse would otherwise read the Parquet JSON
//! column as its `JSON` type).
//!
//! The SQL answers in long form, one row per leaf of the result JSON:
//! `path` (String, `steps[1].users`), `num` (Nullable(Float64)) and `text`
//! (Nullable(String)); [`rebuild`] turns those rows back into the result.
//!
//! A rule ClickHouse cannot express exactly, or that this translator does
//! not express yet, is refused with [`crate::ErrorKind::NotTranslatable`]
//! naming the field: the SQL never answers differently from the engine.
//! Translated kinds: `funnel` (every mode, trends, exclusions; not yet
//! per-step `within`, `hold`, `explain_users`), `retention`, `interval`,
//! `events`, `distribution`, `lifecycle` (not `new_by`), `stickiness`,
//! `heatmap`, `sessions`, `attribution`, `paths`; breakdowns by event and user
//! properties and channels ([`GROUPED`] kinds); `users` conditions on
//! profiles (the `profiles` relation: `user`, `props` as JSON text).

mod attribution;
mod buckets;
mod channels;
mod distribution;
mod events;
mod filter;
mod funnel;
mod groups;
mod heatmap;
mod interval;
mod lifecycle;
mod paths;
mod retention;
mod rows;
mod sessions;
mod stickiness;

use footprint_storage::Store;
use serde_json::Value as Json;

use crate::error::{QueryError, Result};
use crate::model::{Common, EventRef};
use crate::{Limits, QueryOptions};

pub use rows::{rebuild, Leaf};

/// The SQL dialects [`translate`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Dialect {
    /// ClickHouse (tested against ClickHouse 26 through chdb).
    #[default]
    ClickHouse,
}

/// How to translate.
#[derive(Debug, Clone)]
pub struct Options {
    /// The SQL dialect.
    pub dialect: Dialect,
    /// The events relation: a table name or table function (see the
    /// module documentation for its columns).
    pub table: String,
    /// The profiles relation (`user` String, `props` String: the profile
    /// as a JSON object), read when the query reads profiles.
    pub profiles: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            dialect: Dialect::ClickHouse,
            table: "events".to_owned(),
            profiles: "profiles".to_owned(),
        }
    }
}

/// The kinds [`translate`] turns into SQL.
pub const TRANSLATED: [&str; 11] = [
    "funnel",
    "retention",
    "interval",
    "events",
    "distribution",
    "lifecycle",
    "stickiness",
    "heatmap",
    "sessions",
    "attribution",
    "paths",
];

/// The kinds whose `breakdown` (by event properties) translates.
pub const GROUPED: [&str; 6] = [
    "funnel",
    "interval",
    "distribution",
    "events",
    "retention",
    "sessions",
];

/// Translates `query` into one SQL statement answering in long form.
/// `store` resolves names exactly as a query on it would (unknown events
/// and misspellings give the same errors); an empty store accepts every
/// well-formed query.
pub fn translate(store: &Store, query: &Json, opts: &Options) -> Result<String> {
    let (kind, mut o, mut ctx, common) =
        crate::head(store, query, QueryOptions::default(), Limits::default())?;
    if !TRANSLATED.contains(&kind) {
        return Err(QueryError::not_translatable(
            "kind",
            format!(
                "kind \"{kind}\" has no SQL translation yet; translated: {}",
                TRANSLATED.join(", ")
            ),
        ));
    }
    if (kind == "heatmap" || kind == "paths") && !common.breakdown.is_empty() {
        // As the engine answers (`session_kinds`).
        return Err(QueryError::invalid(
            "breakdown",
            "heatmap takes no breakdown",
        ));
    }
    // Parse the kind's fields first: an invalid query gets the engine's
    // error, not a refusal.
    let parsed = match kind {
        "funnel" => Parsed::Funnel(crate::funnel::Funnel::parse(&mut o, &mut ctx)?),
        "retention" => Parsed::Retention(crate::retention::Retention::parse(&mut o, &mut ctx)?),
        "events" => Parsed::Events(crate::events::Events::parse(&mut o, &mut ctx)?),
        "distribution" => {
            Parsed::Distribution(crate::distribution::Distribution::parse(&mut o, &mut ctx)?)
        }
        "lifecycle" => Parsed::Lifecycle(crate::lifecycle::Lifecycle::parse(
            &mut o, &mut ctx, &common,
        )?),
        "stickiness" => Parsed::Stickiness(crate::stickiness::Stickiness::parse(
            &mut o, &mut ctx, &common,
        )?),
        "heatmap" => Parsed::Heatmap(crate::heatmap::Heatmap::parse(&mut o, &mut ctx)?),
        "paths" => Parsed::Paths(crate::paths::Paths::parse(&mut o, &mut ctx)?),
        "sessions" => Parsed::Sessions(crate::sessions::Sessions::parse(&mut o, &mut ctx)?),
        "attribution" => Parsed::Attribution(crate::attribution::Attribution::parse(
            &mut o, &mut ctx, &common,
        )?),
        _ => Parsed::Interval(crate::interval::Interval::parse(&mut o, &mut ctx)?),
    };
    o.finish(crate::COMMON)?;
    refuse_common(query, &common, kind)?;
    if ctx.has_aliases() {
        return Err(QueryError::not_translatable(
            "",
            "this store links user ids into people (aliases), which queries merge and the export does not",
        ));
    }
    let visible = base(opts, query, &common, false)?;
    let c = &common;
    let body = match parsed {
        Parsed::Funnel(f) => {
            let grid = grid(f.trend, c, &ctx, "trend.interval")?;
            funnel::sql(&f, c, grid.as_ref())?
        }
        Parsed::Retention(r) => retention::sql(&r, c)?,
        Parsed::Interval(q) => interval::sql(&q, c)?,
        Parsed::Events(q) => {
            let grid = grid(q.unit, c, &ctx, "interval")?;
            events::sql(&q, c, grid.as_ref())?
        }
        Parsed::Distribution(q) => distribution::sql(&q, c)?,
        Parsed::Lifecycle(q) => match grid(Some(q.unit), c, &ctx, "interval")? {
            Some(g) => lifecycle::sql(&q, c, &g, &base(opts, query, c, true)?)?,
            None => String::new(),
        },
        Parsed::Stickiness(q) => match grid(Some(q.unit), c, &ctx, "interval")? {
            Some(g) => stickiness::sql(&q, c, &g)?,
            None => String::new(),
        },
        Parsed::Heatmap(q) => heatmap::sql(&q, c, query)?,
        Parsed::Paths(q) => paths::sql(&q, c, query)?,
        Parsed::Attribution(q) => attribution::sql(&q, c, query, &base(opts, query, c, true)?)?,
        Parsed::Sessions(q) => match grid(Some(q.unit), c, &ctx, "interval")? {
            Some(g) => sessions::sql(&q, c, &g, query)?,
            None => String::new(),
        },
    };
    Ok(format!("WITH ev AS ({visible}),\n{body}\n"))
}

/// A parsed query of a translated kind.
enum Parsed {
    Funnel(crate::funnel::Funnel),
    Retention(crate::retention::Retention),
    Interval(crate::interval::Interval),
    Events(crate::events::Events),
    Distribution(crate::distribution::Distribution),
    Lifecycle(crate::lifecycle::Lifecycle),
    Stickiness(crate::stickiness::Stickiness),
    Heatmap(crate::heatmap::Heatmap),
    Paths(crate::paths::Paths),
    Sessions(crate::sessions::Sessions),
    Attribution(crate::attribution::Attribution),
}

/// The engine's bucket grid of the query's `time_range` (none without a
/// unit), computed here so
/// that the SQL lists the same buckets. Without a range the engine takes
/// the stored events' extent, which the SQL does not know.
fn grid(
    unit: Option<crate::time::Unit>,
    c: &Common,
    ctx: &crate::exec::Ctx<'_>,
    path: &str,
) -> Result<Option<buckets::Grid>> {
    let Some(unit) = unit else { return Ok(None) };
    let Some((from, _)) = c.range else {
        let path = path.split('.').next().unwrap_or(path);
        return Err(QueryError::not_translatable(
            path,
            "buckets without a time_range follow the stored events' extent; give a time_range",
        ));
    };
    let g = crate::grid::Grid::new(unit, c, ctx, path)?;
    let labels = g
        .labels(&mut crate::time::Clock::new(c.tz))
        .into_iter()
        .map(|l| l.as_str().unwrap_or_default().to_owned())
        .collect();
    Ok(Some(buckets::Grid { from, unit, labels }))
}

/// Refuses the common fields this translation does not express yet.
fn refuse_common(query: &Json, c: &Common, kind: &str) -> Result<()> {
    if query.get("users").is_some_and(has_cohort) {
        return Err(QueryError::not_translatable(
            "users",
            "saved cohorts live in the store, not in the export",
        ));
    }
    if !c.breakdown.is_empty() && !GROUPED.contains(&kind) {
        return Err(QueryError::not_translatable(
            "breakdown",
            format!(
                "a breakdown of {kind} is not translated yet; translated for: {}",
                GROUPED.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Whether `key` is a key anywhere in `v`.
fn mentions(v: &Json, key: &str) -> bool {
    match v {
        Json::Object(m) => m.contains_key(key) || m.values().any(|x| mentions(x, key)),
        Json::Array(a) => a.iter().any(|x| mentions(x, key)),
        _ => false,
    }
}

/// Whether a `users` condition names a saved cohort.
fn has_cohort(v: &Json) -> bool {
    mentions(v, "cohort")
}

/// The visible events: the time range, the query-wide `where` and the
/// `users` condition, with `ts` as Int64 epoch milliseconds, and the
/// user's profile as `uprops` (a JSON object, `{}` without one).
/// With `look_back`, events before the range's start stay (lifecycle).
fn base(opts: &Options, query: &Json, c: &Common, look_back: bool) -> Result<String> {
    let table = &opts.table;
    let mut conds = Vec::new();
    if !c.users.is_true() {
        conds.push(filter::expr(&c.users, "users")?);
    }
    match c.range {
        Some((_, to)) if look_back => conds.push(format!("ts < {to}")),
        Some((from, to)) => conds.push(format!("ts >= {from} AND ts < {to}")),
        None => {}
    }
    if !c.filter.is_true() {
        conds.push(filter::expr(&c.filter, "where")?);
    }
    let cond = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    let events = format!(
        "SELECT user, event, toInt64(toUnixTimestamp64Milli(time)) AS ts, toUInt64(seq) AS seq, props FROM {table}"
    );
    let uses_profiles = !c.users.is_true() || mentions(query, "user_prop");
    let rows = if uses_profiles {
        format!(
            "SELECT e.user AS user, e.event AS event, e.ts AS ts, e.seq AS seq, e.props AS props, \
             if(p.props = '', '{{}}', p.props) AS uprops FROM ({events}) AS e \
             LEFT JOIN (SELECT user, props FROM {}) AS p ON e.user = p.user",
            opts.profiles
        )
    } else {
        format!("SELECT *, '{{}}' AS uprops FROM ({events})")
    };
    Ok(format!(
        "SELECT user, event, ts, seq, props, uprops FROM ({rows}){cond}"
    ))
}

/// A condition matching `r` (event name and its `where`).
fn event_cond(r: &EventRef, path: &str) -> Result<String> {
    let name = if r.name == "$any" {
        "1".to_owned()
    } else {
        format!("event = {}", quote(&r.name))
    };
    if r.filter.is_true() {
        return Ok(format!("({name})"));
    }
    Ok(format!(
        "({name} AND {})",
        filter::expr(&r.filter, &format!("{path}.where"))?
    ))
}

/// The raw JSON text of property `name` in the JSON column `col` (as the
/// export wrote it: numbers as the engine prints them), NULL when absent
/// or null.
fn raw_value(col: &str, name: &str, path: &str) -> Result<String> {
    if name
        .chars()
        .any(|ch| ch == '"' || ch == '\\' || ch.is_control())
    {
        // The raw value is found by the key's bytes in the JSON text.
        return Err(QueryError::not_translatable(
            path,
            "a property name with quotes, backslashes or control characters",
        ));
    }
    let k = quote(name);
    Ok(format!(
        "if(JSONType({col}, {k}) = 'Null', NULL, simpleJSONExtractRaw({col}, {k}))"
    ))
}

/// Counts of `col` per bucket of lower `bounds` (the last open-ended), as
/// a comma-separated list of `countIf`s.
fn bins<T: std::fmt::Debug>(bounds: &[T], col: &str) -> Vec<String> {
    bounds
        .iter()
        .enumerate()
        .map(|(i, lo)| match bounds.get(i + 1) {
            Some(hi) => format!("countIf({col} >= {lo:?} AND {col} < {hi:?})"),
            None => format!("countIf({col} >= {lo:?})"),
        })
        .collect()
}

/// A ClickHouse string literal.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A leaf row `(path, num, text)` with a number; `path` is a SQL String
/// expression.
fn num_leaf(path: &str, value: &str) -> String {
    format!("tuple({path}, CAST({value} AS Nullable(Float64)), CAST(NULL AS Nullable(String)))")
}

/// A leaf row with a string.
fn text_leaf(path: &str, value: &str) -> String {
    format!("tuple({path}, CAST(NULL AS Nullable(Float64)), CAST({value} AS Nullable(String)))")
}

/// The final `SELECT` of the long form: `leaves` is an Array(Tuple(path,
/// num, text)) expression over one row of `from`.
fn long_form(leaves: &str, from: &str) -> String {
    format!(
        "SELECT leaf.1 AS path, leaf.2 AS num, leaf.3 AS text FROM ({from}) ARRAY JOIN {leaves} AS leaf"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("a'b\\c"), "'a\\'b\\\\c'");
        assert_eq!(quote("中文"), "'中文'");
    }
}
