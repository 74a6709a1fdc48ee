//! The profile base: every profile as of the last merge, one column per
//! property name, in a sealed, memory-mapped file.
//!
//! Opening reads the footer and the column directory only; a column's
//! bytes are checked (CRC, order, bounds) and its value dictionary decoded
//! the first time something reads it. A user's value is a binary search in
//! the column's user ids and an index into the dictionary, so a lookup
//! returns a reference and costs no allocation.
//!
//! File layout (little-endian; `storage/FORMAT.md`, profile base):
//! ```text
//! "FPPCOL01"
//! sections…                       (users, then per column: uids, idx, dict)
//! header                          (Enc: see `Header`)
//! u32 header length, u32 header crc32, "FPPCOL01"
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use memmap2::Mmap;

use crate::codec::{Dec, Enc};
use crate::error::{Error, Result};
use crate::value::Value;

use super::PropMap;

/// Magic bytes at both ends of a profile base file.
pub const BASE_MAGIC: &[u8; 8] = b"FPPCOL01";

/// A byte range of the file with its checksum.
#[derive(Debug, Clone, Copy, Default)]
struct Section {
    offset: usize,
    len: usize,
    crc: u32,
}

/// One property's column: the users that have it (ascending), and per
/// user an index into the column's dictionary of distinct values.
#[derive(Debug)]
struct Column {
    name: String,
    entries: usize,
    uids: Section,
    idx: Section,
    dict: Section,
    dict_len: usize,
    /// Checksums, order and bounds, checked on first use.
    checked: OnceLock<std::result::Result<(), String>>,
    /// The decoded dictionary (first read).
    values: OnceLock<Vec<Value>>,
}

/// A sealed profile base file, mapped.
#[derive(Debug)]
pub struct ProfileBase {
    path: PathBuf,
    map: Mmap,
    users: Section,
    user_count: usize,
    users_checked: OnceLock<std::result::Result<(), String>>,
    columns: Vec<Column>,
    by_name: rustc_hash::FxHashMap<String, usize>,
    /// The users, as a bitmap (built on first use: membership in a few
    /// nanoseconds instead of a binary search).
    user_set: OnceLock<roaring::RoaringBitmap>,
}

fn u32_at(bytes: &[u8], i: usize) -> u32 {
    let b = &bytes[i * 4..i * 4 + 4];
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Position of `uid` in an ascending array of `n` distinct u32s, if
/// present. User ids are dense, so a first guess by interpolation lands
/// near the spot; a binary search finishes within a window around it.
fn find(bytes: &[u8], n: usize, uid: u32) -> Option<usize> {
    if n == 0 {
        return None;
    }
    let (first, last) = (u32_at(bytes, 0), u32_at(bytes, n - 1));
    if uid < first || uid > last {
        return None;
    }
    let (mut lo, mut hi) = (0, n);
    if last > first {
        let guess = ((u64::from(uid - first) * (n as u64 - 1)) / u64::from(last - first)) as usize;
        // Widen a window around the guess until it holds `uid`.
        let mut w = 16usize;
        loop {
            let (a, b) = (guess.saturating_sub(w), (guess + w + 1).min(n));
            let below = a == 0 || u32_at(bytes, a) <= uid;
            let above = b == n || u32_at(bytes, b - 1) >= uid;
            if below && above {
                (lo, hi) = (a, b);
                break;
            }
            if w >= n {
                break;
            }
            w *= 4;
        }
    }
    while lo < hi {
        let mid = (lo + hi) / 2;
        match u32_at(bytes, mid).cmp(&uid) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return Some(mid),
        }
    }
    None
}

/// Checks that `n` u32s are strictly ascending.
fn ascending(bytes: &[u8], n: usize) -> bool {
    (1..n).all(|i| u32_at(bytes, i - 1) < u32_at(bytes, i))
}

