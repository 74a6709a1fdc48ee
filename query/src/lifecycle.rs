//! lifecycle — 用户生命周期: per bucket, the active users who are new,
//! returning or resurrecting, and the users going dormant (ANALYSES.md
//! "lifecycle", PostHog's lifecycle). "New" looks at the user's whole
//! history (their first matching event ever, or a profile time with
//! `new_by`), and the bucket before the range is read.

use footprint_storage::{UserRows, Value};
use serde_json::{json, Value as Json};

use crate::error::{QueryError, Result};
use crate::exec::{Ctx, Prune};
use crate::grid::{parse_interval, Grid};
use crate::json::Obj;
use crate::limits::{Metered, Usage};
use crate::model::{Common, EventRef, Matcher};
use crate::time::{Clock, Unit};

/// A parsed lifecycle query.
pub struct Lifecycle {
    /// The activity event (`$any` by default).
    pub event: EventRef,
    /// Bucket unit.
    pub unit: Unit,
    /// A profile property holding the time the user became new (PostHog's
    /// `created_at`); without it, the user's first matching event.
    pub new_by: Option<String>,
    matcher: Matcher,
}

/// Query fields of this kind.
pub const FIELDS: [&str; 3] = ["event", "interval", "new_by"];

/// `{"event": "$any"}`.
pub fn any_event() -> EventRef {
    EventRef {
        name: "$any".into(),
        id: None,
        filter: crate::filter::Filter::True,
    }
}

/// Reads an optional event reference, `$any` when absent.
pub fn opt_ref(o: &mut Obj<'_>, key: &'static str, ctx: &mut Ctx<'_>) -> Result<EventRef> {
    match o.opt(key) {
        None => Ok(any_event()),
        Some(v) => EventRef::parse(v, &o.at(key), ctx),
    }
}

/// Refuses a breakdown (these kinds report one series).
pub fn no_breakdown(c: &Common, kind: &str) -> Result<()> {
    if c.breakdown.is_empty() {
        return Ok(());
    }
    Err(QueryError::invalid(
        "breakdown",
        format!("{kind} takes no breakdown; filter with where or users instead"),
    ))
}

impl Lifecycle {
    /// Reads the lifecycle fields.
    pub fn parse(o: &mut Obj<'_>, ctx: &mut Ctx<'_>, c: &Common) -> Result<Lifecycle> {
        no_breakdown(c, "lifecycle")?;
        let event = opt_ref(o, "event", ctx)?;
        let unit = parse_interval(o, "interval")?;
        let new_by = match o.opt("new_by") {
            None => None,
            Some(v) => {
                let p = o.at("new_by");
                let mut no = Obj::new(v, &p)?;
                let name = no.req_str("user_prop")?.to_owned();
                no.finish("user_prop")?;
                ctx.need_profiles();
                Some(name)
            }
        };
        Ok(Lifecycle {
            matcher: Matcher::new([&event]),
            event,
            unit,
            new_by,
        })
    }
}

struct Acc {
    clock: Clock,
    new: Vec<u64>,
    returning: Vec<u64>,
    resurrecting: Vec<u64>,
    dormant: Vec<u64>,
    /// This user's active buckets (offsets from the first; −1 is the
    /// bucket before the range), ascending and distinct.
    active: Vec<i64>,
}

impl Metered for Acc {
    fn usage(&self) -> Usage {
        Usage {
            cells: 4 * self.new.len() as u64,
            samples: 0,
        }
    }
}

/// Runs a lifecycle query.
pub fn run(q: &Lifecycle, c: &Common, ctx: &Ctx<'_>) -> Result<Json> {
    let grid = Grid::new(q.unit, c, ctx, "interval")?;
    let n = grid.n;
    let zeros = vec![0u64; n];
    let init = || Acc {
        clock: Clock::new(c.tz),
        new: zeros.clone(),
        returning: zeros.clone(),
        resurrecting: zeros.clone(),
        dormant: zeros.clone(),
        active: Vec::new(),
    };
    // History counts for "new": read everything before the range's end.
    let scan = c.range.map(|(_, to)| (i64::MIN, to));
    let acc = if n == 0 {
        init()
    } else {
        ctx.run(
            scan,
            Prune::by(&q.event),
            init,
            |acc, u| per_user(q, c, ctx, grid, acc, u),
            |mut a, b| {
                for (x, y) in [
                    (&mut a.new, b.new),
                    (&mut a.returning, b.returning),
                    (&mut a.resurrecting, b.resurrecting),
                    (&mut a.dormant, b.dormant),
                ] {
                    for (p, v) in x.iter_mut().zip(y) {
                        *p += v;
                    }
                }
                a
            },
        )?
    };
    let mut clock = Clock::new(c.tz);
    let neg: Vec<i64> = acc.dormant.iter().map(|&d| -(d as i64)).collect();
    Ok(json!({
        "buckets": grid.labels(&mut clock),
        "new": acc.new,
        "returning": acc.returning,
        "resurrecting": acc.resurrecting,
        "dormant": neg,
    }))
}

/// A profile time: epoch milliseconds or an RFC 3339 string.
fn profile_time(v: &Value) -> Option<i64> {
    match v {
        Value::Int(ms) => Some(*ms),
        Value::Float(x) if x.fract() == 0.0 && x.abs() < 9e15 => Some(*x as i64),
        Value::Str(s) => footprint_storage::parse::parse_time_str(s).ok(),
        _ => None,
    }
}

fn per_user(q: &Lifecycle, c: &Common, ctx: &Ctx<'_>, grid: Grid, acc: &mut Acc, u: &UserRows<'_>) {
    let Some(profile) = ctx.admit(c, u.uid) else {
        return;
    };
    let mut first: Option<i64> = None;
    acc.active.clear();
    let n = grid.n as i64;
    crate::model::for_each_match(&q.matcher, &c.filter, u, profile, |i, _| {
        let t = u.times[i];
        let k = grid.offset(&mut acc.clock, t);
        first.get_or_insert(k);
        // Activity in a range bucket comes only from events inside the
        // range; the bucket before it is read in full.
        let inside = c.range.is_none_or(|(from, to)| from <= t && t < to);
        if ((inside && (0..n).contains(&k)) || k == -1) && acc.active.last() != Some(&k) {
            acc.active.push(k);
        }
    });
    let Some(mut first) = first else { return };
    if let Some(name) = &q.new_by {
        if let Some(t) = profile.and_then(|p| p.get(name)).and_then(profile_time) {
            first = grid.offset(&mut acc.clock, t);
        }
    }
    let mut prev: Option<i64> = None;
    for &k in &acc.active {
        if k >= 0 {
            let b = k as usize;
            if k == first {
                acc.new[b] += 1;
            } else if prev == Some(k - 1) {
                acc.returning[b] += 1;
            } else {
                acc.resurrecting[b] += 1;
            }
        }
        prev = Some(k);
        // Dormant in the next bucket unless active there.
        let next = k + 1;
        if (0..n).contains(&next) && !acc.active.contains(&next) {
            acc.dormant[next as usize] += 1;
        }
    }
}
