//! The store: one data directory, its WAL, memtable, segments, dictionaries
//! and profiles; ingest, flush, compaction, recovery and snapshots.
//!
//! # Parts and locks
//! Each lock has one owner, and the layout gives the order in which they
//! are taken (outermost first):
//!
//! 1. [`catalog`]: the manifest mutex, the maintenance lock. Flush,
//!    compaction and bulk publication hold it across their file I/O; only
//!    they take it.
//! 2. [`write`]: the write gate. Ingests hold it shared from WAL append to
//!    memtable insert; a flush holds it exclusively, without I/O, to swap
//!    the memtable and the WAL file at one instant.
//! 3. The WAL's own mutexes (`synced`, then `active`, then `failed`),
//!    inside [`Wal`].
//! 4. [`tables`]: the state lock over dictionaries, memtable, segment
//!    lists, profiles and aliases. Never held across I/O or across a call
//!    out: readers copy a [`Snapshot`] (profiles and aliases included)
//!    and let go, so no code ever takes it twice on one thread.
//! 5. The poison flag, a leaf.
//! 6. The cohorts mutex, a leaf: serializes the read-modify-write of a
//!    cohort file (a re-evaluation against a delete or a replace). Held
//!    across that file's I/O only; never while a query runs.
//!
//! No lock is held while calling code that may take another, and no method
//! of [`Store`] takes a callback that runs under a lock.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::dict::Dict;
use crate::error::{Error, IoContext, Result};
use crate::event::{Alias, Event, ProfileUpdate};
use crate::fsutil;
use crate::manifest::{Manifest, SegmentEntry};
use crate::memtable::{MemBatch, Memtable};
use crate::profiles::{Aliases, ProfileBase, ProfileTable, Profiles};
use crate::scan::{ScanSpec, ShardSnapshot};
use crate::segment::{Segment, SegmentData, SegmentFormat};
use crate::value::Value;
use crate::wal::{self, Wal, WalRecord};

pub mod bulk;
mod catalog;
mod merge;
mod tables;
mod write;

use catalog::{base_path, prof_path, seg_path, Catalog, MANIFEST};
pub(crate) use merge::sort_batches;
use tables::{State, Tables};
use write::WritePath;

/// Tunables of a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Number of user shards for a new store (an existing store keeps its own).
    pub shards: u32,
    /// Flush the memtable once it holds this many rows.
    pub memtable_rows: usize,
    /// Compact a shard once it has more segments than this.
    pub max_segments_per_shard: usize,
    /// The layout of new segments (existing ones are read in their own).
    pub segment_format: SegmentFormat,
    /// Most distinct event property names a data set may have. A row that
    /// brings a new name beyond it is stored without that property, and
    /// the ingest says so ([`Ingested::dropped`]). Names already known are
    /// always kept; a store holding more (from a larger limit) keeps them.
    pub max_props: usize,
    /// A flush merges the changed profiles into a new profile base file
    /// once this many users changed since the last merge (below, it
    /// writes the changes alone).
    pub profile_merge_at: usize,
}

/// Default of [`StoreOptions::max_props`].
pub const DEFAULT_MAX_PROPS: usize = 2_000;

/// What an ingest stored, beyond "all of it".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Property values left out because their names would have passed
    /// [`StoreOptions::max_props`].
    pub dropped_values: usize,
    /// The first few distinct names left out (at most 10).
    pub dropped: Vec<String>,
}

impl Ingested {
    /// A warning for the user, when something was left out.
    pub fn warning(&self, max_props: usize) -> Option<String> {
        (self.dropped_values > 0).then(|| {
            format!(
                "{} property values were not stored: the data set has reached its limit of {max_props} distinct property names (--max-props); new names left out: {}",
                self.dropped_values,
                self.dropped.join(", ")
            )
        })
    }

    /// Adds up two outcomes.
    pub fn merge(&mut self, other: Ingested) {
        self.dropped_values += other.dropped_values;
        for n in other.dropped {
            if self.dropped.len() < 10 && !self.dropped.contains(&n) {
                self.dropped.push(n);
            }
        }
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            shards: 16,
            memtable_rows: 2_000_000,
            max_segments_per_shard: 8,
            segment_format: SegmentFormat::default(),
            max_props: DEFAULT_MAX_PROPS,
            profile_merge_at: crate::profiles::MERGE_AT,
        }
    }
}

/// What opening the store found and repaired.
#[derive(Debug, Clone, Default)]
pub struct OpenReport {
    /// WAL records replayed into the memtable.
    pub replayed_records: usize,
    /// Events among them.
    pub replayed_events: usize,
    /// WAL files whose unfinished last write was cut: (file, bytes cut).
    pub torn_tails: Vec<(PathBuf, u64)>,
    /// Leftover files of interrupted flushes that were removed.
    pub removed_leftovers: Vec<PathBuf>,
}

