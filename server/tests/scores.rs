//! Saved health scores through the public HTTP API and the CLI: create,
//! list, get, run (the scheduler runs a new score at once), delete; the
//! property written is read by a later users filter and breakdown, and
//! survives a kill -9; a user no longer scored loses the property; errors
//! are 400 naming the JSON path; the wrong role or a scoped key is 403;
//! definitions survive a restart.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{ids, Server};
use serde_json::{json, Value as Json};

const ADMIN: &str = "admin-key-0123456789";
const QUERY: &str = "query-key-0123456789";
const INGEST: &str = "ingest-key-0123456789";
const ALICE_ADMIN: &str = "alice-admin-0123456789";
const ALICE: &str = "alice-query-0123456789";
const OWNER: &str = r#"{"user_prop": "csm_owner", "op": "eq", "value": "alice"}"#;
const DAY: i64 = 86_400_000;

fn call(s: &Server, key: &str, method: &str, path: &str, body: &str) -> (u16, Json) {
    let auth = format!("Bearer {key}");
    s.json(method, path, &[("Authorization", auth.as_str())], body)
}

fn ok(s: &Server, key: &str, method: &str, path: &str, body: &str) -> Json {
    let (st, v) = call(s, key, method, path, body);
    assert!((200..300).contains(&st), "{method} {path}: {st} {v}");
    v
}

fn start(dir: &std::path::Path) -> Server {
    let keys = dir.join("keys.json");
    if !keys.exists() {
        std::fs::write(
            &keys,
            format!(
                r#"{{"keys": [{{"key": "{ADMIN}", "role": "admin"}},
                    {{"key": "{QUERY}", "role": "query"}},
                    {{"key": "{INGEST}", "role": "ingest"}},
                    {{"key": "{ALICE}", "role": "query", "users": {OWNER}}},
                    {{"key": "{ALICE_ADMIN}", "role": "admin", "users": {OWNER}}}]}}"#
            ),
        )
        .unwrap();
    }
    Server::start(&dir.join("d"), &["--keys", keys.to_str().unwrap()])
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// a1: 13 logins in 30 days (capped at 10: 20 points), a report (20),
/// active on 2 of the last 7 days (10): 50. b1: a login and two tickets
/// 3 days ago: 2 + 5 − 10 = −3. a2: a profile only: 0.
fn seed(s: &Server) {
    let now = now_ms();
    let mut rows = String::new();
    let mut row = |u: &str, ev: &str, t: i64| {
        rows.push_str(&format!(
            "{{\"user\":\"{u}\",\"event\":\"{ev}\",\"time\":{t}}}\n"
        ))
    };
    for i in 0..12 {
        row("a1", "login", now - 10 * DAY + i * 60_000);
    }
    row("a1", "login", now - DAY);
    row("a1", "create_report", now - 2 * DAY);
    row("b1", "login", now - 3 * DAY);
    row("b1", "ticket", now - 3 * DAY);
    row("b1", "ticket", now - 3 * DAY + 1000);
    ok(s, INGEST, "POST", "/v1/events", &rows);
    ok(
        s,
        ADMIN,
        "POST",
        "/v1/profiles",
        r#"{"user":"a1","op":"set","props":{"csm_owner":"alice","plan":"pro"}}
{"user":"a2","op":"set","props":{"csm_owner":"alice","plan":"free"}}
{"user":"b1","op":"set","props":{"csm_owner":"bob","plan":"pro"}}"#,
    );
}

fn components() -> Json {
    json!([
        {"name": "logins", "event": "login", "within": {"value": 30, "unit": "day"}, "weight": 2, "cap": 10},
        {"name": "reports", "event": "create_report", "within": {"value": 30, "unit": "day"}, "measure": "did", "weight": 20},
        {"name": "active", "event": "$any", "within": {"value": 7, "unit": "day"}, "measure": "days", "weight": 5},
        {"name": "tickets", "event": "ticket", "within": {"value": 30, "unit": "day"}, "weight": -5}
    ])
}

fn health() -> String {
    json!({"name": "health", "property": "health_score", "every": {"value": 1, "unit": "hour"},
           "query": {"kind": "users", "score": {"components": components()}}})
    .to_string()
}

fn query(s: &Server, key: &str, q: &str) -> Json {
    ok(s, key, "POST", "/v1/query", q)
}

