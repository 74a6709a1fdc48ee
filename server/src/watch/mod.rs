//! Watches (README, "Watches"): a cohort evaluated on a schedule, and the
//! users who entered or left it since the last evaluation POSTed to a
//! webhook as signed JSON batches.
//!
//! # Delivery state (exactly once per idempotency key)
//! Each watch has a folder `watches/ID/`: `watch.json` (what it watches,
//! written once), `state.json` (the next batch number, the last
//! evaluation's time and members) and `out/`, the batches not yet
//! delivered, one file per part, holding the exact body that is posted.
//! An evaluation writes its parts to `out/` first (each temp file, fsync,
//! rename, fsync of the folder), then replaces `state.json` with the new
//! members and batch number: that rename is the commit point. Part files
//! whose batch the state does not yet count are leftovers of a crash
//! before the commit and are removed (they were never posted). Only then
//! are the parts posted; a part's file is removed after a 2xx reply. After
//! a crash or a failed post, the same file is posted again with the same
//! idempotency key and signature, so a receiver that keeps the keys it
//! has seen acts on each entry once, and no entry is lost: the members an
//! entry is computed against move on only with the commit that holds it.
//! While any part is undelivered no new evaluation runs (the next one
//! catches up on all changes since).
//!
//! # Locks
//! The registry mutex (ids → watch, run lock, retry state) is a leaf,
//! never held across I/O. A watch's run lock is held across one run
//! (its file I/O, the evaluation, the posts); it is taken without the
//! registry mutex held, and the engine's own locks are taken inside it.

pub mod deliver;
pub mod sign;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use base64::Engine as _;
use footprint_engine::storage::cohorts::now_ms;
use footprint_engine::storage::fsutil;
use footprint_engine::{Engine, QueryOptions, Scope};
use parking_lot::Mutex;
use roaring::RoaringBitmap;
use serde_json::{json, Map, Value as Json};

/// Shortest period between evaluations.
pub const MIN_EVERY_MS: i64 = 1000;
/// Users (entered and left together) per posted part.
pub const PART_USERS: usize = 1000;
/// Longest wait between retries of a failing post.
pub const MAX_BACKOFF_MS: i64 = 300_000;
/// First wait after a failed post (doubling after each further failure).
pub const FIRST_BACKOFF_MS: i64 = 500;

/// A bad field of a watch, by JSON path.
#[derive(Debug)]
pub struct Invalid {
    /// The field.
    pub path: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

pub(crate) fn invalid(path: &str, message: impl Into<String>) -> Invalid {
    Invalid {
        path: path.into(),
        message: message.into(),
    }
}

/// What a watch watches and where it posts (`watch.json`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Watch {
    /// `w` and 16 hex digits.
    pub id: String,
    /// A saved cohort's name, or a `users` definition.
    pub cohort: Json,
    /// The period as given.
    pub every: Json,
    /// The period, ms.
    pub every_ms: i64,
    /// `enter` and/or `leave`.
    pub on: Vec<String>,
    /// Where batches are POSTed (http or https).
    pub webhook: String,
    /// Profile properties sent with each user.
    pub fields: Vec<String>,
    /// The HMAC key of the signature.
    pub secret: String,
    /// `baseline`: the first evaluation records the members without
    /// posting them; `enter`: they are posted as entered.
    pub initial: String,
    /// Creation time, epoch ms.
    pub created_at: i64,
    /// The scope of the key that made it (a user condition): it
    /// evaluates to in-scope people only, and only keys of the same scope
    /// see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Json>,
}

