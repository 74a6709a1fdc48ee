//! events — 事件分析 (segmentation / trends): per calendar bucket, how many
//! times an event happened, by how many users, how often per user, and
//! aggregates of a numeric property — for several metrics at once, broken
//! down by an event or user property.
//!
//! Each user's events are read once; a metric's distinct users per bucket
//! are counted with a "last user seen" mark per cell, so no per-bucket user
//! sets are kept.

use footprint_storage::{UserRows, Value};
use serde_json::{json, Map, Value as Json};

use crate::error::{QueryError, Result};
use crate::exec::{number, Ctx, Prune};
use crate::groups::Size;
use crate::json::{array, check_keys, Obj};
use crate::limits::{Limits, Metered, Usage, GROUP_CELLS};
use crate::model::{Common, EventRef, Key, Keys, Matcher};
use crate::time::{Clock, Unit};

/// Most metrics in one query.
pub const MAX_METRICS: usize = 32;
/// Most buckets one query may return.
pub const MAX_BUCKETS: usize = 100_000;

/// How a metric aggregates the events it matches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Agg {
    /// Number of events.
    Count,
    /// Distinct users.
    Users,
    /// Events per user (count / users).
    PerUser,
    /// Sum of a numeric property.
    Sum,
    /// Mean of a numeric property.
    Avg,
    /// Smallest value of a numeric property.
    Min,
    /// Largest value of a numeric property.
    Max,
    /// Exact percentile (linear interpolation) of a numeric property.
    Quantile(u8),
}

const AGGS: &str = "count, users, per_user, sum, avg, min, max, p50, p90, p99";

impl Agg {
    fn parse(s: &str, path: &str) -> Result<Agg> {
        Ok(match s {
            "count" => Agg::Count,
            "users" => Agg::Users,
            "per_user" => Agg::PerUser,
            "sum" => Agg::Sum,
            "avg" => Agg::Avg,
            "min" => Agg::Min,
            "max" => Agg::Max,
            "p50" => Agg::Quantile(50),
            "p90" => Agg::Quantile(90),
            "p99" => Agg::Quantile(99),
            other => {
                let hint = crate::suggest::nearest(other, AGGS.split(", "))
                    .map(|s| format!(" (did you mean \"{s}\"?)"))
                    .unwrap_or_default();
                return Err(QueryError::invalid(
                    path,
                    format!("unknown agg \"{other}\"{hint}; allowed: {AGGS}"),
                ));
            }
        })
    }

    /// The name used in the query and the result.
    pub fn name(self) -> &'static str {
        match self {
            Agg::Count => "count",
            Agg::Users => "users",
            Agg::PerUser => "per_user",
            Agg::Sum => "sum",
            Agg::Avg => "avg",
            Agg::Min => "min",
            Agg::Max => "max",
            Agg::Quantile(50) => "p50",
            Agg::Quantile(90) => "p90",
            Agg::Quantile(_) => "p99",
        }
    }

    fn needs_prop(self) -> bool {
        !matches!(self, Agg::Count | Agg::Users | Agg::PerUser)
    }
}

/// One metric: the events it counts and how.
#[derive(Debug, Clone)]
pub struct Metric {
    /// The events.
    pub event: EventRef,
    /// The aggregate.
    pub agg: Agg,
    /// The numeric property aggregated (sum, avg, min, max, pXX).
    pub prop: Option<String>,
    slot: Option<usize>,
}

/// A parsed events query.
pub struct Events {
    /// The metrics, in result order.
    pub metrics: Vec<Metric>,
    /// Bucket unit; `None` for one `total` bucket.
    pub unit: Option<Unit>,
    matcher: Matcher,
}