impl ProfileBase {
    /// Maps `path` and reads its directory (not its columns).
    pub fn open(path: &Path) -> Result<ProfileBase> {
        let map = crate::mmap::map_sealed(path)?;
        let bad = |why: String| Error::corrupt(path, why);
        let n = map.len();
        if n < 8 + 16 || &map[..8] != BASE_MAGIC || &map[n - 8..] != BASE_MAGIC {
            return Err(bad("not a Footprint profile base file".into()));
        }
        let hlen = u32_at(&map[n - 16..n - 12], 0) as usize;
        let hcrc = u32_at(&map[n - 12..n - 8], 0);
        if hlen > n - 24 {
            return Err(bad(format!("header length {hlen} exceeds the file")));
        }
        let header = &map[n - 16 - hlen..n - 16];
        let got = crc32fast::hash(header);
        if got != hcrc {
            return Err(Error::ChecksumMismatch {
                file: path.to_owned(),
                offset: (n - 16 - hlen) as u64,
                expected: hcrc,
                got,
            });
        }
        let body = n - 16 - hlen;
        let mut d = Dec::new(header);
        let parse = |d: &mut Dec<'_>| -> std::result::Result<_, String> {
            let e = |x: crate::codec::DecodeError| x.to_string();
            let section = |d: &mut Dec<'_>, want: Option<usize>| {
                let s = Section {
                    offset: d.var().map_err(e)? as usize,
                    len: d.var().map_err(e)? as usize,
                    crc: d.u32().map_err(e)?,
                };
                if s.offset < 8 || s.offset.checked_add(s.len).is_none_or(|end| end > body) {
                    return Err(format!("a section lies outside the file body ({s:?})"));
                }
                if want.is_some_and(|w| w != s.len) {
                    return Err(format!("a section has {} bytes, expected {want:?}", s.len));
                }
                Ok(s)
            };
            let user_count = d.len(body / 4, "user count").map_err(e)?;
            let users = section(d, Some(user_count * 4))?;
            let ncols = d.len(d.remaining(), "column count").map_err(e)?;
            let mut columns = Vec::with_capacity(ncols);
            let mut by_name = rustc_hash::FxHashMap::default();
            for i in 0..ncols {
                let name = d.str().map_err(e)?.to_owned();
                let entries = d.len(user_count, "column entries").map_err(e)?;
                let uids = section(d, Some(entries * 4))?;
                let idx = section(d, Some(entries * 4))?;
                let dict_len = d.len(entries, "dictionary length").map_err(e)?;
                let dict = section(d, None)?;
                if by_name.insert(name.clone(), i).is_some() {
                    return Err(format!("column \"{name}\" appears twice"));
                }
                columns.push(Column {
                    name,
                    entries,
                    uids,
                    idx,
                    dict,
                    dict_len,
                    checked: OnceLock::new(),
                    values: OnceLock::new(),
                });
            }
            if !d.is_empty() {
                return Err("trailing bytes in the header".into());
            }
            Ok((users, user_count, columns, by_name))
        };
        let (users, user_count, columns, by_name) = parse(&mut d).map_err(bad)?;
        Ok(ProfileBase {
            path: path.to_owned(),
            map,
            users,
            user_count,
            users_checked: OnceLock::new(),
            columns,
            by_name,
            user_set: OnceLock::new(),
        })
    }

    fn bytes(&self, s: Section) -> &[u8] {
        &self.map[s.offset..s.offset + s.len]
    }

    /// Checks a section's checksum, then lets go of its pages (they stay
    /// in the page cache), so checking a large base costs no memory.
    fn check(&self, s: Section) -> std::result::Result<(), String> {
        let got = crc32fast::hash(self.bytes(s));
        crate::mmap::release_range(&self.map, s.offset, s.len);
        if got != s.crc {
            return Err(format!(
                "checksum mismatch at byte {} (expected {:08x}, got {got:08x})",
                s.offset, s.crc
            ));
        }
        Ok(())
    }

    fn users_ok(&self) -> bool {
        self.users_checked
            .get_or_init(|| {
                self.check(self.users)?;
                if !ascending(self.bytes(self.users), self.user_count) {
                    return Err("user ids are not ascending".into());
                }
                Ok(())
            })
            .is_ok()
    }

    /// Checks column `c`'s checksums, user order and value indexes (once).
    fn column_ok<'a>(&'a self, c: &'a Column) -> std::result::Result<(), &'a str> {
        let r = c.checked.get_or_init(|| {
            self.check(c.uids)?;
            self.check(c.idx)?;
            self.check(c.dict)?;
            if !ascending(self.bytes(c.uids), c.entries) {
                return Err(format!("column \"{}\": user ids are not ascending", c.name));
            }
            let idx = self.bytes(c.idx);
            if (0..c.entries).any(|i| u32_at(idx, i) as usize >= c.dict_len) {
                return Err(format!(
                    "column \"{}\": a value index is out of range",
                    c.name
                ));
            }
            Ok(())
        });
        r.as_ref().map(|_| ()).map_err(|s| s.as_str())
    }

    /// The dictionary of column `c`: checked, then decoded on first read.
    /// A checked dictionary that does not decode (only a writer's bug can
    /// make one) reads as empty, so its values read as absent.
    fn values<'a>(&'a self, c: &'a Column) -> std::result::Result<&'a [Value], &'a str> {
        self.column_ok(c)?;
        Ok(c.values.get_or_init(|| {
            let mut d = Dec::new(self.bytes(c.dict));
            (0..c.dict_len)
                .map(|_| d.value())
                .collect::<std::result::Result<Vec<_>, _>>()
                .unwrap_or_default()
        }))
    }

    /// Checks every section (on first use of each); the first problem as
    /// an error naming the file.
    pub fn verify(&self) -> Result<()> {
        let bad = |why: String| Error::corrupt(&self.path, why);
        if !self.users_ok() {
            if let Some(Err(why)) = self.users_checked.get() {
                return Err(bad(why.clone()));
            }
        }
        for c in &self.columns {
            self.column_ok(c).map_err(|why| bad(why.to_owned()))?;
        }
        Ok(())
    }

    /// Users with a profile.
    pub fn len(&self) -> usize {
        self.user_count
    }

    /// True without profiles.
    pub fn is_empty(&self) -> bool {
        self.user_count == 0
    }

    /// Property names, in file order.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.columns.iter().map(|c| c.name.as_str())
    }

    /// Every property name with the number of users who have it.
    pub fn column_sizes(&self) -> impl Iterator<Item = (&str, usize)> + '_ {
        self.columns.iter().map(|c| (c.name.as_str(), c.entries))
    }

    /// True when `uid` has a profile here. A damaged user list reads as
    /// empty ([`verify`](Self::verify) reports it).
    pub fn has_user(&self, uid: u32) -> bool {
        self.user_set
            .get_or_init(|| {
                let mut set = roaring::RoaringBitmap::new();
                // Ascending (checked by `users`): appended in runs.
                let _ = set.append(self.users());
                set
            })
            .contains(uid)
    }

    /// Users with a profile, ascending.
    pub fn users(&self) -> impl Iterator<Item = u32> + '_ {
        let n = if self.users_ok() { self.user_count } else { 0 };
        let b = self.bytes(self.users);
        (0..n).map(move |i| u32_at(b, i))
    }

    /// Property `name` of user `uid`. A damaged column reads as absent
    /// ([`verify`](Self::verify), which queries call first, reports it).
    pub fn get(&self, uid: u32, name: &str) -> Option<&Value> {
        let c = &self.columns[*self.by_name.get(name)?];
        let values = self.values(c).ok()?;
        let i = find(self.bytes(c.uids), c.entries, uid)?;
        values.get(u32_at(self.bytes(c.idx), i) as usize)
    }

    /// Every property of user `uid`.
    pub fn row(&self, uid: u32) -> PropMap {
        self.columns
            .iter()
            .filter_map(|c| Some((c.name.clone(), self.get(uid, &c.name)?.clone())))
            .collect()
    }

    /// Every (user, dictionary index) of column `c`, ascending by user,
    /// with the decoded dictionary.
    #[allow(clippy::type_complexity)]
    fn column_entries<'a>(
        &'a self,
        c: &'a Column,
    ) -> Result<(&'a [Value], impl Iterator<Item = (u32, u32)> + 'a)> {
        let values = self
            .values(c)
            .map_err(|why| Error::corrupt(&self.path, why.to_owned()))?;
        if values.len() != c.dict_len {
            return Err(Error::corrupt(
                &self.path,
                format!("column \"{}\": its values do not decode", c.name),
            ));
        }
        let (uids, idx) = (self.bytes(c.uids), self.bytes(c.idx));
        Ok((
            values,
            (0..c.entries).map(move |i| (u32_at(uids, i), u32_at(idx, i))),
        ))
    }
}

