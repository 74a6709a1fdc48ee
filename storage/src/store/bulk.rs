//! Bulk loading: all-or-nothing, without the WAL.
//!
//! A bulk load interns names into the store's dictionaries, buffers rows per
//! shard, and writes full buffers as segments that no manifest references
//! yet. `commit` publishes all of them in one atomic manifest replacement;
//! a crash before that leaves only unreferenced files, which the next open
//! deletes. So a load is either wholly visible and durable, or absent.

use std::sync::Arc;

use crate::error::Result;
use crate::event::Event;
use crate::manifest::SegmentEntry;
use crate::memtable::MemBatch;
use crate::segment::Segment;
use crate::store::Store;

/// An open bulk load. Dropping it without `commit` abandons the load (its
/// files are removed at the next open).
pub struct BulkLoad<'a> {
    store: &'a Store,
    buffers: Vec<MemBatch>,
    rows: usize,
    pending: Vec<(SegmentEntry, Arc<Segment>)>,
    flush_rows: usize,
    loaded: u64,
}

impl<'a> BulkLoad<'a> {
    pub(crate) fn new(store: &'a Store, flush_rows: usize) -> Self {
        BulkLoad {
            store,
            buffers: vec![MemBatch::default(); store.shards() as usize],
            rows: 0,
            pending: Vec::new(),
            flush_rows: flush_rows.max(1),
            loaded: 0,
        }
    }

    /// Events added so far.
    pub fn loaded(&self) -> u64 {
        self.loaded
    }

    /// Adds validated events. Writes segments when the buffer is full.
    /// Property names beyond the store's limit are left out, as the result
    /// says.
    pub fn add(&mut self, events: Vec<Event>) -> Result<crate::store::Ingested> {
        self.loaded += events.len() as u64;
        self.rows += events.len();
        let outcome = self.store.intern_into(events, &mut self.buffers);
        if self.rows >= self.flush_rows {
            self.write_buffers()?;
        }
        Ok(outcome)
    }

    fn write_buffers(&mut self) -> Result<()> {
        let buffers = std::mem::replace(
            &mut self.buffers,
            vec![MemBatch::default(); self.store.shards() as usize],
        );
        self.rows = 0;
        for (shard, b) in buffers.into_iter().enumerate() {
            if b.is_empty() {
                continue;
            }
            let data = crate::store::sort_batches(&[Arc::new(b)]);
            self.pending
                .push(self.store.write_new_segment(shard as u32, &data)?);
        }
        Ok(())
    }

    /// Writes what is buffered and publishes every segment of the load in
    /// one atomic manifest update. Returns the number of events loaded.
    pub fn commit(mut self) -> Result<u64> {
        self.write_buffers()?;
        let pending = std::mem::take(&mut self.pending);
        self.store.publish(pending)?;
        Ok(self.loaded)
    }
}
