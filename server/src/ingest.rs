//! `footprint ingest`: bulk loading files of NDJSON, JSON arrays or CSV.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use footprint_engine::storage::parse::{self, Format};
use footprint_engine::storage::{ProfileOp, ProfileUpdate};
use footprint_engine::{Engine, RowError};
use rayon::prelude::*;

/// Bytes read per parse unit.
const CHUNK: usize = 4 << 20;

/// Totals of a load.
#[derive(Debug, Default, serde::Serialize)]
pub struct LoadSummary {
    /// Rows stored.
    pub accepted: u64,
    /// Rows rejected.
    pub rejected: u64,
    /// The first rejected rows, with file and line.
    pub errors: Vec<String>,
    /// Bytes read.
    pub bytes: u64,
    /// Seconds taken, including the final fsyncs.
    pub seconds: f64,
    /// What was left out of accepted rows (property names past the limit).
    pub warnings: Vec<String>,
}

/// Where a source's rows come from.
pub enum Source {
    /// A file path.
    File(PathBuf),
    /// Standard input.
    Stdin,
}

impl Source {
    fn name(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::Stdin => "<stdin>".into(),
        }
    }
}

/// Splits `buf` at the last row boundary (a newline outside CSV quotes).
fn split_point(buf: &[u8], csv: bool) -> Option<usize> {
    if !csv {
        return buf.iter().rposition(|&b| b == b'\n').map(|p| p + 1);
    }
    let mut in_quotes = false;
    let mut last = None;
    for (i, &b) in buf.iter().enumerate() {
        match b {
            b'"' => in_quotes = !in_quotes,
            b'\n' if !in_quotes => last = Some(i + 1),
            _ => {}
        }
    }
    last
}

/// How a source's rows are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Ndjson,
    /// One JSON array, cut between elements.
    Array,
    Csv,
}

/// A run of whole rows to parse on its own: the bytes, their format, the
/// number of their first line (for an array, of their first element), and
/// for a piece of a JSON array, where it lies in the array.
struct Unit {
    bytes: Vec<u8>,
    format: Format,
    first: usize,
    part: Option<parse::ArrayPart>,
}

impl Unit {
    fn parse(&self) -> parse::Parsed {
        match self.part {
            Some(part) => parse::parse_json_array_part(&self.bytes, self.first, part),
            None => parse::parse_batch(&self.bytes, self.format, self.first),
        }
    }

    /// The unit's rows as profile updates (CSV rows get `op`).
    fn parse_profiles(&self, op: ProfileOp) -> parse::Rows<ProfileUpdate> {
        match self.part {
            Some(part) => parse::parse_profile_array_part(&self.bytes, self.first, part),
            None => parse::parse_profile_batch(&self.bytes, self.format, self.first, op),
        }
    }
}

/// Cuts a source into units of whole rows, byte-wise: nothing here needs
/// the input to be UTF-8 (a row that is not is rejected by the parser, with
/// its line, like any other bad row).
struct Chunker<'a> {
    name: String,
    reader: Box<dyn Read + 'a>,
    format: Format,
    layout: Option<Layout>,
    carry: Vec<u8>,
    /// Line of `carry`'s first byte (NDJSON, CSV) or number of its first
    /// element (array).
    next: usize,
    /// The array's `[` lies in an earlier unit.
    opened: bool,
    csv_header: Option<Vec<u8>>,
    /// Dropping the rest of an overlong NDJSON row.
    skipping: bool,
    eof: bool,
}

impl<'a> Chunker<'a> {
    fn new(name: String, reader: Box<dyn Read + 'a>, format: Format) -> Self {
        Chunker {
            name,
            reader,
            format,
            layout: None,
            carry: Vec::new(),
            next: 1,
            opened: false,
            csv_header: None,
            skipping: false,
            eof: false,
        }
    }

