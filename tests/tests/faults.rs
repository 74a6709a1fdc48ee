//! Fault injection on the write path: a failed fsync, write or rename, or a
//! full disk, during WAL append, flush, compaction and the manifest swap.
//! Each case checks the promises a user relies on: no acknowledged write is
//! lost, no write is acknowledged after the failure, the process stays up,
//! reads go on, and the store says why it refuses writes.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use footprint_engine::storage::failpoint::{arm, Fault, Op};
use footprint_engine::storage::StoreOptions;
use footprint_engine::{Engine, EngineOptions, Event, Value};

fn opts() -> EngineOptions {
    EngineOptions {
        store: StoreOptions {
            shards: 4,
            memtable_rows: 1 << 30,
            max_segments_per_shard: 2,
            ..Default::default()
        },
        background: false,
        query_threads: 1,
        ..Default::default()
    }
}

fn batch(writer: usize, seq: u64, n: u64) -> Vec<Event> {
    (0..n)
        .map(|i| Event {
            user: format!("w{writer}-{}", (seq * n + i) % 97),
            event: "tick".into(),
            time: 1_767_225_600_000 + (seq * n + i) as i64,
            props: vec![("key".into(), Value::Str(format!("{writer}/{seq}/{i}")))],
        })
        .collect()
}

/// Every stored event's `key`; panics on a duplicate.
fn stored_keys(engine: &Engine) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    engine
        .store()
        .for_each_event(|e| {
            let k = match e.prop("key") {
                Some(Value::Str(s)) => s.clone(),
                other => panic!("an event without its key: {other:?}"),
            };
            assert!(keys.insert(k.clone()), "{k} stored twice");
        })
        .unwrap();
    keys
}

fn keys_of(events: &[Event]) -> impl Iterator<Item = String> + '_ {
    events.iter().map(|e| match e.prop("key") {
        Some(Value::Str(s)) => s.clone(),
        _ => unreachable!(),
    })
}

/// Six writers ingest until the armed fault fires; returns the keys
/// acknowledged and the keys attempted.
fn write_until_failure(engine: &Engine) -> (BTreeSet<String>, BTreeSet<String>) {
    let failed = AtomicBool::new(false);
    let acked = Mutex::new(BTreeSet::new());
    let tried = Mutex::new(BTreeSet::new());
    std::thread::scope(|s| {
        for w in 0..6 {
            let (failed, acked, tried) = (&failed, &acked, &tried);
            s.spawn(move || {
                for seq in 0..400u64 {
                    let evs = batch(w, seq, 5);
                    tried.lock().unwrap().extend(keys_of(&evs));
                    let seen_failure = failed.load(Ordering::SeqCst);
                    match engine.ingest(evs.clone()) {
                        Ok(_) => {
                            assert!(
                                !seen_failure,
                                "writer {w} was acknowledged after another saw the failure"
                            );
                            acked.lock().unwrap().extend(keys_of(&evs));
                        }
                        Err(e) => {
                            failed.store(true, Ordering::SeqCst);
                            let msg = e.to_string();
                            assert!(
                                msg.contains("I/O error") || msg.contains("refused"),
                                "{msg}"
                            );
                            // Every later write is refused too.
                            assert!(engine.ingest(batch(w, 10_000 + seq, 1)).is_err());
                            return;
                        }
                    }
                }
            });
        }
    });
    (acked.into_inner().unwrap(), tried.into_inner().unwrap())
}

/// After a fault: the store refuses writes and says why, reads go on, and
/// a reopen finds every acknowledged event once.
fn check_after_fault(
    dir: &std::path::Path,
    engine: Engine,
    acked: &BTreeSet<String>,
    tried: &BTreeSet<String>,
    why: &str,
) {
    let reason = engine
        .store()
        .poisoned()
        .expect("the store says it is poisoned");
    assert!(reason.contains(why), "reason {reason:?} should say {why:?}");
    let e = engine.ingest(batch(99, 0, 1)).unwrap_err().to_string();
    assert!(e.contains(why), "a refused write names the cause: {e}");
    assert!(engine.flush().is_err());
    // Reads go on.
    let r = engine
        .query(r#"{"kind": "events", "metrics": [{"event": "tick"}], "interval": "total"}"#)
        .unwrap();
    assert!(r.is_object());
    drop(engine);
    let engine = Engine::open(dir, opts()).unwrap();
    let stored = stored_keys(&engine);
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    let stray: Vec<_> = stored.difference(tried).collect();
    assert!(stray.is_empty(), "events never sent: {stray:?}");
    // The reopened store works again.
    engine.ingest(batch(98, 0, 3)).unwrap();
    engine.flush().unwrap();
}

fn fault(dir: &std::path::Path, op: Op, path_contains: &str, errno: i32, skip: u32) -> Fault {
    Fault {
        under: dir.to_owned(),
        op,
        path_contains: path_contains.into(),
        errno,
        skip,
        times: 1,
        stall: Default::default(),
    }
}

const EIO: i32 = 5;
const ENOSPC: i32 = 28;

#[test]
fn a_failed_wal_fsync_acknowledges_nothing_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), opts()).unwrap();
    let g = arm(fault(dir.path(), Op::Fsync, ".log", EIO, 40));
    let (acked, tried) = write_until_failure(&engine);
    assert_eq!(g.failures(), 1);
    drop(g);
    assert!(!acked.is_empty());
    check_after_fault(dir.path(), engine, &acked, &tried, "Input/output error");
}

