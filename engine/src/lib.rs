//! Footprint: an embeddable engine for user-behavior analytics.
//!
//! Open a data directory, ingest events, and ask questions of them. Events
//! are durable and visible to queries as soon as `ingest` returns; a
//! background thread flushes the memtable to columnar segments and compacts
//! them.
//!
//! ```
//! use footprint_engine::{Engine, EngineOptions, Format};
//! let dir = tempfile::tempdir().unwrap();
//! let engine = Engine::open(dir.path(), EngineOptions::default()).unwrap();
//! let report = engine.ingest_text(
//!     r#"{"user": "u1", "event": "visit", "time": "2026-01-05T10:00:00Z", "props": {"utm_source": "baidu"}}
//! {"user": "u1", "event": "signup", "time": "2026-01-05T10:03:00Z"}"#,
//!     Format::Auto,
//! ).unwrap();
//! assert_eq!(report.accepted, 2);
//! assert_eq!(engine.stats().unwrap().events, 2);
//! engine.close().unwrap();
//! ```

#![warn(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

pub mod clickhouse;
pub mod cohorts;
pub mod columns;
pub mod dedupe;
pub mod export;
pub mod people;

pub use cohorts::StaticSaved;
pub use dedupe::IngestedOnce;
pub use footprint_storage::cohorts::Cohort;

pub use footprint_query as query;
pub use footprint_query::scope::{Resolved, Scope};
pub use footprint_query::{ErrorKind, Limits, QueryError, QueryOptions, ScanStats};
pub use footprint_storage as storage;
pub use footprint_storage::{
    Alias, Event, Format, Ingested, OpenReport, ProfileOp, ProfileUpdate, RowError, Store,
    StoreOptions, StoreStats, Value,
};
pub use people::Schema;

/// Errors of the engine API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A storage failure (I/O, corruption, lock).
    #[error(transparent)]
    Storage(#[from] footprint_storage::Error),
    /// The caller's input was rejected.
    #[error("{0}")]
    Invalid(String),
    /// A query failed (invalid, not supported, timeout, cancelled, storage).
    #[error(transparent)]
    Query(#[from] footprint_query::QueryError),
}

/// Result alias of the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Tunables of an engine.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Storage tunables.
    pub store: StoreOptions,
    /// Run the background flush/compaction thread.
    pub background: bool,
    /// Flush a non-empty memtable at least this often, so the WAL stays short.
    pub flush_interval: Duration,
    /// Query threads (0 = one per core).
    pub query_threads: usize,
    /// Most dedupe keys held in memory for [`Engine::ingest_once`] (about
    /// 40 bytes each); past it the oldest days are forgotten first.
    pub dedupe_max_keys: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            store: StoreOptions::default(),
            background: true,
            flush_interval: Duration::from_secs(60),
            query_threads: 0,
            dedupe_max_keys: 20_000_000,
        }
    }
}

/// The outcome of an ingest call.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IngestReport {
    /// Rows stored.
    pub accepted: usize,
    /// Rows rejected.
    pub rejected: usize,
    /// Why the first rejected rows were rejected (at most
    /// `storage::parse::MAX_ROW_ERRORS`; line numbers are 1-based).
    pub errors: Vec<RowError>,
    /// What was left out of stored rows (property names past the limit).
    pub warnings: Vec<String>,
}

struct Inner {
    store: Store,
    opts: EngineOptions,
    stop: Mutex<bool>,
    wake: Condvar,
}

/// An open Footprint database.
pub struct Engine {
    inner: Arc<Inner>,
    pool: rayon::ThreadPool,
    report: OpenReport,
    background: Mutex<Option<JoinHandle<()>>>,
    dedupe: dedupe::Dedupe,
}

