//! Export to Parquet, so other engines (ClickHouse, DuckDB, Spark) read the
//! same data, partitioned the Hive way and appendable:
//!
//! ```text
//! OUT/manifest.json                                        what the export holds
//! OUT/events/date=YYYY-MM-DD/shard=NNN/part-RRRRR.parquet  (--partition date, the default)
//! OUT/events/shard=NNN/part-RRRRR.parquet                  (--partition shard)
//! OUT/profiles.parquet
//! ```
//!
//! `date` is the event's UTC day; `shard` the store shard of its user (so a
//! user's events of one day are in one directory); `RRRRR` the run that
//! wrote the file (0 for the first export into `OUT`, then 1, 2, … for
//! each incremental one). Rows of a file are sorted by (user, time, seq),
//! users by their text, in row groups of 2^20 rows.
//!
//! Events have `user`, `event`, `time` (TIMESTAMP millis, UTC), `seq` (the
//! event's place in its user's (time, arrival) order, from 0, so peers can
//! break ties in time as the engine does) and `props` (all properties as a
//! JSON object, exactly as stored), plus one typed column per property
//! whose values all share one type (`utm_source` UTF8, `amount` DOUBLE, …)
//! so peers can filter without parsing JSON. A property seen with several
//! types is only in `props`. Typed columns are named `p0`, `p1`… and
//! renamed by the key-value metadata `footprint.property_columns` (a JSON
//! list of [column, name] pairs) and by the manifest.
//!
//! Exporting into a directory that holds an export appends to it: only the
//! events that arrived since (the manifest's [`Watermark`]) are written, as
//! new files, late events with old times included; a second run with
//! nothing new writes no event file. `seq` of an appended event is its
//! place in its user's order at the time of that run, so ordering a user's
//! events by (time, seq) over all files stays right. `profiles.parquet` is
//! rewritten whole by every run (profiles change in place).

mod manifest;
mod rows;
mod write;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use footprint_storage::{fsutil, Store};
use parquet::data_type::ByteArray;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use manifest::{
    ColumnEntry, ExportManifest, FileEntry, ProfilesEntry, Watermark, EXPORT_FORMAT,
    EXPORT_VERSION, MANIFEST_FILE,
};

use crate::{Error, Result};
use rows::PropOut;
use write::{read_back, write_events, write_profiles, Schema, FIXED};

/// How `events/` is split into directories.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Partition {
    /// `events/date=YYYY-MM-DD/shard=NNN/` (UTC day of the event).
    #[default]
    Date,
    /// `events/shard=NNN/`, one directory per shard (the layout before
    /// date partitions).
    Shard,
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Partition::Date => "date",
            Partition::Shard => "shard",
        })
    }
}

/// How to export.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// The layout of a new export; `None`: [`Partition::Date`], or the
    /// existing export's. A different one than the existing export's is
    /// an error.
    pub partition: Option<Partition>,
    /// Only append to an existing export (`--since last`): without a
    /// manifest in the target, fail instead of exporting everything.
    pub since_last: bool,
}

pub(crate) use crate::columns::ColumnType as Ty;

/// What an export wrote.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ExportSummary {
    /// Events written by this run.
    pub events: u64,
    /// Events skipped because an earlier run exported them.
    pub already: u64,
    /// Profiles written.
    pub profiles: u64,
    /// Files written (event files and the profiles file).
    pub files: u64,
    /// Bytes of the files written.
    pub bytes: u64,
    /// This run's number (its files are `part-{run:05}.parquet`).
    pub run: u32,
    /// Whether it appended to an existing export.
    pub incremental: bool,
    /// The layout.
    pub partition: Partition,
    /// Properties with a typed column.
    pub typed_props: Vec<String>,
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::Storage(footprint_storage::Error::io(path, e))
}

