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

/// Per-shard lists of batches.
#[derive(Debug, Clone)]
pub struct Memtable {
    /// `shards[s]` holds the batches of shard `s`.
    pub shards: Vec<Vec<Arc<MemBatch>>>,
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
