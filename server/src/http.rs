//! The HTTP API: ingest, query, profiles, aliases, schema, stats, health
//! and metrics over JSON (and the web console at `/`), with API keys, body limits, a query time budget,
//! and bounds on concurrent queries, concurrent ingests and the memory
//! request bodies hold. See `server/API.md`.

mod body;
mod cohorts;
mod console;
mod live;
mod metrics;
mod profile_read;
mod scores;
mod trackers;
mod user_detail;
mod watches;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use footprint_engine::storage::parse;
use footprint_engine::{Engine, ErrorKind, QueryOptions, Scope};
use serde_json::{json, Value as Json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use body::{Budget, Encoding, HeapSize};
use metrics::Metrics;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Write events, profiles, aliases (safe to embed in a website).
    Ingest,
    /// Read: query, schema, stats.
    Query,
    /// Everything.
    Admin,
}

/// One API key.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// The secret sent as `Authorization: Bearer <key>`.
    pub key: String,
    /// What it may do.
    pub role: Role,
    /// A label for logs.
    #[serde(default)]
    pub name: String,
    /// A user condition scoping the key (per-owner access): the key
    /// reads only the people it admits (see `footprint_query::scope`)
    /// and writes nothing. An ingest key cannot have one.
    #[serde(default)]
    pub users: Option<Json>,
}

impl ApiKey {
    /// The key's scope; an error naming `path` when its condition is not
    /// a valid user condition or the key may not be scoped.
    fn scope(&self, path: &str) -> std::result::Result<Option<Scope>, String> {
        let Some(users) = &self.users else {
            return Ok(None);
        };
        if self.role == Role::Ingest {
            return Err(format!(
                "{path}: an ingest key cannot be scoped to some users: a scope restricts what a key reads, an ingest key reads nothing, and a scoped key may not write (writing profiles or aliases could move people into its scope); give the scope to a query or admin key"
            ));
        }
        Scope::new(users.clone(), path)
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    keys: Vec<ApiKey>,
}

/// Reads `{"keys": [{"key": …, "role": "ingest"|"query"|"admin", "name": …}]}`.
pub fn load_keys(path: &std::path::Path) -> Result<Vec<ApiKey>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let f: KeysFile = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a keys file", path.display()))?;
    if f.keys.is_empty() {
        bail!("{}: no keys", path.display());
    }
    for (i, k) in f.keys.iter().enumerate() {
        if let Err(e) = k.scope(&format!("keys[{i}].users")) {
            bail!("{}: key {:?}: {e}", path.display(), k.name);
        }
    }
    if let Some(k) = f.keys.iter().find(|k| k.key.len() < 16) {
        bail!(
            "{}: key {:?} is shorter than 16 characters",
            path.display(),
            k.name
        );
    }
    Ok(f.keys)
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind.
    pub addr: SocketAddr,
    /// API keys; `None` = no auth (loopback only).
    pub keys: Option<Vec<ApiKey>>,
    /// Largest request body, bytes (after gzip decoding too).
    pub max_body: usize,
    /// Per-query time budget.
    pub query_timeout: Duration,
    /// Queries running at once; more get 503.
    pub max_queries: usize,
    /// Ingest requests (events, profiles, aliases) in flight at once; more
    /// get 503.
    pub max_ingests: usize,
    /// Bytes that request bodies in flight may hold in all: as sent, as
    /// decoded, and as the rows parsed from them. Beyond it, 503.
    pub max_inflight: usize,
    /// Time a client has to send its whole body; slower ones get 408.
    pub body_timeout: Duration,
    /// A live cohort read is re-evaluated first when its members are
    /// older than this.
    pub cohort_max_age: Duration,
}

impl Config {
    /// Settings for `addr` with the defaults of `footprint serve`.
    pub fn new(addr: SocketAddr) -> Self {
        Config {
            addr,
            keys: None,
            max_body: 64 << 20,
            query_timeout: Duration::from_secs(30),
            max_queries: 8,
            max_ingests: 8,
            max_inflight: 1 << 30,
            body_timeout: Duration::from_secs(60),
            cohort_max_age: footprint_engine::query::cohorts::DEFAULT_MAX_AGE,
        }
    }

