//! The Parquet side of the export: the schema, writing one partition's
//! rows as one file, the profiles file, and reading back which (user,
//! time) rows an earlier run wrote.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use footprint_storage::fsutil;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::column::reader::get_typed_column_reader;
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::reader::FileReader;
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::{ColumnPath, Type};

use super::manifest::ColumnEntry;
use super::rows::{Rows, TypedValue};
use super::Ty;
use crate::{Error, Result};

/// What the Parquet writer writes to: a file written in pieces of 1 MiB.
/// The writer flushes after every column chunk, which through a
/// `BufWriter` would be a system call per few hundred bytes in a small
/// file; here only [`Out::finish`] writes out the rest.
pub(super) struct Out {
    buf: Vec<u8>,
    file: File,
}

impl Out {
    const PIECE: usize = 1 << 20;

    fn new(file: File) -> Out {
        Out {
            buf: Vec::with_capacity(Self::PIECE),
            file,
        }
    }

    fn finish(mut self) -> std::io::Result<File> {
        self.file.write_all(&self.buf)?;
        Ok(self.file)
    }
}

impl Write for Out {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= Self::PIECE {
            self.file.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Rows per Parquet row group.
const GROUP_ROWS: usize = 1 << 20;

/// Fixed columns of the event files, before the property columns.
pub(super) const FIXED: [(&str, &str); 5] = [
    ("user", "string"),
    ("event", "string"),
    ("time", "timestamp_ms"),
    ("seq", "int64"),
    ("props", "json"),
];

pub(super) fn perr(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("parquet export: {}: {e}", path.display()))
}

/// The event files' schema and writer settings.
pub(super) struct Schema {
    message: Arc<Type>,
    props: Arc<WriterProperties>,
    /// The property columns' types, in column order.
    pub typed: Vec<Ty>,
}

impl Schema {
    /// From the manifest's columns (the fixed ones first).
    pub fn new(columns: &[ColumnEntry]) -> Result<Schema> {
        let mut message = String::from(
            "message events { REQUIRED BINARY user (UTF8); REQUIRED BINARY event (UTF8); REQUIRED INT64 time (TIMESTAMP(MILLIS,true)); REQUIRED INT64 seq; REQUIRED BINARY props (JSON);",
        );
        let mut typed = Vec::new();
        let mut mapping = Vec::new();
        for c in columns.iter().filter(|c| c.property) {
            let ty = Ty::parse(&c.ty)
                .ok_or_else(|| Error::Invalid(format!("export manifest: unknown type {}", c.ty)))?;
            let t = match ty {
                Ty::Str => "BINARY",
                Ty::Int => "INT64",
                Ty::Float => "DOUBLE",
                Ty::Bool => "BOOLEAN",
            };
            // Property names may hold any character; columns are named p0,
            // p1… and renamed through the key-value metadata below.
            message.push_str(&format!(
                " OPTIONAL {t} {}{};",
                c.column,
                if ty == Ty::Str { " (UTF8)" } else { "" }
            ));
            typed.push(ty);
            mapping.push((c.column.clone(), c.name.clone()));
        }
        message.push_str(" }");
        let here = Path::new("schema");
        let message = Arc::new(parse_message_type(&message).map_err(|e| perr(here, e))?);
        let mapping = serde_json::to_string(&mapping).map_err(|e| perr(here, e))?;
        // Only `props` (most of the bytes) is compressed. Every compressed
        // page costs a new zstd context in the Parquet writer, and a
        // day-partitioned export has many small files: the other columns
        // are already small as dictionary indexes (user, event, strings),
        // deltas (time and seq, sorted by user and time) or sparse values.
        let mut b = WriterProperties::builder()
            .set_compression(Compression::UNCOMPRESSED)
            .set_column_compression(
                ColumnPath::from("props"),
                Compression::ZSTD(ZstdLevel::try_new(1).map_err(|e| perr(here, e))?),
            )
            .set_max_row_group_size(GROUP_ROWS)
            .set_key_value_metadata(Some(vec![KeyValue::new(
                "footprint.property_columns".to_owned(),
                mapping,
            )]));
        // Times and sequence numbers rarely repeat and JSON never: no
        // dictionary; min/max of JSON text is of no use to a reader.
        for col in ["time", "seq"] {
            b = b
                .set_column_dictionary_enabled(ColumnPath::from(col), false)
                .set_column_encoding(ColumnPath::from(col), Encoding::DELTA_BINARY_PACKED);
        }
        b = b
            .set_column_dictionary_enabled(ColumnPath::from("props"), false)
            .set_column_statistics_enabled(ColumnPath::from("props"), EnabledStatistics::None);
        Ok(Schema {
            message,
            props: Arc::new(b.build()),
            typed,
        })
    }
}

/// Writes `path` through a temporary file beside it, so a reader never
/// sees a partial file: `fill` writes the file and hands it back, then it
/// is renamed; a failure removes the temporary file. Returns the file's
/// size. Not fsync'ed: the caller makes every new file durable at once
/// ([`sync_all`]) before the manifest names it.
fn write_file(path: &Path, fill: impl FnOnce(Out) -> parquet::errors::Result<Out>) -> Result<u64> {
    let tmp = path.with_extension("parquet.tmp");
    let file = fsutil::create(&tmp)?;
    let r = (|| {
        let out = fill(Out::new(file)).map_err(|e| perr(&tmp, e))?;
        let file = out
            .finish()
            .map_err(|e| footprint_storage::Error::io(&tmp, e))?;
        let bytes = file
            .metadata()
            .map_err(|e| footprint_storage::Error::io(&tmp, e))?
            .len();
        fsutil::rename(&tmp, path)?;
        Ok(bytes)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// Fsyncs files and directories, many at once: the file system commits
/// concurrent fsyncs together, where one after another each waits for its
/// own commit (a day-partitioned export writes thousands of small files).
pub(super) fn sync_all(paths: &[std::path::PathBuf]) -> Result<()> {
    const THREADS: usize = 32;
    let chunk = paths.len().div_ceil(THREADS).max(1);
    std::thread::scope(|s| {
        let jobs: Vec<_> = paths
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || -> Result<()> {
                    for p in part {
                        let f = File::open(p).map_err(|e| footprint_storage::Error::io(p, e))?;
                        fsutil::sync_all(&f, p)?;
                    }
                    Ok(())
                })
            })
            .collect();
        jobs.into_iter().try_for_each(|j| {
            j.join()
                .map_err(|_| Error::Invalid("parquet export: an fsync thread panicked".into()))?
        })
    })
}

/// Writes rows `idx` of `rows` (in that order) to `path` (see
/// [`write_file`]); returns its size. `users(r)`/`events(r)` are row `r`'s
/// user and event text.
pub(super) fn write_events(
    path: &Path,
    schema: &Schema,
    rows: &Rows,
    idx: &[u32],
    users: &dyn Fn(usize) -> ByteArray,
    events: &dyn Fn(usize) -> ByteArray,
) -> Result<u64> {
    write_file(path, |file| {
        let mut w = SerializedFileWriter::new(file, schema.message.clone(), schema.props.clone())?;
        for group in idx.chunks(GROUP_ROWS) {
            write_group(&mut w, schema, rows, group, users, events)?;
        }
        w.into_inner()
    })
}

/// Per property column, its values in a row group.
enum Values {
    Str(Vec<ByteArray>),
    Int(Vec<i64>),
    Float(Vec<f64>),
    Bool(Vec<bool>),
}

fn write_group(
    w: &mut SerializedFileWriter<Out>,
    schema: &Schema,
    rows: &Rows,
    group: &[u32],
    users: &dyn Fn(usize) -> ByteArray,
    events: &dyn Fn(usize) -> ByteArray,
) -> parquet::errors::Result<()> {
    let n = group.len();
    let mut defs: Vec<Vec<i16>> = schema.typed.iter().map(|_| vec![0; n]).collect();
    let mut vals: Vec<Values> = schema
        .typed
        .iter()
        .map(|t| match t {
            Ty::Str => Values::Str(Vec::new()),
            Ty::Int => Values::Int(Vec::new()),
            Ty::Float => Values::Float(Vec::new()),
            Ty::Bool => Values::Bool(Vec::new()),
        })
        .collect();
    for (j, &r) in group.iter().enumerate() {
        for &(col, v) in rows.typed(r as usize) {
            let col = col as usize;
            let (Some(def), Some(out)) = (defs.get_mut(col), vals.get_mut(col)) else {
                continue;
            };
            def[j] = 1;
            match (out, v) {
                (Values::Str(o), TypedValue::Str(a, b)) => {
                    o.push(ByteArray::from(rows.strs.slice(a..b)));
                }
                (Values::Int(o), TypedValue::Int(i)) => o.push(i),
                (Values::Float(o), TypedValue::Float(f)) => o.push(f),
                (Values::Bool(o), TypedValue::Bool(b)) => o.push(b),
                _ => def[j] = 0,
            }
        }
    }
    let mut g = w.next_row_group()?;
    let mut col = 0usize;
    while let Some(mut c) = g.next_column()? {
        match col {
            0 | 1 => {
                let v: Vec<ByteArray> = group
                    .iter()
                    .map(|&r| {
                        if col == 0 {
                            users(r as usize)
                        } else {
                            events(r as usize)
                        }
                    })
                    .collect();
                c.typed::<ByteArrayType>().write_batch(&v, None, None)?;
            }
            2 | 3 => {
                let src = if col == 2 { &rows.time } else { &rows.seq };
                let v: Vec<i64> = group.iter().map(|&r| src[r as usize]).collect();
                c.typed::<Int64Type>().write_batch(&v, None, None)?;
            }
            4 => {
                let v: Vec<ByteArray> = group
                    .iter()
                    .map(|&r| ByteArray::from(rows.json(r as usize)))
                    .collect();
                c.typed::<ByteArrayType>().write_batch(&v, None, None)?;
            }
            k => {
                let def = defs.get(k - FIXED.len()).map(Vec::as_slice);
                match vals.get(k - FIXED.len()) {
                    Some(Values::Str(v)) => {
                        c.typed::<ByteArrayType>().write_batch(v, def, None)?;
                    }
                    Some(Values::Int(v)) => {
                        c.typed::<Int64Type>().write_batch(v, def, None)?;
                    }
                    Some(Values::Float(v)) => {
                        c.typed::<DoubleType>().write_batch(v, def, None)?;
                    }
                    Some(Values::Bool(v)) => {
                        c.typed::<BoolType>().write_batch(v, def, None)?;
                    }
                    None => {
                        return Err(parquet::errors::ParquetError::General(format!(
                            "column {k} is not in the schema"
                        )))
                    }
                }
            }
        }
        c.close()?;
        col += 1;
    }
    g.close()?;
    Ok(())
}

/// Writes `profiles.parquet` (user, props JSON); returns its rows and
/// bytes.
pub(super) fn write_profiles(
    path: &Path,
    users: Vec<ByteArray>,
    jsons: Vec<ByteArray>,
) -> Result<(u64, u64)> {
    let schema = Arc::new(
        parse_message_type(
            "message profiles { REQUIRED BINARY user (UTF8); REQUIRED BINARY props (JSON); }",
        )
        .map_err(|e| perr(path, e))?,
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(1).map_err(|e| perr(path, e))?,
            ))
            .build(),
    );
    let bytes = write_file(path, |file| {
        let mut w = SerializedFileWriter::new(file, schema, props)?;
        let mut g = w.next_row_group()?;
        let mut col = 0;
        while let Some(mut c) = g.next_column()? {
            let v = if col == 0 { &users } else { &jsons };
            c.typed::<ByteArrayType>().write_batch(v, None, None)?;
            c.close()?;
            col += 1;
        }
        g.close()?;
        w.into_inner()
    })?;
    Ok((users.len() as u64, bytes))
}

