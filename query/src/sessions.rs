//! sessions — Session 分析: per bucket of session start, sessions, users,
//! average and exact median duration, events per session and bounce rate;
//! totals, the duration histogram, top entry and exit pages.
//! Semantics: ANALYSES.md "sessions", NOTES.md 4–11.
//!
//! Each user's rows go through the [`Sessionizer`]; a session is folded
//! into its bucket's tallies as soon as the next one starts, so only the
//! durations (for exact medians) are kept per session.

use footprint_storage::UserRows;
use rustc_hash::FxHashMap;
use serde_json::{json, Value as Json};

use crate::by_value::ByValue;
use crate::error::{QueryError, Result};
use crate::exec::{num, quantile_unsorted, Ctx, RowProps};
use crate::groups::Size;
use crate::json::Obj;
use crate::limits::{Metered, Usage, GROUP_CELLS};
use crate::model::{Common, Key, Keys};
use crate::sessionize::{self, in_set, SessionRules, Sessionizer};
use crate::time::{parse_window, Clock, Unit};

/// Lower bounds (ms) of the duration histogram's bins; the last is open.
pub const HISTOGRAM: [i64; 9] = [
    0, 10_000, 30_000, 60_000, 180_000, 600_000, 1_800_000, 3_600_000, 10_800_000,
];
/// The fields of a sessions query besides the common ones.
pub const FIELDS: [&str; 9] = [
    "interval",
    "timeout",
    "max_length",
    "split",
    "ignore_events",
    "page_events",
    "page_prop",
    "bounce_under",
    "top",
];

/// A parsed sessions query.
pub struct Sessions {
    /// How sessions are cut.
    pub rules: SessionRules,
    /// Bucket unit of session starts.
    pub unit: Unit,
    /// Page events (`page_events[ev]`).
    pages: Vec<bool>,
    /// Scan slot of `page_prop`.
    page_prop: Option<usize>,
    /// A session with one page event shorter than this is a bounce.
    pub bounce_under: i64,
    /// Entry and exit rows returned.
    pub top: usize,
}

impl Sessions {
    /// Reads the sessions fields.
    pub fn parse(o: &mut Obj<'_>, ctx: &mut Ctx<'_>) -> Result<Sessions> {
        let unit = match o.opt_str("interval")? {
            None => Unit::Day,
            Some(u) => Unit::parse(u, &o.at("interval"))?,
        };
        let rules = SessionRules::parse(o, ctx)?;
        let pages = match sessionize::event_set(o, "page_events", ctx)? {
            Some(s) => s,
            None => sessionize::default_set(&["$pageview", "$screen"], ctx),
        };
        let page_prop = match o.opt_str("page_prop")? {
            Some(name) => ctx.slot(name, &o.at("page_prop"))?,
            None => ctx.slot_if_stored("$current_url"),
        };
        let bounce_under = match o.opt("bounce_under") {
            None => 10_000,
            Some(v) => parse_window(v, &o.at("bounce_under"))?,
        };
        let top = top(o)?;
        Ok(Sessions {
            rules,
            unit,
            pages,
            page_prop,
            bounce_under,
            top,
        })
    }
}

/// Reads `top` (rows per list, default 10).
pub fn top(o: &mut Obj<'_>) -> Result<usize> {
    let t = o.opt_uint("top", 100_000)?.unwrap_or(10);
    if t == 0 {
        return Err(QueryError::invalid(o.at("top"), "must be at least 1"));
    }
    Ok(t as usize)
}

/// The tallies of a set of sessions.
#[derive(Default, Clone)]
struct Stats {
    sessions: u64,
    users: u64,
    duration_sum: u64,
    /// Every session's duration: below `max_length`, which is at most
    /// [`crate::sessionize::MAX_LENGTH_LIMIT`], so 4 bytes each.
    durations: Vec<u32>,
    events: u64,
    /// Sessions with a page event (the bounce rate's denominator).
    paged: u64,
    bounces: u64,
}

impl Stats {
    fn add(&mut self, s: &Session) {
        self.sessions += 1;
        self.duration_sum += s.duration() as u64;
        self.durations
            .push(u32::try_from(s.duration()).unwrap_or(u32::MAX));
        self.events += s.events;
        if s.pages > 0 {
            self.paged += 1;
        }
        if s.bounce {
            self.bounces += 1;
        }
    }

