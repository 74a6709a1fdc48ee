//! The execution context: name resolution, the columns a query needs, and
//! the parallel per-shard executor with cancellation and a time budget.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use footprint_storage::profiles::Profile;
use footprint_storage::{ScanSpec, Snapshot, Store, UserRows, Value};
use rayon::prelude::*;
use roaring::RoaringBitmap;
use rustc_hash::FxHashMap;
use serde_json::Value as Json;

use crate::error::{ErrorKind, QueryError, Result};
use crate::filter::{Filter, Props};
use crate::limits::{Budget, Limits, Metered};

/// How a query runs.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    /// Give up after this long.
    pub timeout: Option<Duration>,
    /// Set to `true` to cancel a running query.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Filled with what the query read, when given.
    pub stats: Option<Arc<ScanStats>>,
    /// A live cohort read by the query is re-evaluated first when its
    /// members are older than this (`None`:
    /// [`crate::cohorts::DEFAULT_MAX_AGE`]).
    pub cohort_max_age: Option<Duration>,
    /// Only the people this condition admits are read (see
    /// [`crate::scope`]); `None`: everyone.
    pub scope: Option<crate::scope::Scope>,
}

/// What a query read (for benchmarks and `--timing`).
#[derive(Debug, Default)]
pub struct ScanStats {
    /// Users whose events were read.
    pub users_read: std::sync::atomic::AtomicU64,
    /// Events decoded, including rows of events the query does not look
    /// at (dropped after decoding) and rows outside its time range.
    pub events_read: std::sync::atomic::AtomicU64,
    /// Users counted from the per-event bitmaps without reading their events.
    pub users_from_bitmaps: std::sync::atomic::AtomicU64,
}

/// Query-wide state: resolved names, requested columns, warnings.
pub struct Ctx<'a> {
    store: &'a Store,
    snapshot: Snapshot,
    /// Property ids to decode, by scan slot.
    props: Vec<u32>,
    warnings: Vec<String>,
    opts: QueryOptions,
    started: Instant,
    /// The query reads user properties.
    profiles: bool,
    /// Identity: known user → the user ids that are that person (the
    /// known id first), for people with aliases.
    /// (every id of them in `groups.members`).
    groups: Arc<footprint_storage::AliasGroups>,
    /// Users [`Prune::Pair`] counted without reading.
    only_first: std::sync::atomic::AtomicU64,
    /// Only these users (a saved cohort in `users`), when set.
    cohort: Option<RoaringBitmap>,
    /// The events the query looks at (`None`: every event).
    events: Option<Vec<bool>>,
    /// The query never reads event times.
    skip_times: bool,
    /// The query can take users as per-event runs.
    runs: bool,
    /// What the query may hold, and holds so far.
    budget: Budget,
    /// The live cohorts being evaluated around this query, outermost
    /// first (a definition may not reach its own name).
    chain: Vec<String>,
    /// The people [`QueryOptions::scope`] admits, once applied.
    scope: Option<crate::scope::Resolved>,
}

impl<'a> Ctx<'a> {
    /// A context over a fresh snapshot of `store`, its query holding at
    /// most `limits`.
    pub fn new(store: &'a Store, opts: QueryOptions, limits: Limits) -> Self {
        Ctx {
            store,
            snapshot: store.snapshot(),
            props: Vec::new(),
            warnings: Vec::new(),
            opts,
            started: Instant::now(),
            profiles: false,
            groups: Arc::default(),
            only_first: std::sync::atomic::AtomicU64::new(0),
            cohort: None,
            events: None,
            skip_times: false,
            runs: false,
            budget: Budget::new(limits),
            chain: Vec::new(),
            scope: None,
        }
        .with_aliases()
    }

    fn with_aliases(mut self) -> Self {
        self.groups = self.snapshot.aliases.groups();
        self
    }

