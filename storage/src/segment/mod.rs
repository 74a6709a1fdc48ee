//! Immutable columnar segments: one shard's rows sorted by (user, time).
//!
//! A segment is one file: a header, one section per column (users offset
//! table, time, event, per-event user bitmaps, one section per property) and
//! a footer that lists the sections with their checksums. The byte layout is
//! in `storage/FORMAT.md`.

mod reader;
mod writer;

pub use reader::{PropColumn, PropReader, Segment, SegmentMeta};
pub use writer::{write_segment, SegmentData};

/// Magic bytes opening a segment file (format version 1).
pub const SEG_MAGIC: &[u8; 8] = b"FPSEG001";
/// Magic bytes closing a segment file.
pub const SEG_END: &[u8; 8] = b"FPSEGEND";
/// Rows per independently compressed chunk of a property's value index.
pub const PROP_CHUNK: usize = 65_536;
