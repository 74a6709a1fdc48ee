//! Export to Parquet, so other engines (ClickHouse, DuckDB, Spark) read the
//! same data: `events/shard=NN/part-00000.parquet` and `profiles.parquet`.
//!
//! Events have `user`, `event`, `time` (TIMESTAMP millis, UTC), `seq` (the
//! event's place in its user's (time, arrival) order, from 0, so peers can
//! break ties in time as the engine does) and `props` (all properties as a
//! JSON object, exactly as stored), plus one typed
//! column per property whose values all share one type (`utm_source`
//! UTF8, `amount` DOUBLE, …) so peers can filter without parsing JSON.
//! A property seen with several types is only in `props`.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use footprint_storage::{Event, Store, Value};
use parquet::basic::{Compression, ZstdLevel};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use crate::{Error, Result};

/// Rows per Parquet row group.
const GROUP_ROWS: usize = 1 << 20;

use crate::columns::ColumnType as Ty;

/// What an export wrote.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ExportSummary {
    /// Events written.
    pub events: u64,
    /// Profiles written.
    pub profiles: u64,
    /// Files written.
    pub files: u64,
    /// Properties with a typed column.
    pub typed_props: Vec<String>,
}

fn perr(e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("parquet export: {e}"))
}

fn ioerr(path: &Path, e: std::io::Error) -> Error {
    Error::Storage(footprint_storage::Error::io(path, e))
}

