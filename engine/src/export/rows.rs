//! One shard's events to export, held as columns: read from the store in
//! (user id, time, arrival) order, then ordered for the files by
//! (partition, user name, time, seq).

use std::collections::HashMap;
use std::io::Write as _;

use bytes::Bytes;
use footprint_storage::{ScanSpec, ShardSnapshot, Value};

use super::Ty;
use crate::Result;

/// A typed property value; strings as a range of [`Rows::strs`].
#[derive(Debug, Clone, Copy)]
pub(super) enum TypedValue {
    Str(usize, usize),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// How one property goes out: its JSON key and its typed column, if any.
pub(super) struct PropOut {
    /// Its index in the scan's property list (its id).
    pub k: usize,
    /// `"name":`, escaped.
    pub key: Vec<u8>,
    /// (index among the property columns, type).
    pub typed: Option<(u32, Ty)>,
}

/// The rows, column by column.
#[derive(Default)]
pub(super) struct Rows {
    pub uid: Vec<u32>,
    pub time: Vec<i64>,
    pub seq: Vec<i64>,
    pub event: Vec<u32>,
    /// Row `r`'s `props` JSON is `json[json_end[r - 1]..json_end[r]]`.
    pub json_end: Vec<usize>,
    pub json: Bytes,
    /// Row `r`'s typed values are `typed[typed_end[r - 1]..typed_end[r]]`.
    pub typed_end: Vec<usize>,
    pub typed: Vec<(u32, TypedValue)>,
    pub strs: Bytes,
}

impl Rows {
    pub fn len(&self) -> usize {
        self.uid.len()
    }

    pub fn json(&self, r: usize) -> Bytes {
        let start = if r == 0 { 0 } else { self.json_end[r - 1] };
        self.json.slice(start..self.json_end[r])
    }

    pub fn typed(&self, r: usize) -> &[(u32, TypedValue)] {
        let start = if r == 0 { 0 } else { self.typed_end[r - 1] };
        &self.typed[start..self.typed_end[r]]
    }
}

/// Reads shard `shard`, keeping the rows not yet exported: `exported`
/// holds, per (user id, time), how many of that group's rows an earlier run
/// wrote — the group's first ones, since equal times keep arrival order.
/// Returns the rows kept and the rows read; `progress` gets rows read.
pub(super) fn scan(
    shard: &ShardSnapshot,
    nprops: usize,
    props: &[PropOut],
    exported: &mut HashMap<(u32, i64), u32>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(Rows, u64)> {
    let spec = ScanSpec {
        props: (0..nprops as u32).collect(),
        ..ScanSpec::default()
    };
    let mut rows = Rows::default();
    let mut json: Vec<u8> = Vec::new();
    let mut strs: Vec<u8> = Vec::new();
    let mut last_uid = None;
    let mut seq = 0i64;
    let mut read = 0u64;
    let mut unreported = 0u64;
    shard.scan(&spec, |u| {
        for i in 0..u.len() {
            if last_uid == Some(u.uid) {
                seq += 1;
            } else {
                last_uid = Some(u.uid);
                seq = 0;
            }
            read += 1;
            let time = u.times[i];
            if let Some(left) = exported.get_mut(&(u.uid, time)) {
                if *left > 0 {
                    *left -= 1;
                    continue;
                }
            }
            rows.uid.push(u.uid);
            rows.time.push(time);
            rows.seq.push(seq);
            rows.event.push(u.events[i]);
            json.push(b'{');
            let mut first = true;
            for p in props {
                let Some(v) = u.prop(p.k, i) else { continue };
                if !first {
                    json.push(b',');
                }
                first = false;
                json.extend_from_slice(&p.key);
                write_value(&mut json, v);
                if let Some((col, ty)) = p.typed {
                    if let Some(t) = typed_value(v, ty, &mut strs) {
                        rows.typed.push((col, t));
                    }
                }
            }
            json.push(b'}');
            rows.json_end.push(json.len());
            rows.typed_end.push(rows.typed.len());
        }
        unreported += u.len() as u64;
        if unreported >= 1 << 16 {
            progress(unreported);
            unreported = 0;
        }
    })?;
    progress(unreported);
    rows.json = Bytes::from(json);
    rows.strs = Bytes::from(strs);
    Ok((rows, read))
}

/// `v` as a value of a `ty` column; `None` if it has another type (after
/// a property changed type between runs, its column keeps the old one).
fn typed_value(v: &Value, ty: Ty, strs: &mut Vec<u8>) -> Option<TypedValue> {
    Some(match (ty, v) {
        (Ty::Str, Value::Str(s)) => {
            let start = strs.len();
            strs.extend_from_slice(s.as_bytes());
            TypedValue::Str(start, strs.len())
        }
        (Ty::Int, Value::Int(i)) => TypedValue::Int(*i),
        (Ty::Float, Value::Float(f)) => TypedValue::Float(*f),
        (Ty::Float, Value::Int(i)) => TypedValue::Float(*i as f64),
        (Ty::Bool, Value::Bool(b)) => TypedValue::Bool(*b),
        _ => return None,
    })
}

/// Writes `v` as JSON, as `serde_json` would.
fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Str(s) => write_str(out, s),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => match serde_json::Number::from_f64(*f) {
            Some(n) => {
                let _ = write!(out, "{n}");
            }
            None => out.extend_from_slice(b"null"),
        },
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
    }
}

