//! The HTTP API under hostile or broken input: bytes that are not UTF-8,
//! millions of bad rows, too many or too slow requests, oversized ids and
//! made-up labels. Each test is a regression test for a defect of issue 11.

mod common;

use std::io::Write;

use common::{finish, reply, Server};
use serde_json::Value;

const GOOD: &str = r#"{"user":"u1","event":"visit","time":1767225600000}"#;

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b).unwrap();
    gz.finish().unwrap()
}

fn post(s: &Server, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Value) {
    let (st, _, b) = s.req("POST", path, headers, body);
    (st, serde_json::from_str(&b).unwrap_or(Value::String(b)))
}

/// Issue 11, defect 3: one byte that is not UTF-8 costs its row, not the body.
#[test]
fn a_row_that_is_not_utf8_is_rejected_with_its_line_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("d"), &[]);
    let bad = b"{\"user\":\"u\xff2\",\"event\":\"visit\",\"time\":1767225600000}";
    let ndjson = [GOOD.as_bytes(), bad, GOOD.as_bytes()].join(&b'\n');
    let array = [
        b"[".as_slice(),
        GOOD.as_bytes(),
        b",\n",
        bad,
        b",\n",
        GOOD.as_bytes(),
        b"]",
    ]
    .concat();
    for (name, body, gz) in [
        ("ndjson", ndjson.clone(), false),
        ("ndjson gzip", ndjson.clone(), true),
        ("array", array.clone(), false),
        ("array gzip", array, true),
    ] {
        let (st, r) = if gz {
            post(
                &s,
                "/v1/events",
                &[("Content-Encoding", "gzip")],
                &gzip(&body),
            )
        } else {
            post(&s, "/v1/events", &[], &body)
        };
        assert_eq!(st, 200, "{name}: {r}");
        assert_eq!(
            (r["accepted"].as_u64(), r["rejected"].as_u64()),
            (Some(2), Some(1)),
            "{name}: {r}"
        );
        assert_eq!(r["errors"][0]["line"], 2, "{name}: {r}");
        assert!(
            r["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("not valid UTF-8"),
            "{name}: {r}"
        );
    }
    let profiles = b"{\"user\":\"u1\",\"op\":\"set\",\"props\":{\"plan\":\"pro\"}}\n{\"user\":\"u2\",\"op\":\"set\",\"props\":{\"plan\":\"\xe9\"}}\n";
    let (st, r) = post(&s, "/v1/profiles", &[], profiles);
    assert_eq!(
        (st, r["accepted"].as_u64(), r["rejected"].as_u64()),
        (200, Some(1), Some(1)),
        "{r}"
    );
    assert_eq!(r["errors"][0]["line"], 2);
    let aliases =
        b"{\"anonymous\":\"c\xc0\",\"known\":\"u1\"}\n{\"anonymous\":\"c2\",\"known\":\"u1\"}\n";
    let (st, r) = post(&s, "/v1/alias", &[], aliases);
    assert_eq!(
        (st, r["accepted"].as_u64(), r["rejected"].as_u64()),
        (200, Some(1), Some(1)),
        "{r}"
    );
    assert_eq!(r["errors"][0]["line"], 1);
    assert_eq!(s.json("GET", "/v1/stats", &[], "").1["events"], 8);
}

/// Issue 11, defect 7a: 16 MiB of bad rows took 919 MB (NDJSON) and 1.8 GB
/// (a JSON array), one kept message per row and the whole array as JSON.
#[test]
fn millions_of_rejected_rows_are_counted_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("d"), &["--max-body-mb", "17"]);
    let n = 8usize << 20;
    let ones = "1\n".repeat(n);
    let array = format!("[{}1]", "1,".repeat(n - 1));
    for body in [&ones, &array] {
        let (st, r) = post(&s, "/v1/events", &[], body.as_bytes());
        assert_eq!(st, 400);
        assert_eq!(r["rejected"].as_u64(), Some(n as u64));
        let errors = r["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 100);
        assert_eq!(errors[99]["line"], 100);
    }
    let (st, r) = post(&s, "/v1/profiles", &[], array.as_bytes());
    assert_eq!((st, r["rejected"].as_u64()), (400, Some(n as u64)));
    assert_eq!(r["errors"].as_array().unwrap().len(), 100);
    let peak = s.peak_rss();
    assert!(peak < 300 << 20, "peak RSS {} MB", peak >> 20);
    let (_, _, m) = s.req("GET", "/metrics", &[], b"");
    assert!(
        m.contains(&format!("footprint_rejected_rows_total {}", 3 * n)),
        "{m}"
    );
}

