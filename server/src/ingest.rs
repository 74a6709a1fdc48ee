//! `footprint ingest`: bulk loading files of NDJSON, JSON arrays or CSV.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use footprint_engine::storage::parse::{self, Format};
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
    let store = engine.store();
    let mut bulk = if logged {
        None
    } else {
        Some(store.bulk_load(4_000_000)?)
    };
    for src in sources {
        let name = src.name();
        let mut reader: Box<dyn Read> = match src {
            Source::File(p) => Box::new(
                std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?,
            ),
            Source::Stdin => Box::new(std::io::stdin().lock()),
        };
        let mut carry: Vec<u8> = Vec::new();
        let mut line_no = 1usize;
        let mut fmt: Option<Format> = match format {
            Format::Auto => None,
            f => Some(f),
        };
        let mut csv_header: Option<String> = None;
        let mut eof = false;
        while !eof {
            // Read a group of chunks, one per core, and parse them in parallel.
            let mut texts: Vec<(usize, String)> = Vec::new();
            for _ in 0..rayon::current_num_threads().max(2) {
                let mut buf = std::mem::take(&mut carry);
                let have = buf.len();
                buf.resize(have + CHUNK, 0);
                let mut filled = have;
                while filled < buf.len() {
                    let n = reader
                        .read(&mut buf[filled..])
                        .with_context(|| format!("cannot read {name}"))?;
                    if n == 0 {
                        eof = true;
                        break;
                    }
                    filled += n;
                }
                buf.truncate(filled);
                progress.inc((filled - have) as u64);
                summary.bytes += (filled - have) as u64;
                if buf.is_empty() {
                    break;
                }
                let f = *fmt.get_or_insert_with(|| {
                    parse::detect(&String::from_utf8_lossy(&buf[..buf.len().min(4096)]))
                });
                let cut = if eof {
                    buf.len()
                } else {
                    match split_point(&buf, f == Format::Csv) {
                        Some(p) => p,
                        None => bail!(
                            "{name}: a row near line {line_no} is longer than {} MiB",
                            CHUNK >> 20
                        ),
                    }
                };
                carry = buf.split_off(cut);
                let text = match String::from_utf8(buf) {
                    Ok(t) => t,
                    Err(e) => {
                        // Report the bad line and keep the rest of the chunk.
                        let good = e.utf8_error().valid_up_to();
                        let bytes = e.into_bytes();
                        let bad_line =
                            line_no + bytes[..good].iter().filter(|&&b| b == b'\n').count();
                        bail!("{name}:{bad_line}: input is not valid UTF-8")
                    }
                };
                let mut first = line_no;
                let lines = text.bytes().filter(|&b| b == b'\n').count();
                line_no += lines;
                let text = if f == Format::Csv {
                    match &csv_header {
                        None => {
                            let header = text.lines().next().unwrap_or("").to_owned();
                            csv_header = Some(header);
                            text
                        }
                        Some(h) => {
                            first -= 1;
                            format!("{h}\n{text}")
                        }
                    }
                } else {
                    text
                };
                texts.push((first, text));
                if eof {
                    break;
                }
            }
            let f = fmt.unwrap_or(Format::Json);
            let parsed: Vec<parse::Parsed> = texts
                .par_iter()
                .map(|(first, text)| parse::parse_batch(text, f, *first))
                .collect();
            for p in parsed {
                summary.accepted += p.events.len() as u64;
                record_errors(&mut summary, &name, p.errors, max_errors_shown);
                match bulk.as_mut() {
                    Some(b) => b.add(p.events)?,
                    None => engine.ingest(p.events)?,
                }
            }
            progress.set_message(format!(
                "{} events, {:.0}/s",
                summary.accepted,
                summary.accepted as f64 / start.elapsed().as_secs_f64().max(1e-9)
            ));
        }
    }
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

fn record_errors(summary: &mut LoadSummary, name: &str, errors: Vec<RowError>, max: usize) {
    summary.rejected += errors.len() as u64;
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
