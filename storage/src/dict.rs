//! Append-only string dictionaries (user ids, event names, property names):
//! dense `u32` ids in first-seen order, persisted as CRC-framed batches.
//!
//! Ids are assigned in memory as rows arrive; a batch of new names is
//! appended and fsync'ed before any manifest that references those ids is
//! written, so every id a visible segment uses is durable. Entries past the
//! manifest's count (a crash between the two writes) are harmless.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::codec::{Dec, Enc};
use crate::error::{Error, IoContext, Result};

/// Magic bytes opening a dictionary file (format version 1).
pub const DICT_MAGIC: &[u8; 8] = b"FPDICT01";

/// A string ↔ dense id dictionary.
#[derive(Debug, Clone, Default)]
pub struct Dict {
    map: FxHashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
    persisted: usize,
}

impl Dict {
    /// An empty dictionary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The id of `name`, if known.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.map.get(name).copied()
    }

    /// The id of `name`, assigning the next id if new.
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.map.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        let s: Arc<str> = Arc::from(name);
        self.names.push(s.clone());
        self.map.insert(s, id);
        id
    }

    /// The name of `id` (empty string if out of range).
    pub fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map(|s| &**s).unwrap_or("")
    }

    /// All names, by id.
    pub fn names(&self) -> &[Arc<str>] {
        &self.names
    }

    /// Appends names not yet persisted to `path` and fsyncs it. Returns the
    /// durable count.
    pub fn persist(&mut self, path: &Path) -> Result<usize> {
        if self.persisted == self.names.len() && path.exists() {
            return Ok(self.persisted);
        }
        let new_file = !path.exists();
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .at(path)?;
        let mut out = Vec::new();
        if new_file {
            out.extend_from_slice(DICT_MAGIC);
        }
        if self.persisted < self.names.len() {
            let mut e = Enc::new();
            e.var((self.names.len() - self.persisted) as u64);
            for n in &self.names[self.persisted..] {
                e.str(n);
            }
            out.extend_from_slice(&crate::wal::frame(&e.buf));
        }
        f.write_all(&out).at(path)?;
        f.sync_data().at(path)?;
        if new_file {
            if let Some(dir) = path.parent() {
                crate::fsutil::sync_dir(dir)?;
            }
        }
        self.persisted = self.names.len();
        Ok(self.persisted)
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
                if d.map.contains_key(s) {
                    return Err(bad(format!("name {s:?} appears twice")));
                }
                d.intern(s);
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