    /// Resolves an event name. A name no event has is an error when it
    /// looks like a misspelling of a known name (`sigup` → `signup`);
    /// otherwise it matches nothing and the result carries a warning (an
    /// event that simply has not happened yet counts zero).
    pub fn event_id(&mut self, name: &str, path: &str) -> Result<Option<u32>> {
        let id = self.store.event_id(name);
        if id.is_none() {
            let names = self.store.event_names();
            let near = crate::suggest::nearest(name, names.iter().map(|s| s.as_str()));
            if let (Some(s), true) = (near, name.chars().count() >= 4) {
                return Err(QueryError::invalid(
                    path,
                    format!("unknown event \"{name}\" (did you mean \"{s}\"?)"),
                ));
            }
            self.warnings
                .push(format!("{path}: no event named \"{name}\" has been stored"));
        }
        Ok(id)
    }

    /// Whether the store links user ids into people (aliases), which
    /// queries merge and an export does not.
    pub fn has_aliases(&self) -> bool {
        !self.groups.groups.is_empty()
    }

    /// The scan slot of event property `name`, registering it. Unknown
    /// names follow the rule of [`Ctx::event_id`].
    pub fn slot(&mut self, name: &str, path: &str) -> Result<Option<usize>> {
        match self.store.prop_id(name) {
            Some(pid) => Ok(Some(match self.props.iter().position(|&p| p == pid) {
                Some(k) => k,
                None => {
                    self.props.push(pid);
                    self.props.len() - 1
                }
            })),
            None => {
                let names = self.store.prop_names();
                let near = crate::suggest::nearest(name, names.iter().map(|s| s.as_str()));
                if let (Some(s), true) = (near, name.chars().count() >= 4) {
                    return Err(QueryError::invalid(
                        path,
                        format!("unknown property \"{name}\" (did you mean \"{s}\"?)"),
                    ));
                }
                self.warnings
                    .push(format!("{path}: no event has a property \"{name}\""));
                Ok(None)
            }
        }
    }

    /// The scan slot of event property `name` when some event has it,
    /// registering it; `None` (no warning) otherwise. For properties a
    /// query reads by convention, not because the user named them.
    pub fn slot_if_stored(&mut self, name: &str) -> Option<usize> {
        self.store.prop_id(name)?;
        self.slot(name, "").ok().flatten()
    }

    /// Parses a filter, registering the properties it reads.
    pub fn filter(&mut self, v: &Json, path: &str) -> Result<Filter> {
        let mut slots: Vec<(String, Option<usize>)> = Vec::new();
        let f = Filter::parse(v, path, &mut |name| {
            if let Some((_, s)) = slots.iter().find(|(n, _)| n == name) {
                return *s;
            }
            slots.push((name.to_owned(), None));
            Some(usize::MAX)
        })?;
        // Resolve after parsing, so warnings name the filter's path.
        let mut resolved = Vec::new();
        for (name, _) in &slots {
            resolved.push((name.clone(), self.slot(name, path)?));
        }
        Ok(resolve(f, &resolved))
    }

    /// Marks that the query reads user properties. Profiles come with the
    /// query's snapshot (copy-on-write, nothing is copied here); this only
    /// records the need.
    pub fn need_profiles(&mut self) {
        self.profiles = true;
    }

