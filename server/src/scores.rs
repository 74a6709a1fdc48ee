//! Saved health scores (README, "Health scores"): a `users` query with
//! `score`, run on a schedule (or when asked), writing each member's score
//! as a profile property through the engine's durable profile updates, so
//! that `users` filters and `user_prop` breakdowns read it.
//!
//! # On disk
//! `scores/NAME.json` holds the definition (written once per create or
//! replace), `scores/NAME.state.json` the last run: when, how many users,
//! the failure if any, and the users it wrote (portable roaring, base64).
//! Both are replaced atomically (temp file, fsync, rename, fsync of the
//! folder). A run writes the scores first and its state after: after a
//! crash between the two, the next run writes them again (a set is
//! idempotent). A user scored before and no longer a member has the
//! property removed (`unset`) by the next run, so a filter on it never
//! reads a score its user no longer has.
//!
//! # Locks
//! The registry mutex (names → score, run lock, schedule) is a leaf, never
//! held across I/O. A score's run lock is held across one run (the query,
//! the profile writes, the state file); the engine's locks are taken
//! inside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use footprint_engine::storage::cohorts::now_ms;
use footprint_engine::storage::fsutil;
use footprint_engine::{Engine, ProfileOp, ProfileUpdate, QueryOptions, Value};
use parking_lot::Mutex;
use roaring::RoaringBitmap;
use serde_json::{json, Value as Json};

use crate::watch::{
    decode_users, encode_users, invalid, period_ms, read_json, write_json, Invalid,
};

/// Profile updates per durable write while a run stores its scores.
pub const WRITE_CHUNK: usize = 10_000;
/// Wait after a failed scheduled run before the next try.
pub const RETRY_MS: i64 = 60_000;

/// A saved score (`NAME.json`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SavedScore {
    /// Its name (a cohort name's rules).
    pub name: String,
    /// The `users` query with `score`.
    pub query: Json,
    /// The profile property each member's score is written to.
    pub property: String,
    /// The period as given (`None`: runs only when asked).
    pub every: Option<Json>,
    /// The period, ms.
    pub every_ms: Option<i64>,
    /// Creation time, epoch ms.
    pub created_at: i64,
}

impl SavedScore {
    /// Reads a `POST /v1/scores` body; checks the query by running it, so
    /// its errors name their path (under `query`) now, not at run time.
    pub fn parse(v: &Json, engine: &Engine, opts: &QueryOptions) -> Result<SavedScore, Invalid> {
        let Json::Object(m) = v else {
            return Err(invalid("", "expected an object"));
        };
        const FIELDS: [&str; 4] = ["name", "query", "property", "every"];
        if let Some(k) = m.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(invalid(
                k,
                format!("unknown field \"{k}\"; allowed here: {}", FIELDS.join(", ")),
            ));
        }
        let name = match m.get("name") {
            Some(Json::String(n)) => {
                footprint_engine::storage::cohorts::check_name(n)
                    .map_err(|e| invalid("name", e.replace("cohort", "score")))?;
                n.clone()
            }
            _ => {
                return Err(invalid(
                    "name",
                    "required: 1 to 64 letters, digits, '_' or '-'",
                ))
            }
        };
        let property = match m.get("property") {
            Some(Json::String(p)) if check_property(p) => p.clone(),
            _ => {
                return Err(invalid(
                    "property",
                    "required: a profile property name of 1 to 128 letters, digits, '_', '-' or '.' (not starting with '$')",
                ))
            }
        };
        let (every, every_ms) = match m.get("every") {
            None | Some(Json::Null) => (None, None),
            Some(e) => (Some(e.clone()), Some(period_ms(e)?)),
        };
        let query = match m.get("query") {
            Some(q @ Json::Object(_)) => q.clone(),
            _ => return Err(invalid("query", "required: a users query with \"score\"")),
        };
        if query.get("kind").and_then(Json::as_str) != Some("users") {
            return Err(invalid("query.kind", "a score is a users query: \"users\""));
        }
        if query.get("score").is_none() {
            return Err(invalid("query.score", "required: the score's components"));
        }
        if let Err(e) = engine.query_json(&query, opts.clone()) {
            let (path, message) = match e {
                footprint_engine::Error::Query(q) => (q.path, q.message),
                other => (String::new(), other.to_string()),
            };
            let path = if path.is_empty() {
                "query".to_owned()
            } else {
                format!("query.{path}")
            };
            return Err(invalid(&path, message));
        }
        Ok(SavedScore {
            name,
            query,
            property,
            every,
            every_ms,
            created_at: now_ms(),
        })
    }
}

