//! Parsing ingest rows: NDJSON in Footprint's own shape or the shapes popular
//! trackers send, JSON arrays, and CSV with a header. Every rejected row is
//! reported with its line number and the reason; accepted rows are kept.

use serde_json::{Map, Value as Json};

use crate::event::{
    Alias, Event, ProfileOp, ProfileUpdate, MAX_NAME_LEN, MAX_PROPS, MAX_TIME, MAX_VALUE_LEN,
    MIN_TIME,
};
use crate::value::{Props, Value};

mod array;
mod fast;
mod profiles;

pub use profiles::{parse_profile_array_part, parse_profile_batch, parse_profile_csv};

pub use array::{array_cut, ArrayPart};

/// How many rejected rows a batch describes, with line and reason; rows
/// rejected beyond these are only counted. Hostile input (millions of bad
/// rows) then costs a count, not a message per row.
pub const MAX_ROW_ERRORS: usize = 100;

/// Longest JSON row (an NDJSON line or an array element) that is parsed;
/// longer ones are rejected unread. A row's JSON tree takes up to ten times
/// its text, so this bounds what one row can hold while it is parsed; any
/// row within the per-row limits (1000 properties, ids and names of 1 KiB)
/// of a real tracker is far smaller.
pub const MAX_ROW_LEN: usize = 4 << 20;

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

/// The rows of a batch: the accepted ones, and the rejected ones described
/// up to [`MAX_ROW_ERRORS`] and counted in full.
#[derive(Debug)]
pub struct Rows<T> {
    /// Accepted rows, in input order.
    pub rows: Vec<T>,
    /// The first [`MAX_ROW_ERRORS`] rejected rows, in input order.
    pub errors: Vec<RowError>,
    /// How many rows were rejected in all.
    pub rejected: usize,
}

impl<T> Default for Rows<T> {
    fn default() -> Self {
        Rows {
            rows: Vec::new(),
            errors: Vec::new(),
            rejected: 0,
        }
    }
}

impl<T> Rows<T> {
    /// Counts a rejected row; describes it while fewer than
    /// [`MAX_ROW_ERRORS`] are described.
    pub fn reject(&mut self, line: usize, message: impl Into<String>) {
        self.rejected += 1;
        if self.errors.len() < MAX_ROW_ERRORS {
            self.errors.push(RowError {
                line,
                message: message.into(),
            });
        }
    }

    fn take(&mut self, line: usize, row: Result<T, String>) {
        match row {
            Ok(r) => self.rows.push(r),
            Err(message) => self.reject(line, message),
        }
    }
}

/// The outcome of parsing a batch of events.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Accepted events, in input order.
    pub events: Vec<Event>,
    /// The first [`MAX_ROW_ERRORS`] rejected rows, in input order.
    pub errors: Vec<RowError>,
    /// How many rows were rejected in all.
    pub rejected: usize,
}

impl From<Rows<Event>> for Parsed {
    fn from(r: Rows<Event>) -> Self {
        Parsed {
            events: r.rows,
            errors: r.errors,
            rejected: r.rejected,
        }
    }
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

/// Parses a whole batch. `first_line` is the line number of the batch's
/// first line (for a JSON array, the number of its first element).
///
/// The input is bytes, not text: a row that is not valid UTF-8 is rejected
/// with its line like any other bad row, and the rows around it are kept.
pub fn parse_batch(input: impl AsRef<[u8]>, format: Format, first_line: usize) -> Parsed {
    let input = input.as_ref();
    let format = match format {
        Format::Auto => detect(input),
        f => f,
    };
    match format {
        Format::Csv => parse_csv(input, first_line),
        _ => parse_json_rows_with(
            input,
            first_line,
            |l| fast_event(l).map(Ok),
            event_from_json,
        )
        .into(),
    }
}

/// Guesses the format of an input from its first non-blank byte.
pub fn detect(input: impl AsRef<[u8]>) -> Format {
    match input.as_ref().iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') | Some(b'[') | None => Format::Json,
        _ => Format::Csv,
    }
}

/// True when `input` is a JSON array (its first non-blank byte is `[`),
/// false for NDJSON.
pub fn is_json_array(input: &[u8]) -> bool {
    input.iter().find(|b| !array::is_ws(**b)) == Some(&b'[')
}

/// Parses the rows of an NDJSON or JSON-array body with `f`, one row at a
/// time: a row's JSON tree is dropped before the next is parsed, so memory
/// follows the accepted rows, never the whole body as JSON. Line numbers
/// start at `first_line` (for an array, the number of its first element).
pub fn parse_json_rows<T>(
    input: impl AsRef<[u8]>,
    first_line: usize,
    f: impl FnMut(Json) -> Result<T, String>,
) -> Rows<T> {
    parse_json_rows_with(input, first_line, |_| None, f)
}

/// An event read straight from a plain native NDJSON row, without a JSON
/// tree; `None` when the row needs the general parser (see `fast.rs`:
/// both read a row the fast path takes the same way).
pub fn fast_event(line: &str) -> Option<Event> {
    fast::native_row(line)
}

/// [`parse_json_rows`], trying `fast` on each NDJSON line first: what it
/// returns is the row's outcome, and `None` sends the line to `f` through
/// a JSON tree.
pub fn parse_json_rows_with<T>(
    input: impl AsRef<[u8]>,
    first_line: usize,
    mut fast: impl FnMut(&str) -> Option<Result<T, String>>,
    mut f: impl FnMut(Json) -> Result<T, String>,
) -> Rows<T> {
    let input = input.as_ref();
    if is_json_array(input) {
        return array_rows(input, first_line, ArrayPart::default(), f);
    }
    let mut out = Rows::default();
    for (i, line) in input.split(|&b| b == b'\n').enumerate() {
        let n = first_line + i;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let row = match std::str::from_utf8(line) {
            _ if line.len() > MAX_ROW_LEN => Err(too_long(line.len())),
            Err(e) => Err(not_utf8(&e)),
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) => match fast(line) {
                Some(row) => row,
                None => serde_json::from_str(line)
                    .map_err(|e| format!("not valid JSON: {e}"))
                    .and_then(&mut f),
            },
        };
        out.take(n, row);
    }
    out
}

