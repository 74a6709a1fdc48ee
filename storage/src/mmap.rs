//! The one place storage maps files into memory.

use std::fs::File;
use std::path::Path;

use memmap2::Mmap;

use crate::error::{IoContext, Result};

/// Maps a sealed file read-only.
pub fn map_sealed(path: &Path) -> Result<Mmap> {
    let file = File::open(path).at(path)?;
    // SAFETY: only sealed files are mapped: a segment is written to a temp
    // name, fsync'ed and renamed, and never opened for writing again. Files
    // are removed only by unlinking, which keeps existing mappings valid on
    // Unix. So the mapped bytes cannot change underneath the `&[u8]` the map
    // hands out (another process writing to our data directory is excluded
    // by the directory lock).
    unsafe { Mmap::map(&file) }.at(path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn mapping_survives_unlink() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"sealed bytes").unwrap();
        let m = super::map_sealed(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        assert_eq!(&m[..], b"sealed bytes");
    }
}
