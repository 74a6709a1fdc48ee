//! Append-only string dictionaries (user ids, event names, property names):
//! dense `u32` ids in first-seen order, persisted as CRC-framed batches.
//!
//! Ids are assigned in memory as rows arrive; a batch of new names is
//! appended and fsync'ed before any manifest that references those ids is
//! written, so every id a visible segment uses is durable. Entries past the
//! manifest's count (a crash between the two writes) are harmless.

use std::fs::OpenOptions;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use crate::codec::{Dec, Enc};
use crate::error::{Error, IoContext, Result};

/// Magic bytes opening a dictionary file (format version 1).
pub const DICT_MAGIC: &[u8; 8] = b"FPDICT01";

/// A string ↔ dense id dictionary, compact enough for millions of user
/// ids: every name lives in one byte arena (plus an 8-byte end offset),
/// and the hash index holds only 4-byte ids — about 20 bytes per name
/// beyond its text, instead of a heap string and a map entry each.
///
/// The name → id index is built on first use: a process that only
/// queries (ids → names) never pays its ~10 bytes per name.
#[derive(Debug, Clone, Default)]
pub struct Dict {
    bytes: Vec<u8>,
    /// `ends[i]`: end of name `i` in `bytes` (its start is `ends[i - 1]`).
    ends: Vec<u64>,
    index: OnceLock<HashTable<u32>>,
    persisted: usize,
}

/// Names of a dictionary not yet on disk, taken by [`Dict::tail`].
#[derive(Debug)]
pub struct DictTail {
    batch: Option<Vec<u8>>,
    len: usize,
}

/// The name → id index of an arena (the first id of a repeated name wins).
fn build_index(bytes: &[u8], ends: &[u64]) -> HashTable<u32> {
    let mut index = HashTable::with_capacity(ends.len());
    for id in 0..ends.len() as u32 {
        let name = at(bytes, ends, id);
        let h = hash(name);
        if index
            .find(h, |&other| at(bytes, ends, other) == name)
            .is_none()
        {
            index.insert_unique(h, id, |&x| hash(at(bytes, ends, x)));
        }
    }
    index
}

fn hash(name: &[u8]) -> u64 {
    FxBuildHasher.hash_one(name)
}

/// Name `id` in an arena.
fn at<'a>(bytes: &'a [u8], ends: &[u64], id: u32) -> &'a [u8] {
    let i = id as usize;
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    &bytes[start..ends[i] as usize]
}

