//! Footprint's query layer: parses and validates the query JSON of
//! `QUERY_API.md`, plans (time pruning, per-event user bitmaps, only the
//! columns needed) and runs each analysis as a per-user state machine over
//! every shard in parallel.
//!
//! Implemented kinds: `funnel` (with trends and the extras of
//! ANALYSES.md: per-step `within`, `hold`, `explain_users`), `retention`,
//! `interval`, `events`, `distribution`, `users`, `sessions`, `paths` and
//! `heatmap` (the last three over one sessionizer, [`sessionize`]),
//! `attribution`, `lifecycle`, `stickiness`; `{"channel": true}`
//! classifies events into marketing channels in any breakdown.

#![warn(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod attribution;
pub mod by_value;
pub mod chain;
pub mod channels;
pub mod cohorts;
pub mod distribution;
pub mod error;
pub mod events;
pub mod exec;
pub mod filter;
pub mod funnel;
pub mod grid;
pub mod groups;
pub mod heatmap;
pub mod interval;
pub mod json;
pub mod lifecycle;
pub mod limits;
pub mod model;
pub mod paths;
pub mod retention;
pub mod scope;
pub mod score;
pub mod sessionize;
pub mod sessions;
pub mod sql;
pub mod stickiness;
pub mod suggest;
pub mod time;
pub mod users;

use footprint_storage::Store;
use serde_json::Value as Json;

pub use error::{ErrorKind, QueryError, Result};
pub use exec::{QueryOptions, ScanStats};
pub use limits::Limits;
pub use scope::Scope;

/// Every query `kind` the JSON contract names (some answer
/// `not_supported` for now).
pub const KINDS: [&str; 12] = [
    "funnel",
    "retention",
    "interval",
    "events",
    "distribution",
    "sessions",
    "paths",
    "attribution",
    "users",
    "lifecycle",
    "stickiness",
    "heatmap",
];
pub(crate) const COMMON: &str = "kind, time_range, timezone, where, users, breakdown, limit";
/// The fields of a `users` query beside [`COMMON`].
const USERS_FIELDS: [&str; 6] = [
    "profile",
    "did",
    "did_not",
    "save_as",
    "return_users",
    "score",
];

/// Parses, validates and runs a query against a snapshot of `store`, within
/// the default [`Limits`].
pub fn execute(store: &Store, query: &Json, opts: QueryOptions) -> Result<Json> {
    execute_with_limits(store, query, opts, Limits::default())
}

