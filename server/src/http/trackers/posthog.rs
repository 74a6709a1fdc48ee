//! PostHog's capture API (`/batch/`, `/capture/`, `/e/`, `/i/v0/e/`), as
//! posthog-js and posthog-python send it, and its flags and remote-config
//! calls, answered empty.
//!
//! A payload is one event, a bare array of them, or `{"api_key"|"token",
//! "batch": [...], "sent_at"}`. Each event is stored under its
//! `distinct_id`; besides:
//! - `$set` / `$set_once` (in `properties` or beside them) update the
//!   user's profile;
//! - `$identify` links `properties.$anon_distinct_id` to the `distinct_id`;
//! - `$create_alias` links the `distinct_id` to `properties.alias` (the
//!   id the user is known by).
//!
//! The project token (`api_key`, `token`, or `properties.token`) must be a
//! Footprint ingest key when the server has keys.

use std::borrow::Cow;

use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use footprint_engine::storage::{parse, Props};
use footprint_engine::{Alias, ProfileOp};
use serde::de::{self, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value as Json};

use super::{
    event, event_time, id_of, profile, props_of, record_parts, time_of, Batch, Failure, Wire,
};

/// Properties not stored with the event: the user, the token, and the
/// profile updates (stored on the profile).
const NOT_PROPS: [&str; 5] = ["distinct_id", "token", "api_key", "$set", "$set_once"];

/// The envelope of a payload (an object: a batch, or one event).
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    batch: Option<Vec<&'a RawValue>>,
    api_key: Option<Json>,
    token: Option<Json>,
    sent_at: Option<Json>,
    #[serde(rename = "sentAt")]
    sent_at_camel: Option<Json>,
}

/// Maps a capture payload (kept as text: see [`Wire::raw`]).
pub(super) fn map(wire: &Wire, batch: &mut Batch) -> Result<(), Failure> {
    let text = std::str::from_utf8(&wire.raw).map_err(|e| bad_json(format!("not UTF-8: {e}")))?;
    let first = text.trim_start().as_bytes().first().copied();
    let (records, envelope): (Vec<&RawValue>, Option<Envelope<'_>>) = match first {
        None => (Vec::new(), None),
        Some(b'[') => (serde_json::from_str(text).map_err(json_error)?, None),
        Some(b'{') => {
            let env: Envelope<'_> = serde_json::from_str(text).map_err(json_error)?;
            match env.batch {
                Some(ref b) => (b.clone(), Some(env)),
                None => {
                    let whole: &RawValue = serde_json::from_str(text).map_err(json_error)?;
                    (vec![whole], Some(env))
                }
            }
        }
        Some(_) => {
            return Err(bad_json(
                "the payload must be an event, an array of events or {\"batch\": [...]}".into(),
            ))
        }
    };
    let mut sent_at = None;
    if let Some(env) = &envelope {
        for t in [&env.api_key, &env.token].into_iter().flatten() {
            if let Some(t) = t.as_str() {
                batch.key(t);
            }
        }
        // When the batch was sent: the envelope's `sent_at`.
        sent_at = [&env.sent_at, &env.sent_at_camel]
            .into_iter()
            .flatten()
            .find_map(|v| time_of(v).ok());
    }
    // Or posthog-js's `_` parameter (epoch ms).
    let sent_at = sent_at.or_else(|| wire.param("_").and_then(|s| s.parse().ok()));
    for (i, r) in records.into_iter().enumerate() {
        // Read straight when the record is plain; else through a JSON
        // tree, which also words the errors.
        // A record that could pass the size limit is measured the general way.
        let plain = batch.body_len <= super::MAX_EVENT_BYTES;
        let fields = plain.then(|| fast_fields(r.get())).flatten().map_or_else(
            || {
                let v: Json =
                    serde_json::from_str(r.get()).map_err(|e| format!("not valid JSON: {e}"))?;
                tree_fields(&v, batch.body_len)
            },
            Ok,
        );
        if let Err(why) = fields.and_then(|f| apply(f, sent_at, wire.now, batch)) {
            batch.reject(i, why);
        }
    }
    Ok(())
}

fn bad_json(message: String) -> Failure {
    Failure {
        status: StatusCode::BAD_REQUEST,
        code: "bad_json",
        message,
    }
}

fn json_error(e: serde_json::Error) -> Failure {
    bad_json(format!(
        "the payload is not valid JSON at line {} column {}: {e}",
        e.line(),
        e.column()
    ))
}

/// What one event carries, however it was read.
#[derive(Debug, Default)]
struct Fields {
    event: Option<Json>,
    /// `distinct_id`, `properties.distinct_id`, `$distinct_id`, in that order.
    users: [Option<Json>; 3],
    timestamp: Option<Json>,
    offset: Option<Json>,
    uuid: Option<Json>,
    /// `api_key` and `token`.
    keys: [Option<Json>; 2],
    /// `$set` and `$set_once`, from the properties or beside them.
    set: Option<Json>,
    set_once: Option<Json>,
    anon: Option<Json>,
    alias: Option<Json>,
    /// The stored properties.
    props: Props,
}

