//! The parts of the query JSON every kind shares: time range, time zone,
//! filters, user conditions, breakdowns, limit, and event references.

use chrono_tz::Tz;
use footprint_storage::Value;
use serde_json::Value as Json;

use crate::error::{QueryError, Result};
use crate::exec::Ctx;
use crate::filter::{Filter, Props};
use crate::json::{array, Obj};
use crate::time::{parse_instant, parse_tz};

/// A reference to events: a name (or `$any`) and a filter.
#[derive(Debug, Clone)]
pub struct EventRef {
    /// The name as written.
    pub name: String,
    /// `None` for `$any`; `Some(None)` for a name no event has.
    pub id: Option<Option<u32>>,
    /// Per-reference filter.
    pub filter: Filter,
}

impl EventRef {
    /// Parses `{"event": NAME, "where": F}` at `path`.
    pub fn parse(v: &Json, path: &str, ctx: &mut Ctx<'_>) -> Result<EventRef> {
        let mut o = Obj::new(v, path)?;
        let r = EventRef::read(&mut o, ctx)?;
        o.finish("event, where")?;
        Ok(r)
    }

    /// Reads `event` and `where` from an object that may hold other fields
    /// (the caller finishes it).
    pub fn read(o: &mut Obj<'_>, ctx: &mut Ctx<'_>) -> Result<EventRef> {
        let name_path = o.at("event");
        let name = o.req_str("event")?.to_owned();
        if name.is_empty() {
            return Err(QueryError::invalid(name_path, "event name is empty"));
        }
        let id = if name == "$any" {
            None
        } else {
            Some(ctx.event_id(&name, &name_path)?)
        };
        let filter = match o.opt("where") {
            None => Filter::True,
            Some(w) => ctx.filter(w, &o.at("where"))?,
        };
        Ok(EventRef { name, id, filter })
    }

    /// True if event `ev` with properties `p` matches.
    #[inline]
    pub fn matches(&self, ev: u32, p: &dyn Props) -> bool {
        match self.id {
            None => self.filter.eval(p),
            Some(Some(id)) if id == ev => self.filter.eval(p),
            _ => false,
        }
    }

    /// The event id, if this names one known event (for bitmap pruning).
    pub fn known_id(&self) -> Option<u32> {
        self.id.flatten()
    }
}

/// One breakdown dimension.
#[derive(Debug, Clone)]
pub enum Breakdown {
    /// A property of the anchoring event, through scan slot `slot`.
    Event {
        /// Property name.
        name: String,
        /// Scan slot, `None` if no event has it.
        slot: Option<usize>,
    },
    /// A user profile property.
    User(String),
    /// The channel of the anchoring event (`{"channel": true}`, see
    /// [`crate::channels`]).
    Channel(crate::channels::Slots),
}

impl Breakdown {
    /// The label used in result keys.
    pub fn name(&self) -> &str {
        match self {
            Breakdown::Event { name, .. } | Breakdown::User(name) => name,
            Breakdown::Channel(_) => "channel",
        }
    }

    /// Whether the dimension reads the anchoring event (not the profile).
    pub fn reads_event(&self) -> bool {
        !matches!(self, Breakdown::User(_))
    }
}

/// Fields common to every kind.
#[derive(Debug, Clone)]
pub struct Common {
    /// Half-open time range.
    pub range: Option<(i64, i64)>,
    /// Time zone of calendar buckets.
    pub tz: Tz,
    /// Filter applied to every event read.
    pub filter: Filter,
    /// Condition on users (profile properties).
    pub users: Filter,
    /// Breakdown dimensions.
    pub breakdown: Vec<Breakdown>,
    /// Maximum groups returned.
    pub limit: usize,
}

