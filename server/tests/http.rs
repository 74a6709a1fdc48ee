//! The HTTP API end to end: a real `footprint serve` process on an
//! ephemeral loopback port, every endpoint, every error code, and auth.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(data: &std::path::Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_footprint"))
            .args(["serve", "--addr", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("{line}"))
            .to_owned();
        Server { child, addr }
    }

    /// One request; returns (status, headers, body).
    fn req(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String, String) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        let _ = s.write_all(body);
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        let text = String::from_utf8_lossy(&raw).to_string();
        let (h, b) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = h
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        // Bodies here are small; axum sends them with Content-Length.
        (status, h.to_lowercase(), b.to_owned())
    }

    fn json(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, serde_json::Value) {
        let (st, _, b) = self.req(method, path, headers, body.as_bytes());
        (
            st,
            serde_json::from_str(&b).unwrap_or(serde_json::Value::String(b)),
        )
    }

    fn stop(mut self) -> (i32, String) {
        sigterm(self.child.id());
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let code = self.child.wait().unwrap().code().unwrap_or(-1);
        (code, err)
    }
}

/// SIGTERM through the `kill` command (no libc needed).
fn sigterm(pid: u32) {
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[test]
fn endpoints_and_error_codes() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("d"), &["--max-body-mb", "1"]);
    assert_eq!(s.json("GET", "/health", &[], "").1["status"], "ok");
    let (st, r) = s.json(
        "POST",
        "/v1/events",
        &[],
        "{\"user\":\"u1\",\"event\":\"visit\",\"time\":1767225600000,\"props\":{\"utm_source\":\"baidu\"}}\n{\"user\":\"u1\",\"event\":\"signup\",\"time\":\"2026-01-01T00:01:00Z\"}\n{\"user\":\"u2\"}\n",
    );
    assert_eq!(st, 200);
    assert_eq!(
        (r["accepted"].as_u64(), r["rejected"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(r["errors"][0]["line"], 3);
    // A JSON array, and a gzip body.
    let (st, r) = s.json(
        "POST",
        "/v1/events",
        &[],
        r#"[{"distinct_id":"u2","event":"visit","timestamp":1767225600000}]"#,
    );
    assert_eq!((st, r["accepted"].as_u64()), (200, Some(1)));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(br#"{"user":"u3","event":"visit","time":1767225600000}"#)
        .unwrap();
    let (st, _, b) = s.req(
        "POST",
        "/v1/events",
        &[("Content-Encoding", "gzip")],
        &gz.finish().unwrap(),
    );
    assert_eq!(st, 200, "{b}");
    let (st, r) = s.json("POST", "/v1/events", &[], "nope\n");
    assert_eq!((st, r["rejected"].as_u64()), (400, Some(1)));
    // Profiles and aliases.
    let (st, r) = s.json(
        "POST",
        "/v1/profiles",
        &[],
        r#"{"user":"u1","op":"set","props":{"plan":"pro"}}"#,
    );
    assert_eq!((st, r["accepted"].as_u64()), (200, Some(1)), "{r}");
    let (st, r) = s.json(
        "POST",
        "/v1/profiles",
        &[],
        r#"{"user":"u1","op":"merge","props":{}}"#,
    );
    assert_eq!(st, 400, "{r}");
    let (st, _) = s.json(
        "POST",
        "/v1/alias",
        &[],
        r#"{"anonymous":"u3","known":"u1"}"#,
    );
    assert_eq!(st, 200);
    // Queries.
    let q = r#"{"kind":"funnel","steps":[{"event":"visit"},{"event":"signup"}],"window":{"value":1,"unit":"day"},"users":{"prop":"plan","op":"eq","value":"pro"}}"#;
    let (st, r) = s.json("POST", "/v1/query", &[], q);
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["steps"][1]["users"], 1);
    let (st, r) = s.json(
        "POST",
        "/v1/query",
        &[],
        r#"{"kind":"funnel","steps":[{"event":"vist"}],"window":1}"#,
    );
    assert_eq!(
        (st, r["error"]["code"].as_str(), r["error"]["path"].as_str()),
        (400, Some("invalid_query"), Some("steps[0].event"))
    );
    let (st, r) = s.json("POST", "/v1/query", &[], r#"{"kind":"paths"}"#);
    assert_eq!(
        (st, r["error"]["code"].as_str()),
        (501, Some("not_supported"))
    );
    let (st, r) = s.json("POST", "/v1/query", &[], "{\"kind\": ");
    assert_eq!((st, r["error"]["code"].as_str()), (400, Some("bad_json")));
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("line 1 column"));
    // Schema, stats, metrics, 404, 413, bad encoding.
    let (st, r) = s.json("GET", "/v1/schema", &[], "");
    assert_eq!(st, 200);
    assert_eq!(r["properties"]["utm_source"]["string"], 1);
    assert_eq!(r["events"]["visit"], 3);
    assert_eq!(r["events"]["signup"], 1);
    let (st, r) = s.json("GET", "/v1/stats", &[], "");
    assert_eq!((st, r["events"].as_u64()), (200, Some(4)));
    let (st, h, b) = s.req("GET", "/metrics", &[], b"");
    assert_eq!(st, 200);
    assert!(h.contains("text/plain"));
    assert!(b.contains("footprint_ingested_events_total 4"), "{b}");
    assert!(
        b.contains("footprint_queries_total{kind=\"funnel\"}"),
        "{b}"
    );
    assert_eq!(s.json("GET", "/v2/nothing", &[], "").0, 404);
    let big = vec![b' '; 2 << 20];
    let (st, _, b) = s.req("POST", "/v1/events", &[], &big);
    assert_eq!(st, 413, "{b}");
    assert!(b.contains("too_large"));
    let (st, _, _) = s.req("POST", "/v1/events", &[("Content-Encoding", "br")], b"x");
    assert_eq!(st, 415);
    // Graceful shutdown flushes; the data is there after a restart.
    let (code, err) = s.stop();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("stopped cleanly"), "{err}");
    let s = Server::start(&dir.path().join("d"), &[]);
    assert_eq!(s.json("GET", "/v1/stats", &[], "").1["events"], 4);
}

#[test]
fn api_keys_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    std::fs::write(
        &keys,
        r#"{"keys": [{"key": "ingest-key-0123456789", "role": "ingest", "name": "web"},
                      {"key": "query-key-0123456789", "role": "query", "name": "bi"},
                      {"key": "admin-key-0123456789", "role": "admin", "name": "ops"}]}"#,
    )
    .unwrap();
    let s = Server::start(&dir.path().join("d"), &["--keys", keys.to_str().unwrap()]);
    let ev = r#"{"user":"u1","event":"visit","time":1}"#;
    let q = r#"{"kind":"funnel","steps":[{"event":"visit"}],"window":1}"#;
    let bearer = |k: &str| format!("Bearer {k}");
    assert_eq!(s.json("POST", "/v1/events", &[], ev).0, 401);
    assert_eq!(
        s.json(
            "POST",
            "/v1/events",
            &[("Authorization", &bearer("wrong-key-0123456789"))],
            ev
        )
        .0,
        401
    );
    assert_eq!(
        s.json(
            "POST",
            "/v1/events",
            &[("Authorization", &bearer("query-key-0123456789"))],
            ev
        )
        .0,
        403
    );
    assert_eq!(
        s.json(
            "POST",
            "/v1/events",
            &[("Authorization", &bearer("ingest-key-0123456789"))],
            ev
        )
        .0,
        200
    );
    assert_eq!(
        s.json(
            "POST",
            "/v1/query",
            &[("Authorization", &bearer("ingest-key-0123456789"))],
            q
        )
        .0,
        403
    );
    assert_eq!(
        s.json(
            "POST",
            "/v1/query",
            &[("Authorization", &bearer("query-key-0123456789"))],
            q
        )
        .0,
        200
    );
    assert_eq!(
        s.json(
            "GET",
            "/v1/stats",
            &[("Authorization", &bearer("admin-key-0123456789"))],
            ""
        )
        .0,
        200
    );
    assert_eq!(s.json("GET", "/v1/stats", &[], "").0, 401);
    assert_eq!(s.json("GET", "/health", &[], "").0, 200);
}