/// Bytes on disk per column, for `stats`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StoreStats {
    /// Events stored (segments + memtable).
    pub events: u64,
    /// Events in segments.
    pub events_in_segments: u64,
    /// Events in the memtable (durable in the WAL).
    pub events_in_memtable: u64,
    /// Distinct user ids known.
    pub users: u64,
    /// Distinct event names.
    pub event_names: u64,
    /// Live segments.
    pub segments: u64,
    /// Number of shards.
    pub shards: u32,
    /// Segment bytes by column (`users`, `time`, `event`, `bitmaps`, `prop:<name>`).
    pub column_bytes: BTreeMap<String, u64>,
    /// All segment bytes.
    pub segment_bytes: u64,
    /// Dictionary bytes.
    pub dict_bytes: u64,
    /// WAL bytes.
    pub wal_bytes: u64,
    /// Profile snapshot bytes.
    pub profile_bytes: u64,
    /// Users with a profile.
    pub profiles: u64,
    /// Identity aliases.
    pub aliases: u64,
}

/// A read-only view of the whole store at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// One view per shard.
    pub shards: Vec<ShardSnapshot>,
    /// User profiles as of the snapshot.
    pub profiles: ProfileTable,
    /// Identity links as of the snapshot.
    pub aliases: Arc<Aliases>,
}

