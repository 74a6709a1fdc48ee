//! Saved cohorts through the public HTTP API of a real server: live
//! cohorts follow their definition (re-evaluated when read older than
//! `--cohort-max-age-secs`), static ones are uploaded id lists, members
//! stream as CSV or NDJSON with profile fields, and bad input gets 400 or
//! 404 naming what is wrong.

mod common;

use common::Server;
use serde_json::{json, Value as Json};

/// The body of a chunked reply, unframed.
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((len, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    out
}

fn post(s: &Server, path: &str, body: &str) -> Json {
    let (st, v) = s.json("POST", path, &[], body);
    assert_eq!(st, 200, "{path}: {v}");
    v
}

fn seed(s: &Server) {
    post(
        s,
        "/v1/events",
        "{\"user\":\"u1\",\"event\":\"login\",\"time\":1767225600000}\n\
         {\"user\":\"u2\",\"event\":\"login\",\"time\":1767225600000}\n\
         {\"user\":\"u3\",\"event\":\"login\",\"time\":1767225600000}",
    );
    post(
        s,
        "/v1/profiles",
        "{\"user\":\"u1\",\"op\":\"set\",\"props\":{\"plan\":\"pro\",\"csm_owner\":\"alice, jr\"}}\n\
         {\"user\":\"u2\",\"op\":\"set\",\"props\":{\"plan\":\"pro\",\"seats\":12}}\n\
         {\"user\":\"u3\",\"op\":\"set\",\"props\":{\"plan\":\"free\"}}",
    );
}

const PRO: &str = r#"{"kind":"users","profile":{"prop":"plan","op":"eq","value":"pro"}}"#;

#[test]
fn live_and_static_cohorts_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--cohort-max-age-secs", "0"]);
    seed(&s);

    // save_as keeps the definition: the cohort is live.
    let r = post(
        &s,
        "/v1/query",
        r#"{"kind":"users","profile":{"prop":"plan","op":"eq","value":"pro"},"save_as":"pro","return_users":1}"#,
    );
    assert_eq!(r["users"], 2);
    let (st, list) = s.json("GET", "/v1/cohorts", &[], "");
    assert_eq!(st, 200);
    assert_eq!(list["cohorts"][0]["name"], "pro");
    assert_eq!(list["cohorts"][0]["kind"], "live");
    assert_eq!(list["cohorts"][0]["size"], 2);

    // A profile change shows at the next read (max age 0 here).
    post(
        &s,
        "/v1/profiles",
        r#"{"user":"u3","op":"set","props":{"plan":"pro"}}"#,
    );
    let (st, c) = s.json("GET", "/v1/cohorts/pro", &[], "");
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["size"], 3);
    assert_eq!(c["definition"]["profile"]["value"], "pro");
    assert!(c["definition"].get("save_as").is_none(), "{c}");
    let sizes: Vec<u64> = c["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["size"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, vec![2, 3]);
    // Any query reading the cohort sees it current.
    let r = post(
        &s,
        "/v1/query",
        r#"{"kind":"events","interval":"total","metrics":[{"event":"login","agg":"users"}],"users":{"cohort":"pro"}}"#,
    );
    assert!(r.to_string().contains('3'), "{r}");

    // PUT a definition: created (201), then replaced (200).
    let def = format!(r#"{{"definition":{PRO}}}"#);
    let (st, c) = s.json("PUT", "/v1/cohorts/pro2", &[], &def);
    assert_eq!((st, &c["size"]), (201, &json!(3)), "{c}");
    let (st, _) = s.json("PUT", "/v1/cohorts/pro2", &[], &def);
    assert_eq!(st, 200);

    // Static cohorts: JSON ids or text, unknown ids reported.
    let (st, c) = s.json(
        "PUT",
        "/v1/cohorts/vips",
        &[],
        r#"{"ids":["u1","nobody","u2"]}"#,
    );
    assert_eq!(st, 201, "{c}");
    assert_eq!(
        (&c["kind"], &c["size"], &c["unknown"]),
        (&json!("static"), &json!(2), &json!(1))
    );
    assert_eq!(c["unknown_ids"], json!(["nobody"]));
    let (st, _, b) = s.req(
        "PUT",
        "/v1/cohorts/list2",
        &[("Content-Type", "text/plain")],
        b"user\nu3\n\nu1\n",
    );
    assert_eq!(st, 201, "{b}");
    let (st, c) = s.json("POST", "/v1/cohorts", &[], r#"{"name":"one","ids":["u2"]}"#);
    assert_eq!((st, &c["size"]), (201, &json!(1)), "{c}");
    // Static cohorts do not follow profile changes.
    post(
        &s,
        "/v1/profiles",
        r#"{"user":"u1","op":"set","props":{"plan":"free"}}"#,
    );
    let (_, c) = s.json("GET", "/v1/cohorts/vips", &[], "");
    assert_eq!(c["size"], 2);
    assert!(c["definition"].is_null());

    // Members with profile fields, as CSV and NDJSON.
    let (st, h, b) = s.req(
        "GET",
        "/v1/cohorts/vips/users?format=csv&fields=plan,csm_owner,seats",
        &[],
        b"",
    );
    assert_eq!(st, 200);
    assert!(h.contains("text/csv"), "{h}");
    assert_eq!(
        dechunk(&b),
        "user,plan,csm_owner,seats\nu1,free,\"alice, jr\",\nu2,pro,,12\n"
    );
    let (st, _, b) = s.req("GET", "/v1/cohorts/pro/users?fields=seats", &[], b"");
    assert_eq!(st, 200);
    let rows: Vec<Json> = dechunk(&b)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        rows,
        vec![
            json!({"user": "u2", "seats": 12}),
            json!({"user": "u3", "seats": null})
        ]
    );

    // Bad input: 404 naming the cohort with a did-you-mean, 400 with the path.
    let (st, e) = s.json("GET", "/v1/cohorts/pr0", &[], "");
    assert_eq!(st, 404, "{e}");
    let m = e["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("no cohort named \"pr0\"") && m.contains("did you mean \"pro"),
        "{m}"
    );
    let (st, e) = s.json("GET", "/v1/cohorts/pr0/users", &[], "");
    assert_eq!(st, 404, "{e}");
    let (st, e) = s.json(
        "PUT",
        "/v1/cohorts/bad",
        &[],
        r#"{"definition":{"kind":"users","did":[{"event":"logn"}]}}"#,
    );
    assert_eq!(st, 400, "{e}");
    assert_eq!(e["error"]["path"], "definition.did[0].event", "{e}");
    let (st, e) = s.json(
        "PUT",
        "/v1/cohorts/bad",
        &[],
        r#"{"definition":{"kind":"users","save_as":"x"}}"#,
    );
    assert_eq!(
        (st, &e["error"]["path"]),
        (400, &json!("definition.save_as")),
        "{e}"
    );
    let (st, e) = s.json(
        "PUT",
        "/v1/cohorts/bad",
        &[],
        r#"{"definition":{"kind":"funnel"}}"#,
    );
    assert_eq!(
        (st, &e["error"]["path"]),
        (400, &json!("definition.kind")),
        "{e}"
    );
    let (st, e) = s.json("PUT", "/v1/cohorts/bad", &[], r#"{"ids":["u1",7]}"#);
    assert_eq!((st, &e["error"]["path"]), (400, &json!("ids[1]")), "{e}");
    let (st, e) = s.json(
        "PUT",
        "/v1/cohorts/bad",
        &[],
        r#"{"ids":[],"definition":{}}"#,
    );
    assert_eq!(st, 400, "{e}");
    let (st, e) = s.json("PUT", "/v1/cohorts/a.b", &[], r#"{"ids":["u1"]}"#);
    assert_eq!((st, &e["error"]["path"]), (400, &json!("name")), "{e}");
    let (st, e) = s.json("GET", "/v1/cohorts/pro/users?format=xml", &[], "");
    assert_eq!((st, &e["error"]["path"]), (400, &json!("format")), "{e}");
    // A definition that reads its own cohort is refused.
    let (st, e) = s.json(
        "PUT",
        "/v1/cohorts/loop",
        &[],
        r#"{"definition":{"kind":"users","users":{"cohort":"loop"}}}"#,
    );
    assert_eq!(st, 400, "{e}");
    assert!(e.to_string().contains("through itself"), "{e}");
    assert!(s.json("GET", "/v1/cohorts/bad", &[], "").0 == 404);

    // Delete is explicit, and durable across a restart.
    let (st, _) = s.json("DELETE", "/v1/cohorts/one", &[], "");
    assert_eq!(st, 200);
    let (st, _) = s.json("DELETE", "/v1/cohorts/one", &[], "");
    assert_eq!(st, 404);
    let (code, _) = s.stop();
    assert_eq!(code, 0);
    let s = Server::start(dir.path(), &[]);
    let (_, list) = s.json("GET", "/v1/cohorts", &[], "");
    let names: Vec<&str> = list["cohorts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["list2", "pro", "pro2", "vips"]);
}

#[test]
fn a_live_cohort_is_stale_at_most_the_stated_bound() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--cohort-max-age-secs", "2"]);
    seed(&s);
    let (st, c) = s.json(
        "PUT",
        "/v1/cohorts/pro",
        &[],
        &format!(r#"{{"definition":{PRO}}}"#),
    );
    assert_eq!((st, &c["size"]), (201, &json!(2)), "{c}");
    post(
        &s,
        "/v1/profiles",
        r#"{"user":"u3","op":"set","props":{"plan":"pro"}}"#,
    );
    // Within the bound the saved members may be read as they are...
    let (_, c) = s.json("GET", "/v1/cohorts/pro", &[], "");
    assert_eq!(c["size"], 2, "{c}");
    // ...past it, a read re-evaluates.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (_, c) = s.json("GET", "/v1/cohorts/pro", &[], "");
    assert_eq!(c["size"], 3, "{c}");
}