/// Parses the events of a piece of a JSON array that [`array_cut`] cut out
/// of a larger one; `first` is the number of its first element. The pieces
/// of an array parse to the same rows and errors as the whole.
pub fn parse_json_array_part(input: impl AsRef<[u8]>, first: usize, part: ArrayPart) -> Parsed {
    array_rows(input.as_ref(), first, part, event_from_json).into()
}

fn array_rows<T>(
    input: &[u8],
    first: usize,
    part: ArrayPart,
    mut f: impl FnMut(Json) -> Result<T, String>,
) -> Rows<T> {
    let mut out = Rows::default();
    array::split(input, part, |index, element| {
        let n = first + index;
        let row = element
            .and_then(|bytes| match bytes.len() {
                n if n > MAX_ROW_LEN => Err(too_long(n)),
                _ => Ok(bytes),
            })
            .and_then(|bytes| std::str::from_utf8(bytes).map_err(|e| not_utf8(&e)))
            .and_then(|text| serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}")))
            .and_then(&mut f)
            .map_err(|m| format!("array element {}: {m}", n - 1));
        out.take(n, row);
    });
    out
}

fn too_long(len: usize) -> String {
    format!(
        "the row is {len} bytes long; at most {} MiB are read",
        MAX_ROW_LEN >> 20
    )
}

fn not_utf8(e: &std::str::Utf8Error) -> String {
    format!(
        "not valid UTF-8 (byte {} of the row); send text as UTF-8",
        e.valid_up_to() + 1
    )
}

/// Parses NDJSON lines (or a JSON array); blank lines are skipped.
pub fn parse_ndjson(input: impl AsRef<[u8]>, first_line: usize) -> Parsed {
    parse_json_rows(input, first_line, event_from_json).into()
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
            if obj.contains_key("op") && !obj.contains_key("event") {
                return Err(
                    "this is a profile update row (it has \"op\", no \"event\"): send it to /v1/profiles or load it with `footprint profiles import`"
                        .into(),
                );
            }
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
    flatten_props_ref(&m, &[])
}

