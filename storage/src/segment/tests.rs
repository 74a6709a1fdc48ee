//! Property columns read back exactly whether a chunk is written dense or
//! as its entries, and scans say where each row is stored.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::scan::{ScanSpec, ShardSnapshot};
use crate::value::Value;

/// `rows` rows of users 0..40 in (user, time) order, over 3 events;
/// property 0 on the rows `present` picks (by one in `every`), property 1
/// on every row.
fn data(rows: usize, every: usize, seed: u64) -> SegmentData {
    let mut d = SegmentData::default();
    let mut x = seed | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..rows {
        d.uids.push((i * 40 / rows.max(1)) as u32);
        d.times.push(1_000 + i as i64);
        d.events.push((next() % 3) as u32);
        if every > 0 && next() % every as u64 == 0 {
            let v = Value::Int((next() % 5) as i64);
            d.props.entry(0).or_default().push((i as u32, v));
        }
        d.props
            .entry(1)
            .or_default()
            .push((i as u32, Value::Str(format!("s{}", i % 3))));
    }
    d
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn sparse_and_dense_chunks_read_back(
        big in any::<bool>(),
        every in prop_oneof![Just(0usize), Just(1), Just(2), Just(15), Just(17), Just(400)],
        seed in any::<u64>(),
        v1 in any::<bool>(),
    ) {
        let rows = if big { PROP_CHUNK + 3_000 } else { 300 };
        let d = data(rows, every, seed);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000001.seg");
        let format = if v1 { SegmentFormat::TimeOrder } else { SegmentFormat::EventMajor };
        write_segment(&path, 0, &d, format).unwrap();
        let seg = Arc::new(Segment::open(&path).unwrap());
        for pid in [0u32, 1] {
            let want: Vec<(u32, Value)> = d.props.get(&pid).cloned().unwrap_or_default();
            let Some(col) = seg.prop(pid).unwrap() else {
                prop_assert!(want.is_empty());
                continue;
            };
            // The entries are the dense column's non-zero rows.
            let mut reader = seg.prop_reader(pid).unwrap().unwrap();
            let mut entries = Vec::new();
            for k in 0..reader.chunks() {
                reader.for_each_entry(k, |r, i| entries.push((r, i))).unwrap();
            }
            let dense: Vec<(usize, usize)> = col.idx.iter().enumerate()
                .filter(|(_, &i)| i != 0).map(|(r, &i)| (r, i as usize)).collect();
            prop_assert_eq!(&entries, &dense);
            // The same values, counted.
            let mut got: BTreeMap<String, usize> = BTreeMap::new();
            for &(_, i) in &entries {
                *got.entry(format!("{:?}", col.values[i - 1])).or_default() += 1;
            }
            let mut exp: BTreeMap<String, usize> = BTreeMap::new();
            for (_, v) in &want {
                *exp.entry(format!("{v:?}")).or_default() += 1;
            }
            prop_assert_eq!(got, exp);
        }
        // A scan's rows carry their property values, and their origin
        // points at the stored row holding the same values.
        let snap = ShardSnapshot { segments: vec![seg.clone()], mem: Vec::new() };
        let spec = ScanSpec { props: vec![0, 1], origins: true, ..ScanSpec::default() };
        let cols = [seg.prop(0).unwrap(), seg.prop(1).unwrap()];
        let mut seen = vec![false; rows];
        let mut n = 0;
        snap.scan(&spec, |u| {
            for i in 0..u.len() {
                let (s, r) = u.origin(i).unwrap();
                assert_eq!(s, 0);
                assert!(!std::mem::replace(&mut seen[r], true), "row {r} twice");
                for (k, col) in cols.iter().enumerate() {
                    assert_eq!(u.prop(k, i), col.as_ref().and_then(|c| c.get(r)));
                }
                n += 1;
            }
        }).unwrap();
        prop_assert_eq!(n, rows);
    }
}
