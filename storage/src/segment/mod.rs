//! Immutable columnar segments: one shard's rows, by user and time.
//!
//! A segment is one file: a header, one section per column (users offset
//! table, per-event user bitmaps, the rows' times and events, one section
//! per property) and a footer that lists the sections with their
//! checksums. Version 1 keeps rows in (user, time) order; version 2 (the
//! default) keeps one stream per event, each in (user, time) order. The
//! byte layout is in `storage/FORMAT.md`.

mod reader;
mod writer;

pub use reader::{PropColumn, PropReader, Segment, SegmentMeta, StreamMeta, StreamReaders};
pub use writer::{write_segment, SegmentData, SegmentFormat};

/// Magic bytes opening a segment file (format version 1).
pub const SEG_MAGIC: &[u8; 8] = b"FPSEG001";
/// Magic bytes opening a segment file of format version 2 (event streams).
pub const SEG_MAGIC_V2: &[u8; 8] = b"FPSEG002";
/// Magic bytes closing a segment file.
pub const SEG_END: &[u8; 8] = b"FPSEGEND";
/// Rows per independently compressed chunk of a property's value index.
pub const PROP_CHUNK: usize = 65_536;

#[cfg(test)]
mod tests;