/// [`Fields`] of an event read as a JSON tree.
fn tree_fields(r: &Json, body_len: usize) -> Result<Fields, String> {
    let (o, props) = record_parts(r, "an event", body_len)?;
    let empty = Map::new();
    let p = props.unwrap_or(&empty);
    let get = |m: &Map<String, Json>, k: &str| m.get(k).cloned();
    let keys = ["api_key", "token"].map(|k| o.get(k).or_else(|| p.get(k)).cloned());
    Ok(Fields {
        event: get(o, "event"),
        users: [
            get(o, "distinct_id"),
            get(p, "distinct_id"),
            get(o, "$distinct_id"),
        ],
        timestamp: get(o, "timestamp"),
        offset: get(o, "offset"),
        uuid: get(o, "uuid"),
        keys,
        set: get(p, "$set").or_else(|| get(o, "$set")),
        set_once: get(p, "$set_once").or_else(|| get(o, "$set_once")),
        anon: get(p, "$anon_distinct_id"),
        alias: get(p, "alias"),
        props: props_of(Some(p), &NOT_PROPS)?,
    })
}

/// Maps one event's fields: the event, its profile updates and links.
fn apply(f: Fields, sent_at: Option<i64>, now: i64, batch: &mut Batch) -> Result<(), String> {
    for k in f.keys.iter().flatten() {
        if let Some(t) = k.as_str() {
            batch.key(t);
        }
    }
    let name = id_of(f.event.as_ref()).ok_or("missing event")?;
    let user = f
        .users
        .iter()
        .find_map(|u| id_of(u.as_ref()))
        .ok_or("missing distinct_id")?;
    let time = event_time(f.timestamp.as_ref(), sent_at, f.offset.as_ref(), now)?;
    let mut profiles = Vec::new();
    for (v, op) in [(&f.set, ProfileOp::Set), (&f.set_once, ProfileOp::SetOnce)] {
        profiles.extend(profile(&user, op, v.as_ref())?);
    }
    let mut alias = None;
    match name.as_str() {
        "$identify" => {
            if let Some(anon) = id_of(f.anon.as_ref()) {
                alias = (anon != user).then(|| Alias {
                    anonymous: anon,
                    known: user.clone(),
                });
            }
        }
        "$create_alias" => {
            let known = id_of(f.alias.as_ref()).ok_or("$create_alias without properties.alias")?;
            alias = (known != user).then(|| Alias {
                anonymous: user.clone(),
                known,
            });
        }
        _ => {}
    }
    let ev = event(user, name, time, f.props)?;
    batch.event(ev, id_of(f.uuid.as_ref()));
    batch.profiles.extend(profiles);
    batch.aliases.extend(alias);
    Ok(())
}

/// [`Fields`] of a plain event read straight from its text, without a
/// tree for the whole event; `None` for anything unusual (a repeated
/// name, a record that is not an object, a top-level `$set` beside the
/// properties' own...), which then goes through [`tree_fields`]. Both
/// read a plain event alike (tested on the captured SDK requests and
/// by a proptest).
fn fast_fields(text: &str) -> Option<Fields> {
    let mut de = serde_json::Deserializer::from_str(text);
    let f = de::Deserializer::deserialize_map(&mut de, EventVisitor).ok()?;
    de.end().ok()?;
    Some(f)
}

/// Any error: the record goes the general way.
fn fallback<E: de::Error>() -> E {
    E::custom("")
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Fields;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an event")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Fields, A::Error> {
        let mut f = Fields::default();
        let mut seen: Vec<Cow<'de, str>> = Vec::new();
        let mut top_set = (None, None);
        let mut top_keys: [Option<Json>; 2] = [None, None];
        while let Some(k) = m.next_key::<Cow<'de, str>>()? {
            if seen.contains(&k) {
                return Err(fallback());
            }
            match k.as_ref() {
                "properties" => m.next_value_seed(PropsSeed(&mut f))?,
                "event" => f.event = Some(m.next_value()?),
                "distinct_id" => f.users[0] = Some(m.next_value()?),
                "$distinct_id" => f.users[2] = Some(m.next_value()?),
                "timestamp" => f.timestamp = Some(m.next_value()?),
                "offset" => f.offset = Some(m.next_value()?),
                "uuid" => f.uuid = Some(m.next_value()?),
                "api_key" => top_keys[0] = Some(m.next_value()?),
                "token" => top_keys[1] = Some(m.next_value()?),
                "$set" => top_set.0 = Some(m.next_value()?),
                "$set_once" => top_set.1 = Some(m.next_value()?),
                _ => {
                    m.next_value::<de::IgnoredAny>()?;
                }
            }
            seen.push(k);
        }
        // As the tree reads them: per name, the top level's key before the
        // properties' one; the properties' `$set` before the top level's.
        let inner = std::mem::take(&mut f.keys);
        let [a, b] = inner;
        let [ta, tb] = top_keys;
        f.keys = [ta.or(a), tb.or(b)];
        f.set = f.set.take().or(top_set.0);
        f.set_once = f.set_once.take().or(top_set.1);
        Ok(f)
    }
}

