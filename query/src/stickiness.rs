//! stickiness — 粘性 / 连续活跃: how many users were active in exactly k
//! buckets of the range (PostHog), in k or more (`cumulative`, Mixpanel's
//! frequency), or with a longest run of k consecutive active buckets
//! (`consecutive`). ANALYSES.md "stickiness".

use footprint_storage::UserRows;
use serde_json::{json, Value as Json};

use crate::error::{QueryError, Result};
use crate::exec::{Ctx, Prune};
use crate::grid::{parse_interval, Grid};
use crate::json::Obj;
use crate::lifecycle::{no_breakdown, opt_ref};
use crate::limits::{Metered, Usage};
use crate::model::{Common, EventRef, Matcher};
use crate::time::{Clock, Unit};

/// A comparison of a bucket's event count with a number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Criteria {
    /// The operator.
    pub op: Op,
    /// The number compared with.
    pub value: f64,
}

/// A criteria operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
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

impl Criteria {
    /// Whether a bucket with `count` events is active (it has some and
    /// the count satisfies the criteria: NOTES.md §38).
    pub fn holds(self, count: u64) -> bool {
        let c = count as f64;
        count >= 1
            && match self.op {
                Op::Eq => c == self.value,
                Op::Ne => c != self.value,
                Op::Gt => c > self.value,
                Op::Gte => c >= self.value,
                Op::Lt => c < self.value,
                Op::Lte => c <= self.value,
            }
    }

    fn parse(v: &Json, path: &str) -> Result<Criteria> {
        let mut o = Obj::new(v, path)?;
        let op_path = o.at("op");
        let op = match o.opt_str("op")?.unwrap_or("gte") {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            other => {
                return Err(QueryError::invalid(
                    op_path,
                    format!("unknown op \"{other}\" (allowed: eq, ne, gt, gte, lt, lte)"),
                ))
            }
        };
        let vp = o.at("value");
        let value = match o.opt("value") {
            None => 1.0,
            Some(Json::Number(x)) => x
                .as_f64()
                .ok_or_else(|| QueryError::invalid(&vp, "expected a number"))?,
            Some(other) => {
                return Err(QueryError::invalid(
                    vp,
                    format!("expected a number, got {}", crate::json::kind(other)),
                ))
            }
        };
        o.finish("op, value")?;
        Ok(Criteria { op, value })
    }
}

/// A parsed stickiness query.
pub struct Stickiness {
    /// The activity event (`$any` by default).
    pub event: EventRef,
    /// Bucket unit.
    pub unit: Unit,
    /// When a bucket counts as active.
    pub criteria: Criteria,
    /// Count users with k or more instead of exactly k.
    pub cumulative: bool,
    /// k is the longest run of consecutive active buckets.
    pub consecutive: bool,
    matcher: Matcher,
}

/// Query fields of this kind.
pub const FIELDS: [&str; 5] = ["event", "interval", "criteria", "cumulative", "consecutive"];

impl Stickiness {
    /// Reads the stickiness fields.
    pub fn parse(o: &mut Obj<'_>, ctx: &mut Ctx<'_>, c: &Common) -> Result<Stickiness> {
        no_breakdown(c, "stickiness")?;
        let event = opt_ref(o, "event", ctx)?;
        let unit = parse_interval(o, "interval")?;
        let criteria = match o.opt("criteria") {
            None => Criteria {
                op: Op::Gte,
                value: 1.0,
            },
            Some(v) => Criteria::parse(v, &o.at("criteria"))?,
        };
        let cumulative = o.opt_bool("cumulative")?.unwrap_or(false);
        let consecutive = o.opt_bool("consecutive")?.unwrap_or(false);
        Ok(Stickiness {
            matcher: Matcher::new([&event]),
            event,
            unit,
            criteria,
            cumulative,
            consecutive,
        })
    }
}

struct Acc {
    clock: Clock,
    /// Users per k (index k − 1), before making it cumulative.
    counts: Vec<u64>,
}

impl Metered for Acc {
    fn usage(&self) -> Usage {
        Usage {
            cells: self.counts.len() as u64,
            samples: 0,
        }
    }
}

/// Runs a stickiness query.
pub fn run(q: &Stickiness, c: &Common, ctx: &Ctx<'_>) -> Result<Json> {
    let grid = Grid::new(q.unit, c, ctx, "interval")?;
    let init = || Acc {
        clock: Clock::new(c.tz),
        counts: vec![0; grid.n],
    };
    let acc = if grid.n == 0 {
        init()
    } else {
        ctx.run(
            c.range,
            Prune::by(&q.event),
            init,
            |acc, u| per_user(q, c, ctx, grid, acc, u),
            |mut a, b| {
                for (x, y) in a.counts.iter_mut().zip(b.counts) {
                    *x += y;
                }
                a
            },
        )?
    };
    let mut counts = acc.counts;
    if q.cumulative {
        // Users with k or more: a suffix sum.
        for k in (0..counts.len().saturating_sub(1)).rev() {
            counts[k] += counts[k + 1];
        }
    }
    Ok(json!({ "counts": counts }))
}

fn per_user(
    q: &Stickiness,
    c: &Common,
    ctx: &Ctx<'_>,
    grid: Grid,
    acc: &mut Acc,
    u: &UserRows<'_>,
) {
    let Some(profile) = ctx.admit(c, u.uid) else {
        return;
    };
    // The current bucket and its count; the user's active buckets so far,
    // the current run of consecutive ones and the longest.
    let (mut cur, mut count) = (usize::MAX, 0u64);
    let (mut active, mut run, mut best, mut last) = (0usize, 0usize, 0usize, usize::MAX);
    let mut close = |b: usize, count: u64| {
        if b == usize::MAX || !q.criteria.holds(count) {
            return;
        }
        active += 1;
        run = if last != usize::MAX && last + 1 == b {
            run + 1
        } else {
            1
        };
        best = best.max(run);
        last = b;
    };
    crate::model::for_each_match(&q.matcher, &c.filter, u, profile, |i, _| {
        let Some(b) = grid.index(&mut acc.clock, u.times[i]) else {
            return;
        };
        if b != cur {
            close(cur, count);
            cur = b;
            count = 0;
        }
        count += 1;
    });
    close(cur, count);
    let k = if q.consecutive { best } else { active };
    if k > 0 {
        acc.counts[k - 1] += 1;
    }
}