    /// The profile of `uid`.
    pub fn profile(&self, uid: u32) -> Option<Profile<'_>> {
        self.snapshot.profiles.get(uid)
    }

    /// Users with a profile, ascending.
    pub fn profile_users(&self) -> Vec<u32> {
        self.snapshot.profiles.user_ids()
    }

    /// True when `uid` is one of several ids of a person but not the known
    /// id they are read under (the scan's alias pass reads them together).
    pub fn aliased_away(&self, uid: u32) -> bool {
        self.groups.members.contains(uid)
            && self
                .groups
                .groups
                .binary_search_by_key(&uid, |(known, _)| *known)
                .is_err()
    }

    /// False when a saved cohort in `users` leaves `uid` out.
    pub fn in_cohort(&self, uid: u32) -> bool {
        self.cohort.as_ref().is_none_or(|c| c.contains(uid))
    }

    /// The profile of `uid` (`Some(None)` without one) when the query's
    /// `users` filter admits the user; `None` when it does not.
    pub fn admit(&self, c: &crate::model::Common, uid: u32) -> Option<Option<Profile<'_>>> {
        let profile = self.profile(uid);
        (c.users.is_true() || c.users.eval(&UserProps(profile))).then_some(profile)
    }

    /// Restricts the query to the people of [`QueryOptions::scope`],
    /// evaluated at this query's snapshot (nothing without one). Call
    /// before anything reads users.
    pub fn apply_scope(&mut self) -> Result<()> {
        let Some(scope) = self.opts.scope.clone() else {
            return Ok(());
        };
        let resolved = crate::scope::resolve(self.store, &self.snapshot, &scope, &self.opts, None)?;
        let persons = resolved.persons().clone();
        self.cohort = Some(match self.cohort.take() {
            Some(c) => c & persons,
            None => persons,
        });
        self.scope = Some(resolved);
        Ok(())
    }

    /// The people of the query's scope, once applied.
    pub fn scope(&self) -> Option<&crate::scope::Resolved> {
        self.scope.as_ref()
    }

    /// Marks this query as the evaluation of live cohorts `chain`
    /// (outermost first): reading any of them again is a cycle.
    pub fn within_cohorts(&mut self, chain: Vec<String>) {
        self.chain = chain;
    }

    /// The store this query reads.
    pub fn store(&self) -> &'a Store {
        self.store
    }

    /// Restricts the query to the members of saved cohort `name` (several
    /// cohorts intersect). A live cohort older than the staleness bound is
    /// re-evaluated first.
    pub fn restrict_to_cohort(&mut self, name: &str, path: &str) -> Result<()> {
        let cohort =
            crate::cohorts::current(self.store, name, &self.opts, &self.chain).map_err(|e| {
                QueryError {
                    kind: match e.kind {
                        ErrorKind::NotFound => ErrorKind::Invalid,
                        k => k,
                    },
                    path: path.to_owned(),
                    message: e.to_string(),
                }
            })?;
        let members = cohort.members;
        self.cohort = Some(match self.cohort.take() {
            Some(c) => c & members,
            None => members,
        });
        Ok(())
    }

    /// The id of a user name, `None` for a user never seen or outside
    /// the query's scope (the two look the same).
    pub fn user_id(&self, name: &str) -> Option<u32> {
        let uid = self.store.user_id(name)?;
        self.scope
            .as_ref()
            .is_none_or(|s| s.admits(uid))
            .then_some(uid)
    }

    /// The names of user ids.
    pub fn user_names(&self, ids: &[u32]) -> Vec<String> {
        self.store.user_names(ids)
    }

    /// The id of event `name`, or `None` without a warning: for names a
    /// query lists by default (`ignore_events`, `page_events`) that need
    /// not have happened.
    pub fn quiet_event_id(&self, name: &str) -> Option<u32> {
        self.store.event_id(name)
    }

    /// Event names by id (for results that label rows by event name).
    pub fn event_names(&self) -> Vec<String> {
        self.store.event_names()
    }

    /// Users a [`Prune::Pair`] run skipped because they did the first
    /// event but never the second (for the caller to count).
    pub fn only_first(&self) -> u64 {
        self.only_first.load(Ordering::Relaxed)
    }

    /// Whether `range` admits every event of the snapshot (then the per-event
    /// user bitmaps, which span all time, are exact for it).
    pub fn covers_all(&self, range: Option<(i64, i64)>) -> bool {
        match (range, self.snapshot.time_extent()) {
            (None, _) | (_, None) => true,
            (Some((from, to)), Some((lo, hi))) => from <= lo && hi < to,
        }
    }

    /// The earliest and latest event time this query can see (of the
    /// people in its scope, when it has one).
    pub fn time_extent(&self) -> Result<Option<(i64, i64)>> {
        match &self.scope {
            None => Ok(self.snapshot.time_extent()),
            Some(s) => crate::scope::time_extent(&self.snapshot, s),
        }
    }

    /// Declares that the query looks at rows only through `refs` (every
    /// event reference it matches rows against), so scans may leave out
    /// the rows of other events. A `$any` reference needs every row. Call
    /// at most once, and not at all when unrelated rows matter (e.g. a
    /// funnel under `strict_order`).
    pub fn only_events<'r>(&mut self, refs: impl IntoIterator<Item = &'r crate::model::EventRef>) {
        let mut want = Vec::new();
        for r in refs {
            match r.id {
                None => return,
                Some(None) => {}
                Some(Some(ev)) => {
                    let ev = ev as usize;
                    if want.len() <= ev {
                        want.resize(ev + 1, false);
                    }
                    want[ev] = true;
                }
            }
        }
        self.events = Some(want);
    }

    /// Declares that the query neither reads event times nor depends on
    /// the order of a user's rows, so a scan over all time may skip
    /// decoding times. A lone format 2 segment then hands over each user's
    /// rows grouped by event, not in time order: a query that takes "the
    /// first row" of anything (a breakdown value, a cohort, a pair) must
    /// not call this.
    pub fn order_free(&mut self) {
        self.skip_times = true;
    }

    /// Declares that the query can take a user's rows as per-event runs
    /// ([`footprint_storage::UserRows::runs`]) instead of a merged list.
    pub fn runs_ok(&mut self) {
        self.runs = true;
    }

    /// The query's memory limits and what its shards hold.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// Says how a query of this kind can be narrowed when it exceeds a
    /// limit.
    pub fn limit_hint(&mut self, hint: &'static str) {
        self.budget.set_hint(hint);
    }

    /// The number of shards (each builds its own partial result).
    pub fn shards(&self) -> usize {
        self.snapshot.shards.len()
    }

    /// Warnings collected while planning.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Adds a warning.
    pub fn warn(&mut self, w: String) {
        self.warnings.push(w);
    }

    /// Runs `per_user` over every user (with events in `range`) of every
    /// shard in parallel, one accumulator per shard, merged with `merge`.
    /// When `prune` names an event, only users who ever did it are read.
    /// The accumulators are metered against the query's limits after every
    /// user (see [`crate::limits`]).
    pub fn run<A: Send + Metered>(
        &self,
        range: Option<(i64, i64)>,
        prune: Prune,
        init: impl Fn() -> A + Sync,
        per_user: impl Fn(&mut A, &UserRows<'_>) + Sync,
        merge: impl Fn(A, A) -> A + Sync,
    ) -> Result<A> {
        if self.profiles {
            // A damaged profile base is an error, never a wrong answer.
            self.snapshot.profiles.verify().map_err(|e| QueryError {
                kind: ErrorKind::Storage,
                path: String::new(),
                message: e.to_string(),
            })?;
        }
        if range.is_some_and(|(from, to)| from >= to) {
            // An empty range (`from == to`, or a zero window) shows no event.
            return Ok(init());
        }
        let (prune, then) = match prune {
            // Nobody ever did the event every counted user needs.
            Prune::Nobody => return Ok(init()),
            Prune::Event(ev) => (Some(ev), None),
            Prune::Pair(ev, then) => (Some(ev), Some(then)),
            Prune::None => (None, None),
        };
        let deadline = self.opts.timeout.map(|t| self.started + t);
        let cancel = self.opts.cancel.clone();
        let stop: AtomicBool = AtomicBool::new(false);
        let results: Vec<Result<A>> = self
            .snapshot
            .shards
            .par_iter()
            .map(|shard| {
                let users: Option<RoaringBitmap> = match (prune, then) {
                    (Some(ev), Some(then)) => {
                        // Users who did `ev` but never `then` are counted,
                        // not read.
                        let mut bm = shard.event_users(ev)?;
                        if let Some(c) = &self.cohort {
                            bm &= c;
                        }
                        let both = &bm & &shard.event_users(then)?;
                        // `both` is within `bm`: without alias groups to
                        // leave out, the count needs no third bitmap.
                        let only = if self.groups.members.is_empty() {
                            bm.len() - both.len()
                        } else {
                            bm -= &both;
                            bm -= &self.groups.members;
                            bm.len()
                        };
                        self.only_first.fetch_add(only, Ordering::Relaxed);
                        if let Some(st) = &self.opts.stats {
                            st.users_from_bitmaps.fetch_add(only, Ordering::Relaxed);
                        }
                        Some(both)
                    }
                    // The scan leapfrogs the bitmap against each segment's
                    // user table, so even a dense bitmap costs next to nothing.
                    (Some(ev), None) => Some(match &self.cohort {
                        Some(c) => shard.event_users(ev)? & c,
                        None => shard.event_users(ev)?,
                    }),
                    (None, _) => self.cohort.clone(),
                };
                let spec = ScanSpec {
                    range,
                    props: self.props.clone(),
                    users,
                    skip: (!self.groups.members.is_empty()).then(|| self.groups.members.clone()),
                    events: self.events.clone(),
                    skip_times: self.skip_times,
                    runs: self.runs,
                    origins: false,
                };
                let mut acc = init();
                let mut meter = self.budget.meter();
                let mut over: Option<QueryError> = None;
                let mut n = 0u32;
                let (mut users_read, mut events_read) = (0u64, 0u64);
                let mut why: Option<ErrorKind> = None;
                let finished = shard.scan_while(&spec, |u| {
                    n = n.wrapping_add(1);
                    users_read += 1;
                    events_read += u.decoded as u64;
                    if n == 1 || n.is_multiple_of(256) {
                        if stop.load(Ordering::Relaxed) {
                            return false;
                        }
                        if cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
                            why = Some(ErrorKind::Cancelled);
                            stop.store(true, Ordering::Relaxed);
                            return false;
                        }
                        if deadline.is_some_and(|d| Instant::now() > d) {
                            why = Some(ErrorKind::Timeout);
                            stop.store(true, Ordering::Relaxed);
                            return false;
                        }
                    }
                    per_user(&mut acc, u);
                    if let Err(e) = meter.update(acc.usage()) {
                        over = Some(e);
                        stop.store(true, Ordering::Relaxed);
                        return false;
                    }
                    true
                })?;
                // Keep the resident set to the shards being scanned.
                shard.release_pages();
                if let Some(st) = &self.opts.stats {
                    st.users_read.fetch_add(users_read, Ordering::Relaxed);
                    st.events_read.fetch_add(events_read, Ordering::Relaxed);
                }
                if let Some(e) = over {
                    return Err(e);
                }
                if !finished {
                    return Err(self.stopped(why));
                }
                if let Err(e) = meter.finish(acc.usage()) {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
                Ok(acc)
            })
            .collect();
        let mut out: Option<A> = None;
        let mut first_err: Option<QueryError> = None;
        for r in results {
            match r {
                Ok(a) => {
                    out = Some(match out {
                        None => a,
                        Some(b) => merge(b, a),
                    })
                }
                Err(e) => {
                    // Prefer the reason over the "stopped because another shard stopped".
                    if first_err.as_ref().is_none_or(|f| {
                        f.kind == ErrorKind::Cancelled && e.kind != ErrorKind::Cancelled
                    }) {
                        first_err = Some(e);
                    }
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        let mut out = out.unwrap_or_else(&init);
        if !self.groups.groups.is_empty() {
            let mut acc = init();
            let mut meter = self.budget.meter();
            let mut over: Option<QueryError> = None;
            self.for_each_person(range, |u| {
                if over.is_some() {
                    return;
                }
                if let Some(st) = &self.opts.stats {
                    st.users_read.fetch_add(1, Ordering::Relaxed);
                    st.events_read
                        .fetch_add(u.decoded as u64, Ordering::Relaxed);
                }
                per_user(&mut acc, u);
                over = meter.update(acc.usage()).err();
            })?;
            if let Some(e) = over {
                return Err(e);
            }
            meter.finish(acc.usage())?;
            out = merge(out, acc);
        }
        Ok(out)
    }

    /// Calls `f` once per person with aliases: the events of all their user
    /// ids, merged in time order, under the known id.
    fn for_each_person(
        &self,
        range: Option<(i64, i64)>,
        mut f: impl FnMut(&UserRows<'_>),
    ) -> Result<()> {
        type Row = (i64, u32, Vec<Option<Value>>);
        let spec = ScanSpec {
            range,
            props: self.props.clone(),
            users: Some(self.groups.members.clone()),
            skip: None,
            events: self.events.clone(),
            skip_times: false,
            runs: false,
            origins: false,
        };
        let mut rows: FxHashMap<u32, Vec<Row>> = FxHashMap::default();
        for shard in &self.snapshot.shards {
            shard.scan(&spec, |u| {
                let r = rows.entry(u.uid).or_default();
                for i in 0..u.len() {
                    let props = (0..self.props.len())
                        .map(|k| u.prop(k, i).cloned())
                        .collect();
                    r.push((u.times[i], u.events[i], props));
                }
            })?;
        }
        let (mut times, mut events, mut props) = (Vec::new(), Vec::new(), Vec::new());
        for (known, members) in &self.groups.groups {
            if self.cohort.as_ref().is_some_and(|c| !c.contains(*known)) {
                continue;
            }
            let mut all: Vec<(i64, usize, usize)> = Vec::new();
            for (m, uid) in members.iter().enumerate() {
                if let Some(r) = rows.get(uid) {
                    all.extend(r.iter().enumerate().map(|(i, row)| (row.0, m, i)));
                }
            }
            if all.is_empty() {
                continue;
            }
            // Time order; ties keep the known id's events first, then arrival order.
            all.sort_unstable();
            times.clear();
            events.clear();
            props.clear();
            for &(t, m, i) in &all {
                if let Some(row) = rows.get(&members[m]).and_then(|r| r.get(i)) {
                    times.push(t);
                    events.push(row.1);
                    props.push(row.2.clone());
                }
            }
            f(&UserRows::owned(*known, &times, &events, &props));
        }
        Ok(())
    }

    fn stopped(&self, why: Option<ErrorKind>) -> QueryError {
        match why {
            Some(ErrorKind::Timeout) => QueryError {
                kind: ErrorKind::Timeout,
                path: String::new(),
                message: format!(
                    "the query ran longer than its time budget of {} ms",
                    self.opts.timeout.map_or(0, |t| t.as_millis())
                ),
            },
            _ => QueryError {
                kind: ErrorKind::Cancelled,
                path: String::new(),
                message: "the query was cancelled".into(),
            },
        }
    }
}

fn resolve(f: Filter, slots: &[(String, Option<usize>)]) -> Filter {
    use crate::filter::Target;
    match f {
        Filter::And(fs) => Filter::And(fs.into_iter().map(|f| resolve(f, slots)).collect()),
        Filter::Or(fs) => Filter::Or(fs.into_iter().map(|f| resolve(f, slots)).collect()),
        Filter::Not(f) => Filter::Not(Box::new(resolve(*f, slots))),
        Filter::Cmp {
            target: Target::Event { name, .. },
            op,
            values,
        } => {
            let slot = slots.iter().find(|(n, _)| *n == name).and_then(|(_, s)| *s);
            Filter::Cmp {
                target: Target::Event { name, slot },
                op,
                values,
            }
        }
        other => other,
    }
}

/// Which users a query can skip before reading their events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prune {
    /// Read everyone.
    None,
    /// Only users who ever did this event can count.
    Event(u32),
    /// The event every counted user needs was never stored: read no one.
    Nobody,
    /// Read only users who did both events; the users who did the first
    /// but never the second are counted into [`Ctx::only_first`] (a funnel's
    /// level-1 users, known from the bitmaps alone).
    Pair(u32, u32),
}

impl Prune {
    /// The pruning a required event reference allows.
    pub fn by(r: &crate::model::EventRef) -> Prune {
        match r.id {
            None => Prune::None,
            Some(Some(ev)) => Prune::Event(ev),
            Some(None) => Prune::Nobody,
        }
    }
}

/// The properties of event `i` of a user, with the user's profile.
pub struct RowProps<'r, 'a> {
    /// The user's events.
    pub rows: &'r UserRows<'a>,
    /// The event index.
    pub i: usize,
    /// The user's profile.
    pub profile: Option<Profile<'r>>,
}

impl Props for RowProps<'_, '_> {
    fn event(&self, k: usize) -> Option<&Value> {
        self.rows.prop(k, self.i)
    }
    fn user(&self, name: &str) -> Option<&Value> {
        self.profile?.get(name)
    }
}

/// Profile-only property access (for `users` conditions).
pub struct UserProps<'r>(pub Option<Profile<'r>>);

impl Props for UserProps<'_> {
    fn event(&self, _: usize) -> Option<&Value> {
        None
    }
    fn user(&self, name: &str) -> Option<&Value> {
        self.0?.get(name)
    }
}

/// Empties a per-user scratch buffer, giving back memory a rare huge user
/// made it take: every shard's accumulator holds its own buffers until the
/// merge, so without this one user with millions of events would cost
/// millions of entries per shard.
pub fn reset<T>(v: &mut Vec<T>) {
    const KEEP: usize = 1 << 14;
    v.clear();
    if v.capacity() > KEEP {
        v.shrink_to(KEEP);
    }
}

/// Exact quantile with linear interpolation between the two nearest ranks
/// (ClickHouse `quantileExactInclusive`, DuckDB `quantile_cont`) of sorted data.
pub fn quantile(sorted: &[i64], q: f64) -> Option<f64> {
    interpolate(sorted.len(), q, |i| sorted[i] as f64)
}

/// [`quantile`] of sorted floats.
pub fn quantile_f64(sorted: &[f64], q: f64) -> Option<f64> {
    interpolate(sorted.len(), q, |i| sorted[i])
}

/// The `q` quantile of `n` sorted values read through `at`.
fn interpolate(n: usize, q: f64, at: impl Fn(usize) -> f64) -> Option<f64> {
    if n == 0 {
        return None;
    }
    let pos = q * (n - 1) as f64;
    let lo = pos.floor() as usize;
    let (a, b) = (at(lo), at((lo + 1).min(n - 1)));
    Some(a + (b - a) * (pos - lo as f64))
}

/// An integer sample for [`quantile_unsorted`].
pub trait Sample: Copy + Ord {
    /// The value as a float.
    fn f64(self) -> f64;
}

impl Sample for i64 {
    fn f64(self) -> f64 {
        self as f64
    }
}

impl Sample for u32 {
    fn f64(self) -> f64 {
        f64::from(self)
    }
}

/// [`quantile`] of unsorted data, by selection (linear time) instead of a
/// full sort; reorders `v`.
pub fn quantile_unsorted<T: Sample>(v: &mut [T], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let pos = q * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let (_, &mut a, right) = v.select_nth_unstable(lo);
    // The next rank is the smallest value right of the selected one.
    let b = right.iter().copied().min().unwrap_or(a);
    let (a, b) = (a.f64(), b.f64());
    Some(a + (b - a) * (pos - lo as f64))
}

/// A float as JSON with integral values as integers (a sum of whole
/// amounts prints as `120`, not `120.0`).
pub fn number(x: f64) -> Json {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        Json::from(x as i64)
    } else {
        num(Some(x))
    }
}

/// Renders an optional float as JSON.
pub fn num(x: Option<f64>) -> Json {
    x.and_then(serde_json::Number::from_f64)
        .map_or(Json::Null, Json::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn selection_quantile_equals_sorted_quantile(
            mut v in proptest::collection::vec(-1000i64..1000, 0..200),
            q in prop_oneof![Just(0.0), Just(0.25), Just(0.5), Just(0.75), Just(1.0), 0.0f64..1.0],
        ) {
            let mut sorted = v.clone();
            sorted.sort_unstable();
            prop_assert_eq!(quantile_unsorted(&mut v, q), quantile(&sorted, q));
        }
    }
}