impl Events {
    /// Reads the events fields.
    pub fn parse(o: &mut Obj<'_>, ctx: &mut Ctx<'_>) -> Result<Events> {
        let unit = match o.opt_str("interval")? {
            None | Some("day") => Some(Unit::Day),
            Some("minute") => Some(Unit::Minute),
            Some("hour") => Some(Unit::Hour),
            Some("week") => Some(Unit::Week),
            Some("month") => Some(Unit::Month),
            Some("total") => None,
            Some(other) => {
                return Err(QueryError::invalid(
                    o.at("interval"),
                    format!(
                    "unknown interval \"{other}\"; allowed: minute, hour, day, week, month, total"
                ),
                ))
            }
        };
        let mp = o.at("metrics");
        let list = array(o.req("metrics")?, &mp)?;
        if list.is_empty() {
            return Err(QueryError::invalid(mp, "needs at least one metric"));
        }
        if list.len() > MAX_METRICS {
            return Err(QueryError::invalid(
                mp,
                format!("at most {MAX_METRICS} metrics, got {}", list.len()),
            ));
        }
        let mut metrics = Vec::with_capacity(list.len());
        for (i, m) in list.iter().enumerate() {
            let ip = format!("{mp}[{i}]");
            let mut mo = Obj::new(m, &ip)?;
            check_keys(m, &ip, &["event", "where", "agg", "prop"])?;
            let event = EventRef::read(&mut mo, ctx)?;
            let agg = match mo.opt_str("agg")? {
                None => Agg::Count,
                Some(a) => Agg::parse(a, &mo.at("agg"))?,
            };
            let prop = mo.opt_str("prop")?;
            let slot = match (agg.needs_prop(), prop) {
                (true, None) => {
                    return Err(QueryError::invalid(
                        mo.at("prop"),
                        format!(
                            "agg \"{}\" needs a numeric event property: \"prop\": NAME",
                            agg.name()
                        ),
                    ))
                }
                (false, Some(_)) => {
                    return Err(QueryError::invalid(
                        mo.at("prop"),
                        format!(
                            "agg \"{}\" takes no property; sum, avg, min, max, p50, p90 and p99 aggregate one",
                            agg.name()
                        ),
                    ))
                }
                (true, Some("")) => {
                    return Err(QueryError::invalid(mo.at("prop"), "property name is empty"))
                }
                (true, Some(p)) => ctx.slot(p, &mo.at("prop"))?,
                (false, None) => None,
            };
            mo.finish("event, where, agg, prop")?;
            metrics.push(Metric {
                event,
                agg,
                prop: prop.map(str::to_owned),
                slot,
            });
        }
        let matcher = Matcher::new(metrics.iter().map(|m| &m.event));
        Ok(Events {
            metrics,
            unit,
            matcher,
        })
    }

    /// Whether the query reads no times and no row order (see
    /// [`Ctx::order_free`]): one `total` bucket over all time. Each row
    /// adds to the cells of its own breakdown value, and distinct users
    /// are marked per user, so the order of a user's rows does not matter.
    pub fn order_free(&self, c: &Common) -> bool {
        self.unit.is_none() && c.range.is_none()
    }

    /// Users who can count: those who did the one named event every
    /// metric reads, when there is one.
    fn prune(&self) -> Prune {
        let mut known: Option<u32> = None;
        let mut any_known = false;
        for m in &self.metrics {
            match m.event.id {
                None => return Prune::None,
                Some(None) => {}
                Some(Some(ev)) => {
                    if known.is_some_and(|k| k != ev) {
                        return Prune::None;
                    }
                    known = Some(ev);
                    any_known = true;
                }
            }
        }
        match known {
            Some(ev) => Prune::Event(ev),
            None if !any_known => Prune::Nobody,
            None => Prune::None,
        }
    }
}

/// One metric's cells over the buckets (only the vectors its agg needs
/// are allocated).
#[derive(Debug, Clone, Default)]
struct Series {
    count: Vec<u64>,
    users: Vec<u32>,
    /// Last user counted in each cell (`u32::MAX`: none).
    mark: Vec<u32>,
    sum: Vec<f64>,
    /// Values seen per cell (sum, avg, min, max).
    n: Vec<u64>,
    min: Vec<f64>,
    max: Vec<f64>,
    vals: Vec<Vec<f64>>,
    total_users: u64,
    total_mark: u32,
}

impl Series {
    fn new(agg: Agg, n: usize) -> Series {
        let mut s = Series {
            total_mark: u32::MAX,
            ..Series::default()
        };
        match agg {
            Agg::Count => s.count = vec![0; n],
            Agg::Users => {
                s.users = vec![0; n];
                s.mark = vec![u32::MAX; n];
            }
            Agg::PerUser => {
                s.count = vec![0; n];
                s.users = vec![0; n];
                s.mark = vec![u32::MAX; n];
            }
            Agg::Sum | Agg::Avg => {
                s.sum = vec![0.0; n];
                s.n = vec![0; n];
            }
            Agg::Min => {
                s.min = vec![f64::INFINITY; n];
                s.n = vec![0; n];
            }
            Agg::Max => {
                s.max = vec![f64::NEG_INFINITY; n];
                s.n = vec![0; n];
            }
            Agg::Quantile(_) => s.vals = vec![Vec::new(); n],
        }
        s
    }

