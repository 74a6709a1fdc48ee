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
    ];
    for (name, bytes, want) in cases {
        write_segment(&path, 0, &data(), SegmentFormat::EventMajor).unwrap();
        replace_section(&path, name, &bytes);
        let e = scan_error(&path);
        assert!(e.contains("00000001.seg"), "{name}: {e}");
        assert!(e.contains(want), "{name}: expected \"{want}\" in: {e}");
    }
}
