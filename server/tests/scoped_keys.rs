//! Per-owner access through the public HTTP API: a key scoped to the
//! users whose `csm_owner` is alice learns nothing about anyone else
//! through any endpoint — queries, breakdowns, SQL, schema, stats, live
//! events, user lookups, profiles, cohorts (list, read, export, create),
//! watches — and writes nothing. One test per endpoint.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ids, sorted, Server};
use serde_json::{json, Value as Json};

const ADMIN: &str = "admin-key-0123456789";
const ALICE: &str = "alice-query-0123456789";
const ALICE_ADMIN: &str = "alice-admin-0123456789";
const OWNER: &str = r#"{"user_prop": "csm_owner", "op": "eq", "value": "alice"}"#;

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

struct Env {
    _dir: tempfile::TempDir,
    s: Server,
}

impl Env {
    fn call(&self, key: &str, method: &str, path: &str, body: &str) -> (u16, Json) {
        let auth = bearer(key);
        self.s
            .json(method, path, &[("Authorization", auth.as_str())], body)
    }

    /// Saves (unscoped) the live cohort `payers`: a1 and b1.
    fn payers(&self) {
        self.ok(
            ADMIN,
            "PUT",
            "/v1/cohorts/payers",
            r#"{"definition":{"kind":"users","did":[{"event":"pay"}]}}"#,
        );
    }

    fn ok(&self, key: &str, method: &str, path: &str, body: &str) -> Json {
        let (st, v) = self.call(key, method, path, body);
        assert!((200..300).contains(&st), "{method} {path}: {st} {v}");
        v
    }
}

/// A server with an unscoped admin key and alice's query and admin keys;
/// with `aliases`, a1 ← anon (alice's) and b1 ← bcookie (bob's, though its
/// own profile says alice). a1, a2, p1 (profile only) are alice's; b1 is
/// bob's; lone has events and no profile.
fn start(aliases: bool) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    std::fs::write(
        &keys,
        format!(
            r#"{{"keys": [{{"key": "{ADMIN}", "role": "admin"}},
                {{"key": "{ALICE}", "role": "query", "name": "alice", "users": {OWNER}}},
                {{"key": "{ALICE_ADMIN}", "role": "admin", "name": "alice-ops", "users": {OWNER}}}]}}"#
        ),
    )
    .unwrap();
    let s = Server::start(
        &dir.path().join("d"),
        &[
            "--keys",
            keys.to_str().unwrap(),
            "--cohort-max-age-secs",
            "0",
        ],
    );
    let env = Env { _dir: dir, s };
    let t0 = 1_767_225_600_000i64;
    let day = 86_400_000i64;
    let mut rows = String::new();
    for (user, ev, d, src) in [
        ("a1", "visit", 0, "ads"),
        ("a1", "pay", 1, "ads"),
        ("a2", "visit", 2, "mail"),
        ("anon", "visit", 3, "social"),
        ("b1", "visit", 0, "secret_source"),
        ("b1", "pay", 1, "secret_source"),
        ("bcookie", "visit", 9, "secret_source"),
        ("lone", "visit", 20, "secret_source"),
    ] {
        if !aliases && (user == "anon" || user == "bcookie") {
            continue;
        }
        rows.push_str(&format!(
            "{{\"user\":\"{user}\",\"event\":\"{ev}\",\"time\":{},\"props\":{{\"utm_source\":\"{src}\"}}}}\n",
            t0 + d * day
        ));
    }
    env.ok(ADMIN, "POST", "/v1/events", &rows);
    env.ok(
        ADMIN,
        "POST",
        "/v1/profiles",
        r#"{"user":"a1","op":"set","props":{"csm_owner":"alice","plan":"pro"}}
{"user":"a2","op":"set","props":{"csm_owner":"alice","plan":"free"}}
{"user":"p1","op":"set","props":{"csm_owner":"alice","plan":"pro"}}
{"user":"b1","op":"set","props":{"csm_owner":"bob","plan":"enterprise","secret_note":"x"}}
{"user":"bcookie","op":"set","props":{"csm_owner":"alice","plan":"pro"}}"#,
    );
    if aliases {
        env.ok(
            ADMIN,
            "POST",
            "/v1/alias",
            r#"{"anonymous":"anon","known":"a1"}
{"anonymous":"bcookie","known":"b1"}"#,
        );
    }
    env
}

