//! Times, windows and calendar buckets in a time zone.

use chrono::{Offset, TimeZone};
use chrono_tz::Tz;
use serde_json::Value;

use crate::error::{QueryError, Result};
use crate::json::{describe, Obj};

/// Milliseconds per minute.
pub const MINUTE: i64 = 60_000;
/// Milliseconds per hour.
pub const HOUR: i64 = 3_600_000;
/// Milliseconds per day.
pub const DAY: i64 = 86_400_000;

/// Reads a time: epoch milliseconds (number or digit string) or RFC 3339
/// with an offset.
pub fn parse_instant(v: &Value, path: &str) -> Result<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                    .map(|f| f as i64)
            })
            .ok_or_else(|| {
                QueryError::invalid(path, format!("{n} is not a whole number of milliseconds"))
            }),
        Value::String(s) => {
            footprint_storage::parse::parse_time_str(s).map_err(|m| QueryError::invalid(path, m))
        }
        other => Err(QueryError::invalid(
            path,
            format!(
                "expected epoch milliseconds or an RFC 3339 string, got {}",
                describe(other)
            ),
        )),
    }
}

/// Reads a duration: `{"value": N, "unit": U}` or a bare number of ms.
pub fn parse_window(v: &Value, path: &str) -> Result<i64> {
    if let Value::Number(_) = v {
        let ms = crate::json::uint(v, path, i64::MAX as u64)?;
        return Ok(ms as i64);
    }
    let mut o = Obj::new(v, path)?;
    let value = crate::json::uint(o.req("value")?, &o.at("value"), i64::MAX as u64)?;
    let unit_path = o.at("unit");
    let unit = o.req_str("unit")?;
    let per = match unit {
        "millisecond" | "milliseconds" | "ms" => 1,
        "second" | "seconds" => 1000,
        "minute" | "minutes" => 60_000,
        "hour" | "hours" => HOUR,
        "day" | "days" => DAY,
        "week" | "weeks" => 7 * DAY,
        other => {
            return Err(QueryError::invalid(
                unit_path,
                format!(
                "unknown unit \"{other}\"; allowed: millisecond, second, minute, hour, day, week"
            ),
            ))
        }
    };
    o.finish("value, unit")?;
    (value as i64)
        .checked_mul(per)
        .ok_or_else(|| QueryError::invalid(path, "window is too long"))
}

/// Reads an IANA time zone name.
pub fn parse_tz(name: &str, path: &str) -> Result<Tz> {
    name.parse::<Tz>().map_err(|_| {
        let known = chrono_tz::TZ_VARIANTS.iter().map(|t| t.name());
        let hint = crate::suggest::nearest(name, known)
            .map(|s| format!(" (did you mean \"{s}\"?)"))
            .unwrap_or_default();
        QueryError::invalid(
            path,
            format!(
                "unknown time zone \"{name}\"{hint}; use an IANA name such as Asia/Shanghai or UTC"
            ),
        )
    })
}

/// Calendar unit of buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Clock minutes (real minutes, local labels).
    Minute,
    /// Clock hours (real hours, local labels).
    Hour,
    /// Local calendar days.
    Day,
    /// ISO weeks starting Monday.
    Week,
    /// Local calendar months.
    Month,
}

impl Unit {
    /// Parses a unit name.
    pub fn parse(s: &str, path: &str) -> Result<Unit> {
        Ok(match s {
            "hour" => Unit::Hour,
            "day" => Unit::Day,
            "week" => Unit::Week,
            "month" => Unit::Month,
            other => {
                return Err(QueryError::invalid(
                    path,
                    format!("unknown unit \"{other}\"; allowed: hour, day, week, month"),
                ))
            }
        })
    }
}

/// Maps instants to local wall-clock time, caching the UTC offset per UTC hour.
pub struct Clock {
    tz: Tz,
    utc: bool,
    cache: Vec<(i64, i64)>,
}

const CACHE: usize = 4096;

impl Clock {
    /// A clock for `tz`.
    pub fn new(tz: Tz) -> Self {
        Clock {
            tz,
            utc: tz == Tz::UTC || tz == Tz::Etc__UTC,
            cache: vec![(i64::MIN, 0); CACHE],
        }
    }

    fn offset_exact(&self, t: i64) -> i64 {
        match self.tz.timestamp_millis_opt(t) {
            chrono::LocalResult::Single(dt) => {
                i64::from(dt.offset().fix().local_minus_utc()) * 1000
            }
            _ => 0,
        }
    }

    /// Local wall-clock milliseconds ("as if UTC") of instant `t`.
    pub fn local(&mut self, t: i64) -> i64 {
        if self.utc {
            return t;
        }
        let h = t.div_euclid(HOUR);
        let slot = (h as usize) % CACHE;
        let (key, off) = self.cache[slot];
        if key == h {
            return t + off;
        }
        let a = self.offset_exact(h * HOUR);
        let b = self.offset_exact(h * HOUR + HOUR - 1);
        if a == b {
            self.cache[slot] = (h, a);
            t + a
        } else {
            // The offset changes inside this hour: no caching.
            t + self.offset_exact(t)
        }
    }

