//! The storage layouts every conformance case runs in: all events in the
//! memtable, all flushed to segments of format 2 (with or without the
//! `order` section), or of format 1, and split
//! over segments of both formats plus the memtable. Events keep their list
//! order as arrival order in every layout.

use footprint_engine::storage::SegmentFormat;
use footprint_engine::{Engine, EngineOptions, Event, StoreOptions};

#[derive(Clone, Copy, Debug)]
pub enum Layout {
    /// All events in the memtable.
    Memtable,
    /// One segment per shard (format 2).
    Flushed,
    /// One segment per shard in format 1.
    FlushedV1,
    /// One segment per shard in format 2 as written before its `order`
    /// section (streams merged by time and tie rank).
    FlushedNoOrder,
    /// Two segments per shard (format 1, then 2) and the memtable.
    Split,
}

pub const LAYOUTS: [Layout; 5] = [
    Layout::Memtable,
    Layout::Flushed,
    Layout::FlushedV1,
    Layout::FlushedNoOrder,
    Layout::Split,
];

fn open(dir: &std::path::Path, segment_format: SegmentFormat) -> Engine {
    let opts = EngineOptions {
        store: StoreOptions {
            shards: 3,
            memtable_rows: 1 << 30,
            max_segments_per_shard: 64,
            segment_format,
            ..Default::default()
        },
        background: false,
        query_threads: 2,
        ..Default::default()
    };
    Engine::open(dir, opts).unwrap()
}

pub fn load(events: &[Event], layout: Layout) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let v1 = SegmentFormat::TimeOrder;
    let v2 = SegmentFormat::EventMajor;
    let engine = match layout {
        Layout::Memtable => {
            let engine = open(dir.path(), v2);
            engine.ingest(events.to_vec()).unwrap();
            engine
        }
        Layout::Flushed | Layout::FlushedV1 | Layout::FlushedNoOrder => {
            let format = match layout {
                Layout::FlushedV1 => v1,
                Layout::FlushedNoOrder => SegmentFormat::EventMajorWithoutOrder,
                _ => v2,
            };
            let engine = open(dir.path(), format);
            engine.ingest(events.to_vec()).unwrap();
            engine.flush().unwrap();
            engine
        }
        Layout::Split => {
            let third = events.len().div_ceil(3).max(1);
            let mut engine = open(dir.path(), v1);
            for (i, chunk) in events.chunks(third).enumerate() {
                engine.ingest(chunk.to_vec()).unwrap();
                if i < 2 {
                    engine.flush().unwrap();
                }
                if i == 0 {
                    drop(engine);
                    engine = open(dir.path(), v2);
                }
            }
            engine
        }
    };
    (dir, engine)
}
