//! Mixpanel's ingestion API: `/track` (also PostHog's legacy endpoint of
//! the same shape), `/engage` and `/import`, as mixpanel-python and
//! mixpanel-browser send them (JSON, the `data=` form, base64).
//!
//! - An event is `{"event", "properties": {"distinct_id", "token", "time",
//!   "$insert_id", ...}}`; `time` is in seconds (or milliseconds), and
//!   absent means now (`/import` requires it). `$identify` links
//!   `$anon_distinct_id` to the `distinct_id`; `$create_alias` links
//!   `alias` to the `distinct_id` (Mixpanel's direction: the alias is the
//!   new id of the existing user). `$set`/`$set_once` in the properties
//!   update the profile, as PostHog's `/track` does.
//! - A profile update is `{"$token", "$distinct_id", "$set" | "$set_once" |
//!   "$add" | "$unset": ...}`; the list operations (`$append`, `$union`,
//!   `$remove`) and `$delete` are refused per record as not supported.
//! - Answers are what the SDKs check: `1`/`0`, or with `verbose=1`
//!   `{"status": 1|0, "error"}`; `/import` with a JSON body answers
//!   `{"code", "num_records_imported", "status"}` and, with `strict=1`,
//!   lists the failed records.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use footprint_engine::{Alias, ProfileOp, ProfileUpdate, Value};
use serde_json::{json, Map, Value as Json};

use super::{
    event, id_of, profile, props_of, record_parts, records, time_of, too_big, Batch, Failure, Wire,
};

/// The endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    Track,
    Engage,
    Import,
}

/// Event properties not stored: the user, the token, the time (the
/// event's own), the dedupe id, and profile updates.
const NOT_PROPS: [&str; 7] = [
    "distinct_id",
    "token",
    "time",
    "$insert_id",
    "$set",
    "$set_once",
    "api_key",
];

/// Maps a Mixpanel request.
pub(super) fn map(ep: Endpoint, wire: &Wire, batch: &mut Batch) {
    for (i, r) in records(&wire.json).into_iter().enumerate() {
        let done = match ep {
            Endpoint::Engage => engage(r, batch),
            _ => track(r, ep == Endpoint::Import, wire.now, batch),
        };
        if let Err(why) = done {
            batch.reject(i, why);
        }
    }
}

fn track(r: &Json, import: bool, now: i64, batch: &mut Batch) -> Result<(), String> {
    let (o, props) = record_parts(r, "an event", batch.body_len)?;
    let empty = Map::new();
    let props = props.unwrap_or(&empty);
    if let Some(t) = props.get("token").and_then(Json::as_str) {
        batch.key(t);
    }
    let name = id_of(o.get("event")).ok_or("missing event")?;
    let user = id_of(props.get("distinct_id"))
        .or_else(|| id_of(o.get("distinct_id")))
        .ok_or("missing properties.distinct_id")?;
    let time = match props.get("time").or_else(|| o.get("timestamp")) {
        Some(t) if !t.is_null() => time_of(t)?,
        _ if import => return Err("missing properties.time (/import needs it)".into()),
        _ => now,
    };
    let mut profiles = Vec::new();
    for (key, op) in [("$set", ProfileOp::Set), ("$set_once", ProfileOp::SetOnce)] {
        profiles.extend(profile(&user, op, props.get(key))?);
    }
    let link = match name.as_str() {
        "$identify" => id_of(props.get("$anon_distinct_id")).map(|anon| Alias {
            anonymous: anon,
            known: user.clone(),
        }),
        "$create_alias" => {
            let alias =
                id_of(props.get("alias")).ok_or("$create_alias without properties.alias")?;
            Some(Alias {
                anonymous: alias,
                known: user.clone(),
            })
        }
        _ => None,
    };
    let ev = event(user, name, time, props_of(Some(props), &NOT_PROPS)?)?;
    batch.event(ev, id_of(props.get("$insert_id")));
    batch.profiles.extend(profiles);
    batch
        .aliases
        .extend(link.filter(|a| a.anonymous != a.known));
    Ok(())
}

fn engage(r: &Json, batch: &mut Batch) -> Result<(), String> {
    if let Some(why) = too_big(r, batch.body_len) {
        return Err(why);
    }
    let Json::Object(o) = r else {
        return Err("a profile update must be a JSON object".into());
    };
    if let Some(t) = o.get("$token").and_then(Json::as_str) {
        batch.key(t);
    }
    let user = id_of(o.get("$distinct_id")).ok_or("missing $distinct_id")?;
    let mut updates = Vec::new();
    for (k, v) in o {
        let op = match k.as_str() {
            "$set" => ProfileOp::Set,
            "$set_once" => ProfileOp::SetOnce,
            "$add" => ProfileOp::Add,
            "$unset" => {
                let names = v.as_array().ok_or("$unset must be a list of names")?;
                let props = names
                    .iter()
                    .map(|n| {
                        n.as_str()
                            .map(|s| (s.to_owned(), Value::Bool(true)))
                            .ok_or("$unset names must be strings")
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if !props.is_empty() {
                    updates.push(ProfileUpdate {
                        user: user.clone(),
                        op: ProfileOp::Unset,
                        props,
                    });
                }
                continue;
            }
            "$append" => ProfileOp::Append,
            "$union" => ProfileOp::Union,
            "$remove" => ProfileOp::Remove,
            "$delete" => {
                return Err("$delete is not supported (unset the properties instead)".into())
            }
            _ => continue,
        };
        updates.extend(profile(&user, op, Some(v))?);
    }
    if updates.is_empty() {
        return Err("no $set, $set_once, $add or $unset".into());
    }
    batch.profiles.extend(updates);
    Ok(())
}

/// Mixpanel's answers.
pub(super) fn reply(ep: Endpoint, result: Result<(Wire, Batch), Failure>) -> Response {
    let (wire, b) = match result {
        Ok(r) => r,
        Err(f) => {
            return (
                f.status,
                axum::Json(json!({"status": 0, "error": f.message, "code": f.status.as_u16()})),
            )
                .into_response()
        }
    };
    // A duplicate was imported before: it counts as imported.
    let written = b.written.iter().sum::<usize>() + b.duplicates;
    let failed = b.rejected > 0;
    let verbose = wire.param("verbose") == Some("1");
    let json_import = ep == Endpoint::Import && !verbose;
    if json_import {
        let strict = wire.param("strict") == Some("1");
        if strict && failed {
            let records: Vec<Json> = b
                .failed
                .iter()
                .map(|(i, why)| json!({"index": i, "message": why}))
                .collect();
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({
                    "code": 400,
                    "error": "some data points in the request failed validation",
                    "failed_records": records,
                    "num_records_imported": written,
                    "status": "Bad Request",
                })),
            )
                .into_response();
        }
        return axum::Json(json!({"code": 200, "num_records_imported": written, "status": "OK"}))
            .into_response();
    }
    let ok = !b.all_refused();
    if verbose {
        let error = if failed {
            Json::from(b.errors.join("; "))
        } else {
            Json::Null
        };
        let status = if ok {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        return (
            status,
            axum::Json(json!({"status": i32::from(ok), "error": error})),
        )
            .into_response();
    }
    if ok { "1" } else { "0" }.into_response()
}
