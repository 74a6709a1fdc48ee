//! The sessionizer every session-based kind shares (`sessions`, `paths`,
//! and later attribution's session entries): a small state machine fed one
//! user's visible rows in (time, arrival) order, saying which row starts a
//! new session. Semantics: ANALYSES.md "sessions" and NOTES.md 4–6.
//!
//! The caller applies `where` first (a filtered-out event neither starts
//! nor extends a session) and skips [`SessionRules::ignored`] events; the
//! sessionizer keeps only the previous row's time, the session's start and
//! the row holding the session's last `split` value, so nothing is
//! materialised per session.

use footprint_storage::{UserRows, Value};
use serde_json::Value as Json;

use crate::error::{QueryError, Result};
use crate::exec::Ctx;
use crate::json::{array, kind, Obj};
use crate::time::{parse_window, Clock, Unit, HOUR, MINUTE};

/// Default inactivity timeout (PostHog, GA4): 30 minutes.
pub const DEFAULT_TIMEOUT: i64 = 30 * MINUTE;
/// Default longest session: 24 hours.
pub const DEFAULT_MAX_LENGTH: i64 = 24 * HOUR;
/// Events that neither start nor extend a session unless the query says
/// otherwise (PostHog's non-activity events).
pub const DEFAULT_IGNORE: [&str; 4] = ["$identify", "$create_alias", "$set", "$merge_dangerously"];
/// The longest `max_length` (ms, about 49 days): a session's duration is
/// below it, so durations fit in 4 bytes.
pub const MAX_LENGTH_LIMIT: i64 = u32::MAX as i64;
/// The query fields [`SessionRules::parse`] reads.
pub const FIELDS: [&str; 4] = ["timeout", "max_length", "split", "ignore_events"];

/// The extra rule that splits sessions besides the timeout and cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Split {
    /// Only inactivity and `max_length`.
    Inactivity,
    /// Also when the local calendar date changes.
    Midnight,
    /// Also when this property's value differs from the last one the
    /// session saw (scan slot; `None` when no event has the property).
    Prop(Option<usize>),
}

/// How a query cuts a user's events into sessions.
#[derive(Debug, Clone)]
pub struct SessionRules {
    /// A gap of at least this long (ms) starts a new session.
    pub timeout: i64,
    /// A row at least this long (ms) after the session's start starts a new one.
    pub max_length: i64,
    /// The extra split rule.
    pub split: Split,
    /// Ignored event ids (`ignored[ev]`).
    ignored: Vec<bool>,
}

fn positive_duration(o: &mut Obj<'_>, key: &'static str, default: i64) -> Result<i64> {
    let p = o.at(key);
    match o.opt(key) {
        None => Ok(default),
        Some(v) => {
            let ms = parse_window(v, &p)?;
            if ms <= 0 {
                return Err(QueryError::invalid(
                    p,
                    "must be longer than 0 (a number of milliseconds or {\"value\": N, \"unit\": U})",
                ));
            }
            Ok(ms)
        }
    }
}

/// Reads a list of event names at `key` (`None` when absent); names no
/// event has are dropped silently (they can match nothing).
pub fn event_set(o: &mut Obj<'_>, key: &'static str, ctx: &Ctx<'_>) -> Result<Option<Vec<bool>>> {
    let p = o.at(key);
    let Some(v) = o.opt(key) else {
        return Ok(None);
    };
    let mut set = Vec::new();
    for (i, item) in array(v, &p)?.iter().enumerate() {
        let Json::String(name) = item else {
            return Err(QueryError::invalid(
                format!("{p}[{i}]"),
                format!("expected an event name, got {}", kind(item)),
            ));
        };
        mark(&mut set, ctx.quiet_event_id(name));
    }
    Ok(Some(set))
}

/// The set of the events named `names` that exist.
pub fn default_set(names: &[&str], ctx: &Ctx<'_>) -> Vec<bool> {
    let mut set = Vec::new();
    for n in names {
        mark(&mut set, ctx.quiet_event_id(n));
    }
    set
}

