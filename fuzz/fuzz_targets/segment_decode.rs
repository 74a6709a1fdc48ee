//! Opening and fully decoding an arbitrary (or mutated) segment file never
//! panics: damage is an error naming the file.
#![no_main]

use footprint_storage::segment::{write_segment, Segment, SegmentData, SegmentFormat};
use footprint_storage::{ScanSpec, ShardSnapshot, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("00000001.seg");
    // Half the inputs: a valid segment with bytes flipped where the input says.
    if data.first().is_some_and(|b| b & 1 == 1) {
        let mut d = SegmentData::default();
        for (i, &b) in data.iter().enumerate().take(400) {
            d.uids.push(u32::from(b) / 16 + (i as u32 / 200) * 16);
            d.events.push(u32::from(b % 5));
            // Some equal times, so tie ranks are exercised.
            d.times.push(1_000 + (i as i64 / 3) * 17);
            if b % 3 == 0 {
                d.props.entry(0).or_default().push((i as u32, Value::Int(i64::from(b))));
            }
            // A rare property: its chunk is written as entries (sparse).
            if b == 0x5a || i % 97 == 3 {
                d.props.entry(1).or_default().push((i as u32, Value::Str(format!("r{b}"))));
            }
        }
        let mut order: Vec<usize> = (0..d.uids.len()).collect();
        order.sort_by_key(|&i| (d.uids[i], d.times[i]));
        let mut rank = vec![0u32; order.len()];
        for (to, &from) in order.iter().enumerate() {
            rank[from] = to as u32;
        }
        let sorted = SegmentData {
            uids: order.iter().map(|&i| d.uids[i]).collect(),
            events: order.iter().map(|&i| d.events[i]).collect(),
            times: order.iter().map(|&i| d.times[i]).collect(),
            props: d
                .props
                .iter()
                .map(|(&pid, col)| {
                    let mut col: Vec<(u32, Value)> =
                        col.iter().map(|(r, v)| (rank[*r as usize], v.clone())).collect();
                    col.sort_by_key(|e| e.0);
                    (pid, col)
                })
                .collect(),
        };
        let format = if data[0] & 2 == 0 {
            SegmentFormat::EventMajor
        } else {
            SegmentFormat::TimeOrder
        };
        write_segment(&path, 0, &sorted, format).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        for pair in data.chunks(3).skip(1) {
            if pair.len() == 3 && !bytes.is_empty() {
                let at = (usize::from(pair[0]) << 8 | usize::from(pair[1])) % bytes.len();
                bytes[at] ^= pair[2];
            }
        }
        std::fs::write(&path, bytes).unwrap();
    } else {
        std::fs::write(&path, data).unwrap();
    }
    let Ok(seg) = Segment::open(&path) else { return };
    let _ = seg.event_row_counts();
    let _ = seg.event_bitmaps();
    for p in seg.prop_ids() {
        let _ = seg.prop(p);
        if let Ok(Some(mut r)) = seg.prop_reader(p) {
            for k in 0..r.chunks() {
                let _ = r.for_each_entry(k, |_, _| {});
            }
        }
    }
    let snap = ShardSnapshot { segments: vec![std::sync::Arc::new(seg)], mem: Vec::new() };
    // Full scans, and scans that keep some events, skip times, jump over
    // users or narrow the range, chosen by the input.
    let pick = data.get(1).copied().unwrap_or(0);
    let specs = [
        ScanSpec { props: vec![0, 1], origins: true, ..ScanSpec::default() },
        ScanSpec {
            props: vec![0],
            events: Some((0..5).map(|e| pick >> e & 1 == 1).collect()),
            skip_times: pick & 0x20 != 0,
            users: (pick & 0x40 != 0).then(|| (0..64u32).filter(|u| u % 3 != 0).collect()),
            range: (pick & 0x80 != 0).then_some((1_500, 5_000)),
            ..ScanSpec::default()
        },
        // Per-event runs (format 2), with the same choices.
        ScanSpec {
            events: Some((0..5).map(|e| pick >> e & 1 == 1).collect()),
            users: (pick & 0x40 != 0).then(|| (0..64u32).filter(|u| u % 3 != 0).collect()),
            range: (pick & 0x80 != 0).then_some((1_500, 5_000)),
            runs: true,
            ..ScanSpec::default()
        },
    ];
    for spec in &specs {
        let _ = snap.scan(spec, |u| {
            for (_, times) in u.runs.iter().flat_map(|r| r.iter()) {
                let _ = times.last();
            }
            for i in 0..u.len() {
                let _ = u.prop(0, i);
                let _ = u.origin(i);
                let _ = u.times.get(i);
            }
        });
    }
});
