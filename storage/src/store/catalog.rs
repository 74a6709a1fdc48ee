//! The catalog: the MANIFEST and the files it names (segments, the profile
//! snapshot, the WAL files it still covers), and the maintenance that
//! changes it: flush, compaction and the publication of a bulk load.
//!
//! The manifest lives under its own mutex, the outermost lock of the
//! store, held by one maintenance task at a time across its file I/O.
//! Each task does every write and fsync first, with no other lock held,
//! and then swaps its result into the tables under their lock, without
//! I/O; only then are the files nothing references removed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use crate::error::{IoContext, Result};
use crate::event::ProfileUpdate;
use crate::fsutil;
use crate::manifest::{Manifest, SegmentEntry};
use crate::profiles;
use crate::segment::{write_segment, Segment, SegmentData, SegmentFormat};
use crate::wal;

use super::merge::{merge_segments, runs_to_data};
use super::tables::Tables;
use super::write::WritePath;

pub(crate) const MANIFEST: &str = "MANIFEST";

pub(crate) fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join("segments").join(format!("{id:08}.seg"))
}

pub(crate) fn prof_path(dir: &Path, id: u64) -> PathBuf {
    dir.join("profiles").join(format!("{id:08}.prof"))
}

pub(crate) fn base_path(dir: &Path, id: u64) -> PathBuf {
    dir.join("profiles").join(format!("{id:08}.pcol"))
}

pub(crate) struct Catalog {
    dir: PathBuf,
    format: SegmentFormat,
    /// The durable manifest as last stored; its mutex is the maintenance lock.
    manifest: Mutex<Manifest>,
    /// Next file id, handed out without any lock (bulk loads write
    /// segments while a flush runs).
    next_id: AtomicU64,
}

impl Catalog {
    pub fn new(dir: &Path, manifest: Manifest, format: SegmentFormat) -> Self {
        Catalog {
            dir: dir.to_owned(),
            format,
            next_id: AtomicU64::new(manifest.next_id),
            manifest: Mutex::new(manifest),
        }
    }

