//! Patched frame-of-reference bit-packing for `u64` columns.
//!
//! Values are cut into blocks of [`BLOCK`] values. Each block is packed at
//! the bit width that minimises its size; the few values wider than that
//! width ("exceptions", e.g. a day-long gap among second-long gaps in a time
//! column) are patched in from a short list after the block. Decoding is a
//! tight shift-and-mask loop with no entropy coder, so the hot columns of a
//! query (time deltas, event ids) decode at memory speed. Format in
//! `storage/FORMAT.md`.

use crate::codec::{DResult, Dec, Enc};

/// Values per block.
pub const BLOCK: usize = 128;

fn bits(v: u64) -> u32 {
    64 - v.leading_zeros()
}

fn exception_cost(bits_v: u32, width: u32) -> usize {
    // index byte + varint of the high part
    1 + (bits_v - width).div_ceil(7) as usize
}

/// Encodes `values` (any length) into `out`.
pub fn encode(values: &[u64], out: &mut Enc) {
    out.var(values.len() as u64);
    // Blocks after the first are indexed by byte offset so a reader can
    // jump to any block (skipping users a query does not need).
    let mut blocks = Enc::new();
    let mut offsets = Vec::new();
    for (i, block) in values.chunks(BLOCK).enumerate() {
        if i > 0 {
            offsets.push(blocks.buf.len() as u32);
        }
        encode_block(block, &mut blocks);
    }
    for o in offsets {
        out.u32(o);
    }
    out.buf.extend_from_slice(&blocks.buf);
}

fn encode_block(block: &[u64], out: &mut Enc) {
    let mut hist = [0usize; 65];
    for &v in block {
        hist[bits(v) as usize] += 1;
    }
    let mut best_w = 64u32;
    let mut best_cost = usize::MAX;
    for w in 0..=64u32 {
        let packed = (block.len() * w as usize).div_ceil(8);
        let mut exc = 0usize;
        let mut n_exc = 0usize;
        for (b, &count) in hist.iter().enumerate().skip(w as usize + 1) {
            exc += count * exception_cost(b as u32, w);
            n_exc += count;
        }
        if n_exc > 255 {
            continue;
        }
        let cost = packed + exc;
        if cost < best_cost {
            best_cost = cost;
            best_w = w;
        }
    }
    let w = best_w;
    let mask = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
    let exceptions: Vec<(u8, u64)> = block
        .iter()
        .enumerate()
        .filter(|(_, &v)| bits(v) > w)
        .map(|(i, &v)| (i as u8, v >> w))
        .collect();
    out.u8(w as u8);
    out.u8(exceptions.len() as u8);
    let nbytes = (block.len() * w as usize).div_ceil(8);
    let mut words = vec![0u64; (block.len() * w as usize).div_ceil(64)];
    if w > 0 {
        for (i, &v) in block.iter().enumerate() {
            let v = v & mask;
            let bit = i * w as usize;
            let (wi, off) = (bit / 64, bit % 64);
            words[wi] |= v << off;
            if off + w as usize > 64 {
                words[wi + 1] |= v >> (64 - off);
            }
        }
    }
    let mut bytes = Vec::with_capacity(words.len() * 8);
    for word in &words {
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    out.buf.extend_from_slice(&bytes[..nbytes]);
    for (i, hi) in exceptions {
        out.u8(i);
        out.var(hi);
    }
}

/// Decodes a column written by [`encode`], appending to `out`. `max_len`
/// bounds the declared length so a corrupt header cannot allocate wildly.
pub fn decode(dec: &mut Dec<'_>, max_len: usize, out: &mut Vec<u64>) -> DResult<()> {
    let mut r = BlockReader::new(dec, max_len)?;
    out.reserve(r.len());
    while r.next_block(out)? {}
    *dec = r.into_dec();
    Ok(())
}

/// Decodes a bit-packed column one block at a time, so a scan holds only
/// the rows it is working on.
#[derive(Debug, Clone)]
pub struct BlockReader<'a> {
    dec: Dec<'a>,
    len: usize,
    left: usize,
    /// Byte offsets of blocks 1.. relative to `blocks_start`, as raw LE u32s.
    index: &'a [u8],
    blocks_start: usize,
}

impl<'a> BlockReader<'a> {
    /// Reads the column header from `dec`.
    pub fn new(dec: &mut Dec<'a>, max_len: usize) -> DResult<Self> {
        let len = dec.len(max_len, "bit-packed column length")?;
        let nblocks = len.div_ceil(BLOCK);
        let index = dec.take(nblocks.saturating_sub(1) * 4)?;
        Ok(BlockReader {
            blocks_start: dec.pos(),
            dec: dec.clone(),
            len,
            left: len,
            index,
        })
    }

    /// Positions the reader at block `k` (value `k * BLOCK`).
    pub fn seek_block(&mut self, k: usize) -> DResult<()> {
        let nblocks = self.len.div_ceil(BLOCK);
        if k >= nblocks {
            self.left = 0;
            return Ok(());
        }
        let off = if k == 0 {
            0
        } else {
            let b = &self.index[(k - 1) * 4..k * 4];
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
        };
        self.dec.seek(self.blocks_start + off);
        if self.dec.pos() != self.blocks_start + off {
            return Err(self
                .dec
                .err(format!("block {k} offset {off} is outside the column")));
        }
        self.left = self.len - k * BLOCK;
        Ok(())
    }