/// The properties object, read into [`Fields`]: the special names kept
/// as JSON, the rest flattened as `flatten_props_ref` would.
struct PropsSeed<'f>(&'f mut Fields);

impl<'de> de::DeserializeSeed<'de> for PropsSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PropsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("properties")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
        let f = self.0;
        let mut names: Vec<Cow<'de, str>> = Vec::new();
        let mut nested: Map<String, Json> = Map::new();
        while let Some(k) = m.next_key::<Cow<'de, str>>()? {
            if names.contains(&k) {
                return Err(fallback());
            }
            let v: Json = m.next_value()?;
            match k.as_ref() {
                "distinct_id" => f.users[1] = Some(v.clone()),
                "api_key" => f.keys[0] = Some(v.clone()),
                "token" => f.keys[1] = Some(v.clone()),
                "$set" => f.set = Some(v.clone()),
                "$set_once" => f.set_once = Some(v.clone()),
                "$anon_distinct_id" => f.anon = Some(v.clone()),
                "alias" => f.alias = Some(v.clone()),
                _ => {}
            }
            if !NOT_PROPS.contains(&k.as_ref()) {
                match v {
                    Json::Null => {}
                    Json::Object(_) => {
                        nested.insert(k.clone().into_owned(), v);
                    }
                    other => {
                        parse::check_name(&k, "property name")
                            .map_err(|_| fallback::<A::Error>())?;
                        let value =
                            parse::json_to_value(other, &k).map_err(|_| fallback::<A::Error>())?;
                        f.props.push((k.clone().into_owned(), value));
                    }
                }
            }
            names.push(k);
        }
        if !nested.is_empty() {
            // Objects are rare: flattened as the general path does, then
            // the whole list checked (count, names given twice).
            let mut all: Map<String, Json> = Map::new();
            for (k, v) in f.props.drain(..) {
                all.insert(k, value_json(v));
            }
            all.extend(nested);
            f.props = parse::flatten_props_ref(&all, &[]).map_err(|_| fallback::<A::Error>())?;
        } else if f.props.len() > footprint_engine::storage::event::MAX_PROPS {
            return Err(fallback());
        }
        Ok(())
    }
}

/// A stored value back as JSON (for the rare flattening of nested objects).
fn value_json(v: footprint_engine::Value) -> Json {
    use footprint_engine::Value;
    match v {
        Value::Str(s) => Json::String(s),
        Value::Int(i) => Json::from(i),
        Value::Float(f) => Json::from(f),
        Value::Bool(b) => Json::Bool(b),
    }
}

/// PostHog's answers: `{"status": 1}`, or an error with a `detail`, which
/// posthog-python reports.
pub(super) fn reply(result: Result<(Wire, Batch), Failure>) -> Response {
    match result {
        Ok((_, b)) if b.all_refused() => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({
                "type": "validation_error",
                "code": "invalid_payload",
                "detail": b.errors.first().cloned().unwrap_or_default(),
                "rejected": b.rejected,
                "errors": b.errors,
            })),
        )
            .into_response(),
        Ok((_, b)) => axum::Json(json!({
            "status": 1,
            "accepted": b.written[0],
            "duplicates": b.duplicates,
            "rejected": b.rejected,
            "errors": b.errors,
        }))
        .into_response(),
        Err(f) => (
            f.status,
            axum::Json(json!({
                "type": if f.status == StatusCode::UNAUTHORIZED { "authentication_error" } else { "validation_error" },
                "code": f.code,
                "detail": f.message,
            })),
        )
            .into_response(),
    }
}

