//! The `footprint` binary end to end: gen → ingest → stats, and bad input.

use std::process::Command;

fn footprint() -> Command {
    Command::new(env!("CARGO_BIN_EXE_footprint"))
}

#[test]
fn gen_ingest_stats() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    let data = dir.path().join("data");
    let out = footprint()
        .args([
            "gen", "--users", "50", "--events", "3000", "--days", "10", "--seed", "3", "--out",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = footprint()
        .args(["ingest", "--data"])
        .arg(&data)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    let out = footprint()
        .args([
            "gen", "--users", "50", "--events", "3000", "--days", "10", "--seed", "3", "--data",
        ])
        .arg(&data2)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
