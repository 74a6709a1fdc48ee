//! Reading a segment file through a memory map.

use std::path::{Path, PathBuf};

use memmap2::Mmap;
use roaring::RoaringBitmap;

use super::{SegmentFormat, SEG_END, SEG_MAGIC, SEG_MAGIC_V2};
use crate::bitpack;
use crate::codec::{Dec, DecodeError};
use crate::error::{Error, Result};
use crate::value::Value;

/// Facts from a segment's footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentMeta {
    /// The shard the rows belong to.
    pub shard: u32,
    /// Number of rows.
    pub rows: u64,
    /// Number of distinct users.
    pub users: u64,
    /// Smallest event time.
    pub min_time: i64,
    /// Largest event time.
    pub max_time: i64,
}

#[derive(Debug, Clone)]
struct Section {
    name: String,
    offset: usize,
    len: usize,
}

/// An open, verified segment.
#[derive(Debug)]
pub struct Segment {
    path: PathBuf,
    map: Mmap,
    sections: Vec<Section>,
    /// Indexes of `sections` by name, for a binary search (a segment can
    /// hold thousands of property sections).
    by_name: Vec<u32>,
    meta: SegmentMeta,
    /// Distinct user ids, ascending.
    user_ids: Vec<u32>,
    /// Row start of each user; one extra entry holds the row count.
    user_starts: Vec<u32>,
    format: SegmentFormat,
    /// Version 2: the event streams, by ascending event id.
    streams: Vec<StreamMeta>,
}

/// One event's stream in a version 2 segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamMeta {
    /// The event id.
    pub event: u32,
    /// Row number of the stream's first row (streams follow each other).
    pub start: usize,
    /// Rows in the stream.
    pub rows: usize,
}

/// Readers of one event stream: per (user, event) pair the user's index in
/// the users table (delta coded) and its row count; per row the time delta
/// and the tie rank.
pub struct StreamReaders<'a> {
    /// User index deltas (the first absolute).
    pub users: bitpack::BlockReader<'a>,
    /// Rows per pair.
    pub counts: bitpack::BlockReader<'a>,
    /// Time deltas (a pair's first row relative to the segment minimum).
    pub time: bitpack::BlockReader<'a>,
    /// Rank among the user's rows of the same time.
    pub tie: bitpack::BlockReader<'a>,
}

/// A decoded property column: `values[idx[row] - 1]`, or absent when `idx[row] == 0`.
#[derive(Debug, Clone, Default)]
pub struct PropColumn {
    /// Distinct values.
    pub values: Vec<Value>,
    /// Per-row index into `values`, 1-based; 0 = absent.
    pub idx: Vec<u32>,
}

impl PropColumn {
    /// The value at `row`, if present.
    pub fn get(&self, row: usize) -> Option<&Value> {
        match self.idx.get(row).copied() {
            None | Some(0) => None,
            Some(i) => self.values.get(i as usize - 1),
        }
    }
}

impl Segment {
    /// Drops the whole pages of `part` (a slice of this segment's bytes,
    /// e.g. the part of a column a scan has passed) from the resident set.
    pub fn release_part(&self, part: &[u8]) {
        let base = self.map.as_ptr() as usize;
        let at = part.as_ptr() as usize;
        if at >= base && at + part.len() <= base + self.map.len() {
            crate::mmap::release_range(&self.map, at - base, part.len());
        }
    }

    /// Drops this segment's pages from the process's resident set (they
    /// stay in the page cache); see [`crate::mmap::release`].
    pub fn release_pages(&self) {
        crate::mmap::release(&self.map);
    }

