//! paths — 智能路径 (Sankey): the first steps of each session from an
//! anchor, as nodes `(step, label)` and the links between them, the
//! labels beyond each step's top merged into `$other`.
//! Semantics: ANALYSES.md "paths", NOTES.md 12–17.
//!
//! A shard keeps each distinct path once with its number of sessions (or,
//! counting users, each distinct set of paths a user walked with its number
//! of users), so memory grows with the variety of paths, not with sessions.
//! Ranking, merging into `$other` and the node and link counts are worked
//! out from those after the scan.

use footprint_storage::{UserRows, Value};
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{json, Value as Json};

use crate::by_value::CodeCache;
use crate::error::{QueryError, Result};
use crate::exec::{Ctx, RowProps};
use crate::filter::Filter;
use crate::json::Obj;
use crate::limits::{Metered, Usage};
use crate::model::{Common, EventRef};
use crate::sessionize::{self, in_set, SessionRules, Sessionizer};

/// The fields of a paths query besides the common ones.
pub const FIELDS: [&str; 11] = [
    "start",
    "end",
    "steps",
    "label",
    "collapse_repeats",
    "count",
    "top",
    "timeout",
    "max_length",
    "split",
    "ignore_events",
];
/// Fewest and most steps a path may have.
pub const STEPS: std::ops::RangeInclusive<u64> = 2..=20;
/// The label labels beyond a step's top merge into.
pub const OTHER: &str = "$other";

/// Separates the paths of one user in a users-mode key.
const SEP: u32 = u32::MAX;
/// The merged label's id.
const OTHER_ID: u32 = u32::MAX - 1;

/// Where a session's path is taken from.
#[derive(Debug, Clone)]
pub enum Anchor {
    /// From the session's first event.
    First,
    /// From the session's first event matching this.
    Start(EventRef),
    /// Up to the session's first event matching this.
    End(EventRef),
}

/// A parsed paths query.
pub struct Paths {
    /// How sessions are cut.
    pub rules: SessionRules,
    /// Where paths start or end.
    pub anchor: Anchor,
    /// Labels kept per path.
    pub steps: usize,
    /// Events labelled by `label.prop` (`None`: every event).
    label_events: Option<Vec<bool>>,
    /// Scan slot of `label.prop` (`None`: label by event name).
    label_prop: Option<usize>,
    /// Consecutive equal labels become one.
    pub collapse: bool,
    /// Count distinct users instead of sessions.
    pub users: bool,
    /// Labels kept per step before `$other`.
    pub top: usize,
    /// Event names by id.
    names: Vec<String>,
}

impl Paths {
    /// Reads the paths fields.
    pub fn parse(o: &mut Obj<'_>, ctx: &mut Ctx<'_>) -> Result<Paths> {
        let start = match o.opt("start") {
            None => None,
            Some(v) => Some(EventRef::parse(v, &o.at("start"), ctx)?),
        };
        let end = match o.opt("end") {
            None => None,
            Some(v) => Some(EventRef::parse(v, &o.at("end"), ctx)?),
        };
        let anchor = match (start, end) {
            (Some(_), Some(_)) => {
                return Err(QueryError::invalid(
                    o.at("end"),
                    "start and end cannot be used together: a path is anchored at its first start event or ends at its first end event",
                ))
            }
            (Some(s), None) => Anchor::Start(s),
            (None, Some(e)) => Anchor::End(e),
            (None, None) => Anchor::First,
        };
        let steps = o.opt_uint("steps", u64::MAX)?.unwrap_or(5);
        if !STEPS.contains(&steps) {
            return Err(QueryError::invalid(
                o.at("steps"),
                format!(
                    "{steps} steps; a path has {} to {} steps",
                    STEPS.start(),
                    STEPS.end()
                ),
            ));
        }
        let (label_events, label_prop) = match o.opt("label") {
            None => (None, None),
            Some(v) => {
                let mut lo = Obj::new(v, &o.at("label"))?;
                let pp = lo.at("prop");
                let name = lo.req_str("prop")?;
                let slot = ctx.slot(name, &pp)?;
                let events = sessionize::event_set(&mut lo, "events", ctx)?;
                lo.finish("prop, events")?;
                (events, slot)
            }
        };
        let collapse = o.opt_bool("collapse_repeats")?.unwrap_or(true);
        let users = match o.opt_str("count")? {
            None | Some("sessions") => false,
            Some("users") => true,
            Some(other) => {
                return Err(QueryError::invalid(
                    o.at("count"),
                    format!("unknown count \"{other}\"; allowed: sessions, users"),
                ))
            }
        };
        let top = crate::sessions::top(o)?;
        let rules = SessionRules::parse(o, ctx)?;
        Ok(Paths {
            rules,
            anchor,
            steps: steps as usize,
            label_events,
            label_prop,
            collapse,
            users,
            top,
            names: ctx.event_names(),
        })
    }

