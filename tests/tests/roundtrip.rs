//! Property test: random event batches ingested across flushes,
//! compactions, bulk loads and reopens (switching between segment formats
//! 1 and 2, so shards mix both) read back exactly (the multiset of events
//! per user, each user's events in time order).

use footprint_engine::storage::SegmentFormat;
use footprint_engine::{Engine, EngineOptions, Event, StoreOptions, Value};
use footprint_tests::{all_events, assert_time_ordered, canon};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Ingest(Vec<Event>),
    Bulk(Vec<Event>),
    Flush,
    Compact,
    CompactAll,
    /// Reopen, writing new segments in format 1 (`true`) or 2.
    Reopen(bool),
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[a-c]{0,3}|[é漢\"\\\\]{1,2}".prop_map(Value::Str),
        any::<i64>().prop_map(Value::Int),
        (-1e6f64..1e6).prop_map(Value::Float),
        any::<bool>().prop_map(Value::Bool),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    (
        prop_oneof!["u[0-9]{1,2}", "用户[1-3]", Just("a b".to_string())],
        prop_oneof![Just("visit"), Just("signup"), Just("pay"), Just("登录")],
        prop_oneof![
            0i64..50,
            1_700_000_000_000i64..1_700_000_000_100,
            Just(253_402_300_799_999i64)
        ],
        proptest::collection::btree_map("[pq]|plan|amount|r[0-9]{2}", value(), 0..4),
    )
        .prop_map(|(user, name, time, props)| Event {
            user,
            event: name.to_string(),
            time,
            props: props.into_iter().collect(),
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec(event(), 1..40).prop_map(Op::Ingest),
        1 => proptest::collection::vec(event(), 1..40).prop_map(Op::Bulk),
        2 => Just(Op::Flush),
        1 => Just(Op::Compact),
        1 => Just(Op::CompactAll),
        1 => any::<bool>().prop_map(Op::Reopen),
    ]
}

fn opts() -> EngineOptions {
    opts_in(SegmentFormat::default())
}

fn opts_in(segment_format: SegmentFormat) -> EngineOptions {
    EngineOptions {
        store: StoreOptions {
            shards: 3,
            memtable_rows: 50,
            max_segments_per_shard: 2,
            segment_format,
            ..Default::default()
        },
        background: false,
        ..Default::default()
    }
}

/// Runs `ops` against a new engine in `dir`, adding every event written
/// to `model` (canonical form).
fn replay(
    dir: &std::path::Path,
    ops: Vec<Op>,
    model: &mut Vec<(String, i64, String, String)>,
) -> Engine {
    let mut engine = Engine::open(dir, opts()).unwrap();
    for op in ops {
        match op {
            Op::Ingest(evs) => {
                model.extend(evs.iter().map(canon));
                engine.ingest(evs).unwrap();
            }
            Op::Bulk(evs) => {
                model.extend(evs.iter().map(canon));
                let mut b = engine.store().bulk_load(7).unwrap();
                b.add(evs).unwrap();
                b.commit().unwrap();
            }
            Op::Flush => engine.flush().unwrap(),
            Op::Compact => {
                engine.compact().unwrap();
            }
            Op::CompactAll => {
                engine.store().compact_all().unwrap();
            }
            Op::Reopen(v1) => {
                drop(engine);
                let format = if v1 {
                    SegmentFormat::TimeOrder
                } else {
                    SegmentFormat::EventMajor
                };
                engine = Engine::open(dir, opts_in(format)).unwrap();
            }
        }
    }
    engine
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]
    #[test]
    fn events_read_back_exactly(ops in proptest::collection::vec(op(), 1..25)) {
        let dir = tempfile::tempdir().unwrap();
        let mut model = Vec::new();
        let engine = replay(dir.path(), ops, &mut model);
        model.sort();
        prop_assert_eq!(all_events(&engine), model.clone());
        assert_time_ordered(&engine);
        drop(engine);
        let engine = Engine::open(dir.path(), opts()).unwrap();
        prop_assert_eq!(all_events(&engine), model);
    }
}

type Row = (u32, Option<i64>, u32, Option<Value>);