    /// Values in the column.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the column is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Values not decoded yet.
    pub fn remaining(&self) -> usize {
        self.left
    }

    /// Appends the next block (up to [`BLOCK`] values) to `out`; returns
    /// `false` when the column is exhausted.
    pub fn next_block(&mut self, out: &mut Vec<u64>) -> DResult<bool> {
        if self.left == 0 {
            return Ok(false);
        }
        let d = &mut self.dec;
        let len = self.left.min(BLOCK);
        let w = d.u8()? as usize;
        if w > 64 {
            return Err(d.err(format!("bit width {w} is over 64")));
        }
        let n_exc = d.u8()? as usize;
        let nbytes = (len * w).div_ceil(8);
        let raw = d.take(nbytes)?;
        let base = out.len();
        if w == 0 {
            out.resize(base + len, 0);
        } else if w <= 56 {
            // One unaligned 8-byte load per value from a zero-padded copy.
            let mut buf = [0u8; BLOCK * 8 + 8];
            buf[..nbytes].copy_from_slice(raw);
            let mask = (1u64 << w) - 1;
            out.extend((0..len).map(|i| {
                let bit = i * w;
                let at = bit >> 3;
                let mut word = [0u8; 8];
                word.copy_from_slice(&buf[at..at + 8]);
                (u64::from_le_bytes(word) >> (bit & 7)) & mask
            }));
        } else {
            let mut words = [0u64; BLOCK];
            for (i, word) in words.iter_mut().enumerate().take(nbytes.div_ceil(8)) {
                let mut b = [0u8; 8];
                let start = i * 8;
                let end = (start + 8).min(nbytes);
                b[..end - start].copy_from_slice(&raw[start..end]);
                *word = u64::from_le_bytes(b);
            }
            let mask = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
            for i in 0..len {
                let bit = i * w;
                let (wi, off) = (bit >> 6, bit & 63);
                let mut v = words[wi] >> off;
                if off + w > 64 {
                    v |= words[wi + 1] << (64 - off);
                }
                out.push(v & mask);
            }
        }
        for _ in 0..n_exc {
            let i = d.u8()? as usize;
            let hi = d.var()?;
            if i >= len {
                return Err(d.err(format!("exception index {i} outside a block of {len}")));
            }
            if w == 64 || (w > 0 && hi.leading_zeros() < w as u32) {
                return Err(d.err("exception overflows 64 bits"));
            }
            out[base + i] |= if w == 0 { hi } else { hi << w };
        }
        self.left -= len;
        Ok(true)
    }

    /// The decoder positioned after the blocks read so far.
    pub fn into_dec(self) -> Dec<'a> {
        self.dec
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(v: &[u64]) -> Vec<u64> {
        let mut e = Enc::new();
        encode(v, &mut e);
        let mut out = Vec::new();
        let mut d = Dec::new(&e.buf);
        decode(&mut d, usize::MAX, &mut out).unwrap();
        assert!(d.is_empty());
        out
    }

    #[test]
    fn mixed_widths() {
        let mut v: Vec<u64> = (0..1000).map(|i| (i % 17) * 1000).collect();
        v[5] = 86_400_000 * 40;
        v[700] = u64::MAX;
        v[999] = 0;
        assert_eq!(roundtrip(&v), v);
        assert_eq!(roundtrip(&[]), Vec::<u64>::new());
        assert_eq!(roundtrip(&[0; 300]), vec![0; 300]);
    }

    #[test]
    fn seek_to_any_block() {
        let v: Vec<u64> = (0..1000u64).map(|i| i * i % 977).collect();
        let mut e = Enc::new();
        encode(&v, &mut e);
        let mut d = Dec::new(&e.buf);
        let mut r = BlockReader::new(&mut d, usize::MAX).unwrap();
        for k in [5usize, 0, 7, 2] {
            r.seek_block(k).unwrap();
            let mut out = Vec::new();
            r.next_block(&mut out).unwrap();
            assert_eq!(out[..], v[k * BLOCK..(k * BLOCK + BLOCK).min(v.len())]);
        }
        r.seek_block(8).unwrap();
        let mut out = Vec::new();
        assert!(!r.next_block(&mut out).unwrap());
    }

    #[test]
    fn exceptions_keep_blocks_small() {
        let mut v = vec![3u64; 128];
        v[10] = 1 << 40;
        let mut e = Enc::new();
        encode(&v, &mut e);
        assert!(e.buf.len() < 50, "{} bytes", e.buf.len());
    }

    #[test]
    fn garbage_never_panics() {
        for seed in 0..2000u64 {
            let bytes: Vec<u8> = (0..64u64)
                .map(|i| {
                    (seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(i.wrapping_mul(1442695040888963407))
                        >> 33) as u8
                })
                .collect();
            let mut out = Vec::new();
            let _ = decode(&mut Dec::new(&bytes), 1 << 20, &mut out);
        }
    }

    proptest! {
        #[test]
        fn prop_roundtrip(v in proptest::collection::vec(any::<u64>().prop_map(|x| x >> (x % 64)), 0..600)) {
            prop_assert_eq!(roundtrip(&v), v);
        }
    }
}
