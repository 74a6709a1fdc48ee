//! Tracker-compatible ingest: the endpoints the PostHog, Segment and
//! Mixpanel SDKs send to, so a team points its existing tracker at
//! Footprint by changing the host name.
//!
//! Each tracker's wire format lives in its own file and maps a request to
//! the engine's rows (events, profile updates, identity links); this file
//! holds what they share: reading and unwrapping the body (gzip by header,
//! by parameter or by its magic bytes; the `data=` form and base64 bodies
//! that browsers send on page unload), the clock-skew rule, the project
//! token as a Footprint ingest key, CORS, and writing the rows.

mod mixpanel;
mod posthog;
mod segment;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, MethodRouter};
use axum::Router;
use base64::Engine as _;
use footprint_engine::storage::parse::{self, MAX_ROW_ERRORS};
use footprint_engine::{Alias, Event, ProfileUpdate};
use serde_json::{Map, Value as Json};

use super::body::{self, Charge, Encoding};
use super::{blocking, ApiError, App, Role};

/// Largest single event, as sent (PostHog's own limit is 1 MB).
pub(super) const MAX_EVENT_BYTES: usize = 1 << 20;
/// A parsed JSON tree holds about this many times its text in memory;
/// a tracker body is charged so to the in-flight budget before parsing.
const TREE_FACTOR: usize = 8;

/// What one tracker request asks to write.
#[derive(Debug, Default)]
pub(super) struct Batch {
    pub events: Vec<Event>,
    /// Per event, the id the tracker gave it (PostHog `uuid`, Segment
    /// `messageId`, Mixpanel `$insert_id`): a resent event is stored once.
    pub ids: Vec<Option<String>>,
    pub profiles: Vec<ProfileUpdate>,
    pub aliases: Vec<Alias>,
    /// Keys the request carried in its payload (project token, write key).
    pub keys: Vec<String>,
    /// Records refused, and the first [`MAX_ROW_ERRORS`] reasons.
    pub rejected: usize,
    pub errors: Vec<String>,
    /// Per refused record: its index in the request and why (for replies
    /// that list them, such as Mixpanel's strict import).
    pub failed: Vec<(usize, String)>,
    /// Once written: events, profile updates and links stored.
    pub written: [usize; 3],
    /// Events left out as already stored (a retry).
    pub duplicates: usize,
    /// Bytes of the request's payload (no record is larger).
    pub body_len: usize,
}

impl Batch {
    /// Adds an event with the tracker's id for it.
    fn event(&mut self, e: Event, id: Option<String>) {
        self.events.push(e);
        self.ids.push(id);
    }

    /// Refuses record `index` (0-based) for `why`.
    fn reject(&mut self, index: usize, why: impl Into<String>) {
        let why = why.into();
        self.rejected += 1;
        if self.errors.len() < MAX_ROW_ERRORS {
            self.errors.push(format!("record {index}: {why}"));
            self.failed.push((index, why));
        }
    }

    /// Notes a key the payload carries.
    fn key(&mut self, k: &str) {
        if !k.is_empty() && !self.keys.iter().any(|x| x == k) {
            self.keys.push(k.to_owned());
        }
    }

    /// Once written: every record was refused (none stored, none already
    /// stored), which each tracker answers as a bad request.
    fn all_refused(&self) -> bool {
        self.rejected > 0 && self.duplicates == 0 && self.written.iter().all(|&n| n == 0)
    }

    /// Records accepted in any form.
    fn accepted(&self) -> usize {
        self.events.len() + self.profiles.len() + self.aliases.len()
    }
}

/// A request unwrapped to its JSON payload.
#[derive(Debug)]
pub(super) struct Wire {
    /// Bytes of the decoded payload: no record is larger.
    pub len: usize,
    /// Query-string parameters, then form fields other than the payload.
    params: Vec<(String, String)>,
    /// The payload; `Null` for a request without one (a GET probe), or
    /// when it was kept as text in `raw`.
    pub json: Json,
    /// The payload's text, when the tracker reads it without a JSON tree.
    pub raw: Vec<u8>,
    /// The user of HTTP Basic auth (Segment's write key, Mixpanel's secret).
    pub basic_user: Option<String>,
    /// A bearer token.
    pub bearer: Option<String>,
    /// The server's clock when the request arrived, epoch ms.
    pub now: i64,
}

