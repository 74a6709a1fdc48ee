//! The fast path for Footprint's own row shape, `{"user", "event", "time",
//! "props": {name: scalar}}`: the row is read straight into an [`Event`]
//! with borrowed keys, without building a JSON tree (a tree costs an
//! ordered map and an allocation per key and value).
//!
//! It takes only rows it can read exactly as the general parser would;
//! anything else (another shape, nested or array properties, a repeated
//! name, any error) returns `None`, and the caller parses the row the
//! general way, which also words the errors. So both paths accept the
//! same rows with the same result.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

use super::{check_name, check_time, parse_time_str};
use crate::event::{Event, MAX_PROPS, MAX_VALUE_LEN};
use crate::value::Value;

/// The event of `line`, when it is a plain native row.
pub(super) fn native_row(line: &str) -> Option<Event> {
    let mut de = serde_json::Deserializer::from_str(line);
    let row = de.deserialize_map(RowVisitor).ok()?;
    de.end().ok()?;
    row
}

/// A string, borrowed from the line when it has no escapes.
struct Str<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A scalar as the general parser stores it; `None` for `null`. Objects
/// and arrays are not taken here.
struct Scalar(Option<Value>);

impl<'de> de::Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Scalar, E> {
                Ok(Scalar(Some(Value::Bool(b))))
            }
            fn visit_i64<E: de::Error>(self, i: i64) -> Result<Scalar, E> {
                Ok(Scalar(Some(Value::Int(i))))
            }
            fn visit_u64<E: de::Error>(self, u: u64) -> Result<Scalar, E> {
                // As serde_json's `as_i64`, then `as_f64`.
                Ok(Scalar(Some(match i64::try_from(u) {
                    Ok(i) => Value::Int(i),
                    Err(_) => Value::Float(u as f64),
                })))
            }
            fn visit_f64<E: de::Error>(self, f: f64) -> Result<Scalar, E> {
                Ok(Scalar(Some(Value::Float(f))))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Scalar, E> {
                Ok(Scalar(Some(Value::Str(s.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Scalar, E> {
                Ok(Scalar(Some(Value::Str(s))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// The user: a string, or a number named by its text.
struct User(String);

impl<'de> de::Deserialize<'de> for User {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = User;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a user id")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<User, E> {
                Ok(User(s.to_owned()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<User, E> {
                Ok(User(s))
            }
            fn visit_i64<E: de::Error>(self, i: i64) -> Result<User, E> {
                Ok(User(i.to_string()))
            }
            fn visit_u64<E: de::Error>(self, u: u64) -> Result<User, E> {
                Ok(User(u.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The time: integer milliseconds or a string (a float goes the general
/// way, which words its checks).
struct Time(i64);

impl<'de> de::Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Time;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a time")
            }
            fn visit_i64<E: de::Error>(self, i: i64) -> Result<Time, E> {
                check_time(i).map(Time).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, u: u64) -> Result<Time, E> {
                let i = i64::try_from(u).map_err(E::custom)?;
                check_time(i).map(Time).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Time, E> {
                parse_time_str(s).map(Time).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// The properties object, read into the event's list.
struct PropsSeed<'p>(&'p mut Vec<(String, Value)>);

impl<'de> DeserializeSeed<'de> for PropsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PropsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of scalars")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
        // Names given as null: a name repeated (even after a null) goes
        // the general way, which keeps the first position.
        let mut nulls: Vec<Cow<'de, str>> = Vec::new();
        while let Some(Str(name)) = m.next_key::<Str<'de>>()? {
            let Scalar(v) = m.next_value()?;
            if nulls.contains(&name) {
                return Err(de::Error::custom(""));
            }
            let Some(v) = v else {
                if self.0.iter().any(|(k, _)| *k == name) {
                    return Err(de::Error::custom(""));
                }
                nulls.push(name);
                continue;
            };
            check_name(&name, "property name").map_err(de::Error::custom)?;
            match &v {
                Value::Str(s) if s.len() > MAX_VALUE_LEN => return Err(de::Error::custom("")),
                Value::Float(f) if !f.is_finite() => return Err(de::Error::custom("")),
                _ => {}
            }
            if self.0.iter().any(|(k, _)| *k == name) || self.0.len() == MAX_PROPS {
                return Err(de::Error::custom(""));
            }
            self.0.push((name.into_owned(), v));
        }
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

struct RowVisitor;

impl<'de> Visitor<'de> for RowVisitor {
    type Value = Option<Event>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a row")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Option<Event>, A::Error> {
        let (mut user, mut event, mut time) = (None, None, None);
        let mut props = Vec::new();
        let mut seen_props = false;
        while let Some(Str(k)) = m.next_key::<Str<'de>>()? {
            match k.as_ref() {
                "user" if user.is_none() => user = Some(m.next_value::<User>()?.0),
                "event" if event.is_none() => event = Some(m.next_value::<Str<'de>>()?.0),
                "time" if time.is_none() => time = Some(m.next_value::<Time>()?.0),
                "props" if !seen_props => {
                    seen_props = true;
                    m.next_value_seed(PropsSeed(&mut props))?;
                }
                _ => return Err(de::Error::custom("")),
            }
        }
        let (Some(user), Some(event), Some(time)) = (user, event, time) else {
            return Ok(None);
        };
        check_name(&user, "user").map_err(de::Error::custom)?;
        check_name(&event, "event").map_err(de::Error::custom)?;
        Ok(Some(Event {
            user,
            event: event.into_owned(),
            time,
            props,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn both(line: &str) -> (Option<Event>, Result<Event, String>) {
        (native_row(line), super::super::parse_json_line(line))
    }

    #[test]
    fn takes_plain_rows_and_leaves_the_rest() {
        let (fast, slow) = both(
            r#"{"user":"u1","event":"visit","time":1767607200000,"props":{"a":"x","n":3,"f":1.5,"b":true,"z":null,"big":18446744073709551615}}"#,
        );
        assert_eq!(fast, Some(slow.unwrap()));
        for line in [
            r#"{"distinct_id":"d1","event":"x","timestamp":1}"#,
            r#"{"user":"u","event":"e","time":1,"props":{"o":{"p":1}}}"#,
            r#"{"user":"u","event":"e","time":1,"props":{"a":[1]}}"#,
            r#"{"user":"u","event":"e","time":1,"props":{"a":1,"a":2}}"#,
            r#"{"user":"u","event":"e","time":1.5}"#,
            r#"{"user":"","event":"e","time":1}"#,
            r#"{"user":"u","event":"e"}"#,
            r#"{"user":"u","event":"e","time":1,"extra":1}"#,
            r#"{"user":"u","event":"e","time":1} x"#,
            r#"[1]"#,
        ] {
            assert_eq!(native_row(line), None, "{line}");
        }
    }

    fn scalar() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("null".to_string()),
            any::<bool>().prop_map(|b| b.to_string()),
            any::<i64>().prop_map(|i| i.to_string()),
            any::<u64>().prop_map(|u| u.to_string()),
            (-1e9f64..1e9).prop_map(|f| format!("{f:?}")),
            Just("1e3".to_string()),
            "[a-c\\\\\"é]{0,4}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            Just("{\"x\":1}".to_string()),
            Just("[1,2]".to_string()),
        ]
    }

    proptest! {
        /// Whatever the fast path takes, it reads as the general parser does.
        #[test]
        fn agrees_with_the_general_parser(
            user in prop_oneof!["[a-c\\\\\"]{0,3}".prop_map(|s| serde_json::to_string(&s).unwrap()), any::<u32>().prop_map(|u| u.to_string()), Just("null".into())],
            time in prop_oneof![any::<i64>().prop_map(|t| t.to_string()), Just("\"2026-01-05T10:00:00Z\"".into()), Just("\"123\"".into()), Just("1.0".into())],
            props in proptest::collection::vec(("[a-c.]{0,2}", scalar()), 0..5),
        ) {
            let body: Vec<String> = props.iter().map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).unwrap())).collect();
            let line = format!(r#"{{"user":{user},"event":"e","time":{time},"props":{{{}}}}}"#, body.join(","));
            let (fast, slow) = both(&line);
            if let Some(f) = fast {
                prop_assert_eq!(Some(f), slow.ok(), "{}", line);
            }
        }
    }
}
