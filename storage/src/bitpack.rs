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

/// Bytes of `n` values packed at `w` bits.
fn packed_len(n: usize, w: usize) -> usize {
    (n * w).div_ceil(8)
}

/// Packs each value's low `w` bits, LSB first.
fn pack(values: impl Iterator<Item = u64>, n: usize, w: u32, out: &mut Vec<u8>) {
    if w == 0 {
        return;
    }
    let mask = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
    let mut words = vec![0u64; (n * w as usize).div_ceil(64)];
    for (i, v) in values.enumerate() {
        let v = v & mask;
        let bit = i * w as usize;
        let (wi, off) = (bit / 64, bit % 64);
        words[wi] |= v << off;
        if off + w as usize > 64 {
            words[wi + 1] |= v >> (64 - off);
        }
    }
    let start = out.len();
    for word in &words {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.truncate(start + packed_len(n, w as usize));
}

const PAD: usize = 1024 + 8;

/// A scratch buffer for [`unpack`]: a block's bytes plus 8 bytes of padding.
pub type Pad = [u8; PAD];

/// Unpacks values `from..n` (`n` ≤ BLOCK) of `w` bits from `raw`, appending
/// to `out`. `ahead` starts where `raw` does and runs on to the end of the
/// column.
fn unpack(
    raw: &[u8],
    ahead: &[u8],
    from: usize,
    n: usize,
    w: usize,
    out: &mut Vec<u64>,
    buf: &mut Pad,
) {
    let from = from.min(n);
    if w == 0 {
        out.resize(out.len() + n - from, 0);
        return;
    }
    if w <= 56 {
        // One unaligned 8-byte load per value from a fixed-size window, so
        // the index mask lets the compiler drop the bounds check. The window
        // is the column itself when a full block's bytes plus 8 follow (bits
        // past the block only ever land above the mask), else a copy padded
        // with zeros (only the 8 bytes past the data need clearing).
        let src: &Pad = match ahead.get(..PAD).and_then(|s| s.try_into().ok()) {
            Some(window) => window,
            None => {
                let len = raw.len().min(1024);
                buf[..len].copy_from_slice(&raw[..len]);
                buf[len..len + 8].fill(0);
                buf
            }
        };
        if from == 0 && n == BLOCK && w <= 32 {
            // Full blocks (nearly all of them) of common widths: the width
            // is a constant, so offsets and shifts fold away.
            let base = out.len();
            out.resize(base + BLOCK, 0);
            let dst: &mut [u64; BLOCK] = match (&mut out[base..]).try_into() {
                Ok(d) => d,
                Err(_) => return,
            };
            unpack_fixed(src, w, dst);
            return;
        }
        let mask = (1u64 << w) - 1;
        out.extend((from..n).map(|i| load(src, i * w, mask)));
        return;
    }
    let mut words = [0u64; BLOCK + 1];
    for (i, chunk) in raw.chunks(8).enumerate().take(BLOCK + 1) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        words[i] = u64::from_le_bytes(b);
    }
    let mask = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
    for i in from..n {
        let bit = i * w;
        let (wi, off) = (bit >> 6, bit & 63);
        let mut v = words[wi] >> off;
        if off + w > 64 {
            v |= words[wi + 1] << (64 - off);
        }
        out.push(v & mask);
    }
}

/// Unpacks a full block of `w`-bit values (1 ≤ `w` ≤ 32), with the width
/// as a compile-time constant.
fn unpack_fixed(src: &Pad, w: usize, dst: &mut [u64; BLOCK]) {
    macro_rules! widths {
        ($($w:literal)*) => {
            match w {
                $($w => unpack_w::<$w>(src, dst),)*
                _ => {
                    let mask = (1u64 << w) - 1;
                    for (i, d) in dst.iter_mut().enumerate() {
                        *d = load(src, i * w, mask);
                    }
                }
            }
        };
    }
    widths!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32);
}