    /// The next unit; `Ok(None)` at the end of the source. Rows it cannot
    /// pass on whole (an NDJSON row over the chunk size) go to `rejected`.
    fn next_unit(
        &mut self,
        summary: &mut LoadSummary,
        progress: &indicatif::ProgressBar,
        rejected: &mut Vec<RowError>,
    ) -> Result<Option<Unit>> {
        loop {
            if self.eof && self.carry.is_empty() {
                return Ok(None);
            }
            let mut buf = std::mem::take(&mut self.carry);
            let have = buf.len();
            buf.resize(have + CHUNK, 0);
            let mut filled = have;
            while filled < buf.len() && !self.eof {
                let n = self
                    .reader
                    .read(&mut buf[filled..])
                    .with_context(|| format!("cannot read {}", self.name))?;
                if n == 0 {
                    self.eof = true;
                }
                filled += n;
            }
            buf.truncate(filled);
            progress.inc((filled - have) as u64);
            summary.bytes += (filled - have) as u64;
            if self.skipping {
                // The rest of an overlong row: drop it through its newline.
                if let Some(p) = buf.iter().position(|&b| b == b'\n') {
                    self.skipping = false;
                    self.next += 1;
                    self.carry = buf.split_off(p + 1);
                }
                continue;
            }
            if buf.is_empty() {
                return Ok(None);
            }
            let layout = *self.layout.get_or_insert_with(|| {
                let head = &buf[..buf.len().min(4096)];
                match self.format {
                    Format::Csv => Layout::Csv,
                    Format::Auto if parse::detect(head) == Format::Csv => Layout::Csv,
                    _ if parse::is_json_array(head) => Layout::Array,
                    _ => Layout::Ndjson,
                }
            });
            let first = self.next;
            let cut = if self.eof {
                Some(buf.len())
            } else {
                match layout {
                    Layout::Ndjson => split_point(&buf, false),
                    Layout::Csv => split_point(&buf, true),
                    Layout::Array => parse::array_cut(&buf, self.opened).map(|(cut, n)| {
                        self.next += n;
                        cut
                    }),
                }
            };
            let Some(cut) = cut else {
                if layout != Layout::Ndjson {
                    bail!(
                        "{}: a row near {} {first} is longer than {} MiB",
                        self.name,
                        if layout == Layout::Array {
                            "array element"
                        } else {
                            "line"
                        },
                        CHUNK >> 20
                    );
                }
                rejected.push(RowError {
                    line: first,
                    message: format!("longer than {} MiB; skipped", CHUNK >> 20),
                });
                self.skipping = true;
                continue;
            };
            let mut bytes = buf;
            self.carry = bytes.split_off(cut);
            let unit = match layout {
                Layout::Ndjson | Layout::Csv => {
                    self.next += bytes.iter().filter(|&&b| b == b'\n').count();
                    match (&self.csv_header, layout) {
                        (None, Layout::Csv) => {
                            let end = bytes
                                .iter()
                                .position(|&b| b == b'\n')
                                .unwrap_or(bytes.len());
                            self.csv_header = Some(bytes[..end].to_vec());
                            Unit {
                                bytes,
                                format: Format::Csv,
                                first,
                                part: None,
                            }
                        }
                        (Some(h), Layout::Csv) => {
                            let mut with_header = Vec::with_capacity(h.len() + 1 + bytes.len());
                            with_header.extend_from_slice(h);
                            with_header.push(b'\n');
                            with_header.extend_from_slice(&bytes);
                            Unit {
                                bytes: with_header,
                                format: Format::Csv,
                                first: first - 1,
                                part: None,
                            }
                        }
                        _ => Unit {
                            bytes,
                            format: Format::Json,
                            first,
                            part: None,
                        },
                    }
                }
                Layout::Array => {
                    // The cut's comma lies between this piece and the next.
                    let cut = !self.carry.is_empty();
                    if cut {
                        self.carry.remove(0);
                    }
                    let part = parse::ArrayPart {
                        continued: self.opened,
                        cut,
                    };
                    self.opened = true;
                    Unit {
                        bytes,
                        format: Format::Json,
                        first,
                        part: Some(part),
                    }
                }
            };
            return Ok(Some(unit));
        }
    }
}

