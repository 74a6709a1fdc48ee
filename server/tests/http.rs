//! The HTTP API end to end: a real `footprint serve` process on an
//! ephemeral loopback port, every endpoint, every error code, and auth.

mod common;

use std::io::Write;
use std::process::Command;

use common::Server;

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
    let (st, r) = s.json("POST", "/v1/query", &[], r#"{"kind":"attribution"}"#);
    assert_eq!(
        (st, r["error"]["code"].as_str(), r["error"]["path"].as_str()),
        (400, Some("invalid_query"), Some("conversion"))
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
    assert_eq!(r["profile_properties"], serde_json::json!({"plan": 1}));
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
    // Found by fuzz/http_request: a wrong method was a bare 405, no JSON.
    let (st, r) = s.json("GET", "/v1/events", &[], "");
    assert_eq!(
        (st, r["error"]["code"].as_str()),
        (405, Some("method_not_allowed")),
        "{r}"
    );
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

/// A gzip body of several members (as `cat a.gz b.gz` makes, and as
/// streaming compressors emit) is decoded whole; only the first member
/// used to be read, and the rest dropped without a word.
#[test]
fn a_gzip_body_of_several_members_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("d"), &[]);
    let member = |row: &str| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(row.as_bytes()).unwrap();
        gz.finish().unwrap()
    };
    let body = [
        member("{\"user\":\"u1\",\"event\":\"visit\",\"time\":1}\n"),
        member("{\"user\":\"u2\",\"event\":\"visit\",\"time\":2}\n"),
    ]
    .concat();
    let (st, _, b) = s.req("POST", "/v1/events", &[("Content-Encoding", "gzip")], &body);
    assert_eq!(st, 200, "{b}");
    assert!(b.contains("\"accepted\":2"), "{b}");
    let mut bad = body.clone();
    bad.extend_from_slice(b"not gzip");
    let (st, _, b) = s.req("POST", "/v1/events", &[("Content-Encoding", "gzip")], &bad);
    assert_eq!(st, 400, "{b}");
    assert!(b.contains("gzip body cannot be decoded"), "{b}");
}

const INGEST: [(&str, &str); 1] = [("Authorization", "Bearer ingest-key-0123456789")];
const QUERY: [(&str, &str); 1] = [("Authorization", "Bearer query-key-0123456789")];

/// A server in `dir` with one ingest key ([`INGEST`]) and one query key
/// ([`QUERY`]).
fn with_ingest_and_query_keys(dir: &std::path::Path) -> Server {
    let keys = dir.join("keys.json");
    std::fs::write(
        &keys,
        r#"{"keys": [{"key": "ingest-key-0123456789", "role": "ingest"},
                      {"key": "query-key-0123456789", "role": "query"}]}"#,
    )
    .unwrap();
    Server::start(&dir.join("d"), &["--keys", keys.to_str().unwrap()])
}

#[test]
fn live_tail_shows_the_last_events_stored() {
    let dir = tempfile::tempdir().unwrap();
    let s = with_ingest_and_query_keys(dir.path());
    let (ingest, query) = (INGEST, QUERY);
    let (st, r) = s.json("GET", "/v1/live", &query, "");
    assert_eq!((st, r["total"].as_u64()), (200, Some(0)), "{r}");
    assert_eq!(r["per_minute"].as_array().unwrap().len(), 60);
    // Ingest keys may not read it.
    assert_eq!(s.json("GET", "/v1/live", &ingest, "").0, 403);
    let (st, _) = s.json(
        "POST",
        "/v1/events",
        &ingest,
        "{\"user\":\"u1\",\"event\":\"visit\",\"time\":1767225600000,\"props\":{\"page\":\"/\"}}\n{\"user\":\"u2\",\"event\":\"signup\",\"time\":1767225660000}\nbad\n",
    );
    assert_eq!(st, 200);
    // A tracker's event too (PostHog's capture).
    let (st, _) = s.json(
        "POST",
        "/capture/",
        &[],
        r#"{"api_key":"ingest-key-0123456789","event":"pay","distinct_id":"u3","properties":{"amount":5}}"#,
    );
    assert_eq!(st, 200);
    let (st, r) = s.json("GET", "/v1/live?limit=2", &query, "");
    assert_eq!(st, 200);
    assert_eq!(r["total"], 3);
    let evs = r["events"].as_array().unwrap();
    assert_eq!(evs.len(), 2);
    assert_eq!(
        (&evs[0]["event"], &evs[0]["user"]),
        (&"pay".into(), &"u3".into())
    );
    assert_eq!(evs[0]["props"]["amount"], 5);
    assert_eq!(
        (&evs[1]["event"], evs[1]["time"].as_i64()),
        (&"signup".into(), Some(1767225660000))
    );
    let per_minute: u64 = r["per_minute"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["events"].as_u64().unwrap())
        .sum();
    assert_eq!(per_minute, 3);
    let (st, r) = s.json("GET", "/v1/live?limit=1000", &query, "");
    assert_eq!((st, r["error"]["path"].as_str()), (400, Some("limit")));
}

