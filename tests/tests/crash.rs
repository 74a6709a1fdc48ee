//! Kill a real writer process with SIGKILL at random moments; every
//! acknowledged event must survive exactly once, and nothing else appears
//! but whole in-flight batches. The writer is an engine in a child process
//! (`crash_writer`), or the `footprint` CLI loading into the WAL without
//! flushing, so recovery rebuilds a memtable from the WAL alone.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use footprint_engine::{Engine, EngineOptions, Value};
use support::{footprint_bin, ndjson, Ledger};

/// xorshift64: the kill delays.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn acknowledged_events_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_crash_writer");
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    // Every round starts past every batch an earlier round may have sent,
    // so a batch number is never reused and a batch stored twice is a
    // duplicate made by the store.
    let mut start = 0u64;
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let kills = 24;
    for round in 0..kills {
        let mut child = Command::new(exe)
            .arg(dir.path())
            .arg(start.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut out = BufReader::new(stdout);
            let mut line = String::new();
            // Only whole lines: a line cut by the kill acknowledges nothing.
            while out.read_line(&mut line).is_ok_and(|n| n > 0) && line.ends_with('\n') {
                if let Some(n) = line.trim_end().strip_prefix("ack ") {
                    if tx.send(n.parse::<u64>().unwrap()).is_err() {
                        break;
                    }
                }
                line.clear();
            }
        });
        // Kill after 20..400 ms, so kills land during start-up, replay, WAL
        // appends, flushes and compactions.
        let delay = Duration::from_millis(20 + next(&mut seed) % 380);
        let mut got: Vec<u64> = Vec::new();
        let t = Instant::now();
        while t.elapsed() < delay {
            if let Ok(n) = rx.recv_timeout(Duration::from_millis(5)) {
                got.push(n);
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        got.extend(rx.try_iter());
        // The writer acknowledges its batches in order, from `start`.
        for (k, &n) in got.iter().enumerate() {
            assert_eq!(n, start + k as u64, "round {round}: acks out of order");
        }
        acked.extend(&got);
        // It may have been writing the batch after its last ack (or the
        // first one, with no ack at all); the next round starts after it.
        start += got.len() as u64 + 1;
        eprintln!(
            "round {round}: {} acks, {} batches acknowledged so far",
            got.len(),
            acked.len()
        );
    }
    assert!(
        acked.len() > 50,
        "the writer made too little progress: {}",
        acked.len()
    );

    let engine = Engine::open(
        dir.path(),
        EngineOptions {
            background: false,
            ..Default::default()
        },
    )
    .unwrap();
    let mut per_batch: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    let mut total = 0usize;
    engine
        .store()
        .for_each_event(|e| {
            total += 1;
            let b = match e.prop("batch") {
                Some(Value::Int(b)) => *b,
                other => panic!("event without batch: {other:?}"),
            };
            let i = match e.prop("i") {
                Some(Value::Int(i)) => *i,
                other => panic!("event without index: {other:?}"),
            };
            assert!(
                per_batch.entry(b).or_default().insert(i),
                "batch {b} event {i} stored twice"
            );
        })
        .unwrap();
    for &b in &acked {
        let got = per_batch.get(&(b as i64)).map_or(0, |s| s.len()) as u64;
        assert_eq!(
            got,
            batch_len(b),
            "acknowledged batch {b} has {got} of {} events",
            batch_len(b)
        );
    }
    for (b, ids) in &per_batch {
        let b = *b as u64;
        assert!(b < start, "batch {b} was never attempted");
        // An unacknowledged batch may be present, but only whole.
        assert_eq!(
            ids.len() as u64,
            batch_len(b),
            "batch {b} is partially present"
        );
    }
    // The writer flushed and compacted between kills, so recovery had to
    // combine segments and WAL.
    let stats = engine.stats().unwrap();
    assert!(stats.segments > 0, "no flush happened: {stats:?}");
    eprintln!(
        "{} events in {} segments + {} replayed from the WAL",
        stats.events, stats.segments, stats.events_in_memtable
    );
    let expected: usize = per_batch
        .keys()
        .map(|&b| batch_len(b as u64) as usize)
        .sum();
    assert_eq!(total, expected);
}

