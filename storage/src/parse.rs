//! Parsing ingest rows: NDJSON in Footprint's own shape or the shapes popular
//! trackers send, JSON arrays, and CSV with a header. Every rejected row is
//! reported with its line number and the reason; accepted rows are kept.

use serde_json::{Map, Value as Json};

use crate::event::{
    Event, ProfileOp, ProfileUpdate, MAX_NAME_LEN, MAX_PROPS, MAX_TIME, MAX_VALUE_LEN, MIN_TIME,
};
use crate::value::{Props, Value};

/// A rejected input row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RowError {
    /// 1-based line number (or array index + 1 for a JSON array).
    pub line: usize,
    /// Why the row was rejected.
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// The outcome of parsing a batch.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Accepted events, in input order.
    pub events: Vec<Event>,
    /// Rejected rows, in input order.
    pub errors: Vec<RowError>,
}

/// Input format of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Decide from the first non-blank character: `{` or `[` is JSON, anything else CSV.
    Auto,
    /// One JSON object per line (or a JSON array of objects).
    Json,
    /// CSV with a header `user,event,time,<prop>...`.
    Csv,
}

/// Parses a whole batch. `first_line` is the line number of the batch's first line.
pub fn parse_batch(input: &str, format: Format, first_line: usize) -> Parsed {
    let format = match format {
        Format::Auto => detect(input),
        f => f,
    };
    match format {
        Format::Csv => parse_csv(input, first_line),
        _ => {
            if input.trim_start().starts_with('[') {
                parse_json_array(input)
            } else {
                parse_ndjson(input, first_line)
            }
        }
    }
}

/// Guesses the format of an input from its first non-blank character.
pub fn detect(input: &str) -> Format {
    match input.trim_start().chars().next() {
        Some('{') | Some('[') => Format::Json,
        None => Format::Json,
        _ => Format::Csv,
    }
}

/// Parses NDJSON lines; blank lines are skipped.
pub fn parse_ndjson(input: &str, first_line: usize) -> Parsed {
    let mut out = Parsed::default();
    for (i, line) in input.lines().enumerate() {
        let n = first_line + i;
        if line.trim().is_empty() {
            continue;
        }
        match parse_json_line(line) {
            Ok(e) => out.events.push(e),
            Err(message) => out.errors.push(RowError { line: n, message }),
        }
    }
    out
}

fn parse_json_array(input: &str) -> Parsed {
    let mut out = Parsed::default();
    let rows: Vec<Json> = match serde_json::from_str(input) {
        Ok(r) => r,
        Err(e) => {
            out.errors.push(RowError {
                line: e.line(),
                message: format!("not a JSON array of events: {e}"),
            });
            return out;
        }
    };
    for (i, row) in rows.into_iter().enumerate() {
        match event_from_json(row) {
            Ok(e) => out.events.push(e),
            Err(message) => out.errors.push(RowError {
                line: i + 1,
                message: format!("array element {i}: {message}"),
            }),
        }
    }
    out
}

/// Parses one NDJSON line into an event.
pub fn parse_json_line(line: &str) -> Result<Event, String> {
    let v: Json = serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
    event_from_json(v)
}

/// Builds an event from a parsed JSON object in any accepted shape.
pub fn event_from_json(v: Json) -> Result<Event, String> {
    let Json::Object(mut obj) = v else {
        return Err(format!("expected a JSON object, got {}", json_kind(&v)));
    };
    let shape = if obj.contains_key("user") {
        Shape::Native
    } else if obj.contains_key("distinct_id") {
        Shape::DistinctId
    } else if obj.contains_key("userId") || obj.contains_key("anonymousId") {
        Shape::Segment
    } else {
        return Err(
            "missing user: expected one of \"user\", \"distinct_id\", \"userId\", \"anonymousId\""
                .into(),
        );
    };
    let (user, time, props) = match shape {
        Shape::Native => {
            for k in obj.keys() {
                if !matches!(k.as_str(), "user" | "event" | "time" | "props") {
                    return Err(format!(
                        "unknown field \"{k}\" (allowed: user, event, time, props)"
                    ));
                }
            }
            (
                obj.remove("user"),
                take_field(&mut obj, "time")?,
                obj.remove("props"),
            )
        }
        Shape::DistinctId => (
            obj.remove("distinct_id"),
            take_field(&mut obj, "timestamp")?,
            obj.remove("properties"),
        ),
        Shape::Segment => {
            if let Some(t) = obj.get("type") {
                if t.as_str() != Some("track") {
                    return Err(format!(
                        "Segment call of type {t} is not an event; only \"track\" calls are events (send identify traits as profile updates)"
                    ));
                }
            }
            let user = match obj.remove("userId") {
                Some(Json::Null) | None => obj.remove("anonymousId"),
                some => some,
            };
            (
                user,
                take_field(&mut obj, "timestamp")?,
                obj.remove("properties"),
            )
        }
    };
    let user = name_field(user, "user")?;
    let event = name_field(obj.remove("event"), "event")?;
    let time = parse_time(&time)?;
    let props = match props {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Object(m)) => flatten_props(m)?,
        Some(other) => {
            return Err(format!(
                "properties must be a JSON object, got {}",
                json_kind(&other)
            ))
        }
    };
    Ok(Event {
        user,
        event,
        time,
        props,
    })
}

