//! funnel — 转化漏斗: the deepest step each user reaches, with exactly the
//! semantics of ClickHouse `windowFunnel` (see the conformance folder's
//! SEMANTICS.md §1), then per-step counts, conversion rates and times.

use footprint_storage::{Runs, UserRows};
use serde_json::{json, Value as Json};

use crate::error::{QueryError, Result};
use crate::exec::{num, quantile_unsorted, Ctx, RowProps};
use crate::json::{array, Obj};
use crate::limits::{Metered, Usage, GROUP_CELLS};
use crate::model::{Common, EventRef, Key};
use crate::time::parse_window;

/// Most steps a funnel may have.
pub const MAX_STEPS: usize = 32;
/// Most partial chains `strict_once` keeps per user before giving up on
/// finding more (the result may then undercount; a warning says so).
pub const MAX_CHAINS: usize = 100_000;

/// Funnel modes (ClickHouse names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Modes {
    /// Any unrelated event after step 1 ends the search; skipping ahead ends it.
    pub strict_order: bool,
    /// A repeated step (after step 1) ends the search.
    pub strict_deduplication: bool,
    /// Consecutive steps need strictly increasing times.
    pub strict_increase: bool,
    /// Each event fills at most one step of a chain.
    pub strict_once: bool,
    /// With `strict_order`, skip (instead of stop at) out-of-order step events.
    pub allow_reentry: bool,
}

/// One event of a user as the funnel sees it: `(time, step, row)`; step 0 is
/// an unrelated event (only produced under `strict_order`).
pub type Entry = (i64, u8, u32);

/// The chain a user's level comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Deepest step reached (0 = none).
    pub level: usize,
    /// Times of the chain's steps 1..=level.
    pub times: Vec<i64>,
    /// Row of the chain's step-1 event.
    pub first_row: u32,
    /// `strict_once` hit [`MAX_CHAINS`].
    pub truncated: bool,
}

#[derive(Debug, Clone)]
struct Chain {
    first: i64,
    last: i64,
    times: Vec<i64>,
    rows: Vec<u32>,
}

/// Reusable per-thread state of the default (non-`strict_once`) scan: for
/// each level the chain's start time, last time, step-1 row, and the times
/// of its steps, in flat arrays (no allocation per event).
#[derive(Debug, Default)]
pub struct Scratch {
    set: Vec<bool>,
    first: Vec<i64>,
    last: Vec<i64>,
    row: Vec<u32>,
    /// `times[k * n + j]`: time of step j of the chain at level k.
    times: Vec<i64>,
}

/// Runs the windowFunnel scan over entries sorted by (time, step, row).
pub fn level(entries: &[Entry], n: usize, window: i64, m: Modes) -> Outcome {
    let mut s = Scratch::default();
    let (level, first_row, truncated) = level_with(entries, n, window, m, &mut s);
    let times = if level == 0 {
        Vec::new()
    } else if m.strict_once {
        s.times
    } else {
        s.times[(level - 1) * n..(level - 1) * n + level].to_vec()
    };
    Outcome {
        level,
        times,
        first_row,
        truncated,
    }
}

/// [`level`] with reusable state: returns (level, step-1 row, truncated);
/// the chain's step times are `s.chain_times(level, n)`.
pub fn level_with(
    entries: &[Entry],
    n: usize,
    window: i64,
    m: Modes,
    s: &mut Scratch,
) -> (usize, u32, bool) {
    let Some(&(t0, _, r0)) = entries.iter().find(|e| e.1 != 0) else {
        return (0, 0, false);
    };
    if !m.strict_order && n == 1 {
        s.times.clear();
        s.times.push(t0);
        return (1, r0, false);
    }
    if m.strict_once {
        let o = level_once(entries, n, window, m);
        s.times = o.times;
        return (o.level, o.first_row, o.truncated);
    }
    s.set.clear();
    s.set.resize(n, false);
    s.first.resize(n, 0);
    s.last.resize(n, 0);
    s.row.resize(n, 0);
    s.times.resize(n * n, 0);
    let mut started = false;
    let top = |s: &Scratch| -> (usize, u32, bool) {
        match s.set.iter().rposition(|&x| x) {
            None => (0, 0, false),
            Some(k) => (k + 1, s.row[k], false),
        }
    };
    for &(t, k, row) in entries {
        if k == 0 {
            if started {
                break;
            }
            continue;
        }
        let idx = k as usize - 1;
        if idx == 0 {
            s.set[0] = true;
            s.first[0] = t;
            s.last[0] = t;
            s.row[0] = row;
            s.times[0] = t;
            started = true;
        } else if m.strict_deduplication && s.set[idx] {
            return top(s);
        } else if m.strict_order && started && !s.set[idx - 1] {
            if m.allow_reentry {
                continue;
            }
            return top(s);
        } else if s.set[idx - 1]
            && t <= s.first[idx - 1].saturating_add(window)
            && (!m.strict_increase || s.last[idx - 1] < t)
        {
            s.set[idx] = true;
            s.first[idx] = s.first[idx - 1];
            s.last[idx] = t;
            s.row[idx] = s.row[idx - 1];
            let (prev, cur) = s.times.split_at_mut(idx * n);
            cur[..idx].copy_from_slice(&prev[(idx - 1) * n..(idx - 1) * n + idx]);
            cur[idx] = t;
            if idx + 1 == n {
                return top(s);
            }
        }
    }
    top(s)
}

impl Scratch {
    /// Times of the steps of the chain that reached `level`.
    pub fn chain_times(&self, level: usize, n: usize, once: bool) -> &[i64] {
        if level == 0 {
            &[]
        } else if once || (n == 1) {
            &self.times[..level.min(self.times.len())]
        } else {
            &self.times[(level - 1) * n..(level - 1) * n + level]
        }
    }
}

