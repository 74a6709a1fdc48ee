//! Scopes (per-owner access, issue 16): a user condition that restricts
//! everything one caller reads to the people it admits — "the customers
//! whose `csm_owner` is alice". The condition is the language of a
//! query's `users`: profile conditions (`and`, `or`, `not`, any operator)
//! and saved cohorts (`{"cohort": NAME}`, alone or as items of a top-level
//! `and`).
//!
//! A scope is evaluated at the snapshot of each query that carries it
//! ([`crate::QueryOptions::scope`]) into the set of people it admits, and
//! that set is intersected into the users every scan of the query reads,
//! as a saved cohort in `users` is. So every kind, breakdown value,
//! `$other` bucket, total, cohort size and id list is computed from
//! in-scope people only, exactly as if the others had never been stored.
//!
//! A person is read under their known id and judged by its profile: an
//! anonymous id aliased to an in-scope person is in scope with them, and an
//! id aliased to an out-of-scope person is out with them whatever its own
//! profile says. People with a profile and no event are judged by their
//! profile like everyone else.
//!
//! What a scope does not hide: the names of events and properties (the
//! schema is shared, so "did you mean" hints and "no event named" warnings
//! are those of the whole data set), and the names of saved cohorts.

use std::sync::Arc;

use footprint_storage::{AliasGroups, ScanSpec, Snapshot, Store};
use roaring::RoaringBitmap;
use serde_json::{Map, Value as Json};

use crate::error::{ErrorKind, QueryError, Result};
use crate::exec::{QueryOptions, UserProps};
use crate::filter::Filter;

/// A user condition restricting what a caller reads (see the module
/// docs). Cheap to clone.
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    condition: Arc<Json>,
}

impl Scope {
    /// A scope of `condition`, checked as a query's `users` is (errors
    /// name paths under `path`; the cohorts it names are looked up when
    /// it is evaluated).
    pub fn new(condition: Json, path: &str) -> Result<Scope> {
        crate::model::parse_users_with(&condition, path, &mut |_, _| Ok(()))?;
        Ok(Scope {
            condition: Arc::new(condition),
        })
    }

    /// The condition as given.
    pub fn condition(&self) -> &Json {
        &self.condition
    }

    /// `users` (a query's user condition, if any) narrowed to this scope:
    /// one top-level `and` of the items of both, so saved cohorts stay
    /// items of a top-level `and`.
    pub fn narrow(&self, users: Option<&Json>) -> Json {
        let mut items = Vec::new();
        for c in std::iter::once(self.condition.as_ref()).chain(users) {
            match c.get("and") {
                Some(Json::Array(list)) if c.as_object().is_some_and(|m| m.len() == 1) => {
                    items.extend(list.iter().cloned())
                }
                _ => items.push(c.clone()),
            }
        }
        let mut m = Map::new();
        m.insert("and".into(), Json::Array(items));
        Json::Object(m)
    }

    /// `query` with its `users` narrowed to this scope (see
    /// [`Scope::narrow`]): what a scoped caller saves as a cohort
    /// definition, so the cohort stays within the scope whoever reads it.
    pub fn narrow_query(&self, query: &Json) -> Json {
        let mut q = query.clone();
        if let Json::Object(m) = &mut q {
            let users = self.narrow(m.get("users"));
            m.insert("users".into(), users);
        }
        q
    }
}

/// A scope evaluated at one snapshot: the people it admits.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// In-scope people, by their known id.
    persons: RoaringBitmap,
    groups: Arc<AliasGroups>,
}

impl Resolved {
    /// The people admitted, each by the id queries read them under (the
    /// known id of a person with aliases).
    pub fn persons(&self) -> &RoaringBitmap {
        &self.persons
    }

    /// The id queries read `uid` under: its person's known id.
    pub fn person_of(&self, uid: u32) -> u32 {
        person_of(&self.groups, uid)
    }

    /// Every id of `uid`'s person, the known id first.
    pub fn ids_of(&self, uid: u32) -> Vec<u32> {
        if !self.groups.members.contains(uid) {
            return vec![uid];
        }
        self.groups
            .groups
            .iter()
            .find(|(_, m)| m.contains(&uid))
            .map_or_else(|| vec![uid], |(_, m)| m.clone())
    }

    /// Whether the person of `uid` is in scope.
    pub fn admits(&self, uid: u32) -> bool {
        self.persons.contains(self.person_of(uid))
    }

    /// Every id of every in-scope person (known ids and the ids aliased
    /// to them).
    pub fn all_ids(&self) -> RoaringBitmap {
        let mut ids = self.persons.clone();
        if !self.groups.groups.is_empty() {
            for (known, members) in &self.groups.groups {
                if self.persons.contains(*known) {
                    ids.extend(members.iter().copied());
                }
            }
        }
        ids
    }
}

fn person_of(groups: &AliasGroups, uid: u32) -> u32 {
    if !groups.members.contains(uid) {
        return uid;
    }
    groups
        .groups
        .iter()
        .find(|(_, m)| m.contains(&uid))
        .map_or(uid, |(known, _)| *known)
}