    /// Refuses settings under which a largest request could never be served.
    pub fn check(&self) -> Result<()> {
        if self.max_inflight < 2 * self.max_body {
            bail!(
                "--max-inflight-mb ({} MiB) must be at least twice --max-body-mb ({} MiB): a largest body sent gzipped is held both as sent and as decoded",
                self.max_inflight >> 20,
                self.max_body >> 20
            );
        }
        Ok(())
    }
}

struct App {
    engine: Arc<Engine>,
    cfg: Config,
    /// Query slots.
    slots: Arc<Semaphore>,
    /// Ingest slots.
    ingests: Arc<Semaphore>,
    /// Memory held by request bodies.
    budget: Budget,
    metrics: Metrics,
    /// The last events stored, for `GET /v1/live`.
    live: live::Live,
    /// The watches of the data directory.
    watches: Arc<crate::watch::Watches>,
    /// The saved scores of the data directory.
    scores: Arc<crate::scores::Scores>,
    /// The scope of each of `cfg.keys`, in order (`Err`: a condition
    /// that does not parse, so the key is refused, never unscoped).
    scopes: Vec<std::result::Result<Option<Scope>, String>>,
}

/// What the key of a request may see.
#[derive(Debug, Clone, Default)]
pub(crate) struct Access {
    /// The key's scope; `None`: every user.
    pub(crate) scope: Option<Scope>,
}

/// An error response: `{"error": {"code", "message", "path"}}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    path: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            path: String::new(),
        }
    }

    /// `503 busy`, answered with `Retry-After`.
    fn busy(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message)
    }
}

/// The code of an error response, for `/metrics` (set on the response by
/// [`ApiError`], read by the counting middleware).
#[derive(Clone, Copy)]
struct ErrorCode(&'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({"error": {"code": self.code, "message": self.message, "path": self.path}});
        let mut r = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r.extensions_mut().insert(ErrorCode(self.code));
        r
    }
}

impl From<footprint_engine::Error> for ApiError {
    fn from(e: footprint_engine::Error) -> Self {
        match e {
            footprint_engine::Error::Query(q) => {
                let (status, code) = match q.kind {
                    ErrorKind::Invalid => (StatusCode::BAD_REQUEST, "invalid_query"),
                    ErrorKind::NotSupported => (StatusCode::NOT_IMPLEMENTED, "not_supported"),
                    ErrorKind::Timeout => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
                    ErrorKind::Cancelled => (StatusCode::SERVICE_UNAVAILABLE, "cancelled"),
                    ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
                    ErrorKind::NotTranslatable => {
                        (StatusCode::UNPROCESSABLE_ENTITY, "not_translatable")
                    }
                    _ => (StatusCode::INTERNAL_SERVER_ERROR, "storage"),
                };
                ApiError {
                    status,
                    code,
                    message: q.message,
                    path: q.path,
                }
            }
            footprint_engine::Error::Invalid(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid", m)
            }
            footprint_engine::Error::Storage(footprint_engine::storage::Error::TimedOut(m)) => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, "timeout", m)
            }
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage",
                other.to_string(),
            ),
        }
    }
}

type ApiResult = std::result::Result<Response, ApiError>;

impl App {
    /// Options of a query or cohort read by `access`: the time budget,
    /// the staleness bound of live cohorts and the key's scope.
    fn query_options(&self, access: &Access) -> QueryOptions {
        QueryOptions {
            timeout: Some(self.cfg.query_timeout),
            cohort_max_age: Some(self.cfg.cohort_max_age),
            scope: access.scope.clone(),
            ..Default::default()
        }
    }

