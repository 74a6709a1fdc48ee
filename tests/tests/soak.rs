//! Soak: a kill -9 campaign against the `footprint` binary, checked after
//! every cycle. A cycle runs one process on one data directory and kills
//! it with SIGKILL at a random moment, or lets it finish:
//!
//! - `footprint serve` while two clients post batches over HTTP (a batch
//!   is acknowledged by its 200 answer);
//! - `footprint ingest`, a bulk load (all or nothing; acknowledged by exit
//!   status 0), with or without the merge of segments that follows it;
//! - `footprint ingest --wal --no-flush`, a load through the WAL left in
//!   the memtable, for the next process to replay;
//! - `footprint compact`: flush, then merge every shard's segments.
//!
//! After every cycle the directory is recovered and checked: every
//! acknowledged event is there, none is there twice, an unacknowledged
//! batch is there whole or not at all, and nothing else is there.
//!
//! `FOOTPRINT_SOAK_CYCLES` sets the number of cycles (default 20, as CI
//! runs it), `FOOTPRINT_SOAK_SEED` the random seed.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use support::{batch_len, footprint_bin, ndjson, Ledger};

/// xorshift64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A duration from zero to `d`.
    fn upto(&mut self, d: Duration) -> Duration {
        Duration::from_micros(self.next() % (d.as_micros() as u64 + 1))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    Serve,
    Bulk,
    BulkCompact,
    WalNoFlush,
    Compact,
}

/// The modes of ten cycles.
const ROTATION: [Mode; 10] = [
    Mode::Serve,
    Mode::Serve,
    Mode::Serve,
    Mode::Serve,
    Mode::Bulk,
    Mode::BulkCompact,
    Mode::WalNoFlush,
    Mode::WalNoFlush,
    Mode::Compact,
    Mode::Compact,
];

/// Most batches one HTTP client posts in a cycle: the data stays small
/// enough to check after every cycle, and a server that has answered them
/// all may be killed while its background thread flushes or merges.
const MAX_POSTS: u64 = 40;

#[test]
fn kill_9_campaign() {
    let cycles: u64 = std::env::var("FOOTPRINT_SOAK_CYCLES")
        .ok()
        .map(|s| s.parse().expect("FOOTPRINT_SOAK_CYCLES: a number"))
        .unwrap_or(20);
    let seed: u64 = std::env::var("FOOTPRINT_SOAK_SEED")
        .ok()
        .map(|s| s.parse().expect("FOOTPRINT_SOAK_SEED: a number"))
        .unwrap_or(0x5EED_F007_9A1D_0001);
    let tmp = tempfile::tempdir().unwrap();
    let bin = footprint_bin(tmp.path());
    let data = tmp.path().join("data");
    let mut rng = Rng(seed | 1);
    let mut ledger = Ledger::default();
    let next_batch = Arc::new(AtomicU64::new(0));
    let mut runs: BTreeMap<Mode, (u32, u32)> = BTreeMap::new();
    // How long an uninterrupted run of each mode takes (a running mean of
    // those that finished, raised by each kill): kills are drawn from twice
    // that, so many runs are cut short however far the data has grown.
    let mut typical: BTreeMap<Mode, Duration> = BTreeMap::new();
    let mut order = Vec::new();
    let started = Instant::now();
    let mut last = None;
    for cycle in 0..cycles {
        if order.is_empty() {
            // Each block of ten cycles runs every mode, in random order.
            order = ROTATION.to_vec();
            for i in (1..order.len()).rev() {
                order.swap(i, (rng.next() % (i as u64 + 1)) as usize);
            }
        }
        let mode = order.pop().unwrap();
        let typ = *typical.entry(mode).or_insert(Duration::from_millis(50));
        let delay = rng.upto(2 * typ);
        let log = tmp.path().join("log");
        let t = Instant::now();
        let killed = match mode {
            Mode::Serve => serve(
                &bin,
                &data,
                &mut ledger,
                &next_batch,
                rng.upto(Duration::from_millis(700)),
            ),
            Mode::Bulk | Mode::BulkCompact | Mode::WalNoFlush => {
                let b = next_batch.fetch_add(1, Ordering::Relaxed);
                let (n, args): (u64, &[&str]) = match mode {
                    Mode::Bulk => (batch_len(b, 2000), &["--no-compact"]),
                    Mode::BulkCompact => (batch_len(b, 2000), &[]),
                    _ => (batch_len(b, 1000), &["--wal", "--no-flush"]),
                };
                let file = tmp.path().join("batch.ndjson");
                std::fs::write(&file, ndjson(b, n)).unwrap();
                ledger.send(b, n);
                let mut cmd = Command::new(&bin);
                cmd.args(["ingest", "--shards", "4"])
                    .args(args)
                    .arg("--data")
                    .arg(&data)
                    .arg(&file);
                let done = run_until(cmd, delay, &log);
                if done {
                    ledger.acked.insert(b);
                }
                !done
            }
            Mode::Compact => {
                let mut cmd = Command::new(&bin);
                cmd.arg("compact").arg("--data").arg(&data);
                !run_until(cmd, delay, &log)
            }
        };
        // A kill says the run takes longer than thought (the data grows).
        // A server always runs until killed, so it has no typical length.
        if mode != Mode::Serve {
            let typ = if killed {
                typ * 6 / 5
            } else {
                (typ * 7 + t.elapsed() * 3) / 10
            };
            typical.insert(mode, typ);
        }
        let r = runs.entry(mode).or_default();
        r.0 += 1;
        r.1 += u32::from(killed);
        let a = ledger.audit(&data);
        assert!(
            a.lost == 0 && a.duplicated == 0,
            "cycle {cycle} ({mode:?}, seed {seed}): {} acknowledged events lost, {} duplicated ({a:?})",
            a.lost,
            a.duplicated
        );
        if cycle % 50 == 0 || cycle + 1 == cycles {
            eprintln!(
                "cycle {cycle} ({:.0} s): {} events acknowledged, {} stored ({} in {} segments, {} in the memtable), lost 0, duplicated 0",
                started.elapsed().as_secs_f64(), a.acked_events, a.stored, a.stored - a.in_memtable, a.segments, a.in_memtable
            );
        }
        last = Some(a);
    }
    let a = last.unwrap_or_default();
    eprintln!(
        "soak: {cycles} cycles in {:.0} s (seed {seed}); per mode (runs, killed): {runs:?}; \
         {} batches and {} events acknowledged, lost {}, duplicated {}",
        started.elapsed().as_secs_f64(),
        ledger.acked.len(),
        a.acked_events,
        a.lost,
        a.duplicated
    );
    // Every kind of cycle ran, and was cut short sometimes.
    if cycles >= 20 {
        assert!(runs.len() == 5, "{runs:?}");
        let killed: u32 = runs.values().map(|r| r.1).sum();
        assert!(killed >= cycles as u32 / 3, "{runs:?}");
        assert!(a.acked_events > 0);
    }
}