impl Common {
    /// Reads the common fields from the query object.
    pub fn parse(o: &mut Obj<'_>, ctx: &mut Ctx<'_>) -> Result<Common> {
        let range = match o.opt("time_range") {
            None => None,
            Some(v) => {
                let p = o.at("time_range");
                let mut r = Obj::new(v, &p)?;
                let from = parse_instant(r.req("from")?, &r.at("from"))?;
                let to = parse_instant(r.req("to")?, &r.at("to"))?;
                r.finish("from, to")?;
                if from > to {
                    return Err(QueryError::invalid(
                        p,
                        format!(
                            "from ({from}) is after to ({to}); the range is half-open [from, to)"
                        ),
                    ));
                }
                if from == to {
                    // Valid and empty, as in SQL's `t >= from AND t < to`.
                    ctx.warn(format!(
                        "{p}: from equals to, so the half-open range [from, to) is empty and nothing is counted"
                    ));
                }
                Some((from, to))
            }
        };
        let tz = match o.opt_str("timezone")? {
            None => Tz::UTC,
            Some(name) => parse_tz(name, &o.at("timezone"))?,
        };
        let filter = match o.opt("where") {
            None => Filter::True,
            Some(w) => ctx.filter(w, &o.at("where"))?,
        };
        let users = match o.opt("users") {
            None => Filter::True,
            Some(u) => parse_users(u, &o.at("users"), ctx)?,
        };
        let mut breakdown = Vec::new();
        if let Some(b) = o.opt("breakdown") {
            let p = o.at("breakdown");
            for (i, item) in array(b, &p)?.iter().enumerate() {
                let ip = format!("{p}[{i}]");
                let mut bo = Obj::new(item, &ip)?;
                if bo.opt("channel").is_some() {
                    let cp = bo.at("channel");
                    if bo.opt_bool("channel")? != Some(true) {
                        return Err(QueryError::invalid(cp, "expected true"));
                    }
                    bo.finish("channel")?;
                    breakdown.push(Breakdown::Channel(crate::channels::Slots::register(ctx)));
                    continue;
                }
                let d = match (bo.opt_str("event_prop")?, bo.opt_str("user_prop")?) {
                    (Some(name), None) => {
                        let slot = ctx.slot(name, &bo.at("event_prop"))?;
                        Breakdown::Event {
                            name: name.to_owned(),
                            slot,
                        }
                    }
                    (None, Some(name)) => Breakdown::User(name.to_owned()),
                    _ => {
                        return Err(QueryError::invalid(
                            ip,
                            "expected {\"event_prop\": NAME}, {\"user_prop\": NAME} or {\"channel\": true}",
                        ))
                    }
                };
                bo.finish("event_prop, user_prop or channel")?;
                breakdown.push(d);
            }
            if breakdown.len() > 8 {
                return Err(QueryError::invalid(p, "at most 8 breakdown dimensions"));
            }
        }
        let limit = o.opt_uint("limit", 100_000)?.unwrap_or(100) as usize;
        if limit == 0 {
            return Err(QueryError::invalid(o.at("limit"), "must be at least 1"));
        }
        Ok(Common {
            range,
            tz,
            filter,
            users,
            breakdown,
            limit,
        })
    }
}

/// Parses the `users` condition: a filter over profile properties, where a
/// comparison may say `"prop"` or `"user_prop"`, and saved cohorts as
/// `{"cohort": NAME}` — alone or as items of a top-level `and` — which
/// restrict the users every scan reads.
fn parse_users(v: &Json, path: &str, ctx: &mut Ctx<'_>) -> Result<Filter> {
    parse_users_with(v, path, &mut |name, np| ctx.restrict_to_cohort(name, np))
}

/// [`parse_users`] handing each cohort item's name (and the path of its
/// `cohort` field) to `cohort` instead of restricting a query.
pub(crate) fn parse_users_with(
    v: &Json,
    path: &str,
    cohort: &mut dyn FnMut(&str, &str) -> Result<()>,
) -> Result<Filter> {
    let mut item = |c: &Json, p: &str| -> Result<()> {
        let mut o = Obj::new(c, p)?;
        let np = o.at("cohort");
        let name = o.req_str("cohort")?;
        o.finish("cohort")?;
        cohort(name, &np)
    };
    if is_cohort(v) {
        item(v, path)?;
        return Ok(Filter::True);
    }
    if let Some(Json::Array(items)) = v.get("and") {
        if items.iter().any(is_cohort) {
            let mut rest = Vec::new();
            for (i, x) in items.iter().enumerate() {
                let ip = format!("{path}.and[{i}]");
                if is_cohort(x) {
                    item(x, &ip)?;
                } else {
                    rest.push(parse_profile_filter(x, &ip)?);
                }
            }
            return Ok(if rest.is_empty() {
                Filter::True
            } else {
                Filter::And(rest)
            });
        }
    }
    parse_profile_filter(v, path)
}

/// Whether a `users` item is `{"cohort": …}`.
pub(crate) fn is_cohort(c: &Json) -> bool {
    matches!(c, Json::Object(m) if m.contains_key("cohort"))
}