/// A profile property name a score may write.
fn check_property(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 128
        && !p.starts_with('$')
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// `NAME.state.json`: the last run.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
struct State {
    /// When it finished (or failed), epoch ms.
    run_at: Option<i64>,
    /// Users scored.
    users: u64,
    /// Users whose old score was removed (no longer members).
    removed: u64,
    /// How long it took, ms.
    ms: u64,
    /// Why it failed, if it did.
    error: Option<String>,
    /// The users whose property it wrote (portable roaring, base64).
    scored: String,
}

/// What one run did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RunReport {
    /// The score's name.
    pub name: String,
    /// Users scored (each had the property set).
    pub users: u64,
    /// Users scored before and no longer members (the property unset).
    pub removed: u64,
    /// How long it took, ms.
    pub ms: u64,
}

struct Entry {
    score: SavedScore,
    run: Arc<Mutex<()>>,
    /// The last successful run's time (for the schedule).
    run_at: Option<i64>,
    /// No scheduled run before this (after a failure), epoch ms.
    not_before: i64,
}

/// The saved scores of one data directory.
pub struct Scores {
    dir: PathBuf,
    registry: Mutex<BTreeMap<String, Entry>>,
}

impl Scores {
    /// Opens `DATA/scores`, loading every saved score.
    pub fn open(data: &Path) -> Result<Scores> {
        let dir = data.join("scores");
        let mut registry = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries {
                let p = e?.path();
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name.ends_with(".tmp") {
                    // An unfinished write; nothing refers to it.
                    std::fs::remove_file(&p)
                        .with_context(|| format!("cannot remove {}", p.display()))?;
                    continue;
                }
                if !name.ends_with(".json") || name.ends_with(".state.json") {
                    continue;
                }
                let score: SavedScore = read_json(&p)?;
                let state: State = read_json(&state_path(&dir, &score.name)).unwrap_or_default();
                registry.insert(
                    score.name.clone(),
                    Entry {
                        score,
                        run: Arc::default(),
                        // A failed run is retried at once.
                        run_at: state.run_at.filter(|_| state.error.is_none()),
                        not_before: 0,
                    },
                );
            }
        }
        Ok(Scores {
            dir,
            registry: Mutex::new(registry),
        })
    }

    /// No scores loaded, storing new ones under `DATA/scores`.
    pub fn empty(data: &Path) -> Scores {
        Scores {
            dir: data.join("scores"),
            registry: Mutex::new(BTreeMap::new()),
        }
    }

    /// Stores a score durably, replacing one of the same name (whose last
    /// run is forgotten: the new definition runs at once when scheduled).
    pub fn create(&self, score: SavedScore) -> Result<()> {
        let run = self
            .registry
            .lock()
            .get(&score.name)
            .map(|e| e.run.clone())
            .unwrap_or_default();
        let _g = run.lock();
        fsutil::ensure_dir(&self.dir)?;
        remove_if_there(&state_path(&self.dir, &score.name))?;
        write_json(&def_path(&self.dir, &score.name), &score)?;
        self.registry.lock().insert(
            score.name.clone(),
            Entry {
                score,
                run: run.clone(),
                run_at: None,
                not_before: 0,
            },
        );
        Ok(())
    }

    /// The names of the scores.
    pub fn names(&self) -> Vec<String> {
        self.registry.lock().keys().cloned().collect()
    }

    /// Every score with its last run.
    pub fn list(&self) -> Vec<Json> {
        self.names().iter().filter_map(|n| self.status(n)).collect()
    }

    /// Score `name` with its last run: `{name, query, property, every,
    /// created_at, last_run: {at, users, removed, ms, error}}`.
    pub fn status(&self, name: &str) -> Option<Json> {
        let score = self.registry.lock().get(name)?.score.clone();
        let state: State = read_json(&state_path(&self.dir, name)).unwrap_or_default();
        let last_run = state.run_at.map(|at| {
            json!({"at": at, "users": state.users, "removed": state.removed, "ms": state.ms, "error": state.error})
        });
        Some(json!({
            "name": score.name, "query": score.query, "property": score.property,
            "every": score.every, "created_at": score.created_at, "last_run": last_run,
        }))
    }

    /// Deletes a score (after a run in progress ends); false if none. The
    /// property stays as last written.
    pub fn delete(&self, name: &str) -> Result<bool> {
        let Some(run) = self.registry.lock().get(name).map(|e| e.run.clone()) else {
            return Ok(false);
        };
        let _g = run.lock();
        remove_if_there(&def_path(&self.dir, name))?;
        remove_if_there(&state_path(&self.dir, name))?;
        fsutil::sync_dir(&self.dir)?;
        self.registry.lock().remove(name);
        Ok(true)
    }

    /// Runs score `name` now: scores its members (with `opts`' time
    /// budget; a saved score is never scoped), writes each score to the
    /// property, unsets it for the users scored before and no longer
    /// members, and records the run.
    pub fn run(&self, engine: &Engine, name: &str, opts: QueryOptions) -> Result<RunReport> {
        let (score, run) = {
            let reg = self.registry.lock();
            let e = reg.get(name).ok_or_else(|| anyhow!("no score {name}"))?;
            (e.score.clone(), e.run.clone())
        };
        let _g = run.lock();
        if !def_path(&self.dir, name).exists() {
            return Err(anyhow!("score {name} was deleted"));
        }
        let started = std::time::Instant::now();
        let spath = state_path(&self.dir, name);
        let before: State = if spath.exists() {
            read_json(&spath)?
        } else {
            State::default()
        };
        let opts = QueryOptions {
            scope: None,
            ..opts
        };
        let r = write_scores(engine, &score, &decode_users(&before.scored, &spath)?, opts);
        let now = now_ms();
        let ms = started.elapsed().as_millis() as u64;
        let state = match &r {
            Ok((scored, removed)) => State {
                run_at: Some(now),
                users: scored.len(),
                removed: *removed,
                ms,
                error: None,
                scored: encode_users(scored)?,
            },
            Err(e) => State {
                run_at: Some(now),
                error: Some(format!("{e:#}")),
                ms,
                ..before
            },
        };
        if let Some(e) = self.registry.lock().get_mut(name) {
            // The period counts from the last run that worked; a failed
            // one (or a state that cannot be written) is retried after
            // RETRY_MS.
            if r.is_ok() {
                e.run_at = Some(now);
                e.not_before = 0;
            } else {
                e.not_before = now + RETRY_MS;
            }
        }
        if let Err(e) = write_json(&spath, &state) {
            if let Some(e) = self.registry.lock().get_mut(name) {
                e.not_before = now + RETRY_MS;
            }
            return Err(e);
        }
        let (scored, removed) = r?;
        Ok(RunReport {
            name: name.to_owned(),
            users: scored.len(),
            removed,
            ms,
        })
    }

    /// Runs every score whose period has passed (and that is not waiting
    /// after a failure); for the server's scheduler.
    pub fn tick(&self, engine: &Engine) {
        let now = now_ms();
        let due: Vec<String> = self
            .registry
            .lock()
            .iter()
            .filter(|(_, e)| {
                e.not_before <= now
                    && e.score.every_ms.is_some_and(|every| {
                        e.run_at.is_none_or(|t| now.saturating_sub(t) >= every)
                    })
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            if let Err(e) = self.run(engine, &name, QueryOptions::default()) {
                tracing::warn!("score {name}: {e:#}");
            }
        }
    }
}

