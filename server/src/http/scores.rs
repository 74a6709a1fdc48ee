//! Saved health scores over HTTP (`POST/GET /v1/scores`, `GET/DELETE
//! /v1/scores/NAME`, `POST /v1/scores/NAME/run`). Creating, deleting and
//! running write profiles, so they take the admin role (as watches do)
//! and a key without a scope; reading definitions takes the query role,
//! and a scoped key is not shown how many users a run scored (a count of
//! everyone). See [`crate::scores`].

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{json, Value as Json};

use super::body::{self, Encoding};
use super::{blocking, ApiError, ApiResult, App, Role};
use crate::scores::SavedScore;

fn not_found(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no score {name:?}; GET /v1/scores lists them"),
    )
}

/// An admin key without a scope: a score writes every member's profile.
fn authorize_write(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    if app.authorize(headers, Role::Admin)?.scope.is_some() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this key is scoped to some users and may only read: a saved score writes a profile property of every user it scores",
        ));
    }
    Ok(())
}

/// What a key of `scoped` may see of a score's status.
fn shown(mut v: Json, scoped: bool) -> Json {
    if scoped {
        if let Some(Json::Object(m)) = v.get_mut("last_run") {
            m.retain(|k, _| k == "at");
        }
    }
    v
}

/// `POST /v1/scores`: creates (or replaces) a saved score; 201 with it.
pub(super) async fn create(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    authorize_write(&app, &headers)?;
    let encoding = Encoding::of(&headers)?;
    let (raw, mut charge) = app.read_body(&headers, body).await?;
    let a = app.clone();
    let opts = app.query_options(&super::Access::default());
    let out = blocking(move || -> Result<Json, ApiError> {
        let bytes = body::decode(raw, encoding, a.cfg.max_body, &mut charge)?;
        let v = super::json_body(&bytes)?;
        let s = SavedScore::parse(&v, &a.engine, &opts).map_err(|e| ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid",
            message: e.message,
            path: e.path,
        })?;
        let name = s.name.clone();
        a.scores.create(s).map_err(super::storage_failed)?;
        Ok(a.scores
            .status(&name)
            .unwrap_or_else(|| json!({"name": name})))
    })
    .await??;
    Ok((StatusCode::CREATED, axum::Json(out)).into_response())
}

/// `GET /v1/scores`.
pub(super) async fn list(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult {
    let scoped = app.authorize(&headers, Role::Query)?.scope.is_some();
    let a = app.clone();
    let list = blocking(move || a.scores.list()).await?;
    let list: Vec<Json> = list.into_iter().map(|v| shown(v, scoped)).collect();
    Ok(axum::Json(json!({ "scores": list })).into_response())
}

/// `GET /v1/scores/NAME`.
pub(super) async fn get(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let scoped = app.authorize(&headers, Role::Query)?.scope.is_some();
    let (a, n) = (app.clone(), name.clone());
    let s = blocking(move || a.scores.status(&n)).await?;
    Ok(axum::Json(shown(s.ok_or_else(|| not_found(&name))?, scoped)).into_response())
}

/// `DELETE /v1/scores/NAME` (the property stays as last written).
pub(super) async fn delete(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    authorize_write(&app, &headers)?;
    let (a, n) = (app.clone(), name.clone());
    let gone = blocking(move || a.scores.delete(&n))
        .await?
        .map_err(super::storage_failed)?;
    if !gone {
        return Err(not_found(&name));
    }
    Ok(axum::Json(json!({ "deleted": name })).into_response())
}

/// `POST /v1/scores/NAME/run`: runs it now (within the query time
/// budget); what the run did.
pub(super) async fn run(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    authorize_write(&app, &headers)?;
    let (a, n) = (app.clone(), name.clone());
    let opts = app.query_options(&super::Access::default());
    let r = blocking(move || {
        if !a.scores.names().contains(&n) {
            return Ok(None);
        }
        a.scores.run(&a.engine, &n, opts).map(Some)
    })
    .await?;
    match r {
        Ok(Some(report)) => Ok(axum::Json(report).into_response()),
        Ok(None) => Err(not_found(&name)),
        Err(e) => Err(match e.downcast::<footprint_engine::Error>() {
            Ok(engine_error) => ApiError::from(engine_error),
            Err(other) => super::storage_failed(other),
        }),
    }
}
