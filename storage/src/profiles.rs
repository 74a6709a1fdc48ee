//! User profiles (CRM data synced in: plan, industry, CSM owner…) and
//! identity aliases, persisted as a snapshot file per flush.
//!
//! In memory they live in a [`ProfileTable`] and an [`Aliases`] keyed by
//! dense user id. Both are copy-on-write: a read snapshot takes them in
//! O(users / 1024) pointer copies, and a later update copies only the
//! chunk it changes, so queries never copy profiles and never read them
//! under a lock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::codec::{Dec, Enc};
use crate::error::{Error, IoContext, Result};
use crate::event::{Alias, ProfileOp, ProfileUpdate};
use crate::value::Value;

/// Magic bytes of a profile snapshot keyed by user name (format 1, read).
pub const PROFILE_MAGIC: &[u8; 8] = b"FPPROF01";
/// Magic bytes of a profile snapshot keyed by dense user id (format 2,
/// written).
pub const PROFILE_MAGIC_V2: &[u8; 8] = b"FPPROF02";

/// One user's properties.
pub type PropMap = BTreeMap<String, Value>;

/// Applies one update to one user's properties.
fn apply_ops(p: &mut PropMap, u: &ProfileUpdate) {
    for (k, v) in &u.props {
        match u.op {
            ProfileOp::Set => {
                p.insert(k.clone(), v.clone());
            }
            ProfileOp::SetOnce => {
                p.entry(k.clone()).or_insert_with(|| v.clone());
            }
            ProfileOp::Unset => {
                p.remove(k);
            }
            ProfileOp::Add => {
                let cur = p.get(k).cloned();
                let next = match (cur, v) {
                    (Some(Value::Int(a)), Value::Int(b)) => match a.checked_add(*b) {
                        Some(s) => Value::Int(s),
                        None => Value::Float(a as f64 + *b as f64),
                    },
                    (None, Value::Int(b)) => Value::Int(*b),
                    (cur, v) => {
                        // A non-numeric current value is replaced: `add`
                        // defines the property as a counter.
                        let a = cur.and_then(|c| c.as_f64()).unwrap_or(0.0);
                        Value::Float(a + v.as_f64().unwrap_or(0.0))
                    }
                };
                p.insert(k.clone(), next);
            }
        }
    }
}

const CHUNK: usize = 1024;

/// Profiles by dense user id, copy-on-write in chunks of 1,024 users.
#[derive(Debug, Clone, Default)]
pub struct ProfileTable {
    chunks: Vec<Arc<Vec<Option<Arc<PropMap>>>>>,
    len: usize,
}

impl ProfileTable {
    /// The properties of user `uid`, if they have any.
    pub fn get(&self, uid: u32) -> Option<&PropMap> {
        let u = uid as usize;
        self.chunks.get(u / CHUNK)?.get(u % CHUNK)?.as_deref()
    }

    /// Users with a profile.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no user has a profile.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Applies one update to user `uid`.
    pub fn apply(&mut self, uid: u32, u: &ProfileUpdate) {
        let u_ = uid as usize;
        let (c, i) = (u_ / CHUNK, u_ % CHUNK);
        if self.chunks.len() <= c {
            self.chunks
                .resize_with(c + 1, || Arc::new(vec![None; CHUNK]));
        }
        let chunk = Arc::make_mut(&mut self.chunks[c]);
        let slot = &mut chunk[i];
        let had = slot.is_some();
        let mut props = slot.take().unwrap_or_default();
        apply_ops(Arc::make_mut(&mut props), u);
        if !props.is_empty() {
            *slot = Some(props);
        }
        match (had, slot.is_some()) {
            (false, true) => self.len += 1,
            (true, false) => self.len -= 1,
            _ => {}
        }
    }

