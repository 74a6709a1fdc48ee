//! Little-endian binary encoding helpers shared by the WAL, segments,
//! dictionaries and the manifest. Decoding never panics: every read checks
//! bounds and reports what was being read.

use crate::value::Value;

/// Appends encoded values to a byte vector.
#[derive(Default, Debug)]
pub struct Enc {
    /// The bytes written so far.
    pub buf: Vec<u8>,
}

impl Enc {
    /// A new, empty encoder.
    pub fn new() -> Self {
        Self::default()
    }
    /// Writes one byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    /// Writes a fixed-width `u32`.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// Writes a fixed-width `u64`.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// Writes a fixed-width `i64`.
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// Writes an unsigned LEB128 varint.
    pub fn var(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }
    /// Writes a zig-zag signed varint.
    pub fn svar(&mut self, v: i64) {
        self.var(((v << 1) ^ (v >> 63)) as u64);
    }
    /// Writes a length-prefixed byte string.
    pub fn bytes(&mut self, b: &[u8]) {
        self.var(b.len() as u64);
        self.buf.extend_from_slice(b);
    }
    /// Writes a length-prefixed UTF-8 string.
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    /// Writes a tagged property value.
    pub fn value(&mut self, v: &Value) {
        match v {
            Value::Str(s) => {
                self.u8(TAG_STR);
                self.str(s);
            }
            Value::Int(i) => {
                self.u8(TAG_INT);
                self.svar(*i);
            }
            Value::Float(f) => {
                self.u8(TAG_FLOAT);
                self.u64(f.to_bits());
            }
            Value::Bool(false) => self.u8(TAG_FALSE),
            Value::Bool(true) => self.u8(TAG_TRUE),
        }
    }
}

/// Type tag of an absent value in a property column.
pub const TAG_ABSENT: u8 = 0;
/// Type tag of a string value.
pub const TAG_STR: u8 = 1;
/// Type tag of an integer value.
pub const TAG_INT: u8 = 2;
/// Type tag of a float value.
pub const TAG_FLOAT: u8 = 3;
/// Type tag of `false`.
pub const TAG_FALSE: u8 = 4;
/// Type tag of `true`.
pub const TAG_TRUE: u8 = 5;

/// A bounds-checked reader over a byte slice.
#[derive(Debug, Clone)]
pub struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// A decoding failure: what was being read and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Offset in the decoded buffer.
    pub offset: usize,
    /// What was wrong.
    pub what: String,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.what, self.offset)
    }
}

/// Decoding result.
pub type DResult<T> = Result<T, DecodeError>;

impl<'a> Dec<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Dec { buf, pos: 0 }
    }
    /// Moves to offset `pos` (reads past the end fail as usual).
    pub fn seek(&mut self, pos: usize) {
        self.pos = pos.min(self.buf.len());
    }
    /// Current offset.
    pub fn pos(&self) -> usize {
        self.pos
    }
    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// True when everything was read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }
    /// An error at the current offset.
    pub fn err(&self, what: impl Into<String>) -> DecodeError {
        DecodeError {
            offset: self.pos,
            what: what.into(),
        }
    }
    /// Every byte read (or skipped) so far.
    pub fn consumed(&self) -> &'a [u8] {
        &self.buf[..self.pos]
    }
    /// Every byte not read yet (not consumed).
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
    /// Takes `n` raw bytes.
    pub fn take(&mut self, n: usize) -> DResult<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.err(format!(
                "truncated: wanted {n} bytes, {} left",
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    /// Reads one byte.
    pub fn u8(&mut self) -> DResult<u8> {
        Ok(self.take(1)?[0])
    }
    /// Reads a fixed-width `u32`.
    pub fn u32(&mut self) -> DResult<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// Reads a fixed-width `u64`.
    pub fn u64(&mut self) -> DResult<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    /// Reads a fixed-width `i64`.
    pub fn i64(&mut self) -> DResult<i64> {
        Ok(self.u64()? as i64)
    }
    /// Reads an unsigned varint.
    pub fn var(&mut self) -> DResult<u64> {
        let mut v: u64 = 0;
        let mut shift = 0u32;
        loop {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                return Err(self.err("varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
            shift += 7;
            if shift > 63 {
                return Err(self.err("varint longer than 10 bytes"));
            }
        }
    }
    /// Reads a varint that must fit `usize` and be at most `max`.
    pub fn len(&mut self, max: usize, what: &str) -> DResult<usize> {
        let v = self.var()?;
        if v > max as u64 {
            return Err(self.err(format!("{what} {v} exceeds the limit {max}")));
        }
        Ok(v as usize)
    }
    /// Reads a zig-zag signed varint.
    pub fn svar(&mut self) -> DResult<i64> {
        let v = self.var()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }
    /// Reads a length-prefixed byte string.
    pub fn bytes(&mut self) -> DResult<&'a [u8]> {
        let n = self.len(self.remaining(), "byte string length")?;
        self.take(n)
    }
    /// Reads a length-prefixed UTF-8 string.
    pub fn str(&mut self) -> DResult<&'a str> {
        let start = self.pos;
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| DecodeError {
            offset: start,
            what: "invalid UTF-8 in string".into(),
        })
    }
    /// Reads a tagged property value.
    pub fn value(&mut self) -> DResult<Value> {
        let tag = self.u8()?;
        Ok(match tag {
            TAG_STR => Value::Str(self.str()?.to_owned()),
            TAG_INT => Value::Int(self.svar()?),
            TAG_FLOAT => Value::Float(f64::from_bits(self.u64()?)),
            TAG_FALSE => Value::Bool(false),
            TAG_TRUE => Value::Bool(true),
            t => return Err(self.err(format!("unknown value tag {t}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_roundtrip() {
        let vals = [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX];
        let mut e = Enc::new();
        for v in vals {
            e.var(v);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            e.svar(v);
        }
        let mut d = Dec::new(&e.buf);
        for v in vals {
            assert_eq!(d.var().unwrap(), v);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(d.svar().unwrap(), v);
        }
        assert!(d.is_empty());
        assert!(d.u8().is_err());
    }

    #[test]
    fn overlong_varint_is_an_error() {
        let bad = [0xffu8; 11];
        assert!(Dec::new(&bad).var().is_err());
    }
}