/// [`execute`] within `limits` (see [`limits`]).
pub fn execute_with_limits(
    store: &Store,
    query: &Json,
    opts: QueryOptions,
    limits: Limits,
) -> Result<Json> {
    let scope = opts.scope.clone();
    let (kind, mut o, mut ctx, common) = head(store, query, opts, limits)?;
    let kind_path = "kind";
    let mut result = match kind {
        "funnel" => {
            let f = funnel::Funnel::parse(&mut o, &mut ctx)?;
            o.finish(&format!(
                "{COMMON}, steps, window, mode, exclusions, trend, hold, explain_users"
            ))?;
            prepare(&mut ctx, &common, f.steps.iter().map(|s| &s.filter));
            if !f.modes.strict_order {
                // Only `strict_order` looks at events that fill no step.
                ctx.only_events(f.steps.iter().chain(f.exclusions.iter().map(|e| &e.event)));
            }
            if f.takes_runs(&common) {
                ctx.runs_ok();
            }
            funnel::run(&f, &common, &ctx)?
        }
        "retention" => {
            let r = retention::Retention::parse(&mut o, &mut ctx)?;
            ctx.limit_hint(
                "fewer periods, a coarser unit, a shorter time_range, a users filter or a breakdown with fewer values",
            );
            o.finish(&format!(
                "{COMMON}, start, return, unit, periods, first_time"
            ))?;
            prepare(&mut ctx, &common, [&r.start.filter, &r.ret.filter]);
            ctx.only_events([&r.start, &r.ret]);
            retention::run(&r, &common, &ctx)?
        }
        "interval" => {
            let q = interval::Interval::parse(&mut o, &mut ctx)?;
            ctx.limit_hint(
                "a shorter time_range, a window, a where or users filter, or a breakdown with fewer values",
            );
            o.finish(&format!("{COMMON}, from, to, pairs, window, approximate"))?;
            prepare(&mut ctx, &common, [&q.from.filter, &q.to.filter]);
            ctx.only_events([&q.from, &q.to]);
            interval::run(&q, &common, &ctx)?
        }
        "events" => {
            let q = events::Events::parse(&mut o, &mut ctx)?;
            ctx.limit_hint(
                "a shorter time_range, a coarser interval, fewer metrics (a percentile keeps every value), a where filter or a breakdown with fewer values",
            );
            o.finish(&format!("{COMMON}, interval, metrics"))?;
            prepare(&mut ctx, &common, q.metrics.iter().map(|m| &m.event.filter));
            ctx.only_events(q.metrics.iter().map(|m| &m.event));
            if q.order_free(&common) {
                ctx.order_free();
            }
            events::run(&q, &common, &ctx)?
        }
        "distribution" => {
            let q = distribution::Distribution::parse(&mut o, &mut ctx)?;
            o.finish(&format!("{COMMON}, event, measure, buckets"))?;
            prepare(&mut ctx, &common, [&q.event.filter]);
            ctx.only_events([&q.event]);
            if q.order_free(&common) {
                ctx.order_free();
            }
            distribution::run(&q, &common, &ctx)?
        }
        "users" => {
            let mut q = users_plan(&mut o, &mut ctx, &common)?;
            o.finish(&format!("{COMMON}, {}", USERS_FIELDS.join(", ")))?;
            if q.save_as.is_some() {
                // A scoped caller's cohort stays within its scope, whoever
                // reads it later.
                let def = cohorts::definition_of(query);
                q.definition = Some(match &scope {
                    Some(s) => s.narrow_query(&def),
                    None => def,
                });
            }
            users::run(&q, &common, &ctx)?
        }
        "sessions" | "paths" | "heatmap" => session_kinds(kind, o, &mut ctx, &common)?,
        "attribution" => {
            let q = attribution::Attribution::parse(&mut o, &mut ctx, &common)?;
            o.finish(&format!("{COMMON}, {}", attribution::FIELDS.join(", ")))?;
            prepare(&mut ctx, &common, [&q.conversion.filter, &q.touch.filter]);
            ctx.only_events([&q.conversion, &q.touch]);
            attribution::run(&q, &common, &ctx)?
        }
        "lifecycle" => {
            let q = lifecycle::Lifecycle::parse(&mut o, &mut ctx, &common)?;
            o.finish(&format!("{COMMON}, {}", lifecycle::FIELDS.join(", ")))?;
            prepare(&mut ctx, &common, [&q.event.filter]);
            ctx.only_events([&q.event]);
            lifecycle::run(&q, &common, &ctx)?
        }
        "stickiness" => {
            let q = stickiness::Stickiness::parse(&mut o, &mut ctx, &common)?;
            o.finish(&format!("{COMMON}, {}", stickiness::FIELDS.join(", ")))?;
            prepare(&mut ctx, &common, [&q.event.filter]);
            ctx.only_events([&q.event]);
            stickiness::run(&q, &common, &ctx)?
        }
        other => {
            return Err(QueryError::unsupported(
                kind_path,
                format!(
                "kind \"{other}\" is not implemented yet; implemented: funnel, retention, interval, events, distribution, users, sessions, paths, heatmap, attribution, lifecycle, stickiness"
            ),
            ))
        }
    };
    let warnings = ctx.take_warnings();
    if !warnings.is_empty() {
        let list = result.as_object_mut().map(|m| {
            m.entry("warnings")
                .or_insert_with(|| Json::Array(Vec::new()))
        });
        if let Some(Json::Array(a)) = list {
            a.extend(warnings.into_iter().map(Json::String));
        }
    }
    Ok(result)
}

/// Parses the fields of a `users` query and plans what its scan reads
/// (shared by queries and cohort definitions).
pub(crate) fn users_plan(
    o: &mut json::Obj<'_>,
    ctx: &mut exec::Ctx<'_>,
    common: &model::Common,
) -> Result<users::Users> {
    // `within` windows end at the end of the range, or now.
    let end = common.range.map_or_else(now_ms, |r| r.1);
    let q = users::Users::parse(o, ctx, common, end)?;
    ctx.limit_hint("a breakdown with fewer values");
    let scored = q.score.iter().flat_map(|s| s.filters());
    prepare(
        ctx,
        common,
        q.conditions.iter().map(|c| &c.event.filter).chain(scored),
    );
    if !q.profile.is_true() {
        ctx.need_profiles();
    }
    // Users with none of the conditions' events are members when
    // every condition holds at zero, so only then are all rows needed
    // (to find a visible event, one that passes `where`).
    if q.some_event_needed() {
        let scored = q.score.iter().flat_map(|s| s.components.iter());
        ctx.only_events(
            q.conditions
                .iter()
                .map(|c| &c.event)
                .chain(scored.map(|c| &c.event)),
        );
    }
    if q.order_free(common) {
        ctx.order_free();
    }
    Ok(q)
}