    /// Replaces the properties of user `uid` (loading a snapshot).
    fn put(&mut self, uid: u32, props: PropMap) {
        let u = uid as usize;
        let (c, i) = (u / CHUNK, u % CHUNK);
        if self.chunks.len() <= c {
            self.chunks
                .resize_with(c + 1, || Arc::new(vec![None; CHUNK]));
        }
        let slot = &mut Arc::make_mut(&mut self.chunks[c])[i];
        match (slot.is_some(), props.is_empty()) {
            (false, false) => self.len += 1,
            (true, true) => self.len -= 1,
            _ => {}
        }
        *slot = (!props.is_empty()).then(|| Arc::new(props));
    }

    /// Every profile, by ascending user id.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &PropMap)> + '_ {
        self.chunks.iter().enumerate().flat_map(|(c, chunk)| {
            chunk
                .iter()
                .enumerate()
                .filter_map(move |(i, p)| Some(((c * CHUNK + i) as u32, p.as_deref()?)))
        })
    }
}

/// Identity links by dense user id: anonymous id → known id.
#[derive(Debug, Clone, Default)]
pub struct Aliases {
    next: BTreeMap<u32, u32>,
    groups: OnceLock<Arc<AliasGroups>>,
}

/// The people with more than one id.
#[derive(Debug, Default)]
pub struct AliasGroups {
    /// Each person's final known id (following chains) and every id that
    /// is that person, the known id first.
    pub groups: Vec<(u32, Vec<u32>)>,
    /// Every id in `groups`.
    pub members: roaring::RoaringBitmap,
}

impl Aliases {
    /// Records that `anonymous` is `known`.
    pub fn link(&mut self, anonymous: u32, known: u32) {
        self.next.insert(anonymous, known);
        self.groups = OnceLock::new();
    }

    /// Number of links.
    pub fn len(&self) -> usize {
        self.next.len()
    }

    /// True without links.
    pub fn is_empty(&self) -> bool {
        self.next.is_empty()
    }

    /// Every link, by ascending anonymous id.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.next.iter().map(|(&a, &k)| (a, k))
    }

    /// The people with more than one id, computed once per set of links,
    /// on first use.
    pub fn groups(&self) -> Arc<AliasGroups> {
        self.groups
            .get_or_init(|| {
                let groups = self.compute_groups();
                let members = groups.iter().flat_map(|(_, m)| m.iter().copied()).collect();
                Arc::new(AliasGroups { groups, members })
            })
            .clone()
    }

    fn compute_groups(&self) -> Vec<(u32, Vec<u32>)> {
        let canonical = |mut u: u32| {
            let mut seen = 0;
            while let Some(&n) = self.next.get(&u) {
                if n == u {
                    break;
                }
                u = n;
                seen += 1;
                if seen > 64 {
                    break; // a cycle: stop anywhere, deterministically
                }
            }
            u
        };
        let mut groups: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for (&a, &k) in &self.next {
            if a == k {
                continue;
            }
            let c = canonical(a);
            let g = groups.entry(c).or_insert_with(|| vec![c]);
            if !g.contains(&a) {
                g.push(a);
            }
        }
        groups.into_iter().filter(|(_, m)| m.len() > 1).collect()
    }
}

/// Writes a snapshot of `profiles` and `aliases` keyed by user id
/// (format 2: temp file, fsync, rename, fsync dir).
pub fn save_snapshot(path: &Path, profiles: &ProfileTable, aliases: &Aliases) -> Result<()> {
    let mut e = Enc::new();
    e.var(profiles.len() as u64);
    for (uid, props) in profiles.iter() {
        e.var(u64::from(uid));
        e.var(props.len() as u64);
        for (k, v) in props {
            e.str(k);
            e.value(v);
        }
    }
    e.var(aliases.len() as u64);
    for (a, k) in aliases.iter() {
        e.var(u64::from(a));
        e.var(u64::from(k));
    }
    let mut bytes = PROFILE_MAGIC_V2.to_vec();
    bytes.extend_from_slice(&crate::wal::frame(&e.buf));
    crate::fsutil::write_atomic(path, &bytes)
}

