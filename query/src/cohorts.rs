//! Live cohorts: a saved cohort keeps the `users` query that defines it,
//! and reading it re-evaluates that definition first when its members are
//! older than a bound ([`DEFAULT_MAX_AGE`] unless
//! [`QueryOptions::cohort_max_age`] says otherwise). Static cohorts (an
//! uploaded list of ids) never change by themselves.
//!
//! A definition may read other cohorts (`{"cohort": NAME}` in its
//! `users`); reading one's own name, directly or through others, is an
//! error, and so is a chain deeper than [`MAX_DEPTH`].

use std::time::Duration;

use footprint_storage::cohorts::{now_ms, Cohort};
use footprint_storage::Store;
use roaring::RoaringBitmap;
use serde_json::Value as Json;

use crate::error::{ErrorKind, QueryError, Result};
use crate::exec::QueryOptions;

/// How old a live cohort's members may be when read.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(60);
/// Most live cohorts one evaluation may read through each other.
pub const MAX_DEPTH: usize = 8;
/// Fields of a `users` query that are not part of a cohort's definition:
/// they shape one answer, not the members.
pub const NOT_DEFINITION: [&str; 5] = ["save_as", "return_users", "breakdown", "limit", "score"];

/// The definition a `users` query saves: the query without the fields of
/// [`NOT_DEFINITION`].
pub fn definition_of(query: &Json) -> Json {
    let mut d = query.clone();
    if let Json::Object(m) = &mut d {
        for k in NOT_DEFINITION {
            m.shift_remove(k);
        }
    }
    d
}

/// A 404 naming `name` and the nearest saved name.
pub fn not_found(store: &Store, name: &str) -> QueryError {
    let names = store.cohort_names().unwrap_or_default();
    let hint = crate::suggest::nearest(name, names.iter().map(|s| s.as_str()))
        .map(|s| format!(" (did you mean \"{s}\"?)"))
        .unwrap_or_default();
    QueryError {
        kind: ErrorKind::NotFound,
        path: String::new(),
        message: format!(
            "no cohort named \"{name}\"{hint}; save one with a users query and \"save_as\", or PUT /v1/cohorts/{name}{}",
            if names.is_empty() {
                String::new()
            } else {
                format!("; saved: {}", names.join(", "))
            }
        ),
    }
}

/// Evaluates a cohort definition (a `users` query) to its members.
/// `chain` names the live cohorts whose evaluation this is, outermost
/// first.
pub fn evaluate(
    store: &Store,
    definition: &Json,
    opts: &QueryOptions,
    chain: &[String],
) -> Result<RoaringBitmap> {
    if chain.len() > MAX_DEPTH {
        return Err(QueryError::invalid(
            "definition.users",
            format!(
                "cohorts read each other more than {MAX_DEPTH} deep: {}",
                chain.join(" → ")
            ),
        ));
    }
    let mut o = crate::json::Obj::new(definition, "definition")?;
    let kind = o.req_str("kind")?;
    if kind != "users" {
        return Err(QueryError::invalid(
            "definition.kind",
            format!("a cohort is defined by a users query; got kind \"{kind}\""),
        ));
    }
    let mut allowed: Vec<&str> = crate::COMMON
        .split(", ")
        .filter(|k| !NOT_DEFINITION.contains(k))
        .collect();
    allowed.extend(
        crate::USERS_FIELDS
            .iter()
            .filter(|k| !NOT_DEFINITION.contains(k)),
    );
    crate::json::check_keys(definition, "definition", &allowed)?;
    let opts = QueryOptions {
        stats: None,
        ..opts.clone()
    };
    let mut ctx = crate::exec::Ctx::new(store, opts, crate::Limits::default());
    ctx.apply_scope()?;
    ctx.within_cohorts(chain.to_vec());
    let common = crate::model::Common::parse(&mut o, &mut ctx)?;
    let q = crate::users_plan(&mut o, &mut ctx, &common)?;
    o.finish(&allowed.join(", "))?;
    crate::users::members(&q, &common, &ctx)
}