enum Shape {
    Native,
    DistinctId,
    Segment,
}

fn take_field(obj: &mut Map<String, Json>, name: &str) -> Result<Json, String> {
    match obj.remove(name) {
        None | Some(Json::Null) => Err(format!("missing {name}")),
        Some(v) => Ok(v),
    }
}

fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn name_field(v: Option<Json>, what: &str) -> Result<String, String> {
    let s = match v {
        None | Some(Json::Null) => return Err(format!("missing {what}")),
        Some(Json::String(s)) => s,
        // Trackers commonly send numeric user ids; they name the same user as their text.
        Some(Json::Number(n)) if what == "user" => n.to_string(),
        Some(other) => {
            return Err(format!(
                "{what} must be a string, got {}",
                json_kind(&other)
            ))
        }
    };
    check_name(&s, what)?;
    Ok(s)
}

/// Checks a user id, event name or property name.
pub fn check_name(s: &str, what: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if s.len() > MAX_NAME_LEN {
        return Err(format!(
            "{what} is {} bytes long; at most {MAX_NAME_LEN} are allowed",
            s.len()
        ));
    }
    Ok(())
}

/// Parses an event time: integer epoch milliseconds, a string of digits, or
/// RFC 3339 with an explicit offset. Digits below the millisecond are
/// truncated.
pub fn parse_time(v: &Json) -> Result<i64, String> {
    let ms = match v {
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                i
            } else if let Some(f) = n.as_f64() {
                if f.fract() != 0.0 || !f.is_finite() || f.abs() > 9.0e15 {
                    return Err(format!(
                        "time {n} is not a whole number of milliseconds since 1970"
                    ));
                }
                f as i64
            } else {
                return Err(format!("time {n} is out of range"));
            }
        }
        Json::String(s) => parse_time_str(s)?,
        other => {
            return Err(format!(
                "time must be epoch milliseconds or an RFC 3339 string, got {}",
                json_kind(other)
            ))
        }
    };
    check_time(ms)
}

fn check_time(ms: i64) -> Result<i64, String> {
    if !(MIN_TIME..=MAX_TIME).contains(&ms) {
        return Err(format!(
            "time {ms} is out of range: expected milliseconds between 1970-01-01 and 9999-12-31"
        ));
    }
    Ok(ms)
}

/// Parses a time string: digits are epoch milliseconds, anything else must be
/// RFC 3339 with an offset (`Z` or `±hh:mm`).
pub fn parse_time_str(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse::<i64>()
            .map_err(|_| format!("time \"{s}\" is out of range"))
            .and_then(check_time);
    }
    match chrono::DateTime::parse_from_rfc3339(t) {
        Ok(dt) => check_time(dt.timestamp_millis()),
        Err(e) => {
            let hint = if chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f").is_ok() {
                " (it has no UTC offset: add Z or ±hh:mm)"
            } else {
                ""
            };
            Err(format!(
                "time \"{s}\" is not RFC 3339 ({e}){hint}; expected e.g. 2026-01-05T10:00:00Z or epoch milliseconds"
            ))
        }
    }
}

/// Flattens a JSON properties object: nested objects become dotted names,
/// arrays their JSON text, `null` is dropped.
pub fn flatten_props(m: Map<String, Json>) -> Result<Props, String> {
    let mut out = Vec::with_capacity(m.len());
    flatten_into(String::new(), m, &mut out, 0)?;
    if out.len() > MAX_PROPS {
        return Err(format!(
            "{} properties; at most {MAX_PROPS} are allowed per row",
            out.len()
        ));
    }
    let mut names: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!(
            "property \"{}\" is given twice (after flattening nested objects)",
            w[0]
        ));
    }
    Ok(out)
}