impl Engine {
    /// Opens (or creates) the database in `dir`, recovering from the WAL.
    pub fn open(dir: &Path, opts: EngineOptions) -> Result<Engine> {
        let (store, report) = Store::open(dir, opts.store.clone())?;
        for (file, bytes) in &report.torn_tails {
            tracing::warn!(
                "recovery: cut {bytes} unacknowledged bytes from {}",
                file.display()
            );
        }
        let inner = Arc::new(Inner {
            store,
            opts,
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let background = if inner.opts.background {
            let i = inner.clone();
            Some(
                std::thread::Builder::new()
                    .name("footprint-flush".into())
                    .spawn(move || background_loop(&i))
                    .map_err(|e| Error::Invalid(format!("cannot start the flush thread: {e}")))?,
            )
        } else {
            None
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(inner.opts.query_threads)
            .thread_name(|i| format!("footprint-query-{i}"))
            .build()
            .map_err(|e| Error::Invalid(format!("cannot start the query threads: {e}")))?;
        let dedupe = dedupe::Dedupe::new(inner.opts.dedupe_max_keys);
        Ok(Engine {
            inner,
            pool,
            report,
            background: Mutex::new(background),
            dedupe,
        })
    }

    /// What recovery found when this engine opened.
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// The underlying store (for the query layer and tools).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    fn after_write(&self) -> Result<()> {
        let store = &self.inner.store;
        if store.needs_flush() {
            if !self.inner.opts.background
                || store.memtable_rows() >= 3 * store.options().memtable_rows
            {
                // Back-pressure: the writer pays for the flush it made necessary.
                store.flush()?;
            } else {
                self.inner.wake.notify_one();
            }
        }
        Ok(())
    }

    /// Ingests validated events; durable and visible when this returns.
    /// The result says what was left out (property names past
    /// [`StoreOptions::max_props`]).
    pub fn ingest(&self, events: Vec<Event>) -> Result<Ingested> {
        let outcome = self.inner.store.ingest(events)?;
        self.after_write()?;
        Ok(outcome)
    }

    /// Ingests events, each with an optional id, storing an event only if
    /// no event of the same user with the same id was stored within the
    /// last [`dedupe::WINDOW_DAYS`] days of event time (or earlier in the
    /// batch): retries of a batch whose answer was lost never count twice.
    /// Durable, like [`Engine::ingest`]; see [`dedupe`].
    pub fn ingest_once(&self, events: Vec<(Event, Option<String>)>) -> Result<IngestedOnce> {
        let store = &self.inner.store;
        let events = events
            .into_iter()
            .map(|(e, id)| (e, id.filter(|i| !i.is_empty())))
            .collect();
        let done = self
            .dedupe
            .ingest_once(store, events, |evs| Ok(store.ingest(evs)?))?;
        self.after_write()?;
        Ok(done)
    }

    /// The dedupe index of [`Engine::ingest_once`].
    pub fn dedupe(&self) -> &dedupe::Dedupe {
        &self.dedupe
    }

    /// Parses and ingests a batch of rows (NDJSON, JSON array or CSV). Good
    /// rows are stored even when others are rejected.
    pub fn ingest_text(&self, text: &str, format: Format) -> Result<IngestReport> {
        let parsed = footprint_storage::parse::parse_batch(text, format, 1);
        let mut report = IngestReport {
            accepted: parsed.events.len(),
            rejected: parsed.rejected,
            errors: parsed.errors,
            warnings: Vec::new(),
        };
        let outcome = self.ingest(parsed.events)?;
        report
            .warnings
            .extend(outcome.warning(self.inner.store.options().max_props));
        Ok(report)
    }

    /// Applies profile updates durably.
    pub fn upsert_profiles(&self, updates: Vec<ProfileUpdate>) -> Result<()> {
        self.inner.store.upsert_profiles(updates)?;
        self.after_write()
    }

    /// Links anonymous ids to known ids durably. Both ids must be valid
    /// user ids (1 to 1024 bytes); otherwise nothing is written.
    pub fn alias(&self, aliases: Vec<Alias>) -> Result<()> {
        for (i, a) in aliases.iter().enumerate() {
            footprint_storage::parse::check_name(&a.anonymous, "anonymous")
                .and_then(|()| footprint_storage::parse::check_name(&a.known, "known"))
                .map_err(|m| Error::Invalid(format!("alias {i}: {m}")))?;
        }
        self.inner.store.alias(aliases)?;
        self.after_write()
    }

    /// Runs a query (the JSON of `QUERY_API.md`) and returns its result.
    pub fn query(&self, query: &str) -> Result<serde_json::Value> {
        let v: serde_json::Value = serde_json::from_str(query).map_err(|e| {
            Error::Query(QueryError::invalid(
                "",
                format!(
                    "not valid JSON at line {} column {}: {e}",
                    e.line(),
                    e.column()
                ),
            ))
        })?;
        self.query_json(&v, QueryOptions::default())
    }

    /// Runs a parsed query with options (time budget, cancellation).
    pub fn query_json(
        &self,
        query: &serde_json::Value,
        opts: QueryOptions,
    ) -> Result<serde_json::Value> {
        self.query_json_with_limits(query, opts, Limits::default())
    }

    /// [`Engine::query_json`] within memory limits other than the default
    /// ones (see [`footprint_query::limits`]).
    pub fn query_json_with_limits(
        &self,
        query: &serde_json::Value,
        opts: QueryOptions,
        limits: Limits,
    ) -> Result<serde_json::Value> {
        let store = &self.inner.store;
        Ok(self
            .pool
            .install(|| footprint_query::execute_with_limits(store, query, opts, limits))?)
    }

    /// Every member's score under `query` (a `users` query with `score`,
    /// see [`footprint_query::score`]), ascending by user id: what a saved
    /// score writes as a profile property. Validated, budgeted, cancelled
    /// and scoped as [`Engine::query_json`] is.
    pub fn score_all(
        &self,
        query: &serde_json::Value,
        opts: QueryOptions,
    ) -> Result<Vec<(u32, f64)>> {
        let store = &self.inner.store;
        Ok(self
            .pool
            .install(|| footprint_query::score::all(store, query, opts))?)
    }

    /// Translates `query` into SQL over the tables that
    /// [`Engine::export_parquet`] writes (see [`footprint_query::sql`]),
    /// resolving names and validating exactly as [`Engine::query_json`].
    /// With a `scope`, the query's `users` is narrowed to it first
    /// ([`Scope::narrow_query`]), so the SQL computes what the scope
    /// sees (a scope that names a saved cohort is not translatable).
    pub fn translate_sql(
        &self,
        query: &serde_json::Value,
        opts: &footprint_query::sql::Options,
        scope: Option<&Scope>,
    ) -> Result<String> {
        let narrowed;
        let query = match scope {
            Some(s) => {
                narrowed = s.narrow_query(query);
                &narrowed
            }
            None => query,
        };
        Ok(footprint_query::sql::translate(
            &self.inner.store,
            query,
            opts,
        )?)
    }

    /// The people `opts.scope` admits now (among the people of `among`
    /// when given: cheaper for a few); `None` without a scope. See
    /// [`footprint_query::scope`].
    pub fn resolve_scope(
        &self,
        opts: &QueryOptions,
        among: Option<&roaring::RoaringBitmap>,
    ) -> Result<Option<Resolved>> {
        let Some(scope) = &opts.scope else {
            return Ok(None);
        };
        let store = &self.inner.store;
        let snap = store.snapshot();
        Ok(Some(self.pool.install(|| {
            footprint_query::scope::resolve(store, &snap, scope, opts, among)
        })?))
    }

    /// Flushes the memtable to segments now.
    pub fn flush(&self) -> Result<()> {
        Ok(self.inner.store.flush()?)
    }

    /// Runs one round of compaction now.
    pub fn compact(&self) -> Result<usize> {
        Ok(self.inner.store.compact()?)
    }

    /// Writes the events not yet exported to `out` (all of them into a
    /// new directory) and every profile as Parquet files, one shard per
    /// query thread at a time, then the export's manifest (see
    /// [`export`]); `progress` is called with the events read.
    pub fn export_parquet(
        &self,
        out: &Path,
        opts: &export::ExportOptions,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<export::ExportSummary> {
        let store = &self.inner.store;
        self.pool
            .install(|| export::export_parquet(store, out, opts, progress))
    }

    /// Counts and sizes.
    pub fn stats(&self) -> Result<StoreStats> {
        Ok(self.inner.store.stats()?)
    }

    /// Stops the background thread, flushes, and closes the database.
    pub fn close(self) -> Result<()> {
        self.stop_background();
        self.inner.store.flush()?;
        Ok(())
    }

    fn stop_background(&self) {
        *self.inner.stop.lock() = true;
        self.inner.wake.notify_all();
        if let Some(h) = self.background.lock().take() {
            let _ = h.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Everything acknowledged is already in the WAL; stopping the thread
        // is all that is needed for a clean drop.
        self.stop_background();
    }
}

fn background_loop(inner: &Inner) {
    let mut last_flush = Instant::now();
    loop {
        {
            let mut stop = inner.stop.lock();
            if *stop {
                return;
            }
            inner.wake.wait_for(&mut stop, Duration::from_millis(200));
            if *stop {
                return;
            }
        }
        let store = &inner.store;
        let due = store.memtable_rows() > 0 && last_flush.elapsed() >= inner.opts.flush_interval;
        if store.needs_flush() || due {
            if let Err(e) = store.flush() {
                tracing::error!("background flush failed; writes are refused until reopen: {e}");
                return;
            }
            last_flush = Instant::now();
        }
        if let Err(e) = store.compact() {
            tracing::error!("background compaction failed; writes are refused until reopen: {e}");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 11: alias ids were not length-checked (a 10 MB id was stored).
    #[test]
    fn alias_ids_are_checked_like_user_ids() {
        let dir = tempfile::tempdir().unwrap();
        let opts = EngineOptions {
            background: false,
            ..Default::default()
        };
        let e = Engine::open(dir.path(), opts).unwrap();
        let link = |a: &str, k: &str| Alias {
            anonymous: a.into(),
            known: k.into(),
        };
        let long = "x".repeat(1025);
        for (bad, want) in [
            (link(&long, "u1"), "alias 1: anonymous is 1025 bytes long"),
            (link("c2", &long), "alias 1: known is 1025 bytes long"),
            (link("c2", ""), "alias 1: known is empty"),
        ] {
            let err = e.alias(vec![link("c1", "u1"), bad]).unwrap_err();
            assert!(err.to_string().contains(want), "{err}");
        }
        assert_eq!(e.stats().unwrap().aliases, 0);
        e.alias(vec![link(&"x".repeat(1024), "u1")]).unwrap();
        assert_eq!(e.stats().unwrap().aliases, 1);
    }
}
