//! retention — 留存: cohorts by the calendar bucket of the start event, and
//! for each later period whether the user did the return event in it.
//! Semantics: the conformance folder's SEMANTICS.md §2.

use footprint_storage::UserRows;
use rustc_hash::FxHashMap;
use serde_json::{json, Value as Json};

use crate::error::Result;
use crate::exec::Ctx;
use crate::json::Obj;
use crate::limits::{Metered, Usage, GROUP_CELLS};
use crate::model::{req_ref, Common, EventRef, Key};
use crate::time::{Clock, Unit};

/// Most periods a retention query may ask for.
pub const MAX_PERIODS: u64 = 1_000;

/// A parsed retention query.
pub struct Retention {
    /// The event that puts a user in a cohort.
    pub start: EventRef,
    /// The event that counts as coming back.
    pub ret: EventRef,
    /// Bucket unit.
    pub unit: Unit,
    /// Periods after the cohort bucket to report.
    pub periods: usize,
    /// Anchor each user at their first start event only.
    pub first_time: bool,
    /// `start` (bit 0) and `return` (bit 1) as one matcher.
    pub matcher: crate::model::Matcher,
}

impl Retention {
    /// Reads the retention fields.
    pub fn parse(o: &mut Obj<'_>, ctx: &mut Ctx<'_>) -> Result<Retention> {
        let start = req_ref(o, "start", ctx)?;
        let ret = req_ref(o, "return", ctx)?;
        let unit = match o.opt_str("unit")? {
            None => Unit::Day,
            Some(u) => Unit::parse(u, &o.at("unit"))?,
        };
        let periods = o.opt_uint("periods", MAX_PERIODS)?.unwrap_or(30) as usize;
        let first_time = o.opt_bool("first_time")?.unwrap_or(true);
        let matcher = crate::model::Matcher::new([&start, &ret]);
        Ok(Retention {
            start,
            ret,
            unit,
            periods,
            first_time,
            matcher,
        })
    }
}

/// Per cohort bucket: users and retained counts (index 0 = the cohort).
type Row = Vec<u64>;

struct Acc {
    keys: crate::model::Keys,
    cells: FxHashMap<(u32, i64), Row>,
    /// Entries of a row: periods + 1.
    width: u64,
    clock: Clock,
    starts: Vec<(i64, usize)>,
    returns: Vec<i64>,
}

impl Metered for Acc {
    fn usage(&self) -> Usage {
        Usage {
            cells: self.cells.len() as u64 * self.width + self.keys.list.len() as u64 * GROUP_CELLS,
            samples: 0,
        }
    }
}

/// Runs a retention query.
pub fn run(r: &Retention, c: &Common, ctx: &Ctx<'_>) -> Result<Json> {
    let width = r.periods + 1;
    let acc = ctx.run(
        c.range,
        crate::exec::Prune::by(&r.start),
        || Acc {
            keys: crate::model::Keys::default(),
            cells: FxHashMap::default(),
            width: width as u64,
            clock: Clock::new(c.tz),
            starts: Vec::new(),
            returns: Vec::new(),
        },
        |acc, u| per_user(r, c, ctx, acc, u),
        |mut a, b| {
            let ids: Vec<u32> = b.keys.list.into_iter().map(|k| a.keys.of(k)).collect();
            for ((kid, bucket), row) in b.cells {
                let e = a
                    .cells
                    .entry((ids.get(kid as usize).copied().unwrap_or(0), bucket))
                    .or_insert_with(|| vec![0; width]);
                for (x, y) in e.iter_mut().zip(row) {
                    *x += y;
                }
            }
            a
        },
    )?;
    let mut clock = Clock::new(c.tz);
    // Group rows: breakdown key → bucket → counts.
    let mut by_key: FxHashMap<Key, Vec<(i64, Row)>> = FxHashMap::default();
    let keys = acc.keys.list;
    for ((kid, bucket), row) in acc.cells {
        by_key
            .entry(keys.get(kid as usize).cloned().unwrap_or_default())
            .or_default()
            .push((bucket, row));
    }
    let mut render = |mut rows: Vec<(i64, Row)>| -> Json {
        rows.sort_by_key(|(b, _)| *b);
        let mut total = vec![0u64; width];
        let cohorts: Vec<Json> = rows
            .iter()
            .map(|(b, row)| {
                for (t, x) in total.iter_mut().zip(row) {
                    *t += x;
                }
                json!({"cohort": clock.label(r.unit, *b), "users": row[0], "retained": row})
            })
            .collect();
        json!({"cohorts": cohorts, "total": {"users": total[0], "retained": total}})
    };
    if c.breakdown.is_empty() {
        let rows = by_key.into_values().next().unwrap_or_default();
        return Ok(render(rows));
    }
    // Overall rows are the sum over groups.
    let mut overall: FxHashMap<i64, Row> = FxHashMap::default();
    for rows in by_key.values() {
        for (b, row) in rows {
            let e = overall.entry(*b).or_insert_with(|| vec![0; width]);
            for (x, y) in e.iter_mut().zip(row) {
                *x += y;
            }
        }
    }
    let mut out = render(overall.into_iter().collect());
    let groups: Vec<(Key, Vec<(i64, Row)>)> = by_key.into_iter().collect();
    crate::groups::render(
        &mut out,
        &c.breakdown,
        c.limit,
        groups,
        |rows| crate::groups::Size::Count(rows.iter().map(|(_, r)| r[0]).sum()),
        &mut render,
    );
    Ok(out)
}

fn per_user(r: &Retention, c: &Common, ctx: &Ctx<'_>, acc: &mut Acc, u: &UserRows<'_>) {
    let Some(profile) = ctx.admit(c, u.uid) else {
        return;
    };
    crate::exec::reset(&mut acc.starts);
    crate::exec::reset(&mut acc.returns);
    let (starts, returns, clock) = (&mut acc.starts, &mut acc.returns, &mut acc.clock);
    crate::model::for_each_match(&r.matcher, &c.filter, u, profile, |i, m| {
        let b = clock.bucket(r.unit, u.times[i]);
        if m & 1 != 0 && (!r.first_time || starts.is_empty()) {
            // One cohort per bucket; keep its first start event (rows are in time order).
            if starts.last().is_none_or(|&(lb, _)| lb != b) {
                starts.push((b, i));
            }
        }
        if m & 2 != 0 {
            returns.push(b);
        }
    });
    if acc.starts.is_empty() {
        return;
    }
    acc.returns.dedup();
    let width = r.periods + 1;
    for &(cb, row) in &acc.starts {
        let key = if c.breakdown.is_empty() {
            0
        } else {
            acc.keys.id(&c.breakdown, u, row, profile)
        };
        let cell = acc.cells.entry((key, cb)).or_insert_with(|| vec![0; width]);
        cell[0] += 1;
        let mut last = 0usize;
        for &rb in &acc.returns {
            let k = Clock::periods(r.unit, cb, rb);
            if k >= 1 && (k as usize) < width && k as usize != last {
                cell[k as usize] += 1;
                last = k as usize;
            }
        }
    }
}