fn mark(set: &mut Vec<bool>, id: Option<u32>) {
    if let Some(id) = id {
        let id = id as usize;
        if set.len() <= id {
            set.resize(id + 1, false);
        }
        set[id] = true;
    }
}

/// Whether event `ev` is in `set` (from [`event_set`]).
#[inline]
pub fn in_set(set: &[bool], ev: u32) -> bool {
    set.get(ev as usize).copied().unwrap_or(false)
}

impl SessionRules {
    /// Reads `timeout`, `max_length`, `split` and `ignore_events`.
    pub fn parse(o: &mut Obj<'_>, ctx: &mut Ctx<'_>) -> Result<SessionRules> {
        let timeout = positive_duration(o, "timeout", DEFAULT_TIMEOUT)?;
        let max_length = positive_duration(o, "max_length", DEFAULT_MAX_LENGTH)?;
        if max_length > MAX_LENGTH_LIMIT {
            return Err(QueryError::invalid(
                o.at("max_length"),
                format!("{max_length} ms is too long; a session lasts at most {MAX_LENGTH_LIMIT} ms (about 49 days)"),
            ));
        }
        let split_path = o.at("split");
        let split = match o.opt("split") {
            None => Split::Inactivity,
            Some(Json::String(s)) if s == "inactivity" => Split::Inactivity,
            Some(Json::String(s)) if s == "midnight" => Split::Midnight,
            Some(v @ Json::Object(_)) => {
                let mut so = Obj::new(v, &split_path)?;
                let pp = so.at("prop");
                let name = so.req_str("prop")?;
                so.finish("prop")?;
                Split::Prop(ctx.slot(name, &pp)?)
            }
            Some(other) => {
                return Err(QueryError::invalid(
                    split_path,
                    format!(
                        "expected \"inactivity\", \"midnight\" or {{\"prop\": NAME}}, got {}",
                        crate::json::describe(other)
                    ),
                ))
            }
        };
        let ignored = match event_set(o, "ignore_events", ctx)? {
            Some(s) => s,
            None => default_set(&DEFAULT_IGNORE, ctx),
        };
        Ok(SessionRules {
            timeout,
            max_length,
            split,
            ignored,
        })
    }

    /// Rules with the defaults and no ignored events (for tests).
    pub fn new(timeout: i64, max_length: i64, split: Split) -> SessionRules {
        SessionRules {
            timeout,
            max_length,
            split,
            ignored: Vec::new(),
        }
    }

    /// Whether event `ev` neither starts nor extends a session.
    #[inline]
    pub fn ignored(&self, ev: u32) -> bool {
        in_set(&self.ignored, ev)
    }
}

/// One user's sessionizing state; reset with [`Sessionizer::user`].
pub struct Sessionizer<'r> {
    rules: &'r SessionRules,
    /// `split` is "midnight".
    midnight: bool,
    /// The slot of `split`'s property.
    prop: Option<usize>,
    clock: Clock,
    /// Time of the previous row, `None` before the user's first.
    prev: Option<i64>,
    start: i64,
    /// Local day of the previous row (midnight split).
    prev_day: i64,
    /// Row holding the last split value seen in the session.
    value_row: Option<usize>,
}

impl<'r> Sessionizer<'r> {
    /// A sessionizer for `rules`, calendar days in `tz`.
    pub fn new(rules: &'r SessionRules, tz: chrono_tz::Tz) -> Self {
        Sessionizer {
            rules,
            midnight: rules.split == Split::Midnight,
            prop: match rules.split {
                Split::Prop(k) => k,
                _ => None,
            },
            clock: Clock::new(tz),
            prev: None,
            start: 0,
            prev_day: 0,
            value_row: None,
        }
    }

    /// Starts a new user.
    pub fn user(&mut self) {
        self.prev = None;
        self.value_row = None;
    }

