//! Saved cohorts: named sets of user ids (roaring bitmaps) written by a
//! `users` query with `save_as` and read by `{"cohort": NAME}`.
//!
//! One file per cohort, `cohorts/NAME.cohort`: the magic `FPCOHRT1`, a
//! CRC-32 of the rest, then the bitmap in the portable roaring format.
//! Saving replaces the file atomically (temp file, fsync, rename, fsync of
//! the directory), so a crash leaves the old or the new members, never a
//! mix. User ids are the store's dense ids, which never change.

use std::path::{Path, PathBuf};

use roaring::RoaringBitmap;

use crate::error::{Error, IoContext, Result};

/// Magic bytes opening a cohort file (format version 1).
pub const COHORT_MAGIC: &[u8; 8] = b"FPCOHRT1";

/// Checks a cohort name: 1 to 64 ASCII letters, digits, `_` or `-`.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid cohort name {name:?}: use 1 to 64 letters, digits, '_' or '-'"
        ))
    }
}

fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join("cohorts").join(format!("{name}.cohort"))
}

/// Saves (or replaces) cohort `name` under the data directory `dir`.
pub fn save(dir: &Path, name: &str, members: &RoaringBitmap) -> Result<()> {
    check_name(name).map_err(Error::Invalid)?;
    let cdir = dir.join("cohorts");
    crate::fsutil::ensure_dir(&cdir)?;
    let mut body = Vec::with_capacity(members.serialized_size());
    members
        .serialize_into(&mut body)
        .map_err(|e| Error::Invalid(format!("cohort {name}: {e}")))?;
    let mut bytes = Vec::with_capacity(body.len() + 12);
    bytes.extend_from_slice(COHORT_MAGIC);
    bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    bytes.extend_from_slice(&body);
    crate::fsutil::write_atomic(&path(dir, name), &bytes)
}

/// Loads cohort `name`; `None` if there is none by that name. A damaged
/// file is an error naming it.
pub fn load(dir: &Path, name: &str) -> Result<Option<RoaringBitmap>> {
    check_name(name).map_err(Error::Invalid)?;
    let p = path(dir, name);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).at(&p),
    };
    if bytes.len() < 12 || &bytes[..8] != COHORT_MAGIC {
        return Err(Error::corrupt(&p, "not a Footprint cohort (bad magic)"));
    }
    let crc = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    let body = &bytes[12..];
    if crc32fast::hash(body) != crc {
        return Err(Error::corrupt(&p, "checksum mismatch"));
    }
    RoaringBitmap::deserialize_from(body)
        .map(Some)
        .map_err(|e| Error::corrupt(&p, format!("members: {e}")))
}

/// The names of the saved cohorts, sorted.
pub fn list(dir: &Path) -> Result<Vec<String>> {
    let cdir = dir.join("cohorts");
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&cdir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).at(&cdir),
    };
    for e in entries {
        let e = e.at(&cdir)?;
        if let Some(n) = e
            .file_name()
            .to_str()
            .and_then(|n| n.strip_suffix(".cohort"))
        {
            out.push(n.to_owned());
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_replace_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path(), "x").unwrap().is_none());
        let a: RoaringBitmap = [1u32, 5, 70_000].into_iter().collect();
        save(dir.path(), "at_risk", &a).unwrap();
        assert_eq!(load(dir.path(), "at_risk").unwrap(), Some(a));
        let b: RoaringBitmap = [2u32].into_iter().collect();
        save(dir.path(), "at_risk", &b).unwrap();
        assert_eq!(load(dir.path(), "at_risk").unwrap(), Some(b));
        assert_eq!(list(dir.path()).unwrap(), vec!["at_risk".to_string()]);
        assert!(check_name("../etc").is_err() && check_name("").is_err());
        assert!(save(dir.path(), "a/b", &RoaringBitmap::new()).is_err());
        let p = path(dir.path(), "at_risk");
        let mut bytes = std::fs::read(&p).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        let err = load(dir.path(), "at_risk").unwrap_err().to_string();
        assert!(err.contains("at_risk.cohort"), "{err}");
    }

    #[test]
    fn concurrent_saves_of_one_name_all_succeed_and_reads_see_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        std::thread::scope(|s| {
            for t in 0..6u32 {
                let dir = dir.path();
                s.spawn(move || {
                    let members: RoaringBitmap = (t * 1000..t * 1000 + 500 + t).collect();
                    for _ in 0..50 {
                        save(dir, "payers", &members).unwrap();
                        let got = load(dir, "payers").unwrap().unwrap();
                        // Whichever save won, it is one of them, whole.
                        let first = got.min().unwrap();
                        let k = first / 1000;
                        assert_eq!(got.len(), u64::from(500 + k));
                    }
                });
            }
        });
        assert_eq!(list(dir.path()).unwrap(), vec!["payers".to_string()]);
        let left = std::fs::read_dir(dir.path().join("cohorts"))
            .unwrap()
            .count();
        assert_eq!(left, 1, "no temporary file is left behind");
    }
}
