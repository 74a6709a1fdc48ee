//! Turning memtable runs and segments into the columns of a new segment.
//! Pure data work: no locks, no files but the segments it reads.

use std::sync::Arc;

use crate::error::Result;
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
pub(crate) fn merge_segments(segs: &[(u64, Arc<Segment>)]) -> Result<SegmentData> {
    let mut all_props: Vec<u32> = segs.iter().flat_map(|(_, s)| s.prop_ids()).collect();
    all_props.sort_unstable();
    all_props.dedup();
    let spec = ScanSpec {
        range: None,
        props: all_props.clone(),
        users: None,
        skip: None,
        events: None,
        skip_times: false,
        runs: false,
    };
    let snap = ShardSnapshot {
        segments: segs.iter().map(|(_, s)| s.clone()).collect(),
        mem: Vec::new(),
    };
    let mut d = SegmentData::default();
    snap.scan(&spec, |u| {
        for i in 0..u.len() {
            let row = d.uids.len() as u32;
            d.uids.push(u.uid);
            d.times.push(u.times[i]);
            d.events.push(u.events[i]);
            for (k, pid) in all_props.iter().enumerate() {
                if let Some(v) = u.prop(k, i) {
                    d.props.entry(*pid).or_default().push((row, v.clone()));
                }
            }
        }
    })?;
    Ok(d)
}
