//! Shared by the kill -9 tests: the `footprint` binary, numbered batches
//! of events, and a ledger of what was acknowledged, checked against the
//! store after recovery.

#![allow(dead_code)] // each test binary uses its own part

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use footprint_engine::{Engine, EngineOptions, Event, Value};
use footprint_tests::canon;

/// The `footprint` binary, built from this workspace (or `FOOTPRINT_BIN`)
/// and linked into `dir`, so a concurrent build of another checkout that
/// shares the target directory cannot swap it mid-test.
pub fn footprint_bin(dir: &Path) -> PathBuf {
    let built = match std::env::var_os("FOOTPRINT_BIN") {
        Some(p) => PathBuf::from(p),
        None => build_footprint(),
    };
    let to = dir.join("footprint");
    if std::fs::hard_link(&built, &to).is_err() {
        std::fs::copy(&built, &to).expect("copy the footprint binary");
    }
    to
}

/// `cargo build -p footprint-server --bin footprint` (with the test
/// profile, as the server's own tests build it); returns the executable.
fn build_footprint() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--profile",
            "test",
            "-p",
            "footprint-server",
            "--bin",
            "footprint",
        ])
        .args(["--message-format", "json-render-diagnostics"])
        .output()
        .expect("run cargo build");
    assert!(
        out.status.success(),
        "cargo build of footprint failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "footprint")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo reported no footprint executable")
}

/// Events in batch `b`: 1 to `max` of them, by a fixed hash of `b`.
pub fn batch_len(b: u64, max: u64) -> u64 {
    1 + (b.wrapping_mul(7919) ^ (b >> 3)) % max
}

/// Event `i` of batch `b`: deterministic, so the checker can tell every
/// event apart (`batch`, `i`) and rebuild what was sent.
pub fn event(b: u64, i: u64) -> Event {
    Event {
        user: format!("user-{}", (b * 31 + i) % 97),
        event: ["visit", "signup", "pay"][(i % 3) as usize].into(),
        time: 1_700_000_000_000 + (b as i64) * 1000 + i as i64,
        props: vec![
            ("batch".into(), Value::Int(b as i64)),
            ("i".into(), Value::Int(i as i64)),
        ],
    }
}

/// Batch `b` of `n` events as NDJSON, one event a line.
pub fn ndjson(b: u64, n: u64) -> String {
    let mut s = String::new();
    for i in 0..n {
        let e = event(b, i);
        s.push_str(
            &serde_json::json!({"user": e.user, "event": e.event, "time": e.time,
                                "props": {"batch": b, "i": i}})
            .to_string(),
        );
        s.push('\n');
    }
    s
}

/// What was sent and what was acknowledged, per batch.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Batch → its number of events, for every batch ever sent (or
    /// possibly sent: a process killed before its answer).
    pub sent: BTreeMap<u64, u64>,
    /// Batches acknowledged: stored durably, by the contract.
    pub acked: BTreeSet<u64>,
}

/// What a check of the store found.
#[derive(Debug, Default, Clone, Copy)]
pub struct Audit {
    /// Events of acknowledged batches.
    pub acked_events: u64,
    /// Events of acknowledged batches that are missing.
    pub lost: u64,
    /// Events stored more than once.
    pub duplicated: u64,
    /// Events stored in all.
    pub stored: u64,
    /// Events in the memtable (replayed from the WAL).
    pub in_memtable: u64,
    /// Segments.
    pub segments: u64,
}

impl Ledger {
    /// Records that batch `b` of `n` events is being sent.
    pub fn send(&mut self, b: u64, n: u64) {
        assert!(self.sent.insert(b, n).is_none(), "batch {b} sent twice");
    }

    /// Opens the store in `dir` (recovering it) and checks it against the
    /// ledger: every acknowledged event is there once; an unacknowledged
    /// batch is there whole or not at all; nothing else is there. Panics on
    /// anything but loss or duplication, which it counts.
    pub fn audit(&self, dir: &Path) -> Audit {
        let engine = Engine::open(
            dir,
            EngineOptions {
                background: false,
                query_threads: 1,
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("recovery failed: {e}"));
        let mut seen: BTreeMap<u64, BTreeMap<u64, u64>> = BTreeMap::new();
        let mut a = Audit::default();
        engine
            .store()
            .for_each_event(|e| {
                a.stored += 1;
                let (b, i) = match (e.prop("batch"), e.prop("i")) {
                    (Some(Value::Int(b)), Some(Value::Int(i))) => (*b as u64, *i as u64),
                    _ => panic!("an event that was never sent: {e:?}"),
                };
                assert_eq!(
                    canon(&e),
                    canon(&event(b, i)),
                    "event {i} of batch {b} changed"
                );
                *seen.entry(b).or_default().entry(i).or_default() += 1;
            })
            .unwrap_or_else(|e| panic!("scan after recovery failed: {e}"));
        for (b, got) in &seen {
            let n = *self
                .sent
                .get(b)
                .unwrap_or_else(|| panic!("batch {b} was never sent"));
            a.duplicated += got.values().map(|c| c - 1).sum::<u64>();
            if !self.acked.contains(b) {
                assert_eq!(
                    got.len() as u64,
                    n,
                    "unacknowledged batch {b} is partly stored"
                );
            }
        }
        for b in &self.acked {
            let n = self.sent[b];
            a.acked_events += n;
            a.lost += n - seen.get(b).map_or(0, |g| g.len() as u64);
        }
        let st = engine.stats().expect("stats");
        a.in_memtable = st.events_in_memtable;
        a.segments = st.segments;
        assert_eq!(st.events, a.stored, "stats disagree with the scan");
        a
    }
}
