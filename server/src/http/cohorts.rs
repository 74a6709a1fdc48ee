//! Saved cohorts over HTTP (README, "Cohorts"): list, read (a live cohort
//! is re-evaluated when older than `--cohort-max-age-secs`), create (a
//! `users` definition or a list of ids), stream the members with chosen
//! profile fields, delete. Query role.
//!
//! A scoped key sees each cohort's in-scope members only (its size is
//! theirs; the size history, which counts everyone, is `null`), uploads
//! static cohorts whose ids outside its scope count as unknown, and saves
//! live cohorts whose definition carries its scope.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use footprint_engine::Cohort;
use serde_json::{json, Map, Value as Json};

use super::body::{self, Encoding};
use super::{blocking, ApiError, ApiResult, App, Role};

/// Members named per call into the store while streaming.
const CHUNK: usize = 4096;
/// Most profile fields a member listing may ask for.
pub const MAX_FIELDS: usize = 100;

fn bad(path: &str, message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        code: "invalid",
        message: message.into(),
        path: path.into(),
    }
}

fn summary(name: &str, c: &Cohort) -> Json {
    json!({
        "name": name,
        "kind": if c.is_live() { "live" } else { "static" },
        "size": c.members.len(),
        "evaluated_at": c.evaluated_at,
    })
}

fn detail(name: &str, c: &Cohort, scoped: bool) -> Json {
    let mut out = summary(name, c);
    let def = c
        .definition
        .as_deref()
        .and_then(|d| serde_json::from_str::<Json>(d).ok())
        .unwrap_or(Json::Null);
    out["definition"] = def;
    out["history"] = if scoped {
        Json::Null
    } else {
        c.history
            .iter()
            .map(|&(at, size)| json!({"at": at, "size": size}))
            .collect()
    };
    out
}