/// [`flatten_props`] of a borrowed object, leaving out the top-level
/// names in `skip` (a tracker's own fields).
pub fn flatten_props_ref(m: &Map<String, Json>, skip: &[&str]) -> Result<Props, String> {
    let mut out = Vec::with_capacity(m.len());
    flatten_into("", m, skip, &mut out, 0)?;
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
    prefix: &str,
    m: &Map<String, Json>,
    skip: &[&str],
    out: &mut Props,
    depth: usize,
) -> Result<(), String> {
    if depth > 16 {
        return Err(format!(
            "property \"{prefix}\" nests objects more than 16 deep"
        ));
    }
    for (k, v) in m {
        if depth == 0 && skip.contains(&k.as_str()) {
            continue;
        }
        let name = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Json::Null => {}
            Json::Object(inner) => flatten_into(&name, inner, &[], out, depth + 1)?,
            other => {
                check_name(&name, "property name")?;
                let value = json_to_value(other.clone(), &name)?;
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
pub fn parse_csv(input: impl AsRef<[u8]>, first_line: usize) -> Parsed {
    let mut out = Rows::default();
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input.as_ref());
    let mut records = rdr.records();
    let header = match records.next() {
        None => return out.into(),
        Some(Err(e)) => {
            out.reject(
                first_line,
                format!("unreadable CSV header: {}", csv_error(&e)),
            );
            return out.into();
        }
        Some(Ok(h)) => h,
    };
    let cols: Vec<String> = header.iter().map(|s| s.trim().to_owned()).collect();
    if cols.len() < 3 || cols[0] != "user" || cols[1] != "event" || cols[2] != "time" {
        out.reject(
            first_line,
            format!(
                "CSV header must start with user,event,time; got {}",
                cols.join(",")
            ),
        );
        return out.into();
    }
    for (i, c) in cols.iter().enumerate().skip(3) {
        if let Err(m) = check_name(c, "property name") {
            out.reject(first_line, format!("CSV header column {}: {m}", i + 1));
            return out.into();
        }
        if cols[..i].contains(c) {
            out.reject(first_line, format!("CSV header names column \"{c}\" twice"));
            return out.into();
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
                out.reject(line, format!("unreadable CSV row: {}", csv_error(&e)));
                continue;
            }
        };
        if rec.len() == 1 && rec.get(0).is_some_and(|c| c.trim().is_empty()) {
            continue;
        }
        if rec.len() != cols.len() {
            out.reject(
                line,
                format!(
                    "expected {} CSV columns (as in the header), got {}",
                    cols.len(),
                    rec.len()
                ),
            );
            continue;
        }
        out.take(line, csv_row(&cols, &rec));
    }
    out.into()
}

/// A CSV reader's error in the words the other rows use.
fn csv_error(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Utf8 { err, .. } => format!(
            "field {} is not valid UTF-8 (byte {} of the field); send text as UTF-8",
            err.field() + 1,
            err.valid_up_to() + 1
        ),
        _ => e.to_string(),
    }
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

/// The profile operations, as named in rows.
pub const PROFILE_OPS: &str = "set, set_once, unset, add, append, union, remove";

/// The profile operation named `name` (one of [`PROFILE_OPS`]).
pub fn profile_op(name: &str) -> Result<ProfileOp, String> {
    Ok(match name {
        "set" => ProfileOp::Set,
        "set_once" => ProfileOp::SetOnce,
        "unset" => ProfileOp::Unset,
        "add" => ProfileOp::Add,
        "append" => ProfileOp::Append,
        "union" => ProfileOp::Union,
        "remove" => ProfileOp::Remove,
        other => return Err(format!("unknown op \"{other}\" (allowed: {PROFILE_OPS})")),
    })
}

/// Parses one profile update: `{"user": U, "op": OP, "props": {...}}`
/// (OP one of [`PROFILE_OPS`])
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
        Some(Json::String(s)) => profile_op(&s)?,
        None => return Err(format!("missing op ({PROFILE_OPS})")),
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

/// Parses one identity link: `{"anonymous": ID, "known": ID}`, nothing
/// else. Both ids are checked like a user id (non-empty, at most
/// `MAX_NAME_LEN` bytes): they name users.
pub fn parse_alias(v: Json) -> Result<Alias, String> {
    const SHAPE: &str = "expected {\"anonymous\": ID, \"known\": ID}";
    let Json::Object(mut obj) = v else {
        return Err(format!("{SHAPE}, got {}", json_kind(&v)));
    };
    if let Some(k) = obj.keys().find(|k| *k != "anonymous" && *k != "known") {
        return Err(format!("unknown field \"{k}\" (allowed: anonymous, known)"));
    }
    let mut id = |what: &str| match obj.remove(what) {
        Some(Json::String(s)) => check_name(&s, what).map(|()| s),
        None | Some(Json::Null) => Err(format!("missing {what}; {SHAPE}")),
        Some(other) => Err(format!(
            "{what} must be a string id, got {}",
            json_kind(&other)
        )),
    };
    let anonymous = id("anonymous")?;
    let known = id("known")?;
    Ok(Alias { anonymous, known })
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
                r#"{"user":"u","op":"set","props":{"plan":"pro"}}"#,
                "footprint profiles import",
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

    const GOOD: &[u8] = br#"{"user":"u","event":"a","time":1}"#;

    #[test]
    fn a_row_that_is_not_utf8_rejects_only_itself() {
        // NDJSON: line 2 has a lone 0xff inside a string.
        let mut input = GOOD.to_vec();
        input.extend_from_slice(b"\n{\"user\":\"u\xff\",\"event\":\"a\",\"time\":1}\r\n");
        input.extend_from_slice(GOOD);
        let p = parse_batch(&input, Format::Auto, 1);
        assert_eq!((p.events.len(), p.rejected), (2, 1), "{:?}", p.errors);
        assert_eq!(p.errors[0].line, 2);
        assert!(
            p.errors[0].message.contains("not valid UTF-8"),
            "{:?}",
            p.errors
        );
        // JSON array: element 1.
        let mut input = b"[".to_vec();
        input.extend_from_slice(GOOD);
        input.extend_from_slice(b",\n{\"user\":\"\xc3\",\"event\":\"a\",\"time\":1},");
        input.extend_from_slice(GOOD);
        input.push(b']');
        let p = parse_batch(&input, Format::Json, 1);
        assert_eq!((p.events.len(), p.rejected), (2, 1), "{:?}", p.errors);
        assert_eq!(p.errors[0].line, 2);
        assert!(p.errors[0]
            .message
            .contains("array element 1: not valid UTF-8"));
        // CSV: row on line 3.
        let input = b"user,event,time,plan\nu,a,1,pro\nu,a,2,\xe9t\xe9\nu,a,3,free\n";
        let p = parse_batch(input, Format::Auto, 1);
        assert_eq!((p.events.len(), p.rejected), (2, 1), "{:?}", p.errors);
        assert_eq!(p.errors[0].line, 3);
        assert!(p.errors[0].message.contains("field 4 is not valid UTF-8"));
    }

    #[test]
    fn errors_are_capped_and_counted() {
        let input = "1\n".repeat(10_000);
        let p = parse_batch(&input, Format::Json, 1);
        assert_eq!((p.events.len(), p.rejected), (0, 10_000));
        assert_eq!(p.errors.len(), MAX_ROW_ERRORS);
        assert_eq!(p.errors[MAX_ROW_ERRORS - 1].line, MAX_ROW_ERRORS);
        let input = format!("[{}1]", "1,".repeat(9_999));
        let p = parse_batch(&input, Format::Json, 1);
        assert_eq!((p.rejected, p.errors.len()), (10_000, MAX_ROW_ERRORS));
        let input = format!("user,event,time\n{}", "u,a\n".repeat(10_000));
        let p = parse_batch(&input, Format::Csv, 1);
        assert_eq!((p.rejected, p.errors.len()), (10_000, MAX_ROW_ERRORS));
    }

    #[test]
    fn rows_over_the_length_limit_are_rejected_unread() {
        let long = format!(
            "{{\"user\":\"u\",\"event\":\"a\",\"time\":1,\"props\":{{\"a\":[{}1]}}}}",
            "1,".repeat(MAX_ROW_LEN / 2)
        );
        let good = std::str::from_utf8(GOOD).unwrap();
        let p = parse_batch(format!("{good}\n{long}\n{good}\n"), Format::Json, 1);
        assert_eq!((p.events.len(), p.rejected), (2, 1));
        assert_eq!(p.errors[0].line, 2);
        assert!(
            p.errors[0].message.contains("at most 4 MiB are read"),
            "{:?}",
            p.errors
        );
        let p = parse_batch(format!("[{good},{long},{good}]"), Format::Json, 1);
        assert_eq!((p.events.len(), p.rejected), (2, 1));
        assert!(
            p.errors[0].message.contains("array element 1: the row is"),
            "{:?}",
            p.errors
        );
    }

    #[test]
    fn array_elements_number_from_first_line() {
        let input = format!("[{},1]", std::str::from_utf8(GOOD).unwrap());
        let p = parse_batch(&input, Format::Json, 41);
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.errors[0].line, 42);
        assert!(p.errors[0].message.starts_with("array element 41:"));
    }

    #[test]
    fn alias_ids_are_checked_like_user_ids() {
        let ok = parse_alias(serde_json::json!({"anonymous": "c1", "known": "u1"})).unwrap();
        assert_eq!((ok.anonymous.as_str(), ok.known.as_str()), ("c1", "u1"));
        let long = "x".repeat(MAX_NAME_LEN + 1);
        for (v, want) in [
            (
                serde_json::json!({"anonymous": long, "known": "u1"}),
                "anonymous is 1025 bytes long",
            ),
            (
                serde_json::json!({"anonymous": "c1", "known": long}),
                "known is 1025 bytes long",
            ),
            (
                serde_json::json!({"anonymous": "", "known": "u1"}),
                "anonymous is empty",
            ),
            (serde_json::json!({"anonymous": "c1"}), "missing known"),
            (
                serde_json::json!({"anonymous": 3, "known": "u1"}),
                "must be a string",
            ),
            (
                serde_json::json!({"anonymous": "c1", "known": "u1", "x": 1}),
                "unknown field \"x\"",
            ),
            (serde_json::json!([1]), "got an array"),
        ] {
            let err = parse_alias(v).unwrap_err();
            assert!(err.contains(want), "{err}");
        }
        assert!(parse_alias(
            serde_json::json!({"anonymous": "x".repeat(MAX_NAME_LEN), "known": "u"})
        )
        .is_ok());
    }
}