/// What one shard yields for `spec`, time left out (`None`) when the scan
/// skipped times.
fn scan_rows(
    shard: &footprint_engine::storage::ShardSnapshot,
    spec: &footprint_engine::storage::ScanSpec,
) -> Vec<Row> {
    let mut out = Vec::new();
    shard
        .scan(spec, |u| {
            if let Some(runs) = u.runs {
                // Per-event runs, each ascending; merged by time (rows of
                // different events at one time in event order, which the
                // caller compares order-free).
                let mut rows: Vec<(i64, u32)> = Vec::new();
                for (ev, times) in runs.iter() {
                    assert!(times.windows(2).all(|w| w[0] <= w[1]));
                    rows.extend(times.iter().map(|&t| (t, ev)));
                }
                rows.sort_unstable();
                out.extend(rows.into_iter().map(|(t, ev)| (u.uid, Some(t), ev, None)));
                return;
            }
            for i in 0..u.len() {
                let t = u.times.get(i).copied();
                out.push((u.uid, t, u.events[i], u.prop(0, i).cloned()));
            }
        })
        .unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 60, ..ProptestConfig::default() })]
    /// Over segments, several segments and memtable rows, a scan restricted
    /// to some users, a time range and some events (with or without times)
    /// yields exactly the wanted rows of the full scan, in order; rows of
    /// other events may remain (memtable rows are not filtered) but only
    /// rows the full scan has.
    #[test]
    fn restricted_scans_match_filtered_full_scans(
        ops in proptest::collection::vec(op(), 1..12),
        user_mask in any::<u64>(),
        event_mask in 0u8..16,
        range in prop_oneof![Just(None), (0i64..60, 1i64..60).prop_map(|(f, l)| Some((f, f + l)))],
        skip_times in any::<bool>(),
        with_users in any::<bool>(),
        runs in any::<bool>(),
    ) {
        use footprint_engine::storage::ScanSpec;
        let dir = tempfile::tempdir().unwrap();
        let engine = replay(dir.path(), ops, &mut Vec::new());
        let store = engine.store();
        let names = ["visit", "signup", "pay", "登录"];
        let mut want = vec![false; 8];
        for (k, name) in names.iter().enumerate() {
            if let Some(id) = store.event_id(name) {
                if event_mask >> k & 1 == 1 && (id as usize) < want.len() {
                    want[id as usize] = true;
                }
            }
        }
        let users: roaring::RoaringBitmap = (0..64u32).filter(|u| user_mask >> u & 1 == 1).collect();
        // Runs carry no properties.
        let props: Vec<u32> = store.prop_id("plan").into_iter().filter(|_| !runs).collect();
        let snap = store.snapshot();
        for shard in &snap.shards {
            let full = scan_rows(shard, &ScanSpec { props: props.clone(), ..ScanSpec::default() });
            let spec = ScanSpec {
                range,
                props: props.clone(),
                users: with_users.then(|| users.clone()),
                skip: None,
                events: Some(want.clone()),
                skip_times,
                runs,
                origins: false,
            };
            let got = scan_rows(shard, &spec);
            let visible: Vec<&Row> = full
                .iter()
                .filter(|r| !with_users || users.contains(r.0))
                .filter(|r| range.is_none_or(|(f, t)| r.1.is_some_and(|x| x >= f && x < t)))
                .collect();
            let same = |a: &Row, b: &Row| a.0 == b.0 && a.2 == b.2 && a.3 == b.3 && (a.1.is_none() || a.1 == b.1);
            // Without times a user's rows may come in any order: compare
            // them sorted.
            let timeless = got.iter().any(|r| r.1.is_none());
            let key = |r: &&Row| (r.0, r.2, format!("{:?}", r.3));
            let mut got = got.clone();
            let mut visible = visible;
            if timeless {
                got.sort_by_key(|r| (r.0, r.2, format!("{:?}", r.3)));
                visible.sort_by_key(key);
            } else if runs {
                // Runs leave the order of equal times across events open.
                got.sort_by_key(|r| (r.0, r.1, r.2));
                visible.sort_by_key(|r| (r.0, r.1, r.2));
            }
            // Wanted rows: exactly those of the full scan.
            let got_wanted: Vec<&Row> = got.iter().filter(|r| want[r.2 as usize]).collect();
            let exp_wanted: Vec<&Row> = visible.iter().copied().filter(|r| want[r.2 as usize]).collect();
            prop_assert_eq!(got_wanted.len(), exp_wanted.len());
            for (a, b) in got_wanted.iter().zip(&exp_wanted) {
                prop_assert!(same(a, b), "{:?} vs {:?}", a, b);
            }
            // Everything else is a row of the full scan, in its order.
            let mut it = visible.iter();
            for r in &got {
                prop_assert!(it.any(|v| same(r, v)), "{:?} is not in the full scan", r);
            }
            // Times are skipped only when asked, over all time.
            if timeless {
                prop_assert!(skip_times && range.is_none());
            }
        }
    }
}

