//! `GET /v1/profiles?user=U&user=V…`: the stored profiles of the users
//! named (at most [`MAX_USERS`]), in the order asked, for the console's
//! cohort member list. Query role. A user without a profile, or unknown,
//! or outside the scope of a scoped key, has `"props": null`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::{json, Map, Value as Json};

use super::{blocking, ApiError, ApiResult, App, Role};

/// Most users one request may name.
pub const MAX_USERS: usize = 100;

pub(super) async fn get(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri) -> ApiResult {
    let access = app.authorize(&headers, Role::Query)?;
    let bad = |path: &str, message: String| ApiError {
        status: StatusCode::BAD_REQUEST,
        code: "invalid",
        message,
        path: path.into(),
    };
    let mut users = Vec::new();
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if k != "user" {
            return Err(bad(
                &k,
                format!("unknown parameter {k:?}; this endpoint takes user (repeated)"),
            ));
        }
        users.push(v.into_owned());
    }
    if users.is_empty() || users.len() > MAX_USERS {
        return Err(bad(
            "user",
            format!(
                "name from 1 to {MAX_USERS} users (user=U&user=V…), got {}",
                users.len()
            ),
        ));
    }
    let (a, opts) = (app.clone(), app.query_options(&access));
    let out = blocking(move || -> Result<Vec<Json>, ApiError> {
        let store = a.engine.store();
        let ids: roaring::RoaringBitmap = users.iter().filter_map(|u| store.user_id(u)).collect();
        let scope = a.engine.resolve_scope(&opts, Some(&ids))?;
        let snap = store.snapshot();
        Ok(users
            .into_iter()
            .map(|u| {
                let props = store
                    .user_id(&u)
                    .filter(|&id| scope.as_ref().is_none_or(|s| s.admits(id)))
                    .and_then(|id| snap.profiles.get(id))
                    .map_or(Json::Null, |p| {
                        Json::Object(
                            p.to_map()
                                .iter()
                                .map(|(k, v)| (k.clone(), v.to_json()))
                                .collect::<Map<_, _>>(),
                        )
                    });
                json!({"user": u, "props": props})
            })
            .collect())
    })
    .await??;
    Ok(axum::Json(json!({ "profiles": out })).into_response())
}