impl Watch {
    /// Reads a `POST /v1/watches` body made with a key of `scope`;
    /// checks a definition by evaluating it (so its errors name their
    /// path now, not at run time).
    pub fn parse(v: &Json, engine: &Engine, scope: Option<&Scope>) -> Result<Watch, Invalid> {
        let Json::Object(m) = v else {
            return Err(invalid("", "expected an object"));
        };
        const FIELDS: [&str; 7] = [
            "cohort", "every", "on", "webhook", "fields", "secret", "initial",
        ];
        if let Some(k) = m.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(invalid(
                k,
                format!("unknown field \"{k}\"; allowed here: {}", FIELDS.join(", ")),
            ));
        }
        let cohort = match m.get("cohort") {
            Some(Json::String(name)) => {
                if engine.store().cohort_record(name).ok().flatten().is_none() {
                    let e = footprint_engine::query::cohorts::not_found(engine.store(), name);
                    return Err(invalid("cohort", e.message));
                }
                Json::String(name.clone())
            }
            Some(def @ Json::Object(_)) => {
                for k in footprint_engine::query::cohorts::NOT_DEFINITION {
                    if def.get(k).is_some() {
                        return Err(invalid(
                            &format!("cohort.{k}"),
                            format!("\"{k}\" has no place in a watched definition"),
                        ));
                    }
                }
                let opts = QueryOptions {
                    scope: scope.cloned(),
                    ..Default::default()
                };
                if let Err(e) = engine.evaluate_definition(def, &opts) {
                    let (path, message) = match e {
                        footprint_engine::Error::Query(q) => (q.path, q.message),
                        other => (String::new(), other.to_string()),
                    };
                    let path = match path.strip_prefix("definition") {
                        Some(rest) => format!("cohort{rest}"),
                        None => "cohort".into(),
                    };
                    return Err(invalid(&path, message));
                }
                def.clone()
            }
            _ => {
                return Err(invalid(
                    "cohort",
                    "required: a saved cohort's name or a users query",
                ))
            }
        };
        let every = m
            .get("every")
            .cloned()
            .ok_or_else(|| invalid("every", "required: {\"value\": N, \"unit\": \"hour\"}"))?;
        let every_ms = period_ms(&every)?;
        let on = match m.get("on") {
            None => vec!["enter".to_owned(), "leave".to_owned()],
            Some(Json::Array(a)) if !a.is_empty() => {
                let mut on = Vec::new();
                for (i, x) in a.iter().enumerate() {
                    match x.as_str() {
                        Some(s @ ("enter" | "leave")) => {
                            if !on.iter().any(|o| o == s) {
                                on.push(s.to_owned())
                            }
                        }
                        _ => return Err(invalid(&format!("on[{i}]"), "allowed: enter, leave")),
                    }
                }
                on
            }
            Some(_) => return Err(invalid("on", "a non-empty list of enter, leave")),
        };
        let webhook = match m.get("webhook").and_then(Json::as_str) {
            Some(u) => check_url(u)?,
            None => return Err(invalid("webhook", "required: an http:// or https:// URL")),
        };
        let fields = match m.get("fields") {
            None => Vec::new(),
            Some(Json::Array(a)) if a.len() <= 100 => {
                let mut out = Vec::new();
                for (i, f) in a.iter().enumerate() {
                    match f.as_str() {
                        Some(s) if !s.is_empty() => out.push(s.to_owned()),
                        _ => {
                            return Err(invalid(
                                &format!("fields[{i}]"),
                                "expected a profile property name",
                            ))
                        }
                    }
                }
                out
            }
            Some(_) => {
                return Err(invalid(
                    "fields",
                    "a list of at most 100 profile property names",
                ))
            }
        };
        let secret = match m.get("secret") {
            None => sign::random_hex(16).map_err(|e| invalid("secret", e.to_string()))?,
            Some(Json::String(s)) if s.len() >= 16 && s.len() <= 1024 => s.clone(),
            Some(_) => {
                return Err(invalid(
                    "secret",
                    "a string of 16 to 1024 characters (or leave it out and one is made)",
                ))
            }
        };
        let initial = match m.get("initial").map(|v| v.as_str()) {
            None => "baseline".to_owned(),
            Some(Some(s @ ("baseline" | "enter"))) => s.to_owned(),
            Some(_) => return Err(invalid("initial", "allowed: baseline, enter")),
        };
        let id = format!(
            "w{}",
            sign::random_hex(8).map_err(|e| invalid("", e.to_string()))?
        );
        Ok(Watch {
            id,
            cohort,
            every,
            every_ms,
            on,
            webhook,
            fields,
            secret,
            initial,
            created_at: now_ms(),
            scope: scope.map(|s| s.condition().clone()),
        })
    }

    /// What `GET /v1/watches` shows (never the secret).
    pub fn public(&self) -> Json {
        json!({
            "id": self.id, "cohort": self.cohort, "every": self.every, "on": self.on,
            "webhook": self.webhook, "fields": self.fields, "initial": self.initial,
            "created_at": self.created_at, "scope": self.scope,
        })
    }
}