    /// Opens and verifies a segment: magic, footer checksum, and every
    /// section's checksum. Any damage is an error naming the file.
    pub fn open(path: &Path) -> Result<Segment> {
        let map = crate::mmap::map_sealed(path)?;
        let bad = |why: String| Error::corrupt(path, why);
        let n = map.len();
        if n < 8 + 16 || &map[n - 8..] != SEG_END {
            return Err(bad(
                "not a Footprint segment (bad magic or truncated)".into()
            ));
        }
        let format = match &map[..8] {
            m if m == SEG_MAGIC => SegmentFormat::TimeOrder,
            m if m == SEG_MAGIC_V2 => SegmentFormat::EventMajor,
            m if m.starts_with(b"FPSEG") => {
                return Err(bad(format!(
                    "segment format {} is not supported by this version (it reads 001 and 002)",
                    String::from_utf8_lossy(&m[5..])
                )))
            }
            _ => {
                return Err(bad(
                    "not a Footprint segment (bad magic or truncated)".into()
                ))
            }
        };
        let flen =
            u32::from_le_bytes([map[n - 16], map[n - 15], map[n - 14], map[n - 13]]) as usize;
        let fcrc = u32::from_le_bytes([map[n - 12], map[n - 11], map[n - 10], map[n - 9]]);
        if flen > n - 24 {
            return Err(bad(format!("footer length {flen} exceeds the file")));
        }
        let fstart = n - 16 - flen;
        let footer = &map[fstart..n - 16];
        let got = crc32fast::hash(footer);
        if got != fcrc {
            return Err(Error::ChecksumMismatch {
                file: path.to_owned(),
                offset: fstart as u64,
                expected: fcrc,
                got,
            });
        }
        let ctx = |e: DecodeError| bad(format!("footer: {e}"));
        let mut d = Dec::new(footer);
        let ns = d.len(1 << 20, "section count").map_err(ctx)?;
        let mut sections = Vec::with_capacity(ns);
        for _ in 0..ns {
            let name = d.str().map_err(ctx)?.to_owned();
            let offset = d.u64().map_err(ctx)? as usize;
            let len = d.u64().map_err(ctx)? as usize;
            let crc = d.u32().map_err(ctx)?;
            if offset < 8 || offset.checked_add(len).is_none_or(|end| end > fstart) {
                return Err(bad(format!("section {name} lies outside the file")));
            }
            let got = crc32fast::hash(&map[offset..offset + len]);
            if got != crc {
                return Err(Error::ChecksumMismatch {
                    file: path.to_owned(),
                    offset: offset as u64,
                    expected: crc,
                    got,
                });
            }
            sections.push(Section { name, offset, len });
        }
        let meta = SegmentMeta {
            shard: d.var().map_err(ctx)? as u32,
            rows: d.var().map_err(ctx)?,
            users: d.var().map_err(ctx)?,
            min_time: d.i64().map_err(ctx)?,
            max_time: d.i64().map_err(ctx)?,
        };
        if meta.rows > u64::from(u32::MAX) {
            return Err(bad(format!(
                "{} rows is more than a segment can hold",
                meta.rows
            )));
        }
        let mut by_name: Vec<u32> = (0..sections.len() as u32).collect();
        by_name.sort_by(|&a, &b| sections[a as usize].name.cmp(&sections[b as usize].name));
        let mut seg = Segment {
            path: path.to_owned(),
            map,
            sections,
            by_name,
            meta,
            user_ids: Vec::new(),
            user_starts: Vec::new(),
            format,
            streams: Vec::new(),
        };
        seg.load_users()?;
        if format == SegmentFormat::EventMajor {
            seg.load_streams()?;
        }
        // Verification touched every page; queries fault in what they read.
        seg.release_pages();
        Ok(seg)
    }

    fn section(&self, name: &str) -> Option<&[u8]> {
        let i = self
            .by_name
            .binary_search_by(|&i| self.sections[i as usize].name.as_str().cmp(name))
            .ok()?;
        let s = &self.sections[self.by_name[i] as usize];
        Some(&self.map[s.offset..s.offset + s.len])
    }

    fn required(&self, name: &str) -> Result<&[u8]> {
        self.section(name)
            .ok_or_else(|| Error::corrupt(&self.path, format!("section {name} is missing")))
    }

    fn decode_err(&self, section: &str, e: DecodeError) -> Error {
        Error::corrupt(&self.path, format!("section {section}: {e}"))
    }

    fn load_users(&mut self) -> Result<()> {
        let rows = self.meta.rows as usize;
        let users = self.meta.users as usize;
        let bytes = self.required("users")?;
        let mut d = Dec::new(bytes);
        let mut deltas = Vec::new();
        let mut counts = Vec::new();
        bitpack::decode(&mut d, users, &mut deltas).map_err(|e| self.decode_err("users", e))?;
        bitpack::decode(&mut d, users, &mut counts).map_err(|e| self.decode_err("users", e))?;
        if deltas.len() != users || counts.len() != users {
            return Err(Error::corrupt(
                &self.path,
                "users table has the wrong length",
            ));
        }
        let mut ids = Vec::with_capacity(users);
        let mut starts = Vec::with_capacity(users + 1);
        let mut uid: u64 = 0;
        let mut row: u64 = 0;
        for (i, (&dl, &c)) in deltas.iter().zip(&counts).enumerate() {
            uid = if i == 0 { dl } else { uid + dl };
            if uid > u64::from(u32::MAX) || (i > 0 && dl == 0) || c == 0 {
                return Err(Error::corrupt(
                    &self.path,
                    "users table is not strictly ascending",
                ));
            }
            ids.push(uid as u32);
            starts.push(row as u32);
            row += c;
        }
        if row != rows as u64 {
            return Err(Error::corrupt(
                &self.path,
                format!("users table covers {row} rows, the footer says {rows}"),
            ));
        }
        starts.push(row as u32);
        self.user_ids = ids;
        self.user_starts = starts;
        Ok(())
    }

