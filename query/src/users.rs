//! users — 用户分群: the users whose profile matches and who did (or did
//! not do) events a number of times within a window that ends at the end of
//! the time range (default: now). Returns the count and some ids, and with
//! `save_as` stores the members as a cohort usable as `{"cohort": NAME}` in
//! any query's `users`.

use footprint_storage::UserRows;
use roaring::RoaringBitmap;
use serde_json::{json, Value as Json};

use crate::error::{QueryError, Result};
use crate::exec::{num, Ctx, Prune, UserProps};
use crate::filter::Filter;
use crate::groups::Size;
use crate::json::{array, check_keys, Obj};
use crate::limits::{Metered, Usage, GROUP_CELLS};
use crate::model::{Breakdown, Common, EventRef, Key, Keys, Matcher};
use crate::score::Score;
use crate::time::parse_window;

/// Most conditions in `did` and `did_not` together (one matcher bit each).
pub const MAX_CONDITIONS: usize = 32;
/// Most ids a query may return.
pub const MAX_RETURN: u64 = 100_000;

/// A comparison of a user's event count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `<`
    Lt,
    /// `<=`
    Lte,
}

impl CountOp {
    fn holds(self, n: u64, v: u64) -> bool {
        match self {
            CountOp::Eq => n == v,
            CountOp::Ne => n != v,
            CountOp::Gt => n > v,
            CountOp::Gte => n >= v,
            CountOp::Lt => n < v,
            CountOp::Lte => n <= v,
        }
    }
}

/// One `did` / `did_not` condition.
#[derive(Debug, Clone)]
pub struct Condition {
    /// The events counted.
    pub event: EventRef,
    /// The count must satisfy `op value`.
    pub op: CountOp,
    /// The operand.
    pub value: u64,
    /// Only events at or after this instant count (the window's start).
    pub since: Option<i64>,
}

/// A parsed users query.
pub struct Users {
    /// Profile condition.
    pub profile: Filter,
    /// Conditions, `did` then `did_not` (as count == 0).
    pub conditions: Vec<Condition>,
    /// Ids to return.
    pub return_users: usize,
    /// Name to save the members under.
    pub save_as: Option<String>,
    /// The definition saved with the members (the query without the
    /// fields that shape only its answer), set when `save_as` is.
    pub definition: Option<Json>,
    /// A health score of every member (see [`crate::score`]).
    pub score: Option<Score>,
    matcher: Matcher,
}