/// Writes the events of `store` not yet in the export at `out`, and all
/// profiles, then the manifest; `progress` is called with events read.
pub fn export_parquet(
    store: &Store,
    out: &Path,
    opts: &ExportOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ExportSummary> {
    match std::fs::metadata(out) {
        Ok(m) if !m.is_dir() => {
            return Err(Error::Invalid(format!(
                "{} is not a directory",
                out.display()
            )))
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(out, e)),
    }
    let mut man = begin(store, out, opts)?;
    fsutil::ensure_dir(out)?;
    let incremental = man.runs > 0;
    let run = man.runs;
    add_columns(store, &mut man)?;
    remove_leftovers(out, &man)?;
    let schema = Schema::new(&man.columns)?;

    let snap = store.snapshot();
    let event_names: Vec<ByteArray> = store
        .event_names()
        .into_iter()
        .map(|n| ByteArray::from(n.into_bytes()))
        .collect();
    let prop_names = store.prop_names();
    let mut props: Vec<PropOut> = prop_names
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let mut key = Vec::new();
            rows::write_str(&mut key, name);
            key.push(b':');
            let typed = man
                .properties()
                .enumerate()
                .find(|(_, c)| &c.name == name)
                .and_then(|(i, c)| Some((i as u32, Ty::parse(&c.ty)?)));
            PropOut { k, key, typed }
        })
        .collect();
    // Keys in name order, alike in every row.
    props.sort_by(|a, b| prop_names[a.k].cmp(&prop_names[b.k]));

    let shards = store.shards();
    let done: Vec<ShardDone> = (0..shards)
        .into_par_iter()
        .map(|s| {
            let mine: Vec<&FileEntry> = man.files.iter().filter(|f| f.shard == s).collect();
            let want = man
                .watermark
                .shard_events
                .get(s as usize)
                .copied()
                .unwrap_or(0);
            let ctx = ShardCtx {
                store,
                out,
                shard: s,
                run,
                partition: man.partition,
                schema: &schema,
                props: &props,
                nprops: prop_names.len(),
                event_names: &event_names,
            };
            let snap_shard = snap.shards.get(s as usize).ok_or_else(|| {
                Error::Invalid(format!("parquet export: shard {s} is not in the store"))
            })?;
            export_shard(&ctx, snap_shard, &mine, want, progress)
        })
        .collect::<Result<_>>()?;

    let mut summary = ExportSummary {
        run,
        incremental,
        partition: man.partition,
        typed_props: man.properties().map(|c| c.name.clone()).collect(),
        ..ExportSummary::default()
    };
    // Every new file, then every directory that gained an entry.
    let mut durable: Vec<PathBuf> = Vec::new();
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    for (s, d) in done.into_iter().enumerate() {
        summary.events += d.written;
        summary.already += d.read - d.written;
        if let Some(w) = man.watermark.shard_events.get_mut(s) {
            *w = d.read;
        }
        for f in d.files {
            summary.files += 1;
            summary.bytes += f.bytes;
            // The file's directory and each new one above it, up to `out`.
            let mut dir = out.join(&f.path);
            durable.push(dir.clone());
            while dir.pop() && dir.starts_with(out) {
                dirs.insert(dir.clone());
            }
            man.watermark.max_time = Some(
                man.watermark
                    .max_time
                    .map_or(f.max_time, |t| t.max(f.max_time)),
            );
            man.files.push(f);
        }
    }
    let (rows, bytes) = profiles(store, out)?;
    // The files, the new directories and the renames in them are durable
    // before the manifest names the files.
    durable.push(out.join(PROFILES_FILE));
    dirs.insert(out.to_owned());
    durable.extend(dirs);
    write::sync_all(&durable)?;
    summary.profiles = rows;
    summary.files += 1;
    summary.bytes += bytes;
    man.profiles = ProfilesEntry {
        path: PROFILES_FILE.to_owned(),
        rows,
        bytes,
    };
    man.files.sort_by(|a, b| a.path.cmp(&b.path));
    man.watermark.events = man.watermark.shard_events.iter().sum();
    man.watermark.exported_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    man.runs += 1;
    man.store(out)?;
    Ok(summary)
}