    /// The bucket of instant `t`: an ordinal for period arithmetic (hours:
    /// the bucket start instant / 1h; days: local day number; weeks: Monday
    /// count; months: year·12 + month) and the bucket's start instant.
    pub fn bucket(&mut self, unit: Unit, t: i64) -> i64 {
        let l = self.local(t);
        match unit {
            Unit::Minute => t - l.rem_euclid(MINUTE),
            Unit::Hour => t - l.rem_euclid(HOUR),
            Unit::Day => l.div_euclid(DAY),
            Unit::Week => (l.div_euclid(DAY) + 3).div_euclid(7),
            Unit::Month => {
                let (y, m, _) = civil(l.div_euclid(DAY));
                y * 12 + (m - 1)
            }
        }
    }

    /// Periods between two buckets from [`Clock::bucket`].
    pub fn periods(unit: Unit, from: i64, to: i64) -> i64 {
        match unit {
            Unit::Minute => (to - from).div_euclid(MINUTE),
            Unit::Hour => (to - from).div_euclid(HOUR),
            _ => to - from,
        }
    }

    /// The bucket `k` periods after bucket `b` (the inverse of
    /// [`Clock::periods`]).
    pub fn advance(unit: Unit, b: i64, k: i64) -> i64 {
        match unit {
            Unit::Minute => b + k * MINUTE,
            Unit::Hour => b + k * HOUR,
            _ => b + k,
        }
    }

    /// The label of a bucket: `YYYY-MM-DDTHH:MM`, `YYYY-MM-DDTHH`,
    /// `YYYY-MM-DD`, Monday's date, `YYYY-MM`.
    pub fn label(&mut self, unit: Unit, bucket: i64) -> String {
        match unit {
            Unit::Minute => {
                let l = self.local(bucket);
                let (y, m, d) = civil(l.div_euclid(DAY));
                let s = l.rem_euclid(DAY);
                format!(
                    "{y:04}-{m:02}-{d:02}T{:02}:{:02}",
                    s / HOUR,
                    s % HOUR / MINUTE
                )
            }
            Unit::Hour => {
                let l = self.local(bucket);
                let (y, m, d) = civil(l.div_euclid(DAY));
                format!("{y:04}-{m:02}-{d:02}T{:02}", l.rem_euclid(DAY) / HOUR)
            }
            Unit::Day => {
                let (y, m, d) = civil(bucket);
                format!("{y:04}-{m:02}-{d:02}")
            }
            Unit::Week => {
                let (y, m, d) = civil(bucket * 7 - 3);
                format!("{y:04}-{m:02}-{d:02}")
            }
            Unit::Month => format!(
                "{:04}-{:02}",
                bucket.div_euclid(12),
                bucket.rem_euclid(12) + 1
            ),
        }
    }
}

/// (year, month, day) of a day number (days since 1970-01-01).
pub fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        footprint_storage::parse::parse_time_str(s).unwrap()
    }

    #[test]
    fn buckets_and_labels() {
        let mut ny = Clock::new(parse_tz("America/New_York", "").unwrap());
        // Fall back: two 01:00 hours, one hour apart, same label.
        let a = ny.bucket(Unit::Hour, ms("2024-11-03T05:30:00Z"));
        let b = ny.bucket(Unit::Hour, ms("2024-11-03T06:30:00Z"));
        assert_eq!(Clock::periods(Unit::Hour, a, b), 1);
        assert_eq!(ny.label(Unit::Hour, a), "2024-11-03T01");
        assert_eq!(ny.label(Unit::Hour, b), "2024-11-03T01");
        // Spring forward: 01:30 EST → 03:30 EDT is one period.
        let a = ny.bucket(Unit::Hour, ms("2024-03-10T06:30:00Z"));
        let b = ny.bucket(Unit::Hour, ms("2024-03-10T07:30:00Z"));
        assert_eq!(Clock::periods(Unit::Hour, a, b), 1);
        assert_eq!(ny.label(Unit::Hour, b), "2024-03-10T03");
        let mut sh = Clock::new(parse_tz("Asia/Shanghai", "").unwrap());
        let d = sh.bucket(Unit::Day, ms("2024-06-01T16:00:00Z"));
        assert_eq!(sh.label(Unit::Day, d), "2024-06-02");
        let w = sh.bucket(Unit::Week, ms("2024-06-02T16:00:00Z"));
        assert_eq!(sh.label(Unit::Week, w), "2024-06-03");
        let m = sh.bucket(Unit::Month, ms("2023-12-31T16:00:00Z"));
        assert_eq!(sh.label(Unit::Month, m), "2024-01");
        let mut kol = Clock::new(parse_tz("Asia/Kolkata", "").unwrap());
        let a = kol.bucket(Unit::Hour, ms("2024-06-01T00:29:00Z"));
        let b = kol.bucket(Unit::Hour, ms("2024-06-01T00:31:00Z"));
        assert_eq!(kol.label(Unit::Hour, a), "2024-06-01T05");
        assert_eq!(kol.label(Unit::Hour, b), "2024-06-01T06");
        assert!(parse_tz("Asia/Shangai", "timezone")
            .unwrap_err()
            .to_string()
            .contains("Asia/Shanghai"));
    }

    #[test]
    fn windows() {
        assert_eq!(parse_window(&serde_json::json!(5), "w").unwrap(), 5);
        assert_eq!(
            parse_window(&serde_json::json!({"value": 7, "unit": "day"}), "w").unwrap(),
            7 * DAY
        );
        assert!(parse_window(&serde_json::json!(-1), "w").is_err());
        assert!(parse_window(&serde_json::json!({"value": 1, "unit": "fortnight"}), "w").is_err());
    }
}
