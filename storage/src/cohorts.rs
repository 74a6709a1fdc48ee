//! Saved cohorts: named sets of user ids (roaring bitmaps). A *live* cohort
//! keeps the `users` query that defines it and is re-evaluated by the query
//! layer when read stale; a *static* cohort is a list of ids uploaded (or
//! a snapshot saved by an older version) and never changes by itself.
//!
//! One file per cohort, `cohorts/NAME.cohort` (format in `FORMAT.md`):
//! the magic `FPCOHRT2`, a CRC-32 of the rest, then the kind, a
//! generation, the time of the last evaluation, the definition, a bounded
//! size history and the members in the portable roaring format. Version 1
//! files (`FPCOHRT1`: members only) are still read, as static cohorts.
//! Saving replaces the file atomically (temp file, fsync, rename, fsync of
//! the directory), so a crash leaves the old or the new cohort, never a
//! mix. User ids are the store's dense ids, which never change.

use std::path::{Path, PathBuf};

use roaring::RoaringBitmap;

use crate::error::{Error, IoContext, Result};

/// Magic bytes opening a version 1 cohort file (members only; still read).
pub const COHORT_MAGIC: &[u8; 8] = b"FPCOHRT1";
/// Magic bytes opening a version 2 cohort file (written now).
pub const COHORT_MAGIC2: &[u8; 8] = b"FPCOHRT2";
/// Most points a cohort's size history keeps (the oldest go first).
pub const HISTORY_MAX: usize = 1000;
/// A new history point is added when the size changed, or when the last
/// point is older than this (ms); otherwise an evaluation adds none.
pub const HISTORY_STEP_MS: i64 = 3_600_000;

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

/// A saved cohort: what defines it and its members as last evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct Cohort {
    /// The `users` query JSON that defines a live cohort; `None` for a
    /// static one.
    pub definition: Option<String>,
    /// Changes whenever the cohort is created or replaced (not when it is
    /// re-evaluated): a re-evaluation of an older generation is dropped.
    pub generation: u64,
    /// When the members were computed (epoch ms); 0 when unknown (a
    /// version 1 file).
    pub evaluated_at: i64,
    /// `(evaluated_at, size)` points, oldest first, at most
    /// [`HISTORY_MAX`].
    pub history: Vec<(i64, u64)>,
    /// The members.
    pub members: RoaringBitmap,
}

impl Cohort {
    /// A new cohort of `members`, evaluated at `at`.
    pub fn new(definition: Option<String>, members: RoaringBitmap, at: i64) -> Cohort {
        Cohort {
            definition,
            generation: new_generation(),
            evaluated_at: at,
            history: vec![(at, members.len())],
            members,
        }
    }

    /// Whether a definition keeps it current.
    pub fn is_live(&self) -> bool {
        self.definition.is_some()
    }

    /// Takes the members of a fresh evaluation at `at`, adding a history
    /// point when the size changed or the last point is old.
    pub fn evaluated(&mut self, members: RoaringBitmap, at: i64) {
        let size = members.len();
        let add = self
            .history
            .last()
            .is_none_or(|&(t, n)| n != size || at - t >= HISTORY_STEP_MS);
        if add {
            self.history.push((at, size));
            if self.history.len() > HISTORY_MAX {
                let cut = self.history.len() - HISTORY_MAX;
                self.history.drain(..cut);
            }
        }
        self.members = members;
        self.evaluated_at = at;
    }
}

fn new_generation() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ (N.fetch_add(1, Ordering::Relaxed) << 48) ^ u64::from(std::process::id())
}

fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join("cohorts").join(format!("{name}.cohort"))
}

fn encode(name: &str, c: &Cohort) -> Result<Vec<u8>> {
    let mut body = Vec::with_capacity(c.members.serialized_size() + 64);
    body.push(u8::from(c.is_live()));
    body.extend_from_slice(&c.generation.to_le_bytes());
    body.extend_from_slice(&c.evaluated_at.to_le_bytes());
    let def = c.definition.as_deref().unwrap_or("");
    body.extend_from_slice(&(def.len() as u32).to_le_bytes());
    body.extend_from_slice(def.as_bytes());
    body.extend_from_slice(&(c.history.len() as u32).to_le_bytes());
    for &(t, n) in &c.history {
        body.extend_from_slice(&t.to_le_bytes());
        body.extend_from_slice(&n.to_le_bytes());
    }
    c.members
        .serialize_into(&mut body)
        .map_err(|e| Error::Invalid(format!("cohort {name}: {e}")))?;
    let mut bytes = Vec::with_capacity(body.len() + 12);
    bytes.extend_from_slice(COHORT_MAGIC2);
    bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// Reads little-endian fields off the front of a slice.
struct Reader<'a> {
    b: &'a [u8],
    p: &'a Path,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.b.len() < n {
            return Err(Error::corrupt(self.p, "cohort file ends early"));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u32(&mut self) -> Result<u32> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    fn u64(&mut self) -> Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
}