/// The ids of the users a `users` condition admits, sorted.
fn admitted(s: &Server, users: &str) -> Vec<String> {
    ids(&query(
        s,
        QUERY,
        &format!(r#"{{"kind":"users","users":{users}}}"#),
    ))
}

/// Waits until score `name` has run (the scheduler's first run).
fn wait_run(s: &Server, name: &str) -> Json {
    let t = Instant::now();
    loop {
        let v = ok(s, ADMIN, "GET", &format!("/v1/scores/{name}"), "");
        if !v["last_run"].is_null() {
            return v;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "never ran: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn saved_scores_write_a_property_filters_and_breakdowns_read() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    seed(&s);

    // The query itself: the distribution, top and bottom.
    let q = json!({"kind": "users", "score": {"components": components(), "top": 1}});
    let r = query(&s, QUERY, &q.to_string());
    assert_eq!(r["users"], 3, "{r}");
    assert_eq!(
        (r["min"].clone(), r["max"].clone(), r["median"].clone()),
        (json!(-3), json!(50), json!(0))
    );
    assert_eq!(
        r["top"],
        json!([{"user": "a1", "score": 50, "components": {"logins": 13, "reports": 1, "active": 2, "tickets": 0}}])
    );
    assert_eq!(r["bottom"][0]["user"], "b1");

    let created = ok(&s, ADMIN, "POST", "/v1/scores", &health());
    assert_eq!(created["name"], "health");
    assert_eq!(created["property"], "health_score");
    // The scheduler runs a new score at once.
    let v = wait_run(&s, "health");
    assert_eq!(v["last_run"]["users"], 3, "{v}");
    assert!(v["last_run"]["error"].is_null(), "{v}");
    let report = ok(&s, ADMIN, "POST", "/v1/scores/health/run", "");
    assert_eq!(
        (report["users"].clone(), report["removed"].clone()),
        (json!(3), json!(0)),
        "{report}"
    );

    // Filters and breakdowns read the property.
    let healthy = r#"{"user_prop":"health_score","op":"gte","value":50}"#;
    assert_eq!(admitted(&s, healthy), ["a1"]);
    let by = query(
        &s,
        QUERY,
        r#"{"kind":"users","breakdown":[{"user_prop":"health_score"}]}"#,
    );
    let mut groups: Vec<(i64, u64)> = by["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["key"]["health_score"].as_i64().unwrap(),
                g["users"].as_u64().unwrap(),
            )
        })
        .collect();
    groups.sort();
    assert_eq!(groups, [(-3, 1), (0, 1), (50, 1)], "{by}");
    let trend = query(
        &s,
        QUERY,
        r#"{"kind":"events","interval":"total","metrics":[{"event":"login","agg":"users"}],"breakdown":[{"user_prop":"health_score"}]}"#,
    );
    assert!(trend.to_string().contains("\"health_score\":50"), "{trend}");

    // A user no longer scored loses the property at the next run.
    let pro = json!({"name": "pro_health", "property": "pro_score",
        "query": {"kind": "users", "profile": {"prop": "plan", "op": "eq", "value": "pro"},
                  "score": {"components": components()}}});
    ok(&s, ADMIN, "POST", "/v1/scores", &pro.to_string());
    let r = ok(&s, ADMIN, "POST", "/v1/scores/pro_health/run", "");
    assert_eq!(r["users"], 2, "{r}");
    ok(
        &s,
        ADMIN,
        "POST",
        "/v1/profiles",
        r#"{"user":"b1","op":"set","props":{"plan":"free"}}"#,
    );
    let r = ok(&s, ADMIN, "POST", "/v1/scores/pro_health/run", "");
    assert_eq!(
        (r["users"].clone(), r["removed"].clone()),
        (json!(1), json!(1)),
        "{r}"
    );
    let scored = r#"{"user_prop":"pro_score","op":"is_set"}"#;
    assert_eq!(admitted(&s, scored), ["a1"]);

    // Listed, and (kill -9, restart) still there, with the property.
    let list = ok(&s, QUERY, "GET", "/v1/scores", "");
    let names: Vec<&str> = list["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["health", "pro_health"]);
    drop(s); // SIGKILL
    let s = start(dir.path());
    let v = ok(&s, QUERY, "GET", "/v1/scores/health", "");
    assert_eq!(v["query"]["score"]["components"], components(), "{v}");
    assert_eq!(v["every"], json!({"value": 1, "unit": "hour"}));
    let healthy = r#"{"user_prop":"health_score","op":"gte","value":50}"#;
    assert_eq!(admitted(&s, healthy), ["a1"]);

    // Deleted: gone, and gone after a restart; the property stays.
    assert_eq!(
        ok(&s, ADMIN, "DELETE", "/v1/scores/pro_health", "")["deleted"],
        "pro_health"
    );
    assert_eq!(call(&s, ADMIN, "GET", "/v1/scores/pro_health", "").0, 404);
    assert_eq!(
        call(&s, ADMIN, "DELETE", "/v1/scores/pro_health", "").0,
        404
    );
    assert_eq!(
        call(&s, ADMIN, "POST", "/v1/scores/pro_health/run", "").0,
        404
    );
    let (code, _) = s.stop();
    assert_eq!(code, 0);

    // The CLI lists and runs them.
    let data = dir.path().join("d");
    let out = Command::new(env!("CARGO_BIN_EXE_footprint"))
        .args(["score", "list", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let listed: Vec<Json> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["name"], "health");
    let out = Command::new(env!("CARGO_BIN_EXE_footprint"))
        .args(["score", "run", "--data"])
        .arg(&data)
        .arg("health")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let r: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["users"], 3, "{r}");
    let out = Command::new(env!("CARGO_BIN_EXE_footprint"))
        .args(["score", "run", "--data"])
        .arg(&data)
        .arg("nope")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no score"),
        "{out:?}"
    );
}

#[test]
fn bad_scores_are_400_with_the_path_and_keys_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    seed(&s);
    let with = |f: &dyn Fn(&mut Json)| {
        let mut v: Json = serde_json::from_str(&health()).unwrap();
        f(&mut v);
        v.to_string()
    };
    for (body, path) in [
        (
            with(&|v| v["query"]["score"]["components"][1]["weight"] = json!("x")),
            "query.score.components[1].weight",
        ),
        (
            with(&|v| v["query"]["score"]["components"][0]["within"]["unit"] = json!("fortnight")),
            "query.score.components[0].within.unit",
        ),
        (
            with(&|v| v["query"]["kind"] = json!("events")),
            "query.kind",
        ),
        (
            with(&|v| {
                v["query"].as_object_mut().unwrap().remove("score");
            }),
            "query.score",
        ),
        (with(&|v| v["name"] = json!("no spaces")), "name"),
        (with(&|v| v["property"] = json!("$set")), "property"),
        (
            with(&|v| v["every"] = json!({"value": 1, "unit": "year"})),
            "every.unit",
        ),
        (with(&|v| v["evry"] = json!(1)), "evry"),
    ] {
        let (st, v) = call(&s, ADMIN, "POST", "/v1/scores", &body);
        assert_eq!(st, 400, "{body}: {v}");
        assert_eq!(v["error"]["path"], path, "{body}: {v}");
    }
    // A query with a score per account is not built yet.
    let q = json!({"kind": "users", "score": {"unit": {"group": "company"}, "components": components()}});
    let (st, v) = call(&s, QUERY, "POST", "/v1/query", &q.to_string());
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (501, Some("not_supported")),
        "{v}"
    );
    assert_eq!(v["error"]["path"], "score.unit");

    // Writing needs an unscoped admin key; reading a query key.
    for key in [QUERY, INGEST, ALICE, ALICE_ADMIN] {
        let (st, v) = call(&s, key, "POST", "/v1/scores", &health());
        assert_eq!(st, 403, "{key}: {v}");
    }
    let (st, v) = call(&s, ALICE_ADMIN, "POST", "/v1/scores", &health());
    assert!(v.to_string().contains("scoped to some users"), "{st} {v}");
    ok(&s, ADMIN, "POST", "/v1/scores", &health());
    wait_run(&s, "health");
    for key in [QUERY, INGEST, ALICE, ALICE_ADMIN] {
        assert_eq!(
            call(&s, key, "POST", "/v1/scores/health/run", "").0,
            403,
            "{key}"
        );
        assert_eq!(
            call(&s, key, "DELETE", "/v1/scores/health", "").0,
            403,
            "{key}"
        );
    }
    assert_eq!(call(&s, INGEST, "GET", "/v1/scores", "").0, 403);
    // A scoped key sees the definition, not how many users were scored
    // (a count of everyone).
    let v = ok(&s, ALICE, "GET", "/v1/scores/health", "");
    assert!(v["last_run"]["at"].is_i64(), "{v}");
    assert!(v["last_run"].get("users").is_none(), "{v}");
    let v = ok(&s, ALICE, "GET", "/v1/scores", "");
    assert!(v["scores"][0]["last_run"].get("users").is_none(), "{v}");
    // And its queries of the property see its own people only.
    let r = query(
        &s,
        ALICE,
        r#"{"kind":"users","breakdown":[{"user_prop":"health_score"}]}"#,
    );
    assert_eq!(r["users"], 2, "{r}");
    assert!(!r.to_string().contains("-3"), "{r}");
}
