//! ClickHouse as the scale-out target (issue 19): the DDL of the tables
//! that [`footprint_query::sql`] reads, and the rows a loader sends them.
//!
//! The events table has the columns of `footprint export --parquet`
//! (`user`, `event`, `time` DateTime64(3, 'UTC'), `seq`, `props` as JSON
//! text and one Nullable column per typed property, chosen by
//! [`crate::columns::typed_columns`]) plus `shard`: the Footprint shard
//! of the user. Footprint does not place users by a hash of their id but
//! by their dictionary id (`uid % shards`, uids given in arrival order),
//! which ClickHouse cannot compute from the id string; so the loader
//! writes the shard number into every row and the `Distributed` tables
//! shard by that column. Every event and the profile of a user thus live
//! on one ClickHouse shard, exactly as in Footprint.
//!
//! Tables are partitioned by month, not day: a loader streams users one
//! after another, so every insert block holds every day of the data set,
//! and day partitions would split each block into one part per day (past
//! `max_partitions_per_insert_block`, 100, for a data set longer than
//! 100 days); month partitions keep parts few and still prune time ranges.

use std::fmt::Write as _;

use footprint_storage::{Event, Store, Value};
use serde_json::{Map, Value as Json};

use crate::columns::{typed_columns, ColumnType};
use crate::Result;

/// The columns every events row has; a typed property of one of these
/// names is left to `props`.
pub const CORE_COLUMNS: [&str; 6] = ["user", "event", "time", "seq", "shard", "props"];

/// What [`ddl`] writes.
#[derive(Debug, Clone)]
pub struct DdlOptions {
    /// The cluster (`remote_servers`) name: replicated local tables and
    /// `Distributed` tables over them. `None`: plain MergeTree tables for
    /// one server.
    pub cluster: Option<String>,
    /// The database the tables go in.
    pub database: String,
}

impl Default for DdlOptions {
    fn default() -> Self {
        DdlOptions {
            cluster: None,
            database: "default".to_owned(),
        }
    }
}

/// An identifier, back-quoted.
pub fn ident(s: &str) -> String {
    format!("`{}`", s.replace('\\', "\\\\").replace('`', "\\`"))
}

/// A string literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The typed columns the tables carry: [`typed_columns`] less those named
/// like a core column.
pub fn table_columns(store: &Store) -> Result<Vec<(String, ColumnType)>> {
    let mut typed = typed_columns(store)?;
    typed.retain(|(n, _)| !CORE_COLUMNS.contains(&n.as_str()));
    Ok(typed)
}

