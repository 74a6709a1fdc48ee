//! Saved cohorts through the engine: live cohorts (a `users` definition,
//! re-evaluated on read when older than the staleness bound, see
//! [`footprint_query::cohorts`]) and static ones (an uploaded list of ids).
//! Evaluations run on the engine's query threads.
//!
//! With a scope ([`QueryOptions::scope`]) every cohort read here holds
//! only in-scope people: its size is theirs, its size history (counts of
//! everyone) is withheld (empty), and a cohort saved under a scope keeps
//! the scope in its definition (see [`footprint_query::scope`]).

use footprint_query::cohorts as live;
use footprint_storage::cohorts::{now_ms, Cohort};
use roaring::RoaringBitmap;
use serde_json::Value as Json;

use crate::{Engine, Error, QueryOptions, Result};

/// Most ids an uploaded static cohort may list.
pub const MAX_STATIC_IDS: usize = 10_000_000;

/// What storing a static cohort did with the ids given.
#[derive(Debug, Clone)]
pub struct StaticSaved {
    /// The cohort as saved.
    pub cohort: Cohort,
    /// How many ids the store has never seen (left out: a cohort holds
    /// known users only).
    pub unknown: usize,
    /// The first few of them (at most 10).
    pub unknown_ids: Vec<String>,
}

impl Engine {
    /// Cohort `name`, re-evaluated first when it is live and its members
    /// are older than `opts.cohort_max_age` (default 60 s).
    pub fn cohort(&self, name: &str, opts: &QueryOptions) -> Result<Cohort> {
        let store = self.store();
        let c = self
            .pool
            .install(|| live::current(store, name, opts, &[]))?;
        self.scoped(c, opts)
    }

    /// Re-evaluates cohort `name` now, whatever its age.
    pub fn reevaluate_cohort(&self, name: &str, opts: &QueryOptions) -> Result<Cohort> {
        let store = self.store();
        let c = self.pool.install(|| live::reevaluate(store, name, opts))?;
        self.scoped(c, opts)
    }

    /// `c` as `opts.scope` sees it: its in-scope members, no history.
    fn scoped(&self, mut c: Cohort, opts: &QueryOptions) -> Result<Cohort> {
        if let Some(scope) = self.resolve_scope(opts, Some(&c.members))? {
            c.members &= scope.persons();
            c.history.clear();
        }
        Ok(c)
    }

    /// Evaluates a cohort definition (a `users` query) without saving it.
    pub fn evaluate_definition(
        &self,
        definition: &Json,
        opts: &QueryOptions,
    ) -> Result<RoaringBitmap> {
        let store = self.store();
        Ok(self
            .pool
            .install(|| live::evaluate(store, definition, opts, &[]))?)
    }

    /// Creates or replaces live cohort `name` from `definition` (a `users`
    /// query), evaluated now.
    pub fn create_cohort(
        &self,
        name: &str,
        definition: &Json,
        opts: &QueryOptions,
    ) -> Result<Cohort> {
        let store = self.store();
        let c = self
            .pool
            .install(|| live::create_live(store, name, definition, opts))?;
        self.scoped(c, opts)
    }

    /// Creates or replaces static cohort `name` of the users `ids` (an
    /// anonymous id counts as the person it is aliased to). Ids never
    /// seen are left out and reported, and so, alike, are the ids of
    /// people outside `opts.scope`.
    pub fn create_static_cohort(
        &self,
        name: &str,
        ids: &[String],
        opts: &QueryOptions,
    ) -> Result<StaticSaved> {
        footprint_storage::cohorts::check_name(name).map_err(Error::Invalid)?;
        if ids.len() > MAX_STATIC_IDS {
            return Err(Error::Invalid(format!(
                "{} ids: a static cohort lists at most {MAX_STATIC_IDS}",
                ids.len()
            )));
        }
        let store = self.store();
        let known: RoaringBitmap = ids.iter().filter_map(|id| store.user_id(id)).collect();
        let scope = self.resolve_scope(opts, Some(&known))?;
        let mut members = RoaringBitmap::new();
        let (mut unknown, mut unknown_ids) = (0, Vec::new());
        for id in ids {
            let uid = store
                .user_id(id)
                .filter(|&u| scope.as_ref().is_none_or(|s| s.admits(u)));
            match uid {
                Some(u) => {
                    members.insert(u);
                }
                None => {
                    unknown += 1;
                    if unknown_ids.len() < 10 {
                        unknown_ids.push(id.clone());
                    }
                }
            }
        }
        // Queries see a person under their known id.
        let groups = store.snapshot().aliases.groups();
        if !(&groups.members & &members).is_empty() {
            for (known, ids) in &groups.groups {
                if ids.iter().any(|u| members.contains(*u)) {
                    for u in ids {
                        members.remove(*u);
                    }
                    members.insert(*known);
                }
            }
        }
        let cohort = Cohort::new(None, members, now_ms());
        store.put_cohort(name, &cohort)?;
        Ok(StaticSaved {
            cohort,
            unknown,
            unknown_ids,
        })
    }

    /// Deletes cohort `name`; false if there was none.
    pub fn delete_cohort(&self, name: &str) -> Result<bool> {
        Ok(self.store().delete_cohort(name)?)
    }

    /// Every saved cohort as last evaluated (none is re-evaluated here),
    /// by name; with `opts.scope`, each as the scope sees it.
    pub fn cohorts(&self, opts: &QueryOptions) -> Result<Vec<(String, Cohort)>> {
        let store = self.store();
        let mut out = Vec::new();
        for name in store.cohort_names()? {
            // One deleted since the listing is skipped.
            if let Some(c) = store.cohort_record(&name)? {
                out.push((name, self.scoped(c, opts)?));
            }
        }
        Ok(out)
    }
}