pub(crate) fn period_ms(v: &Json) -> Result<i64, Invalid> {
    let value = v.get("value").and_then(Json::as_u64);
    let unit = v.get("unit").and_then(Json::as_str);
    let keys_ok = v
        .as_object()
        .is_some_and(|m| m.keys().all(|k| k == "value" || k == "unit"));
    let (Some(value), Some(unit), true) = (value, unit, keys_ok) else {
        return Err(invalid(
            "every",
            "expected {\"value\": N, \"unit\": \"second|minute|hour|day|week\"}",
        ));
    };
    let unit_ms: i64 = match unit {
        "second" => 1000,
        "minute" => 60_000,
        "hour" => 3_600_000,
        "day" => 86_400_000,
        "week" => 604_800_000,
        other => {
            return Err(invalid(
                "every.unit",
                format!("unknown unit {other:?}; allowed: second, minute, hour, day, week"),
            ))
        }
    };
    let ms = i64::try_from(value)
        .ok()
        .and_then(|v| v.checked_mul(unit_ms))
        .filter(|&ms| (MIN_EVERY_MS..=366 * 86_400_000).contains(&ms))
        .ok_or_else(|| {
            invalid(
                "every.value",
                "the period must be from 1 second to 366 days",
            )
        })?;
    Ok(ms)
}

fn check_url(u: &str) -> Result<String, Invalid> {
    let rest = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"));
    let host_ok = rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !host.contains(char::is_whitespace)
    });
    if host_ok && u.len() <= 2048 {
        Ok(u.to_owned())
    } else {
        Err(invalid(
            "webhook",
            format!("{u:?}: expected an http:// or https:// URL with a host"),
        ))
    }
}

/// `state.json`: where a watch is.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct State {
    /// The number of the next batch (batches below it are committed).
    next_batch: u64,
    /// The last evaluation, epoch ms.
    evaluated_at: Option<i64>,
    /// The members at the last evaluation (portable roaring, base64).
    members: String,
}

impl State {
    fn members(&self, path: &Path) -> Result<RoaringBitmap> {
        decode_users(&self.members, path)
    }
}

/// Users as a state file holds them: portable roaring, base64.
pub(crate) fn encode_users(users: &RoaringBitmap) -> Result<String> {
    let mut bytes = Vec::with_capacity(users.serialized_size());
    users.serialize_into(&mut bytes)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The users of [`encode_users`]'s text, read from the file at `path`
/// (named in errors; an empty text is nobody).
pub(crate) fn decode_users(text: &str, path: &Path) -> Result<RoaringBitmap> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .with_context(|| format!("{}: users are not base64", path.display()))?;
    if bytes.is_empty() {
        return Ok(RoaringBitmap::new());
    }
    RoaringBitmap::deserialize_from(&bytes[..])
        .with_context(|| format!("{}: damaged user set", path.display()))
}

/// Retry state of one watch, in memory.
#[derive(Debug, Default, Clone)]
struct Retry {
    failures: u32,
    /// No post or evaluation before this (epoch ms).
    not_before: i64,
    last_error: Option<String>,
}

struct Entry {
    watch: Watch,
    run: Arc<Mutex<()>>,
    retry: Retry,
}

/// What one run did.
#[derive(Debug, Default, serde::Serialize)]
pub struct RunReport {
    /// Parts posted with a 2xx reply.
    pub delivered: usize,
    /// Parts still waiting (a post failed).
    pub pending: usize,
    /// Whether the cohort was evaluated.
    pub evaluated: bool,
    /// Users entered and left at this evaluation.
    pub entered: u64,
    /// See `entered`.
    pub left: u64,
    /// Milliseconds from the start of the evaluation to its commit (the
    /// cohort evaluated, compared with the last members, the batch and
    /// the new state written durably), posting not included; `None`
    /// without an evaluation.
    pub evaluation_ms: Option<f64>,
    /// The failure that stopped the run, if any.
    pub error: Option<String>,
}

/// The watches of one data directory.
pub struct Watches {
    dir: PathBuf,
    poster: deliver::Poster,
    registry: Mutex<BTreeMap<String, Entry>>,
}