    /// Finds the event streams of a version 2 segment and checks that they
    /// cover its rows.
    fn load_streams(&mut self) -> Result<()> {
        let mut events: Vec<u32> = self
            .sections
            .iter()
            .filter_map(|s| {
                s.name
                    .strip_prefix("ev.")?
                    .strip_suffix(".time")?
                    .parse()
                    .ok()
            })
            .collect();
        events.sort_unstable();
        events.dedup();
        let rows = self.meta.rows as usize;
        let mut start = 0usize;
        let mut streams = Vec::with_capacity(events.len());
        for event in events {
            let name = format!("ev.{event}.time");
            let mut d = Dec::new(self.required(&name)?);
            let n = d
                .len(rows, "stream length")
                .map_err(|e| self.decode_err(&name, e))?;
            streams.push(StreamMeta {
                event,
                start,
                rows: n,
            });
            start += n;
        }
        if start != rows {
            return Err(Error::corrupt(
                &self.path,
                format!("event streams hold {start} rows, the footer says {rows}"),
            ));
        }
        self.streams = streams;
        Ok(())
    }

    /// How the rows are laid out.
    pub fn format(&self) -> SegmentFormat {
        self.format
    }

    /// Version 2: the event streams, by ascending event id (empty for
    /// version 1).
    pub fn streams(&self) -> &[StreamMeta] {
        &self.streams
    }