impl Wire {
    /// The first parameter named `k`.
    pub fn param(&self, k: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

fn is_gzip(b: &[u8]) -> bool {
    b.starts_with(&[0x1f, 0x8b])
}

/// Unwraps a request body: gzip by `Content-Encoding`, by
/// `compression=gzip|gzip-js` or by its magic bytes; the `data=` form (or
/// query parameter) holding JSON, base64 JSON or base64 gzip; then JSON.
fn unwrap_body(
    raw: Vec<u8>,
    uri: &Uri,
    headers: &HeaderMap,
    max: usize,
    charge: &mut Charge,
    tree: bool,
) -> Result<Wire, ApiError> {
    let mut params: Vec<(String, String)> = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let gz_header = Encoding::of(headers)? == Encoding::Gzip;
    let mut bytes = if gz_header || is_gzip(&raw) {
        body::decode(raw, Encoding::Gzip, max, charge)?
    } else {
        raw
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let form = content_type.starts_with("application/x-www-form-urlencoded")
        || bytes.starts_with(b"data=");
    let mut data: Option<String> = None;
    if form {
        for (k, v) in form_urlencoded::parse(&bytes).into_owned() {
            if k == "data" && data.is_none() {
                data = Some(v);
            } else {
                params.push((k, v));
            }
        }
        bytes = Vec::new();
    }
    if data.is_none() && bytes.iter().all(u8::is_ascii_whitespace) {
        data = params
            .iter()
            .position(|(k, _)| k == "data")
            .map(|i| params.remove(i).1);
    }
    if let Some(d) = data {
        bytes = unwrap_data(d.trim(), param(&params, "compression"), max)?;
    }
    let compression = param(&params, "compression").unwrap_or("");
    if matches!(compression, "gzip" | "gzip-js") && !bytes.is_empty() && !is_gzip(&bytes) {
        // Already decoded by its header or magic bytes, or not gzip at all.
        if !bytes.first().is_some_and(|b| matches!(b, b'{' | b'[')) {
            return Err(bad(
                "bad_body",
                "compression=gzip but the body is neither gzip nor JSON",
            ));
        }
    }
    if is_gzip(&bytes) {
        bytes = body::decode(bytes, Encoding::Gzip, max, charge)?;
    }
    let len = bytes.len();
    let mut text = Vec::new();
    let json = if bytes.iter().all(u8::is_ascii_whitespace) {
        Json::Null
    } else if !tree {
        charge.cover(bytes.len().saturating_mul(TREE_FACTOR))?;
        text = bytes;
        Json::Null
    } else {
        charge.cover(bytes.len().saturating_mul(TREE_FACTOR))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            bad(
                "bad_json",
                format!(
                    "the payload is not valid JSON at line {} column {}: {e}",
                    e.line(),
                    e.column()
                ),
            )
        })?
    };
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let basic_user = auth.strip_prefix("Basic ").and_then(|b| {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        Some(text.split(':').next().unwrap_or("").to_owned())
    });
    let bearer = auth.strip_prefix("Bearer ").map(|b| b.trim().to_owned());
    Ok(Wire {
        len,
        params,
        json,
        raw: text,
        basic_user,
        bearer,
        now: now_ms(),
    })
}

fn param<'a>(params: &'a [(String, String)], k: &str) -> Option<&'a str> {
    params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// A `data=` value: JSON as is, else base64 (standard or URL-safe, padded
/// or not) of JSON or of gzip.
fn unwrap_data(d: &str, compression: Option<&str>, max: usize) -> Result<Vec<u8>, ApiError> {
    let json_like = d.starts_with('{') || d.starts_with('[');
    if json_like && compression != Some("base64") {
        return Ok(d.as_bytes().to_vec());
    }
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    // A `+` of standard base64 arrives as a space when the sender did not
    // escape it in the form.
    let d: String = d
        .chars()
        .filter(|c| *c != '\n' && *c != '\r')
        .map(|c| if c == ' ' { '+' } else { c })
        .collect();
    let decoded = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(&d).ok())
        .ok_or_else(|| bad("bad_body", "the data field is neither JSON nor base64"))?;
    if decoded.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the decoded data exceeds {max} bytes (--max-body-mb)"),
        ));
    }
    Ok(decoded)
}

