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

/// Rows `u{i}`, one a line, with a byte that is not UTF-8 in row `bad`.
fn rows_with_a_bad_byte(n: usize, bad: usize, csv: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if csv {
        out.extend_from_slice(b"user,event,time,plan\n");
    }
    for i in 1..=n {
        let plan: &[u8] = if i == bad { b"pr\xffo" } else { b"pro" };
        if csv {
            out.extend_from_slice(format!("u{i},visit,{i},").as_bytes());
            out.extend_from_slice(plan);
        } else {
            out.extend_from_slice(
                format!(
                    "{{\"user\":\"u{i}\",\"event\":\"visit\",\"time\":{i},\"props\":{{\"plan\":\""
                )
                .as_bytes(),
            );
            out.extend_from_slice(plan);
            out.extend_from_slice(b"\"}}");
        }
        out.push(b'\n');
    }
    out
}

fn ingest(data: &std::path::Path, args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    use std::io::Write;
    let mut child = footprint()
        .args(["ingest", "--no-compact", "--data"])
        .arg(data)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(b) = stdin {
        input.write_all(b).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Issue 11, defect 3: one byte that is not UTF-8 rejected the whole file.
/// Now it costs its row (named by file and line), in NDJSON, a JSON array
/// and CSV, from a file or stdin, in the first read chunk or a later one.
#[test]
fn a_line_that_is_not_utf8_is_rejected_and_the_rest_loaded() {
    let dir = tempfile::tempdir().unwrap();
    // 100k rows are over 4 MiB, so the loader reads them in several
    // chunks; the bad row sits in a later one.
    let n = 100_000;
    let bad = 90_000;
    let ndjson = rows_with_a_bad_byte(n, bad, false);
    assert!(ndjson.len() > 5 << 20);
    let csv = rows_with_a_bad_byte(n, bad, true);
    // A JSON array of the same rows, one element a line after the `[`.
    let mut array = b"[\n".to_vec();
    for (i, row) in ndjson
        .split(|&b| b == b'\n')
        .filter(|r| !r.is_empty())
        .enumerate()
    {
        if i > 0 {
            array.extend_from_slice(b",\n");
        }
        array.extend_from_slice(row);
    }
    array.extend_from_slice(b"\n]\n");
    std::fs::write(dir.path().join("e.ndjson"), &ndjson).unwrap();
    std::fs::write(dir.path().join("e.csv"), &csv).unwrap();
    std::fs::write(dir.path().join("e.json"), &array).unwrap();
    for (case, file, stdin, want) in [
        (
            "ndjson",
            "e.ndjson",
            None,
            format!("e.ndjson:{bad}: not valid UTF-8"),
        ),
        (
            "csv",
            "e.csv",
            None,
            format!(
                "e.csv:{}: unreadable CSV row: field 4 is not valid UTF-8",
                bad + 1
            ),
        ),
        (
            "array",
            "e.json",
            None,
            format!("e.json:{bad}: array element {}: not valid UTF-8", bad - 1),
        ),
        (
            "stdin",
            "-",
            Some(&ndjson),
            format!("<stdin>:{bad}: not valid UTF-8"),
        ),
        (
            "stdin csv",
            "-",
            Some(&csv),
            format!("<stdin>:{}: unreadable CSV row", bad + 1),
        ),
    ] {
        let data = dir.path().join(format!("data-{case}"));
        let path = dir.path().join(file);
        let arg = if file == "-" {
            "-"
        } else {
            path.to_str().unwrap()
        };
        let (code, out, err) = ingest(&data, &[arg], stdin.map(|v| v.as_slice()));
        assert_eq!(code, 2, "{case}: {err}");
        assert!(err.contains(&want), "{case}: wanted {want:?} in {err}");
        assert!(
            out.contains(&format!("accepted {} events, rejected 1 rows", n - 1)),
            "{case}: {out}"
        );
        let out = ok(footprint().args(["stats", "--json", "--data"]).arg(&data));
        let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(stats["events"], n - 1, "{case}");
    }
}

/// Issue 11, defect 7a: every rejected row's message was kept until its
/// chunk was loaded (16 MiB of bad rows: 430 MB). The CLI shows the first
/// --show-errors, counts the rest, and keeps at most 100 per chunk.
#[test]
fn rejected_rows_are_counted_and_the_first_shown() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ones.ndjson");
    let n = 8usize << 20;
    let mut body = "{\"user\":\"u\",\"event\":\"a\",\"time\":1}\n".to_owned();
    body.push_str(&"1\n".repeat(n));
    std::fs::write(&file, body).unwrap();
    let mut child = footprint()
        .args(["ingest", "--no-compact", "--data"])
        .arg(dir.path().join("d"))
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Its peak memory, read until it exits (the peak only grows).
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    while child.try_wait().unwrap().is_none() {
        if let Some(kb) = std::fs::read_to_string(&status).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        }) {
            peak_kb = kb;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.contains(&format!("accepted 1 events, rejected {n} rows")),
        "{out}"
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("rejected ")).count(),
        20,
        "{err}"
    );
    assert!(
        err.contains(&format!("… and {} more rejected rows", n - 20)),
        "{err}"
    );
    assert!(
        peak_kb > 0 && peak_kb < 150 << 10,
        "peak RSS {} MB",
        peak_kb >> 10
    );
    let (_, out, _) = ingest(
        &dir.path().join("d2"),
        &["--json", "--show-errors", "5", file.to_str().unwrap()],
        None,
    );
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["rejected"], n);
    assert_eq!(summary["errors"].as_array().unwrap().len(), 5);
    assert_eq!(
        summary["errors"][4],
        format!("{}:6: expected a JSON object, got a number", file.display())
    );
}

