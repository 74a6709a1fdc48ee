//! The calendar buckets of a query's `time_range` (or of the stored events
//! without one) for the kinds that report per bucket or count buckets:
//! lifecycle, stickiness, funnel trends.

use serde_json::Value as Json;

use crate::error::{QueryError, Result};
use crate::events::MAX_BUCKETS;
use crate::exec::Ctx;
use crate::json::Obj;
use crate::model::Common;
use crate::time::{Clock, Unit};

/// Reads an `interval` field: `hour`, `day` (the default), `week`, `month`.
pub fn parse_interval(o: &mut Obj<'_>, key: &'static str) -> Result<Unit> {
    match o.opt_str(key)? {
        None => Ok(Unit::Day),
        Some(s) => Unit::parse(s, &o.at(key)),
    }
}

/// Every bucket from the bucket of `from` to the bucket of `to − 1 ms`.
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    /// Bucket unit.
    pub unit: Unit,
    /// The first bucket ([`Clock::bucket`]).
    pub first: i64,
    /// How many buckets.
    pub n: usize,
}

impl Grid {
    /// The buckets of `c.range`, or of the stored events without one;
    /// `path` names the interval in the error when there are too many.
    pub fn new(unit: Unit, c: &Common, ctx: &Ctx<'_>, path: &str) -> Result<Grid> {
        let extent = match c.range {
            Some((from, to)) if from >= to => None,
            Some((from, to)) => Some((from, to - 1)),
            None => ctx.time_extent()?,
        };
        let Some((lo, hi)) = extent else {
            return Ok(Grid {
                unit,
                first: 0,
                n: 0,
            });
        };
        let mut clock = Clock::new(c.tz);
        let first = clock.bucket(unit, lo);
        let n = Clock::periods(unit, first, clock.bucket(unit, hi)) + 1;
        if n > MAX_BUCKETS as i64 {
            return Err(QueryError::invalid(
                path,
                format!("{n} buckets; at most {MAX_BUCKETS}: narrow time_range or use a coarser interval"),
            ));
        }
        Ok(Grid {
            unit,
            first,
            n: n.max(0) as usize,
        })
    }

    /// Buckets from the first to the bucket of `t` (negative before it).
    #[inline]
    pub fn offset(&self, clock: &mut Clock, t: i64) -> i64 {
        Clock::periods(self.unit, self.first, clock.bucket(self.unit, t))
    }

    /// The bucket index of `t`, `None` outside the grid.
    #[inline]
    pub fn index(&self, clock: &mut Clock, t: i64) -> Option<usize> {
        let k = self.offset(clock, t);
        (0..self.n as i64).contains(&k).then_some(k as usize)
    }

    /// The labels of the buckets (as retention and events print them).
    pub fn labels(&self, clock: &mut Clock) -> Vec<Json> {
        (0..self.n as i64)
            .map(|k| Json::String(clock.label(self.unit, Clock::advance(self.unit, self.first, k))))
            .collect()
    }
}
