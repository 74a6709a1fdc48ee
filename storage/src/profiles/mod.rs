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
use crate::event::{Alias, ProfileUpdate};
use crate::value::Value;

/// Magic bytes of a profile snapshot keyed by user name (format 1, read).
pub const PROFILE_MAGIC: &[u8; 8] = b"FPPROF01";
/// Magic bytes of a profile snapshot keyed by dense user id (format 2,
/// written).
pub const PROFILE_MAGIC_V2: &[u8; 8] = b"FPPROF02";

/// One user's properties.
pub type PropMap = BTreeMap<String, Value>;

mod base;
mod ops;

pub use base::{write_merged, ProfileBase, BASE_MAGIC};
pub use ops::apply_ops;

const CHUNK: usize = 1024;

/// 1,024 users' slots of an [`Overlay`].
type Chunk = Arc<Vec<Option<Arc<PropMap>>>>;

/// Whole profiles of the users changed since the base was written, by
/// dense user id, copy-on-write in chunks of 1,024 users. An empty map is
/// a user whose profile was emptied.
#[derive(Debug, Clone, Default)]
pub struct Overlay {
    chunks: Vec<Option<Chunk>>,
    count: usize,
}

impl Overlay {
    /// The whole profile of changed user `uid` (empty: emptied).
    pub fn get(&self, uid: u32) -> Option<&Arc<PropMap>> {
        let u = uid as usize;
        self.chunks
            .get(u / CHUNK)?
            .as_ref()?
            .get(u % CHUNK)?
            .as_ref()
    }

    fn set(&mut self, uid: u32, props: Arc<PropMap>) {
        *self.slot(uid) = Some(props);
    }

    /// User `uid`'s slot, counted as held once this returns: the caller
    /// fills an empty one.
    fn slot(&mut self, uid: u32) -> &mut Option<Arc<PropMap>> {
        let u = uid as usize;
        let (c, i) = (u / CHUNK, u % CHUNK);
        if self.chunks.len() <= c {
            self.chunks.resize_with(c + 1, || None);
        }
        let chunk = self.chunks[c].get_or_insert_with(|| Arc::new(vec![None; CHUNK]));
        let slot = &mut Arc::make_mut(chunk)[i];
        if slot.is_none() {
            self.count += 1;
        }
        slot
    }

    /// Users it holds (emptied ones included).
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when it holds no user.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Every user it holds, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &PropMap)> + '_ {
        self.chunks.iter().enumerate().flat_map(|(c, chunk)| {
            chunk
                .iter()
                .flat_map(|ch| ch.iter())
                .enumerate()
                .filter_map(move |(i, p)| Some(((c * CHUNK + i) as u32, p.as_deref()?)))
        })
    }
}

/// A user's profile as a query reads it: a whole map (changed since the
/// base was written) or a row of the base.
#[derive(Debug, Clone, Copy)]
pub enum Profile<'a> {
    /// A profile held in memory.
    Map(&'a PropMap),
    /// A user's row in the base file.
    Base(&'a ProfileBase, u32),
}

impl<'a> Profile<'a> {
    /// Property `name`.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        match *self {
            Profile::Map(m) => m.get(name),
            Profile::Base(b, uid) => b.get(uid, name),
        }
    }

    /// Every property, as a map.
    pub fn to_map(&self) -> PropMap {
        match *self {
            Profile::Map(m) => m.clone(),
            Profile::Base(b, uid) => b.row(uid),
        }
    }
}

/// The whole profiles of the users of an import (by ascending user id,
/// each with its updates in order), each started from its profile in
/// `changes` or else in `base`.
pub fn apply_import(
    base: Option<&ProfileBase>,
    changes: &Overlay,
    import: &[(u32, Vec<ProfileUpdate>)],
) -> Vec<(u32, PropMap)> {
    import
        .iter()
        .map(|(uid, ups)| {
            let mut p = match changes.get(*uid) {
                Some(m) => PropMap::clone(m),
                None => match base {
                    Some(b) if b.has_user(*uid) => b.row(*uid),
                    _ => PropMap::new(),
                },
            };
            for u in ups {
                apply_ops(&mut p, u);
            }
            (*uid, p)
        })
        .collect()
}