fn flatten_into(
    prefix: String,
    m: Map<String, Json>,
    out: &mut Props,
    depth: usize,
) -> Result<(), String> {
    if depth > 16 {
        return Err(format!(
            "property \"{prefix}\" nests objects more than 16 deep"
        ));
    }
    for (k, v) in m {
        let name = if prefix.is_empty() {
            k
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Json::Null => {}
            Json::Object(inner) => flatten_into(name, inner, out, depth + 1)?,
            other => {
                check_name(&name, "property name")?;
                let value = json_to_value(other, &name)?;
                out.push((name, value));
            }
        }
    }
    Ok(())
}

/// Converts a scalar or array JSON value to a stored value (`None` for null).
pub fn json_to_value(v: Json, name: &str) -> Result<Value, String> {
    let value = match v {
        Json::String(s) => Value::Str(s),
        Json::Bool(b) => Value::Bool(b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        a @ Json::Array(_) => Value::Str(a.to_string()),
        Json::Null | Json::Object(_) => {
            return Err(format!("property \"{name}\": internal: not a scalar"))
        }
    };
    if let Value::Str(s) = &value {
        if s.len() > MAX_VALUE_LEN {
            return Err(format!(
                "property \"{name}\" is {} bytes long; at most {MAX_VALUE_LEN} are allowed",
                s.len()
            ));
        }
    }
    if let Value::Float(f) = value {
        if !f.is_finite() {
            return Err(format!("property \"{name}\" is not a finite number"));
        }
    }
    Ok(value)
}

/// Infers a typed value from a CSV cell: empty is absent, JSON number
/// literals are numbers, `true`/`false` booleans, anything else a string.
pub fn csv_cell_value(cell: &str) -> Option<Value> {
    if cell.is_empty() {
        return None;
    }
    match cell {
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        _ => {}
    }
    let b = cell.as_bytes()[0];
    if b == b'-' || b.is_ascii_digit() {
        if let Ok(n) = serde_json::from_str::<serde_json::Number>(cell) {
            if let Some(i) = n.as_i64() {
                return Some(Value::Int(i));
            }
            if let Some(f) = n.as_f64().filter(|f| f.is_finite()) {
                return Some(Value::Float(f));
            }
        }
    }
    Some(Value::Str(cell.to_owned()))
}

/// Parses CSV with a header line `user,event,time,<prop>...`.
pub fn parse_csv(input: &str, first_line: usize) -> Parsed {
    let mut out = Parsed::default();
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input.as_bytes());
    let mut records = rdr.records();
    let header = match records.next() {
        None => return out,
        Some(Err(e)) => {
            out.errors.push(RowError {
                line: first_line,
                message: format!("unreadable CSV header: {e}"),
            });
            return out;
        }
        Some(Ok(h)) => h,
    };
    let cols: Vec<String> = header.iter().map(|s| s.trim().to_owned()).collect();
    if cols.len() < 3 || cols[0] != "user" || cols[1] != "event" || cols[2] != "time" {
        out.errors.push(RowError {
            line: first_line,
            message: format!(
                "CSV header must start with user,event,time; got {}",
                cols.join(",")
            ),
        });
        return out;
    }
    for (i, c) in cols.iter().enumerate().skip(3) {
        if let Err(m) = check_name(c, "property name") {
            out.errors.push(RowError {
                line: first_line,
                message: format!("CSV header column {}: {m}", i + 1),
            });
            return out;
        }
        if cols[..i].contains(c) {
            out.errors.push(RowError {
                line: first_line,
                message: format!("CSV header names column \"{c}\" twice"),
            });
            return out;
        }
    }
    for rec in records {
        let (line, rec) = match rec {
            Ok(r) => (
                r.position()
                    .map(|p| p.line() as usize + first_line - 1)
                    .unwrap_or(0),
                r,
            ),
            Err(e) => {
                let line = e
                    .position()
                    .map(|p| p.line() as usize + first_line - 1)
                    .unwrap_or(0);
                out.errors.push(RowError {
                    line,
                    message: format!("unreadable CSV row: {e}"),
                });
                continue;
            }
        };
        if rec.len() == 1 && rec.get(0).is_some_and(|c| c.trim().is_empty()) {
            continue;
        }
        if rec.len() != cols.len() {
            out.errors.push(RowError {
                line,
                message: format!(
                    "expected {} CSV columns (as in the header), got {}",
                    cols.len(),
                    rec.len()
                ),
            });
            continue;
        }
        match csv_row(&cols, &rec) {
            Ok(e) => out.events.push(e),
            Err(message) => out.errors.push(RowError { line, message }),
        }
    }
    out
}