/// Writes `s` as a JSON string, escaped as `serde_json` does.
pub(super) fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                let _ = write!(out, "\\u{b:04x}");
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The rows' order in the files, cut into partitions: (partition key,
/// rows sorted by (user name, time, seq)). `rank[r]` is row `r`'s user's
/// place in name order; `key` gives a row's partition by its time.
///
/// The scan gives each user's rows together in (time, seq) order, so a
/// (user, partition) is one run of rows and sorting the runs is enough;
/// if that ever did not hold, the rows are sorted one by one.
pub(super) fn partitions(
    rows: &Rows,
    rank: &[u32],
    key: impl Fn(i64) -> i64,
) -> Vec<(i64, Vec<u32>)> {
    let sort_key = |r: usize| (key(rows.time[r]), rank[r], rows.time[r], rows.seq[r]);
    // (partition, rank, first row, rows)
    let mut runs: Vec<(i64, u32, u32, u32)> = Vec::new();
    for (r, (&uid, &time)) in rows.uid.iter().zip(&rows.time).enumerate() {
        let k = key(time);
        match runs.last_mut() {
            Some(run) if run.0 == k && rows.uid[run.2 as usize] == uid => run.3 += 1,
            _ => runs.push((k, rank[r], r as u32, 1)),
        }
    }
    runs.sort_unstable();
    let mut idx: Vec<u32> = Vec::with_capacity(rows.len());
    for &(_, _, first, n) in &runs {
        idx.extend(first..first + n);
    }
    if idx
        .windows(2)
        .any(|w| sort_key(w[0] as usize) > sort_key(w[1] as usize))
    {
        idx.sort_unstable_by_key(|&r| sort_key(r as usize));
    }
    let mut out: Vec<(i64, Vec<u32>)> = Vec::new();
    for r in idx {
        let k = key(rows.time[r as usize]);
        match out.last_mut() {
            Some((last, v)) if *last == k => v.push(r),
            _ => out.push((k, vec![r])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_sort_by_user_name_time_and_seq() {
        let mut rows = Rows::default();
        // Two users (ids 0 and 1; 1's name sorts first) over two days, and
        // user 0 once more out of order, as a split scan would give it.
        for (uid, time, seq) in [(0, 5, 0), (0, 100, 1), (1, 7, 0), (1, 8, 1), (0, 3, 2)] {
            rows.uid.push(uid);
            rows.time.push(time);
            rows.seq.push(seq);
        }
        let rank: Vec<u32> = rows.uid.iter().map(|&u| 1 - u).collect();
        let parts = partitions(&rows, &rank, |t| t / 50);
        assert_eq!(parts, vec![(0, vec![2, 3, 4, 0]), (2, vec![1])]);
        let parts = partitions(&rows, &rank, |_| 0);
        assert_eq!(parts, vec![(0, vec![2, 3, 4, 0, 1])]);
    }

    #[test]
    fn strings_are_escaped_as_serde_json_does() {
        for s in [
            "plain",
            "q\"uote\\",
            "line\nfeed\t\u{1}\u{1f}",
            "用户/é",
            "",
        ] {
            let mut out = Vec::new();
            write_str(&mut out, s);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(s).unwrap()
            );
        }
        for v in [Value::Float(0.1), Value::Float(3.0), Value::Int(-7)] {
            let mut out = Vec::new();
            write_value(&mut out, &v);
            assert_eq!(String::from_utf8(out).unwrap(), v.to_json().to_string());
        }
    }
}
