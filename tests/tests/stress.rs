//! Everything at once: event ingest, aliases, profile updates, queries that
//! read profiles and aliases, cohort saves under one name, explicit flushes
//! and compactions beside the background ones, and health probes, all
//! concurrently, under a watchdog that fails the test if any stream makes
//! no progress for 10 s (a lock-up) or any stream fails.
//!
//! `FOOTPRINT_STRESS_SECS` sets the run time (default 15 s).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use footprint_engine::storage::{ProfileOp, StoreOptions};
use footprint_engine::{Alias, Engine, EngineOptions, Event, ProfileUpdate, Value};
use serde_json::json;

const T0: i64 = 1_767_225_600_000;
const USERS: u64 = 300;

struct Stream {
    name: &'static str,
    progress: AtomicU64,
}

fn events(seed: u64, n: u64) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let k = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(i.wrapping_mul(1442695040888963407));
            let u = (k >> 33) % USERS;
            let ev = ["visit", "signup", "pay", "login"][((k >> 20) % 4) as usize];
            Event {
                user: format!("u{u}"),
                event: ev.into(),
                time: T0 + ((k >> 8) % 10_000_000) as i64,
                props: vec![(
                    "utm_source".into(),
                    Value::Str(["baidu", "google", "wechat"][(k % 3) as usize].into()),
                )],
            }
        })
        .collect()
}

