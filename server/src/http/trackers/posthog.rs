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

use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use footprint_engine::{Alias, ProfileOp};
use serde_json::{json, Map, Value as Json};

use super::{
    event, event_time, id_of, profile, props_of, record_parts, records, time_of, Batch, Failure,
    Wire,
};

/// Properties not stored with the event: the user, the token, and the
/// profile updates (stored on the profile).
const NOT_PROPS: [&str; 5] = ["distinct_id", "token", "api_key", "$set", "$set_once"];

/// Maps a capture payload.
pub(super) fn map(wire: &Wire, batch: &mut Batch) {
    let envelope = wire.json.as_object();
    for k in ["api_key", "token"] {
        if let Some(t) = envelope.and_then(|o| o.get(k)).and_then(Json::as_str) {
            batch.key(t);
        }
    }
    // When the batch was sent: the envelope's `sent_at`, or posthog-js's
    // `_` parameter (epoch ms).
    let sent_at = envelope
        .and_then(|o| o.get("sent_at").or_else(|| o.get("sentAt")))
        .and_then(|v| time_of(v).ok())
        .or_else(|| wire.param("_").and_then(|s| s.parse().ok()));
    for (i, r) in records(&wire.json).into_iter().enumerate() {
        if let Err(why) = record(r, sent_at, wire.now, batch) {
            batch.reject(i, why);
        }
    }
}

fn record(r: &Json, sent_at: Option<i64>, now: i64, batch: &mut Batch) -> Result<(), String> {
    let (o, props) = record_parts(r, "an event", batch.body_len)?;
    let empty = Map::new();
    let props = props.unwrap_or(&empty);
    for k in ["api_key", "token"] {
        if let Some(t) = o.get(k).or_else(|| props.get(k)).and_then(Json::as_str) {
            batch.key(t);
        }
    }
    let name = id_of(o.get("event")).ok_or("missing event")?;
    let user = id_of(o.get("distinct_id"))
        .or_else(|| id_of(props.get("distinct_id")))
        .or_else(|| id_of(o.get("$distinct_id")))
        .ok_or("missing distinct_id")?;
    let time = event_time(o.get("timestamp"), sent_at, o.get("offset"), now)?;
    let mut profiles = Vec::new();
    for (key, op) in [("$set", ProfileOp::Set), ("$set_once", ProfileOp::SetOnce)] {
        let v = props.get(key).or_else(|| o.get(key));
        profiles.extend(profile(&user, op, v)?);
    }
    let mut alias = None;
    match name.as_str() {
        "$identify" => {
            if let Some(anon) = id_of(props.get("$anon_distinct_id")) {
                alias = (anon != user).then(|| Alias {
                    anonymous: anon,
                    known: user.clone(),
                });
            }
        }
        "$create_alias" => {
            let known =
                id_of(props.get("alias")).ok_or("$create_alias without properties.alias")?;
            alias = (known != user).then(|| Alias {
                anonymous: user.clone(),
                known,
            });
        }
        _ => {}
    }
    let ev = event(user, name, time, props_of(Some(props), &NOT_PROPS)?)?;
    batch.event(ev, id_of(o.get("uuid")));
    batch.profiles.extend(profiles);
    batch.aliases.extend(alias);
    Ok(())
}

/// PostHog's answers: `{"status": 1}`, or an error with a `detail`, which
/// posthog-python reports.
pub(super) fn reply(result: Result<(Wire, Batch), Failure>) -> Response {
    match result {
        Ok((_, b)) if b.written.iter().sum::<usize>() + b.duplicates == 0 && b.rejected > 0 => (
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