#[test]
fn abandoned_bulk_load_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Engine::open(dir.path(), opts()).unwrap();
        engine
            .ingest(vec![Event {
                user: "kept".into(),
                event: "a".into(),
                time: 1,
                props: vec![],
            }])
            .unwrap();
        let mut b = engine.store().bulk_load(2).unwrap();
        for i in 0..10 {
            b.add(vec![Event {
                user: format!("lost{i}"),
                event: "a".into(),
                time: i,
                props: vec![],
            }])
            .unwrap();
        }
        // dropped without commit: as if the process died mid-load
    }
    let engine = Engine::open(dir.path(), opts()).unwrap();
    assert!(!engine.open_report().removed_leftovers.is_empty());
    let all = all_events(&engine);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0, "kept");
}

#[test]
fn reopening_without_writes_leaves_no_empty_logs_behind() {
    let dir = tempfile::tempdir().unwrap();
    let ev = |u: &str| Event {
        user: u.into(),
        event: "a".into(),
        time: 5,
        props: vec![],
    };
    {
        let engine = Engine::open(dir.path(), opts()).unwrap();
        engine.ingest(vec![ev("in-the-log")]).unwrap();
    }
    for _ in 0..5 {
        let engine = Engine::open(dir.path(), opts()).unwrap();
        assert_eq!(all_events(&engine).len(), 1);
    }
    // The log holding the unflushed event stays; opening creates no log
    // (the first write does), so there is nothing else.
    let logs = std::fs::read_dir(dir.path().join("wal")).unwrap().count();
    assert_eq!(logs, 1, "one log with the event and no fresh one");
    let engine = Engine::open(dir.path(), opts()).unwrap();
    engine.ingest(vec![ev("second")]).unwrap();
    drop(engine);
    let engine = Engine::open(dir.path(), opts()).unwrap();
    assert_eq!(all_events(&engine).len(), 2);
}

#[test]
fn profiles_and_aliases_survive_reopen() {
    use footprint_engine::{Alias, ProfileOp, ProfileUpdate};
    let dir = tempfile::tempdir().unwrap();
    let up = |op, k: &str, v| ProfileUpdate {
        user: "u1".into(),
        op,
        props: vec![(k.into(), v)],
    };
    {
        let engine = Engine::open(dir.path(), opts()).unwrap();
        engine
            .upsert_profiles(vec![up(ProfileOp::Set, "plan", Value::Str("pro".into()))])
            .unwrap();
        engine
            .upsert_profiles(vec![up(ProfileOp::Add, "logins", Value::Int(2))])
            .unwrap();
        engine.flush().unwrap();
        // Replayed from the WAL after the snapshot: `add` must not double-count.
        engine
            .upsert_profiles(vec![up(ProfileOp::Add, "logins", Value::Int(3))])
            .unwrap();
        engine
            .alias(vec![Alias {
                anonymous: "cookie-9".into(),
                known: "u1".into(),
            }])
            .unwrap();
    }
    for _ in 0..2 {
        let engine = Engine::open(dir.path(), opts()).unwrap();
        let p = engine.store().profiles();
        assert_eq!(p.users["u1"]["plan"], Value::Str("pro".into()));
        assert_eq!(p.users["u1"]["logins"], Value::Int(5));
        assert_eq!(p.aliases["cookie-9"], "u1");
        engine.close().unwrap();
    }
}

