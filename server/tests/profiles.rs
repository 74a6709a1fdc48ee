//! Profiles through the public surfaces: `footprint profiles import` of a
//! CRM export (CSV and NDJSON, with bad rows), `POST /v1/profiles` with a
//! CSV body, list operations, and conditions on profile times relative to
//! now.

mod common;

use std::process::Command;

use common::Server;

fn footprint() -> Command {
    Command::new(env!("CARGO_BIN_EXE_footprint"))
}

fn day(offset_days: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let t = now + offset_days * 86_400_000;
    chrono::DateTime::from_timestamp_millis(t)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn query(data: &std::path::Path, q: &str) -> serde_json::Value {
    let file = data.with_extension("query.json");
    std::fs::write(&file, q).unwrap();
    let out = footprint()
        .args(["query", "--data"])
        .arg(data)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn import_keeps_good_rows_and_names_bad_ones_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let csv = dir.path().join("crm.csv");
    let mut text = format!(
        "user,plan,arr:number,seats:int,contract_end:time\n\
         acme-1,enterprise,120000,40,{}\n\
         acme-2,pro,12x,5,{}\n\
         acme-3,pro,9000\n\
         acme-4,free,0,1,{}\n",
        day(20),
        day(20),
        day(90)
    )
    .into_bytes();
    // One line that is not UTF-8 (line 6); the rows around it stay.
    text.extend_from_slice(b"acme-5,\xff\xfepro,1,1,2027-01-01\n");
    text.extend_from_slice(format!("acme-6,pro,5000,3,{}\n", day(-3)).as_bytes());
    std::fs::write(&csv, &text).unwrap();
    let out = footprint()
        .args(["profiles", "import", "--data"])
        .arg(&data)
        .arg(&csv)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stdout.contains("accepted 3 profiles, rejected 3 rows"),
        "{stdout}"
    );
    assert!(stderr.contains("crm.csv:3: column \"arr\""), "{stderr}");
    assert!(
        stderr.contains("crm.csv:4: expected 5 CSV columns"),
        "{stderr}"
    );
    assert!(
        stderr.contains("crm.csv:6:") && stderr.contains("UTF-8"),
        "{stderr}"
    );

    // NDJSON update rows: an unknown op is named by line; list ops apply.
    let nd = dir.path().join("ops.ndjson");
    std::fs::write(
        &nd,
        "{\"user\":\"acme-1\",\"op\":\"append\",\"props\":{\"tags\":\"vip\"}}\n\
         {\"user\":\"acme-1\",\"op\":\"merge\",\"props\":{\"x\":1}}\n\
         {\"user\":\"acme-1\",\"op\":\"union\",\"props\":{\"tags\":[\"vip\",\"renewal\"]}}\n\
         {\"user\":\"acme-4\",\"op\":\"unset\",\"props\":[\"contract_end\"]}\n",
    )
    .unwrap();
    let out = footprint()
        .args(["profiles", "import", "--json", "--data"])
        .arg(&data)
        .arg(&nd)
        .output()
        .unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (summary["accepted"].as_u64(), summary["rejected"].as_u64()),
        (Some(3), Some(1))
    );
    assert!(summary["errors"][0]
        .as_str()
        .unwrap()
        .contains("ops.ndjson:2: unknown op \"merge\""));

    // The profiles are stored, typed, and readable by queries.
    let r = query(
        &data,
        r#"{"kind":"users","breakdown":[{"user_prop":"plan"}]}"#,
    );
    assert_eq!(r["users"], 3, "{r}");
    let r = query(
        &data,
        r#"{"kind":"users","profile":{"user_prop":"arr","op":"gte","value":5000}}"#,
    );
    assert_eq!(r["users"], 2, "{r}");
    let r = query(
        &data,
        r#"{"kind":"users","profile":{"user_prop":"tags","op":"contains","value":"renewal"},"return_users":10}"#,
    );
    assert_eq!(r["ids"], serde_json::json!(["acme-1"]), "{r}");
    // Contracts ending within the next 30 days: acme-1 (in 20 days), not
    // acme-4 (unset), not acme-6 (ended 3 days ago).
    let r = query(
        &data,
        r#"{"kind":"users","profile":{"user_prop":"contract_end","op":"within_next","value":{"value":30,"unit":"day"}},"return_users":10}"#,
    );
    assert_eq!(r["ids"], serde_json::json!(["acme-1"]), "{r}");
    let r = query(
        &data,
        r#"{"kind":"users","profile":{"user_prop":"contract_end","op":"within_last","value":{"value":7,"unit":"day"}},"return_users":10}"#,
    );
    assert_eq!(r["ids"], serde_json::json!(["acme-6"]), "{r}");

    // The import is durable and merged into the base file.
    let out = footprint()
        .args(["stats", "--json", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["profiles"], 3);
    let pcol = std::fs::read_dir(data.join("profiles"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "pcol")
        })
        .count();
    assert_eq!(pcol, 1);
}

