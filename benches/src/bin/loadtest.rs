//! A bounded load test of `footprint serve` over loopback: query clients
//! loop over the canonical query files while ingest clients send NDJSON
//! batches. Prints per-kind latency percentiles, status counts, ingest
//! throughput, and checks no acknowledged event was lost.
//!
//! ```sh
//! footprint serve --data DIR &
//! cargo run --release -p footprint-benches --bin loadtest -- --addr 127.0.0.1:8080 \
//!     --seconds 60 --query-clients 50 --ingest-clients 1
//! ```
//!
//! `--format posthog` sends PostHog `/batch/` bodies instead (as
//! posthog-python does), `--gzip 1` gzips them, `--ids 1` gives every
//! event a fresh `uuid` (so the dedupe index works too; bodies are then
//! built per request, else each client cycles through 8 prepared ones).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Args {
    addr: String,
    seconds: u64,
    query_clients: usize,
    ingest_clients: usize,
    batch: usize,
    queries: String,
    posthog: bool,
    gzip: bool,
    ids: bool,
}

fn args() -> Args {
    let mut a = Args {
        addr: "127.0.0.1:8080".into(),
        seconds: 60,
        query_clients: 50,
        ingest_clients: 1,
        batch: 10_000,
        queries: "benches/queries".into(),
        posthog: false,
        gzip: false,
        ids: false,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i + 1 < v.len() {
        let x = v[i + 1].clone();
        match v[i].as_str() {
            "--addr" => a.addr = x,
            "--seconds" => a.seconds = x.parse().expect("--seconds N"),
            "--query-clients" => a.query_clients = x.parse().expect("--query-clients N"),
            "--ingest-clients" => a.ingest_clients = x.parse().expect("--ingest-clients N"),
            "--batch" => a.batch = x.parse().expect("--batch N"),
            "--queries" => a.queries = x,
            "--format" => a.posthog = x == "posthog",
            "--gzip" => a.gzip = x == "1",
            "--ids" => a.ids = x == "1",
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    assert!(a.seconds <= 600, "at most 600 seconds");
    a
}

/// One HTTP/1.1 request over a fresh loopback connection: (status, body).
fn request(addr: &str, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, String)> {
    request_with(addr, method, path, "", body)
}

/// [`request`] with extra header lines (each ending in CRLF).
fn request_with(
    addr: &str,
    method: &str,
    path: &str,
    extra: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

const EVENTS: [&str; 4] = ["visit", "signup", "login", "pay"];

/// Batch `n` of client `c` in Footprint's NDJSON.
fn native_body(c: usize, n: u64, batch: usize) -> Vec<u8> {
    let mut body = String::with_capacity(batch * 100);
    for i in 0..batch {
        let k = n * batch as u64 + i as u64;
        body.push_str(&format!(
            "{{\"user\":\"load-{c}-{}\",\"event\":\"{}\",\"time\":{},\"props\":{{\"utm_source\":\"load\",\"n\":{k}}}}}\n",
            k % 50_000,
            EVENTS[(k % 4) as usize],
            1_767_225_600_000u64 + k
        ));
    }
    body.into_bytes()
}

/// Batch `n` of client `c` as posthog-python sends it to `/batch/`.
fn posthog_body(c: usize, n: u64, batch: usize, ids: bool) -> Vec<u8> {
    let mut body = String::with_capacity(batch * 160 + 100);
    body.push_str("{\"api_key\":\"phc_loadtest\",\"batch\":[");
    for i in 0..batch {
        let k = n * batch as u64 + i as u64;
        if i > 0 {
            body.push(',');
        }
        let uuid = if ids {
            format!(",\"uuid\":\"{c:08x}-{n:016x}-{i:08x}\"")
        } else {
            String::new()
        };
        body.push_str(&format!(
            "{{\"event\":\"{}\",\"distinct_id\":\"load-{c}-{}\",\"timestamp\":{},\"properties\":{{\"utm_source\":\"load\",\"n\":{k},\"$lib\":\"posthog-python\"}}{uuid}}}",
            EVENTS[(k % 4) as usize],
            k % 50_000,
            1_767_225_600_000u64 + k
        ));
    }
    body.push_str("]}");
    body.into_bytes()
}

fn events_count(addr: &str) -> u64 {
    let (_, b) = request(addr, "GET", "/v1/stats", b"").expect("stats");
    let v: serde_json_lite::Value = serde_json_lite::parse(&b);
    v.get_u64("events")
}

/// Just enough JSON reading for `{"events": N, ...}` and `{"accepted": N, ...}`.
mod serde_json_lite {
    pub struct Value(String);
    pub fn parse(s: &str) -> Value {
        Value(s.to_owned())
    }
    impl Value {
        pub fn get_u64(&self, key: &str) -> u64 {
            let pat = format!("\"{key}\":");
            self.0
                .find(&pat)
                .map(|i| &self.0[i + pat.len()..])
                .map(|r| {
                    r.trim_start()
                        .chars()
                        .take_while(|c| c.is_ascii_digit())
                        .collect::<String>()
                })
                .and_then(|d| d.parse().ok())
                .unwrap_or(0)
        }
    }
}

fn main() {
    let a = args();
    let addr = a.addr.clone();
    let mut queries: Vec<(String, Vec<u8>)> = Vec::new();
    for e in std::fs::read_dir(&a.queries).expect("queries dir") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "json") {
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            queries.push((name, std::fs::read(&p).expect("query file")));
        }
    }
    queries.sort();
    let before = events_count(&addr);
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let lat: Arc<Mutex<BTreeMap<String, Vec<f64>>>> = Arc::default();
    let statuses: Arc<Mutex<BTreeMap<u16, u64>>> = Arc::default();
    let mut handles = Vec::new();
    for c in 0..a.ingest_clients {
        let (addr, stop, acked, statuses, batch) = (
            addr.clone(),
            stop.clone(),
            acked.clone(),
            statuses.clone(),
            a.batch,
        );
        let (posthog, gzip, ids) = (a.posthog, a.gzip, a.ids);
        handles.push(std::thread::spawn(move || {
            let body = |n: u64| -> Vec<u8> {
                let raw = if posthog {
                    posthog_body(c, n, batch, ids)
                } else {
                    native_body(c, n, batch)
                };
                if gzip {
                    let mut e =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    e.write_all(&raw).expect("gzip");
                    e.finish().expect("gzip")
                } else {
                    raw
                }
            };
            let prepared: Vec<Vec<u8>> = if ids {
                Vec::new()
            } else {
                (0..8).map(body).collect()
            };
            let (path, extra) = match (posthog, gzip) {
                (true, true) => ("/batch/", "Content-Encoding: gzip\r\n"),
                (true, false) => ("/batch/", ""),
                (false, true) => ("/v1/events", "Content-Encoding: gzip\r\n"),
                (false, false) => ("/v1/events", ""),
            };
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let fresh;
                let b = if ids {
                    fresh = body(n);
                    &fresh
                } else {
                    &prepared[(n % 8) as usize]
                };
                n += 1;
                match request_with(&addr, "POST", path, extra, b) {
                    Ok((st, b)) => {
                        *statuses.lock().expect("lock").entry(st).or_default() += 1;
                        if st == 200 {
                            acked.fetch_add(
                                serde_json_lite::parse(&b).get_u64("accepted"),
                                Ordering::Relaxed,
                            );
                        }
                    }
                    Err(_) => *statuses.lock().expect("lock").entry(0).or_default() += 1,
                }
            }
        }));
    }
    for c in 0..a.query_clients {
        let (addr, stop, lat, statuses, queries) = (
            addr.clone(),
            stop.clone(),
            lat.clone(),
            statuses.clone(),
            queries.clone(),
        );
        handles.push(std::thread::spawn(move || {
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                let (name, q) = &queries[i % queries.len()];
                i += 1;
                let t = Instant::now();
                let r = request(&addr, "POST", "/v1/query", q);
                let ms = t.elapsed().as_secs_f64() * 1e3;
                let st = r.map(|x| x.0).unwrap_or(0);
                *statuses.lock().expect("lock").entry(st).or_default() += 1;
                if st == 200 {
                    lat.lock()
                        .expect("lock")
                        .entry(name.clone())
                        .or_default()
                        .push(ms);
                } else if st == 503 {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }));
    }
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(a.seconds));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    let secs = t0.elapsed().as_secs_f64();
    let after = events_count(&addr);
    let acked = acked.load(Ordering::Relaxed);
    println!(
        "{} s, {} query clients, {} ingest clients ({}-event batches)",
        a.seconds, a.query_clients, a.ingest_clients, a.batch
    );
    println!("statuses: {:?}", statuses.lock().expect("lock"));
    println!(
        "ingest: {acked} events acknowledged, {:.0} events/s; stored before {before}, after {after}: {}",
        acked as f64 / secs,
        if after == before + acked { "none lost".to_string() } else { format!("MISMATCH ({} missing)", (before + acked) as i64 - after as i64) }
    );
    println!(
        "{:<24} {:>7} {:>9} {:>9} {:>9}",
        "query", "count", "p50 ms", "p99 ms", "max ms"
    );
    for (k, mut v) in std::mem::take(&mut *lat.lock().expect("lock")) {
        v.sort_by(f64::total_cmp);
        let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        println!(
            "{k:<24} {:>7} {:>9.1} {:>9.1} {:>9.1}",
            v.len(),
            p(0.5),
            p(0.99),
            v[v.len() - 1]
        );
    }
}