    /// Checks the request's key for `need`; what it may see. A scoped key
    /// writes nothing: [`Role::Ingest`] endpoints refuse it.
    fn authorize(&self, headers: &HeaderMap, need: Role) -> std::result::Result<Access, ApiError> {
        if self.cfg.keys.is_none() {
            return Ok(Access::default());
        }
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "missing Authorization: Bearer <key>",
                )
            })?;
        let (role, scope) = self.role_of(given).ok_or_else(|| {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "unknown API key")
        })?;
        if role != Role::Admin && role != need {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this key has role {role:?}; the endpoint needs {need:?} or Admin"),
            ));
        }
        if need == Role::Ingest && scope.is_some() {
            return Err(scoped_write());
        }
        Ok(Access { scope })
    }

    /// The role and scope of `given` among the configured keys, compared
    /// against every key in constant time, so timing tells nothing. A key
    /// whose scope does not parse is unknown.
    fn role_of(&self, given: &str) -> Option<(Role, Option<Scope>)> {
        let mut found = None;
        for (i, k) in self.cfg.keys.iter().flatten().enumerate() {
            let eq: bool = subtle::ConstantTimeEq::ct_eq(k.key.as_bytes(), given.as_bytes()).into();
            if eq {
                found = match self.scopes.get(i) {
                    Some(Ok(scope)) => Some((k.role, scope.clone())),
                    _ => None,
                };
            }
        }
        found
    }

    /// Reads a request body within the body limits, charged to the budget.
    async fn read_body(
        &self,
        headers: &HeaderMap,
        body: Body,
    ) -> std::result::Result<(Vec<u8>, body::Charge), ApiError> {
        body::read(
            &self.budget,
            headers,
            body,
            self.cfg.max_body,
            self.cfg.body_timeout,
        )
        .await
    }

    /// An ingest slot, held until the reply; `503` when all are taken.
    fn ingest_slot(&self) -> std::result::Result<OwnedSemaphorePermit, ApiError> {
        self.ingests.clone().try_acquire_owned().map_err(|_| {
            ApiError::busy(format!(
                "{} ingest requests are in flight, the most this server takes at once (--max-ingests); retry shortly",
                self.cfg.max_ingests
            ))
        })
    }
}

/// `500 storage` for a failure of the server's own files (watches,
/// scores).
fn storage_failed(e: anyhow::Error) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "storage",
        format!("{e:#}"),
    )
}

/// `403` for a write with a scoped key.
fn scoped_write() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "this key is scoped to some users and may only read: writing events, profiles or aliases could move people into its scope",
    )
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> std::result::Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("worker failed: {e}"),
        )
    })
}

/// How long `/health` waits for the store's locks before it calls the
/// engine stuck.
const HEALTH_LOCK_TIMEOUT: Duration = Duration::from_secs(2);

/// 200 when the engine takes its locks within [`HEALTH_LOCK_TIMEOUT`] and
/// accepts writes; 503 naming the reason otherwise (a store poisoned by a
/// write-path I/O error, or locks that cannot be taken).
async fn health(State(app): State<Arc<App>>) -> Response {
    let a = app.clone();
    let probe = tokio::task::spawn_blocking(move || {
        let store = a.engine.store();
        (store.poisoned(), store.responsive(HEALTH_LOCK_TIMEOUT))
    })
    .await;
    let (status, body) = match probe {
        Ok((None, true)) => (StatusCode::OK, json!({"status": "ok"})),
        Ok((Some(why), _)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "read_only", "reason": format!("writes are refused until the store is reopened: {why}")}),
        ),
        Ok((None, false)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "stuck", "reason": format!("the store's locks could not be taken within {} s", HEALTH_LOCK_TIMEOUT.as_secs())}),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "stuck", "reason": format!("the health probe failed: {e}")}),
        ),
    };
    (status, axum::Json(body)).into_response()
}

/// How a batch write reads its rows: `fast` reads a plain NDJSON line
/// without a JSON tree (`None`: the line goes to `json`), `json` reads one
/// JSON row, `csv` a whole CSV body (`None`: CSV is refused with 415).
struct RowParsers<T> {
    fast: Option<fn(&str) -> Option<T>>,
    json: fn(Json) -> std::result::Result<T, String>,
    csv: Option<CsvRows<T>>,
}

/// Reads the rows of a whole CSV body.
type CsvRows<T> = fn(&[u8]) -> parse::Rows<T>;

