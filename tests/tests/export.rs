//! The partitioned, incremental Parquet export (issue 19, item 5), read
//! back with the `parquet` crate: every stored event exactly once, in the
//! partition of its UTC day and user shard, files sorted by (user, time,
//! seq), a manifest that describes each file, and incremental runs that add
//! exactly the events that arrived since — late ones with old times, ties
//! in time and a compaction in between included — and nothing on a rerun.

use std::collections::BTreeMap;
use std::path::Path;

use footprint_engine::export::{ExportManifest, ExportOptions, ExportSummary, Partition};
use footprint_engine::{Engine, EngineOptions, Event, StoreOptions, Value};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;

const DAY: i64 = 86_400_000;
/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;
const SHARDS: u32 = 4;

fn open(dir: &Path) -> Engine {
    Engine::open(
        dir,
        EngineOptions {
            store: StoreOptions {
                shards: SHARDS,
                memtable_rows: 64,
                max_segments_per_shard: 2,
                ..Default::default()
            },
            background: false,
            ..Default::default()
        },
    )
    .unwrap()
}

/// `n` events numbered from `first` (prop `n`, the arrival order), over
/// ten days from `start`, several users at equal times.
fn events(first: i64, n: i64, start: i64) -> Vec<Event> {
    (first..first + n)
        .map(|i| {
            let mut props = vec![
                ("n".to_string(), Value::Int(i)),
                (
                    "utm_source".to_string(),
                    Value::Str(["baidu", "google", "直接\"访问\""][(i % 3) as usize].into()),
                ),
            ];
            if i % 4 == 0 {
                props.push(("amount".into(), Value::Float(i as f64 / 4.0)));
            }
            Event {
                user: format!("u{}", (i * 7) % 23),
                event: ["visit", "pay", "signup"][(i % 3) as usize].into(),
                // Coarse times: many (user, time) ties.
                time: start + ((i * 5) % 40) * (DAY / 4),
                props,
            }
        })
        .collect()
}

/// A row as exported, with the file it is in.
#[derive(Debug, Clone)]
struct Row {
    user: String,
    event: String,
    time: i64,
    seq: i64,
    props: serde_json::Value,
}

fn utc_date(t: i64) -> String {
    let (y, m, d) = footprint_engine::query::time::civil(t.div_euclid(DAY));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Every row of the export at `out`, checking each file against its
/// manifest entry: partition values, rows, times, users, bytes, order.
fn read_export(engine: &Engine, out: &Path) -> (ExportManifest, Vec<Row>) {
    let man = ExportManifest::load(out).unwrap().expect("a manifest");
    let mut all = Vec::new();
    for f in &man.files {
        let path = out.join(&f.path);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            f.bytes,
            "{}",
            f.path
        );
        let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        let mut rows = Vec::new();
        for row in reader.get_row_iter(None).unwrap() {
            let row = row.unwrap();
            let mut r = Row {
                user: String::new(),
                event: String::new(),
                time: 0,
                seq: -1,
                props: serde_json::Value::Null,
            };
            for (name, field) in row.get_column_iter() {
                match (name.as_str(), field) {
                    ("user", Field::Str(u)) => r.user.clone_from(u),
                    ("event", Field::Str(e)) => r.event.clone_from(e),
                    ("time", Field::TimestampMillis(t)) => r.time = *t,
                    ("seq", Field::Long(s)) => r.seq = *s,
                    ("props", Field::Str(j)) => r.props = serde_json::from_str(j).unwrap(),
                    _ => {}
                }
            }
            rows.push(r);
        }
        assert_eq!(rows.len() as u64, f.rows, "{}", f.path);
        // Sorted by (user, time, seq).
        for w in rows.windows(2) {
            assert!(
                (&w[0].user, w[0].time, w[0].seq) < (&w[1].user, w[1].time, w[1].seq),
                "{}: {w:?}",
                f.path
            );
        }
        let shard = format!("{:03}", f.shard);
        assert_eq!(f.partition.get("shard"), Some(&shard));
        assert_eq!(
            f.path,
            format!(
                "events/date={}/shard={shard}/part-{:05}.parquet",
                f.partition["date"], f.run
            )
        );
        for r in &rows {
            assert_eq!(utc_date(r.time), f.partition["date"], "{}", f.path);
            let uid = engine.store().user_id(&r.user).unwrap();
            assert_eq!(uid % SHARDS, f.shard, "{}", f.path);
        }
        assert_eq!(f.min_time, rows.iter().map(|r| r.time).min().unwrap());
        assert_eq!(f.max_time, rows.iter().map(|r| r.time).max().unwrap());
        assert_eq!(f.min_user, rows[0].user);
        assert_eq!(f.max_user, rows[rows.len() - 1].user);
        all.extend(rows);
    }
    // No event file but those the manifest names.
    let mut on_disk = 0;
    let mut stack = vec![out.join("events")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                on_disk += 1;
            }
        }
    }
    assert_eq!(on_disk, man.files.len());
    (man, all)
}

