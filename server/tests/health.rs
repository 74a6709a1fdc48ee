//! `/health` tells a store that refuses writes (after a write-path I/O
//! error) from a healthy one, through the server's own router.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use footprint_engine::storage::failpoint::{arm, Fault, Op};
use footprint_engine::{Engine, EngineOptions};
use footprint_server::http::{router, Config};
use tower::ServiceExt;

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/x-ndjson")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let r = app.clone().oneshot(req).await.unwrap();
    let status = r.status().as_u16();
    let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_a_store_that_refuses_writes_after_a_failed_fsync() {
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
    let row = r#"{"user": "u1", "event": "visit", "time": 1767225600000}"#;
    assert_eq!(call(&app, "GET", "/health", "").await.0, 200);
    assert_eq!(call(&app, "POST", "/v1/events", row).await.0, 200);

    let g = arm(Fault {
        under: dir.path().to_owned(),
        op: Op::Fsync,
        path_contains: ".log".into(),
        errno: 5,
        skip: 0,
        times: 1,
        stall: Default::default(),
    });
    let (status, body) = call(&app, "POST", "/v1/events", row).await;
    assert!(status >= 500, "{status} {body}");
    drop(g);
    // The disk "works" again, but nothing is acknowledged until a restart,
    // and /health says why.
    let (status, body) = call(&app, "POST", "/v1/events", row).await;
    assert!(status >= 500, "{status} {body}");
    let (status, body) = call(&app, "GET", "/health", "").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "read_only");
    let reason = body["reason"].as_str().unwrap();
    assert!(reason.contains("Input/output error"), "{reason}");
    // Reads go on.
    let (status, body) = call(&app, "GET", "/v1/stats", "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"], 1);
}
