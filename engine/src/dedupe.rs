//! Idempotent ingest: an event sent with an id (a tracker's `uuid`,
//! `messageId` or `$insert_id`) is stored at most once per (user, id), so
//! a client that resends a batch it saw no answer for never counts twice.
//!
//! The durable state is the events themselves: each stored event carries
//! its key as the property [`DEDUPE_PROP`] (a 64-bit hash of user and id,
//! written in the same WAL record as the event, so a crash can never keep
//! one without the other). In memory the keys of the last
//! [`WINDOW_DAYS`] days of event time (counted back from the newest event
//! seen) are kept per day; they are read back from the store the first
//! time an id arrives after opening. The memory is bounded by
//! `max_keys`: past it, the oldest days are forgotten first (the window
//! shrinks, and [`Dedupe::forgotten_days`] counts them).

use std::collections::{BTreeMap, HashSet};

use footprint_storage::{Event, ScanSpec, Store, Value};
use parking_lot::Mutex;

use crate::Result;

/// The property that holds an event's dedupe key.
pub const DEDUPE_PROP: &str = "$dedupe_key";
/// Days of event time within which a resent event is recognised.
pub const WINDOW_DAYS: i64 = 7;
const DAY_MS: i64 = 86_400_000;

/// The key of `id` sent for `user`: FNV-1a over both (with a separator
/// that cannot occur in UTF-8), then a 64-bit finaliser so that similar
/// ids spread. Stable across versions: it is stored on disk.
pub fn key(user: &str, id: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in user.bytes().chain([0xff]).chain(id.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h as i64
}

#[derive(Debug, Default)]
struct Keys {
    /// Day (of event time, UTC) → keys of events of that day.
    days: BTreeMap<i64, HashSet<i64>>,
    len: usize,
    newest_day: Option<i64>,
    /// Keys of events being written right now (not yet durable).
    pending: HashSet<i64>,
}

impl Keys {
    /// Whether `k` is stored (in the window); pending keys are not.
    fn contains(&self, k: i64) -> bool {
        self.days.values().any(|d| d.contains(&k))
    }

    fn insert(&mut self, time: i64, k: i64) {
        let day = time.div_euclid(DAY_MS);
        if self.days.entry(day).or_default().insert(k) {
            self.len += 1;
        }
        self.newest_day = Some(self.newest_day.map_or(day, |d| d.max(day)));
    }

    /// Forgets days outside the window, then the oldest days while over
    /// `max`; returns how many days went for the bound.
    fn trim(&mut self, max: usize) -> u64 {
        let Some(newest) = self.newest_day else {
            return 0;
        };
        while let Some((&day, _)) = self.days.first_key_value() {
            if day >= newest - WINDOW_DAYS {
                break;
            }
            if let Some(set) = self.days.remove(&day) {
                self.len -= set.len();
            }
        }
        let mut forgotten = 0;
        while self.len > max && self.days.len() > 1 {
            if let Some((_, set)) = self.days.pop_first() {
                self.len -= set.len();
                forgotten += 1;
            }
        }
        forgotten
    }
}

/// The in-memory index of recent dedupe keys (see the module docs).
#[derive(Debug)]
pub struct Dedupe {
    /// `None` until read back from the store.
    keys: Mutex<Option<Keys>>,
    max_keys: usize,
    forgotten: std::sync::atomic::AtomicU64,
}

/// What an idempotent ingest did.
#[derive(Debug, Clone, Default)]
pub struct IngestedOnce {
    /// As for a plain ingest.
    pub ingested: footprint_storage::Ingested,
    /// Events stored.
    pub stored: usize,
    /// Events left out because the same (user, id) was already stored or
    /// came earlier in the same batch.
    pub duplicates: usize,
}

impl Dedupe {
    /// An index that holds at most `max_keys` keys.
    pub fn new(max_keys: usize) -> Self {
        Dedupe {
            keys: Mutex::new(None),
            max_keys: max_keys.max(1),
            forgotten: Default::default(),
        }
    }

    /// Days forgotten early to stay within the key bound.
    pub fn forgotten_days(&self) -> u64 {
        self.forgotten.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Keys held in memory (after the first load).
    pub fn len(&self) -> usize {
        self.keys.lock().as_ref().map_or(0, |k| k.len)
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores the events whose (user, id) was not stored before, through
    /// `ingest`, and remembers their keys once that returned (it is
    /// durable then). Keys are reserved before the write, so two requests
    /// carrying the same event cannot both store it, and released if the
    /// write fails (the sender sees the error and retries). The lock is
    /// not held across the write: concurrent requests still share one
    /// group commit. `$dedupe_key` is reserved: a caller's own value of it
    /// is never stored.
    pub(crate) fn ingest_once(
        &self,
        store: &Store,
        events: Vec<(Event, Option<String>)>,
        ingest: impl FnOnce(Vec<Event>) -> Result<footprint_storage::Ingested>,
    ) -> Result<IngestedOnce> {
        let mut kept = Vec::with_capacity(events.len());
        let mut fresh: Vec<(i64, i64)> = Vec::new();
        let mut duplicates = 0;
        if events.iter().any(|(_, id)| id.is_some()) {
            let mut guard = self.keys.lock();
            if guard.is_none() {
                *guard = Some(load(store)?);
            }
            let Some(keys) = guard.as_mut() else {
                return Err(crate::Error::Invalid("dedupe index missing".into()));
            };
            for (mut e, id) in events {
                e.props.retain(|(n, _)| n != DEDUPE_PROP);
                if let Some(id) = id {
                    let k = key(&e.user, &id);
                    if keys.contains(k) || !keys.pending.insert(k) {
                        duplicates += 1;
                        continue;
                    }
                    e.props.push((DEDUPE_PROP.to_owned(), Value::Int(k)));
                    fresh.push((e.time, k));
                }
                kept.push(e);
            }
        } else {
            kept.extend(events.into_iter().map(|(mut e, _)| {
                e.props.retain(|(n, _)| n != DEDUPE_PROP);
                e
            }));
        }
        let stored = kept.len();
        let written = if kept.is_empty() {
            Ok(Default::default())
        } else {
            ingest(kept)
        };
        if !fresh.is_empty() {
            let mut guard = self.keys.lock();
            if let Some(keys) = guard.as_mut() {
                for &(_, k) in &fresh {
                    keys.pending.remove(&k);
                }
                if written.is_ok() {
                    for (t, k) in fresh {
                        keys.insert(t, k);
                    }
                    let n = keys.trim(self.max_keys);
                    self.forgotten
                        .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
        Ok(IngestedOnce {
            ingested: written?,
            stored,
            duplicates,
        })
    }
}

/// Reads the keys of the last [`WINDOW_DAYS`] days back from the store.
fn load(store: &Store) -> Result<Keys> {
    let mut keys = Keys::default();
    let Some(pid) = store.prop_id(DEDUPE_PROP) else {
        return Ok(keys);
    };
    let snap = store.snapshot();
    let newest = snap
        .shards
        .iter()
        .flat_map(|s| {
            let segs = s.segments.iter().map(|g| g.meta().max_time);
            let mem = s.mem.iter().filter_map(|r| r.times.iter().max().copied());
            segs.chain(mem).collect::<Vec<_>>()
        })
        .max();
    let Some(newest) = newest else {
        return Ok(keys);
    };
    let from = (newest.div_euclid(DAY_MS) - WINDOW_DAYS) * DAY_MS;
    let spec = ScanSpec {
        range: Some((from, i64::MAX)),
        props: vec![pid],
        ..ScanSpec::default()
    };
    for shard in &snap.shards {
        shard.scan(&spec, |u| {
            for i in 0..u.len() {
                if let (Some(Value::Int(k)), Some(&t)) = (u.prop(0, i), u.times.get(i)) {
                    keys.insert(t, *k);
                }
            }
        })?;
    }
    keys.trim(usize::MAX);
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_scoped_by_user() {
        // Stored on disk: this value must never change.
        assert_eq!(
            key("u1", "00000000-0000-4000-8000-000000000001"),
            key("u1", "00000000-0000-4000-8000-000000000001")
        );
        assert_ne!(key("u1", "a"), key("u2", "a"));
        assert_ne!(key("u1a", ""), key("u1", "a"));
        // Values from an independent Python model of the same function.
        assert_eq!(key("", ""), 0x1bbd_5c81_3c69_a8d7_u64 as i64);
        assert_eq!(key("u1", "a"), 0xdb17_ce99_3b65_9876_u64 as i64);
    }

    #[test]
    fn the_window_and_the_bound_forget_the_oldest_days() {
        let mut k = Keys::default();
        for day in 0..10 {
            k.insert(day * DAY_MS + 5, day);
        }
        assert_eq!(k.trim(usize::MAX), 0);
        // Newest day 9: days 2..=9 stay (7 days back, and the newest).
        assert_eq!(
            k.days.keys().copied().collect::<Vec<_>>(),
            (2..10).collect::<Vec<_>>()
        );
        assert!(!k.contains(1) && k.contains(2));
        assert_eq!(k.trim(3), 5);
        assert_eq!(k.len, 3);
        assert!(k.contains(9) && !k.contains(6));
    }
}