#[test]
fn query_users_breakdowns_and_explanations() {
    let e = start(true);
    let q = |body: &str| e.ok(ALICE, "POST", "/v1/query", body);
    let users = q(r#"{"kind":"users"}"#);
    assert_eq!(
        (users["users"].clone(), ids(&users)),
        (json!(3), vec!["a1".to_owned(), "a2".into(), "p1".into()])
    );
    // The unscoped key sees everyone.
    let all = e.ok(ADMIN, "POST", "/v1/query", r#"{"kind":"users"}"#);
    assert_eq!(all["users"], 5, "{all}");
    // Top-N breakdown values and the rest: only alice's.
    let trend = q(
        r#"{"kind":"events","interval":"total","metrics":[{"event":"visit"}],
                    "breakdown":[{"event_prop":"utm_source"}],"limit":1}"#,
    );
    assert_eq!(trend["series"][0]["total"], 3, "{trend}");
    assert_eq!(trend["groups_truncated"], 3, "{trend}");
    let by_owner =
        q(r#"{"kind":"distribution","event":"visit","breakdown":[{"user_prop":"csm_owner"}]}"#);
    assert_eq!(
        by_owner["groups"].as_array().unwrap().len(),
        1,
        "{by_owner}"
    );
    for body in [
        r#"{"kind":"paths","steps":3,"top":1,"label":{"prop":"utm_source"}}"#,
        r#"{"kind":"sessions","interval":"day","page_events":["visit"],"page_prop":"utm_source"}"#,
        r#"{"kind":"attribution","conversion":{"event":"pay"},"by":{"event_prop":"utm_source"}}"#,
    ] {
        let r = q(body);
        assert!(!r.to_string().contains("secret_source"), "{body}: {r}");
    }
    // The time axis is alice's events' (4 days), not everyone's.
    let daily = q(r#"{"kind":"events","interval":"day","metrics":[{"event":"$any"}]}"#);
    assert_eq!(daily["buckets"].as_array().unwrap().len(), 4, "{daily}");
    // An out-of-scope user explains exactly like a user never seen.
    let f = q(
        r#"{"kind":"funnel","steps":[{"event":"visit"},{"event":"pay"}],"window":{"value":7,"unit":"day"},
                 "explain_users":["b1","ghost"]}"#,
    );
    assert_eq!(f["steps"][0]["users"], 2, "{f}");
    let strip = |v: &Json| {
        let mut v = v.clone();
        v["user"] = json!("?");
        v
    };
    assert_eq!(strip(&f["explain"][0]), strip(&f["explain"][1]), "{f}");
}

#[test]
fn sql_translate_carries_the_scope() {
    let e = start(false);
    let body = r#"{"kind":"distribution","event":"visit"}"#;
    let scoped = e.ok(ALICE, "POST", "/v1/sql/translate", body);
    let open = e.ok(ADMIN, "POST", "/v1/sql/translate", body);
    assert!(
        scoped["sql"].as_str().unwrap().contains("'alice'"),
        "{scoped}"
    );
    assert!(!open["sql"].as_str().unwrap().contains("'alice'"), "{open}");
}

#[test]
fn schema_counts_only_in_scope_people() {
    let e = start(true);
    let s = e.ok(ALICE, "GET", "/v1/schema", "");
    assert_eq!(s["events"], json!({"visit": 3, "pay": 1}), "{s}");
    assert_eq!(
        s["profile_properties"],
        json!({"csm_owner": 3, "plan": 3}),
        "{s}"
    );
    // Property kinds are listed, their counts withheld.
    assert_eq!(
        s["properties"]["utm_source"],
        json!({"string": null}),
        "{s}"
    );
    let all = e.ok(ADMIN, "GET", "/v1/schema", "");
    assert_eq!(all["events"]["visit"], 6);
    assert_eq!(all["profile_properties"]["secret_note"], 1);
}

#[test]
fn stats_are_refused() {
    let e = start(false);
    let (st, v) = e.call(ALICE, "GET", "/v1/stats", "");
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    assert_eq!(e.call(ADMIN, "GET", "/v1/stats", "").0, 200);
}

#[test]
fn live_tail_shows_only_in_scope_events() {
    let e = start(true);
    let v = e.ok(ALICE, "GET", "/v1/live?limit=100", "");
    let users = sorted(&v["events"], Some("user"));
    assert_eq!(users, ["a1", "a1", "a2", "anon"], "{v}");
    assert_eq!((&v["total"], &v["per_minute"]), (&Json::Null, &Json::Null));
    let all = e.ok(ADMIN, "GET", "/v1/live?limit=100", "");
    assert_eq!(all["events"].as_array().unwrap().len(), 8);
}

#[test]
fn user_lookup_is_404_outside_the_scope() {
    let e = start(true);
    let (st_b, b) = e.call(ALICE, "GET", "/v1/users/b1", "");
    let (st_g, g) = e.call(ALICE, "GET", "/v1/users/ghost", "");
    assert_eq!((st_b, st_g), (404, 404));
    assert_eq!(
        b["error"]["message"].as_str().unwrap().replace("b1", "?"),
        g["error"]["message"]
            .as_str()
            .unwrap()
            .replace("ghost", "?")
    );
    // The cookie of bob's person is bob's, whatever its own profile says.
    assert_eq!(e.call(ALICE, "GET", "/v1/users/bcookie", "").0, 404);
    assert_eq!(e.call(ALICE, "GET", "/v1/users/lone", "").0, 404);
    // An anonymous id of alice's customer is theirs.
    let anon = e.ok(ALICE, "GET", "/v1/users/anon", "");
    assert_eq!(anon["ids"], json!(["a1", "anon"]), "{anon}");
    assert_eq!(anon["events_in_range"], 3);
    assert_eq!(e.call(ADMIN, "GET", "/v1/users/b1", "").0, 200);
}

#[test]
fn profiles_outside_the_scope_are_null() {
    let e = start(true);
    let v = e.ok(ALICE, "GET", "/v1/profiles?user=b1&user=a1&user=ghost", "");
    assert_eq!(v["profiles"][0]["props"], Json::Null, "{v}");
    assert_eq!(v["profiles"][1]["props"]["plan"], "pro", "{v}");
    assert_eq!(v["profiles"][2]["props"], Json::Null, "{v}");
}

#[test]
fn cohort_list_and_read_are_the_scopes() {
    let e = start(true);
    e.payers();
    let list = e.ok(ALICE, "GET", "/v1/cohorts", "");
    assert_eq!(list["cohorts"][0]["size"], 1, "{list}");
    let c = e.ok(ALICE, "GET", "/v1/cohorts/payers", "");
    assert_eq!(
        (c["size"].clone(), c["history"].clone()),
        (json!(1), Json::Null),
        "{c}"
    );
    let open = e.ok(ADMIN, "GET", "/v1/cohorts/payers", "");
    assert_eq!(open["size"], 2, "{open}");
    assert!(open["history"].is_array());
    // A query through the cohort is the scope's too.
    let r = e.ok(
        ALICE,
        "POST",
        "/v1/query",
        r#"{"kind":"users","users":{"cohort":"payers"}}"#,
    );
    assert_eq!(ids(&r), ["a1"]);
}

#[test]
fn cohort_member_export_is_the_scopes() {
    let e = start(true);
    e.payers();
    let auth = bearer(ALICE);
    let (st, head, body) = e.s.req(
        "GET",
        "/v1/cohorts/payers/users?format=csv&fields=plan",
        &[("Authorization", auth.as_str())],
        b"",
    );
    assert_eq!(st, 200, "{body}");
    assert!(head.contains("x-cohort-size: 1"), "{head}");
    assert!(body.contains("a1,pro") && !body.contains("b1"), "{body}");
}

#[test]
fn cohorts_created_with_a_scoped_key_stay_in_scope() {
    let e = start(true);
    // A static list: ids outside the scope are "unknown", as never-seen ids are.
    let (st, c) = e.call(
        ALICE,
        "PUT",
        "/v1/cohorts/list",
        r#"{"ids":["a2","b1","bcookie","ghost"]}"#,
    );
    assert_eq!(st, 201, "{c}");
    assert_eq!(
        (c["size"].clone(), c["unknown"].clone()),
        (json!(1), json!(3)),
        "{c}"
    );
    assert_eq!(c["unknown_ids"], json!(["b1", "bcookie", "ghost"]));
    // A live one keeps the scope in its definition: an unscoped reader
    // sees alice's people only.
    e.ok(
        ALICE,
        "POST",
        "/v1/cohorts",
        r#"{"name":"visitors","definition":{"kind":"users","did":[{"event":"visit"}]}}"#,
    );
    let open = e.ok(ADMIN, "GET", "/v1/cohorts/visitors", "");
    assert_eq!(open["size"], 2, "{open}");
    assert_eq!(
        open["definition"]["users"]["and"][0]["value"], "alice",
        "{open}"
    );
    // save_as does the same.
    e.ok(
        ALICE,
        "POST",
        "/v1/query",
        r#"{"kind":"users","save_as":"everyone"}"#,
    );
    assert_eq!(e.ok(ADMIN, "GET", "/v1/cohorts/everyone", "")["size"], 3);
}

#[test]
fn scoped_keys_write_nothing() {
    let e = start(true);
    for (path, body) in [
        ("/v1/events", r#"{"user":"z","event":"visit","time":1}"#),
        (
            "/v1/profiles",
            r#"{"user":"b1","op":"set","props":{"csm_owner":"alice"}}"#,
        ),
        ("/v1/alias", r#"{"anonymous":"b1","known":"a1"}"#),
        (
            "/capture/",
            &format!(r#"{{"api_key":"{ALICE_ADMIN}","event":"visit","distinct_id":"z"}}"#),
        ),
    ] {
        let (st, v) = e.call(ALICE_ADMIN, "POST", path, body);
        assert_eq!(st, 403, "{path}: {v}");
        assert!(
            v.to_string().contains("scoped to some users"),
            "{path}: {v}"
        );
    }
    // Nothing moved b1 into the scope.
    assert_eq!(e.call(ALICE, "GET", "/v1/users/b1", "").0, 404);
    assert_eq!(
        e.ok(ADMIN, "POST", "/v1/query", r#"{"kind":"users"}"#)["users"],
        5
    );
}

/// Records the bodies posted to it, answering 200.
fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            loop {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        g.lock().unwrap().push(body.to_owned());
                        break;
                    }
                }
            }
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (addr, got)
}

#[test]
fn watches_of_a_scoped_key_post_only_its_people() {
    let e = start(true);
    let (addr, got) = receiver();
    let w = e.ok(
        ALICE_ADMIN,
        "POST",
        "/v1/watches",
        &format!(
            r#"{{"cohort":{{"kind":"users","did":[{{"event":"visit"}}]}},"every":{{"value":1,"unit":"hour"}},
                "initial":"enter","webhook":"http://{addr}/hook","fields":["plan"]}}"#
        ),
    );
    let id = w["id"].as_str().unwrap().to_owned();
    let t = Instant::now();
    while got.lock().unwrap().is_empty() {
        assert!(t.elapsed() < Duration::from_secs(30), "no post");
        std::thread::sleep(Duration::from_millis(50));
    }
    let body: Json = serde_json::from_str(&got.lock().unwrap()[0]).unwrap();
    assert_eq!(
        sorted(&body["entered"], Some("user")),
        ["a1", "a2"],
        "{body}"
    );
    // A watch made unscoped is not alice's to see; alice's is the admin's.
    let other = e.ok(
        ADMIN,
        "POST",
        "/v1/watches",
        r#"{"cohort":{"kind":"users"},"every":{"value":1,"unit":"day"},"webhook":"http://127.0.0.1:9/x"}"#,
    );
    let other_id = other["id"].as_str().unwrap();
    let mine = e.ok(ALICE_ADMIN, "GET", "/v1/watches", "");
    assert_eq!(sorted(&mine["watches"], Some("id")), [id.as_str()]);
    assert_eq!(
        e.call(ALICE_ADMIN, "GET", &format!("/v1/watches/{other_id}"), "")
            .0,
        404
    );
    assert_eq!(
        e.call(
            ALICE_ADMIN,
            "DELETE",
            &format!("/v1/watches/{other_id}"),
            ""
        )
        .0,
        404
    );
    assert_eq!(
        e.ok(ADMIN, "GET", "/v1/watches", "")["watches"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        e.ok(ADMIN, "GET", &format!("/v1/watches/{id}"), "")["scope"]["value"],
        "alice"
    );
}

#[test]
fn keys_files_with_bad_scopes_are_refused_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    for (keys, want) in [
        (
            format!(r#"{{"keys":[{{"key":"ingest-key-0123456789","role":"ingest","name":"web","users":{OWNER}}}]}}"#),
            "an ingest key cannot be scoped",
        ),
        (
            r#"{"keys":[{"key":"query-key-0123456789","role":"query","name":"q","users":{"user_prop":"x","op":"equals","value":1}}]}"#.to_owned(),
            "keys[0].users.op",
        ),
    ] {
        let path = dir.path().join("keys.json");
        std::fs::write(&path, keys).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_footprint"))
            .args(["serve", "--addr", "127.0.0.1:0", "--data"])
            .arg(dir.path().join("d"))
            .arg("--keys")
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{err}");
    }
}