    /// Takes row `i` of `u` (visible, passing `where`, not ignored, rows in
    /// order); true when it starts a new session.
    #[inline(always)]
    pub fn starts(&mut self, u: &UserRows<'_>, i: usize) -> bool {
        if self.midnight || self.prop.is_some() {
            return self.starts_split(u, i);
        }
        // Only the timeout and the cap: small enough to inline into every
        // kind's row loop (this runs once per row of every user).
        let t = u.times[i];
        let new = match self.prev {
            None => true,
            Some(prev) => t - prev >= self.rules.timeout || t - self.start >= self.rules.max_length,
        };
        if new {
            self.start = t;
        }
        self.prev = Some(t);
        new
    }

    /// [`Sessionizer::starts`] with a midnight or property split.
    #[inline(never)]
    fn starts_split(&mut self, u: &UserRows<'_>, i: usize) -> bool {
        let t = u.times[i];
        let r = self.rules;
        let value = self.prop.and_then(|k| u.prop(k, i));
        let day = if self.midnight {
            self.clock.bucket(Unit::Day, t)
        } else {
            0
        };
        let new = match self.prev {
            None => true,
            Some(prev) => {
                t - prev >= r.timeout
                    || t - self.start >= r.max_length
                    || (self.midnight && day != self.prev_day)
                    || match (value, self.value_row, self.prop) {
                        (Some(v), Some(row), Some(k)) => {
                            !u.prop(k, row).is_some_and(|w| same_value(v, w))
                        }
                        _ => false,
                    }
            }
        };
        if new {
            self.start = t;
            self.value_row = None;
        }
        if value.is_some() {
            self.value_row = Some(i);
        }
        self.prev = Some(t);
        self.prev_day = day;
        new
    }
}

/// Equal by type family and value (`1` equals `1.0`, not `"1"`).
fn same_value(a: &Value, b: &Value) -> bool {
    a.compare(b) == Some(std::cmp::Ordering::Equal)
}

/// The string form of a property value (NOTES.md 2): strings as they
/// are, numbers as JSON prints them, booleans `true`/`false`.
pub fn str_form(v: &Value) -> String {
    crate::channels::string_form(v).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(rules: &SessionRules, times: &[i64], props: &[Option<Value>]) -> Vec<bool> {
        let events = vec![0u32; times.len()];
        let props: Vec<Vec<Option<Value>>> = props.iter().map(|p| vec![p.clone()]).collect();
        let u = UserRows::owned(1, times, &events, &props);
        let mut s = Sessionizer::new(rules, chrono_tz::Tz::UTC);
        s.user();
        (0..times.len()).map(|i| s.starts(&u, i)).collect()
    }

    #[test]
    fn timeout_is_inclusive_and_the_cap_counts_from_the_start() {
        let r = SessionRules::new(10, 25, Split::Inactivity);
        let none = vec![None; 6];
        // Gap 9 continues, gap 10 splits.
        assert_eq!(
            cut(&r, &[0, 9, 19, 20, 29, 38], &none),
            [true, false, true, false, false, false]
        );
        // 27 is 25 after the start at 0: the cap splits.
        assert_eq!(
            cut(&r, &[0, 9, 18, 27, 36, 45], &none),
            [true, false, false, true, false, false]
        );
    }

    #[test]
    fn a_prop_split_compares_with_the_last_value_seen() {
        let r = SessionRules::new(1000, 10_000, Split::Prop(Some(0)));
        let s = |x: &str| Some(Value::Str(x.into()));
        assert_eq!(
            cut(
                &r,
                &[0, 1, 2, 3, 4],
                &[None, s("a"), None, s("b"), Some(Value::Int(1))]
            ),
            [true, false, false, true, true]
        );
        assert_eq!(
            cut(&r, &[0, 1], &[Some(Value::Int(1)), Some(Value::Float(1.0))]),
            [true, false]
        );
    }

    #[test]
    fn string_forms() {
        assert_eq!(str_form(&Value::Int(42)), "42");
        assert_eq!(str_form(&Value::Bool(true)), "true");
        assert_eq!(str_form(&Value::Str("/a".into())), "/a");
    }
}