#[inline(always)]
fn unpack_w<const W: usize>(src: &Pad, dst: &mut [u64; BLOCK]) {
    let mask = (1u64 << W) - 1;
    // Eight values span exactly W bytes: each group starts byte-aligned.
    for (g, out) in dst.chunks_exact_mut(8).enumerate() {
        let at = g * W;
        for (r, d) in out.iter_mut().enumerate() {
            *d = load(src, at * 8 + r * W, mask);
        }
    }
}

/// The `w`-bit value at bit offset `bit` of a padded window.
#[inline(always)]
fn load(src: &Pad, bit: usize, mask: u64) -> u64 {
    let at = (bit >> 3) & 1023;
    let mut word = [0u8; 8];
    word.copy_from_slice(&src[at..at + 8]);
    (u64::from_le_bytes(word) >> (bit & 7)) & mask
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

/// [`encode`] of a column of `len` values that are zero but at `entries`
/// (`(position, value)`, positions ascending and below `len`), without
/// building the column: the bytes are the same, and the cost follows the
/// blocks and the entries, not the values. A mostly empty property column
/// costs two bytes a block.
pub fn encode_sparse(len: usize, entries: &[(usize, u64)], out: &mut Enc) {
    out.var(len as u64);
    let nblocks = len.div_ceil(BLOCK);
    let mut zero = Enc::new();
    encode_block(&[0; BLOCK], &mut zero);
    let mut blocks = Enc::new();
    let mut offsets = Vec::with_capacity(nblocks.saturating_sub(1));
    let mut scratch = [0u64; BLOCK];
    let mut e = 0;
    for b in 0..nblocks {
        if b > 0 {
            offsets.push(blocks.buf.len() as u32);
        }
        let lo = b * BLOCK;
        let n = BLOCK.min(len - lo);
        if entries.get(e).is_some_and(|&(pos, _)| pos < lo + n) {
            scratch[..n].fill(0);
            while let Some(&(pos, v)) = entries.get(e).filter(|(pos, _)| *pos < lo + n) {
                scratch[pos - lo] = v;
                e += 1;
            }
            encode_block(&scratch[..n], &mut blocks);
        } else if n == BLOCK {
            blocks.buf.extend_from_slice(&zero.buf);
        } else {
            encode_block(&[0; BLOCK][..n], &mut blocks);
        }
    }
    for o in offsets {
        out.u32(o);
    }
    out.buf.extend_from_slice(&blocks.buf);
}

fn encode_block(block: &[u64], out: &mut Enc) {
    let n = block.len();
    let mut hist = [0usize; 65];
    for &v in block {
        hist[bits(v) as usize] += 1;
    }
    let max_bits = (0..=64).rev().find(|&b| hist[b] > 0).unwrap_or(0);
    let mut best_w = max_bits;
    let mut best_cost = usize::MAX;
    for w in 0..=max_bits {
        let n_exc: usize = hist[w + 1..].iter().sum();
        if n_exc > 255 {
            continue;
        }
        let exc = if n_exc == 0 {
            0
        } else {
            1 + n_exc + packed_len(n_exc, max_bits - w)
        };
        let cost = packed_len(n, w) + exc;
        if cost < best_cost {
            best_cost = cost;
            best_w = w;
        }
    }
    let w = best_w as u32;
    let exceptions: Vec<(u8, u64)> = block
        .iter()
        .enumerate()
        .filter(|(_, &v)| bits(v) > w)
        .map(|(i, &v)| (i as u8, v >> w))
        .collect();
    out.u8(w as u8);
    out.u8(exceptions.len() as u8);
    pack(block.iter().copied(), n, w, &mut out.buf);
    if !exceptions.is_empty() {
        let hw = max_bits as u32 - w;
        out.u8(hw as u8);
        out.buf.extend(exceptions.iter().map(|e| e.0));
        pack(
            exceptions.iter().map(|e| e.1),
            exceptions.len(),
            hw,
            &mut out.buf,
        );
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
    high: Vec<u64>,
    pad: Box<Pad>,
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
            high: Vec::new(),
            pad: Box::new([0u8; 1024 + 8]),
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

    /// The column's bytes up to the reader's position (read or skipped).
    pub fn consumed(&self) -> &'a [u8] {
        self.dec.consumed()
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
        self.next_block_from(0, out)
    }

    /// Like [`BlockReader::next_block`], but appends only the block's values
    /// from index `from` on (the others are skipped, not decoded).
    pub fn next_block_from(&mut self, from: usize, out: &mut Vec<u64>) -> DResult<bool> {
        if self.left == 0 {
            return Ok(false);
        }
        let d = &mut self.dec;
        let len = self.left.min(BLOCK);
        let from = from.min(len);
        let w = d.u8()? as usize;
        if w > 64 {
            return Err(d.err(format!("bit width {w} is over 64")));
        }
        let n_exc = d.u8()? as usize;
        let ahead = d.rest();
        let raw = d.take(packed_len(len, w))?;
        let base = out.len();
        unpack(raw, ahead, from, len, w, out, &mut self.pad);
        if n_exc > 0 {
            let hw = d.u8()? as usize;
            if w + hw > 64 || hw == 0 {
                return Err(d.err(format!("exceptions of {hw} bits over a width of {w}")));
            }
            let pos = d.take(n_exc)?;
            let ahead = d.rest();
            let high = d.take(packed_len(n_exc, hw))?;
            self.high.clear();
            unpack(high, ahead, 0, n_exc, hw, &mut self.high, &mut self.pad);
            let mut prev: Option<usize> = None;
            for (&i, &hi) in pos.iter().zip(&self.high) {
                let i = i as usize;
                if i >= len {
                    return Err(d.err(format!("exception index {i} outside a block of {len}")));
                }
                if prev.is_some_and(|p| p >= i) {
                    return Err(d.err("exception indexes out of order"));
                }
                prev = Some(i);
                if i >= from {
                    out[base + i - from] |= if w == 0 { hi } else { hi << w };
                }
            }
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
    fn decode_from_inside_a_block() {
        let mut v: Vec<u64> = (0..300u64).map(|i| i * 7 % 100).collect();
        v[3] = 1 << 40;
        v[140] = 1 << 50;
        v[200] = u64::MAX;
        let mut e = Enc::new();
        encode(&v, &mut e);
        let mut d = Dec::new(&e.buf);
        let mut r = BlockReader::new(&mut d, usize::MAX).unwrap();
        for (k, from) in [
            (0usize, 0usize),
            (0, 3),
            (0, 4),
            (1, 12),
            (1, 127),
            (2, 40),
            (2, 44),
            (2, 500),
        ] {
            r.seek_block(k).unwrap();
            let mut out = vec![9];
            r.next_block_from(from, &mut out).unwrap();
            let end = (k * BLOCK + BLOCK).min(v.len());
            let start = (k * BLOCK + from).min(end);
            assert_eq!(out[1..], v[start..end], "block {k} from {from}");
        }
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

        #[test]
        fn sparse_encoding_is_the_dense_one(
            len in 0usize..1500,
            picks in proptest::collection::vec((any::<usize>(), any::<u64>().prop_map(|x| x >> (x % 64))), 0..80),
        ) {
            let mut dense = vec![0u64; len];
            for &(p, v) in &picks {
                if len > 0 {
                    dense[p % len] = v;
                }
            }
            let entries: Vec<(usize, u64)> = dense
                .iter()
                .enumerate()
                .filter(|(_, &v)| v != 0)
                .map(|(i, &v)| (i, v))
                .collect();
            let (mut a, mut b) = (Enc::new(), Enc::new());
            encode(&dense, &mut a);
            encode_sparse(len, &entries, &mut b);
            prop_assert_eq!(a.buf, b.buf);
        }
    }
}