/// Parses a filter over profile properties (`prop` means `user_prop`).
pub fn parse_profile_filter(v: &Json, path: &str) -> Result<Filter> {
    // Rewrite `prop` to `user_prop` so both spellings read the profile.
    fn rewrite(v: &Json) -> Json {
        match v {
            Json::Object(m) => Json::Object(
                m.iter()
                    .map(|(k, x)| {
                        let k = if k == "prop" {
                            "user_prop".to_owned()
                        } else {
                            k.clone()
                        };
                        (k, rewrite(x))
                    })
                    .collect(),
            ),
            Json::Array(a) => Json::Array(a.iter().map(rewrite).collect()),
            other => other.clone(),
        }
    }
    if let Some(p) = find_cohort(v, path) {
        return Err(QueryError::invalid(
            p,
            "a cohort can be used alone or as an item of a top-level \"and\"",
        ));
    }
    Filter::parse(&rewrite(v), path, &mut |_| None)
}

/// The path of a `{"cohort": …}` nested anywhere in a filter.
fn find_cohort(v: &Json, path: &str) -> Option<String> {
    match v {
        Json::Object(m) => {
            if m.contains_key("cohort") {
                return Some(format!("{path}.cohort"));
            }
            m.iter()
                .find_map(|(k, x)| find_cohort(x, &format!("{path}.{k}")))
        }
        Json::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| find_cohort(x, &format!("{path}[{i}]"))),
        _ => None,
    }
}

/// A breakdown key: one optional value per dimension.
pub type Key = Vec<Option<Value>>;

/// Parses a required event reference field.
pub fn req_ref(o: &mut Obj<'_>, key: &'static str, ctx: &mut Ctx<'_>) -> Result<EventRef> {
    let p = o.at(key);
    let v = o.req(key)?;
    EventRef::parse(v, &p, ctx)
}

/// Matches a row against several event references at once: a table from
/// event id to the references that need no filter, plus the few that do.
#[derive(Debug, Clone)]
pub struct Matcher {
    by_event: Vec<u64>,
    any: u64,
    filtered: Vec<(u64, EventRef)>,
}

impl Matcher {
    /// A matcher for up to 64 references; bit `i` stands for `refs[i]`.
    pub fn new<'r>(refs: impl IntoIterator<Item = &'r EventRef>) -> Matcher {
        let mut m = Matcher {
            by_event: Vec::new(),
            any: 0,
            filtered: Vec::new(),
        };
        for (i, r) in refs.into_iter().enumerate() {
            let bit = 1u64 << i;
            if !matches!(r.filter, Filter::True) {
                m.filtered.push((bit, r.clone()));
                continue;
            }
            match r.id {
                None => m.any |= bit,
                Some(Some(ev)) => {
                    let ev = ev as usize;
                    if m.by_event.len() <= ev {
                        m.by_event.resize(ev + 1, 0);
                    }
                    m.by_event[ev] |= bit;
                }
                Some(None) => {}
            }
        }
        m
    }

    /// True if any reference reads properties (then `mask` needs them).
    pub fn has_filters(&self) -> bool {
        !self.filtered.is_empty()
    }

    /// When every event id matches at most one reference, no reference
    /// filters and none is `$any`: a table from event id to the 1-based
    /// index of the reference it matches (0 = none).
    pub fn single(&self) -> Option<Vec<u8>> {
        if !self.filtered.is_empty()
            || self.any != 0
            || self.by_event.iter().any(|m| m.count_ones() > 1)
        {
            return None;
        }
        Some(
            self.by_event
                .iter()
                .map(|m| {
                    if *m == 0 {
                        0
                    } else {
                        (m.trailing_zeros() + 1) as u8
                    }
                })
                .collect(),
        )
    }

    /// The event-id → mask table and the `$any` mask, for callers that
    /// know there are no filtered references.
    pub fn table(&self) -> (&[u64], u64) {
        (&self.by_event, self.any)
    }

    /// The references an event matches, as a bit mask.
    #[inline]
    pub fn mask(&self, ev: u32, p: &dyn Props) -> u64 {
        let mut m = self.any | self.by_event.get(ev as usize).copied().unwrap_or(0);
        for (bit, r) in &self.filtered {
            if r.matches(ev, p) {
                m |= bit;
            }
        }
        m
    }
}