    /// Opens the readers of stream `s` (an index into [`Segment::streams`]).
    pub fn stream_readers(&self, s: usize) -> Result<StreamReaders<'_>> {
        let Some(m) = self.streams.get(s) else {
            return Err(Error::corrupt(&self.path, format!("no stream {s}")));
        };
        let users = self.meta.users as usize;
        let open = |part: &str, max: usize| -> Result<bitpack::BlockReader<'_>> {
            let name = format!("ev.{}.{part}", m.event);
            let mut d = Dec::new(self.required(&name)?);
            bitpack::BlockReader::new(&mut d, max).map_err(|e| self.decode_err(&name, e))
        };
        let r = StreamReaders {
            users: open("users", users)?,
            counts: open("counts", users)?,
            time: open("time", m.rows)?,
            tie: open("tie", m.rows)?,
        };
        if r.users.len() != r.counts.len() || r.time.len() != m.rows || r.tie.len() != m.rows {
            return Err(Error::corrupt(
                &self.path,
                format!("event {} stream: columns of different lengths", m.event),
            ));
        }
        Ok(r)
    }

    /// Version 2: a reader of the `order` section (per row in user-time
    /// order, the rank of its event among the user's distinct events), or
    /// `None` for a segment written before it existed.
    pub fn order_reader(&self) -> Result<Option<bitpack::BlockReader<'_>>> {
        let Some(bytes) = self.section("order") else {
            return Ok(None);
        };
        let rows = self.meta.rows as usize;
        let mut d = Dec::new(bytes);
        let r = bitpack::BlockReader::new(&mut d, rows).map_err(|e| self.decode_err("order", e))?;
        if r.len() != rows {
            return Err(Error::corrupt(
                &self.path,
                format!(
                    "order column holds {} rows, the footer says {rows}",
                    r.len()
                ),
            ));
        }
        Ok(Some(r))
    }

    /// Rows per event id.
    pub fn event_row_counts(&self) -> Result<Vec<(u32, u64)>> {
        if self.format == SegmentFormat::EventMajor {
            return Ok(self
                .streams
                .iter()
                .map(|s| (s.event, s.rows as u64))
                .collect());
        }
        let (_, mut r) = self.column_readers()?;
        let mut counts: std::collections::BTreeMap<u32, u64> = Default::default();
        let mut raw = Vec::new();
        loop {
            raw.clear();
            if !r
                .next_block(&mut raw)
                .map_err(|e| self.decode_err("event", e))?
            {
                break;
            }
            for &e in &raw {
                let e = u32::try_from(e)
                    .map_err(|_| Error::corrupt(&self.path, "event id out of range"))?;
                *counts.entry(e).or_default() += 1;
            }
        }
        Ok(counts.into_iter().collect())
    }

    /// The file this segment was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Footer facts.
    pub fn meta(&self) -> SegmentMeta {
        self.meta
    }

    /// Distinct user ids, ascending.
    pub fn user_ids(&self) -> &[u32] {
        &self.user_ids
    }

    /// Row starts per user, plus a final entry equal to the row count.
    pub fn user_starts(&self) -> &[u32] {
        &self.user_starts
    }

    /// Bytes per section, for `stats`.
    pub fn section_sizes(&self) -> Vec<(String, u64)> {
        self.sections
            .iter()
            .map(|s| (s.name.clone(), s.len as u64))
            .collect()
    }

    /// Streaming readers of the time-delta and event-id columns.
    pub fn column_readers(&self) -> Result<(bitpack::BlockReader<'_>, bitpack::BlockReader<'_>)> {
        let rows = self.meta.rows as usize;
        let mut dt = Dec::new(self.required("time")?);
        let t = bitpack::BlockReader::new(&mut dt, rows).map_err(|e| self.decode_err("time", e))?;
        let mut de = Dec::new(self.required("event")?);
        let e =
            bitpack::BlockReader::new(&mut de, rows).map_err(|e| self.decode_err("event", e))?;
        if t.len() != rows || e.len() != rows {
            return Err(Error::corrupt(
                &self.path,
                "time or event column has the wrong length",
            ));
        }
        Ok((t, e))
    }

    /// An error about section `section` of this segment.
    pub fn corrupt(&self, section: &str, e: DecodeError) -> Error {
        self.decode_err(section, e)
    }

    /// The users who did event `event` in this segment (only that
    /// bitmap is deserialized).
    pub fn event_users(&self, event: u32) -> Result<Option<RoaringBitmap>> {
        let mut d = Dec::new(self.required("bitmaps")?);
        let err = |e: DecodeError| self.decode_err("bitmaps", e);
        let n = d.len(d.remaining(), "bitmap count").map_err(err)?;
        for _ in 0..n {
            let ev = d.var().map_err(err)?;
            let bytes = d.bytes().map_err(err)?;
            if ev == u64::from(event) {
                let bm = RoaringBitmap::deserialize_from(bytes).map_err(|e| {
                    Error::corrupt(&self.path, format!("bitmap of event {ev}: {e}"))
                })?;
                return Ok(Some(bm));
            }
        }
        Ok(None)
    }

    /// All per-event user bitmaps.
    pub fn event_bitmaps(&self) -> Result<Vec<(u32, RoaringBitmap)>> {
        let mut d = Dec::new(self.required("bitmaps")?);
        let err = |e: DecodeError| self.decode_err("bitmaps", e);
        let n = d.len(d.remaining(), "bitmap count").map_err(err)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let ev = d.var().map_err(err)? as u32;
            let bytes = d.bytes().map_err(err)?;
            let bm = RoaringBitmap::deserialize_from(bytes)
                .map_err(|e| Error::corrupt(&self.path, format!("bitmap of event {ev}: {e}")))?;
            out.push((ev, bm));
        }
        Ok(out)
    }

    /// Property ids that have a column in this segment.
    pub fn prop_ids(&self) -> Vec<u32> {
        self.sections
            .iter()
            .filter_map(|s| s.name.strip_prefix("prop.")?.parse().ok())
            .collect()
    }

    /// Decodes property column `pid` whole; `None` if no row has it.
    pub fn prop(&self, pid: u32) -> Result<Option<PropColumn>> {
        let Some(r) = self.prop_reader(pid)? else {
            return Ok(None);
        };
        let mut r = r;
        let mut idx = Vec::with_capacity(self.meta.rows as usize);
        for k in 0..r.chunks() {
            r.decode_chunk(k, &mut idx)?;
        }
        if idx.len() != self.meta.rows as usize {
            return Err(Error::corrupt(
                &self.path,
                format!("section prop.{pid}: index covers {} rows", idx.len()),
            ));
        }
        Ok(Some(PropColumn {
            values: r.values,
            idx,
        }))
    }

    /// Opens property column `pid` for chunk-by-chunk decoding.
    pub fn prop_reader(&self, pid: u32) -> Result<Option<PropReader<'_>>> {
        let name = format!("prop.{pid}");
        let Some(bytes) = self.section(&name) else {
            return Ok(None);
        };
        let err = |e: DecodeError| self.decode_err(&name, e);
        let mut d = Dec::new(bytes);
        let packed = d.bytes().map_err(err)?;
        let raw = decompress_values(packed)
            .map_err(|e| Error::corrupt(&self.path, format!("section {name}: values: {e}")))?;
        let mut vd = Dec::new(&raw);
        let nv = vd.len(raw.len(), "value count").map_err(err)?;
        let mut values = Vec::with_capacity(nv);
        for _ in 0..nv {
            values.push(vd.value().map_err(err)?);
        }
        let rows = self.meta.rows as usize;
        let nchunks = d
            .len(rows.div_ceil(super::PROP_CHUNK), "chunk count")
            .map_err(err)?;
        if nchunks != rows.div_ceil(super::PROP_CHUNK) {
            return Err(Error::corrupt(
                &self.path,
                format!("section {name}: {nchunks} chunks for {rows} rows"),
            ));
        }
        let mut chunks = Vec::with_capacity(nchunks);
        let mut at = d.pos() + nchunks * 4;
        for _ in 0..nchunks {
            let len = d.u32().map_err(err)? as usize;
            chunks.push((at, len));
            at += len;
        }
        if at != bytes.len() {
            return Err(Error::corrupt(
                &self.path,
                format!("section {name}: chunks do not fill the section"),
            ));
        }
        Ok(Some(PropReader {
            seg: self,
            name,
            bytes,
            values,
            chunks,
            raw: Vec::new(),
            wide: Vec::new(),
            ids: Vec::new(),
            sparse: false,
        }))
    }
}