impl Snapshot {
    /// The earliest and latest event time in the snapshot, `None` when it
    /// holds no events.
    pub fn time_extent(&self) -> Option<(i64, i64)> {
        let mut ext: Option<(i64, i64)> = None;
        let mut widen = |lo: i64, hi: i64| {
            ext = Some(ext.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
        };
        for shard in &self.shards {
            for seg in &shard.segments {
                let m = seg.meta();
                if m.rows > 0 {
                    widen(m.min_time, m.max_time);
                }
            }
            for run in &shard.mem {
                if let (Some(&lo), Some(&hi)) = (run.times.iter().min(), run.times.iter().max()) {
                    widen(lo, hi);
                }
            }
        }
        ext
    }
}

/// An open data directory. All methods take `&self`; share it in an `Arc`.
pub struct Store {
    dir: PathBuf,
    _lock: File,
    opts: StoreOptions,
    shards: u32,
    catalog: Catalog,
    write: WritePath,
    tables: Tables,
    cohorts: parking_lot::Mutex<()>,
}

impl Store {
    /// Opens (or creates) the store in `dir`, replaying the WAL.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<(Store, OpenReport)> {
        if opts.shards == 0 || opts.shards > 4096 {
            return Err(Error::Invalid(format!(
                "shards must be between 1 and 4096, got {}",
                opts.shards
            )));
        }
        fsutil::ensure_dir(dir)?;
        for sub in ["wal", "segments", "dict", "profiles"] {
            fsutil::ensure_dir(&dir.join(sub))?;
        }
        let lock_path = dir.join("LOCK");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .at(&lock_path)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Locked(dir.to_owned())),
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
        }
        let mut report = OpenReport::default();
        let mpath = dir.join(MANIFEST);
        let manifest = match Manifest::load(&mpath)? {
            Some(m) => m,
            None => {
                let m = Manifest::new(opts.shards);
                m.store(&mpath)?;
                m
            }
        };
        let shards = manifest.shards;
        let ddir = dir.join("dict");
        let users = Dict::open(&ddir.join("users.dict"), manifest.dicts.users)?;
        let events = Dict::open(&ddir.join("events.dict"), manifest.dicts.events)?;
        let props = Dict::open(&ddir.join("props.dict"), manifest.dicts.props)?;

        let mut segments: Vec<Vec<(u64, Arc<Segment>)>> = vec![Vec::new(); shards as usize];
        for e in &manifest.segments {
            let path = seg_path(dir, e.id);
            let seg = Segment::open(&path)?;
            let m = seg.meta();
            if m.shard != e.shard || m.rows != e.rows || e.shard >= shards {
                return Err(Error::corrupt(
                    &path,
                    format!(
                        "segment says shard {} with {} rows; the manifest says shard {} with {}",
                        m.shard, m.rows, e.shard, e.rows
                    ),
                ));
            }
            segments[e.shard as usize].push((e.id, Arc::new(seg)));
        }
        // Files no manifest references are leftovers of an interrupted flush
        // or compaction: nothing can point at them, so they go.
        let live: std::collections::HashSet<u64> = manifest.segments.iter().map(|e| e.id).collect();
        for (sub, ext) in [("segments", "seg"), ("profiles", "prof")] {
            let sdir = dir.join(sub);
            for entry in std::fs::read_dir(&sdir).at(&sdir)? {
                let p = entry.at(&sdir)?.path();
                let keep = match (
                    p.extension().and_then(|e| e.to_str()),
                    p.file_stem().and_then(|s| s.to_str()),
                ) {
                    (Some(e), Some(stem)) if e == ext => match stem.parse::<u64>() {
                        Ok(id) if sub == "segments" => live.contains(&id),
                        Ok(id) => manifest.profiles == Some(id),
                        Err(_) => true,
                    },
                    (Some("pcol"), Some(stem)) if sub == "profiles" => stem
                        .parse::<u64>()
                        .map_or(true, |id| manifest.profile_base == Some(id)),
                    (Some("tmp"), _) => false,
                    _ => true,
                };
                if !keep {
                    std::fs::remove_file(&p).at(&p)?;
                    report.removed_leftovers.push(p);
                }
            }
        }
        for sub in ["", "cohorts"] {
            let d = dir.join(sub);
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for entry in entries {
                let p = entry.at(&d)?.path();
                if p.is_file() && p.extension().is_some_and(|e| e == "tmp") {
                    std::fs::remove_file(&p).at(&p)?;
                    report.removed_leftovers.push(p);
                }
            }
        }
        let mut users = users;
        let base = match manifest.profile_base {
            Some(id) => Some(Arc::new(ProfileBase::open(&base_path(dir, id))?)),
            None => None,
        };
        let (profiles, aliases) = match manifest.profiles {
            Some(id) => {
                let n = users.len();
                crate::profiles::load_snapshot(&prof_path(dir, id), base, n, |name| {
                    users.intern(name)
                })?
            }
            None => (ProfileTable::with_base(base), Aliases::default()),
        };

        let mut state = State {
            users,
            events,
            props,
            mem: Memtable::new(shards as usize),
            frozen: None,
            segments,
            profiles,
            aliases: Arc::new(aliases),
            profiles_dirty: false,
        };

        // Replay the WAL files the manifest does not cover.
        let wdir = dir.join("wal");
        let files = wal::list_wal_files(&wdir)?;
        let mut last = manifest.wal_start.saturating_sub(1);
        for &n in &files {
            let path = wal::wal_path(&wdir, n);
            if n < manifest.wal_start {
                std::fs::remove_file(&path).at(&path)?;
                continue;
            }
            last = last.max(n);
            let r = wal::replay_file(&path)?;
            if let Some(cut) = r.torn_tail {
                tracing::warn!(
                    "{}: cut {cut} bytes of an unfinished write at the tail (never acknowledged)",
                    path.display()
                );
                report.torn_tails.push((path.clone(), cut));
            }
            if r.records.is_empty() {
                // Nothing to replay (e.g. a log cut before its first
                // whole frame): drop it rather than let them pile up.
                std::fs::remove_file(&path).at(&path)?;
                continue;
            }
            if r.torn_tail.is_some() {
                let f = File::options().write(true).open(&path).at(&path)?;
                f.set_len(r.valid_len).at(&path)?;
                f.sync_all().at(&path)?;
            }
            for rec in r.records {
                report.replayed_records += 1;
                if let WalRecord::Events(evs) = &rec {
                    report.replayed_events += evs.len();
                }
                tables::apply(&mut state, shards, rec);
            }
        }
        // The next WAL file is created by the first write, so opening a
        // store to read it (on a full disk, say) writes nothing.
        let wal = Wal::new(&wdir, last + 1);
        let store = Store {
            dir: dir.to_owned(),
            _lock: lock,
            shards,
            catalog: Catalog::new(dir, manifest, opts.segment_format),
            opts,
            write: WritePath::new(wal),
            tables: Tables::new(state, shards),
            cohorts: parking_lot::Mutex::new(()),
        };
        Ok((store, report))
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of shards.
    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// The options this store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.opts
    }

    /// Why the store refuses writes, after an I/O error on its write path
    /// (it stays so until reopened); `None` when it accepts them.
    pub fn poisoned(&self) -> Option<String> {
        self.write.poison_reason()
    }

    /// Whether the store's locks can be taken within `timeout`: `false`
    /// means writes or reads are stuck behind one (for health checks).
    pub fn responsive(&self, timeout: Duration) -> bool {
        self.write.responsive(timeout) && self.tables.responsive(timeout)
    }

    /// Ingests already-validated events: durable and visible when this
    /// returns. Property names beyond [`StoreOptions::max_props`] are left
    /// out (before logging), as the result says.
    pub fn ingest(&self, mut events: Vec<Event>) -> Result<Ingested> {
        if events.is_empty() {
            return Ok(Ingested::default());
        }
        let outcome = self.tables.admit_props(&mut events, self.opts.max_props);
        self.write.write(&self.tables, WalRecord::Events(events))?;
        Ok(outcome)
    }

    /// Applies profile updates durably.
    pub fn upsert_profiles(&self, updates: Vec<ProfileUpdate>) -> Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        self.write.write(&self.tables, WalRecord::Profiles(updates))
    }

    /// Records identity links durably.
    pub fn alias(&self, aliases: Vec<Alias>) -> Result<()> {
        if aliases.is_empty() {
            return Ok(());
        }
        self.write.write(&self.tables, WalRecord::Aliases(aliases))
    }

    /// Rows waiting in the memtable.
    pub fn memtable_rows(&self) -> usize {
        self.tables.read(|st| st.mem.rows)
    }

    /// True once the memtable is over its flush threshold.
    pub fn needs_flush(&self) -> bool {
        self.memtable_rows() >= self.opts.memtable_rows
    }

    /// Writes the memtable (and changed profiles) to segments, publishes them
    /// in a new manifest, and drops the WAL files they cover.
    pub fn flush(&self) -> Result<()> {
        self.flush_merging(self.opts.profile_merge_at)
    }

    /// [`flush`](Self::flush), and merges every profile change into a new
    /// profile base file (after a bulk profile import, and by `compact`).
    pub fn merge_profiles(&self) -> Result<()> {
        self.flush_merging(1)
    }

    fn flush_merging(&self, merge_at: usize) -> Result<()> {
        self.write.check()?;
        let r = self
            .catalog
            .flush(&self.write, &self.tables, merge_at, None);
        self.write.poisoned(r)
    }

    /// Upserts many profile rows at once (a CRM import), all or nothing:
    /// with everything logged before it, they are written straight into a
    /// new profile base file, published by one manifest update (no WAL).
    /// Durable when this returns. Profile writes to the same users made
    /// while it runs keep their own whole profile (the import's rows for
    /// those users are lost): run imports apart from such writes, as the
    /// CLI does. Returns the number of users the rows name.
    pub fn import_profiles(&self, updates: Vec<ProfileUpdate>) -> Result<usize> {
        self.write.check()?;
        if updates.is_empty() {
            return Ok(0);
        }
        let mut keyed: Vec<(u32, ProfileUpdate)> = self.tables.write(|st| {
            updates
                .into_iter()
                .map(|u| (st.users.intern(&u.user), u))
                .collect()
        });
        keyed.sort_by_key(|(uid, _)| *uid); // stable: rows keep their order
        let mut import: Vec<(u32, Vec<ProfileUpdate>)> = Vec::new();
        for (uid, u) in keyed {
            match import.last_mut() {
                Some((last, ups)) if *last == uid => ups.push(u),
                _ => import.push((uid, vec![u])),
            }
        }
        let users = import.len();
        let r = self
            .catalog
            .flush(&self.write, &self.tables, 0, Some(&import));
        self.write.poisoned(r).map(|()| users)
    }

    /// Merges small segments of shards that have too many. Returns the
    /// number of merges done.
    pub fn compact(&self) -> Result<usize> {
        self.compact_with(self.opts.max_segments_per_shard)
    }

    /// Merges every shard's segments into one (a full compaction).
    pub fn compact_all(&self) -> Result<usize> {
        self.compact_with(1)
    }

    fn compact_with(&self, max: usize) -> Result<usize> {
        self.write.check()?;
        let r = self.catalog.compact(&self.write, &self.tables, max);
        self.write.poisoned(r)
    }

    /// Starts an all-or-nothing bulk load that bypasses the WAL; it writes
    /// a segment set every `flush_rows` rows and publishes them all on commit.
    pub fn bulk_load(&self, flush_rows: usize) -> Result<bulk::BulkLoad<'_>> {
        self.write.check()?;
        Ok(bulk::BulkLoad::new(self, flush_rows))
    }

    /// Interns a bulk load's rows, leaving out property names past
    /// [`StoreOptions::max_props`].
    pub(crate) fn intern_into(&self, events: Vec<Event>, per_shard: &mut [MemBatch]) -> Ingested {
        self.tables
            .intern_into(events, per_shard, self.opts.max_props)
    }

    /// Writes `data` as a new segment file (not yet in any manifest) and
    /// opens it.
    pub(crate) fn write_new_segment(
        &self,
        shard: u32,
        data: &SegmentData,
    ) -> Result<(SegmentEntry, Arc<Segment>)> {
        let r = self.catalog.write_new_segment(shard, data);
        self.write.poisoned(r)
    }

    /// Publishes segments written outside a flush (bulk load) in one
    /// manifest update, after persisting the dictionaries they use.
    pub(crate) fn publish(&self, segs: Vec<(SegmentEntry, Arc<Segment>)>) -> Result<()> {
        self.write.check()?;
        let r = self.catalog.publish(&self.tables, segs);
        self.write.poisoned(r)
    }

    /// A consistent read view of every shard, with profiles and aliases.
    pub fn snapshot(&self) -> Snapshot {
        self.tables.snapshot()
    }

    /// The id of an event name.
    pub fn event_id(&self, name: &str) -> Option<u32> {
        self.tables.read(|st| st.events.get(name))
    }

    /// The id of a property name.
    pub fn prop_id(&self, name: &str) -> Option<u32> {
        self.tables.read(|st| st.props.get(name))
    }

    /// The id of a user.
    pub fn user_id(&self, name: &str) -> Option<u32> {
        self.tables.read(|st| st.users.get(name))
    }

    /// How many user ids are known (ids are `0..user_count`).
    pub fn user_count(&self) -> u32 {
        self.tables.read(|st| st.users.len() as u32)
    }

    /// Saves (replaces) the cohort `name` as a static set of user ids.
    pub fn save_cohort(&self, name: &str, members: &roaring::RoaringBitmap) -> Result<()> {
        let _g = self.cohorts.lock();
        crate::cohorts::save(&self.dir, name, members)
    }

    /// Creates or replaces the cohort `name` (live or static).
    pub fn put_cohort(&self, name: &str, cohort: &crate::cohorts::Cohort) -> Result<()> {
        let _g = self.cohorts.lock();
        crate::cohorts::put(&self.dir, name, cohort)
    }

    /// Cohort `name` as saved (definition, history, members), `None` if
    /// there is none.
    pub fn cohort_record(&self, name: &str) -> Result<Option<crate::cohorts::Cohort>> {
        crate::cohorts::get(&self.dir, name)
    }

    /// Stores a re-evaluation of cohort `name`: its new `members` at `at`,
    /// when the cohort is still the `generation` that was evaluated (not
    /// deleted or replaced meanwhile). Returns the cohort as now saved, or
    /// `None` when the evaluation was dropped.
    pub fn update_cohort(
        &self,
        name: &str,
        generation: u64,
        members: roaring::RoaringBitmap,
        at: i64,
    ) -> Result<Option<crate::cohorts::Cohort>> {
        let _g = self.cohorts.lock();
        let Some(mut c) = crate::cohorts::get(&self.dir, name)? else {
            return Ok(None);
        };
        if c.generation != generation || c.evaluated_at > at {
            return Ok(None);
        }
        c.evaluated(members, at);
        crate::cohorts::put(&self.dir, name, &c)?;
        Ok(Some(c))
    }

    /// Deletes cohort `name` durably; false if there was none.
    pub fn delete_cohort(&self, name: &str) -> Result<bool> {
        let _g = self.cohorts.lock();
        crate::cohorts::delete(&self.dir, name)
    }

    /// The members of cohort `name` as last saved, `None` if there is
    /// none (the query layer re-evaluates a stale live cohort first).
    pub fn cohort(&self, name: &str) -> Result<Option<roaring::RoaringBitmap>> {
        crate::cohorts::load(&self.dir, name)
    }

    /// The saved cohorts' names.
    pub fn cohort_names(&self) -> Result<Vec<String>> {
        crate::cohorts::list(&self.dir)
    }

    /// All event names, by id.
    pub fn event_names(&self) -> Vec<String> {
        self.tables
            .read(|st| st.events.iter().map(str::to_owned).collect())
    }

    /// All property names, by id.
    pub fn prop_names(&self) -> Vec<String> {
        self.tables
            .read(|st| st.props.iter().map(str::to_owned).collect())
    }

    /// Resolves user ids to their names.
    pub fn user_names(&self, ids: &[u32]) -> Vec<String> {
        self.tables
            .read(|st| ids.iter().map(|&u| st.users.name(u).to_owned()).collect())
    }

    /// All profiles and aliases by user name (a copy, for export and
    /// tests; queries read them from a [`Snapshot`]).
    pub fn profiles(&self) -> Profiles {
        let snap = self.snapshot();
        self.tables.read(|st| {
            let mut p = Profiles::default();
            for (uid, props) in snap.profiles.iter() {
                p.users.insert(st.users.name(uid).to_owned(), props.clone());
            }
            for (a, k) in snap.aliases.iter() {
                p.aliases
                    .insert(st.users.name(a).to_owned(), st.users.name(k).to_owned());
            }
            p
        })
    }

    /// Counts and sizes.
    pub fn stats(&self) -> Result<StoreStats> {
        let snap = self.snapshot();
        let (mut s, props) = self.tables.read(|st| {
            let s = StoreStats {
                shards: self.shards,
                users: st.users.len() as u64,
                event_names: st.events.len() as u64,
                profiles: snap.profiles.len() as u64,
                aliases: snap.aliases.len() as u64,
                events_in_memtable: (st.mem.rows + st.frozen.as_ref().map_or(0, |f| f.rows)) as u64,
                ..Default::default()
            };
            (s, st.props.clone())
        });
        for shard in &snap.shards {
            for seg in &shard.segments {
                s.segments += 1;
                s.events_in_segments += seg.meta().rows;
                for (name, bytes) in seg.section_sizes() {
                    // Format 2 streams add up by part across events:
                    // `time`, `tie`, and the (user, rows) pairs.
                    let stream_part = name
                        .strip_prefix("ev.")
                        .and_then(|r| r.split_once('.'))
                        .map(|(_, part)| part);
                    let key = match (
                        name.strip_prefix("prop.")
                            .and_then(|p| p.parse::<u32>().ok()),
                        stream_part,
                    ) {
                        (Some(pid), _) => format!("prop:{}", props.name(pid)),
                        (None, Some("users" | "counts")) => "event pairs".to_owned(),
                        (None, Some(part)) => part.to_owned(),
                        (None, None) => name,
                    };
                    *s.column_bytes.entry(key).or_default() += bytes;
                }
            }
        }
        s.events = s.events_in_segments + s.events_in_memtable;
        let size_of = |dir: PathBuf| -> Result<u64> {
            let mut total = 0;
            for e in std::fs::read_dir(&dir).at(&dir)? {
                let e = e.at(&dir)?;
                total += e.metadata().at(&e.path())?.len();
            }
            Ok(total)
        };
        s.segment_bytes = size_of(self.dir.join("segments"))?;
        s.dict_bytes = size_of(self.dir.join("dict"))?;
        s.wal_bytes = size_of(self.dir.join("wal"))?;
        s.profile_bytes = size_of(self.dir.join("profiles"))?;
        Ok(s)
    }

    /// How many events of each name are stored (segments and memtable).
    pub fn event_counts(&self) -> Result<BTreeMap<String, u64>> {
        let snap = self.snapshot();
        let mut counts: Vec<u64> = Vec::new();
        let mut bump = |e: u32, c: u64| {
            let e = e as usize;
            if counts.len() <= e {
                counts.resize(e + 1, 0);
            }
            counts[e] += c;
        };
        for shard in &snap.shards {
            for seg in &shard.segments {
                for (e, c) in seg.event_row_counts()? {
                    bump(e, c);
                }
            }
            for run in &shard.mem {
                for &e in &run.events {
                    bump(e, 1);
                }
            }
        }
        let names = self.event_names();
        Ok(counts
            .into_iter()
            .enumerate()
            .filter(|(_, c)| *c > 0)
            .map(|(i, c)| (names.get(i).cloned().unwrap_or_default(), c))
            .collect())
    }

    /// For each property name, the value kinds seen (`"string"`, `"int"`,
    /// `"float"`, `"bool"`) with how many events carry each, over segments
    /// and the memtable.
    pub fn prop_types(&self) -> Result<BTreeMap<String, BTreeMap<&'static str, u64>>> {
        self.prop_types_within(None)
    }

    /// [`Store::prop_types`], giving up with [`Error::TimedOut`] once
    /// `deadline` has passed (checked per segment column, so a data set with
    /// a great many property names cannot hold a caller for long).
    pub fn prop_types_within(
        &self,
        deadline: Option<std::time::Instant>,
    ) -> Result<BTreeMap<String, BTreeMap<&'static str, u64>>> {
        let started = std::time::Instant::now();
        let check = || match deadline {
            Some(d) if std::time::Instant::now() >= d => Err(Error::TimedOut(format!(
                "{:.1} s reading property types",
                started.elapsed().as_secs_f64()
            ))),
            _ => Ok(()),
        };
        fn kind(v: &Value) -> &'static str {
            match v {
                Value::Str(_) => "string",
                Value::Int(_) => "int",
                Value::Float(_) => "float",
                Value::Bool(_) => "bool",
            }
        }
        let snap = self.snapshot();
        let names = self.prop_names();
        let mut out: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
        for shard in &snap.shards {
            for seg in &shard.segments {
                for pid in seg.prop_ids() {
                    check()?;
                    let Some(mut col) = seg.prop_reader(pid)? else {
                        continue;
                    };
                    // Entries only: a rare property costs its rows.
                    let mut counts = vec![0u64; col.values.len() + 1];
                    for k in 0..col.chunks() {
                        col.for_each_entry(k, |_, i| counts[i] += 1)?;
                    }
                    let name = names.get(pid as usize).cloned().unwrap_or_default();
                    let entry = out.entry(name).or_default();
                    for (v, &c) in col.values.iter().zip(&counts[1..]) {
                        *entry.entry(kind(v)).or_default() += c;
                    }
                }
            }
            for run in &shard.mem {
                check()?;
                for props in run.batches.iter().flat_map(|b| b.props.iter()) {
                    for (pid, v) in props {
                        let name = names.get(*pid as usize).cloned().unwrap_or_default();
                        *out.entry(name).or_default().entry(kind(v)).or_default() += 1;
                    }
                }
            }
        }
        Ok(out)
    }

    /// Scans every event of the store (all properties) into owned events, by
    /// shard and user. Meant for export and tests, not for queries.
    pub fn for_each_event(&self, mut f: impl FnMut(Event)) -> Result<()> {
        for shard in 0..self.shards {
            self.for_each_event_in_shard(shard, &mut f)?;
        }
        Ok(())
    }

    /// The events of users `ids` (a person's ids) before `before` (all
    /// time: `None`), newest first, at most `limit`, with all their
    /// properties; and how many such events there are in all. Reads only
    /// the shards and rows of those users.
    pub fn user_events(
        &self,
        ids: &[u32],
        before: Option<i64>,
        limit: usize,
    ) -> Result<(Vec<Event>, u64)> {
        let snap = self.snapshot();
        let (users, events, prop_names): (Dict, Dict, Vec<String>) = self.tables.read(|st| {
            (
                st.users.clone(),
                st.events.clone(),
                st.props.iter().map(str::to_owned).collect(),
            )
        });
        let mut shards: BTreeMap<u32, roaring::RoaringBitmap> = BTreeMap::new();
        for &id in ids {
            shards.entry(id % self.shards).or_default().insert(id);
        }
        // (time, arrival within the user, user) of every row, then the
        // newest `limit` decoded with their properties.
        let mut rows: Vec<Event> = Vec::new();
        let mut total = 0u64;
        for (shard, members) in shards {
            let Some(shard) = snap.shards.get(shard as usize) else {
                continue;
            };
            let spec = ScanSpec {
                range: before.map(|b| (i64::MIN, b)),
                props: (0..prop_names.len() as u32).collect(),
                users: Some(members),
                skip: None,
                events: None,
                skip_times: false,
                runs: false,
                origins: false,
            };
            shard.scan(&spec, |u| {
                total += u.len() as u64;
                let user = users.name(u.uid);
                // A user's rows come in (time, arrival) order: keep the last.
                for i in u.len().saturating_sub(limit)..u.len() {
                    let props = prop_names
                        .iter()
                        .enumerate()
                        .filter_map(|(k, name)| Some((name.clone(), u.prop(k, i)?.clone())))
                        .collect();
                    rows.push(Event {
                        user: user.to_owned(),
                        event: events.name(u.events[i]).to_owned(),
                        time: u.times[i],
                        props,
                    });
                }
            })?;
        }
        // Newest first; one user's equal times keep their arrival order
        // reversed (the stable sort keeps scan order, then reversed).
        rows.reverse();
        rows.sort_by_key(|e| std::cmp::Reverse(e.time));
        rows.truncate(limit);
        Ok((rows, total))
    }

    /// [`Store::for_each_event`] for one shard.
    pub fn for_each_event_in_shard(&self, shard: u32, mut f: impl FnMut(Event)) -> Result<()> {
        let snap = self.snapshot();
        let (users, events, prop_names): (Dict, Dict, Vec<String>) = self.tables.read(|st| {
            (
                st.users.clone(),
                st.events.clone(),
                st.props.iter().map(str::to_owned).collect(),
            )
        });
        let spec = ScanSpec {
            range: None,
            props: (0..prop_names.len() as u32).collect(),
            users: None,
            skip: None,
            events: None,
            skip_times: false,
            runs: false,
            origins: false,
        };
        if let Some(shard) = snap.shards.get(shard as usize) {
            shard.scan(&spec, |u| {
                let user = users.name(u.uid);
                for i in 0..u.len() {
                    let mut props = Vec::new();
                    for (k, name) in prop_names.iter().enumerate() {
                        if let Some(v) = u.prop(k, i) {
                            props.push((name.to_string(), v.clone()));
                        }
                    }
                    f(Event {
                        user: user.to_owned(),
                        event: events.name(u.events[i]).to_owned(),
                        time: u.times[i],
                        props,
                    });
                }
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responsive_is_false_while_the_state_lock_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
        assert!(store.responsive(Duration::from_millis(50)));
        store.tables.write(|_| {
            std::thread::scope(|s| {
                let probe = s.spawn(|| store.responsive(Duration::from_millis(100)));
                assert!(!probe.join().unwrap());
            });
        });
        assert!(store.responsive(Duration::from_millis(50)));
    }

    #[test]
    fn a_store_opens_and_answers_on_a_full_disk() {
        use crate::failpoint::{arm, Fault, Op};
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
            store
                .ingest(vec![Event {
                    user: "u".into(),
                    event: "e".into(),
                    time: 1,
                    props: vec![],
                }])
                .unwrap();
            store.flush().unwrap();
            store
                .alias(vec![Alias {
                    anonymous: "a".into(),
                    known: "u".into(),
                }])
                .unwrap();
        }
        let _guards: Vec<_> = [Op::Create, Op::Write, Op::Fsync, Op::Rename]
            .into_iter()
            .map(|op| {
                arm(Fault {
                    under: dir.path().to_owned(),
                    op,
                    path_contains: String::new(),
                    errno: libc::ENOSPC,
                    skip: 0,
                    times: u32::MAX,
                    stall: Default::default(),
                })
            })
            .collect();
        let (store, report) = Store::open(dir.path(), StoreOptions::default()).unwrap();
        assert_eq!(report.replayed_records, 1);
        let s = store.stats().unwrap();
        assert_eq!((s.events, s.aliases), (1, 1));
        assert!(store
            .ingest(vec![Event {
                user: "v".into(),
                event: "e".into(),
                time: 2,
                props: vec![],
            }])
            .is_err());
    }

    fn ev(user: &str, props: &[&str]) -> Event {
        Event {
            user: user.into(),
            event: "e".into(),
            time: 1,
            props: props
                .iter()
                .map(|p| (p.to_string(), Value::Int(1)))
                .collect(),
        }
    }

    #[test]
    fn property_names_past_the_limit_are_left_out_and_said_so() {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            max_props: 3,
            ..Default::default()
        };
        let (store, _) = Store::open(dir.path(), opts.clone()).unwrap();
        let r = store.ingest(vec![ev("u1", &["a", "b"])]).unwrap();
        assert_eq!(r, Ingested::default());
        let r = store
            .ingest(vec![ev("u1", &["a", "c", "d"]), ev("u2", &["d", "b", "e"])])
            .unwrap();
        assert_eq!(r.dropped_values, 3);
        assert_eq!(r.dropped, vec!["d".to_owned(), "e".to_owned()]);
        assert!(r
            .warning(3)
            .unwrap()
            .contains("limit of 3 distinct property names"));
        assert_eq!(store.prop_names(), vec!["a", "b", "c"]);
        // The rows themselves are stored, with their known properties.
        let mut rows = Vec::new();
        store.for_each_event(|e| rows.push(e.props.len())).unwrap();
        rows.sort();
        assert_eq!(rows, vec![1, 2, 2]);
        // A bulk load keeps to the same limit.
        let mut load = store.bulk_load(10).unwrap();
        let r = load.add(vec![ev("u3", &["a", "zz"])]).unwrap();
        assert_eq!(r.dropped, vec!["zz".to_owned()]);
        load.commit().unwrap();
        assert_eq!(store.prop_names().len(), 3);
        drop(store);
        // The names left out were never logged: a reopen with a larger
        // limit does not bring them back.
        let (store, _) = Store::open(
            dir.path(),
            StoreOptions {
                max_props: 100,
                ..opts
            },
        )
        .unwrap();
        assert_eq!(store.prop_names().len(), 3);
        assert_eq!(
            store.ingest(vec![ev("u4", &["f"])]).unwrap(),
            Ingested::default()
        );
    }

    #[test]
    fn property_types_keep_to_a_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
        store.ingest(vec![ev("u1", &["a", "b"])]).unwrap();
        store.flush().unwrap();
        assert_eq!(store.prop_types().unwrap().len(), 2);
        let past = std::time::Instant::now();
        let e = store.prop_types_within(Some(past)).unwrap_err();
        assert!(matches!(e, Error::TimedOut(_)), "{e}");
    }
}