/// Cohort `name`, re-evaluated first when it is live and older than the
/// bound (the new members are saved, with a point in the size history).
/// `chain`: the live cohorts being evaluated around this read.
pub fn current(store: &Store, name: &str, opts: &QueryOptions, chain: &[String]) -> Result<Cohort> {
    if chain.iter().any(|c| c == name) {
        return Err(QueryError::invalid(
            "",
            format!(
                "cohort \"{name}\" is defined through itself: {} → {name}",
                chain.join(" → ")
            ),
        ));
    }
    let Some(cohort) = store.cohort_record(name)? else {
        return Err(not_found(store, name));
    };
    let max_age = opts.cohort_max_age.unwrap_or(DEFAULT_MAX_AGE);
    let now = now_ms();
    // Strictly younger than the bound: a bound of zero always re-evaluates
    // (an evaluation in this same millisecond may predate a write).
    let fresh = now.saturating_sub(cohort.evaluated_at) < max_age.as_millis() as i64;
    let Some(def) = cohort.definition.as_deref().filter(|_| !fresh) else {
        return Ok(cohort);
    };
    refresh(store, name, cohort.generation, def, opts, chain).map(|c| c.unwrap_or(cohort))
}

/// Re-evaluates cohort `name` now, whatever its age (a static one is
/// returned as it is).
pub fn reevaluate(store: &Store, name: &str, opts: &QueryOptions) -> Result<Cohort> {
    let Some(cohort) = store.cohort_record(name)? else {
        return Err(not_found(store, name));
    };
    let Some(def) = cohort.definition.as_deref() else {
        return Ok(cohort);
    };
    refresh(store, name, cohort.generation, def, opts, &[]).map(|c| c.unwrap_or(cohort))
}

fn refresh(
    store: &Store,
    name: &str,
    generation: u64,
    def: &str,
    opts: &QueryOptions,
    chain: &[String],
) -> Result<Option<Cohort>> {
    let def: Json = serde_json::from_str(def).map_err(|e| QueryError {
        kind: ErrorKind::Storage,
        path: String::new(),
        message: format!("cohort \"{name}\": its saved definition is not JSON: {e}"),
    })?;
    let at = now_ms();
    let mut inner = chain.to_vec();
    inner.push(name.to_owned());
    // A cohort's members do not depend on who reads it: the reader's
    // scope applies to what it reads, not to what is saved.
    let opts = QueryOptions {
        scope: None,
        ..opts.clone()
    };
    let members = evaluate(store, &def, &opts, &inner).map_err(|e| QueryError {
        message: format!("cohort \"{name}\": {e}"),
        path: String::new(),
        ..e
    })?;
    // Deleted or replaced meanwhile: this evaluation is of nothing saved.
    Ok(store.update_cohort(name, generation, members, at)?)
}

/// Creates or replaces live cohort `name` from `definition`, evaluated
/// now (so a bad definition is refused, with its JSON path, before
/// anything is saved).
pub fn create_live(
    store: &Store,
    name: &str,
    definition: &Json,
    opts: &QueryOptions,
) -> Result<Cohort> {
    footprint_storage::cohorts::check_name(name).map_err(|m| QueryError::invalid("name", m))?;
    let at = now_ms();
    let members = evaluate(store, definition, opts, &[name.to_owned()])?;
    // A scoped caller's cohort stays within its scope, whoever reads it.
    match &opts.scope {
        Some(s) => save_live(store, name, &s.narrow_query(definition), members, at),
        None => save_live(store, name, definition, members, at),
    }
}

/// Saves `members` (evaluated at `at`) as live cohort `name` of
/// `definition`.
pub fn save_live(
    store: &Store,
    name: &str,
    definition: &Json,
    members: RoaringBitmap,
    at: i64,
) -> Result<Cohort> {
    let c = Cohort::new(Some(definition.to_string()), members, at);
    store.put_cohort(name, &c)?;
    Ok(c)
}
