//! The live tail behind `GET /v1/live`: the last events this server stored
//! (from `/v1/events` and the tracker endpoints) and how many it stored in
//! each of the last minutes, so that a person wiring a tracker sees its
//! events arrive. Held in memory only: it starts empty with the server.
//!
//! Lock: [`Live`] holds one mutex, its own; nothing else is locked while it
//! is held, and it is never taken inside another lock.

use std::collections::VecDeque;
use std::sync::Mutex;

use footprint_engine::Event;
use serde_json::{json, Map, Value as Json};

/// Events kept for the tail.
pub const KEEP: usize = 100;
/// Minutes counted, the current one included.
pub const MINUTES: usize = 60;
const MINUTE_MS: i64 = 60_000;

/// The tail and the per-minute counts.
pub struct Live {
    started: i64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Newest last.
    recent: VecDeque<(i64, Event)>,
    /// (minute start, events stored in it), oldest first, minutes with
    /// none left out.
    minutes: VecDeque<(i64, u64)>,
    total: u64,
}

/// The last [`KEEP`] of `events`, copied before they are written.
pub fn tail<'a>(events: impl DoubleEndedIterator<Item = &'a Event>) -> Vec<Event> {
    let mut t: Vec<Event> = events.rev().take(KEEP).cloned().collect();
    t.reverse();
    t
}

impl Live {
    /// An empty tail for a server started at `now` (epoch ms).
    pub fn new(now: i64) -> Self {
        Live {
            started: now,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Records a write at `now` of `stored` events, of which `tail` are the
    /// last (in the order sent).
    pub fn record(&self, tail: Vec<Event>, stored: usize, now: i64) {
        if stored == 0 {
            return;
        }
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.total += stored as u64;
        let minute = now.div_euclid(MINUTE_MS) * MINUTE_MS;
        match g.minutes.back_mut() {
            Some((m, n)) if *m == minute => *n += stored as u64,
            _ => g.minutes.push_back((minute, stored as u64)),
        }
        let oldest = minute - (MINUTES as i64 - 1) * MINUTE_MS;
        while g.minutes.front().is_some_and(|(m, _)| *m < oldest) {
            g.minutes.pop_front();
        }
        for e in tail {
            if g.recent.len() == KEEP {
                g.recent.pop_front();
            }
            g.recent.push_back((now, e));
        }
    }

    /// The events held, oldest first, with when each was received.
    pub fn recent(&self) -> Vec<(i64, Event)> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.recent.iter().cloned().collect()
    }

    /// The answer of `GET /v1/live` for a key scoped to some users: the
    /// last `limit` events of users `admits` takes, newest first, and no
    /// counts (they count everyone's events).
    pub fn snapshot_of(&self, limit: usize, now: i64, admits: impl Fn(&str) -> bool) -> Json {
        let events: Vec<Json> = self
            .recent()
            .iter()
            .rev()
            .filter(|(_, e)| admits(&e.user))
            .take(limit)
            .map(|(at, e)| event_json(*at, e))
            .collect();
        json!({"since": self.started, "now": now, "total": null, "events": events, "per_minute": null})
    }

    /// The answer of `GET /v1/live`: the last `limit` events, newest first,
    /// and the count of every one of the last [`MINUTES`] minutes up to
    /// `now`, oldest first (zeros included).
    pub fn snapshot(&self, limit: usize, now: i64) -> Json {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let events: Vec<Json> = g
            .recent
            .iter()
            .rev()
            .take(limit)
            .map(|(at, e)| event_json(*at, e))
            .collect();
        let last = now.div_euclid(MINUTE_MS) * MINUTE_MS;
        let per_minute: Vec<Json> = (0..MINUTES as i64)
            .rev()
            .map(|k| {
                let m = last - k * MINUTE_MS;
                let n = g
                    .minutes
                    .iter()
                    .find(|(x, _)| *x == m)
                    .map_or(0, |(_, n)| *n);
                json!({"minute": m, "events": n})
            })
            .collect();
        json!({"since": self.started, "now": now, "total": g.total, "events": events, "per_minute": per_minute})
    }
}

fn event_json(at: i64, e: &Event) -> Json {
    let props: Map<String, Json> = e
        .props
        .iter()
        .map(|(k, v)| (k.clone(), v.to_json()))
        .collect();
    json!({"received": at, "user": e.user, "event": e.event, "time": e.time, "props": props})
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(i: i64) -> Event {
        Event {
            user: format!("u{i}"),
            event: "visit".into(),
            time: i,
            props: vec![("n".into(), footprint_engine::Value::Int(i))],
        }
    }

    #[test]
    fn keeps_the_last_events_and_counts_minutes() {
        let t0 = 1_767_225_600_000; // a minute boundary
        let live = Live::new(t0);
        let all: Vec<Event> = (0..150).map(ev).collect();
        live.record(tail(all.iter()), all.len(), t0 + 1_000);
        live.record(vec![ev(500)], 1, t0 + 59_999);
        live.record(vec![ev(600), ev(601)], 2, t0 + 2 * MINUTE_MS + 5);
        let s = live.snapshot(3, t0 + 2 * MINUTE_MS + 10);
        assert_eq!(s["total"], 153);
        let names: Vec<&str> = s["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["user"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["u601", "u600", "u500"]);
        assert_eq!(s["events"][0]["props"]["n"], 601);
        let pm = s["per_minute"].as_array().unwrap();
        assert_eq!(pm.len(), MINUTES);
        let counts: Vec<u64> = pm[MINUTES - 3..]
            .iter()
            .map(|m| m["events"].as_u64().unwrap())
            .collect();
        assert_eq!(counts, [151, 0, 2]);
        assert_eq!(pm[MINUTES - 1]["minute"], t0 + 2 * MINUTE_MS);
        // At most KEEP events are held, the newest.
        let s = live.snapshot(1000, t0 + 2 * MINUTE_MS);
        assert_eq!(s["events"].as_array().unwrap().len(), KEEP);
        assert_eq!(s["events"][KEEP - 1]["user"], "u53");
        // An hour later the old minutes are gone, the total stays.
        live.record(vec![ev(700)], 1, t0 + 70 * MINUTE_MS);
        let s = live.snapshot(0, t0 + 70 * MINUTE_MS);
        let sum: u64 = s["per_minute"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["events"].as_u64().unwrap())
            .sum();
        assert_eq!((sum, s["total"].as_u64()), (1, Some(154)));
    }
}
