//! Damaged files give an error naming the file — never a panic, never
//! wrong data.

use std::path::{Path, PathBuf};

use footprint_engine::{Engine, EngineOptions, Event, StoreOptions, Value};

fn opts() -> EngineOptions {
    EngineOptions {
        store: StoreOptions {
            shards: 2,
            memtable_rows: 1_000_000,
            max_segments_per_shard: 8,
            ..StoreOptions::default()
        },
        background: false,
        ..Default::default()
    }
}

fn events(n: i64, tag: &str) -> Vec<Event> {
    (0..n)
        .map(|i| Event {
            user: format!("u{}", i % 7),
            event: if i % 2 == 0 {
                "visit".into()
            } else {
                "pay".into()
            },
            time: 1_700_000_000_000 + i * 1000,
            props: vec![
                ("tag".into(), Value::Str(tag.into())),
                ("n".into(), Value::Int(i)),
            ],
        })
        .collect()
}

/// A store with two flushed segment sets and three WAL batches.
fn build(dir: &Path) {
    let engine = Engine::open(dir, opts()).unwrap();
    engine.ingest(events(200, "a")).unwrap();
    engine.flush().unwrap();
    engine.ingest(events(100, "b")).unwrap();
    engine.flush().unwrap();
    for t in ["c", "d", "e"] {
        engine.ingest(events(30, t)).unwrap();
    }
    // Dropped without close: the last batches stay in the WAL.
}

fn files(dir: &Path, sub: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

fn flip(path: &Path, offset: usize) {
    let mut b = std::fs::read(path).unwrap();
    let off = offset.min(b.len() - 1);
    b[off] ^= 0x5a;
    std::fs::write(path, b).unwrap();
}

fn open_err(dir: &Path) -> String {
    match Engine::open(dir, opts()) {
        Ok(_) => panic!("opened a damaged store"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn flipped_bytes_in_segments_are_reported_with_the_file() {
    let seg_len = {
        let d = tempfile::tempdir().unwrap();
        build(d.path());
        std::fs::metadata(&files(d.path(), "segments", "seg")[0])
            .unwrap()
            .len() as usize
    };
    // Header, inside column data, footer, trailing magic, and a sweep.
    let mut offsets = vec![
        0,
        3,
        9,
        40,
        seg_len / 2,
        seg_len - 30,
        seg_len - 12,
        seg_len - 1,
    ];
    offsets.extend((0..seg_len).step_by(seg_len / 25 + 1));
    for off in offsets {
        let d = tempfile::tempdir().unwrap();
        build(d.path());
        let target = files(d.path(), "segments", "seg")[0].clone();
        flip(&target, off);
        let err = open_err(d.path());
        let name = target.file_name().unwrap().to_string_lossy().to_string();
        assert!(err.contains(&name), "offset {off}: {err}");
    }
}

#[test]
fn truncated_segment_is_reported() {
    let d = tempfile::tempdir().unwrap();
    build(d.path());
    let target = files(d.path(), "segments", "seg")[1].clone();
    let b = std::fs::read(&target).unwrap();
    std::fs::write(&target, &b[..b.len() / 2]).unwrap();
    let err = open_err(d.path());
    assert!(
        err.contains(&*target.file_name().unwrap().to_string_lossy()),
        "{err}"
    );
}

#[test]
fn damage_inside_the_wal_is_an_error_but_a_torn_tail_is_cut() {
    let d = tempfile::tempdir().unwrap();
    build(d.path());
    let wal = files(d.path(), "wal", "log")
        .into_iter()
        .find(|p| std::fs::metadata(p).unwrap().len() > 100)
        .unwrap();
    let len = std::fs::metadata(&wal).unwrap().len() as usize;
    // A byte in the first frame, with whole frames after it: corruption.
    let d2 = tempfile::tempdir().unwrap();
    copy_dir(d.path(), d2.path());
    flip(&d2.path().join("wal").join(wal.file_name().unwrap()), 30);
    let err = open_err(d2.path());
    assert!(
        err.contains(&*wal.file_name().unwrap().to_string_lossy()),
        "{err}"
    );
    // Cut inside the last frame: a torn write, never acknowledged, so the
    // store opens with the two whole batches and reports the cut.
    let d3 = tempfile::tempdir().unwrap();
    copy_dir(d.path(), d3.path());
    let p = d3.path().join("wal").join(wal.file_name().unwrap());
    let b = std::fs::read(&p).unwrap();
    std::fs::write(&p, &b[..len - 7]).unwrap();
    let engine = Engine::open(d3.path(), opts()).unwrap();
    assert_eq!(engine.open_report().torn_tails.len(), 1);
    assert_eq!(engine.stats().unwrap().events, 300 + 60);
}

#[test]
fn damaged_manifest_and_dictionaries_are_reported() {
    for (sub, name) in [
        ("", "MANIFEST"),
        ("dict", "users.dict"),
        ("dict", "events.dict"),
        ("dict", "props.dict"),
    ] {
        let d = tempfile::tempdir().unwrap();
        build(d.path());
        let p = if sub.is_empty() {
            d.path().join(name)
        } else {
            d.path().join(sub).join(name)
        };
        flip(&p, 20);
        let err = open_err(d.path());
        assert!(err.contains(name), "{name}: {err}");
    }
}

#[test]
fn a_second_process_cannot_open_the_same_directory() {
    let d = tempfile::tempdir().unwrap();
    let _a = Engine::open(d.path(), opts()).unwrap();
    let err = open_err(d.path());
    assert!(err.contains("locked"), "{err}");
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dst).unwrap();
            copy_dir(&e.path(), &dst);
        } else if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// A segment of a format this version does not know is refused with an
/// error naming the file and the version, not misread.
#[test]
fn unknown_segment_format_is_refused_by_name() {
    let d = tempfile::tempdir().unwrap();
    build(d.path());
    let seg = files(d.path(), "segments", "seg").remove(0);
    let mut b = std::fs::read(&seg).unwrap();
    assert!(b.starts_with(b"FPSEG002"), "new segments are format 2");
    b[..8].copy_from_slice(b"FPSEG007");
    std::fs::write(&seg, b).unwrap();
    let e = open_err(d.path());
    assert!(e.contains("format 007"), "{e}");
    assert!(e.contains(&seg.display().to_string()), "{e}");
}