#[test]
fn profiles_are_read_back_by_user() {
    let dir = tempfile::tempdir().unwrap();
    let s = with_ingest_and_query_keys(dir.path());
    let (ingest, query) = (INGEST, QUERY);
    let (st, _) = s.json(
        "POST",
        "/v1/profiles",
        &ingest,
        "{\"user\":\"u1\",\"op\":\"set\",\"props\":{\"plan\":\"pro\",\"seats\":5}}\n{\"user\":\"u 2\",\"op\":\"set\",\"props\":{\"plan\":\"free\"}}",
    );
    assert_eq!(st, 200);
    let (st, r) = s.json(
        "GET",
        "/v1/profiles?user=u%202&user=u1&user=nobody",
        &query,
        "",
    );
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        r,
        serde_json::json!({"profiles": [
            {"user": "u 2", "props": {"plan": "free"}},
            {"user": "u1", "props": {"plan": "pro", "seats": 5}},
            {"user": "nobody", "props": null}]})
    );
    assert_eq!(s.json("GET", "/v1/profiles?user=u1", &ingest, "").0, 403);
    let (st, r) = s.json("GET", "/v1/profiles", &query, "");
    assert_eq!((st, r["error"]["path"].as_str()), (400, Some("user")));
    let (st, r) = s.json("GET", "/v1/profiles?users=u1", &query, "");
    assert_eq!((st, r["error"]["path"].as_str()), (400, Some("users")));
}

/// `POST /v1/sql/translate`: the query role, the same validation as
/// `/v1/query`, and `not_translatable` (422) naming the field.
#[test]
fn sql_translate_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    std::fs::write(
        &keys,
        r#"{"keys": [{"key": "ingest-key-0123456789", "role": "ingest", "name": "web"},
                      {"key": "query-key-0123456789", "role": "query", "name": "bi"}]}"#,
    )
    .unwrap();
    let s = Server::start(&dir.path().join("d"), &["--keys", keys.to_str().unwrap()]);
    let ingest = [("Authorization", "Bearer ingest-key-0123456789")];
    let query = [("Authorization", "Bearer query-key-0123456789")];
    let (st, _) = s.json(
        "POST",
        "/v1/events",
        &ingest,
        r#"{"user":"u1","event":"signup","time":1767225600000}"#,
    );
    assert_eq!(st, 200);
    let q = r#"{"kind":"funnel","steps":[{"event":"signup"},{"event":"pay"}],"window":60000}"#;
    assert_eq!(s.json("POST", "/v1/sql/translate", &ingest, q).0, 403);
    assert_eq!(s.json("POST", "/v1/sql/translate", &[], q).0, 401);
    let (st, r) = s.json(
        "POST",
        "/v1/sql/translate?dialect=clickhouse&table=file(%27x.parquet%27)",
        &query,
        q,
    );
    assert_eq!(st, 200, "{r}");
    let sql = r["sql"].as_str().unwrap();
    assert!(sql.contains("windowFunnel(60000)"), "{sql}");
    assert!(sql.contains("FROM file('x.parquet')"), "{sql}");
    assert_eq!(r["dialect"], "clickhouse");
    // The same errors as /v1/query: a misspelt event of this store.
    let (st, r) = s.json(
        "POST",
        "/v1/sql/translate",
        &query,
        r#"{"kind":"funnel","steps":[{"event":"sigup"}],"window":1}"#,
    );
    assert_eq!(
        (st, r["error"]["code"].as_str(), r["error"]["path"].as_str()),
        (400, Some("invalid_query"), Some("steps[0].event"))
    );
    for (body, path) in [
        (
            r#"{"kind":"funnel","steps":[{"event":"signup"},{"event":"pay"}],"window":1,"hold":[{"event_prop":"plan"}]}"#,
            "hold",
        ),
        (r#"{"kind":"users"}"#, "kind"),
    ] {
        let (st, r) = s.json("POST", "/v1/sql/translate", &query, body);
        assert_eq!(
            (st, r["error"]["code"].as_str(), r["error"]["path"].as_str()),
            (422, Some("not_translatable"), Some(path)),
            "{r}"
        );
    }
    let (st, r) = s.json("POST", "/v1/sql/translate?dialect=mysql", &query, q);
    assert_eq!((st, r["error"]["code"].as_str()), (400, Some("invalid")));
    let (st, r) = s.json("POST", "/v1/sql/translate", &query, "{");
    assert_eq!((st, r["error"]["code"].as_str()), (400, Some("bad_json")));
    // Queries merge aliased ids into one person; the export keeps the ids
    // apart, so SQL over it would count differently: refused.
    let (st, _) = s.json(
        "POST",
        "/v1/alias",
        &ingest,
        r#"{"anonymous":"cookie-1","known":"u1"}"#,
    );
    assert_eq!(st, 200);
    let (st, r) = s.json("POST", "/v1/sql/translate", &query, q);
    assert_eq!(
        (st, r["error"]["code"].as_str()),
        (422, Some("not_translatable"))
    );
    assert!(
        r["error"]["message"].as_str().unwrap().contains("aliases"),
        "{r}"
    );
}