/// The statements (separated by `;` and a blank line) creating the
/// events and profiles tables with `typed` property columns.
pub fn ddl(typed: &[(String, ColumnType)], opts: &DdlOptions) -> String {
    let db = &opts.database;
    let on = opts
        .cluster
        .as_ref()
        .map(|c| format!(" ON CLUSTER {}", ident(c)))
        .unwrap_or_default();
    let mut s = String::new();
    s.push_str("-- Footprint's events and profiles (footprint sql --ddl clickhouse).\n");
    match &opts.cluster {
        Some(c) => {
            let _ = writeln!(
                s,
                "-- Cluster {c}: each shard holds events_local and profiles_local\n\
                 -- (ReplicatedMergeTree, macros {{shard}} and {{replica}}), and events and\n\
                 -- profiles are Distributed tables over them, sharded by the column\n\
                 -- `shard`: Footprint's own shard of the user, written by\n\
                 -- footprint load-clickhouse (Footprint places users by dictionary id,\n\
                 -- not by a hash ClickHouse could compute). A cluster shard count that\n\
                 -- divides Footprint's (16 by default) balances the shards.\n\
                 -- All rows of a user and the user's profile live on one shard, so the\n\
                 -- per-user steps of every analysis are shard-local. Run the SQL of\n\
                 -- footprint sql --table events (or footprint query --clickhouse URL)\n\
                 -- against the Distributed tables with distributed_product_mode = 'local'\n\
                 -- (in the URL: ?distributed_product_mode=local): each shard then joins\n\
                 -- its own events to its own profiles on user (the one JOIN of a\n\
                 -- Distributed table in the translated SQL), and ClickHouse runs each\n\
                 -- per-user GROUP BY on the shards, no user's state merged from two.\n\
                 -- Queries of your own grouped by user (or by shard) may skip the merge\n\
                 -- on the initiator: distributed_group_by_no_merge = 1 (by user), or\n\
                 -- optimize_distributed_group_by_sharding_key = 1 (by shard). Not for\n\
                 -- the translated SQL: its outer steps combine users of all shards."
            );
        }
        None => s.push_str(
            "-- One server: MergeTree tables named as footprint query --clickhouse reads\n\
             -- them. For a cluster: footprint sql --ddl clickhouse --cluster NAME.\n",
        ),
    }
    s.push_str(
        "-- Partitioned by month: the loader sends users one after another, so each\n\
         -- insert block spans every day; day partitions would split it into a\n\
         -- part per day.\n\n",
    );
    let _ = writeln!(s, "CREATE DATABASE IF NOT EXISTS {}{on};\n", ident(db));
    let local = |t: &str| {
        if opts.cluster.is_some() {
            format!("{t}_local")
        } else {
            t.to_owned()
        }
    };
    let engine = |replacing: bool, table: &str| {
        let kind = if replacing {
            "ReplacingMergeTree"
        } else {
            "MergeTree"
        };
        if opts.cluster.is_some() {
            let path = format!("/clickhouse/tables/{{shard}}/{db}/{table}");
            format!("Replicated{kind}({}, '{{replica}}')", literal(&path))
        } else {
            kind.to_owned()
        }
    };
    let events = local("events");
    let _ = writeln!(
        s,
        "CREATE TABLE IF NOT EXISTS {}.{}{on}\n(",
        ident(db),
        ident(&events)
    );
    let mut cols = vec![
        "    `user` String".to_owned(),
        "    `event` String".to_owned(),
        "    `time` DateTime64(3, 'UTC')".to_owned(),
        "    `seq` UInt64".to_owned(),
        "    `shard` UInt32".to_owned(),
        "    `props` String".to_owned(),
    ];
    for (name, ty) in typed {
        let t = match ty {
            ColumnType::Str => "String",
            ColumnType::Int => "Int64",
            ColumnType::Float => "Float64",
            ColumnType::Bool => "Bool",
        };
        cols.push(format!("    {} Nullable({t})", ident(name)));
    }
    s.push_str(&cols.join(",\n"));
    let _ = writeln!(
        s,
        "\n)\nENGINE = {}\nPARTITION BY toYYYYMM(time)\nORDER BY (user, time, seq);\n",
        engine(false, &events)
    );
    let profiles = local("profiles");
    let _ = writeln!(
        s,
        "CREATE TABLE IF NOT EXISTS {}.{}{on}\n(\n    `user` String,\n    `shard` UInt32,\n    `props` String\n)\nENGINE = {}\nORDER BY user;",
        ident(db),
        ident(&profiles),
        engine(true, &profiles)
    );
    if let Some(c) = &opts.cluster {
        for t in ["events", "profiles"] {
            let _ = writeln!(
                s,
                "\nCREATE TABLE IF NOT EXISTS {}.{}{on} AS {}.{}\nENGINE = Distributed({}, {}, {}, shard);",
                ident(db),
                ident(t),
                ident(db),
                ident(&local(t)),
                literal(c),
                literal(db),
                literal(&local(t)),
            );
        }
    }
    s
}

/// Calls `f(shard, event, seq)` for every event of `store`, shard by
/// shard, each user's events together in (time, arrival) order; `seq` is
/// the event's place in that order, from 0, as in the Parquet export.
pub fn for_each_row(store: &Store, mut f: impl FnMut(u32, &Event, u64)) -> Result<()> {
    for shard in 0..store.shards() {
        let mut last_user: Option<String> = None;
        let mut seq = 0u64;
        store.for_each_event_in_shard(shard, |e| {
            if last_user.as_deref() == Some(e.user.as_str()) {
                seq += 1;
            } else {
                last_user = Some(e.user.clone());
                seq = 0;
            }
            f(shard, &e, seq);
        })?;
    }
    Ok(())
}

/// Every property as a JSON object's text (the `props` column).
pub fn props_json<'a>(props: impl IntoIterator<Item = (&'a String, &'a Value)>) -> String {
    let m: Map<String, Json> = props
        .into_iter()
        .map(|(k, v)| (k.clone(), v.to_json()))
        .collect();
    Json::Object(m).to_string()
}

/// `YYYY-MM-DD hh:mm:ss.mmm` (UTC) of epoch milliseconds: the text every
/// ClickHouse version reads into DateTime64(3, 'UTC').
pub fn time_text(ms: i64) -> String {
    let (days, rest) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = footprint_query::time::civil(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    )
}

/// One events row as a line of `JSONEachRow` (with its newline) onto
/// `out`; a typed column whose property the event lacks is left out
/// (NULL).
pub fn event_row(
    out: &mut String,
    shard: u32,
    e: &Event,
    seq: u64,
    typed: &[(String, ColumnType)],
) {
    let mut m = Map::new();
    m.insert("user".into(), Json::from(e.user.as_str()));
    m.insert("event".into(), Json::from(e.event.as_str()));
    m.insert("time".into(), Json::from(time_text(e.time)));
    m.insert("seq".into(), Json::from(seq));
    m.insert("shard".into(), Json::from(shard));
    m.insert(
        "props".into(),
        Json::from(props_json(e.props.iter().map(|(k, v)| (k, v)))),
    );
    for (name, ty) in typed {
        let v = match (e.prop(name), ty) {
            (Some(Value::Float(f)), ColumnType::Float) => Json::from(*f),
            (Some(Value::Int(i)), ColumnType::Float) => Json::from(*i as f64),
            (Some(v), _) => v.to_json(),
            (None, _) => continue,
        };
        m.insert(name.clone(), v);
    }
    out.push_str(&Json::Object(m).to_string());
    out.push('\n');
}