/// Feature flags and remote config, answered as a project with none, so
/// posthog-js runs without errors: `/flags`, `/decide`,
/// `/array/TOKEN/config` (JSON) and `/array/TOKEN/config.js`.
pub(super) fn flags(uri: &Uri) -> Response {
    let path = uri.path().trim_end_matches('/');
    let token = path
        .strip_prefix("/array/")
        .and_then(|p| p.split('/').next())
        .unwrap_or("");
    let config = json!({
        "token": token,
        "supportedCompression": ["gzip", "gzip-js"],
        "hasFeatureFlags": false,
        "captureDeadClicks": false,
        "capturePerformance": false,
        "autocapture_opt_out": false,
        "autocaptureExceptions": false,
        "analytics": {"endpoint": "/i/v0/e/"},
        "elementsChainAsString": true,
        "sessionRecording": false,
        "heatmaps": false,
        "surveys": false,
        "defaultIdentifiedOnly": true,
        "siteApps": [],
    });
    if path.ends_with("/config.js") {
        let js = format!(
            "(function() {{ window._POSTHOG_REMOTE_CONFIG = window._POSTHOG_REMOTE_CONFIG || {{}}; window._POSTHOG_REMOTE_CONFIG[{t}] = {{ config: {config}, siteApps: [] }}; }})();",
            t = Json::from(token)
        );
        return (
            [(axum::http::header::CONTENT_TYPE, "application/javascript")],
            js,
        )
            .into_response();
    }
    if path.starts_with("/array/") {
        return axum::Json(config).into_response();
    }
    let mut answer = config;
    if let Some(o) = answer.as_object_mut() {
        o.insert("flags".into(), json!({}));
        o.insert("featureFlags".into(), json!({}));
        o.insert("featureFlagPayloads".into(), json!({}));
        o.insert("errorsWhileComputingFlags".into(), json!(false));
        o.insert("quotaLimited".into(), json!([]));
        o.insert("toolbarParams".into(), json!({}));
        o.insert("isAuthenticated".into(), json!(false));
        o.insert("config".into(), json!({"enable_collect_everything": true}));
    }
    axum::Json(answer).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("null".to_string()),
            any::<bool>().prop_map(|b| b.to_string()),
            any::<i64>().prop_map(|i| i.to_string()),
            (-1e6f64..1e6).prop_map(|f| format!("{f:?}")),
            "[a-c\"é]{0,3}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            Just("[1,\"x\"]".to_string()),
            Just("{\"k\":{\"j\":2},\"n\":null}".to_string()),
            Just("{\"email\":\"a@x.io\"}".to_string()),
        ]
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("distinct_id"),
            Just("token"),
            Just("api_key"),
            Just("$set"),
            Just("$set_once"),
            Just("$anon_distinct_id"),
            Just("alias"),
            Just("a"),
            Just("a.k"),
            Just("b"),
        ]
        .prop_map(str::to_owned)
    }

    #[test]
    fn sdk_events_take_the_fast_path() {
        // As posthog-python and posthog-js send them.
        for text in [
            r#"{"properties": {"plan": "pro", "$set": {"email": "a@x.io"}, "$lib": "posthog-python", "$geoip_disable": true}, "timestamp": "2026-12-01T03:41:37.716467+00:00", "distinct_id": "anon-1", "event": "signup", "uuid": "00000000-0000-4000-8000-000000000001"}"#,
            r#"{"uuid":"0193","event":"$pageview","properties":{"$os":"Linux","token":"phc_x","distinct_id":"0193a","$current_url":"http://localhost:1/","$window_id":"w","$device":{"t":1}},"offset":12}"#,
        ] {
            let fast = fast_fields(text).expect("fast path");
            let tree = tree_fields(&serde_json::from_str(text).unwrap(), text.len()).unwrap();
            let sorted = |mut f: Fields| {
                f.props.sort_by(|a, b| a.0.cmp(&b.0));
                format!("{f:?}")
            };
            assert_eq!(sorted(fast), sorted(tree));
        }
    }

    proptest! {
        /// Whatever the fast path reads, it reads as the tree does.
        #[test]
        fn fast_fields_agree_with_the_tree(
            top in proptest::collection::vec((prop_oneof![key(), Just("event".to_string()), Just("timestamp".to_string()), Just("uuid".to_string()), Just("properties".to_string())], value()), 0..6),
            props in proptest::collection::vec((key(), value()), 0..6),
        ) {
            let mut parts: Vec<String> = top
                .iter()
                .filter(|(k, _)| k != "properties")
                .map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).unwrap()))
                .collect();
            let body: Vec<String> = props
                .iter()
                .map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).unwrap()))
                .collect();
            parts.push(format!("\"properties\":{{{}}}", body.join(",")));
            let text = format!("{{{}}}", parts.join(","));
            if let Some(fast) = fast_fields(&text) {
                let tree: Json = serde_json::from_str(&text).unwrap();
                let slow = tree_fields(&tree, text.len());
                prop_assert!(slow.is_ok(), "{} {:?}", text, slow);
                let (mut f, mut s) = (fast, slow.unwrap());
                let sort = |p: &mut Props| p.sort_by(|a, b| a.0.cmp(&b.0));
                sort(&mut f.props);
                sort(&mut s.props);
                prop_assert_eq!(format!("{f:?}"), format!("{s:?}"), "{}", text);
            }
        }
    }
}