/// A batch write (events, profiles, aliases): within an ingest slot and the
/// memory budget, read and decode the body, parse its rows one at a time,
/// apply the good ones in one durable write, and reply with the count of
/// rejected rows and the first [`parse::MAX_ROW_ERRORS`] of them.
async fn write_rows<T: HeapSize + Send + 'static>(
    app: Arc<App>,
    headers: HeaderMap,
    body: Body,
    parsers: RowParsers<T>,
    apply: fn(&App, Vec<T>) -> footprint_engine::Result<Option<String>>,
    events: bool,
) -> ApiResult {
    app.authorize(&headers, Role::Ingest)?;
    let encoding = Encoding::of(&headers)?;
    let is_csv = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("text/csv"));
    let RowParsers {
        fast,
        json: parse,
        csv,
    } = parsers;
    let csv = match (is_csv, csv) {
        (false, _) => None,
        (true, Some(csv)) => Some(csv),
        (true, None) => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "this endpoint takes NDJSON or a JSON array; CSV is taken by /v1/profiles (and `footprint ingest` for events)",
            ))
        }
    };
    let slot = app.ingest_slot()?;
    let (raw, mut charge) = app.read_body(&headers, body).await?;
    let a = app.clone();
    // The slot and the charge go with the work: a client that hangs up
    // does not free them while its rows are still being parsed or written.
    let rows = blocking(move || -> std::result::Result<_, ApiError> {
        let _slot = slot;
        let text = body::decode(raw, encoding, a.cfg.max_body, &mut charge)?;
        let rows = match csv {
            Some(csv) => body::parse_csv_rows(text, &mut charge, csv)?,
            None => body::parse_rows(text, &mut charge, fast, parse)?,
        };
        let accepted = rows.rows.len();
        let warning = apply(&a, rows.rows)?;
        Ok((accepted, rows.rejected, rows.errors, warning))
    })
    .await??;
    let (accepted, rejected, errors, warning) = rows;
    app.metrics
        .rows(if events { accepted } else { 0 }, rejected);
    let status = if accepted == 0 && rejected > 0 {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut reply = json!({"accepted": accepted, "rejected": rejected, "errors": errors});
    if let Some(w) = warning {
        reply["warnings"] = json!([w]);
    }
    Ok((status, axum::Json(reply)).into_response())
}