    /// The anchor's filter (for planning which columns to read).
    pub fn anchor_filter(&self) -> Option<&Filter> {
        match &self.anchor {
            Anchor::First => None,
            Anchor::Start(r) | Anchor::End(r) => Some(&r.filter),
        }
    }
}

/// Labels interned to dense ids.
#[derive(Default)]
struct Labels {
    ids: FxHashMap<String, u32>,
    list: Vec<String>,
    /// Event id → the id of its name (`u32::MAX`: not interned yet).
    by_event: Vec<u32>,
    /// Ids of property values by their code in the scan.
    cache: CodeCache,
}

impl Labels {
    fn of(&mut self, s: &str) -> u32 {
        Labels::intern(&mut self.ids, &mut self.list, s)
    }

    fn intern(ids: &mut FxHashMap<String, u32>, list: &mut Vec<String>, s: &str) -> u32 {
        if let Some(&id) = ids.get(s) {
            return id;
        }
        let id = list.len() as u32;
        ids.insert(s.to_owned(), id);
        list.push(s.to_owned());
        id
    }

    fn event(&mut self, ev: u32, names: &[String]) -> u32 {
        let e = ev as usize;
        if let Some(&id) = self.by_event.get(e) {
            if id != u32::MAX {
                return id;
            }
        }
        let id = match names.get(e) {
            Some(n) => self.of(n),
            None => self.of(&format!("#{ev}")),
        };
        if self.by_event.len() <= e {
            self.by_event.resize(e + 1, u32::MAX);
        }
        self.by_event[e] = id;
        id
    }

    fn value(ids: &mut FxHashMap<String, u32>, list: &mut Vec<String>, v: &Value) -> u32 {
        match v {
            Value::Str(s) => Labels::intern(ids, list, s),
            other => Labels::intern(ids, list, &sessionize::str_form(other)),
        }
    }
}

/// One session's path being read.
#[derive(Default)]
struct Walk {
    /// The anchor was met (always, without a start anchor).
    anchored: bool,
    /// Nothing more can change the path.
    done: bool,
    labels: Vec<u32>,
}

struct Acc<'q> {
    sz: Sessionizer<'q>,
    labels: Labels,
    /// Path (sessions) or a user's set of paths, each ended by `SEP`
    /// (users) → how many.
    paths: FxHashMap<Vec<u32>, u64>,
    cells: u64,
    walk: Walk,
    /// The current user's paths (users mode).
    mine: Vec<Vec<u32>>,
}

impl Metered for Acc<'_> {
    fn usage(&self) -> Usage {
        Usage {
            cells: self.cells + self.labels.list.len() as u64,
            samples: 0,
        }
    }
}

impl Acc<'_> {
    fn add(&mut self, key: &[u32], n: u64) {
        add(&mut self.paths, &mut self.cells, key, n);
    }
}

/// Counts `n` more of path (or path set) `key`, copying it only when new.
fn add(paths: &mut FxHashMap<Vec<u32>, u64>, cells: &mut u64, key: &[u32], n: u64) {
    match paths.get_mut(key) {
        Some(c) => *c += n,
        None => {
            *cells += key.len() as u64 + 4;
            paths.insert(key.to_vec(), n);
        }
    }
}