/// The server's clock, epoch ms.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A time field: epoch ms as a number (seconds when below 1e11, as
/// Mixpanel sends them), or an RFC 3339 string.
pub(super) fn time_of(v: &Json) -> Result<i64, String> {
    match v {
        Json::Number(n) => {
            let x = n.as_f64().ok_or("a time that is not a number")?;
            let ms = if x.abs() < 1e11 { x * 1000.0 } else { x };
            if !ms.is_finite() {
                return Err("a time that is not finite".into());
            }
            parse::parse_time(&Json::from(ms.round() as i64))
        }
        other => parse::parse_time(other),
    }
}

/// PostHog's clock-skew rule, used for every tracker that sends when it
/// sent a batch: an event's time is `now + (timestamp − sent_at)` when
/// both are known (the sender's clock may be off, its intervals are not),
/// `now − offset` for an event that says how long ago it happened, its
/// `timestamp` alone otherwise, and `now` without any.
pub(super) fn event_time(
    timestamp: Option<&Json>,
    sent_at: Option<i64>,
    offset: Option<&Json>,
    now: i64,
) -> Result<i64, String> {
    let ts = match timestamp {
        None | Some(Json::Null) => None,
        Some(t) => Some(time_of(t)?),
    };
    let t = match (ts, sent_at, offset.and_then(Json::as_i64)) {
        (Some(t), Some(s), _) => now.saturating_add(t.saturating_sub(s)),
        (None, _, Some(off)) => now.saturating_sub(off),
        (Some(t), None, _) => t,
        (None, _, None) => now,
    };
    parse::parse_time(&Json::from(t))
}

/// A string field as a user id, event name or key (numbers become text,
/// as the SDKs allow them for ids).
pub(super) fn id_of(v: Option<&Json>) -> Option<String> {
    match v? {
        Json::String(s) if !s.is_empty() => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Flattened properties of an object, without `skip`'s names.
pub(super) fn props_of(
    m: Option<&Map<String, Json>>,
    skip: &[&str],
) -> Result<footprint_engine::storage::Props, String> {
    m.map_or(Ok(Vec::new()), |m| parse::flatten_props_ref(m, skip))
}

/// An event row, checked as Footprint's own rows are.
pub(super) fn event(
    user: String,
    name: String,
    time: i64,
    props: footprint_engine::storage::Props,
) -> Result<Event, String> {
    parse::check_name(&user, "user")?;
    parse::check_name(&name, "event")?;
    Ok(Event {
        user,
        event: name,
        time,
        props,
    })
}

/// A profile update of `user` with the object `v`'s properties; `None`
/// when `v` is absent or empty.
pub(super) fn profile(
    user: &str,
    op: footprint_engine::ProfileOp,
    v: Option<&Json>,
) -> Result<Option<ProfileUpdate>, String> {
    let Some(Json::Object(m)) = v else {
        return match v {
            None | Some(Json::Null) => Ok(None),
            Some(_) => Err(format!("{op:?} must be an object")),
        };
    };
    if m.is_empty() {
        return Ok(None);
    }
    Ok(Some(ProfileUpdate {
        user: user.to_owned(),
        op,
        props: parse::flatten_props(m.clone())?,
    }))
}

/// The records of a payload: a bare array, `{"batch": [...]}`, or one
/// record; with the number of bytes each takes as JSON checked against
/// [`MAX_EVENT_BYTES`] by the caller through [`too_big`].
pub(super) fn records(json: &Json) -> Vec<&Json> {
    match json {
        Json::Array(a) => a.iter().collect(),
        Json::Object(o) => match o.get("batch").or_else(|| o.get("data")) {
            Some(Json::Array(a)) => a.iter().collect(),
            _ => vec![json],
        },
        Json::Null => Vec::new(),
        other => vec![other],
    }
}

/// A JSON object.
pub(super) type Object = Map<String, Json>;

/// A record as an object (`what` names it in the error), no larger than
/// [`MAX_EVENT_BYTES`], and its `properties` object if it has one.
pub(super) fn record_parts<'a>(
    r: &'a Json,
    what: &str,
    body_len: usize,
) -> Result<(&'a Object, Option<&'a Object>), String> {
    if let Some(why) = too_big(r, body_len) {
        return Err(why);
    }
    let Json::Object(o) = r else {
        return Err(format!("{what} must be a JSON object"));
    };
    match o.get("properties") {
        None | Some(Json::Null) => Ok((o, None)),
        Some(Json::Object(p)) => Ok((o, Some(p))),
        Some(_) => Err("properties must be a JSON object".into()),
    }
}

/// Why a record is too large to take, if it is (only measured when the
/// payload, `body_len` bytes, could hold one that large).
pub(super) fn too_big(v: &Json, body_len: usize) -> Option<String> {
    if body_len <= MAX_EVENT_BYTES {
        return None;
    }
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            if self.0 > MAX_EVENT_BYTES {
                return Err(std::io::Error::other("too big"));
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    serde_json::to_writer(&mut c, v)
        .is_err()
        .then(|| format!("the record is larger than {MAX_EVENT_BYTES} bytes"))
}

/// Which tracker an endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tracker {
    PostHog,
    Segment(segment::Call),
    Mixpanel(mixpanel::Endpoint),
    /// Feature flags and remote config: a valid empty answer.
    Flags,
}

/// What went wrong with a whole request, for the tracker to phrase.
#[derive(Debug)]
pub(super) struct Failure {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure {
            status: e.status,
            code: e.code,
            message: e.message,
        }
    }
}