#[test]
fn http_takes_the_same_csv_rows() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("d"), &[]);
    let body = "user,plan,seats:int\nu1,pro,3\nu2,free,two\nu3,free,1\n";
    let (st, _, b) = s.req(
        "POST",
        "/v1/profiles",
        &[("Content-Type", "text/csv; charset=utf-8")],
        body.as_bytes(),
    );
    let r: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(st, 200, "{b}");
    assert_eq!(
        (r["accepted"].as_u64(), r["rejected"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(r["errors"][0]["line"], 3);
    // CSV where only JSON is taken is refused by name.
    let (st, r) = s.json(
        "POST",
        "/v1/alias",
        &[("Content-Type", "text/csv")],
        "anonymous,known\na,b\n",
    );
    assert_eq!(st, 415, "{r}");
    let (st, r) = s.json(
        "POST",
        "/v1/query",
        &[],
        r#"{"kind":"users","profile":{"user_prop":"seats","op":"gte","value":1}}"#,
    );
    assert_eq!((st, r["users"].as_u64()), (200, Some(2)), "{r}");
    // A bad duration names its field.
    let (st, r) = s.json(
        "POST",
        "/v1/query",
        &[],
        r#"{"kind":"users","profile":{"user_prop":"seats","op":"within_next","value":{"value":1,"unit":"year"}}}"#,
    );
    assert_eq!(st, 400, "{r}");
    assert!(
        r["error"]["path"].as_str().unwrap_or("").contains("value"),
        "{r}"
    );
    s.stop();
}

#[test]
fn user_detail_shows_the_person_and_pages_their_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("d"), &[]);
    // u1 and the anonymous id they used before signing up; three events at
    // one instant, so pages must split a tie.
    let mut body = String::new();
    for (user, event, t) in [
        ("anon-7", "visit", 1_000),
        ("anon-7", "view_pricing", 2_000),
        ("u1", "signup", 3_000),
        ("u1", "login", 5_000),
        ("u1", "create_report", 5_000),
        ("u1", "invite", 5_000),
        ("u1", "login", 9_000),
        ("u2", "login", 4_000),
    ] {
        body.push_str(&format!(
            "{{\"user\":\"{user}\",\"event\":\"{event}\",\"time\":{},\"props\":{{\"n\":{t}}}}}\n",
            1_767_225_600_000i64 + t
        ));
    }
    assert_eq!(s.json("POST", "/v1/events", &[], &body).0, 200);
    assert_eq!(
        s.json(
            "POST",
            "/v1/alias",
            &[],
            r#"{"anonymous":"anon-7","known":"u1"}"#
        )
        .0,
        200
    );
    assert_eq!(
        s.json(
            "POST",
            "/v1/profiles",
            &[("Content-Type", "text/csv")],
            "user,plan,csm_owner\nu1,pro,alice\n"
        )
        .0,
        200
    );
    let (st, r) = s.json(
        "POST",
        "/v1/query",
        &[],
        r#"{"kind":"users","did":[{"event":"view_pricing"}],"save_as":"pricing_viewers"}"#,
    );
    assert_eq!(st, 200, "{r}");

    // Looked up by either id: the same person.
    let (st, all) = s.json("GET", "/v1/users/anon-7?limit=1000", &[], "");
    assert_eq!(st, 200, "{all}");
    assert_eq!(all["ids"], serde_json::json!(["u1", "anon-7"]));
    assert_eq!(
        all["profile"],
        serde_json::json!({"plan": "pro", "csm_owner": "alice"})
    );
    assert_eq!(all["cohorts"], serde_json::json!(["pricing_viewers"]));
    assert_eq!(all["events_in_range"], 7);
    assert_eq!(all["next"], serde_json::Value::Null);
    let times: Vec<i64> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["time"].as_i64().unwrap() - 1_767_225_600_000)
        .collect();
    assert_eq!(times, [9_000, 5_000, 5_000, 5_000, 3_000, 2_000, 1_000]);
    assert_eq!(all["events"][6]["props"]["n"], 1_000);
    // Pages of two walk the same timeline, the tie at 5 000 included.
    let mut paged = Vec::new();
    let mut url = "/v1/users/u1?limit=2".to_owned();
    for _ in 0..10 {
        let (st, page) = s.json("GET", &url, &[], "");
        assert_eq!(st, 200, "{page}");
        paged.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next"].as_object() {
            Some(n) => {
                url = format!(
                    "/v1/users/u1?limit=2&before={}&skip={}",
                    n["before"], n["skip"]
                )
            }
            None => break,
        }
    }
    assert_eq!(serde_json::Value::Array(paged), all["events"]);
    // Unknown users and bad parameters are named.
    let (st, r) = s.json("GET", "/v1/users/nobody", &[], "");
    assert_eq!(st, 404, "{r}");
    let (st, r) = s.json("GET", "/v1/users/u1?limit=many", &[], "");
    assert_eq!(
        (st, r["error"]["path"].as_str()),
        (400, Some("limit")),
        "{r}"
    );
    s.stop();
}