fn level_once(entries: &[Entry], n: usize, window: i64, m: Modes) -> Outcome {
    let mut seqs: Vec<Vec<Chain>> = vec![Vec::new(); n];
    let mut started = false;
    let mut total = 0usize;
    let mut truncated = false;
    let top = |seqs: &[Vec<Chain>], truncated: bool| -> Outcome {
        match seqs.iter().rposition(|s| !s.is_empty()) {
            None => Outcome::default(),
            Some(k) => {
                let c = &seqs[k][0];
                Outcome {
                    level: k + 1,
                    times: c.times.clone(),
                    first_row: c.rows[0],
                    truncated,
                }
            }
        }
    };
    for &(t, k, row) in entries {
        if k == 0 {
            if started {
                break;
            }
            continue;
        }
        let idx = k as usize - 1;
        if idx == 0 {
            seqs[0].push(Chain {
                first: t,
                last: t,
                times: vec![t],
                rows: vec![row],
            });
            total += 1;
            started = true;
        } else if m.strict_deduplication && !seqs[idx].is_empty() {
            return top(&seqs, truncated);
        } else if m.strict_order && started && seqs[idx - 1].is_empty() {
            if m.allow_reentry {
                continue;
            }
            return top(&seqs, truncated);
        } else if !seqs[idx - 1].is_empty() {
            let (lo, hi) = seqs.split_at_mut(idx);
            let prev = &mut lo[idx - 1];
            let cur = &mut hi[0];
            let mut j = 0;
            while j < prev.len() {
                let in_window = t <= prev[j].first.saturating_add(window);
                if !in_window && prev.len() > 1 {
                    prev.remove(j);
                    continue;
                }
                let c = &prev[j];
                if in_window && !c.rows.contains(&row) && (!m.strict_increase || c.last < t) {
                    if total >= MAX_CHAINS {
                        truncated = true;
                    } else {
                        let mut nc = c.clone();
                        nc.last = t;
                        nc.times.push(t);
                        nc.rows.push(row);
                        cur.push(nc);
                        total += 1;
                        if idx + 1 == n {
                            return top(&seqs, truncated);
                        }
                    }
                }
                j += 1;
            }
        }
    }
    top(&seqs, truncated)
}

/// An exclusion: users with a matching event strictly between the chain's
/// step `from` and step `to` (0-based) are left out of the funnel.
#[derive(Debug, Clone)]
pub struct Exclusion {
    /// The excluded event.
    pub event: EventRef,
    /// 0-based step index after which the event excludes.
    pub from: usize,
    /// 0-based step index before which the event excludes.
    pub to: usize,
}

/// A parsed funnel query.
pub struct Funnel {
    /// Steps.
    pub steps: Vec<EventRef>,
    /// Window in ms.
    pub window: i64,
    /// Modes.
    pub modes: Modes,
    /// Exclusions.
    pub exclusions: Vec<Exclusion>,
    /// All steps as one matcher.
    pub matcher: crate::model::Matcher,
    /// Event id → step (1-based), when each event fills at most one step.
    pub single: Option<Vec<u8>>,
    /// `trend.interval`: one funnel per bucket of the step-1 event.
    pub trend: Option<crate::time::Unit>,
    /// Per-step windows and held properties.
    pub extras: crate::chain::Extras,
    /// `explain_users`: the names asked for and their ids.
    pub explain: Vec<(String, Option<u32>)>,
}

/// Most users `explain_users` may name.
pub const MAX_EXPLAIN: usize = 100;

const MODES: &str =
    "strict_order, strict_deduplication, strict_increase, strict_once, allow_reentry";