/// Writes all events and profiles of `store` under `out`.
pub fn export_parquet(
    store: &Store,
    out: &Path,
    mut progress: impl FnMut(u64),
) -> Result<ExportSummary> {
    std::fs::create_dir_all(out).map_err(|e| ioerr(out, e))?;
    let mut summary = ExportSummary::default();
    // One typed column per single-typed property (ints and floats together are DOUBLE).
    let typed = crate::columns::typed_columns(store)?;
    summary.typed_props = typed.iter().map(|(n, _)| n.clone()).collect();
    let mut schema = String::from(
        "message events { REQUIRED BINARY user (UTF8); REQUIRED BINARY event (UTF8); REQUIRED INT64 time (TIMESTAMP(MILLIS,true)); REQUIRED INT64 seq; REQUIRED BINARY props (JSON);",
    );
    for (i, (_, ty)) in typed.iter().enumerate() {
        let t = match ty {
            Ty::Str => "BINARY",
            Ty::Int => "INT64",
            Ty::Float => "DOUBLE",
            Ty::Bool => "BOOLEAN",
        };
        // Property names may hold any character; columns are named p0, p1…
        // in the schema and renamed through the key-value metadata below.
        schema.push_str(&format!(
            " OPTIONAL {t} p{i}{};",
            if *ty == Ty::Str { " (UTF8)" } else { "" }
        ));
    }
    schema.push_str(" }");
    let schema = Arc::new(parse_message_type(&schema).map_err(perr)?);
    let mapping = serde_json::to_string(
        &typed
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (format!("p{i}"), n.clone()))
            .collect::<Vec<_>>(),
    )
    .map_err(perr)?;
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(perr)?))
            .set_key_value_metadata(Some(vec![parquet::file::metadata::KeyValue::new(
                "footprint.property_columns".to_owned(),
                mapping,
            )]))
            .build(),
    );
    for shard in 0..store.shards() {
        let dir = out.join("events").join(format!("shard={shard:03}"));
        std::fs::create_dir_all(&dir).map_err(|e| ioerr(&dir, e))?;
        let path = dir.join("part-00000.parquet");
        let file = File::create(&path).map_err(|e| ioerr(&path, e))?;
        let mut w = SerializedFileWriter::new(file, schema.clone(), props.clone()).map_err(perr)?;
        let mut buf: Vec<(Event, i64)> = Vec::with_capacity(GROUP_ROWS.min(1 << 16));
        let mut err: Option<Error> = None;
        // A user's events come together, in (time, arrival) order.
        let mut last_user = String::new();
        let mut seq = 0i64;
        store.for_each_event_in_shard(shard, |e| {
            if err.is_some() {
                return;
            }
            if e.user == last_user {
                seq += 1;
            } else {
                last_user.clone_from(&e.user);
                seq = 0;
            }
            buf.push((e, seq));
            if buf.len() >= GROUP_ROWS {
                if let Err(e) = write_group(&mut w, &buf, &typed) {
                    err = Some(e);
                }
                summary.events += buf.len() as u64;
                progress(buf.len() as u64);
                buf.clear();
            }
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        if !buf.is_empty() {
            write_group(&mut w, &buf, &typed)?;
            summary.events += buf.len() as u64;
            progress(buf.len() as u64);
        }
        w.close().map_err(perr)?;
        summary.files += 1;
    }
    summary.profiles = write_profiles(store, out, props)?;
    summary.files += 1;
    Ok(summary)
}

fn write_group(
    w: &mut SerializedFileWriter<File>,
    rows: &[(Event, i64)],
    typed: &[(String, Ty)],
) -> Result<()> {
    let mut g = w.next_row_group().map_err(perr)?;
    let mut col = 0usize;
    while let Some(mut c) = g.next_column().map_err(perr)? {
        match col {
            0 | 1 => {
                let v: Vec<ByteArray> = rows
                    .iter()
                    .map(|(e, _)| {
                        ByteArray::from(if col == 0 {
                            e.user.as_str()
                        } else {
                            e.event.as_str()
                        })
                    })
                    .collect();
                c.typed::<ByteArrayType>()
                    .write_batch(&v, None, None)
                    .map_err(perr)?;
            }
            2 | 3 => {
                let v: Vec<i64> = rows
                    .iter()
                    .map(|(e, seq)| if col == 2 { e.time } else { *seq })
                    .collect();
                c.typed::<Int64Type>()
                    .write_batch(&v, None, None)
                    .map_err(perr)?;
            }
            4 => {
                let v: Vec<ByteArray> = rows
                    .iter()
                    .map(|(e, _)| {
                        let m: serde_json::Map<String, serde_json::Value> = e
                            .props
                            .iter()
                            .map(|(k, v)| (k.clone(), v.to_json()))
                            .collect();
                        ByteArray::from(serde_json::Value::Object(m).to_string().into_bytes())
                    })
                    .collect();
                c.typed::<ByteArrayType>()
                    .write_batch(&v, None, None)
                    .map_err(perr)?;
            }
            k => {
                let (name, ty) = &typed[k - 5];
                let vals: Vec<Option<&Value>> = rows.iter().map(|(e, _)| e.prop(name)).collect();
                let def: Vec<i16> = vals.iter().map(|v| i16::from(v.is_some())).collect();
                match ty {
                    Ty::Str => {
                        let v: Vec<ByteArray> = vals
                            .iter()
                            .flatten()
                            .map(|v| ByteArray::from(v.as_str().unwrap_or("")))
                            .collect();
                        c.typed::<ByteArrayType>()
                            .write_batch(&v, Some(&def), None)
                            .map_err(perr)?;
                    }
                    Ty::Int => {
                        let v: Vec<i64> = vals
                            .iter()
                            .flatten()
                            .map(|v| if let Value::Int(i) = v { *i } else { 0 })
                            .collect();
                        c.typed::<Int64Type>()
                            .write_batch(&v, Some(&def), None)
                            .map_err(perr)?;
                    }
                    Ty::Float => {
                        let v: Vec<f64> = vals
                            .iter()
                            .flatten()
                            .map(|v| v.as_f64().unwrap_or(f64::NAN))
                            .collect();
                        c.typed::<DoubleType>()
                            .write_batch(&v, Some(&def), None)
                            .map_err(perr)?;
                    }
                    Ty::Bool => {
                        let v: Vec<bool> = vals
                            .iter()
                            .flatten()
                            .map(|v| matches!(v, Value::Bool(true)))
                            .collect();
                        c.typed::<BoolType>()
                            .write_batch(&v, Some(&def), None)
                            .map_err(perr)?;
                    }
                }
            }
        }
        c.close().map_err(perr)?;
        col += 1;
    }
    g.close().map_err(perr)?;
    Ok(())
}

fn write_profiles(store: &Store, out: &Path, props: Arc<WriterProperties>) -> Result<u64> {
    let schema = Arc::new(
        parse_message_type(
            "message profiles { REQUIRED BINARY user (UTF8); REQUIRED BINARY props (JSON); }",
        )
        .map_err(perr)?,
    );
    let path = out.join("profiles.parquet");
    let file = File::create(&path).map_err(|e| ioerr(&path, e))?;
    let mut w = SerializedFileWriter::new(file, schema, props).map_err(perr)?;
    let snap = store.snapshot();
    let ids: Vec<u32> = snap.profiles.iter().map(|(uid, _)| uid).collect();
    let names = store.user_names(&ids);
    let (users, jsons): (Vec<ByteArray>, Vec<ByteArray>) = snap
        .profiles
        .iter()
        .zip(&names)
        .map(|((_, props), u)| {
            let m: serde_json::Map<String, serde_json::Value> = props
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect();
            (
                ByteArray::from(u.as_str()),
                ByteArray::from(serde_json::Value::Object(m).to_string().into_bytes()),
            )
        })
        .unzip();
    let n = users.len() as u64;
    let mut g = w.next_row_group().map_err(perr)?;
    let mut col = 0;
    while let Some(mut c) = g.next_column().map_err(perr)? {
        let v = if col == 0 { &users } else { &jsons };
        c.typed::<ByteArrayType>()
            .write_batch(v, None, None)
            .map_err(perr)?;
        c.close().map_err(perr)?;
        col += 1;
    }
    g.close().map_err(perr)?;
    w.close().map_err(perr)?;
    Ok(n)
}
