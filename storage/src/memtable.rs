//! The memtable: events acknowledged but not yet in a segment, grouped by
//! shard in immutable batches so a reader's snapshot is a list of `Arc`s.

use std::sync::Arc;

use crate::value::Value;

/// Rows of one ingest batch that fall in one shard, in arrival order.
#[derive(Debug, Default, Clone)]
pub struct MemBatch {
    /// User id per row.
    pub uids: Vec<u32>,
    /// Event id per row.
    pub events: Vec<u32>,
    /// Time per row.
    pub times: Vec<i64>,
    /// Properties per row: `(property id, value)`.
    pub props: Vec<Vec<(u32, Value)>>,
}

impl MemBatch {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.uids.len()
    }
    /// True if no rows.
    pub fn is_empty(&self) -> bool {
        self.uids.is_empty()
    }
}

/// Per-shard lists of sorted runs.
#[derive(Debug, Clone)]
pub struct Memtable {
    /// `shards[s]` holds the sorted runs of shard `s`, oldest first.
    pub shards: Vec<Vec<Arc<MemRun>>>,
    /// Total rows.
    pub rows: usize,
    /// Approximate heap bytes.
    pub bytes: usize,
}

impl Memtable {
    /// An empty memtable with `n` shards.
    pub fn new(n: usize) -> Self {
        Memtable {
            shards: vec![Vec::new(); n],
            rows: 0,
            bytes: 0,
        }
    }
}

/// A sorted run of memtable rows: the rows of some batches ordered by
/// (user, time), ties in arrival order. Row data stays in the batches; the
/// run holds the sort order and the hot columns, plus a user table like a
/// segment's. Runs are merged as they accumulate (each row is merged
/// O(log n) times), so a query reads a few sorted runs instead of sorting
/// the memtable.
#[derive(Debug, Default)]
pub struct MemRun {
    /// Batches the rows live in.
    pub batches: Vec<Arc<MemBatch>>,
    /// User id per row.
    pub uids: Vec<u32>,
    /// Time per row.
    pub times: Vec<i64>,
    /// Event id per row.
    pub events: Vec<u32>,
    /// Where each row lives: (batch index, row in batch).
    pub loc: Vec<(u32, u32)>,
    /// Distinct users, ascending.
    pub user_ids: Vec<u32>,
    /// Row start per user, plus the row count.
    pub user_starts: Vec<u32>,
}

impl MemRun {
    /// Rows in the run.
    pub fn len(&self) -> usize {
        self.uids.len()
    }

    /// True if no rows.
    pub fn is_empty(&self) -> bool {
        self.uids.is_empty()
    }

    /// Sorts one batch into a run.
    pub fn from_batch(batch: Arc<MemBatch>) -> MemRun {
        let mut order: Vec<u32> = (0..batch.len() as u32).collect();
        order.sort_by_key(|&r| (batch.uids[r as usize], batch.times[r as usize], r));
        let mut run = MemRun {
            uids: order.iter().map(|&r| batch.uids[r as usize]).collect(),
            times: order.iter().map(|&r| batch.times[r as usize]).collect(),
            events: order.iter().map(|&r| batch.events[r as usize]).collect(),
            loc: order.iter().map(|&r| (0, r)).collect(),
            batches: vec![batch],
            ..Default::default()
        };
        run.index_users();
        run
    }

    /// Merges an older and a newer run (ties: older first).
    pub fn merge(a: &MemRun, b: &MemRun) -> MemRun {
        let n = a.len() + b.len();
        let off = a.batches.len() as u32;
        let mut m = MemRun {
            batches: a.batches.iter().chain(&b.batches).cloned().collect(),
            uids: Vec::with_capacity(n),
            times: Vec::with_capacity(n),
            events: Vec::with_capacity(n),
            loc: Vec::with_capacity(n),
            ..Default::default()
        };
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let take_a =
                j >= b.len() || (i < a.len() && (a.uids[i], a.times[i]) <= (b.uids[j], b.times[j]));
            if take_a {
                m.uids.push(a.uids[i]);
                m.times.push(a.times[i]);
                m.events.push(a.events[i]);
                m.loc.push(a.loc[i]);
                i += 1;
            } else {
                m.uids.push(b.uids[j]);
                m.times.push(b.times[j]);
                m.events.push(b.events[j]);
                m.loc.push((b.loc[j].0 + off, b.loc[j].1));
                j += 1;
            }
        }
        m.index_users();
        m
    }

    fn index_users(&mut self) {
        self.user_ids.clear();
        self.user_starts.clear();
        for (i, &u) in self.uids.iter().enumerate() {
            if self.user_ids.last() != Some(&u) {
                self.user_ids.push(u);
                self.user_starts.push(i as u32);
            }
        }
        self.user_starts.push(self.uids.len() as u32);
    }

    /// Property `pid` of row `row`.
    pub fn prop(&self, pid: u32, row: usize) -> Option<&Value> {
        let &(b, r) = self.loc.get(row)?;
        self.batches
            .get(b as usize)?
            .props
            .get(r as usize)?
            .iter()
            .find(|(p, _)| *p == pid)
            .map(|(_, v)| v)
    }
}

/// Adds a batch to a shard's runs, merging runs of similar size.
pub fn push_run(runs: &mut Vec<Arc<MemRun>>, batch: MemBatch) {
    runs.push(Arc::new(MemRun::from_batch(Arc::new(batch))));
    while runs.len() >= 2 {
        let n = runs.len();
        if runs[n - 2].len() > 2 * runs[n - 1].len() {
            break;
        }
        let merged = MemRun::merge(&runs[n - 2], &runs[n - 1]);
        runs.truncate(n - 2);
        runs.push(Arc::new(merged));
    }
}