async fn events(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> ApiResult {
    write_rows(
        app,
        headers,
        body,
        RowParsers {
            fast: Some(parse::fast_event),
            json: parse::event_from_json,
            csv: None,
        },
        |a, evs| {
            let max = a.engine.store().options().max_props;
            let (tail, n) = (live::tail(evs.iter()), evs.len());
            let warning = a.engine.ingest(evs)?.warning(max);
            a.live.record(tail, n, live::now_ms());
            Ok(warning)
        },
        true,
    )
    .await
}

async fn profiles(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> ApiResult {
    write_rows(
        app,
        headers,
        body,
        RowParsers {
            fast: None,
            json: parse::parse_profile_update,
            csv: Some(|b| {
                parse::parse_profile_csv(b, 1, footprint_engine::storage::ProfileOp::Set)
            }),
        },
        |a, ups| a.engine.upsert_profiles(ups).map(|()| None),
        false,
    )
    .await
}

async fn alias(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> ApiResult {
    write_rows(
        app,
        headers,
        body,
        RowParsers {
            fast: None,
            json: parse::parse_alias,
            csv: None,
        },
        |a, links| a.engine.alias(links).map(|()| None),
        false,
    )
    .await
}

/// `/v1/alias` is both Footprint's links endpoint and Segment's alias
/// call: a request with Basic auth (the Segment write key) is Segment's.
async fn alias_or_segment(
    State(app): State<Arc<App>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Basic "));
    if basic {
        trackers::segment_alias(app, method, uri, headers, body).await
    } else {
        alias(State(app), headers, body).await.into_response()
    }
}

async fn query(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> ApiResult {
    let access = app.authorize(&headers, Role::Query)?;
    let encoding = Encoding::of(&headers)?;
    let (raw, mut charge) = app.read_body(&headers, body).await?;
    // The slot is taken before the body becomes a JSON tree, so at most
    // --max-queries trees are built at once.
    let Ok(permit) = app.slots.clone().try_acquire_owned() else {
        return Err(ApiError::busy(format!(
            "{} queries are running, the most this server runs at once; retry shortly",
            app.cfg.max_queries
        )));
    };
    let t = Instant::now();
    let a = app.clone();
    let opts = app.query_options(&access);
    let (kind, r) = blocking(move || -> std::result::Result<_, ApiError> {
        let _permit = permit;
        let bytes = body::decode(raw, encoding, a.cfg.max_body, &mut charge)?;
        let q = json_body(&bytes)?;
        drop(bytes);
        let kind = q
            .get("kind")
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_owned();
        let r = a.engine.query_json(&q, opts);
        Ok((kind, r))
    })
    .await??;
    app.metrics.query(&kind, t.elapsed().as_secs_f64() * 1e3);
    match r {
        Ok(v) => Ok(axum::Json(v).into_response()),
        Err(e) => Err(ApiError::from(e)),
    }
}

/// A request body as JSON; `400 bad_json` naming the line and column.
fn json_body(bytes: &[u8]) -> std::result::Result<Json, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError {
        status: StatusCode::BAD_REQUEST,
        code: "bad_json",
        message: format!(
            "not valid JSON at line {} column {}: {e}",
            e.line(),
            e.column()
        ),
        path: String::new(),
    })
}

/// `POST /v1/sql/translate[?dialect=clickhouse&table=EXPR&profiles=EXPR]`: the query JSON
/// in the body, translated to SQL over the tables of `footprint export`
/// (see `footprint_query::sql`), validated against this store as
/// `/v1/query` validates it. Answers `{"dialect", "table", "sql"}`, or 422
/// `not_translatable` naming the field SQL cannot express.
async fn sql_translate(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    axum::extract::RawQuery(params): axum::extract::RawQuery,
    body: Body,
) -> ApiResult {
    let access = app.authorize(&headers, Role::Query)?;
    let mut opts = footprint_engine::query::sql::Options::default();
    for (k, v) in form_urlencoded::parse(params.unwrap_or_default().as_bytes()) {
        match (&*k, &*v) {
            ("dialect", "clickhouse") => {}
            ("dialect", other) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    format!("unknown dialect \"{other}\"; allowed: clickhouse"),
                ))
            }
            ("table", t) => t.clone_into(&mut opts.table),
            ("profiles", t) => t.clone_into(&mut opts.profiles),
            (other, _) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    format!("unknown parameter \"{other}\"; allowed: dialect, table, profiles"),
                ))
            }
        }
    }
    let encoding = Encoding::of(&headers)?;
    let (raw, mut charge) = app.read_body(&headers, body).await?;
    let a = app.clone();
    let sql = blocking(move || -> std::result::Result<_, ApiError> {
        let bytes = body::decode(raw, encoding, a.cfg.max_body, &mut charge)?;
        let q = json_body(&bytes)?;
        Ok(a.engine
            .translate_sql(&q, &opts, access.scope.as_ref())
            .map(|sql| (sql, opts.table)))
    })
    .await??;
    let (sql, table) = sql.map_err(ApiError::from)?;
    Ok(axum::Json(json!({"dialect": "clickhouse", "table": table, "sql": sql})).into_response())
}

async fn stats(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult {
    if app.authorize(&headers, Role::Query)?.scope.is_some() {
        // Every figure here counts every user's events.
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this key is scoped to some users, and the store's statistics count everyone's events; a query (kind events) counts the key's own",
        ));
    }
    let a = app.clone();
    let s = blocking(move || a.engine.stats()).await??;
    Ok(axum::Json(s).into_response())
}