/// The manifest to continue: the existing one, checked against the store
/// and the options, or a new one.
fn begin(store: &Store, out: &Path, opts: &ExportOptions) -> Result<ExportManifest> {
    let shards = store.shards();
    match ExportManifest::load(out)? {
        Some(m) => {
            if m.shards != shards {
                return Err(Error::Invalid(format!(
                    "{}: the export in it was made from a store of {} shards, this one has {shards}; export into a new directory",
                    out.join(MANIFEST_FILE).display(),
                    m.shards
                )));
            }
            if let Some(p) = opts.partition {
                if p != m.partition {
                    return Err(Error::Invalid(format!(
                        "{}: the export in it is partitioned by {}, not {p}; export into a new directory",
                        out.join(MANIFEST_FILE).display(),
                        m.partition
                    )));
                }
            }
            Ok(m)
        }
        None => {
            if opts.since_last {
                return Err(Error::Invalid(format!(
                    "--since last: {} holds no export ({MANIFEST_FILE} is missing); export everything first",
                    out.display()
                )));
            }
            for old in ["events", PROFILES_FILE] {
                if out.join(old).exists() {
                    return Err(Error::Invalid(format!(
                        "{} holds an export without {MANIFEST_FILE} (from an older footprint?); export into an empty directory",
                        out.display()
                    )));
                }
            }
            Ok(ExportManifest::new(
                opts.partition.unwrap_or_default(),
                shards,
            ))
        }
    }
}

/// Adds a column for each single-typed property that has none yet
/// (ints and floats together are DOUBLE). Existing columns keep their
/// place and type, so every file of an export agrees on them.
fn add_columns(store: &Store, man: &mut ExportManifest) -> Result<()> {
    if man.columns.is_empty() {
        man.columns = FIXED
            .iter()
            .map(|(name, ty)| ColumnEntry {
                column: (*name).to_owned(),
                name: (*name).to_owned(),
                ty: (*ty).to_owned(),
                property: false,
            })
            .collect();
    }
    let mut next = man.properties().count();
    for (name, ty) in crate::columns::typed_columns(store)? {
        if man.properties().any(|c| c.name == name) {
            continue;
        }
        man.columns.push(ColumnEntry {
            column: format!("p{next}"),
            name,
            ty: ty.name().to_owned(),
            property: true,
        });
        next += 1;
    }
    Ok(())
}

/// Removes files under `out/events` that the manifest does not name: the
/// leftovers of an interrupted run (whose part number the next run reuses).
fn remove_leftovers(out: &Path, man: &ExportManifest) -> Result<()> {
    let named: BTreeSet<PathBuf> = man.files.iter().map(|f| out.join(&f.path)).collect();
    let mut stack = vec![out.join("events")];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&dir, e)),
        };
        for entry in entries {
            let path = entry.map_err(|e| io(&dir, e))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if !named.contains(&path)
                && path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("part-"))
            {
                std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
            }
        }
    }
    Ok(())
}

/// What one shard's export needs.
struct ShardCtx<'a> {
    store: &'a Store,
    out: &'a Path,
    shard: u32,
    run: u32,
    partition: Partition,
    schema: &'a Schema,
    props: &'a [PropOut],
    nprops: usize,
    event_names: &'a [ByteArray],
}

/// What one shard's export did.
struct ShardDone {
    /// Events of the shard in the snapshot (its new watermark).
    read: u64,
    written: u64,
    files: Vec<FileEntry>,
}

const DAY_MS: i64 = 86_400_000;

/// The profiles file, at the export root.
const PROFILES_FILE: &str = "profiles.parquet";

