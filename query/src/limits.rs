//! How much memory a query may hold, one mechanism for every kind.
//!
//! Each shard builds its own partial result (an accumulator); what a query
//! holds is all of them together. Two measures bound it:
//!
//! - **cells**: aggregate slots. An events metric's value in one bucket, a
//!   retention cohort's period, a funnel step's count and time list, an
//!   interval, distribution or cohort group's tallies — for the overall
//!   result and for each breakdown group (groups × buckets × metrics), and
//!   [`GROUP_CELLS`] more per breakdown group for its key. A cell takes 8
//!   to 24 bytes.
//! - **samples**: values kept for exact percentiles and medians (events
//!   `p50`/`p90`/`p99`, interval and distribution statistics, funnel step
//!   times), 4 or 8 bytes each.
//!
//! Both are summed over the shards' accumulators: a group seen in several
//! shards counts once per shard, as it takes memory in each. With the
//! default [`Limits`] a query's partial results stay under about 1 GB.
//!
//! A kind that knows a size before scanning (the events grid, which every
//! shard allocates) checks it first ([`Budget::check`]); the
//! executor meters every accumulator ([`Metered`]) after each user and
//! stops the scan as soon as the shards together exceed a limit. The query
//! then fails with an `invalid` error (HTTP 400) naming the limit and how
//! to narrow the query.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{QueryError, Result};

/// Default for [`Limits::cells`].
pub const MAX_CELLS: u64 = 20_000_000;
/// Default for [`Limits::samples`].
pub const MAX_SAMPLES: u64 = 50_000_000;
/// Cells a breakdown group costs for its key, besides its aggregates (the
/// key is interned twice, ~64 bytes).
pub const GROUP_CELLS: u64 = 8;

/// The most a query may hold; see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most cells, summed over the shards.
    pub cells: u64,
    /// Most samples, summed over the shards.
    pub samples: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            cells: MAX_CELLS,
            samples: MAX_SAMPLES,
        }
    }
}

/// What an accumulator holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Cells.
    pub cells: u64,
    /// Samples.
    pub samples: u64,
}

/// A per-shard accumulator the executor can meter. `usage` is called after
/// every user, so it must be O(1) (keep counters, do not walk).
pub trait Metered {
    /// What the accumulator holds now.
    fn usage(&self) -> Usage;
}

/// The limits of one query and what its shards hold so far.
#[derive(Debug)]
pub struct Budget {
    limits: Limits,
    cells: AtomicU64,
    samples: AtomicU64,
    hint: &'static str,
}

const DEFAULT_HINT: &str =
    "a shorter time_range, a where or users filter, or a breakdown with fewer values";

impl Budget {
    /// A budget with nothing spent.
    pub fn new(limits: Limits) -> Budget {
        Budget {
            limits,
            cells: AtomicU64::new(0),
            samples: AtomicU64::new(0),
            hint: DEFAULT_HINT,
        }
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Says how a query of this kind can be narrowed (for the error).
    pub fn set_hint(&mut self, hint: &'static str) {
        self.hint = hint;
    }

    /// A meter for one shard's accumulator.
    pub fn meter(&self) -> Meter<'_> {
        Meter {
            budget: self,
            published: Usage::default(),
            next: Usage::default(),
        }
    }

    /// Checks a size known before the scan (or a whole result).
    pub fn check(&self, total: Usage) -> Result<()> {
        if total.cells > self.limits.cells {
            return Err(QueryError::invalid(
                "",
                format!(
                    "the query is too large: it needs more than {} cells (the limit: breakdown groups × buckets × metrics, or periods, or steps, over every shard's partial result); narrow it with {}",
                    self.limits.cells, self.hint
                ),
            ));
        }
        if total.samples > self.limits.samples {
            return Err(QueryError::invalid(
                "",
                format!(
                    "the query is too large: it keeps more than {} values for exact percentiles and medians (the limit); narrow it with {}",
                    self.limits.samples, self.hint
                ),
            ));
        }
        Ok(())
    }
}

/// Publishes one accumulator's growth to its [`Budget`]: cheaply, in steps
/// of 1/64 of each limit, so shards seldom touch the shared counters.
#[derive(Debug)]
pub struct Meter<'b> {
    budget: &'b Budget,
    published: Usage,
    next: Usage,
}

impl Meter<'_> {
    /// Takes note of the accumulator's usage `now`; an error once the
    /// shards together exceed a limit.
    #[inline]
    pub fn update(&mut self, now: Usage) -> Result<()> {
        if now.cells < self.next.cells && now.samples < self.next.samples {
            return Ok(());
        }
        self.publish(now)
    }

    /// Publishes everything (at the end of a shard's scan), so whether a
    /// query fails does not depend on how its shards interleaved.
    pub fn finish(&mut self, now: Usage) -> Result<()> {
        self.publish(now)
    }

    fn publish(&mut self, now: Usage) -> Result<()> {
        let b = self.budget;
        let add = |total: &AtomicU64, now: u64, before: u64| {
            let d = now.saturating_sub(before);
            total.fetch_add(d, Ordering::Relaxed).saturating_add(d)
        };
        let total = Usage {
            cells: add(&b.cells, now.cells, self.published.cells),
            samples: add(&b.samples, now.samples, self.published.samples),
        };
        self.published = Usage {
            cells: now.cells.max(self.published.cells),
            samples: now.samples.max(self.published.samples),
        };
        let step = |limit: u64| (limit / 64).max(1);
        self.next = Usage {
            cells: self.published.cells.saturating_add(step(b.limits.cells)),
            samples: self
                .published
                .samples
                .saturating_add(step(b.limits.samples)),
        };
        b.check(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_add_up_and_the_error_names_the_limit() {
        let b = Budget::new(Limits {
            cells: 100,
            samples: 1000,
        });
        let (mut m1, mut m2) = (b.meter(), b.meter());
        let u = |cells, samples| Usage { cells, samples };
        m1.update(u(10, 0)).unwrap();
        m2.update(u(60, 0)).unwrap();
        // Below the step nothing is published, and then the total counts.
        m1.update(u(11, 0)).unwrap();
        m1.finish(u(40, 0)).unwrap();
        let e = m2.finish(u(61, 0)).unwrap_err();
        assert!(e.message.contains("more than 100 cells"), "{}", e.message);
        assert_eq!(e.kind, crate::ErrorKind::Invalid);
        let b = Budget::new(Limits {
            cells: 100,
            samples: 1000,
        });
        let e = b.meter().finish(u(0, 1001)).unwrap_err();
        assert!(e.message.contains("more than 1000 values"), "{}", e.message);
        assert!(b.check(u(100, 1000)).is_ok());
        assert!(b.check(u(101, 0)).is_err());
    }
}