#[test]
fn a_full_disk_during_wal_append_acknowledges_nothing_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), opts()).unwrap();
    let g = arm(fault(dir.path(), Op::Write, ".log", ENOSPC, 60));
    let (acked, tried) = write_until_failure(&engine);
    assert_eq!(g.failures(), 1);
    drop(g);
    check_after_fault(
        dir.path(),
        engine,
        &acked,
        &tried,
        "No space left on device",
    );
}

/// Writes acknowledged batches, then runs `step` with `fault` armed, which
/// must fail.
fn maintenance_fault(
    setup_flushes: usize,
    fault_of: impl FnOnce(&std::path::Path) -> Fault,
    step: impl FnOnce(&Engine) -> footprint_engine::Result<()>,
    why: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), opts()).unwrap();
    let mut acked = BTreeSet::new();
    let mut seq = 0;
    for round in 0..=setup_flushes {
        for _ in 0..20 {
            let evs = batch(round % 3, seq, 7);
            seq += 1;
            engine.ingest(evs.clone()).unwrap();
            acked.extend(keys_of(&evs));
        }
        if round < setup_flushes {
            engine.flush().unwrap();
        }
    }
    let g = arm(fault_of(dir.path()));
    let r = step(&engine);
    assert!(r.is_err(), "the step should fail under the fault");
    assert_eq!(g.failures(), 1);
    drop(g);
    let tried = acked.clone();
    check_after_fault(dir.path(), engine, &acked, &tried, why);
}

#[test]
fn a_full_disk_while_flush_writes_a_segment() {
    maintenance_fault(
        0,
        |d| fault(d, Op::Write, "segments", ENOSPC, 1),
        |e| e.flush(),
        "No space left on device",
    );
}

#[test]
fn a_failed_fsync_of_the_dictionaries_during_flush() {
    maintenance_fault(
        0,
        |d| fault(d, Op::Fsync, "dict", EIO, 0),
        |e| e.flush(),
        "Input/output error",
    );
}

#[test]
fn a_failed_rename_of_the_manifest_during_flush() {
    maintenance_fault(
        1,
        |d| fault(d, Op::Rename, "MANIFEST", EIO, 0),
        |e| e.flush(),
        "Input/output error",
    );
}

#[test]
fn a_full_disk_while_the_manifest_is_written() {
    maintenance_fault(
        1,
        |d| fault(d, Op::Write, "MANIFEST", ENOSPC, 0),
        |e| e.flush(),
        "No space left on device",
    );
}

#[test]
fn a_failed_fsync_during_compaction() {
    maintenance_fault(
        4,
        |d| fault(d, Op::Fsync, "segments", EIO, 0),
        |e| e.compact().map(|_| ()),
        "Input/output error",
    );
}

#[test]
fn a_full_disk_during_compaction() {
    maintenance_fault(
        4,
        |d| fault(d, Op::Write, "segments", ENOSPC, 0),
        |e| e.compact().map(|_| ()),
        "No space left on device",
    );
}

#[test]
fn a_failed_manifest_swap_during_compaction() {
    maintenance_fault(
        4,
        |d| fault(d, Op::Rename, "MANIFEST", EIO, 0),
        |e| e.compact().map(|_| ()),
        "Input/output error",
    );
}

#[test]
fn a_full_disk_during_a_bulk_load() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), opts()).unwrap();
    let evs = batch(1, 0, 50);
    engine.ingest(evs.clone()).unwrap();
    let acked: BTreeSet<String> = keys_of(&evs).collect();
    let g = arm(fault(dir.path(), Op::Write, "segments", ENOSPC, 2));
    let mut load = engine.store().bulk_load(100).unwrap();
    let mut r = Ok(());
    for seq in 1..20 {
        r = r.and_then(|()| load.add(batch(2, seq, 50)).map(|_| ()));
    }
    let r = r.and_then(|()| load.commit().map(|_| ()));
    assert!(r.is_err());
    assert_eq!(g.failures(), 1);
    drop(g);
    // Nothing of the load is visible; what was acknowledged before stays.
    check_after_fault(
        dir.path(),
        engine,
        &acked,
        &acked,
        "No space left on device",
    );
}

/// A flush, compaction or bulk publication does its fsyncs before it takes
/// the state lock: a disk that stalls them stalls neither ingest nor
/// queries.
#[test]
fn a_stalled_fsync_in_maintenance_stalls_neither_ingest_nor_queries() {
    for (target, step) in [
        ("segments", "flush"),
        ("MANIFEST", "flush"),
        ("dict", "flush"),
        ("segments", "compact"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), opts()).unwrap();
        for round in 0..4 {
            engine.ingest(batch(1, round, 20)).unwrap();
            engine.flush().unwrap();
        }
        engine.ingest(batch(2, 0, 20)).unwrap();
        let g = arm(Fault {
            stall: std::time::Duration::from_secs(3),
            errno: 0,
            ..fault(dir.path(), Op::Fsync, target, 0, 0)
        });
        std::thread::scope(|s| {
            let maintenance = s.spawn(|| match step {
                "flush" => engine.flush(),
                _ => engine.compact().map(|_| ()),
            });
            // Wait until the maintenance task is inside the stalled fsync.
            while g.failures() == 0 {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            for seq in 1..5 {
                engine.ingest(batch(3, seq, 10)).unwrap();
                let r = engine
                    .query(r#"{"kind": "events", "metrics": [{"event": "tick"}], "interval": "total"}"#)
                    .unwrap();
                assert!(r.is_object());
                engine.store().snapshot();
            }
            assert!(
                !maintenance.is_finished(),
                "{step} with a stalled {target} fsync: ingest and queries ran while it was stalled"
            );
            maintenance.join().unwrap().unwrap();
        });
        assert_eq!(engine.stats().unwrap().events, 4 * 20 + 20 + 4 * 10);
    }
}
