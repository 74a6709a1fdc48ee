//! The `footprint` binary end to end: gen → ingest → stats, and bad input.

use std::process::Command;

fn footprint() -> Command {
    Command::new(env!("CARGO_BIN_EXE_footprint"))
}

/// Runs a command that must succeed (stderr shown if not).
fn ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn gen_ingest_stats() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    let data = dir.path().join("data");
    ok(footprint()
        .args([
            "gen", "--users", "50", "--events", "3000", "--days", "10", "--seed", "3", "--out",
        ])
        .arg(&file));
    let out = ok(footprint().args(["ingest", "--data"]).arg(&data).arg(&file));
    assert!(String::from_utf8_lossy(&out.stdout).contains("accepted 3000 events, rejected 0 rows"));
    let out = footprint()
        .args(["stats", "--json", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["events"], 3000);
    assert_eq!(stats["users"], 50);
    // gen straight into a directory gives the same events.
    let data2 = dir.path().join("data2");
    ok(footprint()
        .args([
            "gen", "--users", "50", "--events", "3000", "--days", "10", "--seed", "3", "--data",
        ])
        .arg(&data2));
    let out = footprint()
        .args(["stats", "--json", "--data"])
        .arg(&data2)
        .output()
        .unwrap();
    let stats2: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats2["events"], 3000);
    assert_eq!(stats2["profiles"], 50);
    assert_eq!(stats2["column_bytes"], stats["column_bytes"]);
}

#[test]
fn bad_rows_are_listed_with_file_and_line_and_good_rows_kept() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mixed.ndjson");
    std::fs::write(
        &file,
        "{\"user\":\"u1\",\"event\":\"a\",\"time\":1}\nnot json\n{\"user\":\"u1\",\"event\":\"b\",\"time\":\"soon\"}\n{\"user\":\"u2\",\"event\":\"a\",\"time\":2}\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let out = footprint()
        .args(["ingest", "--data"])
        .arg(&data)
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mixed.ndjson:2: not valid JSON"), "{err}");
    assert!(err.contains("mixed.ndjson:3: time \"soon\""), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("accepted 2 events, rejected 2 rows"));
}

#[test]
fn missing_file_and_bad_arguments_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let out = footprint()
        .args(["ingest", "--data"])
        .arg(dir.path().join("d"))
        .arg(dir.path().join("nope.ndjson"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open"));
    let out = footprint()
        .args([
            "gen",
            "--users",
            "10",
            "--events",
            "5",
            "--out",
            "/dev/null",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn bench_and_query_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(footprint()
        .args([
            "gen", "--users", "200", "--events", "20000", "--days", "30", "--data",
        ])
        .arg(&data));
    let queries = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/queries");
    let out = ok(footprint()
        .args(["bench", "--repeat", "1", "--json", "--data"])
        .arg(&data)
        .arg("--queries")
        .arg(&queries));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert!(rows.len() >= 5);
    assert!(rows.iter().all(|r| r["median_ms"].as_f64().unwrap() >= 0.0));
    let out = ok(footprint()
        .args(["query", "--data"])
        .arg(&data)
        .arg(queries.join("funnel_4step.json")));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["steps"].as_array().unwrap().len(), 4);
    assert!(r["steps"][0]["users"].as_u64().unwrap() > 100);
    // Export round trip through the CLI.
    let out = ok(footprint()
        .args(["export", "--data"])
        .arg(&data)
        .arg("--parquet")
        .arg(dir.path().join("pq")));
    assert!(String::from_utf8_lossy(&out.stdout).contains("exported 20000 events and 200 profiles"));
    // A bad query is an error with the path, exit status 1.
    let out = footprint()
        .args(["query", "--data"])
        .arg(&data)
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(br#"{"kind": "funnel", "steps": [{"event": "visit"}], "windw": 5}"#)?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("windw"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