/// Every profile as a line of `JSONEachRow` (user, shard, props), in
/// uid order.
pub fn profile_rows(store: &Store) -> Vec<String> {
    let snap = store.snapshot();
    let ids: Vec<u32> = snap.profiles.iter().map(|(uid, _)| uid).collect();
    let names = store.user_names(&ids);
    snap.profiles
        .iter()
        .zip(&names)
        .map(|((uid, props), user)| {
            let mut m = Map::new();
            m.insert("user".into(), Json::from(user.as_str()));
            m.insert("shard".into(), Json::from(uid % store.shards()));
            m.insert("props".into(), Json::from(props_json(&props)));
            Json::Object(m).to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_carry_seq_shard_and_typed_columns() {
        let dir = tempfile::tempdir().unwrap();
        let opts = crate::EngineOptions {
            background: false,
            store: crate::StoreOptions {
                shards: 2,
                ..Default::default()
            },
            ..Default::default()
        };
        let e = crate::Engine::open(dir.path(), opts).unwrap();
        let text = [
            r#"{"user":"a","event":"pay","time":2000,"props":{"amount":2.5,"mixed":"x"}}"#,
            r#"{"user":"b","event":"visit","time":1000,"props":{"amount":3}}"#,
            r#"{"user":"a","event":"visit","time":1000,"props":{"mixed":1,"user":"z"}}"#,
            r#"{"user":"a","event":"login","time":2000}"#,
        ]
        .join("\n");
        e.ingest_text(&text, crate::Format::Json).unwrap();
        let typed = table_columns(e.store()).unwrap();
        assert_eq!(typed, vec![("amount".to_owned(), ColumnType::Float)]);
        let mut out = String::new();
        for_each_row(e.store(), |shard, ev, seq| {
            event_row(&mut out, shard, ev, seq, &typed)
        })
        .unwrap();
        let rows: Vec<Json> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let pick = |user: &str| -> Vec<(String, u64, u64, Option<f64>)> {
            rows.iter()
                .filter(|r| r["user"] == user)
                .map(|r| {
                    (
                        r["event"].as_str().unwrap().to_owned(),
                        r["seq"].as_u64().unwrap(),
                        r["shard"].as_u64().unwrap(),
                        r.get("amount").and_then(Json::as_f64),
                    )
                })
                .collect()
        };
        // Ties in time keep arrival order; a user's rows share a shard.
        let a = pick("a");
        assert_eq!(
            a.iter().map(|r| (r.0.as_str(), r.1)).collect::<Vec<_>>(),
            [("visit", 0), ("pay", 1), ("login", 2)]
        );
        assert!(a.iter().all(|r| r.2 == a[0].2) && a[1].3 == Some(2.5));
        let b = pick("b");
        assert_eq!((b[0].1, b[0].3), (0, Some(3.0)));
        assert_ne!(a[0].2, b[0].2, "a and b are users 0 and 1 of 2 shards");
        let visit = rows
            .iter()
            .find(|r| r["event"] == "visit" && r["user"] == "a");
        assert_eq!(
            visit.unwrap()["props"],
            r#"{"mixed":1,"user":"z"}"#,
            "props keeps every property, a core name too"
        );
    }

    #[test]
    fn times_are_utc_text() {
        assert_eq!(time_text(0), "1970-01-01 00:00:00.000");
        assert_eq!(time_text(1_767_225_600_123), "2026-01-01 00:00:00.123");
        assert_eq!(time_text(-1), "1969-12-31 23:59:59.999");
    }

    #[test]
    fn cluster_and_local_ddl() {
        let typed = vec![
            ("utm_source".to_owned(), ColumnType::Str),
            ("odd`name".to_owned(), ColumnType::Float),
        ];
        let local = ddl(&typed, &DdlOptions::default());
        assert!(local.contains("ENGINE = MergeTree\nPARTITION BY toYYYYMM(time)"));
        assert!(local.contains("ENGINE = ReplacingMergeTree\nORDER BY user"));
        assert!(local.contains("`odd\\`name` Nullable(Float64)"));
        assert!(!local.contains("Distributed") && !local.contains("Replicated"));
        let c = ddl(
            &typed,
            &DdlOptions {
                cluster: Some("prod".into()),
                database: "fp".into(),
            },
        );
        assert!(c.contains(
            "ReplicatedMergeTree('/clickhouse/tables/{shard}/fp/events_local', '{replica}')"
        ));
        assert!(c.contains("ENGINE = Distributed('prod', 'fp', 'events_local', shard)"));
        assert!(c.contains("ENGINE = Distributed('prod', 'fp', 'profiles_local', shard)"));
        assert!(c.contains("`fp`.`events_local` ON CLUSTER `prod`"));
    }
}