impl Users {
    /// Reads the users fields. `end` is where `within` windows end.
    pub fn parse(o: &mut Obj<'_>, ctx: &mut Ctx<'_>, c: &Common, end: i64) -> Result<Users> {
        for (i, d) in c.breakdown.iter().enumerate() {
            if d.reads_event() {
                // A member has many events, and no condition picks one.
                let field = if matches!(d, Breakdown::Channel(_)) {
                    "channel"
                } else {
                    "event_prop"
                };
                return Err(QueryError::invalid(
                    format!("breakdown[{i}].{field}"),
                    "users groups members by profile properties: use {\"user_prop\": NAME}",
                ));
            }
        }
        let profile = match o.opt("profile") {
            None => Filter::True,
            Some(v) => crate::model::parse_profile_filter(v, &o.at("profile"))?,
        };
        let mut conditions = Vec::new();
        for (key, negated) in [("did", false), ("did_not", true)] {
            let Some(list) = o.opt(key) else { continue };
            let lp = o.at(key);
            for (i, c) in array(list, &lp)?.iter().enumerate() {
                let ip = format!("{lp}[{i}]");
                let allowed: &[&str] = if negated {
                    &["event", "where", "within"]
                } else {
                    &["event", "where", "within", "count"]
                };
                check_keys(c, &ip, allowed)?;
                let mut co = Obj::new(c, &ip)?;
                let event = EventRef::read(&mut co, ctx)?;
                let (op, value) = match (negated, co.opt("count")) {
                    (true, _) => (CountOp::Eq, 0),
                    (false, None) => (CountOp::Gte, 1),
                    (false, Some(v)) => parse_count(v, &co.at("count"))?,
                };
                let since = match co.opt("within") {
                    None => None,
                    Some(w) => Some(end.saturating_sub(parse_window(w, &co.at("within"))?)),
                };
                co.finish(&allowed.join(", "))?;
                conditions.push(Condition {
                    event,
                    op,
                    value,
                    since,
                });
            }
        }
        if conditions.len() > MAX_CONDITIONS {
            return Err(QueryError::invalid(
                o.at("did"),
                format!("at most {MAX_CONDITIONS} conditions in did and did_not together"),
            ));
        }
        let return_users = o.opt_uint("return_users", MAX_RETURN)?.unwrap_or(100) as usize;
        let save_as = match o.opt_str("save_as")? {
            None => None,
            Some(name) => {
                footprint_storage::cohorts::check_name(name)
                    .map_err(|m| QueryError::invalid(o.at("save_as"), m))?;
                Some(name.to_owned())
            }
        };
        let score = match o.opt("score") {
            None => None,
            Some(v) => {
                let score = Score::parse(v, &o.at("score"), ctx, end)?;
                // A score answers with its own member lists.
                for key in ["return_users", "save_as"] {
                    if o.opt(key).is_some() {
                        return Err(QueryError::invalid(
                            o.at(key),
                            format!("{key} has no place beside score: a score lists its top and bottom members (score.top), and POST /v1/scores saves it as a profile property"),
                        ));
                    }
                }
                if !c.breakdown.is_empty() {
                    return Err(QueryError::unsupported(
                        "breakdown",
                        "scores by breakdown group are not built yet; save the score as a profile property (POST /v1/scores) and break it down with a user_prop breakdown",
                    ));
                }
                Some(score)
            }
        };
        let matcher = Matcher::new(conditions.iter().map(|c| &c.event));
        Ok(Users {
            profile,
            conditions,
            return_users,
            save_as,
            definition: None,
            score,
            matcher,
        })
    }

    /// The part of the range the scan must read. When a `did` condition
    /// needs at least one event inside its window, every member has an event
    /// in the widest window, and when every condition has a window, no
    /// event before the widest one's start is counted: the scan can start
    /// there.
    fn scan_range(&self, range: Option<(i64, i64)>) -> Option<(i64, i64)> {
        let needs_event = self
            .conditions
            .iter()
            .any(|c| c.since.is_some() && !c.op.holds(0, c.value));
        let mut earliest = self
            .conditions
            .iter()
            .map(|c| c.since)
            .try_fold(i64::MAX, |m, s| s.map(|s| m.min(s)));
        if let Some(score) = &self.score {
            // A member's score counts events in the components' windows.
            earliest = earliest.zip(score.earliest()).map(|(a, b)| a.min(b));
        }
        match (needs_event, earliest) {
            (true, Some(from)) => {
                let (lo, hi) = range.unwrap_or((i64::MIN, i64::MAX));
                // An empty range (a zero window) reads nothing.
                Some((lo.max(from), hi))
            }
            _ => range,
        }
    }

    /// Whether the query reads no times and no row order (see
    /// [`Ctx::order_free`]): over all time, without `within` windows.
    /// Conditions count rows, so their order does not matter.
    pub fn order_free(&self, c: &Common) -> bool {
        c.range.is_none()
            && self.conditions.iter().all(|c| c.since.is_none())
            && self.score.as_ref().is_none_or(|s| !s.reads_times())
    }

    /// Whether a member needs at least one event of some condition.
    pub fn some_event_needed(&self) -> bool {
        self.conditions.iter().any(|c| !c.op.holds(0, c.value))
    }

    /// Users who can match: those who did the event of a condition that
    /// needs at least one event, when there is one.
    fn prune(&self) -> Prune {
        for c in &self.conditions {
            if !c.op.holds(0, c.value) {
                return Prune::by(&c.event);
            }
        }
        Prune::None
    }
}

