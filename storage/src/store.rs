//! The store: one data directory, its WAL, memtable, segments, dictionaries
//! and profiles; ingest, flush, compaction, recovery and snapshots.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::dict::Dict;
use crate::error::{Error, IoContext, Result};
use crate::event::{Alias, Event, ProfileUpdate};
use crate::fsutil;
use crate::manifest::{DictCounts, Manifest, SegmentEntry};
use crate::memtable::{push_run, MemBatch, MemRun, Memtable};
use crate::profiles::Profiles;
use crate::scan::{ScanSpec, ShardSnapshot};
use crate::segment::{write_segment, Segment, SegmentData, SegmentFormat};
use crate::value::Value;
use crate::wal::{self, Wal, WalRecord};

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
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            shards: 16,
            memtable_rows: 2_000_000,
            max_segments_per_shard: 8,
            segment_format: SegmentFormat::default(),
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

struct State {
    users: Dict,
    events: Dict,
    props: Dict,
    mem: Memtable,
    frozen: Option<Arc<Memtable>>,
    segments: Vec<Vec<(u64, Arc<Segment>)>>,
    manifest: Manifest,
    profiles: Profiles,
    profiles_dirty: bool,
}

/// A read-only view of the whole store at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// One view per shard.
    pub shards: Vec<ShardSnapshot>,
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
    /// Ingests hold it shared from WAL append to memtable insert; flush holds
    /// it exclusively to swap the WAL file and the memtable together.
    gate: RwLock<()>,
    wal: Wal,
    state: RwLock<State>,
    maintenance: Mutex<()>,
    poison: Mutex<Option<String>>,
}

const MANIFEST: &str = "MANIFEST";

fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join("segments").join(format!("{id:08}.seg"))
}