/// Scans restricted to a subset of users (which skip whole blocks without
/// decoding them), to time ranges and to some events see exactly what a
/// full scan sees.
#[test]
fn pruned_and_ranged_scans_match_full_scans() {
    use footprint_engine::storage::ScanSpec;
    use roaring::RoaringBitmap;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), opts()).unwrap();
    let mut seed = 7u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..3 {
        let evs: Vec<Event> = (0..6000)
            .map(|_| Event {
                user: format!("u{}", next() % 300),
                event: ["a", "b", "c"][(next() % 3) as usize].into(),
                time: 1_000_000 + (next() % 5_000_000) as i64,
                props: vec![("r".into(), Value::Int(round))],
            })
            .collect();
        let mut b = engine.store().bulk_load(1 << 20).unwrap();
        b.add(evs).unwrap();
        b.commit().unwrap();
    }
    let snap = engine.store().snapshot();
    let collect = |spec: &ScanSpec| {
        let mut out = Vec::new();
        for sh in &snap.shards {
            sh.scan(spec, |u| {
                for i in 0..u.len() {
                    out.push((u.uid, u.times[i], u.events[i], u.prop(0, i).cloned()));
                }
            })
            .unwrap();
        }
        out
    };
    let pid = engine.store().prop_id("r").unwrap();
    let full = collect(&ScanSpec {
        range: None,
        props: vec![pid],
        users: None,
        skip: None,
        events: None,
        skip_times: false,
        runs: false,
        origins: false,
    });
    let ids: Vec<u32> = ["a", "b", "c"]
        .iter()
        .map(|e| engine.store().event_id(e).unwrap())
        .collect();
    assert_eq!(full.len(), 18_000);
    for trial in 0..20u32 {
        let mut users = RoaringBitmap::new();
        for u in 0..300u32 {
            if (u * 7 + trial * 13) % (2 + trial % 9) == 0 {
                users.insert(u);
            }
        }
        let range = if trial % 3 == 0 {
            None
        } else {
            Some((2_000_000 + i64::from(trial) * 1000, 4_000_000))
        };
        // Every segment row of an event outside the set is left out (all
        // rows are in segments here).
        let events = match trial % 4 {
            0 => None,
            k => {
                let mut want = vec![false; 3];
                want[ids[k as usize - 1] as usize] = true;
                if trial % 8 == 3 {
                    want[ids[0] as usize] = true;
                }
                Some(want)
            }
        };
        let got = collect(&ScanSpec {
            range,
            props: vec![pid],
            users: Some(users.clone()),
            skip: None,
            events: events.clone(),
            skip_times: false,
            runs: false,
            origins: false,
        });
        let want: Vec<_> = full
            .iter()
            .filter(|r| users.contains(r.0) && range.is_none_or(|(f, t)| r.1 >= f && r.1 < t))
            .filter(|r| events.as_ref().is_none_or(|w| w[r.2 as usize]))
            .cloned()
            .collect();
        assert_eq!(got, want, "trial {trial}");
    }
}

/// Parquet export writes every event once, with its properties, readable by
/// a standard Parquet reader.
#[test]
fn parquet_export_roundtrip() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), opts()).unwrap();
    let mut evs = Vec::new();
    for i in 0..500i64 {
        let mut props = vec![(
            "utm_source".to_string(),
            Value::Str(["baidu", "google"][(i % 2) as usize].into()),
        )];
        if i % 5 == 0 {
            props.push(("amount".into(), Value::Float(i as f64 / 2.0)));
        }
        if i % 7 == 0 {
            props.push((
                "mixed".into(),
                if i % 2 == 0 {
                    Value::Int(i)
                } else {
                    Value::Str("x".into())
                },
            ));
        }
        evs.push(Event {
            user: format!("用户{}", i % 37),
            event: ["visit", "pay"][(i % 2) as usize].into(),
            time: 1_700_000_000_000 + i,
            props,
        });
    }
    engine.ingest(evs[..300].to_vec()).unwrap();
    engine.flush().unwrap();
    engine.ingest(evs[300..].to_vec()).unwrap();
    let out = dir.path().join("export");
    let layout = footprint_engine::export::ExportOptions {
        partition: Some(footprint_engine::export::Partition::Shard),
        since_last: false,
    };
    let s = engine.export_parquet(&out, &layout, &|_| {}).unwrap();
    assert_eq!(s.events, 500);
    assert_eq!(
        s.typed_props,
        vec!["amount".to_string(), "utm_source".to_string()]
    );
    let mut rows = 0;
    let mut amount_sum = 0.0;
    // (user, seq, time) of every row, to check `seq` below.
    let mut order: Vec<(String, i64, i64)> = Vec::new();
    for shard in 0..3 {
        let path = out
            .join("events")
            .join(format!("shard={shard:03}"))
            .join("part-00000.parquet");
        let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        for row in reader.get_row_iter(None).unwrap() {
            let row = row.unwrap();
            rows += 1;
            let (mut user, mut seq, mut time) = (String::new(), -1, -1);
            for (name, field) in row.get_column_iter() {
                match (name.as_str(), field) {
                    ("user", parquet::record::Field::Str(u)) => user.clone_from(u),
                    ("seq", parquet::record::Field::Long(x)) => seq = *x,
                    ("time", parquet::record::Field::TimestampMillis(t)) => time = *t,
                    _ => {}
                }
                if name == "p0" {
                    if let parquet::record::Field::Double(x) = field {
                        amount_sum += x;
                    }
                }
                if name == "props" {
                    if let parquet::record::Field::Str(j) = field {
                        let v: serde_json::Value = serde_json::from_str(j).unwrap();
                        assert!(v["utm_source"].is_string());
                    }
                }
            }
            order.push((user, seq, time));
        }
    }
    assert_eq!(rows, 500);
    // `seq` numbers each user's events 0, 1, … in time order.
    order.sort();
    for w in order.windows(2) {
        if w[0].0 == w[1].0 {
            assert_eq!(w[1].1, w[0].1 + 1, "{w:?}");
            assert!(w[1].2 >= w[0].2, "{w:?}");
        } else {
            assert_eq!(w[1].1, 0, "{w:?}");
        }
    }
    assert_eq!(order[0].1, 0);
    let want: f64 = (0..500)
        .filter(|i| i % 5 == 0)
        .map(|i| i as f64 / 2.0)
        .sum();
    assert!((amount_sum - want).abs() < 1e-9);
    assert!(out.join("profiles.parquet").exists());
}