/// Evaluates `scope` at `snap` (a snapshot of `store`): the people it
/// admits, among the people of `among` when given (cheaper than
/// evaluating everyone, for a lookup of a few users). Cohorts the scope
/// names are read as any query reads them (a stale live one is
/// re-evaluated first, unscoped: a cohort's members do not depend on who
/// reads it).
pub fn resolve(
    store: &Store,
    snap: &Snapshot,
    scope: &Scope,
    opts: &QueryOptions,
    among: Option<&RoaringBitmap>,
) -> Result<Resolved> {
    let mut names: Vec<(String, String)> = Vec::new();
    let filter = crate::model::parse_users_with(&scope.condition, "scope", &mut |n, p| {
        names.push((n.to_owned(), p.to_owned()));
        Ok(())
    })?;
    let unscoped = QueryOptions {
        scope: None,
        stats: None,
        ..opts.clone()
    };
    let mut within: Option<RoaringBitmap> = None;
    for (name, path) in names {
        let c = crate::cohorts::current(store, &name, &unscoped, &[]).map_err(|e| QueryError {
            kind: match e.kind {
                ErrorKind::NotFound => ErrorKind::Invalid,
                k => k,
            },
            path,
            message: format!("the key's scope: {}", e.message),
        })?;
        within = Some(match within {
            Some(w) => w & c.members,
            None => c.members,
        });
    }
    let groups = snap.aliases.groups();
    let passes = |uid: u32| filter.is_true() || filter.eval(&UserProps(snap.profiles.get(uid)));
    let mut persons = match (among, within) {
        (Some(a), within) => {
            let mut known: RoaringBitmap = a.iter().map(|u| person_of(&groups, u)).collect();
            if let Some(w) = within {
                known &= w;
            }
            known.into_iter().filter(|&u| passes(u)).collect()
        }
        (None, Some(w)) => w.into_iter().filter(|&u| passes(u)).collect(),
        (None, None) if passes_without_profile(&filter) => {
            // Everyone without a profile is in: start from every id and
            // take out the profiles that fail.
            let mut all = RoaringBitmap::new();
            all.insert_range(0..store.user_count());
            for uid in snap.profiles.user_ids() {
                if !passes(uid) {
                    all.remove(uid);
                }
            }
            all
        }
        (None, None) => snap
            .profiles
            .user_ids()
            .into_iter()
            .filter(|&u| passes(u))
            .collect(),
    };
    if !groups.groups.is_empty() {
        // Anonymous ids are people only through their known id.
        let mut anonymous = groups.members.clone();
        for (known, _) in &groups.groups {
            anonymous.remove(*known);
        }
        persons -= anonymous;
    }
    Ok(Resolved { persons, groups })
}

fn passes_without_profile(f: &Filter) -> bool {
    f.is_true() || f.eval(&UserProps(None))
}

/// The earliest and latest time of an event of an in-scope person in
/// `snap` (`None` when they have none): what a scoped query takes for
/// "the stored events" when it has no `time_range`.
pub fn time_extent(snap: &Snapshot, scope: &Resolved) -> Result<Option<(i64, i64)>> {
    let spec = ScanSpec {
        range: None,
        props: Vec::new(),
        users: Some(scope.all_ids()),
        skip: None,
        events: None,
        skip_times: false,
        runs: false,
        origins: false,
    };
    let mut ext: Option<(i64, i64)> = None;
    for shard in &snap.shards {
        shard.scan(&spec, |u| {
            if let (Some(&lo), Some(&hi)) = (u.times.first(), u.times.last()) {
                ext = Some(ext.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
            }
        })?;
    }
    Ok(ext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn narrowing_keeps_cohorts_at_the_top_level() {
        let s = Scope::new(
            json!({"and": [{"cohort": "mine"}, {"user_prop": "plan", "op": "eq", "value": "pro"}]}),
            "users",
        )
        .unwrap();
        let q = json!({"kind": "users", "users": {"and": [{"cohort": "x"}, {"prop": "seats", "op": "gt", "value": 3}]}});
        assert_eq!(
            s.narrow_query(&q)["users"],
            json!({"and": [{"cohort": "mine"}, {"user_prop": "plan", "op": "eq", "value": "pro"},
                           {"cohort": "x"}, {"prop": "seats", "op": "gt", "value": 3}]})
        );
        let s = Scope::new(json!({"user_prop": "o", "op": "eq", "value": "a"}), "users").unwrap();
        assert_eq!(
            s.narrow(None),
            json!({"and": [{"user_prop": "o", "op": "eq", "value": "a"}]})
        );
        // An `or` is one item, not spread.
        let or = json!({"or": [{"prop": "a", "op": "is_set"}, {"prop": "b", "op": "is_set"}]});
        assert_eq!(
            s.narrow(Some(&or)),
            json!({"and": [{"user_prop": "o", "op": "eq", "value": "a"}, or]})
        );
    }

    #[test]
    fn bad_conditions_name_their_path() {
        let e = Scope::new(
            json!({"user_prop": "o", "op": "eqq", "value": "a"}),
            "keys[1].users",
        )
        .unwrap_err();
        assert!(e.path.starts_with("keys[1].users"), "{e}");
        let e = Scope::new(json!({"or": [{"cohort": "x"}]}), "users").unwrap_err();
        assert_eq!(e.path, "users.or[0].cohort", "{e}");
    }
}