/// Scores the members and writes the property: set for each member, unset
/// for the users of `before` who are no longer members. The members and
/// how many were unset.
fn write_scores(
    engine: &Engine,
    score: &SavedScore,
    before: &RoaringBitmap,
    opts: QueryOptions,
) -> Result<(RoaringBitmap, u64)> {
    let scores = engine.score_all(&score.query, opts)?;
    let store = engine.store();
    let scored: RoaringBitmap = scores.iter().map(|(u, _)| *u).collect();
    for chunk in scores.chunks(WRITE_CHUNK) {
        let ids: Vec<u32> = chunk.iter().map(|(u, _)| *u).collect();
        let updates = store
            .user_names(&ids)
            .into_iter()
            .zip(chunk)
            .map(|(user, &(_, s))| ProfileUpdate {
                user,
                op: ProfileOp::Set,
                props: vec![(score.property.clone(), value(s))],
            })
            .collect();
        engine.upsert_profiles(updates)?;
    }
    let gone: Vec<u32> = (before - &scored).iter().collect();
    for chunk in gone.chunks(WRITE_CHUNK) {
        let updates = store
            .user_names(chunk)
            .into_iter()
            .map(|user| ProfileUpdate {
                user,
                op: ProfileOp::Unset,
                props: vec![(score.property.clone(), Value::Int(0))],
            })
            .collect();
        engine.upsert_profiles(updates)?;
    }
    Ok((scored, gone.len() as u64))
}

/// A score as a profile value: an integer when it is one.
fn value(s: f64) -> Value {
    if s.fract() == 0.0 && s.abs() < 9.0e15 {
        Value::Int(s as i64)
    } else {
        Value::Float(s)
    }
}

fn def_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

fn state_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.state.json"))
}

fn remove_if_there(p: &Path) -> Result<()> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", p.display())),
    }
}
