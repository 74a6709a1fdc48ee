//! The HTTP API: ingest, query, profiles, aliases, schema, stats, health
//! and metrics over JSON, with API keys, body limits, a query time budget
//! and a bound on concurrent queries. See `server/API.md`.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use footprint_engine::storage::parse;
use footprint_engine::{Alias, Engine, ErrorKind, QueryOptions};
use serde_json::{json, Value as Json};
use tokio::sync::Semaphore;

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
}

#[derive(Default)]
struct Metrics {
    ingested: AtomicU64,
    rejected_rows: AtomicU64,
    requests: AtomicU64,
    errors: parking_lot_free::Map,
    queries: parking_lot_free::Map,
    query_ms: parking_lot_free::Map,
}

/// A tiny mutex-protected counter map (no extra dependency needed).
mod parking_lot_free {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    #[derive(Default)]
    pub struct Map(Mutex<BTreeMap<String, f64>>);

    impl Map {
        pub fn add(&self, key: &str, v: f64) {
            if let Ok(mut m) = self.0.lock() {
                *m.entry(key.to_owned()).or_default() += v;
            }
        }
        pub fn snapshot(&self) -> BTreeMap<String, f64> {
            self.0.lock().map(|m| m.clone()).unwrap_or_default()
        }
    }
}

struct App {
    engine: Arc<Engine>,
    cfg: Config,
    slots: Semaphore,
    metrics: Metrics,
    started: Instant,
}

/// An error response: `{"error": {"code", "message", "path"}}`.
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
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({"error": {"code": self.code, "message": self.message, "path": self.path}});
        let mut r = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
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
    fn authorize(&self, headers: &HeaderMap, need: Role) -> std::result::Result<(), ApiError> {
        let Some(keys) = &self.cfg.keys else {
            return Ok(());
        };
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
        // Compare against every key in constant time, so timing tells nothing.
        let mut role = None;
        for k in keys {
            let eq: bool = subtle::ConstantTimeEq::ct_eq(k.key.as_bytes(), given.as_bytes()).into();
            if eq {
                role = Some(k.role);
            }
        }
        match role {
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "unknown API key",
            )),
            Some(Role::Admin) => Ok(()),
            Some(r) if r == need => Ok(()),
            Some(r) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this key has role {r:?}; the endpoint needs {need:?} or Admin"),
            )),
        }
    }

    /// The request body, gunzipped if `Content-Encoding: gzip`, within the size limit.
    fn body(
        &self,
        headers: &HeaderMap,
        body: std::result::Result<Bytes, BytesRejection>,
    ) -> std::result::Result<Vec<u8>, ApiError> {
        let body = body.map_err(|e| {
            let status = e.status();
            let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "too_large"
            } else {
                "bad_body"
            };
            ApiError::new(
                status,
                code,
                format!("{e} (limit {} bytes)", self.cfg.max_body),
            )
        })?;
        match headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
        {
            None | Some("identity") => Ok(body.to_vec()),
            Some("gzip") => {
                let mut out = Vec::new();
                let mut d =
                    flate2::read::GzDecoder::new(&body[..]).take(self.cfg.max_body as u64 + 1);
                d.read_to_end(&mut out).map_err(|e| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_body",
                        format!("gzip body cannot be decoded: {e}"),
                    )
                })?;
                if out.len() > self.cfg.max_body {
                    return Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "too_large",
                        format!("the decompressed body exceeds {} bytes", self.cfg.max_body),
                    ));
                }
                Ok(out)
            }
            Some(other) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "bad_encoding",
                format!("Content-Encoding {other} is not supported; use gzip or none"),
            )),
        }
    }
}

fn text(bytes: Vec<u8>) -> std::result::Result<String, ApiError> {
    String::from_utf8(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            format!("body is not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
        )
    })
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

