//! The file-system seam of the write path: every create, write, fsync and
//! rename the storage layer does goes through here, where
//! [`crate::failpoint`] can make it fail, plus the durable-replace recipe.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{IoContext, Result};
use crate::failpoint::{self, Op};

/// Creates (or truncates) `path` for writing.
pub fn create(path: &Path) -> Result<File> {
    failpoint::check(Op::Create, path).at(path)?;
    File::create(path).at(path)
}

/// Creates `path`, which must not exist, for writing.
pub fn create_new(path: &Path) -> Result<File> {
    failpoint::check(Op::Create, path).at(path)?;
    File::options()
        .create_new(true)
        .write(true)
        .open(path)
        .at(path)
}

/// Writes all of `bytes` to `f` (the file at `path`).
pub fn write_all(mut f: &File, path: &Path, bytes: &[u8]) -> Result<()> {
    failpoint::check(Op::Write, path).at(path)?;
    f.write_all(bytes).at(path)
}

/// Fsyncs data and metadata of `f` (the file at `path`).
pub fn sync_all(f: &File, path: &Path) -> Result<()> {
    failpoint::check(Op::Fsync, path).at(path)?;
    f.sync_all().at(path)
}

/// Fsyncs the data of `f` (the file at `path`).
pub fn sync_data(f: &File, path: &Path) -> Result<()> {
    failpoint::check(Op::Fsync, path).at(path)?;
    f.sync_data().at(path)
}

/// Renames `from` to `to`.
pub fn rename(from: &Path, to: &Path) -> Result<()> {
    failpoint::check(Op::Rename, to).at(to)?;
    std::fs::rename(from, to).at(to)
}

/// Fsyncs a directory so that entries created or renamed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    failpoint::check(Op::Fsync, dir).at(dir)?;
    File::open(dir).at(dir)?.sync_all().at(dir)
}

/// A temporary name beside `path` that no other writer in this process
/// uses at the same time (`NAME.<pid>.<n>.tmp`): two saves of one file
/// never write into each other's temporary file. Leftovers end in `.tmp`,
/// which opening a store removes.
pub fn temp_path(path: &Path) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.{n}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync dir.
/// A failure leaves `path` as it was and removes the temp file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_path(path);
    let r = (|| {
        let f = create(&tmp)?;
        write_all(&f, &tmp, bytes)?;
        sync_all(&f, &tmp)?;
        rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r?;
    sync_dir(dir)
}

/// Creates a directory (and parents) if missing.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).at(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_atomic_writes_of_one_file_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.cohort");
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..50 {
                        write_atomic(path, &[t; 4096]).unwrap();
                        let b = std::fs::read(path).unwrap();
                        assert_eq!(b.len(), 4096);
                        assert!(b.iter().all(|&x| x == b[0]), "a torn file");
                    }
                });
            }
        });
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
    }
}
