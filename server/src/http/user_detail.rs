//! `GET /v1/users/ID` (用户细查): one person as a customer-success manager
//! looks them up: their profile, the other ids that are the same person
//! (aliases), the saved cohorts they are in, and their events as a
//! timeline, newest first, paged. Query role. For a key scoped to some
//! users, a user outside the scope is `404` exactly as an unknown one.
//!
//! Paging: `limit` (default 50, at most [`MAX_LIMIT`]) events per page;
//! the reply's `next` (`{"before": T, "skip": K}`, or null on the last
//! page) is passed back as `?before=T&skip=K` and continues exactly where
//! the page ended, ties in time included.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::{json, Map, Value as Json};

use super::{blocking, ApiError, ApiResult, App, Role};

/// Most events one page may hold.
pub const MAX_LIMIT: usize = 1000;

fn bad(path: &str, message: String) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        code: "invalid",
        message,
        path: path.into(),
    }
}

pub(super) async fn get(
    State(app): State<Arc<App>>,
    Path(user): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult {
    let access = app.authorize(&headers, Role::Query)?;
    let (mut limit, mut before, mut skip) = (50usize, None::<i64>, 0usize);
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        let int = |max: u64| {
            v.parse::<u64>().ok().filter(|n| *n <= max).ok_or_else(|| {
                bad(
                    &k,
                    format!("expected a whole number up to {max}, got {v:?}"),
                )
            })
        };
        match &*k {
            "limit" => limit = int(MAX_LIMIT as u64)? as usize,
            "before" => before = Some(int(i64::MAX as u64 - 1)? as i64),
            "skip" => skip = int(100_000)? as usize,
            other => {
                return Err(bad(
                    other,
                    format!("unknown parameter {other:?}; this endpoint takes limit, before, skip"),
                ))
            }
        }
    }
    let (a, opts) = (app.clone(), app.query_options(&access));
    blocking(move || -> std::result::Result<_, ApiError> {
        let store = a.engine.store();
        // The person: every id linked to the user, the known id first.
        let Some(ids) = a.engine.person(&user, &opts)? else {
            return Err(ApiError {
                status: StatusCode::NOT_FOUND,
                code: "not_found",
                message: format!("no user \"{user}\" has sent an event or has a profile"),
                path: String::new(),
            });
        };
        let snap = store.snapshot();
        let names = store.user_names(&ids);
        let profile = snap.profiles.get(ids[0]).map_or(Json::Null, |p| {
            Json::Object(
                p.to_map()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect::<Map<_, _>>(),
            )
        });
        let mut cohorts = Vec::new();
        for name in store
            .cohort_names()
            .map_err(footprint_engine::Error::from)?
        {
            let members = store.cohort(&name).map_err(footprint_engine::Error::from)?;
            if members.is_some_and(|m| ids.iter().any(|&i| m.contains(i))) {
                cohorts.push(name);
            }
        }
        // Events at or before `before` (the tie at `before` already shown
        // `skip` of), newest first.
        let range_end = before.map(|b| b + 1);
        let (mut events, in_range) = store
            .user_events(&ids, range_end, limit + skip)
            .map_err(footprint_engine::Error::from)?;
        let skipped = skip.min(events.len());
        events.drain(..skipped);
        let shown = skipped + events.len();
        let next = match events.last() {
            Some(last) if (shown as u64) < in_range => {
                // Events at the last time shown: those on this page, and
                // the ones skipped before it when the time is the same.
                let mut k = events.iter().filter(|e| e.time == last.time).count();
                if before == Some(last.time) {
                    k += skipped;
                }
                json!({"before": last.time, "skip": k})
            }
            _ => Json::Null,
        };
        let items: Vec<Json> = events
            .into_iter()
            .map(|e| {
                let props: Map<String, Json> = e
                    .props
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect();
                json!({"user": e.user, "event": e.event, "time": e.time, "props": props})
            })
            .collect();
        Ok(json!({
            "user": user,
            "ids": names,
            "profile": profile,
            "cohorts": cohorts,
            "events": items,
            "events_in_range": in_range,
            "next": next,
        }))
    })
    .await?
    .map(|body| axum::Json(body).into_response())
}