fn csv_row(cols: &[String], rec: &csv::StringRecord) -> Result<Event, String> {
    let get = |i: usize| rec.get(i).unwrap_or("");
    let user = get(0).to_owned();
    check_name(&user, "user")?;
    let event = get(1).to_owned();
    check_name(&event, "event")?;
    let time = parse_time_str(get(2))?;
    let mut props = Vec::new();
    for (i, name) in cols.iter().enumerate().skip(3) {
        if let Some(v) = csv_cell_value(get(i)) {
            if let Value::Str(s) = &v {
                if s.len() > MAX_VALUE_LEN {
                    return Err(format!("property \"{name}\" is too long"));
                }
            }
            props.push((name.clone(), v));
        }
    }
    Ok(Event {
        user,
        event,
        time,
        props,
    })
}

/// Parses one profile update: `{"user": U, "op": "set|set_once|unset|add", "props": {...}}`
/// (for `unset`, `props` may also be a list of names).
pub fn parse_profile_update(v: Json) -> Result<ProfileUpdate, String> {
    let Json::Object(mut obj) = v else {
        return Err(format!("expected a JSON object, got {}", json_kind(&v)));
    };
    for k in obj.keys() {
        if !matches!(k.as_str(), "user" | "op" | "props") {
            return Err(format!("unknown field \"{k}\" (allowed: user, op, props)"));
        }
    }
    let user = name_field(obj.remove("user"), "user")?;
    let op = match obj.remove("op") {
        Some(Json::String(s)) => match s.as_str() {
            "set" => ProfileOp::Set,
            "set_once" => ProfileOp::SetOnce,
            "unset" => ProfileOp::Unset,
            "add" => ProfileOp::Add,
            other => {
                return Err(format!(
                    "unknown op \"{other}\" (allowed: set, set_once, unset, add)"
                ))
            }
        },
        None => return Err("missing op (set, set_once, unset, add)".into()),
        Some(other) => return Err(format!("op must be a string, got {}", json_kind(&other))),
    };
    let props = match (op, obj.remove("props")) {
        (_, None) | (_, Some(Json::Null)) => return Err("missing props".into()),
        (ProfileOp::Unset, Some(Json::Array(names))) => {
            let mut out = Vec::new();
            for n in names {
                match n {
                    Json::String(s) => {
                        check_name(&s, "property name")?;
                        out.push((s, Value::Bool(true)));
                    }
                    other => {
                        return Err(format!(
                            "props of unset must be property names, got {}",
                            json_kind(&other)
                        ))
                    }
                }
            }
            out
        }
        (_, Some(Json::Object(m))) => flatten_props(m)?,
        (_, Some(other)) => {
            return Err(format!(
                "props must be an object, got {}",
                json_kind(&other)
            ))
        }
    };
    if op == ProfileOp::Add {
        if let Some((k, _)) = props.iter().find(|(_, v)| v.as_f64().is_none()) {
            return Err(format!(
                "add needs numbers; property \"{k}\" is not a number"
            ));
        }
    }
    Ok(ProfileUpdate { user, op, props })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_shape() {
        let e = parse_json_line(
            r#"{"user":"u1","event":"signup","time":"2026-01-05T10:00:00Z","props":{"utm_source":"baidu","amount":12.5,"n":3,"ok":true,"x":null,"device":{"os":"ios"},"tags":[1,"a"]}}"#,
        )
        .unwrap();
        assert_eq!(e.user, "u1");
        assert_eq!(e.time, 1_767_607_200_000);
        assert_eq!(e.prop("amount"), Some(&Value::Float(12.5)));
        assert_eq!(e.prop("n"), Some(&Value::Int(3)));
        assert_eq!(e.prop("ok"), Some(&Value::Bool(true)));
        assert_eq!(e.prop("x"), None);
        assert_eq!(e.prop("device.os"), Some(&Value::Str("ios".into())));
        assert_eq!(e.prop("tags"), Some(&Value::Str(r#"[1,"a"]"#.into())));
    }

    #[test]
    fn tracker_shapes() {
        let e = parse_json_line(r#"{"distinct_id":"d1","event":"login","timestamp":1767607200000,"properties":{"plan":"pro"}}"#).unwrap();
        assert_eq!((e.user.as_str(), e.time), ("d1", 1_767_607_200_000));
        let e = parse_json_line(r#"{"type":"track","anonymousId":"a1","event":"visit","timestamp":"2026-01-05T18:00:00+08:00","properties":{},"context":{"ip":"1.2.3.4"}}"#).unwrap();
        assert_eq!((e.user.as_str(), e.time), ("a1", 1_767_607_200_000));
        let e =
            parse_json_line(r#"{"userId":"k1","anonymousId":"a1","event":"visit","timestamp":5}"#)
                .unwrap();
        assert_eq!(e.user, "k1");
    }

    #[test]
    fn errors_are_precise() {
        let cases = [
            ("nope", "not valid JSON"),
            ("[1]", "expected a JSON object"),
            (r#"{"event":"a","time":1}"#, "missing user"),
            (r#"{"user":"u","time":1}"#, "missing event"),
            (r#"{"user":"u","event":"a"}"#, "missing time"),
            (
                r#"{"user":"u","event":"a","time":"yesterday"}"#,
                "not RFC 3339",
            ),
            (
                r#"{"user":"u","event":"a","time":"2026-01-05T10:00:00"}"#,
                "no UTC offset",
            ),
            (r#"{"user":"u","event":"a","time":-5}"#, "out of range"),
            (
                r#"{"user":"u","event":"a","time":1e30}"#,
                "not a whole number",
            ),
            (r#"{"user":"","event":"a","time":1}"#, "user is empty"),
            (
                r#"{"user":"u","event":"a","time":1,"evnt":2}"#,
                "unknown field \"evnt\"",
            ),
            (
                r#"{"user":"u","event":"a","time":1,"props":3}"#,
                "must be a JSON object",
            ),
            (
                r#"{"user":"u","event":"a","time":1,"props":{"a.b":1,"a":{"b":2}}}"#,
                "given twice",
            ),
            (
                r#"{"user":"u","event":7,"time":1}"#,
                "event must be a string",
            ),
        ];
        for (line, want) in cases {
            let err = parse_json_line(line).unwrap_err();
            assert!(err.contains(want), "{line}: {err}");
        }
    }

    #[test]
    fn batch_keeps_good_rows_and_numbers_lines() {
        let input = "{\"user\":\"u\",\"event\":\"a\",\"time\":1}\n\nbad\n{\"user\":\"u\",\"event\":\"b\",\"time\":2}\n";
        let p = parse_batch(input, Format::Auto, 1);
        assert_eq!(p.events.len(), 2);
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].line, 3);
    }

    #[test]
    fn csv_rows() {
        let input = "user,event,time,amount,plan,zip\nu1,pay,1000,12.5,pro,01234\nu2,pay,2000\nu3,pay,notatime,1,a,b\n\"u,4\",visit,2026-01-05T10:00:00Z,,\"x\"\"y\",true\n";
        let p = parse_batch(input, Format::Auto, 1);
        assert_eq!(p.events.len(), 2, "{:?}", p.errors);
        assert_eq!(p.errors.len(), 2);
        assert_eq!(p.errors[0].line, 3);
        assert!(p.errors[0].message.contains("expected 6 CSV columns"));
        assert_eq!(p.errors[1].line, 4);
        let e = &p.events[0];
        assert_eq!(e.prop("amount"), Some(&Value::Float(12.5)));
        assert_eq!(e.prop("zip"), Some(&Value::Str("01234".into())));
        let e = &p.events[1];
        assert_eq!(e.user, "u,4");
        assert_eq!(e.prop("amount"), None);
        assert_eq!(e.prop("plan"), Some(&Value::Str("x\"y".into())));
        assert_eq!(e.prop("zip"), Some(&Value::Bool(true)));
    }

    #[test]
    fn csv_bad_header() {
        let p = parse_batch("usr,event,time\nu,a,1\n", Format::Csv, 1);
        assert!(p.events.is_empty());
        assert!(p.errors[0].message.contains("header"));
    }

    #[test]
    fn profile_updates() {
        let u = parse_profile_update(serde_json::json!({"user":"u","op":"add","props":{"n":2}}))
            .unwrap();
        assert_eq!(u.op, ProfileOp::Add);
        assert!(
            parse_profile_update(serde_json::json!({"user":"u","op":"add","props":{"n":"x"}}))
                .is_err()
        );
        let u = parse_profile_update(serde_json::json!({"user":"u","op":"unset","props":["plan"]}))
            .unwrap();
        assert_eq!(u.props[0].0, "plan");
        assert!(
            parse_profile_update(serde_json::json!({"user":"u","op":"merge","props":{}})).is_err()
        );
    }
}