fn parse_count(v: &Json, path: &str) -> Result<(CountOp, u64)> {
    let mut o = Obj::new(v, path)?;
    let op = match o.req_str("op")? {
        "eq" => CountOp::Eq,
        "ne" => CountOp::Ne,
        "gt" => CountOp::Gt,
        "gte" => CountOp::Gte,
        "lt" => CountOp::Lt,
        "lte" => CountOp::Lte,
        other => {
            return Err(QueryError::invalid(
                o.at("op"),
                format!("unknown count op \"{other}\"; allowed: eq, ne, gt, gte, lt, lte"),
            ))
        }
    };
    let value = crate::json::uint(o.req("value")?, &o.at("value"), u32::MAX as u64)?;
    o.finish("op, value")?;
    Ok((op, value))
}

#[derive(Default)]
struct Acc {
    members: RoaringBitmap,
    /// Every user the scan read (when profile-only users count too).
    seen: Option<RoaringBitmap>,
    counts: Vec<u64>,
    /// Breakdown groups: members per key id.
    keys: Keys,
    sizes: Vec<u64>,
    /// The members' scores (with `score`).
    score: Option<crate::score::Acc>,
}

impl Metered for Acc {
    fn usage(&self) -> Usage {
        // Members are a bitmap: at most a bit or two per user.
        Usage {
            cells: self.keys.list.len() as u64 * (1 + GROUP_CELLS),
            samples: self.score.as_ref().map_or(0, |s| s.usage().samples),
        }
    }
}

/// The members of a users query (a cohort definition's evaluation).
pub fn members(q: &Users, c: &Common, ctx: &Ctx<'_>) -> Result<RoaringBitmap> {
    Ok(scan(q, c, ctx)?.members)
}

/// The scores of the members of a users query with `score`.
pub(crate) fn scores(q: &Users, c: &Common, ctx: &Ctx<'_>) -> Result<crate::score::Acc> {
    let acc = scan(q, c, ctx)?;
    acc.score
        .ok_or_else(|| QueryError::invalid("score", "is required"))
}

fn scan(q: &Users, c: &Common, ctx: &Ctx<'_>) -> Result<Acc> {
    // Over all time, without `where` and without a condition that needs an
    // event, the population is every user: those with events, and those
    // with only a profile (a CRM import of customers not seen yet).
    let everyone = c.range.is_none() && c.filter.is_true() && !q.some_event_needed();
    let mut acc = ctx.run(
        q.scan_range(c.range),
        q.prune(),
        || Acc {
            seen: everyone.then(RoaringBitmap::new),
            score: q.score.as_ref().map(|s| s.acc(c.tz)),
            ..Acc::default()
        },
        |acc, u| {
            if let Some(seen) = &mut acc.seen {
                seen.insert(u.uid);
            }
            per_user(q, c, ctx, acc, u)
        },
        |mut a, b| {
            a.members |= b.members;
            if let (Some(x), Some(y)) = (&mut a.seen, b.seen) {
                *x |= y;
            }
            if let (Some(x), Some(y)) = (&mut a.score, b.score) {
                x.merge(y);
            }
            for (key, n) in b.keys.list.into_iter().zip(b.sizes) {
                let id = a.keys.of(key) as usize;
                if id == a.sizes.len() {
                    a.sizes.push(n);
                } else {
                    a.sizes[id] += n;
                }
            }
            a
        },
    )?;
    if let Some(seen) = acc.seen.take() {
        profile_only(q, c, ctx, &mut acc, &seen);
    }
    Ok(acc)
}

