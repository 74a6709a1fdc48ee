//! The web console: plain HTML, CSS and JS modules under `server/console/`
//! plus the vendored Apache ECharts, embedded in the binary and served at
//! `/` and `/console/…`. Nothing is fetched from any other host.
//!
//! Each asset is gzip-compressed once, at startup (or on its first
//! request, whichever comes first). App files are revalidated by ETag (`no-cache`), so a
//! new binary is picked up at once; the vendored library carries its
//! version in its path and is cached for a week.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use flate2::write::GzEncoder;
use flate2::Compression;

struct Asset {
    path: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $mime:literal) => {
        Asset {
            path: $path,
            mime: $mime,
            body: include_bytes!(concat!("../../console/", $path)),
        }
    };
}

const VENDOR: &str = "vendor/";

static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("ui.js", "text/javascript; charset=utf-8"),
    asset!("overview.js", "text/javascript; charset=utf-8"),
    asset!("funnel.js", "text/javascript; charset=utf-8"),
    asset!("trends.js", "text/javascript; charset=utf-8"),
    asset!("retention.js", "text/javascript; charset=utf-8"),
    asset!("interval.js", "text/javascript; charset=utf-8"),
    asset!("distribution.js", "text/javascript; charset=utf-8"),
    asset!("cohorts.js", "text/javascript; charset=utf-8"),
    asset!("sessions.js", "text/javascript; charset=utf-8"),
    asset!("paths.js", "text/javascript; charset=utf-8"),
    asset!("attribution.js", "text/javascript; charset=utf-8"),
    asset!("lifecycle.js", "text/javascript; charset=utf-8"),
    asset!("stickiness.js", "text/javascript; charset=utf-8"),
    asset!("heatmap.js", "text/javascript; charset=utf-8"),
    asset!("live.js", "text/javascript; charset=utf-8"),
    asset!("raw.js", "text/javascript; charset=utf-8"),
    asset!(
        "vendor/echarts-6.1.0.min.js",
        "text/javascript; charset=utf-8"
    ),
    asset!("vendor/ECHARTS-LICENSE", "text/plain; charset=utf-8"),
    asset!("vendor/ECHARTS-NOTICE", "text/plain; charset=utf-8"),
];

/// Per asset: its gzip form and its ETag, made once (see `precompress`).
struct Packed {
    gzip: Vec<u8>,
    etag: HeaderValue,
}

static PACKED: [OnceLock<Packed>; ASSETS.len()] = [const { OnceLock::new() }; ASSETS.len()];

fn packed(i: usize, a: &Asset) -> &'static Packed {
    PACKED[i].get_or_init(|| {
        use std::io::Write;
        let mut gz = GzEncoder::new(Vec::with_capacity(a.body.len() / 3), Compression::best());
        // Writing to a Vec cannot fail; an empty gzip form is never served
        // (the plain body is, see below).
        let gzip = gz
            .write_all(a.body)
            .and_then(|()| gz.finish())
            .unwrap_or_default();
        // FNV-1a: a cheap content hash, stable across runs and builds.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in a.body {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        let etag = HeaderValue::from_str(&format!("\"{h:016x}\""))
            .unwrap_or(HeaderValue::from_static("\"0\""));
        Packed { gzip, etag }
    })
}

/// Compresses every asset now, so that the first visitor does not wait
/// for it (`serve` runs this on a thread of its own at startup).
pub(super) fn precompress() {
    for (i, a) in ASSETS.iter().enumerate() {
        packed(i, a);
    }
}

/// Whether `Accept-Encoding` allows gzip (a `gzip` or `*` token whose q is
/// not 0).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let token = parts.next().unwrap_or("");
            let zero = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (token.eq_ignore_ascii_case("gzip") || token == "*") && !zero
        })
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some((i, a)) = ASSETS.iter().enumerate().find(|(_, a)| a.path == path) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no such console file",
        )
            .into_response();
    };
    let p = packed(i, a);
    let cache = if a.path.starts_with(VENDOR) {
        "public, max-age=604800"
    } else {
        "no-cache"
    };
    let mut h = HeaderMap::new();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::ETAG, p.etag.clone());
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let fresh = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == p.etag.to_str().unwrap_or("") || t.trim() == "*");
    if fresh {
        return (StatusCode::NOT_MODIFIED, h).into_response();
    }
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.mime));
    if a.path == "index.html" {
        // The console talks to its own origin only; the policy makes the
        // browser enforce it.
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self'",
            ),
        );
    }
    if !p.gzip.is_empty() && accepts_gzip(headers) {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        (h, p.gzip.as_slice()).into_response()
    } else {
        (h, a.body).into_response()
    }
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

/// Adds the console's routes: `/` and `/console/{file}`.
pub(super) fn routes<S: Clone + Send + Sync + 'static>(r: Router<S>) -> Router<S> {
    r.route("/", get(index))
        .route("/console", get(index))
        .route("/console/", get(index))
        .route("/console/{*path}", get(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_fit_the_budget() {
        let total: usize = ASSETS.iter().map(|a| a.body.len()).sum();
        assert!(total <= 1_500_000, "console assets are {total} bytes");
    }

    #[test]
    fn every_console_file_is_embedded() {
        fn walk(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, base, out);
                } else if let Ok(rel) = p.strip_prefix(base) {
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
        let mut on_disk = Vec::new();
        walk(&base, &base, &mut on_disk);
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }

    #[test]
    fn gzip_is_taken_only_when_offered() {
        let mut h = HeaderMap::new();
        assert!(!accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip;q=0.8"),
        );
        assert!(accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0, br"),
        );
        assert!(!accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        assert!(!accepts_gzip(&h));
    }

    #[test]
    fn every_asset_is_served_and_compressed() {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        for a in ASSETS {
            let r = serve(a.path, &h);
            assert_eq!(r.status(), StatusCode::OK, "{}", a.path);
            assert_eq!(
                r.headers()
                    .get(header::CONTENT_ENCODING)
                    .map(|v| v.as_bytes()),
                Some(&b"gzip"[..])
            );
            let etag = r.headers().get(header::ETAG).cloned();
            let mut again = h.clone();
            if let Some(e) = etag {
                again.insert(header::IF_NONE_MATCH, e);
            }
            assert_eq!(serve(a.path, &again).status(), StatusCode::NOT_MODIFIED);
        }
        assert_eq!(serve("../Cargo.toml", &h).status(), StatusCode::NOT_FOUND);
    }
}