/// The part of every query before its kind's own fields: the kind (checked),
/// the fields allowed for it, the context and the common fields, with the
/// same validation and errors for running ([`execute`]) and for translating
/// ([`sql::translate`]).
pub(crate) fn head<'s, 'q>(
    store: &'s Store,
    query: &'q Json,
    opts: QueryOptions,
    limits: Limits,
) -> Result<(&'q str, json::Obj<'q>, exec::Ctx<'s>, model::Common)> {
    let mut o = json::Obj::new(query, "")?;
    let kind_path = o.at("kind");
    let kind = o.req_str("kind")?;
    if !KINDS.contains(&kind) {
        let hint = suggest::nearest(kind, KINDS)
            .map(|s| format!(" (did you mean \"{s}\"?)"))
            .unwrap_or_default();
        return Err(QueryError::invalid(
            kind_path,
            format!(
                "unknown kind \"{kind}\"{hint}; allowed: {}",
                KINDS.join(", ")
            ),
        ));
    }
    let own: &[&str] = match kind {
        "funnel" => &[
            "steps",
            "window",
            "mode",
            "exclusions",
            "trend",
            "hold",
            "explain_users",
        ],
        "retention" => &["start", "return", "unit", "periods", "first_time"],
        "interval" => &["from", "to", "pairs", "window", "approximate"],
        "events" => &["interval", "metrics"],
        "distribution" => &["event", "measure", "buckets"],
        "users" => &USERS_FIELDS,
        "sessions" => &sessions::FIELDS,
        "paths" => &paths::FIELDS,
        "heatmap" => &heatmap::FIELDS,
        "attribution" => &attribution::FIELDS,
        "lifecycle" => &lifecycle::FIELDS,
        "stickiness" => &stickiness::FIELDS,
        _ => &[],
    };
    if !own.is_empty() {
        let mut allowed: Vec<&str> = COMMON.split(", ").collect();
        allowed.extend_from_slice(own);
        json::check_keys(query, "", &allowed)?;
    }
    let mut ctx = exec::Ctx::new(store, opts, limits);
    ctx.apply_scope()?;
    if let Some(name) = query.get("save_as").and_then(Json::as_str) {
        // A saved cohort is re-evaluated from this query: it may not read
        // the cohort it saves.
        ctx.within_cohorts(vec![name.to_owned()]);
    }
    let common = model::Common::parse(&mut o, &mut ctx)?;
    // A heatmap's `limit` cuts its element rows, attribution's its rows.
    let limit_cuts_rows = kind == "heatmap" || kind == "attribution";
    if !own.is_empty()
        && !limit_cuts_rows
        && common.breakdown.is_empty()
        && o.opt("limit").is_some()
    {
        // Accepted fields are never ignored: without groups there is
        // nothing for `limit` to cut.
        let ids = if kind == "users" {
            "; return_users caps the ids returned"
        } else {
            ""
        };
        return Err(QueryError::invalid(
            "limit",
            format!("limit caps breakdown groups, and this query has no breakdown{ids}"),
        ));
    }
    Ok((kind, o, ctx, common))
}

/// The kinds of ANALYSES.md's first part (sessions, paths, heatmap).
fn session_kinds(
    kind: &str,
    mut o: json::Obj<'_>,
    ctx: &mut exec::Ctx<'_>,
    common: &model::Common,
) -> Result<Json> {
    if kind != "sessions" && !common.breakdown.is_empty() {
        return Err(QueryError::invalid(
            "breakdown",
            format!("{kind} takes no breakdown"),
        ));
    }
    let fields = |own: &[&str]| format!("{COMMON}, {}", own.join(", "));
    match kind {
        "sessions" => {
            let q = sessions::Sessions::parse(&mut o, ctx)?;
            ctx.limit_hint(
                "a shorter time_range, a where or users filter, or a breakdown with fewer values",
            );
            o.finish(&fields(&sessions::FIELDS))?;
            prepare(ctx, common, []);
            sessions::run(&q, common, ctx)
        }
        "paths" => {
            let q = paths::Paths::parse(&mut o, ctx)?;
            ctx.limit_hint("a shorter time_range, fewer steps, a start or end event, or a where or users filter");
            o.finish(&fields(&paths::FIELDS))?;
            prepare(ctx, common, q.anchor_filter());
            paths::run(&q, common, ctx)
        }
        _ => {
            let q = heatmap::Heatmap::parse(&mut o, ctx)?;
            o.finish(&fields(&heatmap::FIELDS))?;
            prepare(ctx, common, [&q.event.filter]);
            ctx.only_events([&q.event]);
            heatmap::run(&q, common, ctx)
        }
    }
}

fn prepare<'f>(
    ctx: &mut exec::Ctx<'_>,
    c: &model::Common,
    filters: impl IntoIterator<Item = &'f filter::Filter>,
) {
    let mut user = c.filter.uses_user_props()
        || c.users.uses_user_props()
        || c.breakdown
            .iter()
            .any(|b| matches!(b, model::Breakdown::User(_)));
    for f in filters {
        user |= f.uses_user_props();
    }
    if user {
        ctx.need_profiles();
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
