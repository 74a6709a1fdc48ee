//! Fault injection: a test arms a fault for one kind of file operation
//! under one directory, and the next matching operation of the storage
//! layer fails with the chosen OS error (EIO, ENOSPC…) instead of running.
//!
//! Every write-path file operation goes through [`crate::fsutil`], which asks
//! [`check`] first. A fault is scoped to a directory, so tests running in
//! parallel on their own temporary directories do not see each other's
//! faults. Nothing is armed unless a caller of [`arm`] asks; an unarmed
//! check is one relaxed atomic load.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

/// The file operations a fault can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Creating (or truncating) a file.
    Create,
    /// Writing bytes to a file.
    Write,
    /// `fsync`/`fdatasync` of a file or directory.
    Fsync,
    /// Renaming a file into place.
    Rename,
}

/// One armed fault.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Only paths under this directory are affected.
    pub under: PathBuf,
    /// The operation that fails.
    pub op: Op,
    /// Only paths whose text contains this (e.g. `"wal"`, `"MANIFEST"`,
    /// `"segments"`); empty matches every path under `under`.
    pub path_contains: String,
    /// The OS error number returned (`libc::EIO`, `libc::ENOSPC`…).
    pub errno: i32,
    /// Matching operations let through before the first failure.
    pub skip: u32,
    /// Failures to inject before the fault disarms itself (`u32::MAX`:
    /// until the guard is dropped).
    pub times: u32,
    /// Wait this long before failing; with `errno` 0, wait and then let
    /// the operation run (a stalled disk).
    pub stall: std::time::Duration,
}

struct Armed {
    id: u64,
    fault: Fault,
    seen: u32,
    failed: u32,
}

static ANY: AtomicBool = AtomicBool::new(false);
static NEXT: AtomicU64 = AtomicU64::new(1);
static FAULTS: Mutex<Vec<Armed>> = Mutex::new(Vec::new());

/// Disarms its fault when dropped.
#[must_use = "the fault is disarmed when the guard is dropped"]
pub struct Guard {
    id: u64,
}

impl Guard {
    /// How many operations this fault has failed so far.
    pub fn failures(&self) -> u32 {
        FAULTS
            .lock()
            .iter()
            .find(|a| a.id == self.id)
            .map_or(0, |a| a.failed)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut f = FAULTS.lock();
        f.retain(|a| a.id != self.id);
        ANY.store(!f.is_empty(), Ordering::Release);
    }
}

/// Arms `fault` until the returned guard is dropped.
pub fn arm(fault: Fault) -> Guard {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut f = FAULTS.lock();
    f.push(Armed {
        id,
        fault,
        seen: 0,
        failed: 0,
    });
    ANY.store(true, Ordering::Release);
    Guard { id }
}

/// Fails with the armed error when a fault matches `op` on `path`.
pub(crate) fn check(op: Op, path: &Path) -> std::io::Result<()> {
    if !ANY.load(Ordering::Relaxed) {
        return Ok(());
    }
    let hit = {
        let mut faults = FAULTS.lock();
        faults.iter_mut().find_map(|a| {
            let f = &a.fault;
            if f.op != op
                || !path.starts_with(&f.under)
                || !path.to_string_lossy().contains(f.path_contains.as_str())
            {
                return None;
            }
            a.seen += 1;
            if a.seen > f.skip && a.failed < f.times {
                a.failed += 1;
                return Some((f.errno, f.stall));
            }
            None
        })
    };
    match hit {
        Some((errno, stall)) => {
            // Sleep with the registry unlocked: other threads' checks go on.
            std::thread::sleep(stall);
            match errno {
                0 => Ok(()),
                e => Err(std::io::Error::from_raw_os_error(e)),
            }
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_scoped_counted_and_disarmed() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let g = arm(Fault {
            under: dir.path().to_owned(),
            op: Op::Fsync,
            path_contains: "wal".into(),
            errno: libc::EIO,
            skip: 1,
            times: 1,
            stall: Default::default(),
        });
        let wal = dir.path().join("wal/000001.log");
        assert!(check(Op::Fsync, &wal).is_ok(), "the first is skipped");
        let e = check(Op::Fsync, &wal).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO));
        assert!(check(Op::Fsync, &wal).is_ok(), "only once");
        assert!(check(Op::Write, &wal).is_ok(), "other operations pass");
        assert!(check(Op::Fsync, &other.path().join("wal/x")).is_ok());
        assert!(check(Op::Fsync, &dir.path().join("MANIFEST")).is_ok());
        assert_eq!(g.failures(), 1);
        drop(g);
        assert!(check(Op::Fsync, &wal).is_ok());
    }
}