/// The changes a merge writes: those of `changes`, and `imported` (which
/// replace them for the same user), ascending by user.
pub fn merge_changes<'a>(
    changes: &'a Overlay,
    imported: Option<&'a [(u32, PropMap)]>,
) -> Vec<(u32, &'a PropMap)> {
    let imported = imported.unwrap_or_default();
    let mut out = Vec::with_capacity(changes.len() + imported.len());
    let mut imp = imported.iter().peekable();
    for (u, p) in changes.iter() {
        while let Some((i, q)) = imp.next_if(|(i, _)| *i <= u) {
            out.push((*i, q));
        }
        if out.last().is_none_or(|&(l, _)| l != u) {
            out.push((u, p));
        }
    }
    out.extend(imp.map(|(i, q)| (*i, q)));
    out
}

/// Users in the overlay at which a flush merges it into a new base file.
pub const MERGE_AT: usize = 32_768;

/// Profiles by dense user id: a sealed base file (mapped), the overlay
/// a running merge is writing into the next base (still read), and the
/// overlay of later changes. Cloning is cheap (the overlay's chunks are
/// shared until changed), so a read snapshot takes it whole.
#[derive(Debug, Clone, Default)]
pub struct ProfileTable {
    base: Option<Arc<ProfileBase>>,
    frozen: Option<Arc<Overlay>>,
    overlay: Overlay,
    len: usize,
}

impl ProfileTable {
    /// A table over `base` (no changes yet).
    pub fn with_base(base: Option<Arc<ProfileBase>>) -> Self {
        let len = base.as_ref().map_or(0, |b| b.len());
        ProfileTable {
            base,
            frozen: None,
            overlay: Overlay::default(),
            len,
        }
    }

