//! The counters behind `GET /metrics`, in Prometheus text.
//!
//! Every label value comes from a fixed set chosen by the server, never from
//! the request: a query `kind` outside the known kinds counts as `other`,
//! and error codes are the server's own constants. So `/metrics` stays the
//! same size whatever clients send.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// The query kinds the contract names: the only `kind` labels besides `other`.
use footprint_engine::query::KINDS;

/// The label for a query's `kind` string: a known kind, or `other`.
pub(crate) fn kind_label(kind: &str) -> &'static str {
    KINDS
        .iter()
        .find(|k| **k == kind)
        .copied()
        .unwrap_or("other")
}

/// A counter per label, for labels of a fixed set.
#[derive(Default)]
struct ByLabel(Mutex<BTreeMap<&'static str, f64>>);

impl ByLabel {
    fn add(&self, label: &'static str, v: f64) {
        // A poisoned map only means a panic elsewhere mid-add; keep counting.
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(label).or_default() += v;
    }

    fn snapshot(&self) -> BTreeMap<&'static str, f64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The server's counters.
pub(crate) struct Metrics {
    ingested: AtomicU64,
    rejected_rows: AtomicU64,
    requests: AtomicU64,
    errors: ByLabel,
    queries: ByLabel,
    query_ms: ByLabel,
    started: Instant,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        Metrics {
            ingested: AtomicU64::new(0),
            rejected_rows: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            errors: ByLabel::default(),
            queries: ByLabel::default(),
            query_ms: ByLabel::default(),
            started: Instant::now(),
        }
    }

    pub(crate) fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn rows(&self, accepted_events: usize, rejected: usize) {
        self.ingested
            .fetch_add(accepted_events as u64, Ordering::Relaxed);
        self.rejected_rows
            .fetch_add(rejected as u64, Ordering::Relaxed);
    }

    pub(crate) fn error(&self, code: &'static str) {
        self.errors.add(code, 1.0);
    }

    pub(crate) fn query(&self, kind: &str, ms: f64) {
        let label = kind_label(kind);
        self.queries.add(label, 1.0);
        self.query_ms.add(label, ms);
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# TYPE footprint_ingested_events_total counter\nfootprint_ingested_events_total {}",
            self.ingested.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# TYPE footprint_rejected_rows_total counter\nfootprint_rejected_rows_total {}",
            self.rejected_rows.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# TYPE footprint_requests_total counter\nfootprint_requests_total {}",
            self.requests.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# TYPE footprint_queries_total counter");
        for (k, v) in self.queries.snapshot() {
            let _ = writeln!(out, "footprint_queries_total{{kind=\"{k}\"}} {v}");
        }
        let _ = writeln!(out, "# TYPE footprint_query_milliseconds_total counter");
        for (k, v) in self.query_ms.snapshot() {
            let _ = writeln!(
                out,
                "footprint_query_milliseconds_total{{kind=\"{k}\"}} {v:.3}"
            );
        }
        let _ = writeln!(out, "# TYPE footprint_errors_total counter");
        for (k, v) in self.errors.snapshot() {
            let _ = writeln!(out, "footprint_errors_total{{code=\"{k}\"}} {v}");
        }
        let _ = writeln!(
            out,
            "# TYPE footprint_uptime_seconds gauge\nfootprint_uptime_seconds {:.0}",
            self.started.elapsed().as_secs_f64()
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_kinds_share_one_label() {
        let m = Metrics::new();
        for i in 0..1000 {
            m.query(&format!("kind-{i}"), 1.0);
        }
        m.query("funnel", 2.0);
        m.query("", 1.0);
        let text = m.render();
        assert!(
            text.contains("footprint_queries_total{kind=\"other\"} 1001"),
            "{text}"
        );
        assert!(
            text.contains("footprint_queries_total{kind=\"funnel\"} 1"),
            "{text}"
        );
        assert_eq!(text.matches("footprint_queries_total{").count(), 2);
    }
}