    fn merge(&mut self, mut o: Stats) {
        self.sessions += o.sessions;
        self.users += o.users;
        self.duration_sum += o.duration_sum;
        // Extend the larger list, unless this one has room reserved.
        let room = self.durations.capacity() - self.durations.len();
        if room < o.durations.len() && self.durations.len() < o.durations.len() {
            std::mem::swap(&mut self.durations, &mut o.durations);
        }
        self.durations.extend(o.durations);
        self.events += o.events;
        self.paged += o.paged;
        self.bounces += o.bounces;
    }

    fn ratio(a: u64, b: u64) -> Option<f64> {
        (b > 0).then(|| a as f64 / b as f64)
    }

    fn avg(&self) -> Option<f64> {
        Stats::ratio(self.duration_sum, self.sessions)
    }

    fn median(&mut self) -> Option<f64> {
        quantile_unsorted(&mut self.durations, 0.5)
    }

    fn per_session(&self) -> Option<f64> {
        Stats::ratio(self.events, self.sessions)
    }

    fn bounce_rate(&self) -> Option<f64> {
        Stats::ratio(self.bounces, self.paged)
    }

    /// The `total` object (with sessions per user).
    fn total(mut self) -> Json {
        json!({
            "sessions": self.sessions,
            "users": self.users,
            "avg_duration_ms": num(self.avg()),
            "median_duration_ms": num(self.median()),
            "events_per_session": num(self.per_session()),
            "bounce_rate": num(self.bounce_rate()),
            "sessions_per_user": num(Stats::ratio(self.sessions, self.users)),
        })
    }
}

/// One session being read.
struct Session {
    first_row: usize,
    start: i64,
    end: i64,
    events: u64,
    pages: u64,
    first_page: Option<usize>,
    last_page: Option<usize>,
    bounce: bool,
}

impl Session {
    fn new(row: usize, t: i64) -> Session {
        Session {
            first_row: row,
            start: t,
            end: t,
            events: 0,
            pages: 0,
            first_page: None,
            last_page: None,
            bounce: false,
        }
    }

    fn duration(&self) -> i64 {
        self.end - self.start
    }
}

/// Entry tallies: sessions and bounces.
#[derive(Default, Clone, Copy)]
struct Entry {
    sessions: u64,
    bounces: u64,
}

/// Sessions by bucket of their start, and the distinct users among them:
/// the whole result's, or one breakdown group's.
#[derive(Default)]
struct Series {
    buckets: FxHashMap<i64, Stats>,
    users: u64,
}

impl Series {
    /// Adds session `s` starting in bucket `b`. `last` is the last bucket
    /// in which this series counted the current user (a user's sessions
    /// come in bucket order), `None` before their first.
    fn add(&mut self, b: i64, s: &Session, last: &mut Option<i64>, cells: &mut u64) {
        let stats = self.buckets.entry(b).or_insert_with(|| {
            *cells += BUCKET_CELLS;
            Stats::default()
        });
        if *last != Some(b) {
            if last.is_none() {
                self.users += 1;
            }
            stats.users += 1;
            *last = Some(b);
        }
        stats.add(s);
    }

    fn merge(&mut self, o: Series) {
        for (k, s) in o.buckets {
            self.buckets.entry(k).or_default().merge(s);
        }
        self.users += o.users;
    }

    /// The per-bucket arrays over the `n` buckets from `first`, and the
    /// total.
    fn render(mut self, unit: Unit, first: i64, n: i64) -> (Json, Stats) {
        let mut total = Stats::default();
        // The total's durations, gathered as the buckets are done with theirs.
        total
            .durations
            .reserve_exact(self.buckets.values().map(|s| s.durations.len()).sum());
        let (mut sessions, mut users, mut avg, mut median, mut per, mut bounce) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        for k in 0..n {
            let b = Clock::advance(unit, first, k);
            let mut s = self.buckets.remove(&b).unwrap_or_default();
            sessions.push(json!(s.sessions));
            users.push(json!(s.users));
            avg.push(num(s.avg()));
            median.push(num(s.median()));
            per.push(num(s.per_session()));
            bounce.push(num(s.bounce_rate()));
            total.merge(s);
        }
        total.users = self.users;
        let arrays = json!({
            "sessions": sessions,
            "users": users,
            "avg_duration_ms": avg,
            "median_duration_ms": median,
            "events_per_session": per,
            "bounce_rate": bounce,
        });
        (arrays, total)
    }
}

