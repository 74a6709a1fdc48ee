//! User profiles (CRM data synced in: plan, industry, CSM owner…) and
//! identity aliases, persisted as a snapshot file per flush.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::codec::{Dec, Enc};
use crate::error::{Error, IoContext, Result};
use crate::event::{Alias, ProfileOp, ProfileUpdate};
use crate::value::Value;

/// Magic bytes opening a profile snapshot (format version 1).
pub const PROFILE_MAGIC: &[u8; 8] = b"FPPROF01";

/// All profiles and aliases, by user id string.
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

    /// Loads a snapshot file.
    pub fn load(path: &Path) -> Result<Profiles> {
        let data = std::fs::read(path).at(path)?;
        let bad = |why: String| Error::corrupt(PathBuf::from(path), why);
        if data.len() < 16 || &data[..8] != PROFILE_MAGIC {
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
        let mut d = Dec::new(&data[16..]);
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