impl Funnel {
    /// Reads the funnel fields.
    pub fn parse(o: &mut Obj<'_>, ctx: &mut Ctx<'_>) -> Result<Funnel> {
        let sp = o.at("steps");
        let list = array(o.req("steps")?, &sp)?;
        if list.is_empty() {
            return Err(QueryError::invalid(sp, "needs at least one step"));
        }
        if list.len() > MAX_STEPS {
            return Err(QueryError::invalid(
                sp,
                format!("{} steps; at most {MAX_STEPS} are allowed", list.len()),
            ));
        }
        let mut steps = Vec::with_capacity(list.len());
        let mut within = Vec::with_capacity(list.len());
        for (i, s) in list.iter().enumerate() {
            let mut so = Obj::new(s, &format!("{sp}[{i}]"))?;
            steps.push(EventRef::read(&mut so, ctx)?);
            let w = match so.opt("within") {
                None => None,
                Some(_) if i == 0 => {
                    return Err(QueryError::invalid(
                        so.at("within"),
                        "step 1 has no previous step: within bounds the time from step i-1 to step i (i >= 1)",
                    ))
                }
                Some(v) => Some(parse_window(v, &so.at("within"))?),
            };
            within.push(w);
            so.finish("event, where, within")?;
        }
        let wp = o.at("window");
        let window = parse_window(o.req("window")?, &wp)?;
        let mut modes = Modes::default();
        if let Some(ms) = o.opt("mode") {
            let mp = o.at("mode");
            let names: Vec<&Json> = match ms {
                Json::String(_) => vec![ms],
                other => array(other, &mp)?.iter().collect(),
            };
            for (i, m) in names.iter().enumerate() {
                let ip = format!("{mp}[{i}]");
                let name = m
                    .as_str()
                    .ok_or_else(|| QueryError::invalid(&ip, "expected a mode name string"))?;
                let flag = match name {
                    "strict_order" => &mut modes.strict_order,
                    "strict_deduplication" => &mut modes.strict_deduplication,
                    "strict_increase" => &mut modes.strict_increase,
                    "strict_once" => &mut modes.strict_once,
                    "allow_reentry" => &mut modes.allow_reentry,
                    other => {
                        let hint = crate::suggest::nearest(other, MODES.split(", "))
                            .map(|s| format!(" (did you mean \"{s}\"?)"))
                            .unwrap_or_default();
                        return Err(QueryError::invalid(
                            ip,
                            format!("unknown mode \"{other}\"{hint}; allowed: {MODES}"),
                        ));
                    }
                };
                *flag = true;
            }
            if modes.allow_reentry && !modes.strict_order {
                return Err(QueryError::invalid(mp, "allow_reentry needs strict_order"));
            }
        }
        let mut exclusions = Vec::new();
        if let Some(ex) = o.opt("exclusions") {
            let ep = o.at("exclusions");
            for (i, e) in array(ex, &ep)?.iter().enumerate() {
                let ip = format!("{ep}[{i}]");
                let mut eo = Obj::new(e, &ip)?;
                let bp = eo.at("between");
                let between = array(eo.req("between")?, &bp)?;
                let idx = |k: usize| -> Result<usize> {
                    let v = between
                        .get(k)
                        .ok_or_else(|| QueryError::invalid(&bp, "expected [from_step, to_step]"))?;
                    Ok(crate::json::uint(v, &format!("{bp}[{k}]"), MAX_STEPS as u64)? as usize)
                };
                let (from, to) = (idx(0)?, idx(1)?);
                if between.len() != 2 || from >= to || to >= steps.len() {
                    return Err(QueryError::invalid(
                        bp,
                        format!("expected [from_step, to_step] with 0 <= from < to < {} (0-based step indices)", steps.len()),
                    ));
                }
                let name_path = eo.at("event");
                let name = eo.req_str("event")?.to_owned();
                let id = if name == "$any" {
                    None
                } else {
                    Some(ctx.event_id(&name, &name_path)?)
                };
                let filter = match eo.opt("where") {
                    None => crate::filter::Filter::True,
                    Some(w) => ctx.filter(w, &eo.at("where"))?,
                };
                eo.finish("event, where, between")?;
                exclusions.push(Exclusion {
                    event: EventRef { name, id, filter },
                    from,
                    to,
                });
            }
        }
        let mut hold = Vec::new();
        if let Some(h) = o.opt("hold") {
            let hp = o.at("hold");
            for (i, item) in array(h, &hp)?.iter().enumerate() {
                let mut ho = Obj::new(item, &format!("{hp}[{i}]"))?;
                let name = ho.req_str("event_prop")?;
                hold.push(ctx.slot(name, &ho.at("event_prop"))?);
                ho.finish("event_prop")?;
            }
        }
        let extras = crate::chain::Extras { within, hold };
        let mut explain = Vec::new();
        if let Some(e) = o.opt("explain_users") {
            let ep = o.at("explain_users");
            let names = array(e, &ep)?;
            if names.len() > MAX_EXPLAIN {
                return Err(QueryError::invalid(
                    ep,
                    format!("{} users; at most {MAX_EXPLAIN}", names.len()),
                ));
            }
            for (i, v) in names.iter().enumerate() {
                let name = v.as_str().ok_or_else(|| {
                    QueryError::invalid(format!("{ep}[{i}]"), "expected a user id string")
                })?;
                explain.push((name.to_owned(), ctx.user_id(name)));
            }
        }
        let strict = modes.strict_order
            || modes.strict_deduplication
            || modes.strict_increase
            || modes.strict_once;
        if strict && (extras.any() || !explain.is_empty()) {
            return Err(QueryError::invalid(
                o.at("mode"),
                "steps[i].within, hold and explain_users work in the default mode (mode: [])",
            ));
        }
        let trend = match o.opt("trend") {
            None => None,
            Some(v) => {
                let mut to = Obj::new(v, &o.at("trend"))?;
                let unit = crate::grid::parse_interval(&mut to, "interval")?;
                to.finish("interval")?;
                Some(unit)
            }
        };
        let matcher = crate::model::Matcher::new(&steps);
        let single = matcher.single();
        Ok(Funnel {
            steps,
            window,
            modes,
            exclusions,
            matcher,
            single,
            trend,
            extras,
            explain,
        })
    }
}

#[derive(Default)]
struct Agg {
    /// users per final level.
    levels: Vec<u64>,
    /// per step (1..n-1): ms from step 1 for each user reaching it.
    times: Vec<Samples>,
    /// With a trend: users per final level in each bucket (`b * (n + 1) +
    /// level`).
    trend: Vec<u64>,
}

/// Non-negative millisecond gaps, 4 bytes each when they fit (a window
/// under 49 days always does), for exact medians and averages.
#[derive(Default, Clone)]
struct Samples {
    narrow: Vec<u32>,
    wide: Vec<i64>,
}

impl Samples {
    fn push(&mut self, ms: i64) {
        match u32::try_from(ms) {
            Ok(x) => self.narrow.push(x),
            Err(_) => self.wide.push(ms),
        }
    }

    fn extend(&mut self, other: Samples) {
        self.narrow.extend(other.narrow);
        self.wide.extend(other.wide);
    }

    fn len(&self) -> usize {
        self.narrow.len() + self.wide.len()
    }

    /// The median and the mean, `None` without samples.
    fn median_avg(&mut self) -> (Option<f64>, Option<f64>) {
        if self.len() == 0 {
            return (None, None);
        }
        let sum = self.narrow.iter().map(|&x| x as f64).sum::<f64>()
            + self.wide.iter().map(|&x| x as f64).sum::<f64>();
        let avg = Some(sum / self.len() as f64);
        let median = if self.wide.is_empty() {
            quantile_unsorted(&mut self.narrow, 0.5)
        } else {
            let mut all: Vec<i64> = self.narrow.iter().map(|&x| i64::from(x)).collect();
            all.extend_from_slice(&self.wide);
            quantile_unsorted(&mut all, 0.5)
        };
        (median, avg)
    }
}

impl Agg {
    fn new(n: usize, buckets: usize) -> Self {
        Agg {
            levels: vec![0; n + 1],
            times: vec![Samples::default(); n],
            trend: vec![0; buckets * (n + 1)],
        }
    }
    fn add(&mut self, level: usize, times: &[i64]) {
        self.levels[level] += 1;
        for k in 1..level {
            self.times[k].push(times[k] - times[0]);
        }
    }
    fn merge(&mut self, other: Agg) {
        for (a, b) in self.levels.iter_mut().zip(other.levels) {
            *a += b;
        }
        for (a, b) in self.times.iter_mut().zip(other.times) {
            a.extend(b);
        }
        for (a, b) in self.trend.iter_mut().zip(other.trend) {
            *a += b;
        }
    }
}