/// Runs a paths query.
pub fn run(q: &Paths, c: &Common, ctx: &Ctx<'_>) -> Result<Json> {
    let acc = ctx.run(
        c.range,
        match &q.anchor {
            Anchor::First => crate::exec::Prune::None,
            Anchor::Start(r) | Anchor::End(r) => crate::exec::Prune::by(r),
        },
        || Acc {
            sz: Sessionizer::new(&q.rules, c.tz),
            labels: Labels::default(),
            paths: FxHashMap::default(),
            cells: 0,
            walk: Walk::default(),
            mine: Vec::new(),
        },
        |acc, u| per_user(q, c, ctx, acc, u),
        |mut a, b| {
            // The codes cached belong to the shard scan that is over.
            a.labels.cache.clear();
            let ids: Vec<u32> = b.labels.list.iter().map(|l| a.labels.of(l)).collect();
            for (mut key, n) in b.paths {
                for l in key.iter_mut() {
                    if *l != SEP {
                        *l = ids[*l as usize];
                    }
                }
                a.add(&key, n);
            }
            a
        },
    )?;
    Ok(render(q, acc.labels.list, acc.paths))
}

fn per_user(q: &Paths, c: &Common, ctx: &Ctx<'_>, acc: &mut Acc<'_>, u: &UserRows<'_>) {
    let Some(profile) = ctx.admit(c, u.uid) else {
        return;
    };
    acc.sz.user();
    acc.mine.clear();
    let mut open = false;
    let filtered = !c.filter.is_true();
    for (i, &ev) in u.events.iter().enumerate() {
        if q.rules.ignored(ev) {
            continue;
        }
        let props = RowProps {
            rows: u,
            i,
            profile,
        };
        if filtered && !c.filter.eval(&props) {
            continue;
        }
        if acc.sz.starts(u, i) {
            if open {
                finish(q, acc);
            }
            open = true;
            acc.walk.labels.clear();
            acc.walk.done = false;
            acc.walk.anchored = !matches!(q.anchor, Anchor::Start(_));
        }
        if acc.walk.done {
            continue;
        }
        if let Anchor::Start(r) = &q.anchor {
            if !acc.walk.anchored {
                if !r.matches(ev, &props) {
                    continue;
                }
                acc.walk.anchored = true;
            }
        }
        let label = label(q, &mut acc.labels, u, i);
        let w = &mut acc.walk;
        if !(q.collapse && w.labels.last() == Some(&label)) {
            w.labels.push(label);
        }
        match &q.anchor {
            Anchor::End(r) => {
                if r.matches(ev, &props) {
                    w.done = true;
                } else if w.labels.len() >= 4 * q.steps {
                    // Only the last `steps` labels can be kept.
                    w.labels.drain(..w.labels.len() - q.steps);
                }
            }
            _ => w.done = w.labels.len() >= q.steps,
        }
    }
    if open {
        finish(q, acc);
    }
    if q.users && !acc.mine.is_empty() {
        let mut mine = std::mem::take(&mut acc.mine);
        mine.sort_unstable();
        mine.dedup();
        let mut key = Vec::with_capacity(mine.iter().map(|p| p.len() + 1).sum());
        for p in &mine {
            key.extend_from_slice(p);
            key.push(SEP);
        }
        acc.add(&key, 1);
        acc.mine = mine;
        acc.mine.clear();
    }
}

/// Ends the current session: keeps its path if it has one.
fn finish(q: &Paths, acc: &mut Acc<'_>) {
    let w = &acc.walk;
    let kept = match q.anchor {
        Anchor::End(_) if !w.done => return,
        Anchor::Start(_) if !w.anchored => return,
        Anchor::End(_) => &w.labels[w.labels.len().saturating_sub(q.steps)..],
        _ => &w.labels[..w.labels.len().min(q.steps)],
    };
    if kept.is_empty() {
        return;
    }
    if q.users {
        acc.mine.push(kept.to_vec());
    } else {
        add(&mut acc.paths, &mut acc.cells, kept, 1);
    }
}

fn label(q: &Paths, labels: &mut Labels, u: &UserRows<'_>, i: usize) -> u32 {
    let ev = u.events[i];
    if let Some(k) = q.label_prop {
        if q.label_events.as_ref().is_none_or(|s| in_set(s, ev)) {
            let Labels {
                ids, list, cache, ..
            } = labels;
            if let Some(id) = cache.id(u, k, i, |v| Labels::value(ids, list, v)) {
                return id;
            }
        }
    }
    labels.event(ev, &q.names)
}

/// The paths of one counted unit (a session, or a user's set of paths).
fn split(key: &[u32]) -> impl Iterator<Item = &[u32]> {
    key.split(|&l| l == SEP).filter(|p| !p.is_empty())
}

