//! `manifest.json` at the root of a Parquet export: what each file holds,
//! what the export covers (its watermark) and its schema. Replaced
//! atomically (temp file, fsync, rename, fsync of the directory) after
//! every file it names is durable, so it never names a missing or partial
//! file; files it does not name are leftovers of an interrupted export.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Partition;
use crate::{Error, Result};

/// The `format` of every export manifest.
pub const EXPORT_FORMAT: &str = "footprint-parquet-export";

/// The manifest version this build writes and reads.
pub const EXPORT_VERSION: u32 = 1;

/// The manifest's file name, at the export root.
pub const MANIFEST_FILE: &str = "manifest.json";

/// What an export directory holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportManifest {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// [`EXPORT_VERSION`] when written by this build.
    pub version: u32,
    /// The layout of `events/`.
    pub partition: Partition,
    /// Shards of the exported store.
    pub shards: u32,
    /// Exports made into this directory so far; the next writes files
    /// named `part-{runs:05}.parquet`.
    pub runs: u32,
    /// What the export covers.
    pub watermark: Watermark,
    /// Every column of the event files, in file order. A property's
    /// column keeps its place and type in later runs; new ones are appended.
    pub columns: Vec<ColumnEntry>,
    /// Every event file, by path.
    pub files: Vec<FileEntry>,
    /// The profiles file, rewritten whole by every run.
    pub profiles: ProfilesEntry,
}

/// What an export covers, as an arrival watermark.
///
/// The store never changes or removes an event, so the events a shard had
/// when it was exported are the first `shard_events[s]` that arrived in
/// it. The next run finds them again by (user, time): among one user's
/// events of equal time the store keeps arrival order, so the first `k` of
/// each (user, time) group are the `k` already exported, and the rest —
/// late events with old times included — are new.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watermark {
    /// Events covered, in all.
    pub events: u64,
    /// Events covered per shard: the first this many to arrive in it.
    pub shard_events: Vec<u64>,
    /// The latest event time covered (epoch ms), if any.
    pub max_time: Option<i64>,
    /// When the last run finished (epoch ms, wall clock).
    pub exported_at: i64,
}

/// One column of the event files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnEntry {
    /// The column's name in the Parquet schema (`p0`, `p1`… for properties).
    pub column: String,
    /// What it holds: the fixed column's name, or the property's name.
    pub name: String,
    /// `string`, `int64`, `double`, `bool`, `timestamp_ms` or `json`.
    #[serde(rename = "type")]
    pub ty: String,
    /// A typed copy of a property (also in `props`).
    pub property: bool,
}

/// One event file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Path under the export root, `/`-separated.
    pub path: String,
    /// Its Hive partition values (`date`, `shard`).
    pub partition: BTreeMap<String, String>,
    /// The run that wrote it (its part number).
    pub run: u32,
    /// Shard of its events.
    pub shard: u32,
    /// Events in it.
    pub rows: u64,
    /// Earliest event time (epoch ms).
    pub min_time: i64,
    /// Latest event time (epoch ms).
    pub max_time: i64,
    /// Smallest user id (as text, the sort order of the file).
    pub min_user: String,
    /// Largest user id.
    pub max_user: String,
    /// File size.
    pub bytes: u64,
}

/// The profiles file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfilesEntry {
    /// Path under the export root.
    pub path: String,
    /// Profiles in it.
    pub rows: u64,
    /// File size.
    pub bytes: u64,
}

impl ExportManifest {
    /// The manifest of an empty export.
    pub fn new(partition: Partition, shards: u32) -> Self {
        ExportManifest {
            format: EXPORT_FORMAT.to_owned(),
            version: EXPORT_VERSION,
            partition,
            shards,
            runs: 0,
            watermark: Watermark {
                shard_events: vec![0; shards as usize],
                ..Watermark::default()
            },
            columns: Vec::new(),
            files: Vec::new(),
            profiles: ProfilesEntry::default(),
        }
    }

    /// Reads `dir/manifest.json`, or `None` if there is none. A manifest of
    /// another format or version is an error naming the file.
    pub fn load(dir: &Path) -> Result<Option<ExportManifest>> {
        let path = dir.join(MANIFEST_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(footprint_storage::Error::io(&path, e).into()),
        };
        let bad = |why: String| Error::Invalid(format!("{}: {why}", path.display()));
        let head: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(format!("not a manifest: {e}")))?;
        if head["format"] != EXPORT_FORMAT {
            return Err(bad(format!(
                "not a Footprint export manifest (format {})",
                head["format"]
            )));
        }
        if head["version"] != EXPORT_VERSION {
            return Err(bad(format!(
                "export format version {} cannot be continued by this build (writes {EXPORT_VERSION}); export into a new directory",
                head["version"]
            )));
        }
        let m: ExportManifest =
            serde_json::from_str(&text).map_err(|e| bad(format!("damaged manifest: {e}")))?;
        if m.watermark.shard_events.len() != m.shards as usize {
            return Err(bad(format!(
                "damaged manifest: {} shard watermarks for {} shards",
                m.watermark.shard_events.len(),
                m.shards
            )));
        }
        Ok(Some(m))
    }

    /// Atomically replaces `dir/manifest.json` with this manifest.
    pub fn store(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST_FILE);
        let mut text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        text.push('\n');
        footprint_storage::fsutil::write_atomic(&path, text.as_bytes())?;
        Ok(())
    }

    /// The property columns: (Parquet column, property name, type).
    pub fn properties(&self) -> impl Iterator<Item = &ColumnEntry> + '_ {
        self.columns.iter().filter(|c| c.property)
    }
}