/// A property column opened for chunk-by-chunk decoding.
pub struct PropReader<'a> {
    seg: &'a Segment,
    name: String,
    bytes: &'a [u8],
    /// Distinct values; row indexes point here (1-based).
    pub values: Vec<Value>,
    chunks: Vec<(usize, usize)>,
    /// Reused across chunks: the decode buffers (a chunk decoded is ~1 MB
    /// of scratch that would otherwise be allocated, faulted in and freed
    /// every 64K rows). The zstd context is the thread's.
    raw: Vec<u8>,
    wide: Vec<u64>,
    ids: Vec<u64>,
    /// Whether the last chunk unpacked was sparse.
    sparse: bool,
}

impl PropReader<'_> {
    /// Number of chunks.
    pub fn chunks(&self) -> usize {
        self.chunks.len()
    }

    /// Appends the value indexes of chunk `k` (rows `k * PROP_CHUNK ..`) to `out`.
    pub fn decode_chunk(&mut self, k: usize, out: &mut Vec<u32>) -> Result<()> {
        let rows = self.unpack(k)?;
        if self.sparse {
            let base = out.len();
            out.resize(base + rows, 0);
            for (&at, &i) in self.wide.iter().zip(&self.ids) {
                out[base + at as usize] = i as u32;
            }
        } else {
            out.extend(self.wide.iter().map(|&i| i as u32));
        }
        Ok(())
    }

    /// Calls `f(row, index)` for each row of chunk `k` that has the
    /// property (`row` in the segment, `index` 1-based into
    /// [`PropReader::values`]), in row order. A sparse chunk costs its
    /// entries, not its rows.
    pub fn for_each_entry(&mut self, k: usize, mut f: impl FnMut(usize, usize)) -> Result<()> {
        self.unpack(k)?;
        let lo = k * super::PROP_CHUNK;
        if self.sparse {
            for (&at, &i) in self.wide.iter().zip(&self.ids) {
                f(lo + at as usize, i as usize);
            }
        } else {
            for (r, &i) in self.wide.iter().enumerate() {
                if i != 0 {
                    f(lo + r, i as usize);
                }
            }
        }
        Ok(())
    }

    /// Decompresses and unpacks chunk `k` into `wide` (a dense chunk: one
    /// index per row) or `wide` and `ids` (a sparse chunk: rows within
    /// the chunk, ascending, and their indexes), checking every index
    /// against the values. Returns the chunk's row count.
    fn unpack(&mut self, k: usize) -> Result<usize> {
        let bad =
            |why: String| Error::corrupt(self.seg.path(), format!("section {}: {why}", self.name));
        let &(at, len) = self
            .chunks
            .get(k)
            .ok_or_else(|| bad(format!("no chunk {k}")))?;
        let packed = self
            .bytes
            .get(at..at + len)
            .ok_or_else(|| bad(format!("chunk {k} outside the section")))?;
        let expect = (self.seg.meta().rows as usize - k * super::PROP_CHUNK).min(super::PROP_CHUNK);
        // A dense chunk unpacks to at most 9 bytes a row plus block
        // headers; a frame that states a smaller size gets only that.
        let bound = expect * 9 + 64 + expect.div_ceil(128) * 8;
        let size = match zstd::zstd_safe::get_frame_content_size(packed) {
            Ok(Some(n)) if n <= bound as u64 => n as usize,
            _ => bound,
        };
        self.raw.clear();
        self.raw.reserve(size);
        with_dctx(|d| d.decompress_to_buffer(packed, &mut self.raw))
            .map_err(|e| bad(format!("chunk {k}: {e}")))?;
        let mut d = Dec::new(&self.raw);
        self.wide.clear();
        self.ids.clear();
        // A dense chunk starts with its row count (never 0); a sparse one
        // with a 0, then its row count and its entries.
        self.sparse = self.raw.first() == Some(&0);
        if self.sparse {
            let entries = (|| {
                d.u8()?;
                let rows = d.len(super::PROP_CHUNK, "chunk rows")?;
                if rows != expect {
                    return Err(d.err(format!("{rows} rows, expected {expect}")));
                }
                let n = d.len(expect, "entry count")?;
                bitpack::decode(&mut d, n, &mut self.wide)?;
                bitpack::decode(&mut d, n, &mut self.ids)?;
                Ok(n)
            })()
            .map_err(|e: DecodeError| bad(format!("chunk {k}: {e}")))?;
            if self.wide.len() != entries || self.ids.len() != entries {
                return Err(bad(format!("chunk {k}: entry columns differ in length")));
            }
            // Row deltas (the first absolute) become rows, strictly rising.
            let mut row = 0u64;
            for (j, d) in self.wide.iter_mut().enumerate() {
                if j > 0 && *d == 0 {
                    return Err(bad(format!("chunk {k}: entry rows repeat")));
                }
                row = row.saturating_add(*d);
                *d = row;
            }
            if row >= expect as u64 && entries > 0 {
                return Err(bad(format!("chunk {k}: entry row {row} beyond {expect}")));
            }
        } else {
            bitpack::decode(&mut d, expect, &mut self.wide)
                .map_err(|e| bad(format!("chunk {k}: {e}")))?;
            if self.wide.len() != expect {
                return Err(bad(format!(
                    "chunk {k} holds {} rows, expected {expect}",
                    self.wide.len()
                )));
            }
        }
        let nv = self.values.len() as u64;
        let indexes = if self.sparse { &self.ids } else { &self.wide };
        let big = indexes.iter().copied().max().unwrap_or(0);
        if big > nv {
            return Err(bad(format!(
                "chunk {k}: value index {big} beyond {nv} values"
            )));
        }
        if self.sparse && indexes.contains(&0) {
            return Err(bad(format!("chunk {k}: an entry without a value")));
        }
        Ok(expect)
    }
}

/// Runs `f` with this thread's zstd decompression context (creating one
/// costs more than decompressing a small column).
fn with_dctx<R>(
    f: impl FnOnce(&mut zstd::bulk::Decompressor<'static>) -> std::io::Result<R>,
) -> std::io::Result<R> {
    thread_local! {
        static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    DCTX.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new()?);
        }
        match d.as_mut() {
            Some(z) => f(z),
            None => Err(std::io::Error::other("no zstd context")),
        }
    })
}

/// Decompresses a property's value list with this thread's zstd context,
/// sized by the frame's own content size where it states one (a segment of
/// many small properties would otherwise pay a context and a 1 MiB buffer
/// per property).
fn decompress_values(packed: &[u8]) -> std::io::Result<Vec<u8>> {
    let cap = packed.len().saturating_mul(64).max(1 << 20);
    let size = match zstd::zstd_safe::get_frame_content_size(packed) {
        Ok(Some(n)) if n <= cap as u64 => n as usize,
        _ => cap,
    };
    with_dctx(|z| z.decompress(packed, size))
}