impl Watches {
    /// Opens `DATA/watches`, loading every watch (a folder without
    /// `watch.json`, left by a crash during a create or a delete, goes).
    pub fn open(data: &Path) -> Result<Watches> {
        let dir = data.join("watches");
        let mut registry = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries {
                let p = e?.path();
                if !p.is_dir() {
                    continue;
                }
                let wpath = p.join("watch.json");
                if !wpath.exists() {
                    std::fs::remove_dir_all(&p)
                        .with_context(|| format!("cannot remove {}", p.display()))?;
                    continue;
                }
                let text = std::fs::read_to_string(&wpath)
                    .with_context(|| format!("cannot read {}", wpath.display()))?;
                let watch: Watch = serde_json::from_str(&text)
                    .with_context(|| format!("{}: not a watch", wpath.display()))?;
                registry.insert(
                    watch.id.clone(),
                    Entry {
                        watch,
                        run: Arc::default(),
                        retry: Retry::default(),
                    },
                );
            }
        }
        Ok(Watches {
            dir,
            poster: deliver::Poster::default(),
            registry: Mutex::new(registry),
        })
    }

    /// No watches loaded, storing new ones under `DATA/watches`.
    pub fn empty(data: &Path) -> Watches {
        Watches {
            dir: data.join("watches"),
            poster: deliver::Poster::default(),
            registry: Mutex::new(BTreeMap::new()),
        }
    }

    fn folder(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Stores a new watch durably.
    pub fn create(&self, watch: Watch) -> Result<()> {
        let folder = self.folder(&watch.id);
        fsutil::ensure_dir(&self.dir)?;
        fsutil::ensure_dir(&folder)?;
        fsutil::ensure_dir(&folder.join("out"))?;
        write_json(&folder.join("state.json"), &State::default())?;
        // watch.json last: a folder without it is an unfinished create.
        write_json(&folder.join("watch.json"), &watch)?;
        fsutil::sync_dir(&self.dir)?;
        self.registry.lock().insert(
            watch.id.clone(),
            Entry {
                watch,
                run: Arc::default(),
                retry: Retry::default(),
            },
        );
        Ok(())
    }

    /// Every watch with its status.
    pub fn list(&self) -> Vec<Json> {
        let ids: Vec<String> = self.registry.lock().keys().cloned().collect();
        ids.iter().filter_map(|id| self.status(id)).collect()
    }

    /// One watch with its status: the last evaluation, parts waiting,
    /// the last failure.
    pub fn status(&self, id: &str) -> Option<Json> {
        let (watch, retry) = {
            let reg = self.registry.lock();
            let e = reg.get(id)?;
            (e.watch.clone(), e.retry.clone())
        };
        let folder = self.folder(id);
        let state: State = read_json(&folder.join("state.json")).unwrap_or_default();
        let pending = pending_parts(&folder, state.next_batch)
            .map(|p| p.len())
            .unwrap_or(0);
        let mut v = watch.public();
        v["evaluated_at"] = json!(state.evaluated_at);
        v["batches"] = json!(state.next_batch);
        v["pending"] = json!(pending);
        v["last_error"] = json!(retry.last_error);
        Some(v)
    }

    /// Deletes a watch (after a run in progress ends); false if none.
    pub fn delete(&self, id: &str) -> Result<bool> {
        let Some(run) = self.registry.lock().get(id).map(|e| e.run.clone()) else {
            return Ok(false);
        };
        let _g = run.lock();
        let folder = self.folder(id);
        let wpath = folder.join("watch.json");
        match std::fs::remove_file(&wpath) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", wpath.display())),
        }
        fsutil::sync_dir(&folder)?;
        std::fs::remove_dir_all(&folder)
            .with_context(|| format!("cannot remove {}", folder.display()))?;
        fsutil::sync_dir(&self.dir)?;
        self.registry.lock().remove(id);
        Ok(true)
    }

    /// Whether watch `id` exists and a key of `scope` may see it: an
    /// unscoped key sees every watch, a scoped one those made with its
    /// own scope.
    pub fn visible(&self, id: &str, scope: Option<&Scope>) -> bool {
        self.registry.lock().get(id).is_some_and(|e| match scope {
            None => true,
            Some(s) => e.watch.scope.as_ref() == Some(s.condition()),
        })
    }

    /// The ids of the watches.
    pub fn ids(&self) -> Vec<String> {
        self.registry.lock().keys().cloned().collect()
    }

    /// Runs watch `id` once: posts the parts waiting; then, when none is
    /// left and an evaluation is due (or `force`), evaluates, commits and
    /// posts the new batch. `tries`: attempts per post in this run (with
    /// backoff between them); a part that still fails waits for a later
    /// run, whose earliest time doubles after each failure.
    pub fn run(&self, engine: &Engine, id: &str, force: bool, tries: u32) -> Result<RunReport> {
        let (watch, run) = {
            let reg = self.registry.lock();
            let e = reg.get(id).ok_or_else(|| anyhow!("no watch {id}"))?;
            (e.watch.clone(), e.run.clone())
        };
        let _g = run.lock();
        let folder = self.folder(id);
        if !folder.join("watch.json").exists() {
            return Err(anyhow!("watch {id} was deleted"));
        }
        let mut report = RunReport::default();
        let r = self.run_locked(engine, &watch, &folder, force, tries, &mut report);
        let now = now_ms();
        let mut reg = self.registry.lock();
        if let Some(e) = reg.get_mut(id) {
            match (&r, &report.error) {
                (Ok(()), None) => e.retry = Retry::default(),
                (r, error) => {
                    let why = match r {
                        Err(x) => format!("{x:#}"),
                        Ok(()) => error.clone().unwrap_or_default(),
                    };
                    e.retry.failures = e.retry.failures.saturating_add(1);
                    let wait = (FIRST_BACKOFF_MS << e.retry.failures.min(20)).min(MAX_BACKOFF_MS);
                    e.retry.not_before = now + wait;
                    e.retry.last_error = Some(why.clone());
                    report.error = Some(why);
                }
            }
        }
        drop(reg);
        r.map(|()| report)
    }

    fn run_locked(
        &self,
        engine: &Engine,
        watch: &Watch,
        folder: &Path,
        force: bool,
        tries: u32,
        report: &mut RunReport,
    ) -> Result<()> {
        let spath = folder.join("state.json");
        let state: State = read_json(&spath)?;
        let out = folder.join("out");
        fsutil::ensure_dir(&out)?;
        // Parts of batches the state does not count were never posted.
        for (seq, p) in parts(&out)? {
            if seq >= state.next_batch {
                std::fs::remove_file(&p)
                    .with_context(|| format!("cannot remove {}", p.display()))?;
            }
        }
        if !self.post_pending(watch, &out, state.next_batch, tries, report)? {
            return Ok(());
        }
        let now = now_ms();
        let due = state
            .evaluated_at
            .is_none_or(|t| now.saturating_sub(t) >= watch.every_ms);
        if !force && !due {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let members = evaluate(engine, watch)?;
        let base = state.members(&spath)?;
        let first = state.evaluated_at.is_none();
        let quiet = first && watch.initial == "baseline";
        let on = |k: &str| !quiet && watch.on.iter().any(|o| o == k);
        let entered = if on("enter") {
            &members - &base
        } else {
            RoaringBitmap::new()
        };
        let left = if on("leave") {
            &base - &members
        } else {
            RoaringBitmap::new()
        };
        report.evaluated = true;
        report.entered = entered.len();
        report.left = left.len();
        let batch = state.next_batch;
        let bodies = batch_bodies(engine, watch, batch, now, &entered, &left);
        for (part, body) in bodies.iter().enumerate() {
            fsutil::write_atomic(&out.join(part_name(batch, part)), body)?;
        }
        let next = State {
            next_batch: batch + u64::from(!bodies.is_empty()),
            evaluated_at: Some(now),
            members: encode_users(&members)?,
        };
        // The commit point: from here on the parts are owed.
        write_json(&spath, &next)?;
        report.evaluation_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        self.post_pending(watch, &out, next.next_batch, tries, report)?;
        Ok(())
    }

    /// Posts the committed parts in order; true when none is left.
    fn post_pending(
        &self,
        watch: &Watch,
        out: &Path,
        committed: u64,
        tries: u32,
        report: &mut RunReport,
    ) -> Result<bool> {
        let pending: Vec<(u64, PathBuf)> = parts(out)?
            .into_iter()
            .filter(|(seq, _)| *seq < committed)
            .collect();
        report.pending = pending.len();
        for (_, p) in pending {
            let body = std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
            let key = p
                .file_stem()
                .and_then(|s| s.to_str())
                .map(|s| format!("{}-{s}", watch.id))
                .unwrap_or_default();
            let mut attempt = 0;
            loop {
                match self
                    .poster
                    .post(&watch.webhook, &watch.id, &key, &watch.secret, &body)
                {
                    Ok(()) => break,
                    Err(deliver::Failed(why)) => {
                        attempt += 1;
                        if attempt >= tries.max(1) {
                            report.error = Some(why);
                            return Ok(false);
                        }
                        let wait = (FIRST_BACKOFF_MS << attempt.min(10)).min(MAX_BACKOFF_MS);
                        std::thread::sleep(Duration::from_millis(wait as u64));
                    }
                }
            }
            std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
            fsutil::sync_dir(out)?;
            report.delivered += 1;
            report.pending -= 1;
        }
        Ok(true)
    }

    /// Runs every watch that is due and not waiting out a backoff; for
    /// the server's scheduler.
    pub fn tick(&self, engine: &Engine) {
        let now = now_ms();
        let due: Vec<String> = self
            .registry
            .lock()
            .iter()
            .filter(|(_, e)| e.retry.not_before <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            match self.run(engine, &id, false, 1) {
                Ok(r) if r.error.is_some() => {
                    tracing::warn!("watch {id}: {}", r.error.unwrap_or_default())
                }
                Ok(r) => {
                    if let Some(ms) = r.evaluation_ms {
                        tracing::info!(
                            "watch {id}: evaluated in {ms:.1} ms, {} entered, {} left",
                            r.entered,
                            r.left
                        );
                    }
                }
                Err(e) => tracing::warn!("watch {id}: {e:#}"),
            }
        }
    }
}