/// Runs `cmd` and kills it (SIGKILL) if it has not exited after `delay`.
/// Returns whether it exited (successfully: anything else fails the test).
fn run_until(mut cmd: Command, delay: Duration, log: &Path) -> bool {
    let err = std::fs::File::create(log).unwrap();
    let mut child = cmd.stdout(Stdio::null()).stderr(err).spawn().unwrap();
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let msg = std::fs::read_to_string(log).unwrap_or_default();
            assert!(status.success(), "{cmd:?}: {status}\n{msg}");
            return true;
        }
        if t.elapsed() >= delay {
            kill(&mut child);
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn kill(child: &mut Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// `footprint serve`, two clients posting batches until SIGKILL after
/// `delay` (counted from the start, so some kills land in start-up and
/// WAL replay). Returns true: the server is always killed.
fn serve(
    bin: &Path,
    data: &Path,
    ledger: &mut Ledger,
    next: &Arc<AtomicU64>,
    delay: Duration,
) -> bool {
    let t = Instant::now();
    let mut child = Command::new(bin)
        .args(["serve", "--addr", "127.0.0.1:0", "--shards", "4", "--data"])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (addr_tx, addr_rx) = mpsc::channel();
    // Reads the address, then drains stdout so the server never blocks on it.
    let drain = std::thread::spawn(move || {
        let mut out = BufReader::new(stdout);
        let mut line = String::new();
        if out.read_line(&mut line).is_ok() && line.ends_with('\n') {
            let _ = addr_tx.send(line.trim().to_owned());
        }
        let _ = std::io::copy(&mut out, &mut std::io::sink());
    });
    let mut clients = Vec::new();
    if let Ok(line) = addr_rx.recv_timeout(delay.saturating_sub(t.elapsed())) {
        let addr = line
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_owned();
        for _ in 0..2 {
            let (addr, next) = (addr.clone(), next.clone());
            clients.push(std::thread::spawn(move || post_batches(&addr, &next)));
        }
    }
    std::thread::sleep(delay.saturating_sub(t.elapsed()));
    kill(&mut child);
    drain.join().unwrap();
    for c in clients {
        for (b, n, acked) in c.join().unwrap() {
            ledger.send(b, n);
            if acked {
                ledger.acked.insert(b);
            }
        }
    }
    true
}

/// Posts new batches until one is not acknowledged (the server died) or
/// [`MAX_POSTS`] were; returns (batch, events, acknowledged) of each.
fn post_batches(addr: &str, next: &AtomicU64) -> Vec<(u64, u64, bool)> {
    let mut out = Vec::new();
    while (out.len() as u64) < MAX_POSTS {
        let b = next.fetch_add(1, Ordering::Relaxed);
        let n = batch_len(b, 40);
        let acked = post(addr, &ndjson(b, n)).is_some_and(|accepted| {
            assert_eq!(accepted, n, "batch {b}: accepted {accepted} of {n}");
            true
        });
        out.push((b, n, acked));
        if !acked {
            break;
        }
    }
    out
}

/// POST /v1/events; the number of accepted events of a 200 answer.
fn post(addr: &str, body: &str) -> Option<u64> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body.as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    if head.split_whitespace().nth(1) != Some("200") {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    assert_eq!(v["rejected"], 0, "{v}");
    v["accepted"].as_u64()
}