/// Builds one column of a new base file.
#[derive(Default)]
struct ColumnBuilder {
    uids: Vec<u8>,
    idx: Vec<u8>,
    dict: Enc,
    dict_len: u32,
    /// Encoded value → dictionary index.
    seen: HashMap<Vec<u8>, u32>,
    scratch: Enc,
}

impl ColumnBuilder {
    /// Appends `uid` with the value at dictionary index `i` (`push` gave it).
    fn push_index(&mut self, uid: u32, i: u32) {
        self.uids.extend_from_slice(&uid.to_le_bytes());
        self.idx.extend_from_slice(&i.to_le_bytes());
    }

    /// Appends `uid` with value `v`; returns its dictionary index.
    fn push(&mut self, uid: u32, v: &Value) -> u32 {
        self.scratch.buf.clear();
        self.scratch.value(v);
        let i = match self.seen.get(&self.scratch.buf) {
            Some(&i) => i,
            None => {
                let i = self.dict_len;
                self.dict.buf.extend_from_slice(&self.scratch.buf);
                self.seen.insert(self.scratch.buf.clone(), i);
                self.dict_len += 1;
                i
            }
        };
        self.push_index(uid, i);
        i
    }
}

/// Writes a base file holding `base` with `changes` applied: each change
/// is a user's whole profile (empty: the user has none any more).
/// `changes` must be ascending by user. Returns the number of users.
pub fn write_merged(
    path: &Path,
    base: Option<&ProfileBase>,
    changes: &[(u32, &PropMap)],
) -> Result<usize> {
    let empty = PropMap::new();
    // Users: base users not changed, and changed users with properties.
    let mut users: Vec<u32> = Vec::new();
    {
        let mut ch = changes.iter().peekable();
        let mut push_changes_below = |limit: Option<u32>, users: &mut Vec<u32>| {
            while let Some(&&(u, p)) = ch.peek() {
                if limit.is_some_and(|l| u > l) {
                    break;
                }
                if !p.is_empty() {
                    users.push(u);
                }
                ch.next();
                if limit == Some(u) {
                    return true;
                }
            }
            false
        };
        if let Some(b) = base {
            for u in b.users() {
                if !push_changes_below(Some(u), &mut users) {
                    users.push(u);
                }
            }
        }
        push_changes_below(None, &mut users);
    }
    // Column names: the base's and every changed profile's.
    let mut names: Vec<String> = base
        .map(|b| b.names().map(str::to_owned).collect())
        .unwrap_or_default();
    let mut known: std::collections::HashSet<String> = names.iter().cloned().collect();
    for (_, p) in changes {
        for k in p.keys() {
            if !known.contains(k) {
                known.insert(k.clone());
                names.push(k.clone());
            }
        }
    }
    let mut out = Enc::new();
    out.buf.extend_from_slice(BASE_MAGIC);
    let mut header = Enc::new();
    let section = |out: &mut Enc, header: &mut Enc, bytes: &[u8]| {
        header.var(out.buf.len() as u64);
        header.var(bytes.len() as u64);
        header.u32(crc32fast::hash(bytes));
        out.buf.extend_from_slice(bytes);
    };
    header.var(users.len() as u64);
    let user_bytes: Vec<u8> = users.iter().flat_map(|u| u.to_le_bytes()).collect();
    section(&mut out, &mut header, &user_bytes);
    drop(user_bytes);
    let mut columns = Vec::new();
    for name in &names {
        let mut b = ColumnBuilder::default();
        let (old_values, old) =
            match base.and_then(|b| b.by_name.get(name).map(|&i| (b, &b.columns[i]))) {
                Some((base, c)) => {
                    let (values, entries) = base.column_entries(c)?;
                    (values, Some(entries))
                }
                None => (&[][..], None),
            };
        // Old dictionary index → new one, as met.
        let mut remap = vec![u32::MAX; old_values.len()];
        let mut old = old.into_iter().flatten().peekable();
        for &(u, p) in changes.iter().chain(std::iter::once(&(u32::MAX, &empty))) {
            // Unchanged base users below `u` keep their value.
            while let Some(&(ou, oi)) = old.peek() {
                if ou > u {
                    break;
                }
                if ou < u {
                    let oi = oi as usize;
                    match remap[oi] {
                        u32::MAX => remap[oi] = b.push(ou, &old_values[oi]),
                        i => b.push_index(ou, i),
                    }
                }
                old.next();
            }
            if let Some(v) = p.get(name) {
                b.push(u, v);
            }
        }
        if b.dict_len > 0 {
            columns.push((name, b));
        }
    }
    header.var(columns.len() as u64);
    for (name, b) in &columns {
        header.str(name);
        header.var((b.uids.len() / 4) as u64);
        section(&mut out, &mut header, &b.uids);
        section(&mut out, &mut header, &b.idx);
        header.var(u64::from(b.dict_len));
        section(&mut out, &mut header, &b.dict.buf);
    }
    out.buf.extend_from_slice(&header.buf);
    out.u32(header.buf.len() as u32);
    out.u32(crc32fast::hash(&header.buf));
    out.buf.extend_from_slice(BASE_MAGIC);
    crate::fsutil::write_atomic(path, &out.buf)?;
    Ok(users.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The interpolating search finds exactly what a plain search
        /// finds, in dense, sparse and clustered id sets.
        #[test]
        fn find_agrees_with_a_plain_search(
            mut ids in proptest::collection::vec(0u32..5000, 0..400),
            spread in 1u32..1000,
            probes in proptest::collection::vec(0u32..6_000_000, 1..50),
        ) {
            for x in ids.iter_mut() {
                *x = x.saturating_mul(if *x % 7 == 0 { spread } else { 1 });
            }
            ids.sort_unstable();
            ids.dedup();
            let bytes: Vec<u8> = ids.iter().flat_map(|u| u.to_le_bytes()).collect();
            for p in probes.into_iter().chain(ids.iter().copied()) {
                proptest::prop_assert_eq!(find(&bytes, ids.len(), p), ids.binary_search(&p).ok());
            }
        }
    }

    fn map(kv: &[(&str, Value)]) -> PropMap {
        kv.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn merge_reads_back_and_detects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let a = map(&[("plan", Value::Str("pro".into())), ("arr", Value::Int(5))]);
        let b = map(&[("plan", Value::Str("free".into()))]);
        let p1 = dir.path().join("1.pcol");
        assert_eq!(write_merged(&p1, None, &[(3, &a), (9, &b)]).unwrap(), 2);
        let base = ProfileBase::open(&p1).unwrap();
        base.verify().unwrap();
        assert_eq!(base.row(3), a);
        assert_eq!(base.get(9, "plan"), Some(&Value::Str("free".into())));
        assert_eq!(base.get(9, "arr"), None);
        assert!(!base.has_user(4));
        // User 3 loses its profile, 5 gains one, 9 changes.
        let c = map(&[
            ("plan", Value::Str("pro".into())),
            ("seats", Value::Float(2.5)),
        ]);
        let none = PropMap::new();
        let p2 = dir.path().join("2.pcol");
        let n = write_merged(&p2, Some(&base), &[(3, &none), (5, &c), (9, &c)]).unwrap();
        assert_eq!(n, 2);
        let base2 = ProfileBase::open(&p2).unwrap();
        base2.verify().unwrap();
        assert_eq!(base2.users().collect::<Vec<_>>(), vec![5, 9]);
        assert_eq!(base2.row(9), c);
        assert_eq!(base2.row(3), PropMap::new());
        // A flipped byte in a column is found by `verify`, and the column
        // reads as absent rather than wrong.
        let mut bytes = std::fs::read(&p2).unwrap();
        bytes[20] ^= 0x55;
        let p3 = dir.path().join("3.pcol");
        std::fs::write(&p3, &bytes).unwrap();
        let broken = ProfileBase::open(&p3).unwrap();
        assert!(broken.verify().is_err());
        // Truncation is caught at open.
        std::fs::write(&p3, &bytes[..bytes.len() - 3]).unwrap();
        assert!(ProfileBase::open(&p3).is_err());
    }
}
