//! The write-ahead log: length + CRC32 framed records, fsync'ed with group
//! commit before an ingest is acknowledged.
//!
//! Concurrent writers append their frames under a short mutex and then wait
//! for a sync that covers their frame: whichever writer reaches the sync lock
//! first fsyncs for everyone queued behind it (group commit).

use std::fs::File;
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
                        ProfileOp::Append => 4,
                        ProfileOp::Union => 5,
                        ProfileOp::Remove => 6,
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
                        4 => ProfileOp::Append,
                        5 => ProfileOp::Union,
                        6 => ProfileOp::Remove,
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
///
/// A crash can leave the tail of the log in three shapes, all of them
/// unacknowledged writes that are cut: a frame cut short, a frame whose
/// bytes after some point are zeros (the file grew but its last blocks
/// were never written: common on ext4 and xfs), and zeros after the last
/// frame. A damaged frame followed by anything but zeros is corruption.
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
    // Everything from `zeros_from` on is zero bytes.
    let zeros_from = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let mut pos = 8usize;
    let mut records = Vec::new();
    while pos < data.len() {
        let torn = |records: Vec<WalRecord>| Replay {
            records,
            torn_tail: Some((data.len() - pos) as u64),
            valid_len: pos as u64,
        };
        let rest = &data[pos..];
        if pos >= zeros_from || rest.len() < 8 {
            return Ok(torn(records));
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len > MAX_FRAME {
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
            // The frame's own bytes may be partly zeros; only what follows
            // it decides whether it was the last write.
            if end >= zeros_from {
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
    /// Created on the first append, so that opening a store (for `stats`,
    /// say, on a full disk) writes nothing.
    file: Option<Arc<File>>,
    number: u64,
    /// Bytes appended over the log's life (across files): the commit ticket.
    appended: u64,
}

/// The WAL writer of one store.
///
/// Locks, in the order they are taken: `synced`, then `active`, then
/// `failed`. None is held while calling out of this type.
pub struct Wal {
    dir: PathBuf,
    active: Mutex<Active>,
    /// Highest ticket known durable.
    synced: Mutex<u64>,
    /// Set by the first failed write or fsync: from then on nothing is
    /// appended and no sync succeeds, so no write is acknowledged after a
    /// failure (a later fsync may "succeed" without the lost pages).
    failed: Mutex<Option<String>>,
}

impl Wal {
    /// A writer that appends to WAL file `number` in `dir`, creating it on
    /// the first append.
    pub fn new(dir: &Path, number: u64) -> Wal {
        Wal {
            dir: dir.to_owned(),
            active: Mutex::new(Active {
                file: None,
                number,
                appended: 0,
            }),
            synced: Mutex::new(0),
            failed: Mutex::new(None),
        }
    }

    fn create_file(dir: &Path, number: u64) -> Result<File> {
        let path = wal_path(dir, number);
        let file = fsutil::create_new(&path)?;
        fsutil::write_all(&file, &path, WAL_MAGIC)?;
        fsutil::sync_all(&file, &path)?;
        fsutil::sync_dir(dir)?;
        Ok(file)
    }

    fn check_failed(&self) -> Result<()> {
        match &*self.failed.lock() {
            Some(why) => Err(Error::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    fn fail<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            self.failed.lock().get_or_insert_with(|| e.to_string());
        }
        r
    }

    /// The number of the file being appended to.
    pub fn current_number(&self) -> u64 {
        self.active.lock().number
    }

    /// Appends a framed record; returns the ticket to pass to [`Wal::sync`].
    pub fn append(&self, payload: &[u8]) -> Result<u64> {
        let framed = frame(payload);
        let mut a = self.active.lock();
        self.check_failed()?;
        let path = wal_path(&self.dir, a.number);
        let file = match &a.file {
            Some(f) => f.clone(),
            None => {
                let f = Arc::new(self.fail(Self::create_file(&self.dir, a.number))?);
                a.file = Some(f.clone());
                f
            }
        };
        self.fail(fsutil::write_all(&file, &path, &framed))?;
        a.appended += framed.len() as u64;
        Ok(a.appended)
    }

    /// Returns once everything up to `ticket` is on stable storage. One
    /// fsync covers every writer that appended before it started. After
    /// any failed write or fsync it fails, for every ticket, until the
    /// store is reopened.
    pub fn sync(&self, ticket: u64) -> Result<()> {
        let mut synced = self.synced.lock();
        self.check_failed()?;
        if *synced >= ticket {
            return Ok(());
        }
        let (file, number, upto) = {
            let a = self.active.lock();
            (a.file.clone(), a.number, a.appended)
        };
        if let Some(file) = file {
            self.fail(fsutil::sync_data(&file, &wal_path(&self.dir, number)))?;
        }
        *synced = upto;
        Ok(())
    }

    /// Starts a new file (created by the next append) and returns its
    /// number. The caller must ensure no append is in flight (the store's
    /// write gate) and that everything appended so far was synced. Does no
    /// I/O, so it can run under the store's locks.
    pub fn rotate(&self) -> u64 {
        let mut a = self.active.lock();
        a.number += 1;
        a.file = None;
        a.number
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
        let wal = Wal::new(dir.path(), 1);
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

    fn three_frames(dir: &Path) -> Vec<u8> {
        let wal = Wal::new(dir, 1);
        for _ in 0..3 {
            let t = wal.append(&sample().encode()).unwrap();
            wal.sync(t).unwrap();
        }
        std::fs::read(wal_path(dir, 1)).unwrap()
    }

    #[test]
    fn a_frame_cut_and_followed_by_zeroed_blocks_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let full = three_frames(dir.path());
        let path = wal_path(dir.path(), 1);
        // The last frame's header and part of its payload made it; the
        // rest of the file, well past the frame's end, is zeros.
        let frame_len = (full.len() - 8) / 3;
        let last = full.len() - frame_len;
        for keep in [last + 1, last + 8, last + 11, full.len() - 1] {
            let mut bytes = full[..keep].to_vec();
            bytes.resize(full.len() + 8192, 0);
            let r = replay_bytes(&path, &bytes).unwrap();
            assert_eq!(r.records.len(), 2, "cut at {keep}");
            assert_eq!(r.valid_len, last as u64);
            assert_eq!(r.torn_tail, Some((bytes.len() - last) as u64));
        }
        // Zeros after the last whole frame.
        let mut bytes = full.clone();
        bytes.resize(full.len() + 4096, 0);
        let r = replay_bytes(&path, &bytes).unwrap();
        assert_eq!(r.records.len(), 3);
        assert_eq!(r.valid_len, full.len() as u64);
        // A damaged frame followed by a whole one is still corruption.
        let mut bad = full.clone();
        bad[last - 3] ^= 0x10;
        assert!(replay_bytes(&path, &bad).is_err());
    }

    #[test]
    fn after_a_failed_fsync_no_write_is_acknowledged() {
        use crate::failpoint::{arm, Fault, Op};
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::new(dir.path(), 1);
        let t = wal.append(&sample().encode()).unwrap();
        wal.sync(t).unwrap();
        let t1 = wal.append(&sample().encode()).unwrap();
        let t2 = wal.append(&sample().encode()).unwrap();
        let g = arm(Fault {
            under: dir.path().to_owned(),
            op: Op::Fsync,
            path_contains: String::new(),
            errno: libc::EIO,
            skip: 0,
            times: 1,
            stall: Default::default(),
        });
        assert!(wal.sync(t1).is_err());
        assert_eq!(g.failures(), 1);
        // The fault fired once; the disk "works" again, but a writer whose
        // frame the failed fsync covered, or any later one, is refused.
        assert!(matches!(wal.sync(t2), Err(Error::Poisoned(_))));
        assert!(matches!(wal.sync(t), Err(Error::Poisoned(_))));
        assert!(wal.append(&sample().encode()).is_err());
    }

    #[test]
    fn a_failed_append_refuses_later_appends() {
        use crate::failpoint::{arm, Fault, Op};
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::new(dir.path(), 1);
        let _g = arm(Fault {
            under: dir.path().to_owned(),
            op: Op::Write,
            path_contains: "000001.log".into(),
            errno: libc::ENOSPC,
            // The file's magic, then the first frame.
            skip: 2,
            times: 1,
            stall: Default::default(),
        });
        let t = wal.append(&sample().encode()).unwrap();
        wal.sync(t).unwrap();
        let e = wal.append(&sample().encode()).unwrap_err().to_string();
        assert!(e.contains("No space left"), "{e}");
        assert!(wal.append(&sample().encode()).is_err());
        let r = replay_file(&wal_path(dir.path(), 1)).unwrap();
        assert_eq!(r.records.len(), 1);
    }

    #[test]
    fn opening_a_writer_creates_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::new(dir.path(), 7);
        assert!(list_wal_files(dir.path()).unwrap().is_empty());
        wal.sync(0).unwrap();
        assert_eq!(wal.rotate(), 8);
        wal.append(&sample().encode()).unwrap();
        assert_eq!(list_wal_files(dir.path()).unwrap(), vec![8]);
    }
}
