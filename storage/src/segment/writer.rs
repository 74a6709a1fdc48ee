//! Building a segment file from sorted rows.

use std::collections::BTreeMap;
use std::path::Path;

use roaring::RoaringBitmap;

use super::{SEG_END, SEG_MAGIC, SEG_MAGIC_V2};
use crate::bitpack;
use crate::codec::Enc;
use crate::error::{IoContext, Result};
use crate::value::Value;

/// One shard's rows in columns, sorted by (uid, time). Properties are keyed
/// by property id and hold `(row, value)` pairs in row order.
#[derive(Debug, Default, Clone)]
pub struct SegmentData {
    /// User id per row.
    pub uids: Vec<u32>,
    /// Event id per row.
    pub events: Vec<u32>,
    /// Time per row (ms).
    pub times: Vec<i64>,
    /// Property columns: id → `(row, value)` in row order.
    pub props: BTreeMap<u32, Vec<(u32, Value)>>,
}

impl SegmentData {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.uids.len()
    }
    /// True if no rows.
    pub fn is_empty(&self) -> bool {
        self.uids.is_empty()
    }
}

/// How a segment lays out its rows (see `storage/FORMAT.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SegmentFormat {
    /// Version 1: rows in (user, time) order, one time and one event column.
    TimeOrder,
    /// Version 2: one stream per event, each in (user, time) order, so a
    /// query decodes only the events it looks at.
    #[default]
    EventMajor,
    /// Version 2 as written before the `order` section existed (readers
    /// then merge streams by time and tie rank). Only for tests that keep
    /// reading such files.
    EventMajorWithoutOrder,
}

