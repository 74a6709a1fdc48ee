//! `footprint bench`: runs a set of query files against a loaded data set,
//! after a warm-up, and reports per query min/median/max latency, events
//! covered per second (stored events / median), the share of them actually
//! decoded (the rest skipped by time range or bitmaps) and peak RSS.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use footprint_engine::Engine;
use serde::Serialize;

/// One query's measurements.
#[derive(Debug, Serialize)]
pub struct BenchRow {
    /// Query name (file stem).
    pub query: String,
    /// Runs measured.
    pub runs: usize,
    /// Fastest run, ms.
    pub min_ms: f64,
    /// Median run, ms.
    pub median_ms: f64,
    /// Slowest run, ms.
    pub max_ms: f64,
    /// Events the query covers (all stored events) divided by the median time.
    pub events_per_s: f64,
    /// Events stored (what the query covers).
    pub events_stored: u64,
    /// Events decoded (the rest were skipped by time or bitmaps), counting
    /// rows of events the query does not look at, which are dropped after
    /// decoding.
    pub events_read: u64,
    /// Users counted from bitmaps without reading their events.
    pub users_from_bitmaps: u64,
    /// Peak resident memory of the process while this query ran (the
    /// high-water mark is reset before its runs), bytes.
    pub peak_rss_bytes: u64,
    /// Resident anonymous (heap) memory after this query, bytes. The
    /// allocator keeps freed memory, so this tracks the heap's peak.
    pub rss_anon_bytes: u64,
    /// Resident file-backed memory (mapped segment pages) after this query, bytes.
    pub rss_file_bytes: u64,
}

/// The query files to run: a directory's `*.json`, or the files given.
pub fn query_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot read {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            v.sort();
            out.extend(v);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// A memory figure of this process from /proc/self/status, bytes.
pub fn proc_status(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Runs every query `repeat` times after one warm-up run.
pub fn run(engine: &Engine, files: &[PathBuf], repeat: usize) -> Result<Vec<BenchRow>> {
    let stored = engine.stats()?.events;
    let mut rows = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
        let q: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not valid JSON", f.display()))?;
        engine
            .query_json(&q, Default::default())
            .with_context(|| format!("{} failed", f.display()))?;
        // Peak RSS from here on is this query's (Linux: "5" resets VmHWM).
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let mut times = Vec::with_capacity(repeat);
        // What the last run read (every run reads the same).
        let (mut events_read, mut users_from_bitmaps) = (0, 0);
        for _ in 0..repeat.max(1) {
            let stats = std::sync::Arc::new(footprint_engine::ScanStats::default());
            let opts = footprint_engine::QueryOptions {
                stats: Some(stats.clone()),
                ..Default::default()
            };
            let t = Instant::now();
            engine.query_json(&q, opts)?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            use std::sync::atomic::Ordering::Relaxed;
            events_read = stats.events_read.load(Relaxed);
            users_from_bitmaps = stats.users_from_bitmaps.load(Relaxed);
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        rows.push(BenchRow {
            query: name(f),
            runs: times.len(),
            min_ms: times[0],
            median_ms: median,
            max_ms: times[times.len() - 1],
            events_per_s: stored as f64 / (median / 1e3),
            events_stored: stored,
            events_read,
            users_from_bitmaps,
            peak_rss_bytes: proc_status("VmHWM:"),
            rss_anon_bytes: proc_status("RssAnon:"),
            rss_file_bytes: proc_status("RssFile:"),
        });
    }
    Ok(rows)
}

fn name(p: &Path) -> String {
    p.file_stem().map_or_else(
        || p.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}

/// Prints the rows as a table.
pub fn print(rows: &[BenchRow]) {
    out!(
        "{:<24} {:>4} {:>8} {:>9} {:>8} {:>10} {:>7} {:>9} {:>9} {:>9}",
        "query",
        "runs",
        "min ms",
        "median ms",
        "max ms",
        "events/s",
        "read",
        "peak RSS",
        "heap",
        "mapped"
    );
    for r in rows {
        let read = if r.events_stored > 0 {
            format!(
                "{:.0}%",
                100.0 * r.events_read as f64 / r.events_stored as f64
            )
        } else {
            "-".into()
        };
        out!(
            "{:<24} {:>4} {:>8.1} {:>9.1} {:>8.1} {:>10.3e} {:>7} {:>7.0}MB {:>7.0}MB {:>7.0}MB",
            r.query,
            r.runs,
            r.min_ms,
            r.median_ms,
            r.max_ms,
            r.events_per_s,
            read,
            r.peak_rss_bytes as f64 / 1e6,
            r.rss_anon_bytes as f64 / 1e6,
            r.rss_file_bytes as f64 / 1e6
        );
    }
}