/// `GET /v1/schema`: event names with counts, event property types,
/// profile property names with counts — a scoped key's counts are its
/// people's (see `footprint_engine::people`). It has the query time
/// budget: a data set with a great many property names answers 504, not
/// after minutes.
async fn schema(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult {
    let access = app.authorize(&headers, Role::Query)?;
    let a = app.clone();
    let opts = app.query_options(&access);
    let s = blocking(move || a.engine.schema(&opts)).await??;
    Ok(axum::Json(
        json!({"events": s.events, "properties": s.properties, "profile_properties": s.profile_properties}),
    )
    .into_response())
}

/// `GET /v1/live?limit=N`: the last events this server stored (newest
/// first, at most [`live::KEEP`], 20 unless `limit` says) and the count
/// stored in each of the last [`live::MINUTES`] minutes.
async fn live_tail(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> ApiResult {
    let access = app.authorize(&headers, Role::Query)?;
    let mut limit = 20;
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "limit" => {
                limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n <= live::KEEP)
                    .ok_or_else(|| ApiError {
                        status: StatusCode::BAD_REQUEST,
                        code: "invalid",
                        message: format!(
                            "limit: expected a whole number from 0 to {}, got {v:?}",
                            live::KEEP
                        ),
                        path: "limit".into(),
                    })?;
            }
            other => {
                return Err(ApiError {
                    status: StatusCode::BAD_REQUEST,
                    code: "invalid",
                    message: format!("unknown parameter {other:?}; this endpoint takes limit"),
                    path: other.into(),
                })
            }
        }
    }
    if access.scope.is_none() {
        return Ok(axum::Json(app.live.snapshot(limit, live::now_ms())).into_response());
    }
    // A scoped key sees its people's events only, and no counts (they
    // count everyone's).
    let (a, opts) = (app.clone(), app.query_options(&access));
    let out = blocking(move || -> std::result::Result<Json, ApiError> {
        let store = a.engine.store();
        let recent = a.live.recent();
        let ids: roaring::RoaringBitmap = recent
            .iter()
            .filter_map(|(_, e)| store.user_id(&e.user))
            .collect();
        let scope = a.engine.resolve_scope(&opts, Some(&ids))?;
        let admits = |user: &str| {
            store
                .user_id(user)
                .is_some_and(|u| scope.as_ref().is_none_or(|s| s.admits(u)))
        };
        Ok(a.live.snapshot_of(limit, live::now_ms(), admits))
    })
    .await??;
    Ok(axum::Json(out).into_response())
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}

async fn fallback() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see server/API.md",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method; see server/API.md",
    )
}

/// Counts every request, and every error response by its code.
async fn count(
    State(app): State<Arc<App>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    app.metrics.request();
    let r = next.run(req).await;
    if let Some(ErrorCode(code)) = r.extensions().get::<ErrorCode>() {
        app.metrics.error(code);
    }
    r
}

/// The API's routes over `engine`, as `serve` runs them; tests and fuzz
/// targets drive it in-process (watches are stored, but nothing runs
/// them: [`serve`] starts their scheduler).
/// A watch folder that cannot be read is logged and left out here;
/// [`serve`] refuses to start over one.
pub fn router(engine: Arc<Engine>, cfg: Config) -> Router {
    let dir = engine.store().dir().to_owned();
    let watches = crate::watch::Watches::open(&dir).unwrap_or_else(|e| {
        tracing::error!("watches: {e:#}");
        crate::watch::Watches::empty(&dir)
    });
    let scores = crate::scores::Scores::open(&dir).unwrap_or_else(|e| {
        tracing::error!("scores: {e:#}");
        crate::scores::Scores::empty(&dir)
    });
    router_with(engine, cfg, Arc::new(watches), Arc::new(scores))
}

