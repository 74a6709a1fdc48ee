//! Format 2 segments whose checksums are right but whose streams do not
//! add up: every scan reports corruption naming the file, never panics.

use std::path::Path;
use std::sync::Arc;

use crate::bitpack;
use crate::codec::{Dec, Enc};
use crate::scan::{ScanSpec, ShardSnapshot};
use crate::segment::{write_segment, Segment, SegmentData, SegmentFormat};

fn data() -> SegmentData {
    let mut d = SegmentData::default();
    for u in 0..5u32 {
        for i in 0..40i64 {
            d.uids.push(u);
            d.events.push((i % 3) as u32);
            // Pairs of equal times, so tie ranks are not all zero.
            d.times.push(1_000 + (i / 2) * 7 + i64::from(u));
        }
    }
    d
}

/// Rewrites section `name` of the segment at `path` with `bytes`, fixing
/// every offset and checksum so only the content is wrong.
fn replace_section(path: &Path, name: &str, bytes: &[u8]) {
    let file = std::fs::read(path).unwrap();
    let n = file.len();
    let flen = u32::from_le_bytes(file[n - 16..n - 12].try_into().unwrap()) as usize;
    let footer = &file[n - 16 - flen..n - 16];
    let mut d = Dec::new(footer);
    let ns = d.var().unwrap() as usize;
    let mut sections = Vec::new();
    for _ in 0..ns {
        let s = d.str().unwrap().to_owned();
        let off = d.u64().unwrap() as usize;
        let len = d.u64().unwrap() as usize;
        d.u32().unwrap();
        sections.push((s, file[off..off + len].to_vec()));
    }
    let rest = d.rest().to_vec();
    let mut out = file[..8].to_vec();
    let mut f = Enc::new();
    f.var(ns as u64);
    let mut found = false;
    for (s, b) in &sections {
        let b = if s == name {
            found = true;
            bytes
        } else {
            b.as_slice()
        };
        f.str(s);
        f.u64(out.len() as u64);
        f.u64(b.len() as u64);
        f.u32(crc32fast::hash(b));
        out.extend_from_slice(b);
    }
    assert!(found, "no section {name}");
    f.buf.extend_from_slice(&rest);
    out.extend_from_slice(&f.buf);
    out.extend_from_slice(&(f.buf.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&f.buf).to_le_bytes());
    out.extend_from_slice(b"FPSEGEND");
    std::fs::write(path, out).unwrap();
}

fn packed(values: &[u64]) -> Vec<u8> {
    let mut e = Enc::new();
    bitpack::encode(values, &mut e);
    e.buf
}

/// Opens the damaged segment and scans it every way; returns the error.
fn scan_error(path: &Path) -> String {
    let seg = match Segment::open(path) {
        Ok(s) => s,
        Err(e) => return e.to_string(),
    };
    let snap = ShardSnapshot {
        segments: vec![Arc::new(seg)],
        mem: Vec::new(),
    };
    let mut errors = Vec::new();
    let specs = [
        ScanSpec::default(),
        ScanSpec {
            runs: true,
            events: Some(vec![true, true, false]),
            ..ScanSpec::default()
        },
        ScanSpec {
            skip_times: true,
            ..ScanSpec::default()
        },
    ];
    for spec in &specs {
        match snap.scan(spec, |_| {}) {
            Ok(()) => errors.push(String::new()),
            Err(e) => errors.push(e.to_string()),
        }
    }
    // The full scan reads every stream, so it must catch it.
    assert!(!errors[0].is_empty(), "the full scan did not notice");
    errors.swap_remove(0)
}

