//! The read API for the query layer: per shard, each user's events in time
//! order, merged across segments and the memtable, restricted to a time
//! range, with only the requested property columns decoded.

use std::sync::Arc;

use roaring::RoaringBitmap;

use crate::error::Result;
use crate::memtable::MemBatch;
use crate::segment::{PropColumn, Segment};
use crate::value::Value;

/// What a scan reads.
#[derive(Debug, Clone, Default)]
pub struct ScanSpec {
    /// Half-open `[from, to)` time range; `None` = all time.
    pub range: Option<(i64, i64)>,
    /// Property ids to decode; `UserRows::prop(k, i)` reads `props[k]`.
    pub props: Vec<u32>,
    /// Only these users (e.g. those who did step 1); `None` = all.
    pub users: Option<RoaringBitmap>,
}

/// A consistent view of one shard: its segments and memtable batches at
/// the moment the snapshot was taken.
#[derive(Debug, Clone, Default)]
pub struct ShardSnapshot {
    /// Live segments, oldest first.
    pub segments: Vec<Arc<Segment>>,
    /// Memtable batches (frozen first, then active), in arrival order.
    pub mem: Vec<Arc<MemBatch>>,
}

/// One source's decoded columns.
#[derive(Debug, Default)]
pub struct Decoded {
    user_ids: Vec<u32>,
    user_starts: Vec<u32>,
    times: Vec<i64>,
    events: Vec<u32>,
    props: Vec<Option<PropColumn>>,
}

/// One user's events in the scanned range, in time order (ties keep
/// storage order: older segments first, then arrival order).
#[derive(Debug)]
pub struct UserRows<'a> {
    /// The user id.
    pub uid: u32,
    /// Event times, ascending.
    pub times: &'a [i64],
    /// Event ids, parallel to `times`.
    pub events: &'a [u32],
    loc: Loc<'a>,
}

#[derive(Debug)]
enum Loc<'a> {
    Single {
        src: &'a Decoded,
        base: usize,
    },
    Multi {
        srcs: &'a [Decoded],
        at: &'a [(u32, u32)],
    },
}

impl<'a> UserRows<'a> {
    /// Number of events.
    pub fn len(&self) -> usize {
        self.times.len()
    }
    /// True if no events.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }
    /// Value of requested property `k` (index into `ScanSpec::props`) at event `i`.
    pub fn prop(&self, k: usize, i: usize) -> Option<&'a Value> {
        let (src, row) = match self.loc {
            Loc::Single { src, base } => (src, base + i),
            Loc::Multi { srcs, at } => {
                let (s, r) = *at.get(i)?;
                (srcs.get(s as usize)?, r as usize)
            }
        };
        src.props.get(k)?.as_ref()?.get(row)
    }
}

fn overlaps(min: i64, max: i64, range: Option<(i64, i64)>) -> bool {
    match range {
        None => true,
        Some((from, to)) => max >= from && min < to,
    }
}

fn decode_segment(seg: &Segment, spec: &ScanSpec) -> Result<Decoded> {
    let mut props = Vec::with_capacity(spec.props.len());
    for &p in &spec.props {
        props.push(seg.prop(p)?);
    }
    Ok(Decoded {
        user_ids: seg.user_ids().to_vec(),
        user_starts: seg.user_starts().to_vec(),
        times: seg.times()?,
        events: seg.events()?,
        props,
    })
}

/// Sorts memtable batches into the columnar shape of a segment.
fn decode_mem(batches: &[Arc<MemBatch>], spec: &ScanSpec) -> Decoded {
    let mut order: Vec<(u32, i64, u32, u32)> = Vec::new();
    for (b, batch) in batches.iter().enumerate() {
        for r in 0..batch.len() {
            let t = batch.times[r];
            if overlaps(t, t, spec.range) {
                order.push((batch.uids[r], t, b as u32, r as u32));
            }
        }
    }
    order.sort_unstable();
    let mut d = Decoded {
        props: spec
            .props
            .iter()
            .map(|_| Some(PropColumn::default()))
            .collect(),
        ..Default::default()
    };
    for (i, &(uid, t, b, r)) in order.iter().enumerate() {
        if d.user_ids.last() != Some(&uid) {
            d.user_ids.push(uid);
            d.user_starts.push(i as u32);
        }
        let batch = &batches[b as usize];
        d.times.push(t);
        d.events.push(batch.events[r as usize]);
        for (k, &pid) in spec.props.iter().enumerate() {
            if let Some(col) = d.props[k].as_mut() {
                match batch.props[r as usize].iter().find(|(p, _)| *p == pid) {
                    Some((_, v)) => {
                        col.values.push(v.clone());
                        col.idx.push(col.values.len() as u32);
                    }
                    None => col.idx.push(0),
                }
            }
        }
    }
    d.user_starts.push(order.len() as u32);
    d
}