#[test]
fn refuses_public_bind_without_keys_and_times_out_queries() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_footprint"))
        .args(["serve", "--addr", "0.0.0.0:0", "--data"])
        .arg(dir.path().join("d"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("without API keys"));
    let s = Server::start(&dir.path().join("d"), &["--query-timeout-ms", "0"]);
    s.json(
        "POST",
        "/v1/events",
        &[],
        r#"{"user":"u1","event":"visit","time":1}"#,
    );
    let (st, r) = s.json(
        "POST",
        "/v1/query",
        &[],
        r#"{"kind":"funnel","steps":[{"event":"visit"}],"window":1}"#,
    );
    assert_eq!(
        (st, r["error"]["code"].as_str()),
        (504, Some("timeout")),
        "{r}"
    );
}

#[test]
fn saturated_server_answers_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("d"), &["--max-queries", "1"]);
    let mut body = String::new();
    for i in 0..200_000 {
        body.push_str(&format!(
            "{{\"user\":\"u{}\",\"event\":\"{}\",\"time\":{}}}\n",
            i % 5000,
            ["visit", "signup"][i % 2],
            1_000 + i
        ));
    }
    assert_eq!(s.json("POST", "/v1/events", &[], &body).0, 200);
    let s = std::sync::Arc::new(s);
    let q =
        r#"{"kind":"funnel","steps":[{"event":"visit"},{"event":"signup"}],"window":100000000}"#;
    let handles: Vec<_> = (0..12)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                let (st, h, _) = s.req("POST", "/v1/query", &[], q.as_bytes());
                (st, h)
            })
        })
        .collect();
    let results: Vec<(u16, String)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        results.iter().all(|(st, _)| *st == 200 || *st == 503),
        "{results:?}"
    );
    assert!(results.iter().any(|(st, _)| *st == 200));
    let busy: Vec<_> = results.iter().filter(|(st, _)| *st == 503).collect();
    assert!(!busy.is_empty(), "no request was turned away");
    assert!(busy.iter().all(|(_, h)| h.contains("retry-after: 1")));
}