    #[inline]
    fn add(&mut self, agg: Agg, b: usize, uid: u32, v: Option<f64>) {
        match agg {
            Agg::Count => self.count[b] += 1,
            Agg::Users | Agg::PerUser => {
                if agg == Agg::PerUser {
                    self.count[b] += 1;
                }
                if self.mark[b] != uid {
                    self.mark[b] = uid;
                    self.users[b] += 1;
                }
                if self.total_mark != uid {
                    self.total_mark = uid;
                    self.total_users += 1;
                }
            }
            _ => {
                let Some(x) = v else { return };
                match agg {
                    Agg::Sum | Agg::Avg => self.sum[b] += x,
                    Agg::Min => self.min[b] = self.min[b].min(x),
                    Agg::Max => self.max[b] = self.max[b].max(x),
                    _ => {
                        self.vals[b].push(x);
                        return;
                    }
                }
                self.n[b] += 1;
            }
        }
    }

    fn merge(&mut self, o: Series) {
        fn add<T: Copy + std::ops::AddAssign>(a: &mut [T], b: &[T]) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += *y;
            }
        }
        add(&mut self.count, &o.count);
        add(&mut self.users, &o.users);
        add(&mut self.sum, &o.sum);
        add(&mut self.n, &o.n);
        for (x, y) in self.min.iter_mut().zip(&o.min) {
            *x = x.min(*y);
        }
        for (x, y) in self.max.iter_mut().zip(&o.max) {
            *x = x.max(*y);
        }
        for (x, y) in self.vals.iter_mut().zip(o.vals) {
            x.extend(y);
        }
        self.total_users += o.total_users;
    }

    /// The value of bucket `b`.
    fn value(&self, agg: Agg, b: usize) -> Json {
        if b >= self.len() {
            // A placeholder no merge filled (never rendered: only an
            // overflowed query leaves one, and it fails).
            return Json::Null;
        }
        match agg {
            Agg::Count => json!(self.count[b]),
            Agg::Users => json!(self.users[b]),
            Agg::PerUser => ratio(self.count[b], u64::from(self.users[b])),
            Agg::Sum => number(self.sum[b]),
            Agg::Avg => {
                if self.n[b] == 0 {
                    Json::Null
                } else {
                    number(self.sum[b] / self.n[b] as f64)
                }
            }
            Agg::Min => present(self.n[b], self.min[b]),
            Agg::Max => present(self.n[b], self.max[b]),
            Agg::Quantile(p) => {
                let mut v = self.vals[b].clone();
                percentile(&mut v, p)
            }
        }
    }

    /// The value over all buckets (distinct users over the whole range).
    fn total(&self, agg: Agg) -> Json {
        match self.total_size(agg) {
            Size::Count(n) => json!(n),
            Size::Value(x) => number(x),
            Size::Missing => Json::Null,
        }
    }

    /// The exact total, which also orders breakdown groups.
    fn total_size(&self, agg: Agg) -> Size {
        let count: u64 = self.count.iter().sum();
        let n: u64 = self.n.iter().sum();
        let sum: f64 = self.sum.iter().sum();
        let some = |x: f64| {
            if n == 0 {
                Size::Missing
            } else {
                Size::Value(x)
            }
        };
        match agg {
            Agg::Count => Size::Count(count),
            Agg::Users => Size::Count(self.total_users),
            Agg::PerUser if self.total_users == 0 => Size::Missing,
            Agg::PerUser => Size::Value(count as f64 / self.total_users as f64),
            Agg::Sum => Size::Value(sum),
            Agg::Avg => some(sum / n as f64),
            Agg::Min => some(self.min.iter().copied().fold(f64::INFINITY, f64::min)),
            Agg::Max => some(self.max.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
            Agg::Quantile(p) => {
                let mut all: Vec<f64> = self.vals.iter().flatten().copied().collect();
                all.sort_unstable_by(f64::total_cmp);
                crate::exec::quantile_f64(&all, f64::from(p) / 100.0).into()
            }
        }
    }
}

