//! Typed errors of the storage layer.

use std::path::PathBuf;

/// Result alias of the storage layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in storage. Each variant carries the facts a
/// user needs to act: which file, which offset, what was expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error on `path`.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory being accessed.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A stored checksum does not match the bytes read.
    #[error("checksum mismatch in {file} at offset {offset}: expected {expected:#010x}, got {got:#010x}")]
    ChecksumMismatch {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the damaged block.
        offset: u64,
        /// Checksum stored in the file.
        expected: u32,
        /// Checksum of the bytes found.
        got: u32,
    },
    /// A file is not in the format this build reads.
    #[error("corrupt file {file}: {reason}")]
    Corrupt {
        /// The damaged file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Another process holds the data directory.
    #[error("data directory {0} is locked by another process")]
    Locked(PathBuf),
    /// A previous write-path I/O error poisoned the store; reopen it.
    #[error("the store refused the write: an earlier I/O error on the write path ({0}); reopen the store")]
    Poisoned(String),
    /// The store has been closed.
    #[error("the store is closed")]
    Closed,
    /// A read ran past the time it was given.
    #[error("gave up after {0}: the time budget was spent")]
    TimedOut(String),
    /// A caller passed an invalid argument.
    #[error("invalid argument: {0}")]
    Invalid(String),
}

impl Error {
    /// Wraps an `io::Error` with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A corruption error for `file`.
    pub fn corrupt(file: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            file: file.into(),
            reason: reason.into(),
        }
    }
}

/// Extension to attach a path to `io::Result`s.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