struct Acc {
    /// `explain_users` answers by user id.
    explained: Vec<(u32, Json)>,
    /// Buckets of the trend (0 without one).
    buckets: usize,
    clock: crate::time::Clock,
    /// Trend scratch: the bucket of each step-1 entry, one bucket's entries.
    bucket_of: Vec<i64>,
    sub: Vec<Entry>,
    trend_states: TrendStates,
    /// Scratch of the chain search (`within`, `hold`).
    chains: crate::chain::Scratch,
    all: Agg,
    keys: crate::model::Keys,
    groups: Vec<Agg>,
    truncated: u64,
    entries: Vec<Entry>,
    scratch: Scratch,
    /// Per level, the chain updates of [`per_user_runs`].
    levels: Vec<Vec<Update>>,
    /// Step times kept, overall and in groups.
    samples: u64,
}

impl Metered for Acc {
    fn usage(&self) -> Usage {
        // Per result: a count per level and a time list per step.
        let per = 2 * self.all.levels.len() as u64 + self.all.trend.len() as u64;
        let groups = self.groups.len() as u64;
        Usage {
            cells: (1 + groups) * per + groups * GROUP_CELLS,
            samples: self.samples,
        }
    }
}

/// A chain reaching a level: (time of the step, time of its step 1, index
/// of the update of the level below it came from).
type Update = (i64, i64, u32);

/// Runs a funnel query.
pub fn run(f: &Funnel, c: &Common, ctx: &Ctx<'_>) -> Result<Json> {
    let n = f.steps.len();
    let mut prune = crate::exec::Prune::by(&f.steps[0]);
    // A user who did step 1 but never step 2's event is at level 1 in every
    // mode: count them from the bitmaps instead of reading their events,
    // when nothing else (time range, filters, breakdown) needs their rows.
    let grid = f
        .trend
        .map(|unit| crate::grid::Grid::new(unit, c, ctx, "trend.interval"))
        .transpose()?;
    let buckets = grid.map_or(0, |g| g.n);
    let mut bitmap_level1 = false;
    if let (crate::exec::Prune::Event(first), Some(second)) = (prune, f.steps.get(1)) {
        if let Some(second) = second.known_id() {
            if f.steps[0].filter.is_true()
                && grid.is_none()
                && f.explain.is_empty()
                && c.filter.is_true()
                && c.users.is_true()
                && c.breakdown.is_empty()
                && ctx.covers_all(c.range)
            {
                prune = crate::exec::Prune::Pair(first, second);
                bitmap_level1 = true;
            }
        }
    }
    let mut acc = ctx.run(
        c.range,
        prune,
        || Acc {
            explained: Vec::new(),
            buckets,
            clock: crate::time::Clock::new(c.tz),
            bucket_of: Vec::new(),
            sub: Vec::new(),
            trend_states: TrendStates::default(),
            chains: crate::chain::Scratch::default(),
            all: Agg::new(n, buckets),
            keys: crate::model::Keys::default(),
            groups: Vec::new(),
            truncated: 0,
            samples: 0,
            entries: Vec::new(),
            scratch: Scratch::default(),
            levels: Vec::new(),
        },
        |acc, u| per_user(f, c, ctx, grid, acc, u),
        |mut a, b| {
            a.all.merge(b.all);
            for (key, g) in b.keys.list.into_iter().zip(b.groups) {
                let id = a.keys.of(key) as usize;
                if id == a.groups.len() {
                    a.groups.push(g);
                } else {
                    a.groups[id].merge(g);
                }
            }
            a.truncated += b.truncated;
            a.explained.extend(b.explained);
            a.samples += b.samples;
            a
        },
    )?;
    if bitmap_level1 {
        acc.all.levels[1] += ctx.only_first();
    }
    let labels = grid.map(|g| g.labels(&mut crate::time::Clock::new(c.tz)));
    let render = |g: Agg| {
        let trend = labels.as_ref().map(|l| trend_json(n, l, &g.trend));
        let mut out = json!({ "steps": steps_json(f, g) });
        if let Some(t) = trend {
            out["trend"] = t;
        }
        out
    };
    let explained = std::mem::take(&mut acc.explained);
    let mut out = render(acc.all);
    if !f.explain.is_empty() {
        let list: Vec<Json> = f
            .explain
            .iter()
            .map(|(name, id)| {
                let mut e = explained
                    .iter()
                    .find(|(uid, _)| Some(*uid) == *id)
                    .map(|(_, e)| e.clone())
                    .unwrap_or_else(|| json!({"level": 0, "times": [], "reason": "no_event"}));
                e["user"] = json!(name);
                e
            })
            .collect();
        out["explain"] = Json::Array(list);
    }
    if !c.breakdown.is_empty() {
        let groups: Vec<(Key, Agg)> = acc.keys.list.into_iter().zip(acc.groups).collect();
        crate::groups::render(
            &mut out,
            &c.breakdown,
            c.limit,
            groups,
            |g| crate::groups::Size::Count(g.levels[1..].iter().sum()),
            render,
        );
    }
    if acc.truncated > 0 {
        out["warnings"] = json!([format!(
            "strict_once: {} users had more than {MAX_CHAINS} partial chains; their level may be undercounted",
            acc.truncated
        )]);
    }
    Ok(out)
}