async fn events(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> ApiResult {
    app.authorize(&headers, Role::Ingest)?;
    let text = text(app.body(&headers, body)?)?;
    let a = app.clone();
    let (accepted, errors) = blocking(move || -> std::result::Result<_, ApiError> {
        let parsed = parse::parse_batch(&text, parse::Format::Json, 1);
        let n = parsed.events.len();
        a.engine.ingest(parsed.events)?;
        Ok((n, parsed.errors))
    })
    .await??;
    app.metrics
        .ingested
        .fetch_add(accepted as u64, Ordering::Relaxed);
    app.metrics
        .rejected_rows
        .fetch_add(errors.len() as u64, Ordering::Relaxed);
    Ok(batch_reply(accepted, &errors))
}

/// Rows of an NDJSON or JSON-array body, each with its line (1-based).
fn rows(text: &str) -> std::result::Result<Vec<(usize, Json)>, Vec<parse::RowError>> {
    if text.trim_start().starts_with('[') {
        let v: Vec<Json> = serde_json::from_str(text).map_err(|e| {
            vec![parse::RowError {
                line: e.line(),
                message: format!("not a JSON array: {e}"),
            }]
        })?;
        return Ok(v.into_iter().enumerate().map(|(i, r)| (i + 1, r)).collect());
    }
    let mut out = Vec::new();
    let mut errs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(v) => out.push((i + 1, v)),
            Err(e) => errs.push(parse::RowError {
                line: i + 1,
                message: format!("not valid JSON: {e}"),
            }),
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

/// Parses every row of an NDJSON or JSON-array body with `f`, keeping the
/// good rows and a line-numbered error for each bad one.
fn parse_rows<T>(
    text: &str,
    f: impl Fn(Json) -> std::result::Result<T, String>,
) -> (Vec<T>, Vec<parse::RowError>) {
    let mut good = Vec::new();
    let mut errors = Vec::new();
    match rows(text) {
        Err(e) => errors = e,
        Ok(rows) => {
            for (line, v) in rows {
                match f(v) {
                    Ok(x) => good.push(x),
                    Err(message) => errors.push(parse::RowError { line, message }),
                }
            }
        }
    }
    (good, errors)
}

/// The reply to a batch write: 200 unless every row was rejected.
fn batch_reply(accepted: usize, errors: &[parse::RowError]) -> Response {
    let status = if accepted == 0 && !errors.is_empty() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let shown: Vec<_> = errors.iter().take(1000).collect();
    (
        status,
        axum::Json(json!({"accepted": accepted, "rejected": errors.len(), "errors": shown})),
    )
        .into_response()
}

/// A row-per-line write (profiles, aliases): parse every row, apply the
/// good ones (durable before the reply), reply with the per-row errors.
async fn write_rows<T: Send + 'static>(
    app: Arc<App>,
    headers: &HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
    parse: impl Fn(Json) -> std::result::Result<T, String>,
    apply: fn(&Engine, Vec<T>) -> footprint_engine::Result<()>,
) -> ApiResult {
    app.authorize(headers, Role::Ingest)?;
    let text = text(app.body(headers, body)?)?;
    let (rows, errors) = parse_rows(&text, parse);
    let n = rows.len();
    blocking(move || apply(&app.engine, rows)).await??;
    Ok(batch_reply(n, &errors))
}

async fn profiles(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> ApiResult {
    write_rows(
        app,
        &headers,
        body,
        parse::parse_profile_update,
        |e, ups| e.upsert_profiles(ups),
    )
    .await
}

async fn alias(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> ApiResult {
    write_rows(app, &headers, body, parse_alias, |e, links| e.alias(links)).await
}

/// One alias row: `{"anonymous": ID, "known": ID}`, nothing else.
fn parse_alias(v: Json) -> std::result::Result<Alias, String> {
    let a = v.get("anonymous").and_then(Json::as_str);
    let k = v.get("known").and_then(Json::as_str);
    let extra = v.as_object().map_or(0, |o| {
        o.keys()
            .filter(|k| *k != "anonymous" && *k != "known")
            .count()
    });
    match (a, k) {
        (Some(a), Some(k)) if !a.is_empty() && !k.is_empty() && extra == 0 => Ok(Alias {
            anonymous: a.to_owned(),
            known: k.to_owned(),
        }),
        _ => Err("expected {\"anonymous\": ID, \"known\": ID} with non-empty string ids".into()),
    }
}

async fn query(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> ApiResult {
    app.authorize(&headers, Role::Query)?;
    let bytes = app.body(&headers, body)?;
    let q: Json = serde_json::from_slice(&bytes).map_err(|e| ApiError {
        status: StatusCode::BAD_REQUEST,
        code: "bad_json",
        message: format!(
            "not valid JSON at line {} column {}: {e}",
            e.line(),
            e.column()
        ),
        path: String::new(),
    })?;
    let kind = q
        .get("kind")
        .and_then(Json::as_str)
        .unwrap_or("?")
        .chars()
        .take(32)
        .collect::<String>();
    let Ok(permit) = app.slots.try_acquire() else {
        app.metrics.errors.add("busy", 1.0);
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!(
                "{} queries are running, the most this server runs at once; retry shortly",
                app.cfg.max_queries
            ),
        ));
    };
    let t = Instant::now();
    let a = app.clone();
    let timeout = app.cfg.query_timeout;
    let r = blocking(move || {
        a.engine.query_json(
            &q,
            QueryOptions {
                timeout: Some(timeout),
                ..Default::default()
            },
        )
    })
    .await?;
    drop(permit);
    app.metrics.queries.add(&kind, 1.0);
    app.metrics
        .query_ms
        .add(&kind, t.elapsed().as_secs_f64() * 1e3);
    match r {
        Ok(v) => Ok(axum::Json(v).into_response()),
        Err(e) => {
            let e = ApiError::from(e);
            app.metrics.errors.add(e.code, 1.0);
            Err(e)
        }
    }
}

async fn stats(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult {
    app.authorize(&headers, Role::Query)?;
    let a = app.clone();
    let s = blocking(move || a.engine.stats()).await??;
    Ok(axum::Json(s).into_response())
}

async fn schema(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult {
    app.authorize(&headers, Role::Query)?;
    let a = app.clone();
    let (events, props) = blocking(move || -> std::result::Result<_, ApiError> {
        let st = a.engine.store();
        Ok((
            st.event_counts().map_err(footprint_engine::Error::from)?,
            st.prop_types().map_err(footprint_engine::Error::from)?,
        ))
    })
    .await??;
    let props: BTreeMap<String, Json> = props.into_iter().map(|(k, v)| (k, json!(v))).collect();
    Ok(axum::Json(json!({"events": events, "properties": props})).into_response())
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    use std::fmt::Write;
    let m = &app.metrics;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# TYPE footprint_ingested_events_total counter\nfootprint_ingested_events_total {}",
        m.ingested.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# TYPE footprint_rejected_rows_total counter\nfootprint_rejected_rows_total {}",
        m.rejected_rows.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# TYPE footprint_requests_total counter\nfootprint_requests_total {}",
        m.requests.load(Ordering::Relaxed)
    );
    let _ = writeln!(out, "# TYPE footprint_queries_total counter");
    for (k, v) in m.queries.snapshot() {
        let _ = writeln!(
            out,
            "footprint_queries_total{{kind=\"{}\"}} {v}",
            k.escape_default()
        );
    }
    let _ = writeln!(out, "# TYPE footprint_query_milliseconds_total counter");
    for (k, v) in m.query_ms.snapshot() {
        let _ = writeln!(
            out,
            "footprint_query_milliseconds_total{{kind=\"{}\"}} {v:.3}",
            k.escape_default()
        );
    }
    let _ = writeln!(out, "# TYPE footprint_errors_total counter");
    for (k, v) in m.errors.snapshot() {
        let _ = writeln!(out, "footprint_errors_total{{code=\"{k}\"}} {v}");
    }
    let _ = writeln!(
        out,
        "# TYPE footprint_uptime_seconds gauge\nfootprint_uptime_seconds {:.0}",
        app.started.elapsed().as_secs_f64()
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

async fn fallback() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see server/API.md",
    )
}

async fn count(
    State(app): State<Arc<App>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    app.metrics.requests.fetch_add(1, Ordering::Relaxed);
    next.run(req).await
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let engine = Arc::new(engine);
    let app = Arc::new(App {
        engine: engine.clone(),
        slots: Semaphore::new(cfg.max_queries.max(1)),
        cfg: cfg.clone(),
        metrics: Metrics::default(),
        started: Instant::now(),
    });
    let router = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/events", post(events))
        .route("/v1/profiles", post(profiles))
        .route("/v1/alias", post(alias))
        .route("/v1/query", post(query))
        .route("/v1/schema", get(schema))
        .route("/v1/stats", get(stats))
        .fallback(fallback)
        .layer(axum::middleware::from_fn_with_state(app.clone(), count))
        .layer(DefaultBodyLimit::max(cfg.max_body))
        .with_state(app);
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
    match Arc::try_unwrap(engine) {
        Ok(e) => e.close()?,
        Err(_) => tracing::warn!(
            "requests still held the engine at shutdown; everything acknowledged is in the WAL"
        ),
    }
    eprintln!("stopped cleanly");
    Ok(())
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