    /// The profile of user `uid`, if they have one.
    pub fn get(&self, uid: u32) -> Option<Profile<'_>> {
        let changed = self
            .overlay
            .get(uid)
            .or_else(|| self.frozen.as_ref()?.get(uid));
        if let Some(m) = changed {
            return (!m.is_empty()).then_some(Profile::Map(m));
        }
        let b = self.base.as_deref()?;
        b.has_user(uid).then_some(Profile::Base(b, uid))
    }

    /// Users with a profile.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no user has a profile.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Checks the base file's columns (once per file); queries call it
    /// before reading profiles, so damage is an error, not a wrong answer.
    pub fn verify(&self) -> Result<()> {
        self.base.as_ref().map_or(Ok(()), |b| b.verify())
    }

    /// The base file, if any.
    pub fn base(&self) -> Option<&Arc<ProfileBase>> {
        self.base.as_ref()
    }

    /// The changes since the base that no merge has taken yet.
    pub fn overlay(&self) -> &Overlay {
        &self.overlay
    }

    /// Applies one update to user `uid`.
    pub fn apply(&mut self, uid: u32, u: &ProfileUpdate) {
        // A user not changed yet starts from their profile in the frozen
        // overlay or the base.
        let start = match self.overlay.get(uid) {
            Some(_) => None,
            None => Some(self.get(uid).map(|p| p.to_map())),
        };
        let slot = self.overlay.slot(uid);
        let props = slot.get_or_insert_with(|| Arc::new(start.flatten().unwrap_or_default()));
        let had = !props.is_empty();
        // Changed in place unless a read snapshot shares the map.
        apply_ops(Arc::make_mut(props), u);
        let has = !props.is_empty();
        self.count(had, has);
    }

    fn count(&mut self, had: bool, has: bool) {
        match (had, has) {
            (false, true) => self.len += 1,
            (true, false) => self.len -= 1,
            _ => {}
        }
    }

    /// Sets the whole profile of `uid` (loading a snapshot of changes).
    fn put(&mut self, uid: u32, props: PropMap) {
        let had = self.get(uid).is_some();
        let has = !props.is_empty();
        self.overlay.set(uid, Arc::new(props));
        self.count(had, has);
    }

    /// Starts a merge: the overlay becomes the frozen overlay (still read)
    /// and a new one takes later changes. Returns the base and the frozen
    /// overlay to write; `None` while another merge runs.
    pub fn freeze(&mut self) -> Option<(Option<Arc<ProfileBase>>, Arc<Overlay>)> {
        if self.frozen.is_some() {
            return None;
        }
        let frozen = Arc::new(std::mem::take(&mut self.overlay));
        self.frozen = Some(frozen.clone());
        Some((self.base.clone(), frozen))
    }

    /// Ends a merge: `base` holds the old base and the frozen overlay
    /// (and, when `imported`, rows imported on top, which change the count).
    pub fn merged(&mut self, base: Arc<ProfileBase>, imported: bool) {
        self.base = Some(base);
        self.frozen = None;
        if imported {
            self.len = self.user_ids().len();
        }
    }

    /// Every changed user's whole profile as it reads now (the live
    /// overlay, later, wins over the frozen one), ascending by user.
    fn changed(&self) -> Vec<(u32, &PropMap)> {
        let mut changed: Vec<(u32, &PropMap)> = self
            .frozen
            .iter()
            .flat_map(|f| f.iter())
            .chain(self.overlay.iter())
            .collect();
        changed.reverse();
        changed.sort_by_key(|&(u, _)| u); // stable: the latest first
        changed.dedup_by_key(|&mut (u, _)| u);
        changed
    }

    /// Every profile property name with the number of users who have it:
    /// the base's column sizes, corrected by the users changed since
    /// (cost: columns × changed users, not users).
    pub fn property_counts(&self) -> BTreeMap<String, u64> {
        let mut out: BTreeMap<String, i64> = BTreeMap::new();
        if let Some(b) = &self.base {
            for (name, n) in b.column_sizes() {
                out.insert(name.to_owned(), n as i64);
            }
        }
        for (uid, p) in self.changed() {
            if let Some(b) = self.base.as_deref().filter(|b| b.has_user(uid)) {
                for name in b.names() {
                    if b.get(uid, name).is_some() {
                        *out.entry(name.to_owned()).or_default() -= 1;
                    }
                }
            }
            for k in p.keys() {
                *out.entry(k.clone()).or_default() += 1;
            }
        }
        out.into_iter()
            .filter(|&(_, n)| n > 0)
            .map(|(k, n)| (k, n as u64))
            .collect()
    }

    /// The users with a profile, ascending.
    pub fn user_ids(&self) -> Vec<u32> {
        // Changed users with whether they have a profile now.
        let changed: Vec<(u32, bool)> = self
            .changed()
            .into_iter()
            .map(|(u, p)| (u, !p.is_empty()))
            .collect();
        let mut out = Vec::with_capacity(self.len);
        let mut ch = changed.iter().peekable();
        for u in self.base.iter().flat_map(|b| b.users()) {
            while let Some(&&(c, has)) = ch.peek() {
                if c > u {
                    break;
                }
                if has {
                    out.push(c);
                }
                ch.next();
                if c == u {
                    break;
                }
            }
            if out.last() != Some(&u) && changed.binary_search_by_key(&u, |&(c, _)| c).is_err() {
                out.push(u);
            }
        }
        out.extend(ch.filter(|&&(_, has)| has).map(|&(c, _)| c));
        out
    }

    /// Every profile, by ascending user id (each materialised).
    pub fn iter(&self) -> impl Iterator<Item = (u32, PropMap)> + '_ {
        self.user_ids()
            .into_iter()
            .filter_map(|u| Some((u, self.get(u)?.to_map())))
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