/// Loads every source into `engine` as one all-or-nothing bulk load, or
/// through the WAL batch by batch when `logged` (then flushed at the end
/// if `flush`).
pub fn load(
    engine: &Engine,
    sources: &[Source],
    format: Format,
    logged: bool,
    flush: bool,
    max_errors_shown: usize,
    progress: &indicatif::ProgressBar,
) -> Result<LoadSummary> {
    let start = Instant::now();
    let mut summary = LoadSummary::default();
    let mut dropped = footprint_engine::storage::Ingested::default();
    let store = engine.store();
    let mut bulk = if logged {
        None
    } else {
        Some(store.bulk_load(4_000_000)?)
    };
    read_units(
        sources,
        format,
        &mut summary,
        progress,
        max_errors_shown,
        |summary, name, units| {
            let parsed: Vec<parse::Parsed> = units.par_iter().map(Unit::parse).collect();
            drop(units);
            for p in parsed {
                summary.accepted += p.events.len() as u64;
                summary.rejected += p.rejected as u64;
                record_errors(summary, name, p.errors, max_errors_shown);
                let outcome = match bulk.as_mut() {
                    Some(b) => b.add(p.events)?,
                    None => engine.ingest(p.events)?,
                };
                dropped.merge(outcome);
            }
            progress.set_message(format!(
                "{} events, {:.0}/s",
                summary.accepted,
                summary.accepted as f64 / start.elapsed().as_secs_f64().max(1e-9)
            ));
            Ok(())
        },
    )?;
    summary
        .warnings
        .extend(dropped.warning(engine.store().options().max_props));
    progress.set_message("publishing");
    match bulk {
        Some(b) => {
            b.commit()?;
        }
        None if flush => engine.flush()?,
        None => {}
    }
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

/// Reads every source in units of whole rows, a group of units (one per
/// core) at a time, and hands each group to `group`; rows the chunker
/// itself rejects are counted and described in `summary`.
fn read_units(
    sources: &[Source],
    format: Format,
    summary: &mut LoadSummary,
    progress: &indicatif::ProgressBar,
    max_errors_shown: usize,
    mut group: impl FnMut(&mut LoadSummary, &str, Vec<Unit>) -> Result<()>,
) -> Result<()> {
    for src in sources {
        let name = src.name();
        let reader: Box<dyn Read> = match src {
            Source::File(p) => Box::new(
                std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?,
            ),
            Source::Stdin => Box::new(std::io::stdin().lock()),
        };
        let mut chunker = Chunker::new(name.clone(), reader, format);
        let mut done = false;
        while !done {
            let mut units = Vec::new();
            let mut rejected = Vec::new();
            for _ in 0..rayon::current_num_threads().max(2) {
                match chunker.next_unit(summary, progress, &mut rejected)? {
                    Some(u) => units.push(u),
                    None => {
                        done = true;
                        break;
                    }
                }
            }
            summary.rejected += rejected.len() as u64;
            record_errors(summary, &name, rejected, max_errors_shown);
            group(summary, &name, units)?;
        }
    }
    Ok(())
}

/// Profile rows held before they are written into a new profile base, so
/// an import's memory stays bounded by this many rows (each batch
/// rewrites the base).
const PROFILE_ROWS_PER_IMPORT: usize = 1 << 18;

/// Upserts profile rows (a CRM export: CSV with a header, NDJSON or a
/// JSON array of update rows) into `engine`: straight into a new profile
/// base file per batch of rows, durable once this returns.
pub fn load_profiles(
    engine: &Engine,
    sources: &[Source],
    format: Format,
    op: ProfileOp,
    max_errors_shown: usize,
    progress: &indicatif::ProgressBar,
) -> Result<LoadSummary> {
    let start = Instant::now();
    let mut summary = LoadSummary::default();
    let mut pending: Vec<ProfileUpdate> = Vec::new();
    read_units(
        sources,
        format,
        &mut summary,
        progress,
        max_errors_shown,
        |summary, name, units| {
            let parsed: Vec<parse::Rows<ProfileUpdate>> =
                units.par_iter().map(|u| u.parse_profiles(op)).collect();
            drop(units);
            for p in parsed {
                summary.accepted += p.rows.len() as u64;
                summary.rejected += p.rejected as u64;
                record_errors(summary, name, p.errors, max_errors_shown);
                pending.extend(p.rows);
            }
            if pending.len() >= PROFILE_ROWS_PER_IMPORT {
                progress.set_message("writing profiles");
                engine
                    .store()
                    .import_profiles(std::mem::take(&mut pending))?;
            }
            progress.set_message(format!(
                "{} profiles, {:.0}/s",
                summary.accepted,
                summary.accepted as f64 / start.elapsed().as_secs_f64().max(1e-9)
            ));
            Ok(())
        },
    )?;
    progress.set_message("writing profiles");
    engine.store().import_profiles(pending)?;
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

/// Keeps the first `max` errors of a load (the counts are kept apart).
fn record_errors(summary: &mut LoadSummary, name: &str, errors: Vec<RowError>, max: usize) {
    for e in errors {
        if summary.errors.len() < max {
            summary
                .errors
                .push(format!("{name}:{}: {}", e.line, e.message));
        }
    }
}

/// Total size of the file sources, for the progress bar.
pub fn total_bytes(sources: &[Source]) -> Option<u64> {
    let mut total = 0;
    for s in sources {
        match s {
            Source::File(p) => total += std::fs::metadata(Path::new(p)).ok()?.len(),
            Source::Stdin => return None,
        }
    }
    Some(total)
}