/// Issue 11, defect 7b: at most --max-ingests ingest requests at once; one
/// more is 503 with Retry-After, and a freed slot takes the next.
#[test]
fn ingest_requests_beyond_the_limit_get_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("d"), &["--max-ingests", "1"]);
    let body = format!("{GOOD}\n");
    // Holds the only slot: its body is not all there yet.
    let slow = s.partial("/v1/events", &[], body.len(), &body.as_bytes()[..10]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    for path in ["/v1/events", "/v1/profiles", "/v1/alias"] {
        let (st, h, b) = s.req("POST", path, &[], body.as_bytes());
        assert_eq!(st, 503, "{path}: {b}");
        assert!(h.contains("retry-after: 1"), "{h}");
        assert!(b.contains("\"busy\"") && b.contains("--max-ingests"), "{b}");
    }
    // Queries have slots of their own.
    let q = r#"{"kind":"funnel","steps":[{"event":"visit"}],"window":1}"#;
    assert_eq!(s.json("POST", "/v1/query", &[], q).0, 200);
    let (st, b) = finish(slow, &body.as_bytes()[10..]);
    assert_eq!(st, 200, "{b}");
    assert_eq!(post(&s, "/v1/events", &[], body.as_bytes()).0, 200);
    assert_eq!(s.json("GET", "/v1/stats", &[], "").1["events"], 2);
    let (_, _, m) = s.req("GET", "/metrics", &[], b"");
    assert!(m.contains("footprint_errors_total{code=\"busy\"} 3"), "{m}");
}

/// Issue 11, defect 7b: bodies in flight hold at most --max-inflight-mb,
/// counted as they arrive, as they are decoded and as they are parsed.
#[test]
fn memory_held_by_bodies_in_flight_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        &dir.path().join("d"),
        &["--max-body-mb", "1", "--max-inflight-mb", "2"],
    );
    // A body that is mostly blank lines: it holds its bytes, few rows.
    let padded = |len: usize| {
        let mut b = format!("{GOOD}\n").into_bytes();
        b.resize(len, b'\n');
        b
    };
    let big = padded(1000 << 10);
    let a = s.partial("/v1/events", &[], big.len(), &big[..100]);
    let b = s.partial("/v1/events", &[], big.len(), &big[..100]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let small = padded(100 << 10);
    let (st, h, body) = s.req("POST", "/v1/events", &[], &small);
    assert_eq!(st, 503, "{body}");
    assert!(h.contains("retry-after: 1"), "{h}");
    assert!(body.contains("--max-inflight-mb"), "{body}");
    assert_eq!(finish(a, &big[100..]).0, 200);
    assert_eq!(finish(b, &big[100..]).0, 200);
    assert_eq!(post(&s, "/v1/events", &[], &small).0, 200);
    // Over --max-body-mb: refused from its Content-Length, before reading.
    let c = s.partial("/v1/events", &[], 2 << 20, b"");
    assert_eq!(reply(c).0, 413);
    // A gzip bomb stops at --max-body-mb decoded.
    let bomb = gzip(&vec![b'\n'; 3 << 20]);
    let (st, r) = post(&s, "/v1/events", &[("Content-Encoding", "gzip")], &bomb);
    assert_eq!(
        (st, r["error"]["code"].as_str()),
        (413, Some("too_large")),
        "{r}"
    );
    // A body within --max-body-mb whose rows alone outgrow the whole
    // budget (a thousand tiny properties a row): 413, not a retry loop.
    let props: Vec<String> = (0..1000).map(|i| format!("\"p{i}\":{i}")).collect();
    let row = format!(
        "{{\"user\":\"u\",\"event\":\"e\",\"time\":1,\"props\":{{{}}}}}\n",
        props.join(",")
    );
    let body = row.repeat((1000 << 10) / row.len());
    let (st, r) = post(&s, "/v1/events", &[], body.as_bytes());
    assert_eq!(
        (st, r["error"]["code"].as_str()),
        (413, Some("too_large")),
        "{r}"
    );
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("smaller batches"),
        "{r}"
    );
    assert_eq!(s.json("GET", "/v1/stats", &[], "").1["events"], 3);
    // Settings under which a largest body could never fit are refused.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_footprint"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--max-body-mb",
            "64",
            "--max-inflight-mb",
            "100",
            "--data",
        ])
        .arg(dir.path().join("e"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least twice --max-body-mb"));
}

/// A client that never finishes its body gives its slot back after
/// --body-timeout-ms (else a few slow clients would hold every slot).
#[test]
fn a_body_that_never_arrives_times_out_and_frees_its_slot() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        &dir.path().join("d"),
        &["--max-ingests", "1", "--body-timeout-ms", "300"],
    );
    let stuck = s.partial("/v1/events", &[], 1000, b"{\"user\"");
    let (st, b) = reply(stuck);
    assert_eq!(st, 408, "{b}");
    assert!(b.contains("body_timeout"), "{b}");
    assert_eq!(post(&s, "/v1/events", &[], GOOD.as_bytes()).0, 200);
}