/// Writes a snapshot of the changes of `profiles` since its base (each a
/// whole profile; an empty one is a profile emptied since) and of
/// `aliases`, keyed by user id (format 2: temp file, fsync, rename, fsync
/// dir). A format 2 file without a base is a snapshot of every profile.
pub fn save_snapshot(path: &Path, profiles: &Overlay, aliases: &Aliases) -> Result<()> {
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

/// Loads a snapshot of either format over `base`. `user_count` bounds
/// the user ids of a format 2 file; a format 1 file names its users, and
/// `intern` gives their ids.
pub fn load_snapshot(
    path: &Path,
    base: Option<Arc<ProfileBase>>,
    user_count: usize,
    mut intern: impl FnMut(&str) -> u32,
) -> Result<(ProfileTable, Aliases)> {
    let data = std::fs::read(path).at(path)?;
    let bad = |why: String| Error::corrupt(PathBuf::from(path), why);
    if data.len() >= 8 && &data[..8] == PROFILE_MAGIC {
        let p = Profiles::load(path)?;
        let mut table = ProfileTable::with_base(base);
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
        let mut table = ProfileTable::with_base(base.clone());
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
    use crate::event::ProfileOp;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        Update(u32, ProfileOp, String, Value),
        /// A flush that merges into a new base.
        Merge,
        /// A flush that writes the changes, then a reopen.
        Reopen,
    }

    fn step() -> impl Strategy<Value = Step> {
        let op = prop_oneof![
            Just(ProfileOp::Set),
            Just(ProfileOp::SetOnce),
            Just(ProfileOp::Unset),
            Just(ProfileOp::Add),
            Just(ProfileOp::Append),
            Just(ProfileOp::Union),
            Just(ProfileOp::Remove),
        ];
        let value = prop_oneof![
            (0i64..4).prop_map(Value::Int),
            prop::sample::select(vec!["a", "b", "[\"a\"]"]).prop_map(|s| Value::Str(s.into())),
            Just(Value::Float(0.5)),
            any::<bool>().prop_map(Value::Bool),
        ];
        prop_oneof![
            8 => (0u32..40, op, prop::sample::select(vec!["plan", "n", "tags"]), value)
                .prop_map(|(u, op, k, v)| Step::Update(u, op, k.to_owned(), v)),
            1 => Just(Step::Merge),
            1 => Just(Step::Reopen),
        ]
    }

    proptest! {
        /// The table (base file, frozen and live overlays, snapshot files)
        /// always reads like a plain map of maps updated in order.
        #[test]
        fn table_equals_a_plain_model(steps in prop::collection::vec(step(), 1..80)) {
            let dir = tempfile::tempdir().unwrap();
            let mut model: BTreeMap<u32, PropMap> = BTreeMap::new();
            let mut table = ProfileTable::default();
            for (n, s) in steps.into_iter().enumerate() {
                match s {
                    Step::Update(uid, op, k, v) => {
                        let u = ProfileUpdate { user: String::new(), op, props: vec![(k, v)] };
                        let m = model.entry(uid).or_default();
                        apply_ops(m, &u);
                        if m.is_empty() {
                            model.remove(&uid);
                        }
                        table.apply(uid, &u);
                    }
                    Step::Merge => {
                        let (base, frozen) = table.freeze().unwrap();
                        // Reads during the merge see the frozen changes.
                        prop_assert_eq!(table.len(), model.len());
                        let path = dir.path().join(format!("{n}.pcol"));
                        let changes: Vec<_> = frozen.iter().collect();
                        write_merged(&path, base.as_deref(), &changes).unwrap();
                        table.merged(Arc::new(ProfileBase::open(&path).unwrap()), false);
                    }
                    Step::Reopen => {
                        let path = dir.path().join(format!("{n}.prof"));
                        save_snapshot(&path, table.overlay(), &Aliases::default()).unwrap();
                        let base = table.base().cloned();
                        table = load_snapshot(&path, base, 40, |_| 0).unwrap().0;
                    }
                }
                prop_assert_eq!(table.len(), model.len());
            }
            table.verify().unwrap();
            let got: BTreeMap<u32, PropMap> = table.iter().collect();
            prop_assert_eq!(&got, &model);
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            for p in model.values() {
                for k in p.keys() {
                    *counts.entry(k.clone()).or_default() += 1;
                }
            }
            prop_assert_eq!(table.property_counts(), counts);
            for uid in 0..40 {
                let p = table.get(uid);
                prop_assert_eq!(p.is_some(), model.contains_key(&uid));
                for k in ["plan", "n", "tags"] {
                    prop_assert_eq!(
                        p.and_then(|p| p.get(k)),
                        model.get(&uid).and_then(|m| m.get(k))
                    );
                }
            }
        }
    }

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