fn router_with(
    engine: Arc<Engine>,
    cfg: Config,
    watches: Arc<crate::watch::Watches>,
    scores: Arc<crate::scores::Scores>,
) -> Router {
    let app = Arc::new(App {
        engine,
        slots: Arc::new(Semaphore::new(cfg.max_queries.max(1))),
        ingests: Arc::new(Semaphore::new(cfg.max_ingests.max(1))),
        budget: Budget::new(cfg.max_inflight),
        metrics: Metrics::new(),
        live: live::Live::new(live::now_ms()),
        scopes: cfg
            .keys
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, k)| k.scope(&format!("keys[{i}].users")))
            .collect(),
        cfg: cfg.clone(),
        watches,
        scores,
    });
    let api = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/events", post(events))
        .route("/v1/profiles", post(profiles).get(profile_read::get))
        .route("/v1/alias", post(alias_or_segment))
        .route("/v1/query", post(query))
        .route("/v1/sql/translate", post(sql_translate))
        .route("/v1/schema", get(schema))
        .route("/v1/stats", get(stats))
        .route("/v1/live", get(live_tail))
        .route("/v1/users/{id}", get(user_detail::get))
        .route("/v1/cohorts", get(cohorts::list).post(cohorts::post))
        .route(
            "/v1/cohorts/{name}",
            get(cohorts::get).put(cohorts::put).delete(cohorts::delete),
        )
        .route("/v1/cohorts/{name}/users", get(cohorts::users))
        .route("/v1/watches", get(watches::list).post(watches::create))
        .route(
            "/v1/watches/{id}",
            get(watches::get).delete(watches::delete),
        )
        .route("/v1/scores", get(scores::list).post(scores::create))
        .route("/v1/scores/{name}", get(scores::get).delete(scores::delete))
        .route("/v1/scores/{name}/run", post(scores::run));
    console::routes(trackers::routes(api))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(app.clone(), count))
        // Handlers read bodies themselves (within the same limit); this
        // bounds any extractor that would buffer one.
        .layer(DefaultBodyLimit::max(cfg.max_body))
        .with_state(app)
}

/// Serves until SIGINT or SIGTERM, then finishes in-flight requests and
/// closes the engine (flushing the memtable).
pub fn serve(engine: Engine, cfg: Config) -> Result<()> {
    if cfg.keys.is_none() && !cfg.addr.ip().is_loopback() {
        bail!(
            "refusing to listen on {} without API keys: anyone on the network could read and write the data; pass --keys FILE or bind to 127.0.0.1",
            cfg.addr
        );
    }
    cfg.check()?;
    std::thread::spawn(console::precompress);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let engine = Arc::new(engine);
    let watches = Arc::new(crate::watch::Watches::open(engine.store().dir())?);
    let scores = Arc::new(crate::scores::Scores::open(engine.store().dir())?);
    let router = router_with(engine.clone(), cfg.clone(), watches.clone(), scores.clone());
    let scheduler = Scheduler::start(engine.clone(), watches, scores)?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(cfg.addr)
            .await
            .with_context(|| format!("cannot listen on {}", cfg.addr))?;
        let local = listener.local_addr()?;
        println!("listening on http://{local}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown())
            .await
            .context("server failed")?;
        Ok::<_, anyhow::Error>(())
    })?;
    drop(rt);
    scheduler.stop();
    match Arc::try_unwrap(engine) {
        Ok(e) => e.close()?,
        Err(_) => tracing::warn!(
            "requests still held the engine at shutdown; everything acknowledged is in the WAL"
        ),
    }
    eprintln!("stopped cleanly");
    Ok(())
}

/// The thread that runs due watches and saved scores (every
/// [`SCHEDULER_TICK`], one after the other).
struct Scheduler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

/// How often the scheduler looks for due watches and scores.
const SCHEDULER_TICK: Duration = Duration::from_millis(200);

impl Scheduler {
    fn start(
        engine: Arc<Engine>,
        watches: Arc<crate::watch::Watches>,
        scores: Arc<crate::scores::Scores>,
    ) -> Result<Scheduler> {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("footprint-watches".into())
            .spawn(move || {
                while !s.load(std::sync::atomic::Ordering::Relaxed) {
                    watches.tick(&engine);
                    scores.tick(&engine);
                    std::thread::sleep(SCHEDULER_TICK);
                }
            })
            .context("cannot start the watch scheduler")?;
        Ok(Scheduler { stop, thread })
    }

    /// Stops after the run in progress (a post waits at most
    /// [`crate::watch::deliver::TIMEOUT`]).
    fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