fn batch_len(batch: u64) -> u64 {
    1 + (batch * 7919) % 23
}

/// `footprint ingest --wal --no-flush` leaves its rows in the WAL and the
/// memtable: nothing is flushed, the next process replays them all, and
/// the CLI answers queries over them.
#[test]
fn cli_wal_ingest_without_flush_is_recovered_from_the_wal() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = footprint_bin(tmp.path());
    let data = tmp.path().join("data");
    let mut ledger = Ledger::default();
    for b in 0..3u64 {
        let file = tmp.path().join(format!("batch-{b}.ndjson"));
        let n = 40 + b * 7;
        std::fs::write(&file, ndjson(b, n)).unwrap();
        ledger.send(b, n);
        let out = Command::new(&bin)
            .args(["ingest", "--wal", "--no-flush", "--shards", "4", "--data"])
            .arg(&data)
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        ledger.acked.insert(b);
    }
    // Nothing was ever flushed: every event comes back from the WAL.
    let a = ledger.audit(&data);
    let want: u64 = ledger.sent.values().sum();
    assert_eq!((a.lost, a.duplicated, a.stored), (0, 0, want), "{a:?}");
    assert_eq!((a.segments, a.in_memtable), (0, want), "{a:?}");
    let out = Command::new(&bin)
        .args(["stats", "--json", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["events_in_memtable"], want, "{stats}");
    let q = tmp.path().join("q.json");
    std::fs::write(
        &q,
        r#"{"kind": "funnel", "steps": [{"event": "visit"}, {"event": "signup"}], "window": 1000}"#,
    )
    .unwrap();
    let out = Command::new(&bin)
        .args(["query", "--data"])
        .arg(&data)
        .arg(&q)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let engine = Engine::open(
        &data,
        EngineOptions {
            background: false,
            ..Default::default()
        },
    )
    .unwrap();
    let direct = engine.query(&std::fs::read_to_string(&q).unwrap()).unwrap();
    assert_eq!(cli, direct);
    assert!(cli["steps"][0]["users"].as_u64() > Some(0), "{cli}");
}

/// SIGKILL during `footprint ingest --wal --no-flush`, over and over into
/// one data directory that is never flushed: a load that exited is there
/// whole, one that was killed is there whole or not at all, and nothing is
/// there twice.
#[test]
fn cli_wal_ingest_without_flush_survives_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = footprint_bin(tmp.path());
    let data = tmp.path().join("data");
    let mut ledger = Ledger::default();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let (mut exited, mut killed) = (0, 0);
    for b in 0..16u64 {
        let n = 200 + next(&mut seed) % 3000;
        let file = tmp.path().join(format!("batch-{b}.ndjson"));
        std::fs::write(&file, ndjson(b, n)).unwrap();
        ledger.send(b, n);
        let mut child = Command::new(&bin)
            .args(["ingest", "--wal", "--no-flush", "--shards", "4", "--data"])
            .arg(&data)
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(next(&mut seed) % 60));
        match child.try_wait().unwrap() {
            Some(status) => {
                assert!(status.success(), "batch {b}: {status}");
                ledger.acked.insert(b);
                exited += 1;
            }
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                killed += 1;
            }
        }
        let a = ledger.audit(&data);
        assert_eq!((a.lost, a.duplicated), (0, 0), "after batch {b}: {a:?}");
        assert_eq!(a.segments, 0, "something was flushed: {a:?}");
    }
    eprintln!("{exited} loads exited, {killed} were killed");
    assert!(killed > 0 && exited > 0, "{exited} exited, {killed} killed");
}