fn export_shard(
    ctx: &ShardCtx<'_>,
    snap: &footprint_storage::ShardSnapshot,
    exported_files: &[&FileEntry],
    watermark: u64,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ShardDone> {
    let shard = ctx.shard;
    // Per (user id, time), how many events earlier runs exported.
    let mut exported: HashMap<(u32, i64), u32> = HashMap::new();
    let mut back = 0u64;
    let mut last: Option<(Vec<u8>, u32)> = None;
    for f in exported_files {
        let path = ctx.out.join(&f.path);
        let n = read_back(&path, |user, time| {
            let cached = match &last {
                Some((u, id)) if u.as_slice() == user => Some(*id),
                _ => None,
            };
            let uid = match cached {
                Some(id) => id,
                None => {
                    let name = std::str::from_utf8(user).map_err(|e| write::perr(&path, e))?;
                    let id = ctx.store.user_id(name).ok_or_else(|| {
                        Error::Invalid(format!(
                            "{}: user {name:?} is not in the store: the export was not made from it; export into a new directory",
                            path.display()
                        ))
                    })?;
                    last = Some((user.to_vec(), id));
                    id
                }
            };
            *exported.entry((uid, time)).or_default() += 1;
            Ok(())
        })?;
        if n != f.rows {
            return Err(Error::Invalid(format!(
                "{}: {n} rows, the manifest says {}",
                path.display(),
                f.rows
            )));
        }
        back += n;
    }
    if back != watermark {
        return Err(Error::Invalid(format!(
            "{}: the files of shard {shard} hold {back} events, its watermark says {watermark}",
            ctx.out.join(MANIFEST_FILE).display()
        )));
    }
    let (rows, read) = rows::scan(snap, ctx.nprops, ctx.props, &mut exported, progress)?;
    let missing: u64 = exported.values().map(|&n| u64::from(n)).sum();
    if missing > 0 {
        return Err(Error::Invalid(format!(
            "{}: {missing} exported events of shard {shard} are not in the store: the export was not made from it; export into a new directory",
            ctx.out.join(MANIFEST_FILE).display()
        )));
    }
    // Users in text order: their place, by uid / shards (ids are dense
    // within a shard).
    let mut uids: Vec<u32> = rows.uid.clone();
    uids.sort_unstable();
    uids.dedup();
    let names = ctx.store.user_names(&uids);
    let mut by_name: Vec<usize> = (0..uids.len()).collect();
    by_name.sort_by(|&a, &b| names[a].cmp(&names[b]));
    let slot = |uid: u32| (uid / ctx.store.shards()) as usize;
    let mut place = vec![0u32; uids.last().map_or(0, |&u| slot(u) + 1)];
    for (r, &i) in by_name.iter().enumerate() {
        place[slot(uids[i])] = r as u32;
    }
    let user_text: Vec<ByteArray> = by_name
        .iter()
        .map(|&i| ByteArray::from(names[i].as_bytes().to_vec()))
        .collect();
    let rank: Vec<u32> = rows.uid.iter().map(|&u| place[slot(u)]).collect();
    let parts = match ctx.partition {
        Partition::Date => rows::partitions(&rows, &rank, |t| t.div_euclid(DAY_MS)),
        Partition::Shard => rows::partitions(&rows, &rank, |_| 0),
    };
    let mut files = Vec::new();
    for (day, idx) in parts {
        let (Some(&first), Some(&lastrow)) = (idx.first(), idx.last()) else {
            continue;
        };
        let mut partition = BTreeMap::new();
        let mut rel = String::from("events/");
        if ctx.partition == Partition::Date {
            let (y, m, d) = footprint_query::time::civil(day);
            let date = format!("{y:04}-{m:02}-{d:02}");
            rel.push_str(&format!("date={date}/"));
            partition.insert("date".to_owned(), date);
        }
        rel.push_str(&format!("shard={shard:03}"));
        partition.insert("shard".to_owned(), format!("{shard:03}"));
        let dir = ctx.out.join(&rel);
        fsutil::ensure_dir(&dir)?;
        let name = format!("part-{:05}.parquet", ctx.run);
        let bytes = write_events(
            &dir.join(&name),
            ctx.schema,
            &rows,
            &idx,
            &|r| user_text[rank[r] as usize].clone(),
            &|r| {
                ctx.event_names
                    .get(rows.event[r] as usize)
                    .cloned()
                    .unwrap_or_else(|| ByteArray::from(""))
            },
        )?;
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for &r in &idx {
            lo = lo.min(rows.time[r as usize]);
            hi = hi.max(rows.time[r as usize]);
        }
        files.push(FileEntry {
            path: format!("{rel}/{name}"),
            partition,
            run: ctx.run,
            shard,
            rows: idx.len() as u64,
            min_time: lo,
            max_time: hi,
            min_user: names[by_name[rank[first as usize] as usize]].clone(),
            max_user: names[by_name[rank[lastrow as usize] as usize]].clone(),
            bytes,
        });
    }
    Ok(ShardDone {
        read,
        written: rows.len() as u64,
        files,
    })
}

/// Writes `profiles.parquet`: every profile, properties as JSON.
fn profiles(store: &Store, out: &Path) -> Result<(u64, u64)> {
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
    write_profiles(&out.join(PROFILES_FILE), users, jsons)
}