/// The value of breakdown dimension `d` for event `row` of user `u`.
#[inline]
pub fn dim_value<'a>(
    d: &Breakdown,
    u: &footprint_storage::UserRows<'a>,
    row: usize,
    profile: Option<footprint_storage::profiles::Profile<'a>>,
) -> Option<&'a Value> {
    match d {
        Breakdown::Event { slot: Some(k), .. } => u.prop(*k, row),
        Breakdown::Event { slot: None, .. } => None,
        Breakdown::User(name) => profile.and_then(|p| p.get(name)),
        Breakdown::Channel(slots) => Some(slots.channel(u, row).value()),
    }
}

/// Breakdown keys interned to dense ids, so per-user work looks a value up
/// without copying it (one dimension) and aggregates live in a `Vec`.
#[derive(Debug, Default)]
pub struct Keys {
    one: rustc_hash::FxHashMap<Value, u32>,
    none: Option<u32>,
    many: rustc_hash::FxHashMap<Key, u32>,
    /// Keys by id.
    pub list: Vec<Key>,
}

impl Keys {
    /// The id of the key of event `row` of user `u`.
    pub fn id(
        &mut self,
        dims: &[Breakdown],
        u: &footprint_storage::UserRows<'_>,
        row: usize,
        profile: Option<footprint_storage::profiles::Profile<'_>>,
    ) -> u32 {
        if let [d] = dims {
            return self.id_one(dim_value(d, u, row, profile));
        }
        let key: Key = dims
            .iter()
            .map(|d| dim_value(d, u, row, profile).cloned())
            .collect();
        self.of(key)
    }

    /// The id of the key of one dimension whose value is `v`, without
    /// copying it unless it is new.
    pub fn id_one(&mut self, v: Option<&Value>) -> u32 {
        match v {
            Some(v) => match self.one.get(v) {
                Some(&id) => id,
                None => self.insert(vec![Some(v.clone())]),
            },
            None => match self.none {
                Some(id) => id,
                None => self.insert(vec![None]),
            },
        }
    }

    /// The id of an owned key (merging accumulators).
    pub fn of(&mut self, key: Key) -> u32 {
        if let [v] = &key[..] {
            let found = match v {
                Some(v) => self.one.get(v).copied(),
                None => self.none,
            };
            return found.unwrap_or_else(|| self.insert(key));
        }
        match self.many.get(&key) {
            Some(&id) => id,
            None => self.insert(key),
        }
    }

    fn insert(&mut self, key: Key) -> u32 {
        let id = self.list.len() as u32;
        match &key[..] {
            [Some(v)] => {
                self.one.insert(v.clone(), id);
            }
            [None] => self.none = Some(id),
            _ => {
                self.many.insert(key.clone(), id);
            }
        }
        self.list.push(key);
        id
    }
}

/// Calls `f(i, mask)` for every event of `u` that passes the query-wide
/// filter and matches at least one of `m`'s references. Without filters it
/// is one table lookup per event.
#[inline]
pub fn for_each_match(
    m: &Matcher,
    global: &Filter,
    u: &footprint_storage::UserRows<'_>,
    profile: Option<footprint_storage::profiles::Profile<'_>>,
    mut f: impl FnMut(usize, u64),
) {
    if global.is_true() && !m.has_filters() {
        let (table, any) = m.table();
        for (i, &ev) in u.events.iter().enumerate() {
            let mask = any | table.get(ev as usize).copied().unwrap_or(0);
            if mask != 0 {
                f(i, mask);
            }
        }
        return;
    }
    for (i, &ev) in u.events.iter().enumerate() {
        let p = crate::exec::RowProps {
            rows: u,
            i,
            profile,
        };
        if !global.eval(&p) {
            continue;
        }
        let mask = m.mask(ev, &p);
        if mask != 0 {
            f(i, mask);
        }
    }
}

/// Merges per-key sample lists (`b_keys[i]` owns `b[i]`) into `a`,
/// re-interning the keys: the merge step of kinds that keep samples per
/// breakdown group.
pub fn merge_samples<T>(a_keys: &mut Keys, a: &mut Vec<Vec<T>>, b_keys: Keys, b: Vec<Vec<T>>) {
    for (key, v) in b_keys.list.into_iter().zip(b) {
        let id = a_keys.of(key) as usize;
        if id == a.len() {
            a.push(v);
        } else {
            a[id].extend(v);
        }
    }
}