fn render(q: &Paths, names: Vec<String>, paths: FxHashMap<Vec<u32>, u64>) -> Json {
    let name = |l: u32| -> &str {
        if l == OTHER_ID {
            OTHER
        } else {
            names.get(l as usize).map_or("", String::as_str)
        }
    };
    let units: Vec<(Vec<u32>, u64)> = paths.into_iter().collect();
    // Per step, each label's count in the unit (a unit counts once).
    let mut at: Vec<FxHashMap<u32, u64>> = vec![FxHashMap::default(); q.steps];
    let mut seen: Vec<(usize, u32)> = Vec::new();
    for (key, n) in &units {
        seen.clear();
        for p in split(key) {
            seen.extend(p.iter().enumerate().map(|(k, &l)| (k, l)));
        }
        seen.sort_unstable();
        seen.dedup();
        for &(k, l) in &seen {
            *at[k].entry(l).or_default() += n;
        }
    }
    let keep: Vec<FxHashSet<u32>> = at
        .into_iter()
        .map(|m| {
            let mut ranked: Vec<(u32, u64)> = m.into_iter().collect();
            ranked.sort_by(|a, b| {
                b.1.cmp(&a.1)
                    .then_with(|| name(a.0).as_bytes().cmp(name(b.0).as_bytes()))
            });
            ranked.into_iter().take(q.top).map(|(l, _)| l).collect()
        })
        .collect();
    let merged = |k: usize, l: u32| if keep[k].contains(&l) { l } else { OTHER_ID };
    let mut nodes: FxHashMap<(usize, u32), (u64, u64)> = FxHashMap::default();
    let mut links: FxHashMap<(usize, u32, u32), u64> = FxHashMap::default();
    let (mut node_seen, mut drop_seen, mut link_seen) = (Vec::new(), Vec::new(), Vec::new());
    let mut total = 0u64;
    for (key, n) in &units {
        node_seen.clear();
        drop_seen.clear();
        link_seen.clear();
        for p in split(key) {
            let m: Vec<u32> = p.iter().enumerate().map(|(k, &l)| merged(k, l)).collect();
            node_seen.extend(m.iter().enumerate().map(|(k, &l)| (k, l)));
            link_seen.extend(m.windows(2).enumerate().map(|(k, w)| (k, w[0], w[1])));
            if m.len() < q.steps {
                if let Some(&last) = m.last() {
                    drop_seen.push((m.len() - 1, last));
                }
            }
        }
        for v in [&mut node_seen, &mut drop_seen] {
            v.sort_unstable();
            v.dedup();
        }
        link_seen.sort_unstable();
        link_seen.dedup();
        for &nd in &node_seen {
            nodes.entry(nd).or_default().0 += n;
        }
        for &nd in &drop_seen {
            nodes.entry(nd).or_default().1 += n;
        }
        for &l in &link_seen {
            *links.entry(l).or_default() += n;
        }
        total += n;
    }
    let mut nodes: Vec<((usize, u32), (u64, u64))> = nodes.into_iter().collect();
    nodes.sort_by(|a, b| {
        (a.0 .0)
            .cmp(&b.0 .0)
            .then_with(|| b.1 .0.cmp(&a.1 .0))
            .then_with(|| name(a.0 .1).as_bytes().cmp(name(b.0 .1).as_bytes()))
    });
    let mut links: Vec<((usize, u32, u32), u64)> = links.into_iter().collect();
    links.sort_by(|a, b| {
        (a.0 .0)
            .cmp(&b.0 .0)
            .then_with(|| b.1.cmp(&a.1))
            .then_with(|| name(a.0 .1).as_bytes().cmp(name(b.0 .1).as_bytes()))
            .then_with(|| name(a.0 .2).as_bytes().cmp(name(b.0 .2).as_bytes()))
    });
    json!({
        "paths": total,
        "count": if q.users { "users" } else { "sessions" },
        "nodes": nodes.iter().map(|((k, l), (n, d))| json!({
            "step": k + 1, "label": name(*l), "count": n, "dropoff": d,
        })).collect::<Vec<_>>(),
        "links": links.iter().map(|((k, a, b), n)| json!({
            "from": [k + 1, name(*a)], "to": [k + 2, name(*b)], "count": n,
        })).collect::<Vec<_>>(),
    })
}