impl ShardSnapshot {
    /// Rows in this snapshot.
    pub fn rows(&self) -> u64 {
        self.segments.iter().map(|s| s.meta().rows).sum::<u64>()
            + self.mem.iter().map(|b| b.len() as u64).sum::<u64>()
    }

    /// Users of this shard who did event `event` (in any time).
    pub fn event_users(&self, event: u32) -> Result<RoaringBitmap> {
        let mut out = RoaringBitmap::new();
        for seg in &self.segments {
            if let Some(bm) = seg.event_users(event)? {
                out |= bm;
            }
        }
        for b in &self.mem {
            for (u, e) in b.uids.iter().zip(&b.events) {
                if *e == event {
                    out.insert(*u);
                }
            }
        }
        Ok(out)
    }

    /// Calls `f` once per user with events in the range, in user-id order.
    pub fn scan(&self, spec: &ScanSpec, mut f: impl FnMut(&UserRows<'_>)) -> Result<()> {
        self.scan_while(spec, |u| {
            f(u);
            true
        })
        .map(|_| ())
    }

    /// Like [`ShardSnapshot::scan`], but stops as soon as `f` returns
    /// `false` (cancellation, time budget). Returns whether it ran to the end.
    pub fn scan_while(
        &self,
        spec: &ScanSpec,
        mut f: impl FnMut(&UserRows<'_>) -> bool,
    ) -> Result<bool> {
        let mut sources: Vec<Decoded> = Vec::new();
        for seg in &self.segments {
            let m = seg.meta();
            if m.rows > 0 && overlaps(m.min_time, m.max_time, spec.range) {
                sources.push(decode_segment(seg, spec)?);
            }
        }
        if !self.mem.is_empty() {
            sources.push(decode_mem(&self.mem, spec));
        }
        let mut cursor = vec![0usize; sources.len()];
        let mut present: Vec<(usize, usize, usize)> = Vec::new();
        let mut merged: Vec<(i64, u32, u32)> = Vec::new();
        let mut times: Vec<i64> = Vec::new();
        let mut events: Vec<u32> = Vec::new();
        let mut at: Vec<(u32, u32)> = Vec::new();
        loop {
            let mut uid = u32::MAX;
            let mut any = false;
            for (s, src) in sources.iter().enumerate() {
                if let Some(&u) = src.user_ids.get(cursor[s]) {
                    if !any || u < uid {
                        uid = u;
                        any = true;
                    }
                }
            }
            if !any {
                return Ok(true);
            }
            present.clear();
            for (s, src) in sources.iter().enumerate() {
                let c = cursor[s];
                if src.user_ids.get(c) == Some(&uid) {
                    let (a, b) = (src.user_starts[c] as usize, src.user_starts[c + 1] as usize);
                    let (a, b) = match spec.range {
                        None => (a, b),
                        Some((from, to)) => {
                            let t = &src.times[a..b];
                            (
                                a + t.partition_point(|&x| x < from),
                                a + t.partition_point(|&x| x < to),
                            )
                        }
                    };
                    if a < b {
                        present.push((s, a, b));
                    }
                    cursor[s] += 1;
                }
            }
            if present.is_empty() {
                continue;
            }
            if let Some(users) = &spec.users {
                if !users.contains(uid) {
                    continue;
                }
            }
            if let [(s, a, b)] = present[..] {
                let src = &sources[s];
                let go = f(&UserRows {
                    uid,
                    times: &src.times[a..b],
                    events: &src.events[a..b],
                    loc: Loc::Single { src, base: a },
                });
                if !go {
                    return Ok(false);
                }
                continue;
            }
            merged.clear();
            for &(s, a, b) in &present {
                for r in a..b {
                    merged.push((sources[s].times[r], s as u32, r as u32));
                }
            }
            // Stable: equal times keep source order (older first), then row order.
            merged.sort_by_key(|&(t, s, r)| (t, s, r));
            times.clear();
            events.clear();
            at.clear();
            for &(t, s, r) in &merged {
                times.push(t);
                events.push(sources[s as usize].events[r as usize]);
                at.push((s, r));
            }
            let go = f(&UserRows {
                uid,
                times: &times,
                events: &events,
                loc: Loc::Multi {
                    srcs: &sources,
                    at: &at,
                },
            });
            if !go {
                return Ok(false);
            }
        }
    }
}