/// Loads a snapshot of either format. `users` names the users of a
/// format 2 file (ids must be below `users.len()`); a format 1 file names
/// its users, and `intern` gives their ids.
pub fn load_snapshot(
    path: &Path,
    user_count: usize,
    mut intern: impl FnMut(&str) -> u32,
) -> Result<(ProfileTable, Aliases)> {
    let data = std::fs::read(path).at(path)?;
    let bad = |why: String| Error::corrupt(PathBuf::from(path), why);
    if data.len() >= 8 && &data[..8] == PROFILE_MAGIC {
        let p = Profiles::load(path)?;
        let mut table = ProfileTable::default();
        let mut aliases = Aliases::default();
        for (user, props) in p.users {
            table.put(intern(&user), props);
        }
        for (a, k) in &p.aliases {
            let (a, k) = (intern(a), intern(k));
            aliases.link(a, k);
        }
        return Ok((table, aliases));
    }
    let payload = framed_payload(path, &data, PROFILE_MAGIC_V2)?;
    let mut d = Dec::new(payload);
    let parse = |d: &mut Dec<'_>| -> std::result::Result<(ProfileTable, Aliases), String> {
        let uid = |d: &mut Dec<'_>, what: &str| -> std::result::Result<u32, String> {
            let v = d.var().map_err(|e| e.to_string())?;
            if v >= user_count as u64 {
                return Err(format!(
                    "{what} {v} is not a known user ({user_count} users)"
                ));
            }
            Ok(v as u32)
        };
        let mut table = ProfileTable::default();
        let n = d
            .len(d.remaining(), "user count")
            .map_err(|e| e.to_string())?;
        for _ in 0..n {
            let u = uid(d, "user id")?;
            let np = d
                .len(d.remaining(), "property count")
                .map_err(|e| e.to_string())?;
            let mut props = PropMap::new();
            for _ in 0..np {
                let k = d.str().map_err(|e| e.to_string())?.to_owned();
                props.insert(k, d.value().map_err(|e| e.to_string())?);
            }
            table.put(u, props);
        }
        let mut aliases = Aliases::default();
        let na = d
            .len(d.remaining(), "alias count")
            .map_err(|e| e.to_string())?;
        for _ in 0..na {
            let a = uid(d, "anonymous id")?;
            let k = uid(d, "known id")?;
            aliases.link(a, k);
        }
        if !d.is_empty() {
            return Err("trailing bytes".into());
        }
        Ok((table, aliases))
    };
    parse(&mut d).map_err(bad)
}

/// The checked payload of a `magic frame(payload)` file.
fn framed_payload<'a>(path: &Path, data: &'a [u8], magic: &[u8; 8]) -> Result<&'a [u8]> {
    let bad = |why: String| Error::corrupt(PathBuf::from(path), why);
    if data.len() < 16 || &data[..8] != magic {
        return Err(bad("not a Footprint profile snapshot".into()));
    }
    let len = u32::from_le_bytes([data[8], data[9], data[10], data[11]]) as usize;
    let crc = u32::from_le_bytes([data[12], data[13], data[14], data[15]]);
    if data.len() != 16 + len {
        return Err(bad(format!(
            "length {} does not match its header",
            data.len()
        )));
    }
    let got = crc32fast::hash(&data[16..]);
    if got != crc {
        return Err(Error::ChecksumMismatch {
            file: path.to_owned(),
            offset: 16,
            expected: crc,
            got,
        });
    }
    Ok(&data[16..])
}

/// All profiles and aliases, by user id string: the format 1 snapshot,
/// and a by-name view for export and tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profiles {
    /// user → property → value.
    pub users: BTreeMap<String, BTreeMap<String, Value>>,
    /// anonymous id → known id.
    pub aliases: BTreeMap<String, String>,
}

