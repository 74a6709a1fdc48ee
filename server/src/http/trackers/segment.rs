//! Segment's HTTP tracking API (`/v1/batch`, `/v1/track`, `/v1/identify`,
//! `/v1/alias`, `/v1/page`, `/v1/screen`, `/v1/group`, and analytics.js's
//! short `/v1/t`, `/v1/i`, `/v1/p`, `/v1/a`, which send `text/plain`).
//!
//! - `track` stores the event; `page` stores `$pageview`, `screen`
//!   `$screen` (with `name`, `category`, `$screen_name`).
//! - `identify` sets the traits on the user's profile and, when it names
//!   both, links `anonymousId` to `userId`.
//! - `alias` links `previousId` to `userId`.
//! - `group` sets `$group_id` on the user's profile (group traits describe
//!   the account, not the user, and are not stored).
//!
//! Context becomes properties: `context.campaign.*` → `utm_*`,
//! `context.page.url`/`path`/`referrer` → `$current_url`/`$pathname`/
//! `$referrer`, with `$referring_domain` taken from the referrer. The
//! write key (Basic auth, or `writeKey` in the body) must be a Footprint
//! ingest key when the server has keys.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use footprint_engine::{Alias, ProfileOp, ProfileUpdate, Value};
use serde_json::{json, Map, Value as Json};

use super::{
    event, event_time, id_of, profile, props_of, records, time_of, too_big, Batch, Failure, Wire,
};

/// The call an endpoint takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Call {
    /// Messages of any type, each saying its own.
    Batch,
    Track,
    Identify,
    Alias,
    Page,
    Screen,
    Group,
}

impl Call {
    fn of(t: &str) -> Option<Call> {
        Some(match t {
            "track" => Call::Track,
            "identify" => Call::Identify,
            "alias" => Call::Alias,
            "page" => Call::Page,
            "screen" => Call::Screen,
            "group" => Call::Group,
            _ => return None,
        })
    }
}

/// Maps a Segment request.
pub(super) fn map(call: Call, wire: &Wire, batch: &mut Batch) {
    let envelope = wire.json.as_object();
    let sent_at = |o: Option<&Map<String, Json>>| {
        o.and_then(|o| o.get("sentAt").or_else(|| o.get("sent_at")))
            .and_then(|v| time_of(v).ok())
    };
    let batch_sent = sent_at(envelope);
    if let Some(k) = envelope
        .and_then(|o| o.get("writeKey"))
        .and_then(Json::as_str)
    {
        batch.key(k);
    }
    for (i, r) in records(&wire.json).into_iter().enumerate() {
        let sent = sent_at(r.as_object()).or(batch_sent);
        if let Err(why) = message(call, r, sent, wire.now, batch) {
            batch.reject(i, why);
        }
    }
}

fn message(
    call: Call,
    r: &Json,
    sent_at: Option<i64>,
    now: i64,
    batch: &mut Batch,
) -> Result<(), String> {
    if let Some(why) = too_big(r, batch.body_len) {
        return Err(why);
    }
    let Json::Object(o) = r else {
        return Err("a message must be a JSON object".into());
    };
    if let Some(k) = o.get("writeKey").and_then(Json::as_str) {
        batch.key(k);
    }
    let call = match (call, o.get("type").and_then(Json::as_str)) {
        (Call::Batch, Some(t)) => Call::of(t).ok_or_else(|| format!("unknown type \"{t}\""))?,
        (Call::Batch, None) => return Err("missing type".into()),
        (c, _) => c,
    };
    let user_id = id_of(o.get("userId"));
    let user = user_id
        .clone()
        .or_else(|| id_of(o.get("anonymousId")))
        .ok_or("missing userId or anonymousId")?;
    let stamp = o.get("timestamp").or_else(|| o.get("originalTimestamp"));
    let time = event_time(stamp, sent_at, None, now)?;
    let empty = Map::new();
    let obj = |k: &str| match o.get(k) {
        Some(Json::Object(m)) => Ok(m),
        None | Some(Json::Null) => Ok(&empty),
        Some(_) => Err(format!("{k} must be a JSON object")),
    };
    match call {
        Call::Track | Call::Page | Call::Screen => {
            let mut props = props_of(Some(obj("properties")?), &[])?;
            let name = match call {
                Call::Track => id_of(o.get("event")).ok_or("missing event")?,
                Call::Page => "$pageview".to_owned(),
                _ => "$screen".to_owned(),
            };
            for k in ["name", "category"] {
                if let Some(v) = o.get(k).and_then(Json::as_str) {
                    set(&mut props, k, v);
                }
            }
            if call == Call::Screen {
                if let Some(v) = o.get("name").and_then(Json::as_str) {
                    set(&mut props, "$screen_name", v);
                }
            }
            context(obj("context")?, &mut props);
            if call == Call::Page && !has(&props, "$current_url") {
                if let Some(u) = obj("properties")?.get("url").and_then(Json::as_str) {
                    set(&mut props, "$current_url", u);
                }
            }
            batch.event(event(user, name, time, props)?, id_of(o.get("messageId")));
        }
        Call::Identify => {
            let traits = match o.get("traits") {
                Some(t @ Json::Object(_)) => Some(t),
                _ => obj("context")?.get("traits"),
            };
            let update = profile(&user, ProfileOp::Set, traits)?;
            if let (Some(known), Some(anon)) = (&user_id, id_of(o.get("anonymousId"))) {
                if *known != anon {
                    batch.aliases.push(Alias {
                        anonymous: anon,
                        known: known.clone(),
                    });
                }
            }
            batch.profiles.extend(update);
        }
        Call::Alias => {
            let known = user_id.ok_or("alias without userId")?;
            let previous = id_of(o.get("previousId")).ok_or("alias without previousId")?;
            if previous != known {
                batch.aliases.push(Alias {
                    anonymous: previous,
                    known,
                });
            }
        }
        Call::Group => {
            let group = id_of(o.get("groupId")).ok_or("group without groupId")?;
            batch.profiles.push(ProfileUpdate {
                user,
                op: ProfileOp::Set,
                props: vec![("$group_id".into(), Value::Str(group))],
            });
        }
        Call::Batch => return Err("a batch inside a batch".into()),
    }
    Ok(())
}