/// The batch's parts: at most [`PART_USERS`] users each, entered first.
fn batch_bodies(
    engine: &Engine,
    watch: &Watch,
    batch: u64,
    now: i64,
    entered: &RoaringBitmap,
    left: &RoaringBitmap,
) -> Vec<Vec<u8>> {
    let users: Vec<(u32, &str)> = entered
        .iter()
        .map(|u| (u, "entered"))
        .chain(left.iter().map(|u| (u, "left")))
        .collect();
    if users.is_empty() {
        return Vec::new();
    }
    let store = engine.store();
    let snap = store.snapshot();
    let chunks: Vec<&[(u32, &str)]> = users.chunks(PART_USERS).collect();
    let parts = chunks.len();
    let cohort = match &watch.cohort {
        Json::String(name) => Json::String(name.clone()),
        _ => Json::Null,
    };
    chunks
        .into_iter()
        .enumerate()
        .map(|(part, chunk)| {
            let ids: Vec<u32> = chunk.iter().map(|(u, _)| *u).collect();
            let names = store.user_names(&ids);
            let mut lists: [Vec<Json>; 2] = [Vec::new(), Vec::new()];
            for ((uid, which), name) in chunk.iter().zip(names) {
                let profile = snap.profiles.get(*uid);
                let mut props = Map::new();
                for f in &watch.fields {
                    let v = profile
                        .as_ref()
                        .and_then(|p| p.get(f))
                        .map_or(Json::Null, |v| v.to_json());
                    props.insert(f.clone(), v);
                }
                let k = usize::from(*which == "left");
                lists[k].push(json!({"user": name, "props": props}));
            }
            let [entered, left] = lists;
            let body = json!({
                "watch": watch.id,
                "idempotency_key": format!("{}-{}", watch.id, part_name(batch, part).trim_end_matches(".json")),
                "batch": batch,
                "part": part,
                "parts": parts,
                "cohort": cohort,
                "evaluated_at": now,
                "entered": entered,
                "left": left,
            });
            body.to_string().into_bytes()
        })
        .collect()
}

