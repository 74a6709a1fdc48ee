//! Turning memtable runs and segments into the columns of a new segment.
//! Pure data work: no locks, no files but the segments it reads.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::memtable::{MemBatch, MemRun};
use crate::scan::{ScanSpec, ShardSnapshot};
use crate::segment::{Segment, SegmentData};

/// Sorts memtable batches of one shard by (user, time), keeping arrival
/// order among ties.
pub(crate) fn sort_batches(batches: &[Arc<MemBatch>]) -> SegmentData {
    let mut run = MemRun::default();
    for b in batches {
        run = MemRun::merge(&run, &MemRun::from_batch(b.clone()));
    }
    run_to_data(&run)
}

/// Merges a shard's memtable runs (oldest first) into segment columns.
pub(crate) fn runs_to_data(runs: &[Arc<MemRun>]) -> SegmentData {
    let mut all = MemRun::default();
    for r in runs {
        all = MemRun::merge(&all, r);
    }
    run_to_data(&all)
}

fn run_to_data(run: &MemRun) -> SegmentData {
    let mut d = SegmentData {
        uids: run.uids.clone(),
        times: run.times.clone(),
        events: run.events.clone(),
        ..Default::default()
    };
    for (row, &(b, r)) in run.loc.iter().enumerate() {
        if let Some(props) = run
            .batches
            .get(b as usize)
            .and_then(|b| b.props.get(r as usize))
        {
            for (pid, v) in props {
                d.props
                    .entry(*pid)
                    .or_default()
                    .push((row as u32, v.clone()));
            }
        }
    }
    d
}

/// Reads whole segments (oldest first) and merges them by (user, time).
///
/// Rows are merged without their properties, remembering where each came
/// from; then each property column of each segment moves whole to the
/// merged rows. The cost is rows plus property entries (a sparse chunk is
/// read as its entries), not rows × property names.
pub(crate) fn merge_segments(segs: &[(u64, Arc<Segment>)]) -> Result<SegmentData> {
    let live: Vec<Arc<Segment>> = segs
        .iter()
        .map(|(_, s)| s.clone())
        .filter(|s| s.meta().rows > 0)
        .collect();
    let spec = ScanSpec {
        origins: true,
        ..ScanSpec::default()
    };
    let snap = ShardSnapshot {
        segments: live.clone(),
        mem: Vec::new(),
    };
    // Per segment: the merged row of each of its rows.
    let mut moved: Vec<Vec<u32>> = live
        .iter()
        .map(|s| vec![u32::MAX; s.meta().rows as usize])
        .collect();
    let mut d = SegmentData::default();
    let mut lost = None;
    snap.scan(&spec, |u| {
        for i in 0..u.len() {
            let row = d.uids.len() as u32;
            d.uids.push(u.uid);
            d.times.push(u.times[i]);
            d.events.push(u.events[i]);
            let slot = u.origin(i).and_then(|(s, r)| moved.get_mut(s)?.get_mut(r));
            match slot {
                Some(slot) => *slot = row,
                None => lost = Some(row),
            }
        }
    })?;
    let unplaced = |seg: &Segment, why: String| Error::corrupt(seg.path(), format!("merge: {why}"));
    if let (Some(row), Some(seg)) = (lost, live.first()) {
        return Err(unplaced(seg, format!("merged row {row} has no stored row")));
    }
    let mut entries: Vec<(usize, usize)> = Vec::new();
    for (seg, moved) in live.iter().zip(&moved) {
        if let Some(r) = moved.iter().position(|&m| m == u32::MAX) {
            return Err(unplaced(seg, format!("row {r} was not read")));
        }
        for pid in seg.prop_ids() {
            let Some(mut reader) = seg.prop_reader(pid)? else {
                continue;
            };
            let col = d.props.entry(pid).or_default();
            for k in 0..reader.chunks() {
                entries.clear();
                reader.for_each_entry(k, |row, idx| entries.push((row, idx)))?;
                for &(row, idx) in &entries {
                    // Both checked by the reader: rows within the segment,
                    // indexes within the values.
                    match (moved.get(row), reader.values.get(idx.wrapping_sub(1))) {
                        (Some(&to), Some(v)) => col.push((to, v.clone())),
                        _ => {
                            return Err(unplaced(
                                seg,
                                format!("prop.{pid}: row {row} out of place"),
                            ))
                        }
                    }
                }
            }
        }
    }
    for col in d.props.values_mut() {
        col.sort_unstable_by_key(|e| e.0);
    }
    Ok(d)
}