fn per_user(
    f: &Funnel,
    c: &Common,
    ctx: &Ctx<'_>,
    grid: Option<crate::grid::Grid>,
    acc: &mut Acc,
    u: &UserRows<'_>,
) {
    let Some(profile) = ctx.admit(c, u.uid) else {
        return;
    };
    if let Some(runs) = u.runs {
        per_user_runs(f, acc, runs);
        if let Some(grid) = grid {
            let mut entries = std::mem::take(&mut acc.entries);
            crate::exec::reset(&mut entries);
            runs_entries(f, runs, &mut entries);
            trend_one_pass(f, c, u, profile, acc, &entries, grid);
            acc.entries = entries;
        }
        return;
    }
    let entries = &mut acc.entries;
    crate::exec::reset(entries);
    let mut any_step = false;
    let global = !c.filter.is_true();
    if let (false, Some(step_of), false) = (global, &f.single, f.modes.strict_order) {
        // Fastest path, branch-free: every event is written and kept only
        // if it fills a step (most events fill none).
        entries.resize(u.len(), (0, 0, 0));
        let mut n = 0;
        for (i, (&ev, &t)) in u.events.iter().zip(u.times).enumerate() {
            let k = step_of.get(ev as usize).copied().unwrap_or(0);
            entries[n] = (t, k, i as u32);
            n += usize::from(k != 0);
        }
        entries.truncate(n);
        any_step = n > 0;
    } else if !global && !f.matcher.has_filters() && !f.modes.strict_order {
        // Fast path: one table lookup per event, no property access.
        let (table, any) = f.matcher.table();
        for (i, (&ev, &t)) in u.events.iter().zip(u.times).enumerate() {
            let mut mask = any | table.get(ev as usize).copied().unwrap_or(0);
            while mask != 0 {
                let k = mask.trailing_zeros();
                entries.push((t, (k + 1) as u8, i as u32));
                mask &= mask - 1;
            }
        }
        any_step = !entries.is_empty();
    } else {
        for i in 0..u.len() {
            let p = RowProps {
                rows: u,
                i,
                profile,
            };
            if global && !c.filter.eval(&p) {
                continue;
            }
            let mut mask = f.matcher.mask(u.events[i], &p);
            if mask == 0 {
                if f.modes.strict_order {
                    entries.push((u.times[i], 0, i as u32));
                }
                continue;
            }
            any_step = true;
            while mask != 0 {
                let k = mask.trailing_zeros();
                entries.push((u.times[i], (k + 1) as u8, i as u32));
                mask &= mask - 1;
            }
        }
    }
    if !any_step {
        return;
    }
    if !entries.is_sorted() {
        entries.sort_unstable();
    }
    let entries = std::mem::take(&mut acc.entries);
    count(f, c, u, profile, acc, &entries, None);
    if f.explain.iter().any(|(_, id)| *id == Some(u.uid)) {
        let e = explain(f, c, u, profile, &entries);
        acc.explained.push((u.uid, e));
    }
    if let Some(grid) = grid {
        if f.trend_in_one_pass() {
            trend_one_pass(f, c, u, profile, acc, &entries, grid);
        } else {
            trend(f, c, u, profile, acc, &entries, grid);
        }
    }
    acc.entries = entries;
}

/// Counts the user's funnel over `entries` (sorted), overall or (with
/// `bucket`) in that bucket of the trend.
fn count(
    f: &Funnel,
    c: &Common,
    u: &UserRows<'_>,
    profile: Option<footprint_storage::profiles::Profile<'_>>,
    acc: &mut Acc,
    entries: &[Entry],
    bucket: Option<usize>,
) {
    let n = f.steps.len();
    let (level, first_row) = if f.extras.any() {
        let chain = crate::chain::search(entries, n, f.window, &f.extras, u, &mut acc.chains);
        acc.scratch.times.clear();
        acc.scratch
            .times
            .extend(chain.at.iter().map(|&j| entries[j].0));
        let row = chain.at.first().map_or(0, |&j| entries[j].2);
        (chain.level, row)
    } else {
        let (level, first_row, truncated) =
            level_with(entries, n, f.window, f.modes, &mut acc.scratch);
        if truncated && bucket.is_none() {
            acc.truncated += 1;
        }
        (level, first_row)
    };
    if level == 0 {
        return;
    }
    let times = if f.extras.any() {
        &acc.scratch.times[..level]
    } else {
        acc.scratch.chain_times(level, n, f.modes.strict_once)
    };
    if excluded(f, c, u, profile, level, times) {
        return;
    }
    let group = (!c.breakdown.is_empty()).then(|| {
        let id = acc.keys.id(&c.breakdown, u, first_row as usize, profile) as usize;
        if id == acc.groups.len() {
            acc.groups.push(Agg::new(n, acc.buckets));
        }
        id
    });
    match bucket {
        Some(b) => {
            acc.all.trend[b * (n + 1) + level] += 1;
            if let Some(id) = group {
                acc.groups[id].trend[b * (n + 1) + level] += 1;
            }
        }
        None => {
            acc.all.add(level, times);
            acc.samples += level as u64 - 1;
            if let Some(id) = group {
                acc.groups[id].add(level, times);
                acc.samples += level as u64 - 1;
            }
        }
    }
}

/// One user's explanation: the level counted, the chain's times and why
/// the next step was not reached.
fn explain(
    f: &Funnel,
    c: &Common,
    u: &UserRows<'_>,
    profile: Option<footprint_storage::profiles::Profile<'_>>,
    entries: &[Entry],
) -> Json {
    let n = f.steps.len();
    let mut sc = crate::chain::Scratch::default();
    let chain = crate::chain::search(entries, n, f.window, &f.extras, u, &mut sc);
    let times: Vec<i64> = chain.at.iter().map(|&j| entries[j].0).collect();
    let (level, reason) = if chain.level > 0 && excluded(f, c, u, profile, chain.level, &times) {
        (0, Some(crate::chain::Reason::Excluded))
    } else {
        let r = crate::chain::reason(entries, &chain, n, f.window, &f.extras, u, &mut sc);
        (chain.level, r)
    };
    json!({
        "level": level,
        "times": times,
        "reason": reason.map(|r| r.name()),
    })
}

