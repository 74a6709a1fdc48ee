//! The write-ahead log: length + CRC32 framed records, fsync'ed with group
//! commit before an ingest is acknowledged.
//!
//! Concurrent writers append their frames under a short mutex and then wait
//! for a sync that covers their frame: whichever writer reaches the sync lock
//! first fsyncs for everyone queued behind it (group commit).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::codec::{Dec, DecodeError, Enc};
use crate::error::{Error, IoContext, Result};
use crate::event::{Alias, Event, ProfileOp, ProfileUpdate};
use crate::fsutil;

/// Magic bytes opening every WAL file (format version 1).
pub const WAL_MAGIC: &[u8; 8] = b"FPWAL001";
/// Largest frame accepted when replaying.
pub const MAX_FRAME: usize = 1 << 30;

/// One logged record.
#[derive(Debug, Clone, PartialEq)]
pub enum WalRecord {
    /// A batch of events.
    Events(Vec<Event>),
    /// A batch of profile updates.
    Profiles(Vec<ProfileUpdate>),
    /// A batch of identity links.
    Aliases(Vec<Alias>),
}

const REC_EVENTS: u8 = 1;
const REC_PROFILES: u8 = 2;
const REC_ALIASES: u8 = 3;

impl WalRecord {
    /// Serializes the record payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::new();
        match self {
            WalRecord::Events(evs) => {
                e.u8(REC_EVENTS);
                e.var(evs.len() as u64);
                for ev in evs {
                    e.str(&ev.user);
                    e.str(&ev.event);
                    e.svar(ev.time);
                    e.var(ev.props.len() as u64);
                    for (k, v) in &ev.props {
                        e.str(k);
                        e.value(v);
                    }
                }
            }
            WalRecord::Profiles(ups) => {
                e.u8(REC_PROFILES);
                e.var(ups.len() as u64);
                for u in ups {
                    e.str(&u.user);
                    e.u8(match u.op {
                        ProfileOp::Set => 0,
                        ProfileOp::SetOnce => 1,
                        ProfileOp::Unset => 2,
                        ProfileOp::Add => 3,
                    });
                    e.var(u.props.len() as u64);
                    for (k, v) in &u.props {
                        e.str(k);
                        e.value(v);
                    }
                }
            }
            WalRecord::Aliases(al) => {
                e.u8(REC_ALIASES);
                e.var(al.len() as u64);
                for a in al {
                    e.str(&a.anonymous);
                    e.str(&a.known);
                }
            }
        }
        e.buf
    }

    /// Parses a record payload.
    pub fn decode(buf: &[u8]) -> Result<WalRecord, DecodeError> {
        let mut d = Dec::new(buf);
        let kind = d.u8()?;
        // Every element takes at least one byte, which bounds the counts.
        let n = d.len(d.remaining(), "record count")?;
        let rec = match kind {
            REC_EVENTS => {
                let mut evs = Vec::with_capacity(n);
                for _ in 0..n {
                    let user = d.str()?.to_owned();
                    let event = d.str()?.to_owned();
                    let time = d.svar()?;
                    let np = d.len(d.remaining(), "property count")?;
                    let mut props = Vec::with_capacity(np);
                    for _ in 0..np {
                        let k = d.str()?.to_owned();
                        props.push((k, d.value()?));
                    }
                    evs.push(Event {
                        user,
                        event,
                        time,
                        props,
                    });
                }
                WalRecord::Events(evs)
            }
            REC_PROFILES => {
                let mut ups = Vec::with_capacity(n);
                for _ in 0..n {
                    let user = d.str()?.to_owned();
                    let op = match d.u8()? {
                        0 => ProfileOp::Set,
                        1 => ProfileOp::SetOnce,
                        2 => ProfileOp::Unset,
                        3 => ProfileOp::Add,
                        t => return Err(d.err(format!("unknown profile op {t}"))),
                    };
                    let np = d.len(d.remaining(), "property count")?;
                    let mut props = Vec::with_capacity(np);
                    for _ in 0..np {
                        let k = d.str()?.to_owned();
                        props.push((k, d.value()?));
                    }
                    ups.push(ProfileUpdate { user, op, props });
                }
                WalRecord::Profiles(ups)
            }
            REC_ALIASES => {
                let mut al = Vec::with_capacity(n);
                for _ in 0..n {
                    let anonymous = d.str()?.to_owned();
                    let known = d.str()?.to_owned();
                    al.push(Alias { anonymous, known });
                }
                WalRecord::Aliases(al)
            }
            k => return Err(d.err(format!("unknown record kind {k}"))),
        };
        if !d.is_empty() {
            return Err(d.err("trailing bytes after record"));
        }
        Ok(rec)
    }
}

