//! Every kind of malformed row gets a precise error with its line number;
//! the good rows of the same batch are stored.

use footprint_engine::{Engine, EngineOptions, Format};

fn engine(dir: &std::path::Path) -> Engine {
    Engine::open(
        dir,
        EngineOptions {
            background: false,
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn ndjson_batch_with_every_kind_of_bad_row() {
    let rows = [
        (
            r#"{"user":"u1","event":"visit","time":1767607200000}"#,
            None,
        ),
        (
            r#"{"user":"u1","event":"visit","time":1767607200000"#,
            Some("not valid JSON"),
        ),
        (r#"["u1","visit",1]"#, Some("expected a JSON object")),
        (r#"{"event":"visit","time":1}"#, Some("missing user")),
        (r#"{"user":"u2","time":1}"#, Some("missing event")),
        (r#"{"user":"u2","event":"visit"}"#, Some("missing time")),
        (
            r#"{"user":"u2","event":"visit","time":"next tuesday"}"#,
            Some("not RFC 3339"),
        ),
        (
            r#"{"user":"u2","event":"visit","time":"2026-01-05T10:00:00"}"#,
            Some("no UTC offset"),
        ),
        (
            r#"{"user":"u2","event":"visit","time":-1}"#,
            Some("out of range"),
        ),
        (
            r#"{"user":"u2","event":"visit","time":99999999999999999}"#,
            Some("out of range"),
        ),
        (
            r#"{"user":"","event":"visit","time":1}"#,
            Some("user is empty"),
        ),
        (
            r#"{"user":"u2","event":"","time":1}"#,
            Some("event is empty"),
        ),
        (
            r#"{"user":"u2","event":"visit","time":1,"props":[1]}"#,
            Some("properties must be a JSON object"),
        ),
        (
            r#"{"user":"u2","event":"visit","time":1,"prop":{}}"#,
            Some("unknown field \"prop\""),
        ),
        (
            r#"{"user":{"id":1},"event":"visit","time":1}"#,
            Some("user must be a string"),
        ),
        (
            r#"{"distinct_id":"d1","event":"visit","timestamp":"2026-01-05T10:00:00+08:00","properties":{"plan":"pro"}}"#,
            None,
        ),
        (
            r#"{"type":"identify","userId":"k1","traits":{}}"#,
            Some("not an event"),
        ),
        (
            r#"{"userId":"k1","event":"signup","timestamp":"2026-01-05T10:00:00.123Z"}"#,
            None,
        ),
        ("", None),
        (
            r#"{"user":"u3","event":"pay","time":"2026-01-05T10:00:00Z","props":{"amount":12.5,"plan":3,"x":null,"device":{"os":"ios"}}}"#,
            None,
        ),
    ];
    let text: String = rows.iter().map(|(r, _)| format!("{r}\n")).collect();
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let report = e.ingest_text(&text, Format::Auto).unwrap();
    let bad: Vec<(usize, &str)> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, (_, want))| want.map(|w| (i + 1, w)))
        .collect();
    assert_eq!(report.rejected, bad.len(), "{:#?}", report.errors);
    assert_eq!(report.accepted, 4);
    for ((line, want), err) in bad.iter().zip(&report.errors) {
        assert_eq!(err.line, *line, "{err:?}");
        assert!(
            err.message.contains(want),
            "line {line}: wanted {want:?}, got {:?}",
            err.message
        );
    }
    assert_eq!(e.stats().unwrap().events, 4);
}

#[test]
fn csv_with_bad_rows() {
    let text = "user,event,time,amount\nu1,pay,2026-01-05T10:00:00Z,12.5\nu2,pay\nu3,pay,yesterday,1\n,pay,1,2\nu4,\"pay\nnow\",5,3\nu5,visit,7,\n";
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let r = e.ingest_text(text, Format::Csv).unwrap();
    assert_eq!(r.accepted, 3, "{:?}", r.errors);
    let lines: Vec<usize> = r.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![3, 4, 5]);
    assert!(r.errors[0].message.contains("expected 4 CSV columns"));
    assert!(r.errors[1].message.contains("not RFC 3339"));
    assert!(r.errors[2].message.contains("user is empty"));
}

#[test]
fn json_array_batch() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let r = e
        .ingest_text(
            r#"[{"user":"a","event":"x","time":1},{"user":"a","time":2}]"#,
            Format::Auto,
        )
        .unwrap();
    assert_eq!((r.accepted, r.rejected), (1, 1));
    assert_eq!(r.errors[0].line, 2);
    let r = e.ingest_text("[{\"user\":", Format::Json).unwrap();
    assert_eq!(r.rejected, 1);
}