/// Whether an exclusion event falls strictly between the chain's steps
/// it names.
fn excluded(
    f: &Funnel,
    c: &Common,
    u: &UserRows<'_>,
    profile: Option<footprint_storage::profiles::Profile<'_>>,
    level: usize,
    times: &[i64],
) -> bool {
    f.exclusions.iter().any(|ex| {
        level > ex.to && {
            let (a, b) = (times[ex.from], times[ex.to]);
            (0..u.len()).any(|i| {
                let t = u.times[i];
                t > a && t < b && {
                    let p = RowProps {
                        rows: u,
                        i,
                        profile,
                    };
                    c.filter.eval(&p) && ex.event.matches(u.events[i], &p)
                }
            })
        }
    })
}

impl Funnel {
    /// Whether [`trend_one_pass`] computes the trend: the default mode,
    /// no exclusions (which need each chain's times), no extras.
    fn trend_in_one_pass(&self) -> bool {
        let m = self.modes;
        !(m.strict_order || m.strict_deduplication || m.strict_increase || m.strict_once)
            && self.exclusions.is_empty()
            && !self.extras.any()
            && self.steps.len() <= 64
    }
}

/// Per-bucket states of [`trend_one_pass`], flat: state j is bucket
/// `bucket[j]`, its levels reached (bit k − 1 for level k), and per level
/// the chain's step-1 time and row.
#[derive(Default)]
struct TrendStates {
    bucket: Vec<usize>,
    last1: Vec<i64>,
    set: Vec<u64>,
    first: Vec<i64>,
    row: Vec<u32>,
}

/// [`trend`] in the default mode in one pass: [`level_with`]'s state
/// machine run for every bucket at once, each bucket's state taking only
/// its own step-1 events and every later step. A bucket's state can only
/// change while some entry is within the window of its last step-1
/// event, so only a suffix of the states (by time) is updated; a state
/// that reached the last step is frozen (where [`level_with`] returns).
fn trend_one_pass(
    f: &Funnel,
    c: &Common,
    u: &UserRows<'_>,
    profile: Option<footprint_storage::profiles::Profile<'_>>,
    acc: &mut Acc,
    entries: &[Entry],
    grid: crate::grid::Grid,
) {
    let n = f.steps.len();
    let full = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
    let mut st = std::mem::take(&mut acc.trend_states);
    st.bucket.clear();
    st.last1.clear();
    st.set.clear();
    st.first.clear();
    st.row.clear();
    let mut lo = 0;
    for &(t, k, row) in entries {
        while lo < st.bucket.len() && st.last1[lo].saturating_add(f.window) < t {
            lo += 1;
        }
        if k == 1 {
            let b = grid.offset(&mut acc.clock, t);
            if !(0..grid.n as i64).contains(&b) {
                continue;
            }
            let b = b as usize;
            if st.bucket.last() != Some(&b) {
                st.bucket.push(b);
                st.last1.push(t);
                st.set.push(0);
                st.first.extend(std::iter::repeat_n(0, n));
                st.row.extend(std::iter::repeat_n(0, n));
            }
            let j = st.bucket.len() - 1;
            st.last1[j] = t;
            if st.set[j] == full {
                continue;
            }
            // A one-step funnel keeps the first step-1 row, as `level_with`.
            if n > 1 || st.set[j] & 1 == 0 {
                st.row[j * n] = row;
            }
            st.set[j] |= 1;
            st.first[j * n] = t;
            // The state may have gone stale and come back.
            lo = lo.min(j);
            continue;
        }
        let idx = k as usize - 1;
        for j in lo..st.bucket.len() {
            let set = st.set[j];
            if set == full || set & (1 << (idx - 1)) == 0 {
                continue;
            }
            let start = st.first[j * n + idx - 1];
            if t <= start.saturating_add(f.window) {
                st.set[j] |= 1 << idx;
                st.first[j * n + idx] = start;
                st.row[j * n + idx] = st.row[j * n + idx - 1];
            }
        }
    }
    for j in 0..st.bucket.len() {
        let level = 64 - st.set[j].leading_zeros() as usize;
        if level == 0 {
            continue;
        }
        let cell = st.bucket[j] * (n + 1) + level;
        acc.all.trend[cell] += 1;
        if !c.breakdown.is_empty() {
            let first_row = st.row[j * n + level - 1] as usize;
            let id = acc.keys.id(&c.breakdown, u, first_row, profile) as usize;
            if id == acc.groups.len() {
                acc.groups.push(Agg::new(n, acc.buckets));
            }
            acc.groups[id].trend[cell] += 1;
        }
    }
    acc.trend_states = st;
}

/// The trend: for each bucket holding some of the user's step-1 events,
/// the funnel whose step 1 must lie in that bucket (ClickHouse
/// `windowFunnel` with condition 1 "step 1 and in bucket b", NOTES.md
/// §41). A step-1 event of another bucket still fills later steps it
/// matches; under `strict_order` one that fills no other step is an
/// unrelated event. Entries before the bucket's first step-1 event cannot
/// matter, nor those past its last one's window.
fn trend(
    f: &Funnel,
    c: &Common,
    u: &UserRows<'_>,
    profile: Option<footprint_storage::profiles::Profile<'_>>,
    acc: &mut Acc,
    entries: &[Entry],
    grid: crate::grid::Grid,
) {
    let mut bk = std::mem::take(&mut acc.bucket_of);
    let mut sub = std::mem::take(&mut acc.sub);
    bk.clear();
    bk.extend(entries.iter().map(|e| {
        if e.1 == 1 {
            grid.offset(&mut acc.clock, e.0)
        } else {
            i64::MIN
        }
    }));
    let mut i = 0;
    while i < entries.len() {
        let b = bk[i];
        if entries[i].1 != 1 || !(0..grid.n as i64).contains(&b) {
            i += 1;
            continue;
        }
        // The last step-1 event of bucket b.
        let last = (i..entries.len())
            .rev()
            .find(|&j| entries[j].1 == 1 && bk[j] == b)
            .unwrap_or(i);
        let end = entries[last].0.saturating_add(f.window);
        sub.clear();
        for (j, &(t, k, row)) in entries.iter().enumerate().skip(i) {
            if t > end {
                break;
            }
            if k == 1 && bk[j] != b {
                // Entries sort by (time, step, row): the row's other steps
                // at this time come after it, before the next time.
                let fills_other = || {
                    entries[j + 1..]
                        .iter()
                        .take_while(|e| e.0 == t)
                        .any(|e| e.2 == row && e.1 > 1)
                };
                if f.modes.strict_order && !fills_other() {
                    sub.push((t, 0, row));
                }
                continue;
            }
            sub.push((t, k, row));
        }
        count(f, c, u, profile, acc, &sub, Some(b as usize));
        i = last + 1;
    }
    acc.bucket_of = bk;
    acc.sub = sub;
}