fn decode(p: &Path, bytes: &[u8]) -> Result<Cohort> {
    if bytes.len() < 12 || (&bytes[..8] != COHORT_MAGIC && &bytes[..8] != COHORT_MAGIC2) {
        return Err(Error::corrupt(p, "not a Footprint cohort (bad magic)"));
    }
    let crc = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    let body = &bytes[12..];
    if crc32fast::hash(body) != crc {
        return Err(Error::corrupt(p, "checksum mismatch"));
    }
    let members = |b: &[u8]| {
        RoaringBitmap::deserialize_from(b).map_err(|e| Error::corrupt(p, format!("members: {e}")))
    };
    if &bytes[..8] == COHORT_MAGIC {
        let members = members(body)?;
        return Ok(Cohort {
            definition: None,
            generation: 0,
            evaluated_at: 0,
            history: Vec::new(),
            members,
        });
    }
    let mut r = Reader { b: body, p };
    let live = match r.take(1)?[0] {
        0 => false,
        1 => true,
        k => return Err(Error::corrupt(p, format!("unknown cohort kind {k}"))),
    };
    let generation = r.u64()?;
    let evaluated_at = r.u64()? as i64;
    let n = r.u32()? as usize;
    let def = std::str::from_utf8(r.take(n)?)
        .map_err(|_| Error::corrupt(p, "definition is not UTF-8"))?
        .to_owned();
    let h = r.u32()? as usize;
    if h > HISTORY_MAX || h * 16 > r.b.len() {
        return Err(Error::corrupt(p, format!("history of {h} points")));
    }
    let mut history = Vec::with_capacity(h);
    for _ in 0..h {
        history.push((r.u64()? as i64, r.u64()?));
    }
    Ok(Cohort {
        definition: live.then_some(def),
        generation,
        evaluated_at,
        history,
        members: members(r.b)?,
    })
}

/// Saves (or replaces) cohort `name` under the data directory `dir`.
pub fn put(dir: &Path, name: &str, cohort: &Cohort) -> Result<()> {
    check_name(name).map_err(Error::Invalid)?;
    let cdir = dir.join("cohorts");
    crate::fsutil::ensure_dir(&cdir)?;
    let bytes = encode(name, cohort)?;
    crate::fsutil::write_atomic(&path(dir, name), &bytes)
}

/// Saves (or replaces) cohort `name` as a static set of members.
pub fn save(dir: &Path, name: &str, members: &RoaringBitmap) -> Result<()> {
    put(dir, name, &Cohort::new(None, members.clone(), now_ms()))
}

/// Loads cohort `name`; `None` if there is none by that name. A damaged
/// file is an error naming it.
pub fn get(dir: &Path, name: &str) -> Result<Option<Cohort>> {
    check_name(name).map_err(Error::Invalid)?;
    let p = path(dir, name);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).at(&p),
    };
    decode(&p, &bytes).map(Some)
}

/// The members of cohort `name` as last saved; `None` if there is none.
pub fn load(dir: &Path, name: &str) -> Result<Option<RoaringBitmap>> {
    Ok(get(dir, name)?.map(|c| c.members))
}

/// Deletes cohort `name` durably; false if there was none.
pub fn delete(dir: &Path, name: &str) -> Result<bool> {
    check_name(name).map_err(Error::Invalid)?;
    let p = path(dir, name);
    match std::fs::remove_file(&p) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).at(&p),
    }
    crate::fsutil::sync_dir(&dir.join("cohorts"))?;
    Ok(true)
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

/// Now, in epoch milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
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
        assert!(delete(dir.path(), "at_risk").unwrap());
        assert!(!delete(dir.path(), "at_risk").unwrap());
        assert!(list(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn live_cohorts_keep_definition_and_a_bounded_history() {
        let dir = tempfile::tempdir().unwrap();
        let def = r#"{"kind":"users"}"#.to_string();
        let mut c = Cohort::new(Some(def.clone()), [1u32, 2].into_iter().collect(), 1000);
        // Same size soon after: no new point; a new size: a point.
        c.evaluated([1u32, 3].into_iter().collect(), 2000);
        assert_eq!(c.history, vec![(1000, 2)]);
        for i in 0..(HISTORY_MAX as i64 + 10) {
            c.evaluated((0..(i as u32 % 7)).collect(), 3000 + i);
        }
        assert_eq!(c.history.len(), HISTORY_MAX);
        put(dir.path(), "live", &c).unwrap();
        let back = get(dir.path(), "live").unwrap().unwrap();
        assert_eq!(back, c);
        assert_eq!(back.definition.as_deref(), Some(def.as_str()));
    }

    #[test]
    fn version_1_files_read_as_static() {
        let dir = tempfile::tempdir().unwrap();
        let members: RoaringBitmap = [7u32, 9].into_iter().collect();
        let mut body = Vec::new();
        members.serialize_into(&mut body).unwrap();
        let mut bytes = COHORT_MAGIC.to_vec();
        bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        bytes.extend_from_slice(&body);
        std::fs::create_dir_all(dir.path().join("cohorts")).unwrap();
        std::fs::write(path(dir.path(), "old"), bytes).unwrap();
        let c = get(dir.path(), "old").unwrap().unwrap();
        assert!(!c.is_live());
        assert_eq!(c.members, members);
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