#[test]
fn concurrent_writes_queries_and_maintenance_never_lock_up() {
    let secs: u64 = std::env::var("FOOTPRINT_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(
        Engine::open(
            dir.path(),
            EngineOptions {
                store: StoreOptions {
                    shards: 4,
                    memtable_rows: 3_000,
                    max_segments_per_shard: 3,
                    ..Default::default()
                },
                background: true,
                flush_interval: Duration::from_millis(300),
                query_threads: 2,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    // A data set with profiles, as `gen --data` makes.
    engine.ingest(events(0, 2_000)).unwrap();
    engine
        .upsert_profiles(
            (0..USERS)
                .map(|u| ProfileUpdate {
                    user: format!("u{u}"),
                    op: ProfileOp::Set,
                    props: vec![(
                        "plan".into(),
                        Value::Str(["free", "pro"][(u % 2) as usize].into()),
                    )],
                })
                .collect(),
        )
        .unwrap();

    let names = [
        "ingest-1",
        "ingest-2",
        "aliases",
        "profiles",
        "funnel-1",
        "funnel-2",
        "cohorts",
        "maintenance",
        "health",
    ];
    let streams: Arc<Vec<Stream>> = Arc::new(
        names
            .iter()
            .map(|&name| Stream {
                name,
                progress: AtomicU64::new(0),
            })
            .collect(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let acked = Arc::new(AtomicU64::new(2_000));
    let mut handles = Vec::new();
    for (i, &name) in names.iter().enumerate() {
        let (engine, streams, stop, failures, acked) = (
            engine.clone(),
            streams.clone(),
            stop.clone(),
            failures.clone(),
            acked.clone(),
        );
        handles.push(std::thread::spawn(move || {
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                let r: Result<(), String> = match name {
                    "ingest-1" | "ingest-2" => {
                        let n = 50;
                        engine
                            .ingest(events(round * 10 + i as u64, n))
                            .map(|_| {
                                acked.fetch_add(n, Ordering::Relaxed);
                            })
                            .map_err(|e| e.to_string())
                    }
                    "aliases" => engine
                        .alias(vec![Alias {
                            anonymous: format!("anon-{round}"),
                            known: format!("u{}", round % USERS),
                        }])
                        .map_err(|e| e.to_string()),
                    "profiles" => engine
                        .upsert_profiles(vec![ProfileUpdate {
                            user: format!("u{}", round % USERS),
                            op: ProfileOp::Set,
                            props: vec![(
                                "plan".into(),
                                Value::Str(["free", "pro", "team"][(round % 3) as usize].into()),
                            )],
                        }])
                        .map_err(|e| e.to_string()),
                    "funnel-1" | "funnel-2" => {
                        let q = if round.is_multiple_of(2) {
                            json!({"kind": "funnel", "steps": [{"event": "visit"}, {"event": "signup"}, {"event": "pay"}],
                                   "window": 86_400_000, "breakdown": [{"user_prop": "plan"}]})
                        } else {
                            json!({"kind": "users", "users": {"user_prop": "plan", "op": "eq", "value": "pro"},
                                   "did": [{"event": "login"}]})
                        };
                        engine
                            .query_json(&q, Default::default())
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    }
                    "cohorts" => {
                        let q = json!({"kind": "users", "did": [{"event": "pay"}], "save_as": "payers"});
                        engine
                            .query_json(&q, Default::default())
                            .and_then(|_| {
                                engine.query_json(
                                    &json!({"kind": "events", "metrics": [{"event": "login"}],
                                            "users": {"cohort": "payers"}}),
                                    Default::default(),
                                )
                            })
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    }
                    "maintenance" => {
                        std::thread::sleep(Duration::from_millis(50));
                        engine
                            .flush()
                            .and_then(|()| engine.compact().map(|_| ()))
                            .map_err(|e| e.to_string())
                    }
                    _ => {
                        let s = engine.store();
                        match (s.responsive(Duration::from_secs(2)), s.poisoned()) {
                            (true, None) => Ok(()),
                            (r, p) => Err(format!("health: responsive {r}, poisoned {p:?}")),
                        }
                    }
                };
                if let Err(e) = r {
                    failures.lock().unwrap().push(format!("{name}: {e}"));
                    return;
                }
                streams[i].progress.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    // The watchdog.
    let started = Instant::now();
    let mut last: Vec<(u64, Instant)> = vec![(0, Instant::now()); names.len()];
    let mut stuck = None;
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(250));
        if !failures.lock().unwrap().is_empty() {
            break;
        }
        for (k, s) in streams.iter().enumerate() {
            let p = s.progress.load(Ordering::Relaxed);
            if p != last[k].0 {
                last[k] = (p, Instant::now());
            } else if last[k].1.elapsed() > Duration::from_secs(10) {
                stuck = Some(s.name);
            }
        }
        if stuck.is_some() {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(name) = stuck {
        // The stuck threads never finish: do not join them.
        panic!("stream {name} made no progress for 10 s (a lock-up)");
    }
    // A stream that locked up near the end shows as one that never stops.
    let stopping = Instant::now();
    while !handles.iter().all(|h| h.is_finished()) {
        assert!(
            stopping.elapsed() < Duration::from_secs(10),
            "streams still running 10 s after the stop (a lock-up): {:?}",
            names
                .iter()
                .zip(&handles)
                .filter(|(_, h)| !h.is_finished())
                .map(|(n, _)| n)
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for h in handles {
        h.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(failures.is_empty(), "streams failed: {failures:?}");
    for s in streams.iter() {
        assert!(
            s.progress.load(Ordering::Relaxed) > 0,
            "{} never completed a round",
            s.name
        );
    }
    let counts: Vec<String> = streams
        .iter()
        .map(|s| format!("{} {}", s.name, s.progress.load(Ordering::Relaxed)))
        .collect();
    eprintln!("stress: {secs} s, rounds: {}", counts.join(", "));
    // Nothing acknowledged was lost, nothing doubled, through all of it
    // and a reopen.
    let stored = engine.stats().unwrap().events;
    assert_eq!(stored, acked.load(Ordering::Relaxed));
    let engine = Arc::try_unwrap(engine).ok().unwrap();
    engine.close().unwrap();
    let reopened = Engine::open(dir.path(), EngineOptions::default()).unwrap();
    assert_eq!(
        reopened.stats().unwrap().events,
        acked.load(Ordering::Relaxed)
    );
    assert!(!reopened.store().profiles().aliases.is_empty());
}