fn present(n: u64, x: f64) -> Json {
    if n == 0 {
        Json::Null
    } else {
        number(x)
    }
}

fn ratio(a: u64, b: u64) -> Json {
    if b == 0 {
        Json::Null
    } else {
        number(a as f64 / b as f64)
    }
}

/// Exact percentile with linear interpolation between the nearest ranks
/// (ClickHouse `quantileExactInclusive`, DuckDB `quantile_cont`).
fn percentile(v: &mut [f64], p: u8) -> Json {
    if v.is_empty() {
        return Json::Null;
    }
    v.sort_unstable_by(f64::total_cmp);
    crate::exec::quantile_f64(v, f64::from(p) / 100.0).map_or(Json::Null, number)
}

fn numeric(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

struct Acc {
    clock: Clock,
    /// Overall series, one per metric.
    all: Vec<Series>,
    keys: Keys,
    /// Per breakdown key id `k`: series `k * metrics .. (k + 1) * metrics`.
    groups: Vec<Series>,
    /// Cells and percentile samples held, checked against `limits` as they
    /// grow: one user's rows can add many groups of a whole grid each.
    cells: u64,
    samples: u64,
    limits: Limits,
    /// A limit was reached: this accumulator stopped growing and the
    /// query fails (the executor sees `usage` over the limit).
    overflow: bool,
}

impl Metered for Acc {
    fn usage(&self) -> Usage {
        Usage {
            cells: self.cells,
            samples: self.samples,
        }
    }
}

/// The bucket grid: first bucket and how many.
#[derive(Clone, Copy)]
struct Grid {
    unit: Option<Unit>,
    first: i64,
    n: usize,
}

/// Runs an events query.
pub fn run(q: &Events, c: &Common, ctx: &Ctx<'_>) -> Result<Json> {
    let mut clock = Clock::new(c.tz);
    // The x axis: every bucket of the time range, or of the data.
    let extent = match c.range {
        // An empty range has no buckets.
        Some((from, to)) if from >= to => None,
        Some((from, to)) => Some((from, to - 1)),
        None => ctx.time_extent()?,
    };
    let grid = match (q.unit, extent) {
        (None, _) => Grid {
            unit: None,
            first: 0,
            n: 1,
        },
        (Some(unit), None) => Grid {
            unit: Some(unit),
            first: 0,
            n: 0,
        },
        (Some(unit), Some((lo, hi))) => {
            let first = clock.bucket(unit, lo);
            let n = Clock::periods(unit, first, clock.bucket(unit, hi)) + 1;
            if n > MAX_BUCKETS as i64 {
                return Err(QueryError::invalid(
                    "interval",
                    format!(
                        "{n} {} buckets over {}; at most {MAX_BUCKETS} — narrow time_range or use a coarser interval",
                        unit_name(unit),
                        if c.range.is_some() { "time_range" } else { "the stored events (no time_range)" }
                    ),
                ));
            }
            Grid {
                unit: Some(unit),
                first,
                n: n.max(0) as usize,
            }
        }
    };
    let nm = q.metrics.len();
    // Every shard holds the whole grid of every metric.
    let grid_cells = (nm * grid.n) as u64;
    ctx.budget().check(Usage {
        cells: grid_cells.saturating_mul(ctx.shards().max(1) as u64),
        samples: 0,
    })?;
    let limits = ctx.budget().limits();
    let init = || Acc {
        clock: Clock::new(c.tz),
        all: q
            .metrics
            .iter()
            .map(|m| Series::new(m.agg, grid.n))
            .collect(),
        keys: Keys::default(),
        groups: Vec::new(),
        cells: grid_cells,
        samples: 0,
        limits,
        overflow: false,
    };
    let acc = if grid.n == 0 {
        init()
    } else {
        ctx.run(
            c.range,
            q.prune(),
            init,
            |acc, u| per_user(q, c, ctx, grid, acc, u),
            |a, b| merge(a, b, q),
        )?
    };
    // The executor stops an overflowing scan; a merged result is checked
    // too, so no partial answer ever passes for a whole one.
    ctx.budget().check(acc.usage())?;
    if acc.overflow {
        return Err(QueryError::invalid(
            "",
            "the query is too large for its memory limits",
        ));
    }
    let labels: Vec<String> = match grid.unit {
        None => vec!["total".to_owned()],
        Some(unit) => (0..grid.n)
            .map(|k| clock.label(unit, Clock::advance(unit, grid.first, k as i64)))
            .collect(),
    };
    let render = |series: Vec<Series>| -> Json {
        let list: Vec<Json> = q
            .metrics
            .iter()
            .zip(&series)
            .map(|(m, s)| {
                let mut o = Map::new();
                o.insert("event".into(), json!(m.event.name));
                o.insert("agg".into(), json!(m.agg.name()));
                if let Some(p) = &m.prop {
                    o.insert("prop".into(), json!(p));
                }
                let values: Vec<Json> = (0..grid.n).map(|b| s.value(m.agg, b)).collect();
                o.insert("values".into(), Json::Array(values));
                o.insert("total".into(), s.total(m.agg));
                Json::Object(o)
            })
            .collect();
        Json::Array(list)
    };
    let mut out = json!({
        "interval": grid.unit.map_or("total", unit_name),
        "buckets": labels,
        "series": render(acc.all),
    });
    if !c.breakdown.is_empty() {
        let mut it = acc.groups.into_iter();
        let groups: Vec<(Key, Vec<Series>)> = acc
            .keys
            .list
            .into_iter()
            .map(|k| (k, it.by_ref().take(nm).collect()))
            .collect();
        let agg0 = q.metrics[0].agg;
        crate::groups::render(
            &mut out,
            &c.breakdown,
            c.limit,
            groups,
            |s| s.first().map_or(Size::Missing, |s| s.total_size(agg0)),
            |s| json!({ "series": render(s) }),
        );
    }
    Ok(out)
}

/// The name of an interval unit in queries and results.
pub fn unit_name(u: Unit) -> &'static str {
    match u {
        Unit::Minute => "minute",
        Unit::Hour => "hour",
        Unit::Day => "day",
        Unit::Week => "week",
        Unit::Month => "month",
    }
}

