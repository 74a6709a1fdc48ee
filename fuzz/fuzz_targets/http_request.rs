//! The HTTP request path in-process: arbitrary routes, headers, bodies (as
//! sent, gzipped, or claiming gzip), in one frame or many, through the
//! server's own router (`footprint_server::http::router`) over a real engine.
//! No request may get a 500 or panic; every reply is the documented JSON;
//! batch replies count their rows consistently, and an events body is
//! parsed exactly as the row parser parses it.
//!
//! Input: `[route, flags, frame size, headers… 0x00, body…]`; headers are
//! `name: value` lines (invalid ones skipped). Seeds: `fuzz/seeds/http_request`.
#![no_main]

use std::cell::RefCell;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderName, HeaderValue, Request};
use footprint_engine::storage::parse::{self, Format, MAX_ROW_ERRORS};
use footprint_engine::{Engine, EngineOptions};
use footprint_server::http::{router, ApiKey, Config, Role};
use http_body::Frame;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const ROUTES: [(&str, &str); 18] = [
    ("POST", "/v1/events"),
    ("POST", "/v1/profiles"),
    ("POST", "/v1/alias"),
    ("POST", "/v1/query"),
    ("GET", "/v1/schema"),
    ("GET", "/v1/stats"),
    ("GET", "/metrics"),
    ("GET", "/health"),
    ("GET", "/v1/events"),
    ("POST", "/v2/nothing"),
    // Tracker endpoints (server/src/http/trackers): each answers in its
    // tracker's own shape, so only the status rules are checked.
    ("POST", "/batch/"),
    ("POST", "/e/?compression=gzip-js&_=1767225600000"),
    ("POST", "/i/v0/e/?compression=base64"),
    ("POST", "/v1/batch"),
    ("POST", "/track?verbose=1"),
    ("POST", "/engage"),
    ("POST", "/import?strict=1"),
    ("OPTIONS", "/flags/?v=2"),
];
const KEYS: [&str; 4] = [
    "ingest-key-0123456789",
    "query-key-0123456789",
    "admin-key-0123456789",
    "wrong-key-0123456789",
];
/// A fresh engine (and data directory) after this many requests, so the
/// store does not grow without bound over millions of runs.
const REQUESTS_PER_ENGINE: u32 = 5_000;

struct Server {
    _dir: tempfile::TempDir,
    open: axum::Router,
    keyed: axum::Router,
    requests: u32,
}

fn config(keys: Option<Vec<ApiKey>>) -> Config {
    Config {
        keys,
        // Small limits, so that inputs reach them.
        max_body: 64 << 10,
        max_inflight: 256 << 10,
        query_timeout: Duration::from_secs(2),
        body_timeout: Duration::from_secs(2),
        ..Config::new(([127, 0, 0, 1], 0).into())
    }
}

fn server() -> Server {
    // tmpfs when there is one: every accepted write is fsync'ed.
    let dir = match std::path::Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").unwrap(),
        false => tempfile::tempdir().unwrap(),
    };
    let opts = EngineOptions {
        background: false,
        query_threads: 1,
        ..Default::default()
    };
    let engine = Arc::new(Engine::open(dir.path(), opts).unwrap());
    let keys = [Role::Ingest, Role::Query, Role::Admin]
        .into_iter()
        .zip(KEYS)
        .map(|(role, key)| ApiKey {
            key: key.into(),
            role,
            name: String::new(),
            users: None,
        })
        .collect();
    Server {
        _dir: dir,
        open: router(engine.clone(), config(None)),
        keyed: router(engine, config(Some(keys))),
        requests: 0,
    }
}

thread_local! {
    static RT: tokio::runtime::Runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    static SERVER: RefCell<Option<Server>> = const { RefCell::new(None) };
}

/// A body that arrives in frames of `size` bytes.
struct Frames {
    data: Bytes,
    size: usize,
}

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.data.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.size.min(self.data.len());
        let chunk = self.data.split_to(n);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }
}

