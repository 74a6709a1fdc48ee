//! Calendar buckets in ClickHouse, from its own time-zone functions on
//! `fromUnixTimestamp64Milli(ts, tz)` (SEMANTICS.md §2.1–2.2): the
//! engine's `Clock` buckets and periods.

use super::{num_leaf, quote, text_leaf};
use crate::time::Unit;

/// The bucket of the instant `ts` (Int64 ms) and its label format.
pub(super) fn bucket(unit: Unit, tz: &str, ts: &str) -> (String, &'static str) {
    let local = format!("fromUnixTimestamp64Milli({ts}, {tz})");
    match unit {
        Unit::Minute => (format!("toStartOfMinute({local})"), "%Y-%m-%dT%H:%i"),
        Unit::Hour => (format!("toStartOfHour({local})"), "%Y-%m-%dT%H"),
        Unit::Day => (format!("toDate({local})"), "%Y-%m-%d"),
        Unit::Week => (format!("toMonday(toDate({local}))"), "%Y-%m-%d"),
        Unit::Month => (format!("toStartOfMonth(toDate({local}))"), "%Y-%m"),
    }
}

/// Periods from bucket `c` to bucket `b` (both bucket starts).
pub(super) fn periods(unit: Unit, c: &str, b: &str) -> String {
    match unit {
        // Real minutes and hours between the bucket starts.
        Unit::Minute => format!("dateDiff('minute', {c}, {b})"),
        Unit::Hour => format!("dateDiff('hour', {c}, {b})"),
        Unit::Day => format!("dateDiff('day', {c}, {b})"),
        Unit::Week => format!("intDiv(dateDiff('day', {c}, {b}), 7)"),
        Unit::Month => format!("dateDiff('month', {c}, {b})"),
    }
}

/// The grid offset of the instant `ts`: periods from the bucket of the
/// instant `first` (ms) to the bucket of `ts` (the engine's
/// `Grid::offset`).
pub(super) fn offset(unit: Unit, tz: &str, first: i64, ts: &str) -> String {
    let (f, _) = bucket(unit, tz, &format!("toInt64({first})"));
    let (b, _) = bucket(unit, tz, ts);
    periods(unit, &f, &b)
}

/// The buckets of a query's `time_range` as the engine's grid has them:
/// the instant that starts the range and the buckets' labels.
pub(super) struct Grid {
    /// The range's start (ms): its bucket is bucket 0.
    pub from: i64,
    /// Unit of the buckets.
    pub unit: Unit,
    /// Each bucket's label, in order.
    pub labels: Vec<String>,
}

impl Grid {
    /// The `buckets` leaves (labels), an Array expression.
    pub(super) fn label_leaves(&self) -> String {
        let mut leaves = vec![num_leaf("'buckets[]'", "NULL")];
        for (i, l) in self.labels.iter().enumerate() {
            leaves.push(text_leaf(&format!("'buckets[{i}]'"), &quote(l)));
        }
        format!("[{}]", leaves.join(", "))
    }
}