fn per_user(q: &Events, c: &Common, ctx: &Ctx<'_>, grid: Grid, acc: &mut Acc, u: &UserRows<'_>) {
    if acc.overflow {
        return;
    }
    let Some(profile) = ctx.admit(c, u.uid) else {
        return;
    };
    let uid = u.uid;
    let nm = q.metrics.len();
    let breakdown = !c.breakdown.is_empty();
    let Acc {
        clock,
        all,
        keys,
        groups,
        cells,
        samples,
        limits,
        overflow,
    } = acc;
    let group_cells = (nm * grid.n) as u64 + GROUP_CELLS;
    crate::model::for_each_match(&q.matcher, &c.filter, u, profile, |i, mask| {
        if *overflow {
            return;
        }
        let b = match grid.unit {
            None => 0,
            Some(unit) => {
                let k = Clock::periods(unit, grid.first, clock.bucket(unit, u.times[i]));
                if k < 0 || k as usize >= grid.n {
                    return;
                }
                k as usize
            }
        };
        let base = if breakdown {
            let key = keys.id(&c.breakdown, u, i, profile) as usize * nm;
            if key >= groups.len() {
                *cells += group_cells;
                if *cells > limits.cells {
                    *overflow = true;
                    return;
                }
                groups.extend(q.metrics.iter().map(|m| Series::new(m.agg, grid.n)));
            }
            Some(key)
        } else {
            None
        };
        let mut bits = mask;
        while bits != 0 {
            let m = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let metric = &q.metrics[m];
            let v = metric.slot.and_then(|k| u.prop(k, i)).and_then(numeric);
            if v.is_some() && matches!(metric.agg, Agg::Quantile(_)) {
                // Kept in the overall series and the group's.
                *samples += 1 + u64::from(base.is_some());
                if *samples > limits.samples {
                    *overflow = true;
                    return;
                }
            }
            all[m].add(metric.agg, b, uid, v);
            if let Some(base) = base {
                groups[base + m].add(metric.agg, b, uid, v);
            }
        }
    });
}