impl Funnel {
    /// Whether [`per_user_runs`] can compute this funnel from per-event
    /// runs: no modes but `allow_reentry` (which only matters with
    /// `strict_order`), each event filling at most one step and no
    /// filters, exclusions or breakdown.
    pub fn takes_runs(&self, c: &Common) -> bool {
        let m = self.modes;
        !(m.strict_order || m.strict_deduplication || m.strict_increase || m.strict_once)
            && self.single.is_some()
            && self.exclusions.is_empty()
            && self.steps.len() <= MAX_STEPS
            && c.filter.is_true()
            && c.breakdown.is_empty()
            && (self.trend.is_none() || self.trend_in_one_pass())
            && !self.extras.any()
            && self.explain.is_empty()
    }
}

/// The default-mode funnel over a user's per-event runs, without merging
/// them: level by level, each step's events (in time order) look up the
/// latest chain update of the level below at or before them (at equal
/// times a lower step comes first, as in the merged order). This is what
/// [`level_with`] computes: a level's updates depend only on the updates
/// of the level below before them; the answer is the first completion of
/// the last step, else the last update of the deepest level reached.
/// The entries of a user's per-event runs (rows are not known: 0), in
/// (time, step) order: the runs' sorted time lists merged, the smallest
/// step first at equal times.
fn runs_entries(f: &Funnel, runs: Runs<'_>, out: &mut Vec<Entry>) {
    let Some(step_of) = &f.single else { return };
    let mut lists: Vec<(u8, &[i64])> = Vec::with_capacity(f.steps.len());
    for i in 0..runs.len() {
        if let Some((ev, times)) = runs.get(i) {
            let k = step_of.get(ev as usize).copied().unwrap_or(0);
            if k != 0 && !times.is_empty() {
                lists.push((k, times));
            }
        }
    }
    lists.sort_unstable_by_key(|l| l.0);
    while !lists.is_empty() {
        // The head with the smallest time; ties go to the smallest step.
        let mut best = 0;
        for j in 1..lists.len() {
            if lists[j].1[0] < lists[best].1[0] {
                best = j;
            }
        }
        let (k, times) = lists[best];
        // Take every time of that list not after the other heads.
        let limit = lists
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != best)
            .map(|(j, l)| if j < best { l.1[0] - 1 } else { l.1[0] })
            .min()
            .unwrap_or(i64::MAX);
        let take = times.partition_point(|&t| t <= limit).max(1);
        out.extend(times[..take].iter().map(|&t| (t, k, 0)));
        if take == times.len() {
            lists.remove(best);
        } else {
            lists[best].1 = &times[take..];
        }
    }
}

fn per_user_runs(f: &Funnel, acc: &mut Acc, runs: Runs<'_>) {
    let n = f.steps.len();
    let Some(step_of) = &f.single else { return };
    if n > MAX_STEPS {
        return;
    }
    // Step → index of its run (steps without one get an empty run).
    let mut run_of = [u8::MAX; MAX_STEPS];
    for i in 0..runs.len().min(usize::from(u8::MAX)) {
        if let Some((ev, _)) = runs.get(i) {
            if let Some(&k) = step_of.get(ev as usize) {
                if k != 0 {
                    run_of[k as usize - 1] = i as u8;
                }
            }
        }
    }
    let times = |k: usize| runs.get(usize::from(run_of[k])).map_or(&[][..], |r| r.1);
    let mut chain = [0i64; MAX_STEPS];
    let level = level_runs(n, times, f.window, &mut acc.levels, &mut chain);
    if level > 0 {
        acc.all.add(level, &chain[..level]);
        acc.samples += level as u64 - 1;
    }
}

/// The level [`per_user_runs`] computes from the times of each of `n`
/// steps (`by_step(k)`, ascending); writes the chain's step times to
/// `chain`. `lv` is scratch.
fn level_runs<'t>(
    n: usize,
    by_step: impl Fn(usize) -> &'t [i64],
    window: i64,
    lv: &mut Vec<Vec<Update>>,
    chain: &mut [i64; MAX_STEPS],
) -> usize {
    let n = n.min(MAX_STEPS);
    if n == 0 || by_step(0).is_empty() {
        return 0;
    }
    lv.resize_with(n, Vec::new);
    lv[0].clear();
    lv[0].extend(by_step(0).iter().map(|&t| (t, t, 0)));
    let mut level = 1;
    for k in 1..n {
        let (below, at) = lv.split_at_mut(k);
        let (below, cur) = (&below[k - 1], &mut at[0]);
        cur.clear();
        let mut p = 0;
        for &t in by_step(k) {
            while p < below.len() && below[p].0 <= t {
                p += 1;
            }
            let Some(&(_, first, _)) = p.checked_sub(1).and_then(|i| below.get(i)) else {
                continue;
            };
            if t <= first.saturating_add(window) {
                cur.push((t, first, (p - 1) as u32));
                if k + 1 == n {
                    break;
                }
            }
        }
        if cur.is_empty() {
            break;
        }
        level = k + 1;
    }
    let top = &lv[level - 1];
    let mut at = if level == n { 0 } else { top.len() - 1 };
    for k in (0..level).rev() {
        let Some(&(t, _, back)) = lv[k].get(at) else {
            return 0;
        };
        chain[k] = t;
        at = back as usize;
    }
    level
}