/// Cells a bucket's tallies cost (see [`crate::limits`]).
const BUCKET_CELLS: u64 = 8;

struct Acc<'q> {
    sz: Sessionizer<'q>,
    t: Tallies,
}

impl Metered for Acc<'_> {
    fn usage(&self) -> Usage {
        self.t.usage()
    }
}

struct Tallies {
    clock: Clock,
    all: Series,
    histogram: [u64; HISTOGRAM.len()],
    entry: ByValue<Entry>,
    exit: ByValue<u64>,
    keys: Keys,
    groups: Vec<Series>,
    /// Bucket cells of `all` and the groups.
    cells: u64,
    samples: u64,
    /// Per user: the last bucket counted overall, and per group seen.
    last_bucket: Option<i64>,
    seen_groups: Vec<(u32, Option<i64>)>,
}

impl Tallies {
    fn usage(&self) -> Usage {
        Usage {
            cells: self.cells
                + (self.entry.len() * 2 + self.exit.len()) as u64
                + self.keys.list.len() as u64 * GROUP_CELLS,
            samples: self.samples,
        }
    }
}

/// Runs a sessions query.
pub fn run(q: &Sessions, c: &Common, ctx: &Ctx<'_>) -> Result<Json> {
    let mut clock = Clock::new(c.tz);
    // Every bucket of the range is listed, so check how many first.
    let grid = match c.range {
        Some((from, to)) if from < to => {
            let first = clock.bucket(q.unit, from);
            let n = Clock::periods(q.unit, first, clock.bucket(q.unit, to - 1)) + 1;
            check_buckets(n)?;
            Some((first, n))
        }
        Some(_) => Some((0, 0)),
        None => None,
    };
    let init = || Acc {
        sz: Sessionizer::new(&q.rules, c.tz),
        t: Tallies {
            clock: Clock::new(c.tz),
            all: Series::default(),
            histogram: [0; HISTOGRAM.len()],
            entry: ByValue::default(),
            exit: ByValue::default(),
            keys: Keys::default(),
            groups: Vec::new(),
            cells: 0,
            samples: 0,
            last_bucket: None,
            seen_groups: Vec::new(),
        },
    };
    let acc = ctx.run(
        c.range,
        crate::exec::Prune::None,
        init,
        |acc, u| per_user(q, c, ctx, acc, u),
        |mut a, b| {
            merge(&mut a.t, b.t);
            a
        },
    )?;
    let acc = acc.t;
    let (first, n) = match grid {
        Some(g) => g,
        None => match (acc.all.buckets.keys().min(), acc.all.buckets.keys().max()) {
            (Some(&lo), Some(&hi)) => {
                let n = Clock::periods(q.unit, lo, hi) + 1;
                check_buckets(n)?;
                (lo, n)
            }
            _ => (0, 0),
        },
    };
    let labels: Vec<String> = (0..n)
        .map(|k| clock.label(q.unit, Clock::advance(q.unit, first, k)))
        .collect();
    let (arrays, total) = acc.all.render(q.unit, first, n);
    let histogram: Vec<Json> = HISTOGRAM
        .iter()
        .zip(acc.histogram)
        .map(|(from, n)| json!({"from_ms": from, "sessions": n}))
        .collect();
    let mut entry: Vec<(String, Entry)> = acc.entry.into_pairs();
    entry.sort_by(|a, b| b.1.sessions.cmp(&a.1.sessions).then_with(|| a.0.cmp(&b.0)));
    entry.truncate(q.top);
    let mut exit: Vec<(String, u64)> = acc.exit.into_pairs();
    exit.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    exit.truncate(q.top);
    let mut out = json!({
        "buckets": labels,
        "total": total.total(),
        "duration_histogram": histogram,
        "entry": entry.into_iter().map(|(v, e)| json!({
            "value": v, "sessions": e.sessions,
            "bounce_rate": num(Stats::ratio(e.bounces, e.sessions)),
        })).collect::<Vec<_>>(),
        "exit": exit.into_iter().map(|(v, n)| json!({"value": v, "sessions": n})).collect::<Vec<_>>(),
    });
    if let (Json::Object(o), Json::Object(a)) = (&mut out, arrays) {
        o.extend(a);
    }
    if !c.breakdown.is_empty() {
        let groups: Vec<(Key, Series)> = acc.keys.list.into_iter().zip(acc.groups).collect();
        crate::groups::render(
            &mut out,
            &c.breakdown,
            c.limit,
            groups,
            |g| Size::Count(g.buckets.values().map(|s| s.sessions).sum()),
            |g| {
                let (mut arrays, total) = g.render(q.unit, first, n);
                arrays["total"] = total.total();
                arrays
            },
        );
    }
    Ok(out)
}