/// `GET /v1/cohorts`: every cohort as last evaluated.
pub(super) async fn list(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult {
    let access = app.authorize(&headers, Role::Query)?;
    let (a, opts) = (app.clone(), app.query_options(&access));
    let all = blocking(move || a.engine.cohorts(&opts)).await??;
    let list: Vec<Json> = all.iter().map(|(n, c)| summary(n, c)).collect();
    Ok(axum::Json(json!({ "cohorts": list })).into_response())
}

/// `GET /v1/cohorts/NAME`: definition, size, size history.
pub(super) async fn get(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let access = app.authorize(&headers, Role::Query)?;
    let (a, n) = (app.clone(), name.clone());
    let opts = app.query_options(&access);
    let c = blocking(move || a.engine.cohort(&n, &opts)).await??;
    Ok(axum::Json(detail(&name, &c, access.scope.is_some())).into_response())
}

/// `DELETE /v1/cohorts/NAME`.
pub(super) async fn delete(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    app.authorize(&headers, Role::Query)?;
    let (a, n) = (app.clone(), name.clone());
    let gone = blocking(move || -> Result<bool, ApiError> {
        footprint_engine::storage::cohorts::check_name(&n).map_err(|m| bad("name", m))?;
        if a.engine.delete_cohort(&n)? {
            Ok(true)
        } else {
            Err(ApiError::from(footprint_engine::Error::Query(
                footprint_engine::query::cohorts::not_found(a.engine.store(), &n),
            )))
        }
    })
    .await??;
    Ok(axum::Json(json!({ "deleted": name, "existed": gone })).into_response())
}

/// `PUT /v1/cohorts/NAME`: creates or replaces it.
pub(super) async fn put(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    create(app, Some(name), headers, body).await
}

/// `POST /v1/cohorts` with `"name"` in the body.
pub(super) async fn post(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> ApiResult {
    create(app, None, headers, body).await
}

enum Spec {
    Live(Json),
    Static(Vec<String>),
}

async fn create(app: Arc<App>, name: Option<String>, headers: HeaderMap, body: Body) -> ApiResult {
    let access = app.authorize(&headers, Role::Query)?;
    let scoped = access.scope.is_some();
    let encoding = Encoding::of(&headers)?;
    let text_ids = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|t| t.trim_start().to_ascii_lowercase())
        .is_some_and(|t| t.starts_with("text/plain") || t.starts_with("text/csv"));
    let (raw, mut charge) = app.read_body(&headers, body).await?;
    let a = app.clone();
    let opts = app.query_options(&access);
    let (status, out) = blocking(move || -> Result<(StatusCode, Json), ApiError> {
        let bytes = body::decode(raw, encoding, a.cfg.max_body, &mut charge)?;
        let (name, spec) = if text_ids {
            let name = name.ok_or_else(|| {
                bad(
                    "name",
                    "a list of ids as text goes to PUT /v1/cohorts/NAME (POST takes JSON with \"name\")",
                )
            })?;
            (name, Spec::Static(ids_from_text(&bytes)?))
        } else {
            parse_spec(&bytes, name)?
        };
        footprint_engine::storage::cohorts::check_name(&name).map_err(|m| bad("name", m))?;
        let existed = a.engine.store().cohort_record(&name).ok().flatten().is_some();
        let status = if existed {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        let out = match spec {
            Spec::Live(def) => {
                let c = a.engine.create_cohort(&name, &def, &opts)?;
                detail(&name, &c, scoped)
            }
            Spec::Static(ids) => {
                let s = a.engine.create_static_cohort(&name, &ids, &opts)?;
                let mut out = detail(&name, &s.cohort, scoped);
                out["unknown"] = json!(s.unknown);
                out["unknown_ids"] = json!(s.unknown_ids);
                out
            }
        };
        Ok((status, out))
    })
    .await??;
    Ok((status, axum::Json(out)).into_response())
}

/// One id per line; a first line `user` (a CSV header) is skipped, and so
/// are blank lines; of a CSV line, the first column.
fn ids_from_text(bytes: &[u8]) -> Result<Vec<String>, ApiError> {
    let text = std::str::from_utf8(bytes).map_err(|e| bad("", format!("not UTF-8: {e}")))?;
    let mut ids = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let id = line
            .split(',')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"');
        if id.is_empty() || (i == 0 && id == "user") {
            continue;
        }
        ids.push(id.to_owned());
    }
    Ok(ids)
}

fn parse_spec(bytes: &[u8], name: Option<String>) -> Result<(String, Spec), ApiError> {
    let v = super::json_body(bytes)?;
    let Json::Object(m) = &v else {
        return Err(bad(
            "",
            "expected an object: {\"definition\": {users query}} or {\"ids\": [...]}",
        ));
    };
    let allowed: &[&str] = if name.is_some() {
        &["definition", "ids"]
    } else {
        &["name", "definition", "ids"]
    };
    if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(
            k,
            format!(
                "unknown field \"{k}\"; allowed here: {}{}",
                allowed.join(", "),
                if k == "name" {
                    " (the name is in the path)"
                } else {
                    ""
                }
            ),
        ));
    }
    let name = match name {
        Some(n) => n,
        None => m
            .get("name")
            .and_then(Json::as_str)
            .ok_or_else(|| bad("name", "required: the cohort's name (a string)"))?
            .to_owned(),
    };
    let spec = match (m.get("definition"), m.get("ids")) {
        (Some(def), None) => {
            for k in footprint_engine::query::cohorts::NOT_DEFINITION {
                if def.get(k).is_some() {
                    return Err(bad(
                        &format!("definition.{k}"),
                        format!("\"{k}\" shapes a query's answer, not a cohort's members: leave it out"),
                    ));
                }
            }
            Spec::Live(def.clone())
        }
        (None, Some(Json::Array(ids))) => {
            let mut out = Vec::with_capacity(ids.len());
            for (i, id) in ids.iter().enumerate() {
                match id.as_str() {
                    Some(s) if !s.is_empty() => out.push(s.to_owned()),
                    _ => {
                        return Err(bad(
                            &format!("ids[{i}]"),
                            "expected a user id (a non-empty string)",
                        ))
                    }
                }
            }
            Spec::Static(out)
        }
        (None, Some(_)) => return Err(bad("ids", "expected a list of user ids")),
        _ => {
            return Err(bad(
                "",
                "give exactly one of \"definition\" (a users query: a live cohort) or \"ids\" (a static cohort)",
            ))
        }
    };
    Ok((name, spec))
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Csv,
    Ndjson,
}