/// The trend's rows: per bucket, users reaching each step or deeper and
/// the conversion from the first step to the last.
fn trend_json(n: usize, labels: &[Json], levels: &[u64]) -> Json {
    let rows = labels
        .iter()
        .enumerate()
        .map(|(b, label)| {
            let by_level = &levels[b * (n + 1)..(b + 1) * (n + 1)];
            let mut users = vec![0u64; n];
            let mut acc = 0;
            for lvl in (1..=n).rev() {
                acc += by_level[lvl];
                users[lvl - 1] = acc;
            }
            let conversion = if users[0] == 0 {
                Json::Null
            } else {
                num(Some(users[n - 1] as f64 / users[0] as f64))
            };
            json!({"bucket": label, "steps": users, "conversion": conversion})
        })
        .collect();
    Json::Array(rows)
}

fn steps_json(f: &Funnel, mut agg: Agg) -> Json {
    let n = f.steps.len();
    // users[i] = users reaching step i+1 or deeper.
    let mut users = vec![0u64; n];
    let mut acc = 0;
    for lvl in (1..=n).rev() {
        acc += agg.levels[lvl];
        users[lvl - 1] = acc;
    }
    let ratio = |a: u64, b: u64| {
        if b == 0 {
            Json::Null
        } else {
            num(Some(a as f64 / b as f64))
        }
    };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let (median, avg) = if i == 0 {
            (Json::Null, Json::Null)
        } else {
            let (median, avg) = agg.times[i].median_avg();
            (num(median), num(avg))
        };
        out.push(json!({
            "event": f.steps[i].name,
            "users": users[i],
            "conversion_from_previous": if i == 0 { ratio(users[0], users[0]) } else { ratio(users[i], users[i - 1]) },
            "conversion_from_first": ratio(users[i], users[0]),
            "median_ms_from_first": median,
            "avg_ms_from_first": avg,
        }));
    }
    Json::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(evs: &[(i64, &[u8])]) -> Vec<Entry> {
        let mut out = Vec::new();
        for (row, (t, steps)) in evs.iter().enumerate() {
            for &s in *steps {
                out.push((*t, s, row as u32));
            }
        }
        out.sort_unstable();
        out
    }

    fn lv(evs: &[(i64, &[u8])], n: usize, w: i64, m: Modes) -> usize {
        level(&entries(evs), n, w, m).level
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]
        /// The per-step computation over runs gives the state machine's
        /// level and chain times in the default mode (each event one step),
        /// with many equal times.
        #[test]
        fn runs_equal_the_state_machine(
            steps in proptest::collection::vec(
                proptest::collection::vec(0i64..30, 0..8), 1..6),
            window in proptest::prop_oneof![proptest::strategy::Just(0i64), 0i64..15, proptest::strategy::Just(1_000i64)],
        ) {
            let n = steps.len();
            let mut by_step: Vec<Vec<i64>> = steps.clone();
            for s in &mut by_step {
                s.sort_unstable();
            }
            let mut ents = Vec::new();
            let mut row = 0u32;
            for (k, times) in by_step.iter().enumerate() {
                for &t in times {
                    ents.push((t, (k + 1) as u8, row));
                    row += 1;
                }
            }
            ents.sort_unstable();
            let want = level(&ents, n, window, Modes::default());
            let slices: Vec<&[i64]> = by_step.iter().map(|v| v.as_slice()).collect();
            let mut chain = [0i64; MAX_STEPS];
            let got = level_runs(n, |k| slices[k], window, &mut Vec::new(), &mut chain);
            proptest::prop_assert_eq!(got, want.level);
            proptest::prop_assert_eq!(&chain[..got], &want.times[..]);
        }
    }

    #[test]
    fn semantics_probes() {
        let d = Modes::default();
        // F5b: a@0 b@1 a@6 c@12, window 10 → 2.
        assert_eq!(
            lv(&[(0, &[1]), (1, &[2]), (6, &[1]), (12, &[3])], 3, 10, d),
            2
        );
        // F4a: one event fills several steps.
        assert_eq!(lv(&[(0, &[1, 2, 3])], 3, 10, d), 3);
        let so = Modes {
            strict_order: true,
            ..d
        };
        // F6c: a x a b c → 1.
        assert_eq!(
            lv(
                &[(0, &[1]), (1, &[0]), (2, &[1]), (3, &[2]), (4, &[3])],
                3,
                100,
                so
            ),
            1
        );
        // F6e: a b a c → 3.
        assert_eq!(
            lv(&[(0, &[1]), (1, &[2]), (2, &[1]), (3, &[3])], 3, 100, so),
            3
        );
        // F10a: a c b with allow_reentry → 2.
        let re = Modes {
            allow_reentry: true,
            ..so
        };
        assert_eq!(lv(&[(0, &[1]), (1, &[3]), (2, &[2])], 3, 100, re), 2);
        assert_eq!(lv(&[(0, &[1]), (1, &[3]), (2, &[2])], 3, 100, so), 1);
        // F8c: [a,a,a] strict_increase with a@0,1,2 → 1.
        let si = Modes {
            strict_increase: true,
            ..d
        };
        assert_eq!(
            lv(
                &[(0, &[1, 2, 3]), (1, &[1, 2, 3]), (2, &[1, 2, 3])],
                3,
                100,
                si
            ),
            1
        );
        // F7c: a b a b with dedup → 2.
        let sd = Modes {
            strict_deduplication: true,
            ..d
        };
        assert_eq!(
            lv(&[(0, &[1]), (1, &[2]), (2, &[1]), (3, &[2])], 3, 100, sd),
            2
        );
        // strict_once: one row cannot fill two steps.
        let once = Modes {
            strict_once: true,
            ..d
        };
        assert_eq!(lv(&[(0, &[1, 2, 3])], 3, 10, once), 1);
        assert_eq!(lv(&[(0, &[1, 2]), (1, &[1, 2]), (2, &[3])], 3, 10, once), 3);
    }
}