/// Writes `data` (sorted by uid, then time) as a segment at `path`:
/// temp file, fsync, rename. The caller fsyncs the directory. Returns the
/// file size.
pub fn write_segment(
    path: &Path,
    shard: u32,
    data: &SegmentData,
    format: SegmentFormat,
) -> Result<u64> {
    debug_assert!(data
        .uids
        .windows(2)
        .zip(data.times.windows(2))
        .all(|(u, t)| u[0] < u[1] || (u[0] == u[1] && t[0] <= t[1])));
    let n = data.len();
    let mut sections: Vec<(String, Vec<u8>)> = Vec::new();

    // users: distinct uids (delta coded) and row counts.
    let mut user_ids = Vec::new();
    let mut counts = Vec::new();
    for (i, &u) in data.uids.iter().enumerate() {
        if i == 0 || data.uids[i - 1] != u {
            user_ids.push(u);
            counts.push(0u64);
        }
        if let Some(c) = counts.last_mut() {
            *c += 1;
        }
    }
    let mut e = Enc::new();
    bitpack::encode(&ascending_deltas(user_ids.iter().copied()), &mut e);
    bitpack::encode(&counts, &mut e);
    sections.push(("users".into(), e.buf));

    let min_time = data.times.iter().copied().min().unwrap_or(0);
    let max_time = data.times.iter().copied().max().unwrap_or(0);

    // per-event user bitmaps
    let mut bitmaps: BTreeMap<u32, RoaringBitmap> = BTreeMap::new();
    for (&u, &ev) in data.uids.iter().zip(&data.events) {
        bitmaps.entry(ev).or_default().insert(u);
    }

    let magic = match format {
        SegmentFormat::TimeOrder => {
            write_time_order(data, min_time, &mut sections);
            SEG_MAGIC
        }
        SegmentFormat::EventMajor | SegmentFormat::EventMajorWithoutOrder => {
            let events: Vec<u32> = bitmaps.keys().copied().collect();
            if format == SegmentFormat::EventMajor {
                sections.push(("order".into(), order_column(data)));
            }
            let phys = write_event_major(data, min_time, &events, &mut sections);
            for (pid, col) in &data.props {
                let prop = encode_prop(n, col, |r| phys.get(r as usize).copied());
                sections.push((format!("prop.{pid}"), prop));
            }
            SEG_MAGIC_V2
        }
    };

    let mut e = Enc::new();
    e.var(bitmaps.len() as u64);
    for (ev, bm) in &bitmaps {
        e.var(u64::from(*ev));
        let mut b = Vec::with_capacity(bm.serialized_size());
        bm.serialize_into(&mut b).at(path)?;
        e.bytes(&b);
    }
    sections.push(("bitmaps".into(), e.buf));

    if format == SegmentFormat::TimeOrder {
        for (pid, col) in &data.props {
            sections.push((format!("prop.{pid}"), encode_prop(n, col, Some)));
        }
    }

    let mut file_bytes =
        Vec::with_capacity(sections.iter().map(|s| s.1.len()).sum::<usize>() + 256);
    file_bytes.extend_from_slice(magic);
    let mut footer = Enc::new();
    footer.var(sections.len() as u64);
    for (name, bytes) in &sections {
        footer.str(name);
        footer.u64(file_bytes.len() as u64);
        footer.u64(bytes.len() as u64);
        footer.u32(crc32fast::hash(bytes));
        file_bytes.extend_from_slice(bytes);
    }
    footer.var(u64::from(shard));
    footer.var(n as u64);
    footer.var(user_ids.len() as u64);
    footer.i64(min_time);
    footer.i64(max_time);
    let flen = footer.buf.len() as u32;
    let fcrc = crc32fast::hash(&footer.buf);
    file_bytes.extend_from_slice(&footer.buf);
    file_bytes.extend_from_slice(&flen.to_le_bytes());
    file_bytes.extend_from_slice(&fcrc.to_le_bytes());
    file_bytes.extend_from_slice(SEG_END);

    let tmp = crate::fsutil::temp_path(path);
    let r = (|| {
        let f = crate::fsutil::create(&tmp)?;
        crate::fsutil::write_all(&f, &tmp, &file_bytes)?;
        crate::fsutil::sync_all(&f, &tmp)?;
        crate::fsutil::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r?;
    Ok(file_bytes.len() as u64)
}

/// `v` (ascending) as deltas: the first value absolute, then each minus
/// the one before.
fn ascending_deltas(v: impl Iterator<Item = u32>) -> Vec<u64> {
    let mut prev = 0;
    v.map(|x| {
        let d = u64::from(x - prev);
        prev = x;
        d
    })
    .collect()
}

/// Version 1 columns: `time` (per user, the first row relative to the
/// segment minimum, then deltas) and `event`.
fn write_time_order(data: &SegmentData, min_time: i64, sections: &mut Vec<(String, Vec<u8>)>) {
    let n = data.len();
    let mut tdeltas = Vec::with_capacity(n);
    for i in 0..n {
        let first = i == 0 || data.uids[i - 1] != data.uids[i];
        let base = if first { min_time } else { data.times[i - 1] };
        tdeltas.push((data.times[i] - base) as u64);
    }
    let mut e = Enc::new();
    bitpack::encode(&tdeltas, &mut e);
    sections.push(("time".into(), e.buf));

    let mut e = Enc::new();
    let evs: Vec<u64> = data.events.iter().map(|&x| u64::from(x)).collect();
    bitpack::encode(&evs, &mut e);
    sections.push(("event".into(), e.buf));
}

/// Version 2's `order` section: per row in (user, time, arrival) order,
/// the rank of its event among the user's distinct events (ascending), so
/// a reader restores a user's time order from the streams without
/// comparing times.
fn order_column(data: &SegmentData) -> Vec<u8> {
    let n = data.len();
    let mut ranks = Vec::with_capacity(n);
    let mut evs: Vec<u32> = Vec::new();
    let mut a = 0;
    while a < n {
        let mut b = a + 1;
        while b < n && data.uids[b] == data.uids[a] {
            b += 1;
        }
        evs.clear();
        evs.extend_from_slice(&data.events[a..b]);
        evs.sort_unstable();
        evs.dedup();
        ranks.extend(
            data.events[a..b]
                .iter()
                .map(|e| evs.partition_point(|x| x < e) as u64),
        );
        a = b;
    }
    let mut e = Enc::new();
    bitpack::encode(&ranks, &mut e);
    e.buf
}

/// Version 2 streams, one per event in `events` (ascending): the rows of
/// that event in (user, time) order. Streams follow each other in the
/// segment's row numbering; returns the new row number of each input row.
fn write_event_major(
    data: &SegmentData,
    min_time: i64,
    events: &[u32],
    sections: &mut Vec<(String, Vec<u8>)>,
) -> Vec<u32> {
    let n = data.len();
    // Per input row: its user's index in the users table, and its rank
    // among the user's rows with the same time (arrival order), which is
    // what restores the input order when streams are merged by time.
    let mut uidx = vec![0u32; n];
    let mut tie = vec![0u32; n];
    for i in 1..n {
        if data.uids[i] == data.uids[i - 1] {
            uidx[i] = uidx[i - 1];
            if data.times[i] == data.times[i - 1] {
                tie[i] = tie[i - 1] + 1;
            }
        } else {
            uidx[i] = uidx[i - 1] + 1;
        }
    }
    // Stable counting sort of the rows by event.
    let mut count: rustc_hash::FxHashMap<u32, usize> = Default::default();
    for &ev in &data.events {
        *count.entry(ev).or_default() += 1;
    }
    let mut next: rustc_hash::FxHashMap<u32, usize> = Default::default();
    let mut at = 0;
    for ev in events {
        next.insert(*ev, at);
        at += count.get(ev).copied().unwrap_or(0);
    }
    let mut order = vec![0u32; n];
    let mut phys = vec![0u32; n];
    for (i, ev) in data.events.iter().enumerate() {
        if let Some(p) = next.get_mut(ev) {
            order[*p] = i as u32;
            phys[i] = *p as u32;
            *p += 1;
        }
    }
    let mut start = 0;
    for &ev in events {
        let len = count.get(&ev).copied().unwrap_or(0);
        let rows = &order[start..start + len];
        start += len;
        let mut users = Vec::new();
        let mut counts: Vec<u64> = Vec::new();
        let mut deltas = Vec::with_capacity(len);
        let mut ties = Vec::with_capacity(len);
        let mut prev: Option<usize> = None;
        for &i in rows {
            let i = i as usize;
            match prev {
                Some(p) if uidx[p] == uidx[i] => {
                    deltas.push((data.times[i] - data.times[p]) as u64);
                    if let Some(c) = counts.last_mut() {
                        *c += 1;
                    }
                }
                _ => {
                    users.push(uidx[i]);
                    counts.push(1);
                    deltas.push((data.times[i] - min_time) as u64);
                }
            }
            ties.push(u64::from(tie[i]));
            prev = Some(i);
        }
        let mut e = Enc::new();
        bitpack::encode(&ascending_deltas(users.into_iter()), &mut e);
        sections.push((format!("ev.{ev}.users"), e.buf));
        let mut e = Enc::new();
        bitpack::encode(&counts, &mut e);
        sections.push((format!("ev.{ev}.counts"), e.buf));
        let mut e = Enc::new();
        bitpack::encode(&deltas, &mut e);
        sections.push((format!("ev.{ev}.time"), e.buf));
        let mut e = Enc::new();
        bitpack::encode(&ties, &mut e);
        sections.push((format!("ev.{ev}.tie"), e.buf));
    }
    phys
}

/// A chunk with fewer than one entry in this many rows is written as its
/// entries (rows and indexes) instead of one index per row.
const SPARSE_BELOW: usize = 16;

/// A sparse chunk: `0`, the chunk's row count, the entry count, then the
/// entries' rows within the chunk (deltas, the first absolute) and their
/// value indexes, each bit-packed. Reading it costs its entries, so a
/// merge of many rare properties costs rows plus entries, not their
/// product.
fn encode_entries(rows: usize, local: &[(usize, u64)], e: &mut Enc) {
    e.var(0);
    e.var(rows as u64);
    e.var(local.len() as u64);
    let mut last = 0;
    let deltas: Vec<u64> = local
        .iter()
        .map(|&(r, _)| {
            let d = (r - last) as u64;
            last = r;
            d
        })
        .collect();
    let ids: Vec<u64> = local.iter().map(|&(_, id)| id).collect();
    bitpack::encode(&deltas, e);
    bitpack::encode(&ids, e);
}

/// A property column: a zstd frame of the distinct values, then the
/// per-row value index (1-based, 0 = absent) zstd-compressed in chunks of
/// [`super::PROP_CHUNK`] rows, so a scan decompresses only the chunk it is
/// in. A chunk is bit-packed indexes, one per row, or, when few of its rows
/// have the property, its entries ([`encode_entries`]). `row_of` maps a row
/// of `col` to its row in the segment.
fn encode_prop(rows: usize, col: &[(u32, Value)], row_of: impl Fn(u32) -> Option<u32>) -> Vec<u8> {
    let mut distinct: Vec<&Value> = Vec::new();
    let mut lookup: rustc_hash::FxHashMap<&Value, u64> = Default::default();
    // Only the rows that have the property: a column costs its entries and
    // its blocks, not a value per row (a data set with many sparse
    // properties would otherwise cost rows × names).
    let mut entries: Vec<(usize, u64)> = Vec::with_capacity(col.len());
    for (row, v) in col {
        let Some(row) = row_of(*row) else { continue };
        let id = *lookup.entry(v).or_insert_with(|| {
            distinct.push(v);
            distinct.len() as u64
        });
        entries.push((row as usize, id));
    }
    entries.sort_by_key(|e| e.0);
    // One value a row: the last given wins, as in a dense chunk.
    entries.reverse();
    entries.dedup_by_key(|e| e.0);
    entries.reverse();
    let mut values = Enc::new();
    values.var(distinct.len() as u64);
    for v in &distinct {
        values.value(v);
    }
    let mut out = Enc::new();
    out.bytes(&compress(&values.buf));
    let nchunks = rows.div_ceil(super::PROP_CHUNK);
    let mut chunks: Vec<Vec<u8>> = Vec::with_capacity(nchunks);
    let mut at = 0;
    for k in 0..nchunks {
        let lo = k * super::PROP_CHUNK;
        let len = super::PROP_CHUNK.min(rows - lo);
        let end = at + entries[at..].partition_point(|e| e.0 < lo + len);
        let local: Vec<(usize, u64)> = entries[at..end]
            .iter()
            .map(|&(r, id)| (r - lo, id))
            .collect();
        at = end;
        let mut e = Enc::new();
        if local.len() * SPARSE_BELOW <= len {
            encode_entries(len, &local, &mut e);
        } else {
            bitpack::encode_sparse(len, &local, &mut e);
        }
        chunks.push(compress(&e.buf));
    }
    out.var(chunks.len() as u64);
    for c in &chunks {
        out.u32(c.len() as u32);
    }
    for c in chunks {
        out.buf.extend_from_slice(&c);
    }
    out.buf
}

fn compress(raw: &[u8]) -> Vec<u8> {
    thread_local! {
        // One context per thread, not per call: creating a zstd context
        // costs more than compressing a small column (a segment of many
        // sparse properties has thousands).
        static CCTX: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let done = CCTX.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = zstd::bulk::Compressor::new(3).ok();
        }
        c.as_mut().and_then(|z| z.compress(raw).ok())
    });
    done.unwrap_or_else(|| {
        // zstd only fails on allocation; fall back to a stored frame.
        let mut out = Vec::new();
        let _ = zstd::stream::copy_encode(raw, &mut out, 0);
        out
    })
}
