//! A JSON reader that knows where it is: every accessor reports errors with
//! the path of the field (`steps[2].where.value`) and rejects unknown keys.

use serde_json::{Map, Value};

use crate::error::{QueryError, Result};

/// An object being read at `path`.
pub struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
    seen: Vec<&'static str>,
}

/// Joins a path and a key.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Describes a JSON value's type for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl<'a> Obj<'a> {
    /// Reads `v` as an object at `path`.
    pub fn new(v: &'a Value, path: &str) -> Result<Obj<'a>> {
        match v {
            Value::Object(map) => Ok(Obj {
                map,
                path: path.to_owned(),
                seen: Vec::new(),
            }),
            other => Err(QueryError::invalid(
                path,
                format!("expected an object, got {}", kind(other)),
            )),
        }
    }

    /// The path of this object.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The path of `key` in this object.
    pub fn at(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// An optional field (`null` counts as absent).
    pub fn opt(&mut self, key: &'static str) -> Option<&'a Value> {
        self.seen.push(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// A required field.
    pub fn req(&mut self, key: &'static str) -> Result<&'a Value> {
        let p = self.at(key);
        self.opt(key)
            .ok_or_else(|| QueryError::invalid(p, "is required"))
    }

    /// An optional string.
    pub fn opt_str(&mut self, key: &'static str) -> Result<Option<&'a str>> {
        let p = self.at(key);
        match self.opt(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(QueryError::invalid(
                p,
                format!("expected a string, got {}", kind(other)),
            )),
        }
    }

    /// A required string.
    pub fn req_str(&mut self, key: &'static str) -> Result<&'a str> {
        let p = self.at(key);
        self.opt_str(key)?
            .ok_or_else(|| QueryError::invalid(p, "is required"))
    }

    /// An optional boolean.
    pub fn opt_bool(&mut self, key: &'static str) -> Result<Option<bool>> {
        let p = self.at(key);
        match self.opt(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(QueryError::invalid(
                p,
                format!("expected true or false, got {}", kind(other)),
            )),
        }
    }

    /// An optional non-negative integer no larger than `max`.
    pub fn opt_uint(&mut self, key: &'static str, max: u64) -> Result<Option<u64>> {
        let p = self.at(key);
        match self.opt(key) {
            None => Ok(None),
            Some(v) => uint(v, &p, max).map(Some),
        }
    }

    /// Fails on any key not read so far.
    pub fn finish(self, allowed_hint: &str) -> Result<()> {
        for k in self.map.keys() {
            if !self.seen.contains(&k.as_str()) {
                let mut msg = format!("unknown field \"{k}\"");
                if let Some(s) = crate::suggest::nearest(k, self.seen.iter().copied()) {
                    msg.push_str(&format!(" (did you mean \"{s}\"?)"));
                }
                msg.push_str(&format!("; allowed here: {allowed_hint}"));
                return Err(QueryError::invalid(join(&self.path, k), msg));
            }
        }
        Ok(())
    }
}

/// Fails on the first key of object `v` not in `allowed` (checked before
/// anything else, so a misspelt key is reported instead of the required
/// field it was meant to be).
pub fn check_keys(v: &Value, path: &str, allowed: &[&str]) -> Result<()> {
    if let Value::Object(m) = v {
        for k in m.keys() {
            if !allowed.contains(&k.as_str()) {
                let mut msg = format!("unknown field \"{k}\"");
                if let Some(s) = crate::suggest::nearest(k, allowed.iter().copied()) {
                    msg.push_str(&format!(" (did you mean \"{s}\"?)"));
                }
                msg.push_str(&format!("; allowed here: {}", allowed.join(", ")));
                return Err(QueryError::invalid(join(path, k), msg));
            }
        }
    }
    Ok(())
}

/// Reads a non-negative integer (integral floats accepted) no larger than `max`.
pub fn uint(v: &Value, path: &str, max: u64) -> Result<u64> {
    let n = match v {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Some(u)
            } else if let Some(f) = n.as_f64() {
                (f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64).then_some(f as u64)
            } else {
                None
            }
        }
        _ => None,
    };
    match n {
        Some(n) if n <= max => Ok(n),
        Some(n) => Err(QueryError::invalid(
            path,
            format!("{n} is too large; at most {max}"),
        )),
        None => Err(QueryError::invalid(
            path,
            format!("expected a non-negative integer, got {}", describe(v)),
        )),
    }
}

/// A short rendering of a value for messages.
pub fn describe(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(57).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s
    }
}

/// Reads an array at `path`.
pub fn array<'a>(v: &'a Value, path: &str) -> Result<&'a Vec<Value>> {
    match v {
        Value::Array(a) => Ok(a),
        other => Err(QueryError::invalid(
            path,
            format!("expected an array, got {}", kind(other)),
        )),
    }
}