impl Profiles {
    /// Applies one update.
    pub fn apply(&mut self, u: &ProfileUpdate) {
        let p = self.users.entry(u.user.clone()).or_default();
        apply_ops(p, u);
        if p.is_empty() {
            self.users.remove(&u.user);
        }
    }

    /// Records an identity link.
    pub fn alias(&mut self, a: &Alias) {
        self.aliases.insert(a.anonymous.clone(), a.known.clone());
    }

    /// The profile of `user`.
    pub fn get(&self, user: &str) -> Option<&BTreeMap<String, Value>> {
        self.users.get(user)
    }

    /// Writes a snapshot file (temp, fsync, rename, fsync dir).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut e = Enc::new();
        e.var(self.users.len() as u64);
        for (u, props) in &self.users {
            e.str(u);
            e.var(props.len() as u64);
            for (k, v) in props {
                e.str(k);
                e.value(v);
            }
        }
        e.var(self.aliases.len() as u64);
        for (a, k) in &self.aliases {
            e.str(a);
            e.str(k);
        }
        let mut bytes = PROFILE_MAGIC.to_vec();
        bytes.extend_from_slice(&crate::wal::frame(&e.buf));
        crate::fsutil::write_atomic(path, &bytes)
    }

    /// Loads a snapshot file of format 1.
    pub fn load(path: &Path) -> Result<Profiles> {
        let data = std::fs::read(path).at(path)?;
        let bad = |why: String| Error::corrupt(PathBuf::from(path), why);
        let payload = framed_payload(path, &data, PROFILE_MAGIC)?;
        let mut d = Dec::new(payload);
        let parse = |d: &mut Dec<'_>| -> std::result::Result<Profiles, crate::codec::DecodeError> {
            let mut p = Profiles::default();
            let n = d.len(d.remaining(), "user count")?;
            for _ in 0..n {
                let u = d.str()?.to_owned();
                let np = d.len(d.remaining(), "property count")?;
                let mut props = BTreeMap::new();
                for _ in 0..np {
                    let k = d.str()?.to_owned();
                    props.insert(k, d.value()?);
                }
                p.users.insert(u, props);
            }
            let na = d.len(d.remaining(), "alias count")?;
            for _ in 0..na {
                let a = d.str()?.to_owned();
                let k = d.str()?.to_owned();
                p.aliases.insert(a, k);
            }
            Ok(p)
        };
        parse(&mut d).map_err(|e| bad(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(op: ProfileOp, k: &str, v: Value) -> ProfileUpdate {
        ProfileUpdate {
            user: "u".into(),
            op,
            props: vec![(k.into(), v)],
        }
    }

    #[test]
    fn ops() {
        let mut p = Profiles::default();
        p.apply(&up(ProfileOp::Set, "plan", Value::Str("free".into())));
        p.apply(&up(ProfileOp::SetOnce, "plan", Value::Str("pro".into())));
        p.apply(&up(ProfileOp::SetOnce, "first", Value::Int(1)));
        p.apply(&up(ProfileOp::Add, "n", Value::Int(2)));
        p.apply(&up(ProfileOp::Add, "n", Value::Int(3)));
        p.apply(&up(ProfileOp::Add, "x", Value::Float(0.5)));
        let u = p.get("u").unwrap();
        assert_eq!(u["plan"], Value::Str("free".into()));
        assert_eq!(u["first"], Value::Int(1));
        assert_eq!(u["n"], Value::Int(5));
        assert_eq!(u["x"], Value::Float(0.5));
        p.apply(&up(ProfileOp::Unset, "plan", Value::Bool(true)));
        assert!(!p.get("u").unwrap().contains_key("plan"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.prof");
        p.alias(&Alias {
            anonymous: "c".into(),
            known: "u".into(),
        });
        p.save(&path).unwrap();
        assert_eq!(Profiles::load(&path).unwrap(), p);
    }
}