impl Dict {
    /// An empty dictionary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn index(&self) -> &HashTable<u32> {
        self.index
            .get_or_init(|| build_index(&self.bytes, &self.ends))
    }

    /// The id of `name`, if known.
    pub fn get(&self, name: &str) -> Option<u32> {
        let (bytes, ends) = (&self.bytes, &self.ends);
        self.index()
            .find(hash(name.as_bytes()), |&id| {
                at(bytes, ends, id) == name.as_bytes()
            })
            .copied()
    }

    /// The id of `name`, assigning the next id if new.
    pub fn intern(&mut self, name: &str) -> u32 {
        let h = hash(name.as_bytes());
        if self.index.get().is_none() {
            self.index = OnceLock::from(build_index(&self.bytes, &self.ends));
        }
        // Borrowed in place (not taken out and put back: that re-runs the
        // lock's initialisation, a few percent of a bulk load).
        let Some(index) = self.index.get_mut() else {
            return self.intern_unindexed(name);
        };
        let (bytes, ends) = (&mut self.bytes, &mut self.ends);
        if let Some(&id) = index.find(h, |&id| at(bytes, ends, id) == name.as_bytes()) {
            return id;
        }
        let id = ends.len() as u32;
        bytes.extend_from_slice(name.as_bytes());
        ends.push(bytes.len() as u64);
        let (bytes, ends) = (&*bytes, &*ends);
        index.insert_unique(h, id, |&id| hash(at(bytes, ends, id)));
        id
    }

    /// [`Dict::intern`] by a linear search, for when there is no index
    /// (never, as the index is made first; correct all the same).
    fn intern_unindexed(&mut self, name: &str) -> u32 {
        let n = self.ends.len() as u32;
        if let Some(id) = (0..n).find(|&id| at(&self.bytes, &self.ends, id) == name.as_bytes()) {
            return id;
        }
        self.push(name);
        self.index = OnceLock::new();
        n
    }

    /// Appends a name known to be new (loading a file).
    fn push(&mut self, name: &str) {
        self.bytes.extend_from_slice(name.as_bytes());
        self.ends.push(self.bytes.len() as u64);
    }

    /// The name of `id` (empty string if out of range).
    pub fn name(&self, id: u32) -> &str {
        if id as usize >= self.ends.len() {
            return "";
        }
        // Names only enter through `&str`, so every slice is UTF-8.
        std::str::from_utf8(at(&self.bytes, &self.ends, id)).unwrap_or("")
    }

    /// All names, by id.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.ends.len() as u32).map(|id| self.name(id))
    }

    /// Heap bytes held (arena, offsets and index).
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
            + self.ends.capacity() * 8
            + self.index.get().map_or(0, |ix| ix.capacity() * 5)
    }

    /// Appends names not yet persisted to `path` and fsyncs it. Returns the
    /// durable count.
    pub fn persist(&mut self, path: &Path) -> Result<usize> {
        let n = Dict::write_tail(path, &self.tail())?;
        self.mark_persisted(n);
        Ok(n)
    }

    /// The names not yet persisted, encoded as the batch
    /// [`Dict::write_tail`] appends. Taking it needs only a shared borrow,
    /// so the store copies it under its lock and writes it outside.
    pub fn tail(&self) -> DictTail {
        let mut batch = None;
        if self.persisted < self.len() {
            let mut e = Enc::new();
            e.var((self.len() - self.persisted) as u64);
            for id in self.persisted..self.len() {
                e.str(self.name(id as u32));
            }
            batch = Some(crate::wal::frame(&e.buf));
        }
        DictTail {
            batch,
            len: self.len(),
        }
    }

    /// Appends `tail` to the dictionary file at `path` (creating it) and
    /// fsyncs it; returns the durable count.
    pub fn write_tail(path: &Path, tail: &DictTail) -> Result<usize> {
        let new_file = !path.exists();
        if tail.batch.is_none() && !new_file {
            return Ok(tail.len);
        }
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .at(path)?;
        let mut out = Vec::new();
        if new_file {
            out.extend_from_slice(DICT_MAGIC);
        }
        if let Some(b) = &tail.batch {
            out.extend_from_slice(b);
        }
        crate::fsutil::write_all(&f, path, &out)?;
        crate::fsutil::sync_data(&f, path)?;
        if new_file {
            if let Some(dir) = path.parent() {
                crate::fsutil::sync_dir(dir)?;
            }
        }
        Ok(tail.len)
    }

    /// Records that the first `n` names are durable.
    pub fn mark_persisted(&mut self, n: usize) {
        self.persisted = self.persisted.max(n.min(self.len()));
    }

    /// Loads a dictionary file. `expected` is the count the manifest
    /// promises; fewer valid entries is corruption. A torn last batch past
    /// that count is cut off the file.
    pub fn open(path: &Path, expected: usize) -> Result<Dict> {
        let mut d = Dict::new();
        if !path.exists() {
            if expected > 0 {
                return Err(Error::corrupt(
                    path,
                    format!("missing; the manifest expects {expected} entries"),
                ));
            }
            return Ok(d);
        }
        let data = std::fs::read(path).at(path)?;
        // Sized once: no rehash or regrowth peaks while loading millions.
        d.bytes.reserve(data.len());
        d.ends.reserve(expected);
        let bad = |why: String| Error::corrupt(PathBuf::from(path), why);
        if data.len() < 8 || &data[..8] != DICT_MAGIC {
            if data.len() < 8 && expected == 0 {
                std::fs::remove_file(path).at(path)?;
                return Ok(d);
            }
            return Err(bad("not a Footprint dictionary (bad magic)".into()));
        }
        let mut pos = 8usize;
        while pos < data.len() {
            let rest = &data[pos..];
            let ok_frame = rest.len() >= 8 && {
                let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
                rest.len() >= 8 + len && crc32fast::hash(&rest[8..8 + len]) == crc
            };
            if !ok_frame {
                if d.len() >= expected {
                    tracing::warn!(
                        "{}: cutting {} bytes of an unfinished write",
                        path.display(),
                        data.len() - pos
                    );
                    let f = OpenOptions::new().write(true).open(path).at(path)?;
                    f.set_len(pos as u64).at(path)?;
                    f.sync_all().at(path)?;
                    break;
                }
                return Err(bad(format!(
                    "damaged batch at offset {pos}: {} of {expected} entries readable",
                    d.len()
                )));
            }
            let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let mut dec = Dec::new(&rest[8..8 + len]);
            let n = dec
                .len(len, "entry count")
                .map_err(|e| bad(format!("batch at offset {pos}: {e}")))?;
            for _ in 0..n {
                let s = dec
                    .str()
                    .map_err(|e| bad(format!("batch at offset {pos}: {e}")))?;
                d.push(s);
            }
            pos += 8 + len;
        }
        if d.len() < expected {
            return Err(bad(format!(
                "holds {} entries; the manifest expects {expected}",
                d.len()
            )));
        }
        d.persisted = d.len();
        d.bytes.shrink_to_fit();
        d.ends.shrink_to_fit();
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persist_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users.dict");
        let mut d = Dict::new();
        assert_eq!(d.intern("a"), 0);
        assert_eq!(d.intern("ü"), 1);
        assert_eq!(d.intern("a"), 0);
        d.persist(&p).unwrap();
        d.intern("c");
        d.persist(&p).unwrap();
        let mut r = Dict::open(&p, 3).unwrap();
        // The name index is built on first use, not at open.
        assert!(r.index.get().is_none());
        assert_eq!(r.name(2), "c");
        assert!(r.index.get().is_none());
        assert_eq!(r.intern("ü"), 1);
        assert_eq!(r.intern("d"), 3);
        assert_eq!(r.get("d"), Some(3));
        let r = Dict::open(&p, 3).unwrap();
        assert_eq!(r.get("c"), Some(2));
        assert_eq!(r.name(1), "ü");
        assert!(Dict::open(&p, 4).is_err());
        // A torn batch past the expected count is cut.
        let mut bytes = std::fs::read(&p).unwrap();
        let keep = bytes.len();
        bytes.extend_from_slice(&[9, 0, 0, 0, 1]);
        std::fs::write(&p, &bytes).unwrap();
        let r = Dict::open(&p, 3).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(std::fs::metadata(&p).unwrap().len() as usize, keep);
    }
}