/// The body of a streamed response: chunks from a producer thread.
struct Chunks(tokio::sync::mpsc::Receiver<Vec<u8>>);

impl futures_core::Stream for Chunks {
    type Item = Result<Vec<u8>, std::io::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|o| o.map(Ok))
    }
}

/// `GET /v1/cohorts/NAME/users?format=csv|ndjson&fields=a,b`: every
/// member with the profile fields asked, streamed.
pub(super) async fn users(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult {
    let access = app.authorize(&headers, Role::Query)?;
    let mut format = Format::Ndjson;
    let mut fields: Vec<String> = Vec::new();
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        match &*k {
            "format" => {
                format = match &*v {
                    "csv" => Format::Csv,
                    "ndjson" => Format::Ndjson,
                    other => {
                        return Err(bad(
                            "format",
                            format!("unknown format {other:?}; allowed: csv, ndjson"),
                        ))
                    }
                }
            }
            "fields" => {
                for f in v.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                    if f == "user" {
                        return Err(bad("fields", "\"user\" is always the first column"));
                    }
                    if !fields.iter().any(|x| x == f) {
                        fields.push(f.to_owned());
                    }
                }
            }
            other => {
                return Err(bad(
                    other,
                    format!("unknown parameter {other:?}; this endpoint takes format, fields"),
                ))
            }
        }
    }
    if fields.len() > MAX_FIELDS {
        return Err(bad(
            "fields",
            format!("at most {MAX_FIELDS} fields, got {}", fields.len()),
        ));
    }
    let (a, n) = (app.clone(), name.clone());
    let opts = app.query_options(&access);
    // Evaluated before the reply starts, so a missing or failing cohort
    // is a proper error status.
    let cohort = blocking(move || a.engine.cohort(&n, &opts)).await??;
    let size = cohort.members.len().to_string();
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let a = app.clone();
    tokio::task::spawn_blocking(move || {
        let store = a.engine.store();
        let snap = store.snapshot();
        if format == Format::Csv {
            let mut head = String::from("user");
            for f in &fields {
                head.push(',');
                csv_cell(&mut head, f);
            }
            head.push('\n');
            if tx.blocking_send(head.into_bytes()).is_err() {
                return;
            }
        }
        let ids: Vec<u32> = cohort.members.iter().collect();
        for chunk in ids.chunks(CHUNK) {
            let names = store.user_names(chunk);
            let mut out = String::new();
            for (&uid, user) in chunk.iter().zip(&names) {
                let profile = snap.profiles.get(uid);
                let value = |f: &str| profile.as_ref().and_then(|p| p.get(f)).map(|v| v.to_json());
                match format {
                    Format::Csv => {
                        csv_cell(&mut out, user);
                        for f in &fields {
                            out.push(',');
                            match value(f) {
                                None | Some(Json::Null) => {}
                                Some(Json::String(s)) => csv_cell(&mut out, &s),
                                Some(other) => csv_cell(&mut out, &other.to_string()),
                            }
                        }
                    }
                    Format::Ndjson => {
                        let mut row = Map::new();
                        row.insert("user".into(), Json::String(user.clone()));
                        for f in &fields {
                            row.insert(f.clone(), value(f).unwrap_or(Json::Null));
                        }
                        out.push_str(&Json::Object(row).to_string());
                    }
                }
                out.push('\n');
            }
            if tx.blocking_send(out.into_bytes()).is_err() {
                return; // the client went away
            }
        }
    });
    let ctype = match format {
        Format::Csv => "text/csv; charset=utf-8",
        Format::Ndjson => "application/x-ndjson",
    };
    let mut r: Response = Body::from_stream(Chunks(rx)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(ctype),
    );
    if let Ok(v) = header::HeaderValue::from_str(&size) {
        r.headers_mut().insert("x-cohort-size", v);
    }
    Ok(r)
}

/// Appends `s` as one CSV cell (RFC 4180: quoted when it holds a comma,
/// quote or line break; a leading `=`, `+`, `-` or `@` is not escaped —
/// the file is data, not a spreadsheet formula source).
fn csv_cell(out: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}