/// Property columns are decoded in chunks of 65,536 rows: scans that skip
/// users across chunk boundaries still read every property right.
#[test]
fn property_chunks_across_skips() {
    use footprint_engine::storage::ScanSpec;
    use roaring::RoaringBitmap;
    let dir = tempfile::tempdir().unwrap();
    let o = EngineOptions {
        store: StoreOptions {
            shards: 1,
            memtable_rows: 1 << 30,
            max_segments_per_shard: 8,
            ..StoreOptions::default()
        },
        background: false,
        ..Default::default()
    };
    let engine = Engine::open(dir.path(), o).unwrap();
    let evs: Vec<Event> = (0..200_000i64)
        .map(|i| Event {
            user: format!("u{:05}", i % 1000),
            event: "e".into(),
            time: i,
            props: if i % 3 == 0 {
                vec![]
            } else {
                vec![("n".into(), Value::Int(i))]
            },
        })
        .collect();
    let mut b = engine.store().bulk_load(1 << 30).unwrap();
    b.add(evs).unwrap();
    b.commit().unwrap();
    let pid = engine.store().prop_id("n").unwrap();
    let snap = engine.store().snapshot();
    // A scan that never reads times skips decoding them (one segment, all
    // time) and still sees every row and property.
    let rows = |skip_times: bool| {
        let spec = ScanSpec {
            props: vec![pid],
            users: Some((0..1000u32).step_by(3).collect()),
            skip_times,
            ..ScanSpec::default()
        };
        let mut out = Vec::new();
        snap.shards[0]
            .scan(&spec, |u| {
                assert_eq!(u.times.is_empty(), skip_times);
                for i in 0..u.len() {
                    out.push((u.uid, u.events[i], u.prop(0, i).cloned()));
                }
            })
            .unwrap();
        out
    };
    let with_times = rows(false);
    assert_eq!(with_times.len(), 334 * 200);
    assert_eq!(rows(true), with_times);
    for (step, range) in [
        (1u32, None),
        (97, None),
        (250, Some((50_000, 150_000))),
        (999, None),
    ] {
        let users: RoaringBitmap = (0..1000u32).step_by(step as usize).collect();
        let spec = ScanSpec {
            range,
            props: vec![pid],
            users: Some(users),
            skip: None,
            events: (step % 2 == 1).then(|| vec![true]),
            skip_times: false,
            runs: false,
            origins: false,
        };
        let mut seen = 0;
        snap.shards[0]
            .scan(&spec, |u| {
                for i in 0..u.len() {
                    let t = u.times[i];
                    let want = if t % 3 == 0 {
                        None
                    } else {
                        Some(Value::Int(t))
                    };
                    assert_eq!(u.prop(0, i).cloned(), want, "time {t}");
                    seen += 1;
                }
            })
            .unwrap();
        assert!(seen > 0);
    }
}
