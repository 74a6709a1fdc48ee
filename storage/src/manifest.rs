//! The MANIFEST: the list of live segments and what the WAL still has to
//! replay, replaced atomically (temp file, fsync, rename, fsync dir).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Current manifest format version.
pub const MANIFEST_VERSION: u32 = 1;

/// One live segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentEntry {
    /// File id: `segments/{id:08}.seg`.
    pub id: u64,
    /// Shard of its rows.
    pub shard: u32,
    /// Row count.
    pub rows: u64,
    /// Smallest time.
    pub min_time: i64,
    /// Largest time.
    pub max_time: i64,
    /// File size in bytes.
    pub bytes: u64,
}

/// Durable dictionary sizes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DictCounts {
    /// User ids.
    pub users: usize,
    /// Event names.
    pub events: usize,
    /// Property names.
    pub props: usize,
}

/// The manifest body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version.
    pub version: u32,
    /// Number of user shards (fixed at creation).
    pub shards: u32,
    /// Next file id for segments and profile snapshots.
    pub next_id: u64,
    /// WAL files numbered below this are covered by segments.
    pub wal_start: u64,
    /// Dictionary sizes the segments rely on.
    pub dicts: DictCounts,
    /// Live segments.
    pub segments: Vec<SegmentEntry>,
    /// Id of the live profile snapshot (the changes since the profile
    /// base, and the aliases), if any.
    pub profiles: Option<u64>,
    /// Id of the live profile base file (`profiles/{id:08}.pcol`), if any.
    #[serde(default)]
    pub profile_base: Option<u64>,
}

impl Manifest {
    /// A manifest for a new, empty store.
    pub fn new(shards: u32) -> Self {
        Manifest {
            version: MANIFEST_VERSION,
            shards,
            next_id: 1,
            wal_start: 1,
            dicts: DictCounts::default(),
            segments: Vec::new(),
            profiles: None,
            profile_base: None,
        }
    }

    /// Reads `path`, or `None` if it does not exist.
    pub fn load(path: &Path) -> Result<Option<Manifest>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        };
        let bad = |why: String| Error::corrupt(path, why);
        let (body, crc_line) = text
            .trim_end()
            .rsplit_once('\n')
            .ok_or_else(|| bad("no checksum line".into()))?;
        let expected = u32::from_str_radix(crc_line.trim().trim_start_matches("crc32 "), 16)
            .map_err(|_| bad("unreadable checksum line".into()))?;
        let got = crc32fast::hash(body.as_bytes());
        if got != expected {
            return Err(Error::ChecksumMismatch {
                file: path.to_owned(),
                offset: 0,
                expected,
                got,
            });
        }
        let m: Manifest = serde_json::from_str(body).map_err(|e| bad(e.to_string()))?;
        if m.version != MANIFEST_VERSION {
            return Err(bad(format!(
                "format version {} is not supported by this build (reads {MANIFEST_VERSION})",
                m.version
            )));
        }
        if m.shards == 0 {
            return Err(bad("zero shards".into()));
        }
        Ok(Some(m))
    }

    /// Atomically replaces `path` with this manifest.
    pub fn store(&self, path: &Path) -> Result<()> {
        let body = serde_json::to_string_pretty(self)
            .map_err(|e| Error::corrupt(path, format!("cannot serialize: {e}")))?;
        let text = format!("{body}\ncrc32 {:08x}\n", crc32fast::hash(body.as_bytes()));
        crate::fsutil::write_atomic(path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_detects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("MANIFEST");
        assert!(Manifest::load(&p).unwrap().is_none());
        let mut m = Manifest::new(8);
        m.segments.push(SegmentEntry {
            id: 3,
            shard: 1,
            rows: 10,
            min_time: 1,
            max_time: 2,
            bytes: 99,
        });
        m.store(&p).unwrap();
        assert_eq!(Manifest::load(&p).unwrap(), Some(m));
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace("\"rows\": 10", "\"rows\": 11");
        std::fs::write(&p, text).unwrap();
        let err = Manifest::load(&p).unwrap_err().to_string();
        assert!(err.contains("MANIFEST"), "{err}");
    }
}