fn prof_path(dir: &Path, id: u64) -> PathBuf {
    dir.join("profiles").join(format!("{id:08}.prof"))
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
                    (Some("tmp"), _) => false,
                    _ => true,
                };
                if !keep {
                    std::fs::remove_file(&p).at(&p)?;
                    report.removed_leftovers.push(p);
                }
            }
        }
        let profiles = match manifest.profiles {
            Some(id) => Profiles::load(&prof_path(dir, id))?,
            None => Profiles::default(),
        };

        let mut state = State {
            users,
            events,
            props,
            mem: Memtable::new(shards as usize),
            frozen: None,
            segments,
            manifest,
            profiles,
            profiles_dirty: false,
        };

        // Replay the WAL files the manifest does not cover.
        let wdir = dir.join("wal");
        let files = wal::list_wal_files(&wdir)?;
        let mut last = state.manifest.wal_start.saturating_sub(1);
        for &n in &files {
            let path = wal::wal_path(&wdir, n);
            if n < state.manifest.wal_start {
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
                let f = File::options().write(true).open(&path).at(&path)?;
                f.set_len(r.valid_len.max(wal::WAL_MAGIC.len() as u64))
                    .at(&path)?;
                if r.valid_len < wal::WAL_MAGIC.len() as u64 {
                    // Rewrite the header of a file cut before it was complete.
                    std::fs::write(&path, wal::WAL_MAGIC).at(&path)?;
                }
                f.sync_all().at(&path)?;
                report.torn_tails.push((path.clone(), cut));
            }
            if r.records.is_empty() {
                // Nothing to replay (e.g. the fresh log of an open that
                // wrote nothing): drop it rather than let them pile up.
                std::fs::remove_file(&path).at(&path)?;
                continue;
            }
            for rec in r.records {
                report.replayed_records += 1;
                if let WalRecord::Events(evs) = &rec {
                    report.replayed_events += evs.len();
                }
                apply(&mut state, shards, &rec);
            }
        }
        let wal = Wal::create(&wdir, last + 1)?;
        let store = Store {
            dir: dir.to_owned(),
            _lock: lock,
            opts,
            shards,
            gate: RwLock::new(()),
            wal,
            state: RwLock::new(state),
            maintenance: Mutex::new(()),
            poison: Mutex::new(None),
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

    fn check_poison(&self) -> Result<()> {
        match &*self.poison.lock() {
            Some(why) => Err(Error::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    fn poisoned<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            let mut p = self.poison.lock();
            if p.is_none() {
                *p = Some(e.to_string());
            }
        }
        r
    }

    /// Durably logs `rec`, then applies it. Returns once it is on stable
    /// storage and visible to reads.
    fn write(&self, rec: &WalRecord) -> Result<()> {
        self.check_poison()?;
        let payload = rec.encode();
        let _g = self.gate.read();
        let ticket = self.poisoned(self.wal.append(&payload))?;
        self.poisoned(self.wal.sync(ticket))?;
        let mut st = self.state.write();
        apply(&mut st, self.shards, rec);
        Ok(())
    }

    /// Ingests already-validated events: durable and visible when this returns.
    pub fn ingest(&self, events: Vec<Event>) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.write(&WalRecord::Events(events))
    }

    /// Applies profile updates durably.
    pub fn upsert_profiles(&self, updates: Vec<ProfileUpdate>) -> Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        self.write(&WalRecord::Profiles(updates))
    }

    /// Records identity links durably.
    pub fn alias(&self, aliases: Vec<Alias>) -> Result<()> {
        if aliases.is_empty() {
            return Ok(());
        }
        self.write(&WalRecord::Aliases(aliases))
    }

    /// Rows waiting in the memtable.
    pub fn memtable_rows(&self) -> usize {
        self.state.read().mem.rows
    }

    /// True once the memtable is over its flush threshold.
    pub fn needs_flush(&self) -> bool {
        self.memtable_rows() >= self.opts.memtable_rows
    }

    /// Writes the memtable (and changed profiles) to segments, publishes them
    /// in a new manifest, and drops the WAL files they cover.
    pub fn flush(&self) -> Result<()> {
        self.check_poison()?;
        let _m = self.maintenance.lock();
        let r = self.flush_inner();
        self.poisoned(r)
    }

    fn flush_inner(&self) -> Result<()> {
        let (frozen, wal_start, profiles) = {
            let _g = self.gate.write();
            let mut st = self.state.write();
            if st.mem.rows == 0 && !st.profiles_dirty {
                return Ok(());
            }
            let wal_start = self.wal.rotate()?;
            let frozen = Arc::new(std::mem::replace(
                &mut st.mem,
                Memtable::new(self.shards as usize),
            ));
            st.frozen = Some(frozen.clone());
            let profiles = st.profiles_dirty.then(|| st.profiles.clone());
            st.profiles_dirty = false;
            (frozen, wal_start, profiles)
        };
        let mut new_segs = Vec::new();
        for (shard, runs) in frozen.shards.iter().enumerate() {
            if runs.iter().all(|r| r.is_empty()) {
                continue;
            }
            let data = runs_to_data(runs);
            new_segs.push(self.write_new_segment(shard as u32, &data)?);
        }
        fsutil::sync_dir(&self.dir.join("segments"))?;
        let profile_id = match &profiles {
            Some(p) => {
                let id = self.reserve_id();
                p.save(&prof_path(&self.dir, id))?;
                Some(id)
            }
            None => None,
        };
        let old_profile;
        {
            let mut st = self.state.write();
            let counts = persist_dicts(&mut st, &self.dir.join("dict"))?;
            let mut m = st.manifest.clone();
            m.wal_start = wal_start;
            m.dicts = counts;
            m.segments.extend(new_segs.iter().map(|(e, _)| e.clone()));
            old_profile = m.profiles;
            if profile_id.is_some() {
                m.profiles = profile_id;
            }
            m.store(&self.dir.join(MANIFEST))?;
            st.manifest = m;
            for (e, seg) in new_segs {
                st.segments[e.shard as usize].push((e.id, seg));
            }
            st.frozen = None;
        }
        // Only now is nothing referencing these.
        let wdir = self.dir.join("wal");
        for n in wal::list_wal_files(&wdir)? {
            if n < wal_start {
                let p = wal::wal_path(&wdir, n);
                std::fs::remove_file(&p).at(&p)?;
            }
        }
        if let (Some(old), Some(_)) = (old_profile, profile_id) {
            let p = prof_path(&self.dir, old);
            std::fs::remove_file(&p).at(&p)?;
        }
        Ok(())
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
        self.check_poison()?;
        let _m = self.maintenance.lock();
        let mut merges = 0;
        for shard in 0..self.shards as usize {
            let r = self.compact_shard(shard, max.max(1));
            if self.poisoned(r)? {
                merges += 1;
            }
        }
        Ok(merges)
    }

    fn compact_shard(&self, shard: usize, max: usize) -> Result<bool> {
        let mut segs: Vec<(u64, Arc<Segment>)> = self.state.read().segments[shard].clone();
        if segs.len() <= max {
            return Ok(false);
        }
        // Size-tiered: merge the smallest segments, leaving about max/2.
        segs.sort_by_key(|(id, s)| (s.meta().rows, *id));
        let take = if max == 1 {
            segs.len()
        } else {
            segs.len() - max / 2
        };
        let mut chosen: Vec<(u64, Arc<Segment>)> = segs.into_iter().take(take).collect();
        chosen.sort_by_key(|(id, _)| *id);
        let data = merge_segments(&chosen)?;
        let id = self.reserve_id();
        let path = seg_path(&self.dir, id);
        let bytes = write_segment(&path, shard as u32, &data, self.opts.segment_format)?;
        fsutil::sync_dir(&self.dir.join("segments"))?;
        let seg = Arc::new(Segment::open(&path)?);
        let m = seg.meta();
        let gone: Vec<u64> = chosen.iter().map(|(id, _)| *id).collect();
        {
            let mut st = self.state.write();
            let mut man = st.manifest.clone();
            man.segments.retain(|e| !gone.contains(&e.id));
            man.segments.push(SegmentEntry {
                id,
                shard: shard as u32,
                rows: m.rows,
                min_time: m.min_time,
                max_time: m.max_time,
                bytes,
            });
            man.store(&self.dir.join(MANIFEST))?;
            st.manifest = man;
            st.segments[shard].retain(|(i, _)| !gone.contains(i));
            st.segments[shard].push((id, seg));
            st.segments[shard].sort_by_key(|(i, _)| *i);
        }
        for g in gone {
            let p = seg_path(&self.dir, g);
            std::fs::remove_file(&p).at(&p)?;
        }
        Ok(true)
    }

    /// Starts an all-or-nothing bulk load that bypasses the WAL; it writes
    /// a segment set every `flush_rows` rows and publishes them all on commit.
    pub fn bulk_load(&self, flush_rows: usize) -> Result<crate::bulk::BulkLoad<'_>> {
        self.check_poison()?;
        Ok(crate::bulk::BulkLoad::new(self, flush_rows))
    }

    pub(crate) fn intern_into(&self, events: Vec<Event>, per_shard: &mut [MemBatch]) {
        let mut st = self.state.write();
        intern_events(&mut st, self.shards, events.into_iter(), per_shard);
    }

    pub(crate) fn reserve_id(&self) -> u64 {
        let mut st = self.state.write();
        let id = st.manifest.next_id;
        st.manifest.next_id += 1;
        id
    }

    /// Writes `data` as a new segment file (not yet in any manifest) and
    /// opens it.
    pub(crate) fn write_new_segment(
        &self,
        shard: u32,
        data: &SegmentData,
    ) -> Result<(SegmentEntry, Arc<Segment>)> {
        let id = self.reserve_id();
        let path = seg_path(&self.dir, id);
        let bytes = write_segment(&path, shard, data, self.opts.segment_format)?;
        let seg = Segment::open(&path)?;
        let m = seg.meta();
        let entry = SegmentEntry {
            id,
            shard,
            rows: m.rows,
            min_time: m.min_time,
            max_time: m.max_time,
            bytes,
        };
        Ok((entry, Arc::new(seg)))
    }

    /// Publishes segments written outside a flush (bulk load) in one
    /// manifest update, after persisting the dictionaries they use.
    pub(crate) fn publish(&self, segs: Vec<(SegmentEntry, Arc<Segment>)>) -> Result<()> {
        self.check_poison()?;
        let _m = self.maintenance.lock();
        let r = (|| {
            fsutil::sync_dir(&self.dir.join("segments"))?;
            let mut st = self.state.write();
            let counts = persist_dicts(&mut st, &self.dir.join("dict"))?;
            let mut m = st.manifest.clone();
            m.dicts = counts;
            m.segments.extend(segs.iter().map(|(e, _)| e.clone()));
            m.store(&self.dir.join(MANIFEST))?;
            st.manifest = m;
            for (e, seg) in segs {
                st.segments[e.shard as usize].push((e.id, seg));
            }
            for s in st.segments.iter_mut() {
                s.sort_by_key(|(i, _)| *i);
            }
            Ok(())
        })();
        self.poisoned(r)
    }

    /// A consistent read view of every shard.
    pub fn snapshot(&self) -> Snapshot {
        let st = self.state.read();
        let shards = (0..self.shards as usize)
            .map(|s| {
                let mut mem = Vec::new();
                if let Some(f) = &st.frozen {
                    mem.extend(f.shards[s].iter().cloned());
                }
                mem.extend(st.mem.shards[s].iter().cloned());
                ShardSnapshot {
                    segments: st.segments[s].iter().map(|(_, seg)| seg.clone()).collect(),
                    mem,
                }
            })
            .collect();
        Snapshot { shards }
    }

    /// The id of an event name.
    pub fn event_id(&self, name: &str) -> Option<u32> {
        self.state.read().events.get(name)
    }

    /// The id of a property name.
    pub fn prop_id(&self, name: &str) -> Option<u32> {
        self.state.read().props.get(name)
    }

    /// The id of a user.
    pub fn user_id(&self, name: &str) -> Option<u32> {
        self.state.read().users.get(name)
    }

    /// Saves (replaces) the cohort `name`: a set of user ids.
    pub fn save_cohort(&self, name: &str, members: &roaring::RoaringBitmap) -> Result<()> {
        crate::cohorts::save(&self.dir, name, members)
    }

    /// The members of cohort `name`, `None` if there is none.
    pub fn cohort(&self, name: &str) -> Result<Option<roaring::RoaringBitmap>> {
        crate::cohorts::load(&self.dir, name)
    }

    /// The saved cohorts' names.
    pub fn cohort_names(&self) -> Result<Vec<String>> {
        crate::cohorts::list(&self.dir)
    }

    /// All event names, by id.
    pub fn event_names(&self) -> Vec<String> {
        self.state.read().events.iter().map(str::to_owned).collect()
    }

    /// All property names, by id.
    pub fn prop_names(&self) -> Vec<String> {
        self.state.read().props.iter().map(str::to_owned).collect()
    }

    /// Resolves user ids to their names.
    pub fn user_names(&self, ids: &[u32]) -> Vec<String> {
        let st = self.state.read();
        ids.iter().map(|&u| st.users.name(u).to_owned()).collect()
    }

    /// A copy of all profiles and aliases.
    pub fn profiles(&self) -> Profiles {
        self.state.read().profiles.clone()
    }

    /// Runs `f` with the profiles, without copying them.
    pub fn with_profiles<R>(&self, f: impl FnOnce(&Profiles) -> R) -> R {
        f(&self.state.read().profiles)
    }

    /// Counts and sizes.
    pub fn stats(&self) -> Result<StoreStats> {
        let st = self.state.read();
        let mut s = StoreStats {
            shards: self.shards,
            users: st.users.len() as u64,
            event_names: st.events.len() as u64,
            profiles: st.profiles.users.len() as u64,
            aliases: st.profiles.aliases.len() as u64,
            ..Default::default()
        };
        for segs in &st.segments {
            for (_, seg) in segs {
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
                        (Some(pid), _) => format!("prop:{}", st.props.name(pid)),
                        (None, Some("users" | "counts")) => "event pairs".to_owned(),
                        (None, Some(part)) => part.to_owned(),
                        (None, None) => name,
                    };
                    *s.column_bytes.entry(key).or_default() += bytes;
                }
            }
        }
        s.events_in_memtable = (st.mem.rows + st.frozen.as_ref().map_or(0, |f| f.rows)) as u64;
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
                    let Some(col) = seg.prop(pid)? else { continue };
                    let mut counts = vec![0u64; col.values.len() + 1];
                    for &i in &col.idx {
                        counts[i as usize] += 1;
                    }
                    let name = names.get(pid as usize).cloned().unwrap_or_default();
                    let entry = out.entry(name).or_default();
                    for (v, &c) in col.values.iter().zip(&counts[1..]) {
                        *entry.entry(kind(v)).or_default() += c;
                    }
                }
            }
            for run in &shard.mem {
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

    /// [`Store::for_each_event`] for one shard.
    pub fn for_each_event_in_shard(&self, shard: u32, mut f: impl FnMut(Event)) -> Result<()> {
        let snap = self.snapshot();
        let (users, events, prop_names) = {
            let st = self.state.read();
            (
                st.users.clone(),
                st.events.clone(),
                st.props.iter().map(str::to_owned).collect::<Vec<_>>(),
            )
        };
        let spec = ScanSpec {
            range: None,
            props: (0..prop_names.len() as u32).collect(),
            users: None,
            skip: None,
            events: None,
            skip_times: false,
            runs: false,
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

/// Makes every dictionary entry durable; returns the counts a manifest may promise.
fn persist_dicts(st: &mut State, ddir: &Path) -> Result<DictCounts> {
    Ok(DictCounts {
        users: st.users.persist(&ddir.join("users.dict"))?,
        events: st.events.persist(&ddir.join("events.dict"))?,
        props: st.props.persist(&ddir.join("props.dict"))?,
    })
}

/// Applies a logged record to the in-memory state (ingest and replay).
fn apply(st: &mut State, shards: u32, rec: &WalRecord) {
    match rec {
        WalRecord::Events(evs) => {
            let mut per_shard: Vec<MemBatch> = vec![MemBatch::default(); shards as usize];
            let bytes = intern_events(st, shards, evs.iter().cloned(), &mut per_shard);
            for (s, b) in per_shard.into_iter().enumerate() {
                if !b.is_empty() {
                    st.mem.rows += b.len();
                    push_run(&mut st.mem.shards[s], b);
                }
            }
            st.mem.bytes += bytes;
        }
        WalRecord::Profiles(ups) => {
            for u in ups {
                st.users.intern(&u.user);
                st.profiles.apply(u);
            }
            st.profiles_dirty = true;
        }
        WalRecord::Aliases(al) => {
            for a in al {
                st.users.intern(&a.anonymous);
                st.users.intern(&a.known);
                st.profiles.alias(a);
            }
            st.profiles_dirty = true;
        }
    }
}

/// Interns names and appends rows to per-shard batches; returns approximate bytes.
fn intern_events(
    st: &mut State,
    shards: u32,
    evs: impl Iterator<Item = Event>,
    per_shard: &mut [MemBatch],
) -> usize {
    let mut bytes = 0usize;
    for e in evs {
        let uid = st.users.intern(&e.user);
        let ev = st.events.intern(&e.event);
        let props: Vec<(u32, Value)> = e
            .props
            .into_iter()
            .map(|(k, v)| (st.props.intern(&k), v))
            .collect();
        bytes += 32 + props.len() * 40;
        let b = &mut per_shard[(uid % shards) as usize];
        b.uids.push(uid);
        b.events.push(ev);
        b.times.push(e.time);
        b.props.push(props);
    }
    bytes
}

/// Sorts memtable batches of one shard by (user, time), keeping arrival
/// order among ties.
pub(crate) fn sort_batches(batches: &[Arc<MemBatch>]) -> SegmentData {
    let mut run = MemRun::default();
    for b in batches {
        run = MemRun::merge(&run, &MemRun::from_batch(b.clone()));
    }
    run_to_data(&run)
}

/// Merges a shard's memtable runs (oldest first) into segment columns.
fn runs_to_data(runs: &[Arc<MemRun>]) -> SegmentData {
    let mut all = MemRun::default();
    for r in runs {
        all = MemRun::merge(&all, r);
    }
    run_to_data(&all)
}

fn run_to_data(run: &MemRun) -> SegmentData {
    let mut d = SegmentData {
        uids: run.uids.clone(),
        times: run.times.clone(),
        events: run.events.clone(),
        ..Default::default()
    };
    for (row, &(b, r)) in run.loc.iter().enumerate() {
        if let Some(props) = run
            .batches
            .get(b as usize)
            .and_then(|b| b.props.get(r as usize))
        {
            for (pid, v) in props {
                d.props
                    .entry(*pid)
                    .or_default()
                    .push((row as u32, v.clone()));
            }
        }
    }
    d
}

/// Reads whole segments (oldest first) and merges them by (user, time).
fn merge_segments(segs: &[(u64, Arc<Segment>)]) -> Result<SegmentData> {
    let mut all_props: Vec<u32> = segs.iter().flat_map(|(_, s)| s.prop_ids()).collect();
    all_props.sort_unstable();
    all_props.dedup();
    let spec = ScanSpec {
        range: None,
        props: all_props.clone(),
        users: None,
        skip: None,
        events: None,
        skip_times: false,
        runs: false,
    };
    let snap = ShardSnapshot {
        segments: segs.iter().map(|(_, s)| s.clone()).collect(),
        mem: Vec::new(),
    };
    let mut d = SegmentData::default();
    snap.scan(&spec, |u| {
        for i in 0..u.len() {
            let row = d.uids.len() as u32;
            d.uids.push(u.uid);
            d.times.push(u.times[i]);
            d.events.push(u.events[i]);
            for (k, pid) in all_props.iter().enumerate() {
                if let Some(v) = u.prop(k, i) {
                    d.props.entry(*pid).or_default().push((row, v.clone()));
                }
            }
        }
    })?;
    Ok(d)
}
