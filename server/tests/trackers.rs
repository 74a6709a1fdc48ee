//! The requests the real PostHog, Segment and Mixpanel Python SDKs sent
//! (captured by `tests/sdk/capture_payloads.py` into
//! `tests/sdk/payloads/python_sdks.json`), replayed through the server's
//! router: exactly these events, profile updates and identity links, and
//! replayed again (an SDK's retry), no event twice.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use base64::Engine as _;
use footprint_engine::dedupe::DEDUPE_PROP;
use footprint_engine::{Engine, EngineOptions};
use footprint_server::http::{router, Config};
use serde_json::Value as Json;
use tower::ServiceExt;

fn payloads() -> Vec<Json> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/sdk/payloads/python_sdks.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn replay(app: &axum::Router, r: &Json) -> (u16, String) {
    let body = base64::engine::general_purpose::STANDARD
        .decode(r["body_b64"].as_str().unwrap())
        .unwrap();
    let mut req = Request::builder()
        .method(r["method"].as_str().unwrap())
        .uri(r["path"].as_str().unwrap());
    for (k, v) in r["headers"].as_object().unwrap() {
        // The capture's own host and length; the router needs neither.
        if !["host", "content-length"].contains(&k.to_ascii_lowercase().as_str()) {
            req = req.header(k.as_str(), v.as_str().unwrap());
        }
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn captured_sdk_requests_map_to_exact_rows() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(
        Engine::open(
            dir.path(),
            EngineOptions {
                background: false,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    let app = router(engine.clone(), Config::new(([127, 0, 0, 1], 0).into()));
    let reqs = payloads();
    assert_eq!(reqs.len(), 17);
    for r in &reqs {
        let (status, body) = replay(&app, r).await;
        assert_eq!(status, 200, "{} {}: {body}", r["method"], r["path"]);
        // Each SDK's success check: PostHog and Mixpanel `status: 1`,
        // Segment `success: true`.
        let reply: Json = serde_json::from_str(&body).unwrap();
        let ok = reply["status"] == 1 || reply["success"] == true;
        assert!(ok, "{}: {body}", r["path"]);
    }
    let profiles = engine.store().profiles();
    // Every SDK resends a batch it saw no answer for: replayed, every
    // event is recognised by its id and left out.
    for r in &reqs {
        let (status, body) = replay(&app, r).await;
        assert_eq!(status, 200, "{} {}: {body}", r["method"], r["path"]);
    }
    let mut events: Vec<(String, String, BTreeMap<String, String>)> = Vec::new();
    engine
        .store()
        .for_each_event(|e| {
            let props = e
                .props
                .iter()
                .filter(|(k, _)| {
                    !k.starts_with("$lib")
                        && !k.starts_with("$python")
                        && !k.starts_with("$os")
                        && k != "$geoip_disable"
                        && k != "$is_server"
                        && k != "mp_lib"
                        && k != DEDUPE_PROP
                })
                .map(|(k, v)| (k.clone(), format!("{v:?}")))
                .collect();
            events.push((e.user, e.event, props));
        })
        .unwrap();
    events.sort();
    let s = |v: &str| format!("Str({v:?})");
    let p = |kv: &[(&str, String)]| -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    };
    let mut want = vec![
        // posthog-python: capture with $set, set, set_once, alias, and a
        // gzipped batch of three.
        ("anon-1", "$create_alias", p(&[("alias", s("user-1"))])),
        ("anon-1", "signup", p(&[("plan", s("pro"))])),
        ("user-1", "$set", p(&[])),
        ("user-1", "$set_once", p(&[])),
        ("user-2", "visit", p(&[("i", "Int(0)".into())])),
        ("user-2", "visit", p(&[("i", "Int(1)".into())])),
        ("user-2", "visit", p(&[("i", "Int(2)".into())])),
        // segment-analytics-python: track with campaign and page context,
        // page, screen (identify, alias and group are not events).
        (
            "user-3",
            "signup",
            p(&[
                ("plan", s("team")),
                ("utm_source", s("google")),
                ("utm_medium", s("cpc")),
                ("utm_campaign", s("spring")),
                ("$current_url", s("https://x.io/pricing")),
                ("$referrer", s("https://www.baidu.com/s?wd=x")),
                ("$referring_domain", s("www.baidu.com")),
            ]),
        ),
        (
            "user-3",
            "$pageview",
            p(&[
                ("url", s("https://x.io/pricing")),
                ("name", s("Pricing")),
                ("category", s("Docs")),
                ("$current_url", s("https://x.io/pricing")),
            ]),
        ),
        (
            "user-3",
            "$screen",
            p(&[
                ("name", s("Home")),
                ("category", s("App")),
                ("$screen_name", s("Home")),
            ]),
        ),
        // mixpanel: track, and an import.
        ("user-5", "signup", p(&[("plan", s("pro"))])),
        ("user-5", "pay", p(&[("amount", "Int(9)".into())])),
    ]
    .into_iter()
    .map(|(u, e, p)| (u.to_owned(), e.to_owned(), p))
    .collect::<Vec<_>>();
    want.sort();
    assert_eq!(events, want);

    let show = |user: &str| -> BTreeMap<String, String> {
        profiles
            .get(user)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), format!("{v:?}")))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(show("anon-1"), p(&[("email", s("a@x.io"))]));
    assert_eq!(
        show("user-1"),
        p(&[("plan", s("pro")), ("first_seen", s("2026-01-01"))])
    );
    assert_eq!(
        show("user-3"),
        p(&[("email", s("c@x.io")), ("$group_id", s("acme"))])
    );
    // $set email, $set_once first, $add logins 2, $unset email.
    assert_eq!(
        show("user-5"),
        p(&[("first", "Int(1)".into()), ("logins", "Int(2)".into())])
    );
    let links: Vec<(&str, &str)> = profiles
        .aliases
        .iter()
        .map(|(a, k)| (a.as_str(), k.as_str()))
        .collect();
    assert_eq!(
        links,
        vec![
            ("anon-1", "user-1"),
            ("anon-3", "user-3"),
            ("anon-4", "user-3")
        ]
    );
}
