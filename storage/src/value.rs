//! Property values as trackers send them: typed, schemaless.

use std::cmp::Ordering;

/// One property value. Integers and floats are one numeric family for
/// comparisons (`Int(10) == Float(10.0)`), but each keeps the variant it was
/// sent with, so data reads back exactly as written.
#[derive(Debug, Clone)]
pub enum Value {
    /// A UTF-8 string (arrays are stored as their JSON text).
    Str(String),
    /// An integer that fits in `i64`.
    Int(i64),
    /// Any other JSON number.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
}

/// The comparison family of a value: values of different families never compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Strings.
    String,
    /// Integers and floats.
    Number,
    /// Booleans.
    Bool,
}

impl Value {
    /// The comparison family.
    pub fn family(&self) -> Family {
        match self {
            Value::Str(_) => Family::String,
            Value::Int(_) | Value::Float(_) => Family::Number,
            Value::Bool(_) => Family::Bool,
        }
    }

    /// The numeric value, if a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The string, if a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Compares two values of the same family; `None` across families.
    /// Strings order by UTF-8 bytes; integers compare exactly, mixed
    /// integer/float numerically.
    pub fn compare(&self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Value::Str(a), Value::Str(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
            (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
            (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
            (a, b) => match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => x.partial_cmp(&y),
                _ => None,
            },
        }
    }

    /// Converts to JSON, keeping the variant.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Bool(b) => serde_json::Value::Bool(*b),
        }
    }

    /// Exact identity (same variant, same bits): the equality of storage
    /// round-trips, not of query comparisons.
    pub fn same(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::Bool(a), Value::Bool(b)) => a == b,
            _ => false,
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.same(other)
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// Properties of one event or profile: `(name, value)` pairs, names unique.
pub type Props = Vec<(String, Value)>;

// `same` is an equivalence relation (floats compare by bits).
impl Eq for Value {}

impl std::hash::Hash for Value {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        match self {
            Value::Str(s) => (0u8, s).hash(h),
            Value::Int(i) => (1u8, i).hash(h),
            Value::Float(f) => (2u8, f.to_bits()).hash(h),
            Value::Bool(b) => (3u8, b).hash(h),
        }
    }
}

/// The instant (epoch milliseconds) a text names: RFC 3339, a date
/// `YYYY-MM-DD` (midnight UTC), `YYYY-MM-DD HH:MM:SS` or
/// `YYYY-MM-DDTHH:MM:SS` without an offset (UTC), or epoch milliseconds.
pub fn time_of_str(s: &str) -> Option<i64> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    let t = s.trim();
    if let Some(ms) = plain_date(t.as_bytes()) {
        return Some(ms);
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().ok();
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.timestamp_millis());
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, f) {
            return Some(dt.and_utc().timestamp_millis());
        }
    }
    let d = NaiveDate::parse_from_str(t, "%Y-%m-%d").ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

/// `YYYY-MM-DD` at midnight UTC, read without a parser (profile conditions
/// read one per user); `None` for any other shape or an invalid date.
fn plain_date(b: &[u8]) -> Option<i64> {
    let [y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1] = *b else {
        return None;
    };
    let digits = [y0, y1, y2, y3, m0, m1, d0, d1];
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = |ds: &[u8]| ds.iter().fold(0i64, |a, &d| a * 10 + i64::from(d - b'0'));
    let (y, m, d) = (n(&digits[..4]), n(&digits[4..6]), n(&digits[6..]));
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days_in = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d < 1 || d > days_in[(m - 1) as usize] {
        return None;
    }
    // Days from civil (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400_000)
}

/// The instant a value names, read as a time: an integer is epoch
/// milliseconds, a text as [`time_of_str`] reads it.
pub fn time_of(v: &Value) -> Option<i64> {
    match v {
        Value::Int(ms) => Some(*ms),
        Value::Str(s) => time_of_str(s),
        _ => None,
    }
}

#[cfg(test)]
mod time_tests {
    use super::*;
    use chrono::Datelike;

    #[test]
    fn times_in_the_shapes_crms_export() {
        let day = 1_798_761_600_000; // 2027-01-01T00:00:00Z
        for s in [
            "2027-01-01",
            "2027-01-01T00:00:00Z",
            "2027-01-01 00:00:00",
            "2027-01-01T08:00:00+08:00",
            " 1798761600000 ",
        ] {
            assert_eq!(time_of_str(s), Some(day), "{s}");
        }
        assert_eq!(time_of(&Value::Int(5)), Some(5));
        // The fast date path agrees with chrono on every day of 400 years.
        let mut d = chrono::NaiveDate::from_ymd_opt(1900, 1, 1).unwrap();
        while d.year() < 2300 {
            let s = d.format("%Y-%m-%d").to_string();
            let want = d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis();
            assert_eq!(plain_date(s.as_bytes()), Some(want), "{s}");
            d = d.succ_opt().unwrap();
        }
        assert_eq!(plain_date(b"2027-02-29"), None);
        assert_eq!(plain_date(b"2028-02-29"), Some(1_835_395_200_000));
        for s in ["", "next week", "2027-13-01", "2027-01-01T00:00"] {
            assert_eq!(time_of_str(s), None, "{s}");
        }
        assert_eq!(time_of(&Value::Float(1.0)), None);
    }
}
