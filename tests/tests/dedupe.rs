//! Idempotent ingest (`Engine::ingest_once`): an event resent with the
//! same id is stored once, across batches, flushes, compactions and
//! reopens (the keys live in the stored rows, so a restart or a crash
//! forgets none); ids are scoped by user; events without an id are never
//! left out.

use footprint_engine::dedupe::DEDUPE_PROP;
use footprint_engine::{Engine, EngineOptions, Event, StoreOptions};

fn open(dir: &std::path::Path) -> Engine {
    let opts = EngineOptions {
        store: StoreOptions {
            shards: 2,
            ..Default::default()
        },
        background: false,
        ..Default::default()
    };
    Engine::open(dir, opts).unwrap()
}

fn ev(user: &str, name: &str, time: i64) -> Event {
    Event {
        user: user.into(),
        event: name.into(),
        time,
        props: Vec::new(),
    }
}

const T: i64 = 1_767_225_600_000; // 2026-01-01

fn batch() -> Vec<(Event, Option<String>)> {
    vec![
        (ev("u1", "visit", T), Some("id-1".into())),
        (ev("u1", "signup", T + 1), Some("id-2".into())),
        // Same id, other user: a different event.
        (ev("u2", "visit", T + 2), Some("id-1".into())),
        // No id: never left out.
        (ev("u3", "visit", T + 3), None),
        // Repeated within the batch.
        (ev("u1", "visit", T), Some("id-1".into())),
    ]
}

fn count(e: &Engine) -> u64 {
    e.stats().unwrap().events
}

#[test]
fn resent_events_are_stored_once_across_flushes_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let r = e.ingest_once(batch()).unwrap();
    assert_eq!((r.stored, r.duplicates), (4, 1));
    let r = e.ingest_once(batch()).unwrap();
    // Only the event without an id is stored again.
    assert_eq!((r.stored, r.duplicates), (1, 4));
    assert_eq!(count(&e), 5);
    // Reopened from the WAL alone (no flush): the keys come back.
    drop(e);
    let e = open(dir.path());
    let r = e.ingest_once(batch()).unwrap();
    assert_eq!((r.stored, r.duplicates), (1, 4));
    // Flushed and compacted: still.
    e.flush().unwrap();
    e.store().compact_all().unwrap();
    drop(e);
    let e = open(dir.path());
    let r = e.ingest_once(batch()).unwrap();
    assert_eq!((r.stored, r.duplicates), (1, 4));
    assert_eq!(count(&e), 7);
    // A resend whose time moved (the clock-skew rule on a retry) is still
    // the same event.
    let r = e
        .ingest_once(vec![(ev("u1", "signup", T + 5_000), Some("id-2".into()))])
        .unwrap();
    assert_eq!((r.stored, r.duplicates), (0, 1));
    // The key is stored with the event.
    let mut keyed = 0;
    e.store()
        .for_each_event(|ev| keyed += usize::from(ev.prop(DEDUPE_PROP).is_some()))
        .unwrap();
    assert_eq!(keyed, 3);
}

#[test]
fn ids_older_than_the_window_are_forgotten_and_the_bound_holds() {
    let dir = tempfile::tempdir().unwrap();
    let opts = EngineOptions {
        background: false,
        dedupe_max_keys: 3,
        ..Default::default()
    };
    let e = Engine::open(dir.path(), opts).unwrap();
    let day = 86_400_000;
    for d in 0..5 {
        e.ingest_once(vec![(ev("u", "x", T + d * day), Some(format!("d{d}")))])
            .unwrap();
    }
    // At most 3 keys: the two oldest days were forgotten for the bound.
    assert_eq!(e.dedupe().len(), 3);
    assert_eq!(e.dedupe().forgotten_days(), 2);
    let r = e
        .ingest_once(vec![(ev("u", "x", T + 4 * day), Some("d4".into()))])
        .unwrap();
    assert_eq!(r.duplicates, 1);
    // A newest event 8 days later moves the window past them all.
    e.ingest_once(vec![(ev("u", "x", T + 12 * day), Some("late".into()))])
        .unwrap();
    assert_eq!(e.dedupe().len(), 1);
}

#[test]
fn concurrent_resends_store_once_and_a_failed_write_forgets_its_keys() {
    use footprint_engine::storage::failpoint::{arm, Fault, Op};
    let dir = tempfile::tempdir().unwrap();
    let e = std::sync::Arc::new(open(dir.path()));
    // Four senders of the same 200 events at once: each stored once.
    let batch: Vec<(Event, Option<String>)> = (0..200)
        .map(|i| {
            (
                ev(&format!("u{}", i % 7), "visit", T + i),
                Some(format!("id-{i}")),
            )
        })
        .collect();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (e, b) = (e.clone(), batch.clone());
            std::thread::spawn(move || e.ingest_once(b).unwrap())
        })
        .collect();
    let done: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(done.iter().map(|r| r.stored).sum::<usize>(), 200);
    assert_eq!(done.iter().map(|r| r.duplicates).sum::<usize>(), 600);
    assert_eq!(count(&e), 200);
    // A caller's own `$dedupe_key` on an event without an id is not stored.
    let mut own = ev("u9", "x", T);
    own.props
        .push((DEDUPE_PROP.into(), footprint_engine::Value::Int(7)));
    e.ingest_once(vec![(own, None)]).unwrap();
    let mut keyed = 0;
    e.store()
        .for_each_event(|ev| keyed += usize::from(ev.prop(DEDUPE_PROP).is_some()))
        .unwrap();
    assert_eq!(keyed, 200);
    drop(e);
    // The log write fails: nothing is acknowledged, and the keys are not
    // remembered, so the sender's retry (after a reopen) stores the event.
    let e = open(dir.path());
    let fault = arm(Fault {
        under: dir.path().to_path_buf(),
        op: Op::Write,
        path_contains: "wal".into(),
        errno: 5, // EIO
        skip: 0,
        times: 1,
        stall: std::time::Duration::ZERO,
    });
    let fresh = vec![(ev("u1", "pay", T + 999), Some("id-pay".into()))];
    assert!(e.ingest_once(fresh.clone()).is_err());
    drop(fault);
    drop(e);
    let e = open(dir.path());
    let r = e.ingest_once(fresh.clone()).unwrap();
    assert_eq!((r.stored, r.duplicates), (1, 0));
    let r = e.ingest_once(fresh).unwrap();
    assert_eq!((r.stored, r.duplicates), (0, 1));
}