fn part_name(batch: u64, part: usize) -> String {
    format!("{batch:012}-{part:06}.json")
}

/// The part files in `out`, by batch then part.
fn parts(out: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(out).with_context(|| format!("cannot read {}", out.display()))? {
        let p = e?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".tmp") {
            // An unfinished write; nothing refers to it.
            std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
            continue;
        }
        if let Some(seq) = name
            .strip_suffix(".json")
            .and_then(|s| s.split('-').next())
            .and_then(|s| s.parse::<u64>().ok())
        {
            v.push((seq, p));
        }
    }
    v.sort();
    Ok(v)
}

fn pending_parts(folder: &Path, committed: u64) -> Result<Vec<PathBuf>> {
    Ok(parts(&folder.join("out"))?
        .into_iter()
        .filter(|(s, _)| *s < committed)
        .map(|(_, p)| p)
        .collect())
}

/// The members of what a watch watches, evaluated now (within its
/// scope).
fn evaluate(engine: &Engine, watch: &Watch) -> Result<RoaringBitmap> {
    let scope = match &watch.scope {
        None => None,
        Some(c) => Some(Scope::new(c.clone(), "scope")?),
    };
    let opts = QueryOptions {
        scope,
        ..Default::default()
    };
    match &watch.cohort {
        Json::String(name) => Ok(engine.reevaluate_cohort(name, &opts)?.members),
        def => Ok(engine.evaluate_definition(def, &opts)?),
    }
}