/// A single NDJSON row longer than the read chunk (4 MiB) used to stop the
/// whole load; it is rejected with its line and the other rows kept.
#[test]
fn an_overlong_row_is_rejected_and_the_rest_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("long.ndjson");
    let good = "{\"user\":\"u\",\"event\":\"a\",\"time\":1}\n";
    let long = format!(
        "{{\"user\":\"u\",\"event\":\"a\",\"time\":1,\"props\":{{\"x\":\"{}\"}}}}\n",
        "y".repeat(9 << 20)
    );
    std::fs::write(&file, format!("{good}{good}{long}{good}")).unwrap();
    let (code, out, err) = ingest(&dir.path().join("d"), &[file.to_str().unwrap()], None);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("long.ndjson:3: longer than 4 MiB; skipped"),
        "{err}"
    );
    assert!(out.contains("accepted 3 events, rejected 1 rows"), "{out}");
}

#[test]
fn property_names_past_max_props_are_left_out_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wide.ndjson");
    let data = dir.path().join("data");
    let rows: String = (0..50)
        .map(|i| {
            format!(
                "{{\"user\": \"u{i}\", \"event\": \"e\", \"time\": 1767225600000, \"props\": {{\"plan\": \"pro\", \"p{i}\": 1}}}}\n"
            )
        })
        .collect();
    std::fs::write(&file, rows).unwrap();
    let out = ok(footprint()
        .args(["--max-props", "10", "ingest", "--data"])
        .arg(&data)
        .arg(&file));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: 41 property values were not stored") && err.contains("limit of 10"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("accepted 50 events"));
    let out = ok(footprint().args(["stats", "--json", "--data"]).arg(&data));
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["events"], 50);
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(footprint()
        .args(["gen", "--users", "20", "--events", "500", "--data"])
        .arg(&data));
    // `footprint stats | true`: the reader is gone before the first line.
    let mut child = footprint()
        .args(["stats", "--data"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "stderr: {err}");
    assert_eq!(out.status.code(), Some(141), "stderr: {err}");
}

