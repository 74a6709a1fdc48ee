//! Watches over HTTP (`POST/GET /v1/watches`, `GET/DELETE
//! /v1/watches/ID`): admin role, since a watch sends profile data to
//! a URL of the caller's choosing. See [`crate::watch`]. A watch made with
//! a scoped key evaluates within that scope; a scoped key sees only the
//! watches of its own scope (others are 404), an unscoped one sees all.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::json;

use super::body::{self, Encoding};
use super::{blocking, ApiError, ApiResult, App, Role};
use crate::watch::Watch;

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no watch {id:?}; GET /v1/watches lists them"),
    )
}

/// `POST /v1/watches`: creates a watch; the reply holds its secret.
pub(super) async fn create(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let access = app.authorize(&headers, Role::Admin)?;
    let encoding = Encoding::of(&headers)?;
    let (raw, mut charge) = app.read_body(&headers, body).await?;
    let a = app.clone();
    let out = blocking(move || -> Result<serde_json::Value, ApiError> {
        let bytes = body::decode(raw, encoding, a.cfg.max_body, &mut charge)?;
        let v = super::json_body(&bytes)?;
        let w = Watch::parse(&v, &a.engine, access.scope.as_ref()).map_err(|e| ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid",
            message: e.message,
            path: e.path,
        })?;
        let (id, secret) = (w.id.clone(), w.secret.clone());
        a.watches.create(w).map_err(super::storage_failed)?;
        let mut out = a.watches.status(&id).unwrap_or_else(|| json!({"id": id}));
        out["secret"] = json!(secret);
        Ok(out)
    })
    .await??;
    Ok((StatusCode::CREATED, axum::Json(out)).into_response())
}

/// `GET /v1/watches`.
pub(super) async fn list(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult {
    let access = app.authorize(&headers, Role::Admin)?;
    let a = app.clone();
    let list = blocking(move || {
        a.watches
            .ids()
            .iter()
            .filter(|id| a.watches.visible(id, access.scope.as_ref()))
            .filter_map(|id| a.watches.status(id))
            .collect::<Vec<_>>()
    })
    .await?;
    Ok(axum::Json(json!({ "watches": list })).into_response())
}

/// `GET /v1/watches/ID`.
pub(super) async fn get(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let access = app.authorize(&headers, Role::Admin)?;
    let a = app.clone();
    let (i, w) = (
        id.clone(),
        blocking(move || {
            a.watches
                .visible(&id, access.scope.as_ref())
                .then(|| a.watches.status(&id))
                .flatten()
        })
        .await?,
    );
    Ok(axum::Json(w.ok_or_else(|| not_found(&i))?).into_response())
}

/// `DELETE /v1/watches/ID`.
pub(super) async fn delete(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let access = app.authorize(&headers, Role::Admin)?;
    let (a, i) = (app.clone(), id.clone());
    let gone = blocking(move || match a.watches.visible(&i, access.scope.as_ref()) {
        true => a.watches.delete(&i),
        false => Ok(false),
    })
    .await?
    .map_err(super::storage_failed)?;
    if !gone {
        return Err(not_found(&id));
    }
    Ok(axum::Json(json!({ "deleted": id })).into_response())
}
