//! The one place storage maps files into memory.

use std::fs::File;
use std::path::Path;

use memmap2::{Mmap, UncheckedAdvice};

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

/// Drops the map's resident pages from this process (they stay in the
/// kernel's page cache, so touching them again is a minor fault, not a
/// disk read). Keeps the process RSS to what a query is using right now
/// rather than every segment page it ever touched. Failure is harmless.
pub fn release(map: &Mmap) {
    if map.is_empty() {
        return;
    }
    // SAFETY: `map_sealed` maps read-only and shared (`MAP_SHARED`,
    // `PROT_READ`). On such a file mapping MADV_DONTNEED only removes page
    // table entries: the next access faults the same bytes back in from the
    // page cache (or the file), never zero pages and never different
    // contents, because the file is sealed (see `map_sealed`). So slices
    // borrowed from the map, even by other threads, stay valid and
    // unchanged.
    let _ = unsafe { map.unchecked_advise(UncheckedAdvice::DontNeed) };
}

/// [`release`] for the whole pages inside `[offset, offset + len)` of the
/// map (partial pages at either end stay).
pub fn release_range(map: &Mmap, offset: usize, len: usize) {
    const PAGE: usize = 4096;
    let start = offset.div_ceil(PAGE) * PAGE;
    let end = (offset.saturating_add(len)).min(map.len()) / PAGE * PAGE;
    if start >= end {
        return;
    }
    // SAFETY: as in `release`: a read-only shared mapping of a sealed file,
    // so dropping page-table entries never changes what any slice reads.
    // The range lies inside the map (`end <= map.len()`), and `start` is
    // page-aligned relative to the page-aligned start of the mapping.
    let _ = unsafe { map.unchecked_advise_range(UncheckedAdvice::DontNeed, start, end - start) };
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

    #[test]
    fn released_pages_read_back_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let bytes: Vec<u8> = (0..3 * 4096 + 17).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&p, &bytes).unwrap();
        let m = super::map_sealed(&p).unwrap();
        let view = &m[4000..9000];
        let before = view.to_vec();
        super::release(&m);
        assert_eq!(view, &before[..]);
        assert_eq!(&m[..], &bytes[..]);
        super::release_range(&m, 100, 9000);
        super::release_range(&m, 0, usize::MAX);
        super::release_range(&m, 5000, 10);
        assert_eq!(view, &before[..]);
        assert_eq!(&m[..], &bytes[..]);
        std::fs::write(dir.path().join("empty"), b"").unwrap();
        let e = super::map_sealed(&dir.path().join("empty")).unwrap();
        super::release(&e);
    }
}