/// Properties as text, keys sorted.
fn props_text<'a>(props: impl Iterator<Item = (&'a String, serde_json::Value)>) -> String {
    let sorted: BTreeMap<&String, String> = props.map(|(k, v)| (k, v.to_string())).collect();
    format!("{sorted:?}")
}

/// (user, event, time, props) of every stored event, sorted.
fn stored(engine: &Engine) -> Vec<(String, String, i64, String)> {
    let mut out = Vec::new();
    engine
        .store()
        .for_each_event(|e| {
            let props = props_text(e.props.iter().map(|(k, v)| (k, v.to_json())));
            out.push((e.user, e.event, e.time, props));
        })
        .unwrap();
    out.sort();
    out
}

fn exported(rows: &[Row]) -> Vec<(String, String, i64, String)> {
    let mut out: Vec<_> = rows
        .iter()
        .map(|r| {
            let props = r.props.as_object().expect("props is an object");
            let props = props_text(props.iter().map(|(k, v)| (k, v.clone())));
            (r.user.clone(), r.event.clone(), r.time, props)
        })
        .collect();
    out.sort();
    out
}

/// Over all files, each user's rows ordered by (time, seq) are in arrival
/// order (prop `n`) among equal times, and no two share (time, seq).
fn assert_arrival_order(rows: &[Row]) {
    let mut by_user: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        by_user.entry(&r.user).or_default().push(r);
    }
    for (user, mut rs) in by_user {
        rs.sort_by_key(|r| (r.time, r.seq));
        for w in rs.windows(2) {
            assert!(
                (w[0].time, w[0].seq) != (w[1].time, w[1].seq),
                "{user}: {w:?}"
            );
            if w[0].time == w[1].time {
                assert!(
                    w[0].props["n"].as_i64() < w[1].props["n"].as_i64(),
                    "{user}: {w:?}"
                );
            }
        }
    }
}

fn export(engine: &Engine, out: &Path, opts: &ExportOptions) -> ExportSummary {
    engine.export_parquet(out, opts, &|_| {}).unwrap()
}