/// Issue 11, defect 11: ids are length-checked wherever they enter; a 10 MB
/// alias id was accepted.
#[test]
fn ids_longer_than_the_limit_are_rejected_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("d"), &["--max-body-mb", "16"]);
    let long = "x".repeat(1025);
    // A 10 MB id: its row is over the 4 MiB row limit, and a 3 MB one is
    // over the id limit; neither is stored.
    for (len, want) in [
        (10_000_000, "at most 4 MiB are read"),
        (3_000_000, "anonymous is 3000000 bytes long; at most 1024"),
    ] {
        let huge = "x".repeat(len);
        let row = format!(r#"{{"anonymous":"{huge}","known":"u1"}}"#);
        let (st, r) = post(&s, "/v1/alias", &[], row.as_bytes());
        assert_eq!((st, r["rejected"].as_u64()), (400, Some(1)));
        let message = r["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(want), "{message}");
    }
    let (st, r) = post(
        &s,
        "/v1/alias",
        &[],
        format!(r#"{{"anonymous":"c1","known":"{long}"}}"#).as_bytes(),
    );
    assert_eq!(st, 400, "{r}");
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("known is 1025 bytes long"),
        "{r}"
    );
    let (st, r) = post(
        &s,
        "/v1/profiles",
        &[],
        format!(r#"{{"user":"{long}","op":"set","props":{{"a":1}}}}"#).as_bytes(),
    );
    assert_eq!(st, 400, "{r}");
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("user is 1025 bytes long"),
        "{r}"
    );
    let (st, r) = post(
        &s,
        "/v1/events",
        &[],
        format!(r#"{{"user":"{long}","event":"visit","time":1}}"#).as_bytes(),
    );
    assert_eq!(st, 400, "{r}");
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("user is 1025 bytes long"),
        "{r}"
    );
    let max = "x".repeat(1024);
    let (st, r) = post(
        &s,
        "/v1/alias",
        &[],
        format!(r#"{{"anonymous":"{max}","known":"u1"}}"#).as_bytes(),
    );
    assert_eq!((st, r["accepted"].as_u64()), (200, Some(1)), "{r}");
    let stats = s.json("GET", "/v1/stats", &[], "").1;
    assert_eq!(
        (stats["aliases"].as_u64(), stats["profiles"].as_u64()),
        (Some(1), Some(0)),
        "{stats}"
    );
}

/// Issue 11, defect 11: /metrics grew a line per distinct `kind` sent.
#[test]
fn metrics_labels_do_not_grow_with_what_clients_send() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("d"), &[]);
    for i in 0..200 {
        let (st, _) = s.json(
            "POST",
            "/v1/query",
            &[],
            &format!(r#"{{"kind":"made-up-{i}"}}"#),
        );
        assert_eq!(st, 400);
        s.json("GET", &format!("/nowhere/{i}"), &[], "");
    }
    s.json(
        "POST",
        "/v1/query",
        &[],
        r#"{"kind":"funnel","steps":[{"event":"visit"}],"window":1}"#,
    );
    let (_, _, m) = s.req("GET", "/metrics", &[], b"");
    assert!(
        m.contains("footprint_queries_total{kind=\"other\"} 200"),
        "{m}"
    );
    assert!(
        m.contains("footprint_queries_total{kind=\"funnel\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("footprint_errors_total{code=\"invalid_query\"} 200"),
        "{m}"
    );
    assert!(
        m.contains("footprint_errors_total{code=\"not_found\"} 200"),
        "{m}"
    );
    assert!(!m.contains("made-up") && !m.contains("nowhere"), "{m}");
    assert!(m.lines().count() < 30, "{m}");
}