fn gzip(members: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in members {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(m).unwrap();
        out.extend_from_slice(&gz.finish().unwrap());
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let [route, flags, frame, rest @ ..] = data else {
        return;
    };
    let (method, path) = ROUTES[usize::from(*route) % ROUTES.len()];
    let (head, payload) = match rest.iter().position(|&b| b == 0) {
        Some(p) => (&rest[..p], &rest[p + 1..]),
        None => (&[][..], rest),
    };
    let gzipped = flags & 1 != 0;
    let claims_gzip = flags & 2 != 0;
    let keyed = flags & 4 != 0;
    let sent: Vec<u8> = if gzipped {
        if flags & 0x80 != 0 {
            let (a, b) = payload.split_at(payload.len() / 2);
            gzip(&[a, b])
        } else {
            gzip(&[payload])
        }
    } else {
        payload.to_vec()
    };
    let mut req = Request::builder().method(method).uri(path);
    if gzipped || claims_gzip {
        req = req.header("content-encoding", "gzip");
    }
    if flags & 8 != 0 {
        req = req.header("content-length", sent.len());
    }
    if keyed {
        let key = KEYS[usize::from(flags >> 5 & 3)];
        req = req.header("authorization", format!("Bearer {key}"));
    }
    let mut plain_headers = true;
    // `/v1/alias` whose first authorization header is Basic is Segment's
    // alias call, answered in Segment's shape (as the server decides it).
    let mut first_auth: Option<bool> = keyed.then_some(false);
    for line in head.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        plain_headers &= !matches!(
            name.as_str(),
            "content-encoding" | "authorization" | "content-length"
        );
        if name.as_str() == "authorization" && first_auth.is_none() {
            first_auth = Some(value.to_str().is_ok_and(|v| v.starts_with("Basic ")));
        }
        req = req.header(name, value);
    }
    let body = match *frame {
        0 => Body::from(sent),
        n => Body::new(Frames {
            data: Bytes::from(sent),
            size: usize::from(n),
        }),
    };
    let Ok(req) = req.body(body) else { return };

    let response = SERVER.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell
            .as_ref()
            .is_none_or(|s| s.requests >= REQUESTS_PER_ENGINE)
        {
            // Drop the old engine (and its directory) before opening anew.
            *cell = None;
            *cell = Some(server());
        }
        let s = cell.as_mut().unwrap();
        s.requests += 1;
        let router = if keyed {
            s.keyed.clone()
        } else {
            s.open.clone()
        };
        RT.with(|rt| {
            rt.block_on(async move {
                let r = router.oneshot(req).await.unwrap();
                let (parts, body) = r.into_parts();
                let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
                (parts, bytes)
            })
        })
    });
    let (parts, bytes) = response;
    let status = parts.status.as_u16();
    let text = String::from_utf8_lossy(&bytes);
    assert_ne!(status, 500, "{method} {path}: {text}");
    if status == 503 {
        assert!(parts.headers.contains_key("retry-after"), "{text}");
    }
    if path == "/metrics" || ROUTES[10..].iter().any(|r| r.1 == path) {
        return;
    }
    if path == "/v1/alias" && first_auth == Some(true) {
        return; // Segment's alias call: its own reply shape
    }
    let reply: serde_json::Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{method} {path} {status}: not JSON ({e}): {text}"));
    if status >= 400 && reply.get("rejected").is_none() {
        let code = reply["error"]["code"].as_str();
        assert!(code.is_some_and(|c| !c.is_empty()), "{status}: {text}");
        return;
    }
    if method == "POST" && (path == "/v1/events" || path == "/v1/profiles" || path == "/v1/alias") {
        let accepted = reply["accepted"].as_u64().unwrap();
        let rejected = reply["rejected"].as_u64().unwrap();
        let errors = reply["errors"].as_array().unwrap();
        assert!(errors.len() <= MAX_ROW_ERRORS, "{text}");
        assert_eq!(
            errors.len() as u64,
            rejected.min(MAX_ROW_ERRORS as u64),
            "{text}"
        );
        assert_eq!(status == 400, accepted == 0 && rejected > 0, "{text}");
        for e in errors {
            assert!(e["line"].as_u64().is_some_and(|l| l >= 1), "{text}");
        }
        // The HTTP path parses an events body exactly as the row parser does.
        if path == "/v1/events" && !gzipped && !claims_gzip && plain_headers {
            let p = parse::parse_batch(payload, Format::Json, 1);
            assert_eq!(
                (accepted, rejected),
                (p.events.len() as u64, p.rejected as u64),
                "{text}"
            );
        }
    }
});