pub(crate) fn write_json<T: serde::Serialize>(path: &Path, v: &T) -> Result<()> {
    let bytes = serde_json::to_vec(v)?;
    fsutil::write_atomic(path, &bytes)?;
    Ok(())
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("{}: damaged", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use footprint_engine::EngineOptions;

    fn engine(dir: &Path) -> Engine {
        let opts = EngineOptions {
            background: false,
            ..Default::default()
        };
        let e = Engine::open(dir, opts).unwrap();
        e.ingest_text(
            r#"{"user":"u1","event":"login","time":1767225600000}"#,
            footprint_engine::Format::Auto,
        )
        .unwrap();
        e
    }

    fn watch(e: &Engine) -> Watch {
        let v = json!({
            "cohort": {"kind": "users", "did": [{"event": "login"}]},
            "every": {"value": 1, "unit": "hour"}, "initial": "enter",
            // Nothing listens on the discard port: every post fails.
            "webhook": "http://127.0.0.1:9/hook",
        });
        Watch::parse(&v, e, None).unwrap()
    }

    /// A crash after a part file was written but before the state commit
    /// leaves a part of an uncommitted batch: it was never posted and is
    /// removed; a committed part that fails to post stays, and no new
    /// evaluation runs while it waits.
    #[test]
    fn uncommitted_parts_go_and_committed_ones_wait() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path());
        let ws = Watches::open(dir.path()).unwrap();
        let w = watch(&e);
        let id = w.id.clone();
        ws.create(w).unwrap();
        let out = dir.path().join("watches").join(&id).join("out");
        let orphan = out.join(part_name(7, 0));
        std::fs::write(&orphan, b"{}").unwrap();
        let r = ws.run(&e, &id, false, 1).unwrap();
        assert!(
            !orphan.exists(),
            "a part of an uncommitted batch is removed"
        );
        assert!(r.evaluated && r.entered == 1 && r.pending == 1, "{r:?}");
        assert!(
            r.error.as_deref().unwrap_or("").contains("127.0.0.1:9"),
            "{r:?}"
        );
        let parts_now = parts(&out).unwrap();
        assert_eq!(parts_now.len(), 1);
        assert_eq!(parts_now[0].0, 0, "batch 0 is committed and owed");
        // Forced again: the part is retried; nothing new is evaluated.
        let r = ws.run(&e, &id, true, 1).unwrap();
        assert!(!r.evaluated && r.pending == 1, "{r:?}");
        // A reopened set of watches (a restart) still owes the same part.
        drop(ws);
        let ws = Watches::open(dir.path()).unwrap();
        assert_eq!(ws.status(&id).unwrap()["pending"], 1);
        assert!(ws.delete(&id).unwrap());
        assert!(ws.ids().is_empty());
    }

    /// A folder without `watch.json` (a create or delete cut short) is
    /// removed at open.
    #[test]
    fn unfinished_folders_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let half = dir.path().join("watches").join("w0000000000000000");
        std::fs::create_dir_all(half.join("out")).unwrap();
        let ws = Watches::open(dir.path()).unwrap();
        assert!(ws.ids().is_empty() && !half.exists());
    }
}