fn merge(mut a: Acc, b: Acc, q: &Events) -> Acc {
    if a.overflow || b.overflow {
        // The query fails with the limit's error. An accumulator that
        // overflowed holds a key without series, so its groups are not
        // merged (nor indexed) at all; its usage, over the limit, stays.
        a.overflow = true;
        a.cells = a.cells.max(b.cells);
        a.samples = a.samples.max(b.samples);
        a.keys = Keys::default();
        a.groups = Vec::new();
        return a;
    }
    a.samples += b.samples;
    let nm = q.metrics.len();
    for (x, y) in a.all.iter_mut().zip(b.all) {
        x.merge(y);
    }
    let mut it = b.groups.into_iter();
    for key in b.keys.list {
        let id = a.keys.of(key) as usize;
        let end = (id + 1) * nm;
        if end > a.groups.len() {
            a.cells += (nm * a.all.first().map_or(0, |s| s.len())) as u64 + GROUP_CELLS;
            if a.cells > a.limits.cells {
                a.overflow = true;
            }
            // Placeholders, replaced below by `b`'s series.
            a.groups.resize_with(end, Series::default);
        }
        for dst in &mut a.groups[id * nm..end] {
            let Some(s) = it.next() else { break };
            if dst.is_empty() {
                *dst = s;
            } else {
                dst.merge(s);
            }
        }
    }
    a
}

impl Series {
    /// Buckets allocated (0 for a placeholder awaiting a merge).
    fn len(&self) -> usize {
        self.count
            .len()
            .max(self.users.len())
            .max(self.n.len())
            .max(self.vals.len())
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::Filter;

    fn query(nm: usize) -> Events {
        let metrics: Vec<Metric> = (0..nm)
            .map(|_| Metric {
                event: EventRef {
                    name: "e".into(),
                    id: Some(Some(0)),
                    filter: Filter::True,
                },
                agg: Agg::Count,
                prop: None,
                slot: None,
            })
            .collect();
        let matcher = Matcher::new(metrics.iter().map(|m| &m.event));
        Events {
            metrics,
            unit: None,
            matcher,
        }
    }

    /// An accumulator with groups for keys `keys`, and — when it
    /// overflowed — one more key interned without series, as `per_user`
    /// leaves it when a new group would exceed the cap.
    fn acc(q: &Events, keys: &[&str], overflowed: Option<&str>) -> Acc {
        let nm = q.metrics.len();
        let mut a = Acc {
            clock: Clock::new(chrono_tz::Tz::UTC),
            all: q.metrics.iter().map(|m| Series::new(m.agg, 1)).collect(),
            keys: Keys::default(),
            groups: Vec::new(),
            cells: nm as u64,
            samples: 0,
            limits: Limits::default(),
            overflow: false,
        };
        for k in keys {
            a.keys.of(vec![Some(Value::Str((*k).into()))]);
            a.groups
                .extend(q.metrics.iter().map(|m| Series::new(m.agg, 1)));
            a.cells += nm as u64 + GROUP_CELLS;
        }
        if let Some(k) = overflowed {
            a.keys.of(vec![Some(Value::Str(k.into()))]);
            a.overflow = true;
        }
        a
    }

    /// Issue 11, defect 6: two shards that overflowed the cell cap used
    /// to panic ("index out of bounds") when merged; any merge order of
    /// overflowed and healthy accumulators now gives an overflowed one.
    #[test]
    fn merging_overflowed_accumulators_does_not_panic() {
        let q = query(3);
        let make = || {
            vec![
                acc(&q, &["a", "b"], Some("x")),
                acc(&q, &["c"], Some("y")),
                acc(&q, &["a", "d"], None),
                acc(&q, &["y", "x", "b"], None),
            ]
        };
        for first in 0..4 {
            let mut list = make();
            let mut out = list.remove(first);
            for b in list {
                out = merge(out, b, &q);
            }
            assert!(out.overflow, "starting from {first}");
            assert_eq!(out.groups.len(), out.keys.list.len() * 3);
        }
        // Healthy accumulators merge every group, new keys included.
        let out = merge(
            acc(&q, &["a", "d"], None),
            acc(&q, &["y", "x", "a"], None),
            &q,
        );
        assert!(!out.overflow);
        assert_eq!(out.keys.list.len(), 4);
        assert_eq!(out.groups.len(), 12);
        assert!(out.groups.iter().all(|s| s.len() == 1));
    }
}