fn has(props: &[(String, Value)], k: &str) -> bool {
    props.iter().any(|(n, _)| n == k)
}

/// Sets `k` to `v` unless the event already has `k`.
fn set(props: &mut Vec<(String, Value)>, k: &str, v: &str) {
    if !v.is_empty() && !has(props, k) {
        props.push((k.to_owned(), Value::Str(v.to_owned())));
    }
}

/// The context's campaign and page, as the properties the analyses read.
fn context(c: &Map<String, Json>, props: &mut Vec<(String, Value)>) {
    if let Some(Json::Object(camp)) = c.get("campaign") {
        for (from, to) in [
            ("source", "utm_source"),
            ("medium", "utm_medium"),
            ("name", "utm_campaign"),
            ("term", "utm_term"),
            ("content", "utm_content"),
        ] {
            if let Some(v) = camp.get(from).and_then(Json::as_str) {
                set(props, to, v);
            }
        }
    }
    if let Some(Json::Object(page)) = c.get("page") {
        for (from, to) in [
            ("url", "$current_url"),
            ("path", "$pathname"),
            ("referrer", "$referrer"),
            ("title", "$title"),
        ] {
            if let Some(v) = page.get(from).and_then(Json::as_str) {
                set(props, to, v);
            }
        }
        if let Some(d) = page.get("referrer").and_then(Json::as_str).and_then(domain) {
            set(props, "$referring_domain", &d);
        }
    }
    if let Some(Json::Object(lib)) = c.get("library") {
        if let Some(v) = lib.get("name").and_then(Json::as_str) {
            set(props, "$lib", v);
        }
    }
}

/// The host of a URL (`https://www.baidu.com/s?wd=x` → `www.baidu.com`).
pub(super) fn domain(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next()?;
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = host.split(':').next()?.to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

/// Segment's answers: `{"success": true}`, or an error with a message.
pub(super) fn reply(result: Result<(Wire, Batch), Failure>) -> Response {
    match result {
        Ok((_, b)) if b.all_refused() => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({
                "success": false,
                "code": "invalid_request",
                "message": b.errors.first().cloned().unwrap_or_default(),
                "rejected": b.rejected,
                "errors": b.errors,
            })),
        )
            .into_response(),
        Ok((_, b)) => axum::Json(json!({
            "success": true,
            "accepted": b.written.iter().sum::<usize>(),
            "duplicates": b.duplicates,
            "rejected": b.rejected,
            "errors": b.errors,
        }))
        .into_response(),
        Err(f) => (
            f.status,
            axum::Json(json!({"success": false, "code": f.code, "message": f.message})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::domain;

    #[test]
    fn referring_domain() {
        assert_eq!(
            domain("https://www.baidu.com/s?wd=x").as_deref(),
            Some("www.baidu.com")
        );
        assert_eq!(
            domain("http://u:p@Example.COM:8080").as_deref(),
            Some("example.com")
        );
        assert_eq!(domain("weixin.qq.com/x").as_deref(), Some("weixin.qq.com"));
        assert_eq!(domain("").as_deref(), None);
    }
}