/// `footprint sql`: prints the SQL with or without a data directory,
/// checks names against one as `query` does, and refuses what SQL cannot
/// express with the field's path.
#[test]
fn sql_translates_and_refuses_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("q.json");
    std::fs::write(
        &q,
        r#"{"kind":"retention","start":{"event":"signup"},"return":{"event":"login","where":{"prop":"plan","op":"eq","value":"pro"}},"unit":"week","periods":4,"timezone":"Asia/Shanghai"}"#,
    )
    .unwrap();
    let out = ok(footprint()
        .args(["sql", "--dialect", "clickhouse", "--table", "ev_parquet"])
        .arg(&q));
    let sql = String::from_utf8(out.stdout).unwrap();
    assert!(sql.contains("FROM ev_parquet"), "{sql}");
    assert!(
        sql.contains("toMonday(toDate(fromUnixTimestamp64Milli(ts, 'Asia/Shanghai')))"),
        "{sql}"
    );
    assert!(sql.contains("JSONType(props, 'plan') = 'String'"), "{sql}");
    // Against a data directory, a misspelt event is the query's error.
    let data = dir.path().join("d");
    let ev = dir.path().join("ev.ndjson");
    std::fs::write(&ev, "{\"user\":\"u1\",\"event\":\"signup\",\"time\":1}\n").unwrap();
    ok(footprint().args(["ingest", "--data"]).arg(&data).arg(&ev));
    let fail = |query: &str, data: Option<&std::path::Path>| {
        std::fs::write(&q, query).unwrap();
        let mut cmd = footprint();
        cmd.arg("sql");
        if let Some(d) = data {
            cmd.arg("--data").arg(d);
        }
        let out = cmd.arg(&q).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = fail(
        r#"{"kind":"funnel","steps":[{"event":"sigup"}],"window":1}"#,
        Some(&data),
    );
    assert!(
        err.contains("steps[0].event: unknown event \"sigup\""),
        "{err}"
    );
    let err = fail(
        r#"{"kind":"funnel","steps":[{"event":"a"},{"event":"b"}],"window":1,"hold":[{"event_prop":"x"}]}"#,
        None,
    );
    assert!(err.contains("hold: not translatable to SQL"), "{err}");
    // A trend's buckets without a time_range follow the stored data.
    let err = fail(
        r#"{"kind":"funnel","steps":[{"event":"a"}],"window":1,"trend":{"interval":"day"}}"#,
        None,
    );
    assert!(err.contains("trend: not translatable to SQL"), "{err}");
    let err = fail(r#"{"kind":"users"}"#, None);
    assert!(err.contains("kind: not translatable to SQL"), "{err}");
}

/// A one-request HTTP server answering `status` with `body` (a ClickHouse
/// that refuses); its URL.
fn answer_once(status: &str, body: &'static str) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let status = status.to_owned();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        // Headers, then the body they announce.
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            req.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&req).to_lowercase();
        let head = text.find("\r\n\r\n").unwrap() + 4;
        let len: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        while req.len() < head + len {
            let n = s.read(&mut buf).unwrap();
            req.extend_from_slice(&buf[..n]);
        }
        let _ = write!(
            s,
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    });
    url
}

/// `sql --ddl clickhouse`, and `query --clickhouse` / `load-clickhouse`
/// failing clearly: no server, or ClickHouse's own error.
#[test]
fn clickhouse_ddl_and_client_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let ev = dir.path().join("ev.ndjson");
    std::fs::write(
        &ev,
        "{\"user\":\"u1\",\"event\":\"signup\",\"time\":1,\"props\":{\"plan\":\"pro\"}}\n",
    )
    .unwrap();
    ok(footprint().args(["ingest", "--data"]).arg(&data).arg(&ev));
    let out = ok(footprint()
        .args(["sql", "--ddl", "clickhouse", "--database", "fp", "--data"])
        .arg(&data));
    let ddl = String::from_utf8(out.stdout).unwrap();
    assert!(
        ddl.contains("CREATE TABLE IF NOT EXISTS `fp`.`events`\n("),
        "{ddl}"
    );
    assert!(ddl.contains("`plan` Nullable(String)"), "{ddl}");
    assert!(ddl.contains("ENGINE = MergeTree\n") && !ddl.contains("Distributed"));
    let q = dir.path().join("q.json");
    std::fs::write(
        &q,
        r#"{"kind":"funnel","steps":[{"event":"signup"}],"window":1}"#,
    )
    .unwrap();
    // Neither --data nor --clickhouse.
    let out = footprint().arg("query").arg(&q).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // Nothing listening.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    for args in [
        vec!["query", "--clickhouse", &closed, q.to_str().unwrap()],
        vec![
            "load-clickhouse",
            "--url",
            &closed,
            "--data",
            data.to_str().unwrap(),
        ],
    ] {
        let out = footprint().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("ClickHouse at {closed} cannot be reached")),
            "{err}"
        );
    }
    // ClickHouse's error: the status and its message.
    let msg = "Code: 60. DB::Exception: Unknown table expression identifier 'events'";
    let url = answer_once("404 Not Found", msg);
    let out = footprint()
        .args(["query", "--clickhouse", &url])
        .arg(&q)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("answered 404 Not Found: {msg}")),
        "{err}"
    );
}