/// Runs a users query; saves the cohort (live, with its definition) when
/// asked.
pub fn run(q: &Users, c: &Common, ctx: &Ctx<'_>) -> Result<Json> {
    let at = footprint_storage::cohorts::now_ms();
    let mut acc = scan(q, c, ctx)?;
    if let (Some(score), Some(scored)) = (&q.score, acc.score.take()) {
        return Ok(score.render(scored, ctx));
    }
    let ids: Vec<u32> = acc.members.iter().take(q.return_users).collect();
    let total = acc.members.len();
    let mut out = json!({
        "users": total,
        "ids": ctx.user_names(&ids),
    });
    if !c.breakdown.is_empty() {
        // Property analysis: members per profile value, with their share.
        let groups: Vec<(Key, u64)> = acc.keys.list.into_iter().zip(acc.sizes).collect();
        crate::groups::render(
            &mut out,
            &c.breakdown,
            c.limit,
            groups,
            |&n| Size::Count(n),
            |n| json!({"users": n, "share": num(Some(n as f64 / total.max(1) as f64))}),
        );
    }
    if let (Some(name), Some(def)) = (&q.save_as, &q.definition) {
        crate::cohorts::save_live(ctx.store(), name, def, acc.members, at).map_err(|e| {
            QueryError {
                path: "save_as".into(),
                ..e
            }
        })?;
        out["saved_as"] = json!(name);
    }
    Ok(out)
}

/// Adds the members among users with a profile and no event (the scan did
/// not read them): every condition holds at zero for them, so the
/// profile conditions decide.
fn profile_only(q: &Users, c: &Common, ctx: &Ctx<'_>, acc: &mut Acc, seen: &RoaringBitmap) {
    for uid in ctx.profile_users() {
        // A person with several ids counts once, under the known id.
        if seen.contains(uid) || ctx.aliased_away(uid) || !ctx.in_cohort(uid) {
            continue;
        }
        let Some(profile) = ctx.admit(c, uid) else {
            continue;
        };
        if !q.profile.is_true() && !q.profile.eval(&UserProps(profile)) {
            continue;
        }
        acc.members.insert(uid);
        if let (Some(score), Some(s)) = (&q.score, &mut acc.score) {
            score.add_zero(s, uid);
        }
        if !c.breakdown.is_empty() {
            let value = |d: &Breakdown| match d {
                Breakdown::User(name) => profile.and_then(|p| p.get(name)),
                _ => None,
            };
            let id = match &c.breakdown[..] {
                [d] => acc.keys.id_one(value(d)),
                dims => acc
                    .keys
                    .of(dims.iter().map(|d| value(d).cloned()).collect()),
            } as usize;
            if id == acc.sizes.len() {
                acc.sizes.push(0);
            }
            acc.sizes[id] += 1;
        }
    }
}

fn per_user(q: &Users, c: &Common, ctx: &Ctx<'_>, acc: &mut Acc, u: &UserRows<'_>) {
    let Some(profile) = ctx.admit(c, u.uid) else {
        return;
    };
    if !q.profile.is_true() && !q.profile.eval(&UserProps(profile)) {
        return;
    }
    if !c.filter.is_true() && !q.some_event_needed() {
        // `where` hides events as `time_range` does: a user is considered
        // only with a visible event. (When a condition needs an event, a
        // member has one that passed `where`.)
        let visible = (0..u.len()).any(|i| {
            c.filter.eval(&crate::exec::RowProps {
                rows: u,
                i,
                profile,
            })
        });
        if !visible {
            return;
        }
    }
    acc.counts.clear();
    acc.counts.resize(q.conditions.len(), 0);
    let counts = &mut acc.counts;
    crate::model::for_each_match(&q.matcher, &c.filter, u, profile, |i, mut mask| {
        while mask != 0 {
            let k = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            // Times are read only for windows (a scan may skip them).
            if q.conditions[k].since.is_none_or(|s| u.times[i] >= s) {
                counts[k] += 1;
            }
        }
    });
    let all = q
        .conditions
        .iter()
        .zip(counts.iter())
        .all(|(cond, &n)| cond.op.holds(n, cond.value));
    if all {
        acc.members.insert(u.uid);
        if let (Some(score), Some(s)) = (&q.score, &mut acc.score) {
            score.add(s, &c.filter, u, profile);
        }
        if !c.breakdown.is_empty() {
            let id = acc.keys.id(&c.breakdown, u, 0, profile) as usize;
            if id == acc.sizes.len() {
                acc.sizes.push(0);
            }
            acc.sizes[id] += 1;
        }
    }
}