/// Reads, unwraps, maps, authorizes and writes one tracker request.
async fn run(
    app: Arc<App>,
    tracker: Tracker,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<(Wire, Batch), Failure> {
    let slot = app.ingest_slot()?;
    let (raw, mut charge) = app.read_body(&headers, body).await?;
    let a = app.clone();
    let done = blocking(move || -> Result<(Wire, Batch), Failure> {
        let _slot = slot;
        let tree = tracker != Tracker::PostHog;
        let wire = unwrap_body(raw, &uri, &headers, a.cfg.max_body, &mut charge, tree)?;
        let mut batch = Batch {
            body_len: wire.len,
            ..Batch::default()
        };
        match tracker {
            Tracker::PostHog => posthog::map(&wire, &mut batch)?,
            Tracker::Segment(call) => segment::map(call, &wire, &mut batch),
            Tracker::Mixpanel(ep) => mixpanel::map(ep, &wire, &mut batch),
            Tracker::Flags => {}
        }
        authorize(&a, &wire, &batch)?;
        write(&a, &mut batch)?;
        Ok((wire, batch))
    })
    .await
    .map_err(Failure::from)??;
    app.metrics.rows(done.1.written[0], done.1.rejected);
    Ok(done)
}

/// The keys a request carries must each be an ingest (or admin) key when
/// the server has keys; without keys (loopback only) anything goes.
fn authorize(app: &App, wire: &Wire, batch: &Batch) -> Result<(), Failure> {
    if app.cfg.keys.is_none() {
        return Ok(());
    }
    let given: Vec<&str> = batch
        .keys
        .iter()
        .map(String::as_str)
        .chain(wire.basic_user.as_deref())
        .chain(wire.bearer.as_deref())
        .chain(wire.param("token"))
        .chain(wire.param("api_key"))
        .filter(|k| !k.is_empty())
        .collect();
    let unauthorized = |message: String| Failure {
        status: StatusCode::UNAUTHORIZED,
        code: "unauthorized",
        message,
    };
    if given.is_empty() && batch.accepted() == 0 {
        // Nothing to write and no key to check (an empty probe).
        return Ok(());
    }
    if given.is_empty() {
        return Err(unauthorized(
            "no project token or write key in the request; use a Footprint ingest key".into(),
        ));
    }
    // Mixpanel's import sends its secret beside the project token: one
    // ingest key among them is enough, and no key may be of the wrong role.
    let mut ok = false;
    for k in given {
        match app.role_of(k) {
            Some((_, Some(_))) => return Err(super::scoped_write().into()),
            Some((Role::Ingest | Role::Admin, None)) => ok = true,
            Some((Role::Query, None)) => {
                return Err(Failure {
                    status: StatusCode::FORBIDDEN,
                    code: "forbidden",
                    message: "this key has role Query; sending events needs an ingest key".into(),
                })
            }
            None => {}
        }
    }
    if ok {
        Ok(())
    } else {
        Err(unauthorized(
            "unknown project token or write key; use a Footprint ingest key".into(),
        ))
    }
}

/// Writes the batch: identity links, then profiles, then events, each in
/// one durable write (events through `Engine::ingest_once`, so one the
/// store already has is left out), and counts them in `written`. Property names past
/// the limit are left out (as on `/v1/events`), noted among the errors.
fn write(app: &App, batch: &mut Batch) -> Result<(), ApiError> {
    let e = &app.engine;
    let aliases = std::mem::take(&mut batch.aliases);
    let profiles = std::mem::take(&mut batch.profiles);
    let events: Vec<(Event, Option<String>)> = std::mem::take(&mut batch.events)
        .into_iter()
        .zip(std::mem::take(&mut batch.ids))
        .collect();
    batch.written = [0, profiles.len(), aliases.len()];
    if !aliases.is_empty() {
        e.alias(aliases)?;
    }
    if !profiles.is_empty() {
        e.upsert_profiles(profiles)?;
    }
    if !events.is_empty() {
        let max = e.store().options().max_props;
        let tail = super::live::tail(events.iter().map(|(e, _)| e));
        let done = e.ingest_once(events)?;
        app.live.record(tail, done.stored, super::live::now_ms());
        batch.written[0] = done.stored;
        batch.duplicates = done.duplicates;
        if let Some(w) = done.ingested.warning(max) {
            batch.errors.push(w);
        }
    }
    Ok(())
}

/// One route serving every method (the SDKs use POST, some GET; OPTIONS
/// is the CORS preflight), for `tracker`.
fn route(tracker: Tracker) -> MethodRouter<Arc<App>> {
    any(
        move |State(app): State<Arc<App>>,
              method: Method,
              uri: Uri,
              headers: HeaderMap,
              body: Body| serve(app, tracker, method, uri, headers, body),
    )
}

/// Segment's `/v1/alias` (the path is shared with Footprint's own links
/// endpoint, which hands Segment's requests over).
pub(super) async fn segment_alias(
    app: Arc<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    serve(
        app,
        Tracker::Segment(segment::Call::Alias),
        method,
        uri,
        headers,
        body,
    )
    .await
}

async fn serve(
    app: Arc<App>,
    tracker: Tracker,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let origin = headers.get(header::ORIGIN).cloned();
    let mut r = if method == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else if tracker == Tracker::Flags {
        posthog::flags(&uri)
    } else {
        let result = run(app, tracker, uri, headers.clone(), body).await;
        match tracker {
            Tracker::PostHog | Tracker::Flags => posthog::reply(result),
            Tracker::Segment(_) => segment::reply(result),
            Tracker::Mixpanel(ep) => mixpanel::reply(ep, result),
        }
    };
    cors(&mut r, origin, &headers);
    r
}

/// Lets a page on any origin send (the SDKs run in customers' pages).
fn cors(r: &mut Response, origin: Option<HeaderValue>, req: &HeaderMap) {
    let h = r.headers_mut();
    match origin {
        Some(o) => {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            h.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
        None => {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
    }
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    let allow = req
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("Content-Type, Authorization"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allow);
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
}

/// Adds every tracker endpoint (with and without a trailing slash).
pub(super) fn routes(mut r: Router<Arc<App>>) -> Router<Arc<App>> {
    let mut add = |paths: &[&str], t: Tracker| {
        for p in paths {
            r = std::mem::take(&mut r).route(p, route(t));
            if !p.ends_with('/') && !p.contains('{') {
                r = std::mem::take(&mut r).route(&format!("{p}/"), route(t));
            }
        }
    };
    add(&["/batch", "/capture", "/e", "/i/v0/e"], Tracker::PostHog);
    add(
        &[
            "/flags",
            "/decide",
            "/array/{token}/config",
            "/array/{token}/config.js",
        ],
        Tracker::Flags,
    );
    use mixpanel::Endpoint as M;
    add(&["/track"], Tracker::Mixpanel(M::Track));
    add(&["/engage"], Tracker::Mixpanel(M::Engage));
    add(&["/import"], Tracker::Mixpanel(M::Import));
    use segment::Call as S;
    add(&["/v1/batch", "/v1/import"], Tracker::Segment(S::Batch));
    add(&["/v1/track", "/v1/t"], Tracker::Segment(S::Track));
    add(&["/v1/identify", "/v1/i"], Tracker::Segment(S::Identify));
    // `/v1/alias` itself is Footprint's, handing Segment's calls over.
    add(&["/v1/alias/", "/v1/a"], Tracker::Segment(S::Alias));
    add(&["/v1/page", "/v1/p"], Tracker::Segment(S::Page));
    add(&["/v1/screen", "/v1/s"], Tracker::Segment(S::Screen));
    add(&["/v1/group", "/v1/g"], Tracker::Segment(S::Group));
    r
}