/// Frames a payload: `len u32 LE | crc32 u32 LE | payload`.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The path of WAL file number `n` in `dir`.
pub fn wal_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:06}.log"))
}

/// Lists the WAL file numbers in `dir`, ascending.
pub fn list_wal_files(dir: &Path) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(num) = name.strip_suffix(".log") {
            if let Ok(n) = num.parse::<u64>() {
                out.push(n);
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// What replaying one WAL file found.
#[derive(Debug)]
pub struct Replay {
    /// The whole records, in order.
    pub records: Vec<WalRecord>,
    /// Bytes cut from a torn tail (an incomplete last frame), if any.
    pub torn_tail: Option<u64>,
    /// Length of the valid prefix of the file.
    pub valid_len: u64,
}

/// Reads a WAL file. An incomplete or checksum-failing **last** frame is a
/// torn write from a crash: it is reported in `torn_tail`, not an error. A
/// bad frame followed by more data is corruption and an error naming the file.
pub fn replay_file(path: &Path) -> Result<Replay> {
    let data = std::fs::read(path).at(path)?;
    replay_bytes(path, &data)
}

/// [`replay_file`] over bytes already read.
pub fn replay_bytes(path: &Path, data: &[u8]) -> Result<Replay> {
    if data.len() < WAL_MAGIC.len() {
        // A crash right after creating the file: nothing in it was acknowledged.
        return Ok(Replay {
            records: Vec::new(),
            torn_tail: Some(data.len() as u64),
            valid_len: 0,
        });
    }
    if &data[..8] != WAL_MAGIC {
        return Err(Error::corrupt(path, "not a Footprint WAL file (bad magic)"));
    }
    let mut pos = 8usize;
    let mut records = Vec::new();
    while pos < data.len() {
        let rest = &data[pos..];
        let torn = |records: Vec<WalRecord>| Replay {
            records,
            torn_tail: Some((data.len() - pos) as u64),
            valid_len: pos as u64,
        };
        if rest.len() < 8 {
            return Ok(torn(records));
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len > MAX_FRAME {
            if rest.iter().all(|&b| b == 0) {
                return Ok(torn(records));
            }
            return Err(Error::corrupt(
                path,
                format!("frame at offset {pos} claims {len} bytes"),
            ));
        }
        if rest.len() < 8 + len {
            return Ok(torn(records));
        }
        let payload = &rest[8..8 + len];
        let got = crc32fast::hash(payload);
        let end = pos + 8 + len;
        if got != crc {
            if end == data.len() || data[pos..].iter().all(|&b| b == 0) {
                return Ok(torn(records));
            }
            return Err(Error::ChecksumMismatch {
                file: path.to_owned(),
                offset: pos as u64,
                expected: crc,
                got,
            });
        }
        let rec = WalRecord::decode(payload)
            .map_err(|e| Error::corrupt(path, format!("frame at offset {pos}: {e}")))?;
        records.push(rec);
        pos = end;
    }
    Ok(Replay {
        records,
        torn_tail: None,
        valid_len: pos as u64,
    })
}

struct Active {
    file: Arc<File>,
    number: u64,
    /// Bytes appended over the log's life (across files): the commit ticket.
    appended: u64,
}

/// The WAL writer of one store.
pub struct Wal {
    dir: PathBuf,
    active: Mutex<Active>,
    /// Highest ticket known durable.
    synced: Mutex<u64>,
}

impl Wal {
    /// Creates WAL file `number` in `dir` and opens it for appending.
    pub fn create(dir: &Path, number: u64) -> Result<Wal> {
        let file = Self::create_file(dir, number)?;
        Ok(Wal {
            dir: dir.to_owned(),
            active: Mutex::new(Active {
                file: Arc::new(file),
                number,
                appended: 0,
            }),
            synced: Mutex::new(0),
        })
    }

    fn create_file(dir: &Path, number: u64) -> Result<File> {
        let path = wal_path(dir, number);
        let mut file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .at(&path)?;
        file.write_all(WAL_MAGIC).at(&path)?;
        file.sync_all().at(&path)?;
        fsutil::sync_dir(dir)?;
        Ok(file)
    }

    /// The number of the file being appended to.
    pub fn current_number(&self) -> u64 {
        self.active.lock().number
    }

    /// Appends a framed record; returns the ticket to pass to [`Wal::sync`].
    pub fn append(&self, payload: &[u8]) -> Result<u64> {
        let framed = frame(payload);
        let mut a = self.active.lock();
        let path = wal_path(&self.dir, a.number);
        (&*a.file).write_all(&framed).at(&path)?;
        a.appended += framed.len() as u64;
        Ok(a.appended)
    }

    /// Returns once everything up to `ticket` is on stable storage. One
    /// fsync covers every writer that appended before it started.
    pub fn sync(&self, ticket: u64) -> Result<()> {
        let mut synced = self.synced.lock();
        if *synced >= ticket {
            return Ok(());
        }
        let (file, number, upto) = {
            let a = self.active.lock();
            (a.file.clone(), a.number, a.appended)
        };
        file.sync_data().at(&wal_path(&self.dir, number))?;
        *synced = upto;
        Ok(())
    }

    /// Starts a new file; later appends go there. The caller must ensure no
    /// append is in flight (the store's write gate) and that everything
    /// appended so far was synced.
    pub fn rotate(&self) -> Result<u64> {
        let mut a = self.active.lock();
        let next = a.number + 1;
        let file = Self::create_file(&self.dir, next)?;
        a.file = Arc::new(file);
        a.number = next;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn sample() -> WalRecord {
        WalRecord::Events(vec![Event {
            user: "ü1".into(),
            event: "signup".into(),
            time: 1_700_000_000_000,
            props: vec![
                ("a".into(), Value::Int(-3)),
                ("b".into(), Value::Float(2.5)),
                ("c".into(), Value::Str("x".into())),
                ("d".into(), Value::Bool(true)),
            ],
        }])
    }

    #[test]
    fn records_roundtrip() {
        for r in [
            sample(),
            WalRecord::Profiles(vec![ProfileUpdate {
                user: "u".into(),
                op: ProfileOp::SetOnce,
                props: vec![("plan".into(), Value::Str("pro".into()))],
            }]),
            WalRecord::Aliases(vec![Alias {
                anonymous: "c1".into(),
                known: "u".into(),
            }]),
        ] {
            assert_eq!(WalRecord::decode(&r.encode()).unwrap(), r);
        }
    }

    #[test]
    fn torn_tail_is_cut_and_middle_damage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::create(dir.path(), 1).unwrap();
        for _ in 0..3 {
            let t = wal.append(&sample().encode()).unwrap();
            wal.sync(t).unwrap();
        }
        let path = wal_path(dir.path(), 1);
        let full = std::fs::read(&path).unwrap();
        let r = replay_bytes(&path, &full).unwrap();
        assert_eq!(r.records.len(), 3);
        assert_eq!(r.torn_tail, None);
        // Cut inside the last frame.
        let r = replay_bytes(&path, &full[..full.len() - 5]).unwrap();
        assert_eq!(r.records.len(), 2);
        assert!(r.torn_tail.is_some());
        // Flip a byte in the first frame's payload.
        let mut bad = full.clone();
        bad[20] ^= 0x40;
        let err = replay_bytes(&path, &bad).unwrap_err().to_string();
        assert!(err.contains("000001.log"), "{err}");
    }
}