#[test]
fn date_partitions_manifest_and_increments() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("export");
    let engine = open(&dir.path().join("db"));
    let first = events(0, 700, T0);
    engine.ingest(first[..400].to_vec()).unwrap();
    engine.flush().unwrap();
    engine.ingest(first[400..].to_vec()).unwrap();

    let s = export(&engine, &out, &ExportOptions::default());
    assert_eq!(
        (s.events, s.already, s.run, s.incremental),
        (700, 0, 0, false)
    );
    assert_eq!(s.partition, Partition::Date);
    let (man, rows) = read_export(&engine, &out);
    assert!(
        exported(&rows) == stored(&engine),
        "the export holds the stored events"
    );
    assert_arrival_order(&rows);
    // The first run numbers each user's events 0, 1, … in (time, arrival) order.
    let mut per_user: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for r in &rows {
        per_user.entry(&r.user).or_default().push(r.seq);
    }
    for (u, mut seqs) in per_user {
        seqs.sort_unstable();
        assert!(seqs.iter().enumerate().all(|(i, &s)| s == i as i64), "{u}");
    }
    // Per (date, shard): the stored events of that day and user shard.
    let mut want: BTreeMap<(String, u32), u64> = BTreeMap::new();
    for e in &first {
        let shard = engine.store().user_id(&e.user).unwrap() % SHARDS;
        *want.entry((utc_date(e.time), shard)).or_default() += 1;
    }
    let got: BTreeMap<(String, u32), u64> = man
        .files
        .iter()
        .map(|f| ((f.partition["date"].clone(), f.shard), f.rows))
        .collect();
    assert_eq!(got, want);
    assert_eq!(man.files.len(), want.len());
    assert_eq!(
        (man.format.as_str(), man.version),
        ("footprint-parquet-export", 1)
    );
    assert_eq!(
        (man.partition, man.shards, man.runs),
        (Partition::Date, SHARDS, 1)
    );
    assert_eq!(man.watermark.events, 700);
    assert_eq!(man.watermark.shard_events.iter().sum::<u64>(), 700);
    assert_eq!(man.watermark.max_time, first.iter().map(|e| e.time).max());
    let cols: Vec<(&str, &str, &str)> = man
        .columns
        .iter()
        .map(|c| (c.column.as_str(), c.name.as_str(), c.ty.as_str()))
        .collect();
    assert_eq!(
        cols,
        [
            ("user", "user", "string"),
            ("event", "event", "string"),
            ("time", "time", "timestamp_ms"),
            ("seq", "seq", "int64"),
            ("props", "props", "json"),
            ("p0", "amount", "double"),
            ("p1", "n", "int64"),
            ("p2", "utm_source", "string"),
        ]
    );
    assert_eq!(man.profiles.path, "profiles.parquet");

    // More events: late ones (days before everything exported), ties in
    // time with exported events, a new property; and a compaction that
    // merges exported and new rows into one segment per shard.
    let mut more = events(700, 300, T0);
    more.extend(events(1000, 50, T0 - 3 * DAY));
    for e in more.iter_mut().step_by(10) {
        e.props.push(("coupon".into(), Value::Str("x1".into())));
    }
    engine.ingest(more[..200].to_vec()).unwrap();
    engine.flush().unwrap();
    engine.ingest(more[200..].to_vec()).unwrap();
    engine.store().compact_all().unwrap();

    let s = export(&engine, &out, &ExportOptions::default());
    assert_eq!(
        (s.events, s.already, s.run, s.incremental),
        (350, 700, 1, true)
    );
    let (man2, rows2) = read_export(&engine, &out);
    assert!(
        exported(&rows2) == stored(&engine),
        "exactly the new events were added"
    );
    assert_arrival_order(&rows2);
    assert_eq!((man2.runs, man2.watermark.events), (2, 1050));
    // Earlier files are untouched; the new ones are part-00001.
    assert!(man.files.iter().all(|f| man2.files.contains(f)));
    let new: Vec<_> = man2
        .files
        .iter()
        .filter(|f| !man.files.contains(f))
        .collect();
    assert!(new
        .iter()
        .all(|f| f.run == 1 && f.path.ends_with("part-00001.parquet")));
    assert_eq!(new.iter().map(|f| f.rows).sum::<u64>(), 350);
    assert!(new
        .iter()
        .any(|f| f.partition["date"] == utc_date(T0 - 3 * DAY)));
    // Columns keep their place; the new property comes last.
    assert_eq!(man2.columns[..man.columns.len()], man.columns[..]);
    let last = &man2.columns[man2.columns.len() - 1];
    assert_eq!((last.column.as_str(), last.name.as_str()), ("p3", "coupon"));

    // Nothing new: nothing added, the same files.
    let s = export(
        &engine,
        &out,
        &ExportOptions {
            since_last: true,
            ..Default::default()
        },
    );
    assert_eq!((s.events, s.already, s.run), (0, 1050, 2));
    let (man3, rows3) = read_export(&engine, &out);
    assert_eq!(man3.files, man2.files);
    assert_eq!(rows3.len(), 1050);
    assert_eq!(man3.runs, 3);
}