#[test]
fn inconsistent_streams_are_corruption_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("00000001.seg");
    // (section, replacement, words the error must contain)
    let users_per_pair: Vec<u64> = (0..5).map(|i| u64::from(i > 0)).collect();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        // A pair longer than the stream.
        ("ev.0.counts", packed(&[14, 14, 14, 14, 1000]), "outside"),
        // A pair of no rows.
        ("ev.0.counts", packed(&[14, 14, 14, 0, 14]), "outside"),
        // Users not ascending (a zero delta after the first).
        ("ev.1.users", packed(&[0, 1, 0, 1, 1]), "outside"),
        // A user beyond the users table.
        ("ev.1.users", packed(&[0, 1, 1, 1, 90]), "outside"),
        // Fewer pairs than counts.
        ("ev.2.users", packed(&users_per_pair[..4]), "lengths"),
        // A time delta beyond the segment's span.
        ("ev.1.time", packed(&[u64::MAX / 2; 65]), "range"),
        // A stream of the wrong length.
        ("ev.2.time", packed(&[0; 3]), "rows"),
        // Tie ranks of the wrong length.
        ("ev.0.tie", packed(&[0; 3]), "lengths"),
        // An order column that names a stream the user lacks, or puts
        // too many rows in one of the user's streams.
        ("order", packed(&[5; 200]), "order"),
        ("order", packed(&[0; 200]), "order"),
        ("order", packed(&[0; 7]), "order"),
    ];
    for (name, bytes, want) in cases {
        write_segment(&path, 0, &data(), SegmentFormat::EventMajor).unwrap();
        replace_section(&path, name, &bytes);
        let e = scan_error(&path);
        assert!(e.contains("00000001.seg"), "{name}: {e}");
        assert!(e.contains(want), "{name}: expected \"{want}\" in: {e}");
    }
}

/// Every row a scan hands over: (user, time, event, property 0).
fn rows_of(path: &Path, spec: &ScanSpec) -> Vec<(u32, i64, u32, Option<crate::value::Value>)> {
    let snap = ShardSnapshot {
        segments: vec![Arc::new(Segment::open(path).unwrap())],
        mem: Vec::new(),
    };
    let mut out = Vec::new();
    snap.scan(spec, |u| {
        if let Some(runs) = u.runs {
            for (ev, times) in runs.iter() {
                out.extend(times.iter().map(|&t| (u.uid, t, ev, None)));
            }
        }
        for i in 0..u.len() {
            out.push((u.uid, u.times[i], u.events[i], u.prop(0, i).cloned()));
        }
    })
    .unwrap();
    out
}

#[test]
fn following_the_order_column_equals_merging_by_time_and_tie() {
    use crate::value::Value;
    let dir = tempfile::tempdir().unwrap();
    let mut d = SegmentData::default();
    // Five events, many equal times, a property on some rows.
    let mut x = 7u64;
    let mut col = Vec::new();
    for u in 0..60u32 {
        let mut t = 1_000i64;
        for _ in 0..(u % 13) * 9 + 1 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            t += ((x >> 33) % 3) as i64;
            let row = d.uids.len() as u32;
            d.uids.push(u);
            d.events.push(((x >> 40) % 5) as u32);
            d.times.push(t);
            if (x >> 20).is_multiple_of(2) {
                col.push((row, Value::Int(row as i64)));
            }
        }
    }
    d.props.insert(0, col);
    let with = dir.path().join("00000001.seg");
    let without = dir.path().join("00000002.seg");
    write_segment(&with, 0, &d, SegmentFormat::EventMajor).unwrap();
    write_segment(&without, 0, &d, SegmentFormat::EventMajorWithoutOrder).unwrap();
    assert!(Segment::open(&with)
        .unwrap()
        .order_reader()
        .unwrap()
        .is_some());
    assert!(Segment::open(&without)
        .unwrap()
        .order_reader()
        .unwrap()
        .is_none());
    let mut users = roaring::RoaringBitmap::new();
    users.extend((0..60u32).filter(|u| u % 3 != 1));
    let specs = [
        ScanSpec::default(),
        ScanSpec {
            props: vec![0],
            ..ScanSpec::default()
        },
        ScanSpec {
            props: vec![0],
            events: Some(vec![true, false, true, true, true]),
            range: Some((1_010, 1_200)),
            users: Some(users),
            ..ScanSpec::default()
        },
        ScanSpec {
            events: Some(vec![true, true, false, true]),
            runs: true,
            ..ScanSpec::default()
        },
    ];
    for spec in &specs {
        let a = rows_of(&with, spec);
        assert!(!a.is_empty());
        assert_eq!(a, rows_of(&without, spec), "{spec:?}");
    }
    // And both are the input, in its order (ties in arrival order).
    let all = rows_of(&with, &specs[1]);
    let props: std::collections::HashMap<u32, Value> = d.props[&0].iter().cloned().collect();
    let input: Vec<_> = (0..d.len())
        .map(|i| {
            (
                d.uids[i],
                d.times[i],
                d.events[i],
                props.get(&(i as u32)).cloned(),
            )
        })
        .collect();
    assert_eq!(all, input);
}