fn check_buckets(n: i64) -> Result<()> {
    if n > crate::events::MAX_BUCKETS as i64 {
        return Err(QueryError::invalid(
            "interval",
            format!(
                "{n} buckets; at most {} — narrow time_range or use a coarser interval",
                crate::events::MAX_BUCKETS
            ),
        ));
    }
    Ok(())
}

fn merge(a: &mut Tallies, b: Tallies) {
    a.all.merge(b.all);
    for (x, y) in a.histogram.iter_mut().zip(b.histogram) {
        *x += y;
    }
    a.entry.merge(b.entry, |x, e| {
        x.sessions += e.sessions;
        x.bounces += e.bounces;
    });
    a.exit.merge(b.exit, |x, n| *x += n);
    for (key, s) in b.keys.list.into_iter().zip(b.groups) {
        let id = a.keys.of(key) as usize;
        if id == a.groups.len() {
            a.groups.push(s);
        } else {
            a.groups[id].merge(s);
        }
    }
    a.cells += b.cells;
    a.samples += b.samples;
}

fn per_user(q: &Sessions, c: &Common, ctx: &Ctx<'_>, acc: &mut Acc<'_>, u: &UserRows<'_>) {
    let Some(profile) = ctx.admit(c, u.uid) else {
        return;
    };
    let Acc { sz, t: acc } = acc;
    sz.user();
    acc.last_bucket = None;
    acc.seen_groups.clear();
    let mut cur: Option<Session> = None;
    let filtered = !c.filter.is_true();
    for (i, &ev) in u.events.iter().enumerate() {
        if q.rules.ignored(ev) {
            continue;
        }
        if filtered
            && !c.filter.eval(&RowProps {
                rows: u,
                i,
                profile,
            })
        {
            continue;
        }
        let t = u.times[i];
        if sz.starts(u, i) {
            if let Some(s) = cur.take() {
                close(q, c, acc, u, profile, s);
            }
            cur = Some(Session::new(i, t));
        }
        if let Some(s) = cur.as_mut() {
            s.end = t;
            s.events += 1;
            if in_set(&q.pages, ev) {
                s.pages += 1;
                s.first_page.get_or_insert(i);
                s.last_page = Some(i);
            }
        }
    }
    if let Some(s) = cur {
        close(q, c, acc, u, profile, s);
    }
}

fn close(
    q: &Sessions,
    c: &Common,
    acc: &mut Tallies,
    u: &UserRows<'_>,
    profile: Option<footprint_storage::profiles::Profile<'_>>,
    mut s: Session,
) {
    s.bounce = s.pages > 0 && s.pages <= 1 && s.duration() < q.bounce_under;
    let b = acc.clock.bucket(q.unit, s.start);
    acc.all.add(b, &s, &mut acc.last_bucket, &mut acc.cells);
    acc.samples += 1;
    let d = s.duration();
    let bin = HISTOGRAM.partition_point(|&lo| lo <= d).saturating_sub(1);
    acc.histogram[bin] += 1;
    if let Some(k) = q.page_prop {
        if let Some(e) = s.first_page.and_then(|r| acc.entry.at(u, k, r)) {
            e.sessions += 1;
            e.bounces += u64::from(s.bounce);
        }
        if let Some(n) = s.last_page.and_then(|r| acc.exit.at(u, k, r)) {
            *n += 1;
        }
    }
    if !c.breakdown.is_empty() {
        let id = acc.keys.id(&c.breakdown, u, s.first_row, profile);
        if id as usize == acc.groups.len() {
            acc.groups.push(Series::default());
        }
        let seen = match acc.seen_groups.iter().position(|g| g.0 == id) {
            Some(k) => k,
            None => {
                acc.seen_groups.push((id, None));
                acc.seen_groups.len() - 1
            }
        };
        acc.groups[id as usize].add(b, &s, &mut acc.seen_groups[seen].1, &mut acc.cells);
        acc.samples += 1;
    }
}