/// Calls `f(user, time)` for every row of the event file `path`, reading
/// only those two columns; returns the rows read.
pub(super) fn read_back(path: &Path, mut f: impl FnMut(&[u8], i64) -> Result<()>) -> Result<u64> {
    let file = File::open(path).map_err(|e| footprint_storage::Error::io(path, e))?;
    let reader = SerializedFileReader::new(file).map_err(|e| perr(path, e))?;
    let descr = reader.metadata().file_metadata().schema_descr_ptr();
    if descr.num_columns() < 3
        || descr.column(0).name() != "user"
        || descr.column(2).name() != "time"
    {
        return Err(perr(path, "not an event file of a Footprint export"));
    }
    const BATCH: usize = 1 << 16;
    let mut rows = 0u64;
    let (mut users, mut times): (Vec<ByteArray>, Vec<i64>) = (Vec::new(), Vec::new());
    for g in 0..reader.num_row_groups() {
        let rg = reader.get_row_group(g).map_err(|e| perr(path, e))?;
        let mut ur = get_typed_column_reader::<ByteArrayType>(
            rg.get_column_reader(0).map_err(|e| perr(path, e))?,
        );
        let mut tr = get_typed_column_reader::<Int64Type>(
            rg.get_column_reader(2).map_err(|e| perr(path, e))?,
        );
        loop {
            users.clear();
            times.clear();
            let (nu, _, _) = ur
                .read_records(BATCH, None, None, &mut users)
                .map_err(|e| perr(path, e))?;
            let (nt, _, _) = tr
                .read_records(BATCH, None, None, &mut times)
                .map_err(|e| perr(path, e))?;
            if nu != nt || users.len() != times.len() {
                return Err(perr(path, "user and time columns differ in length"));
            }
            if nu == 0 {
                break;
            }
            for (u, &t) in users.iter().zip(&times) {
                f(u.data(), t)?;
            }
            rows += nu as u64;
        }
    }
    Ok(rows)
}