    /// Takes the maintenance lock.
    pub fn lock(&self) -> MutexGuard<'_, Manifest> {
        self.manifest.lock()
    }

    pub fn reserve_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Durably replaces the manifest with `m` (the caller holds the lock).
    fn store(&self, held: &mut Manifest, mut m: Manifest) -> Result<()> {
        m.next_id = m.next_id.max(self.next_id.load(Ordering::Relaxed));
        m.store(&self.dir.join(MANIFEST))?;
        *held = m;
        Ok(())
    }

    /// Writes `data` as a new segment file (not yet in any manifest) and
    /// opens it.
    pub fn write_new_segment(
        &self,
        shard: u32,
        data: &SegmentData,
    ) -> Result<(SegmentEntry, Arc<Segment>)> {
        let id = self.reserve_id();
        let path = seg_path(&self.dir, id);
        let bytes = write_segment(&path, shard, data, self.format)?;
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

    /// Writes the memtable (and changed profiles) to segments, publishes
    /// them in a new manifest, and drops the WAL files they cover.
    /// Profile changes are merged into a new base file once `merge_at`
    /// users changed (0: always). `import` (by ascending user id) is
    /// applied on top of the merged changes, into the new base.
    pub fn flush(
        &self,
        write: &WritePath,
        tables: &Tables,
        merge_at: usize,
        import: Option<&[(u32, Vec<ProfileUpdate>)]>,
    ) -> Result<()> {
        let mut held = self.lock();
        let merge_at = if import.is_some() { 0 } else { merge_at };
        let Some((frozen, wal_start)) = write.freeze(tables, merge_at) else {
            return Ok(());
        };
        let mut new_segs = Vec::new();
        for (shard, runs) in frozen.mem.shards.iter().enumerate() {
            if runs.iter().all(|r| r.is_empty()) {
                continue;
            }
            let data = runs_to_data(runs);
            new_segs.push(self.write_new_segment(shard as u32, &data)?);
        }
        fsutil::sync_dir(&self.dir.join("segments"))?;
        let mut new_base = None;
        let profile_id = match &frozen.profiles {
            Some(out) => {
                if let Some((base, changes)) = &out.merge {
                    let id = self.reserve_id();
                    let path = base_path(&self.dir, id);
                    let imported =
                        import.map(|imp| profiles::apply_import(base.as_deref(), changes, imp));
                    let list = profiles::merge_changes(changes, imported.as_deref());
                    profiles::write_merged(&path, base.as_deref(), &list)?;
                    drop(list);
                    drop(imported);
                    new_base = Some((id, Arc::new(profiles::ProfileBase::open(&path)?)));
                }
                let id = self.reserve_id();
                profiles::save_snapshot(&prof_path(&self.dir, id), &out.changes, &out.aliases)?;
                Some(id)
            }
            None => None,
        };
        let tails = tables.dict_tails();
        let counts = tails.write(&self.dir.join("dict"))?;
        let mut m = held.clone();
        m.wal_start = wal_start;
        m.dicts = counts;
        m.segments.extend(new_segs.iter().map(|(e, _)| e.clone()));
        let old_profile = m.profiles;
        let old_base = m.profile_base;
        if profile_id.is_some() {
            m.profiles = profile_id;
        }
        if let Some((id, _)) = &new_base {
            m.profile_base = Some(*id);
        }
        self.store(&mut held, m)?;
        tables.write(|st| {
            st.mark_persisted(&counts);
            for (e, seg) in new_segs {
                st.segments[e.shard as usize].push((e.id, seg));
            }
            st.frozen = None;
            if let Some((_, base)) = new_base.take() {
                st.profiles.merged(base, import.is_some());
            }
        });
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
        if let Some(old) = old_base.filter(|_| held.profile_base != old_base) {
            let p = base_path(&self.dir, old);
            std::fs::remove_file(&p).at(&p)?;
        }
        Ok(())
    }

    /// Merges small segments of shards with more than `max`; returns the
    /// number of merges done. `write` is consulted between shards, so a
    /// failure elsewhere stops it.
    pub fn compact(&self, write: &WritePath, tables: &Tables, max: usize) -> Result<usize> {
        let mut held = self.lock();
        let shards = tables.read(|st| st.segments.len());
        let mut merges = 0;
        for shard in 0..shards {
            write.check()?;
            if self.compact_shard(&mut held, tables, shard, max.max(1))? {
                merges += 1;
            }
        }
        Ok(merges)
    }

    fn compact_shard(
        &self,
        held: &mut Manifest,
        tables: &Tables,
        shard: usize,
        max: usize,
    ) -> Result<bool> {
        let mut segs: Vec<(u64, Arc<Segment>)> = tables.read(|st| st.segments[shard].clone());
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
        let (entry, seg) = self.write_new_segment(shard as u32, &data)?;
        fsutil::sync_dir(&self.dir.join("segments"))?;
        let gone: Vec<u64> = chosen.iter().map(|(id, _)| *id).collect();
        let mut man = held.clone();
        man.segments.retain(|e| !gone.contains(&e.id));
        let id = entry.id;
        man.segments.push(entry);
        self.store(held, man)?;
        tables.write(|st| {
            let list = &mut st.segments[shard];
            list.retain(|(i, _)| !gone.contains(i));
            list.push((id, seg));
            list.sort_by_key(|(i, _)| *i);
        });
        for g in gone {
            let p = seg_path(&self.dir, g);
            std::fs::remove_file(&p).at(&p)?;
        }
        Ok(true)
    }

    /// Publishes segments written outside a flush (bulk load) in one
    /// manifest update, after persisting the dictionaries they use.
    pub fn publish(&self, tables: &Tables, segs: Vec<(SegmentEntry, Arc<Segment>)>) -> Result<()> {
        let mut held = self.lock();
        fsutil::sync_dir(&self.dir.join("segments"))?;
        let counts = tables.dict_tails().write(&self.dir.join("dict"))?;
        let mut m = held.clone();
        m.dicts = counts;
        m.segments.extend(segs.iter().map(|(e, _)| e.clone()));
        self.store(&mut held, m)?;
        tables.write(|st| {
            st.mark_persisted(&counts);
            for (e, seg) in segs {
                st.segments[e.shard as usize].push((e.id, seg));
            }
            for s in st.segments.iter_mut() {
                s.sort_by_key(|(i, _)| *i);
            }
        });
        Ok(())
    }
}