#[test]
fn the_shard_layout_is_still_available_and_appendable() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("export");
    let engine = open(&dir.path().join("db"));
    engine.ingest(events(0, 300, T0)).unwrap();
    let by_shard = ExportOptions {
        partition: Some(Partition::Shard),
        since_last: false,
    };
    assert_eq!(export(&engine, &out, &by_shard).events, 300);
    engine.ingest(events(300, 20, T0 - DAY)).unwrap();
    // The layout is the export's: no need to repeat it.
    assert_eq!(export(&engine, &out, &ExportOptions::default()).events, 20);
    let man = ExportManifest::load(&out).unwrap().unwrap();
    assert_eq!(man.partition, Partition::Shard);
    for f in &man.files {
        assert_eq!(
            f.path,
            format!("events/shard={:03}/part-{:05}.parquet", f.shard, f.run)
        );
        assert!(!f.partition.contains_key("date"));
    }
    assert_eq!(man.files.iter().map(|f| f.rows).sum::<u64>(), 320);
}

#[test]
fn clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir.path().join("db"));
    engine.ingest(events(0, 100, T0)).unwrap();
    let err = |out: &Path, opts: &ExportOptions| {
        engine
            .export_parquet(out, opts, &|_| {})
            .unwrap_err()
            .to_string()
    };

    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let e = err(&file, &ExportOptions::default());
    assert!(e.contains("a-file is not a directory"), "{e}");

    let empty = dir.path().join("empty");
    let e = err(
        &empty,
        &ExportOptions {
            since_last: true,
            ..Default::default()
        },
    );
    assert!(
        e.contains("--since last") && e.contains("manifest.json"),
        "{e}"
    );

    let out = dir.path().join("out");
    export(&engine, &out, &ExportOptions::default());
    let e = err(
        &out,
        &ExportOptions {
            partition: Some(Partition::Shard),
            since_last: false,
        },
    );
    assert!(e.contains("partitioned by date, not shard"), "{e}");

    // A leftover of an interrupted run is removed by the next.
    let leftover = out.join("events/date=2026-01-01/shard=000/part-00001.parquet");
    std::fs::create_dir_all(leftover.parent().unwrap()).unwrap();
    std::fs::write(&leftover, "partial").unwrap();
    export(&engine, &out, &ExportOptions::default());
    assert!(!leftover.exists());

    // Another store's export.
    let other = open(&dir.path().join("db2"));
    other
        .ingest(vec![Event {
            user: "someone else".into(),
            event: "visit".into(),
            time: T0,
            props: vec![],
        }])
        .unwrap();
    let e = other
        .export_parquet(&out, &ExportOptions::default(), &|_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("not made from it"), "{e}");

    // An export written before manifests, and manifests of another kind.
    let old = dir.path().join("old");
    std::fs::create_dir_all(old.join("events/shard=000")).unwrap();
    let e = err(&old, &ExportOptions::default());
    assert!(e.contains("without manifest.json"), "{e}");
    let manifest = out.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replacen("\"version\": 1", "\"version\": 99", 1),
    )
    .unwrap();
    let e = err(&out, &ExportOptions::default());
    assert!(
        e.contains("manifest.json") && e.contains("version 99"),
        "{e}"
    );
    std::fs::write(&manifest, "{\"format\": \"something\"}").unwrap();
    let e = err(&out, &ExportOptions::default());
    assert!(e.contains("not a Footprint export manifest"), "{e}");
}
