//! `footprint`: generate, load, inspect and query a Footprint database.

#![forbid(unsafe_code)]

// mimalloc: bulk parsing allocates many small strings from two threads;
// glibc malloc spent half the ingest time in consolidation there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `println!` for the CLI's output: when stdout is closed (`footprint stats
/// | head`) the process ends quietly with status 141, as Unix tools do,
/// instead of panicking; any other write error is reported.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($t)*) {
            $crate::stdout_failed(e);
        }
    }};
}

mod bench;
mod clickhouse;
mod gen;
mod rng;

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use footprint_engine::export::{ExportOptions, Partition};
use footprint_engine::storage::{parse, ProfileOp};
use footprint_engine::{Engine, EngineOptions, Format, StoreOptions};
use footprint_server::{http, ingest};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

#[derive(Parser)]
#[command(
    name = "footprint",
    version,
    about = "Footprint: an embedded engine for user-behavior analytics"
)]
struct Cli {
    /// Most distinct event property names a data set may have; values of
    /// new names beyond it are not stored, with a warning.
    #[arg(long, global = true, default_value_t = footprint_engine::storage::DEFAULT_MAX_PROPS)]
    max_props: usize,
    #[command(subcommand)]
    cmd: Cmd,
}

/// `--max-props`, for every store this process opens.
static MAX_PROPS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

#[derive(Subcommand)]
enum Cmd {
    /// Generate a deterministic synthetic SaaS event stream (with `--out
    /// FILE`, the users' CRM profiles go to FILE.profiles.ndjson and, as a
    /// typed CSV export, FILE.profiles.csv).
    Gen {
        /// Number of users.
        #[arg(long, default_value_t = 10_000)]
        users: u64,
        /// Number of events (exact).
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Days the data spans, starting 2026-01-01.
        #[arg(long, default_value_t = 90)]
        days: u32,
        /// Random seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write NDJSON events here (profiles go to FILE.profiles.ndjson and FILE.profiles.csv).
        #[arg(long, conflicts_with = "data")]
        out: Option<PathBuf>,
        /// Load straight into this data directory.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Shards of a new data directory.
        #[arg(long, default_value_t = 16)]
        shards: u32,
    },
    /// Load events from files (NDJSON, JSON array or CSV; `-` is stdin).
    Ingest {
        #[command(flatten)]
        load: LoadArgs,
        /// Go through the WAL batch by batch (each batch durable on its own)
        /// instead of one all-or-nothing bulk load.
        #[arg(long)]
        wal: bool,
        /// Skip merging the loaded segments afterwards.
        #[arg(long)]
        no_compact: bool,
        /// With `--wal`: leave the loaded rows in the WAL and the memtable
        /// (no flush, no merge); the next process replays them.
        #[arg(long, requires = "wal")]
        no_flush: bool,
    },
    /// User profiles: bulk import of a CRM export.
    Profiles {
        #[command(subcommand)]
        cmd: ProfilesCmd,
    },
    /// List the watches of a data directory, or run one once (post what
    /// is waiting, evaluate, post the new batch). Not while a server has
    /// the directory open.
    Watch {
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
        #[command(subcommand)]
        cmd: WatchCmd,
    },
    /// List the saved health scores of a data directory, or run one now
    /// (write each member's score to its profile property). Not while a
    /// server has the directory open.
    Score {
        #[command(subcommand)]
        cmd: ScoreCmd,
    },
    /// Show events, users, segments and bytes on disk per column.
    Stats {
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Build a demo: generate a SaaS data set into DIR (unless it exists),
    /// print its stats and run sample analyses.
    Demo {
        /// The data directory.
        #[arg(long, default_value = "demo-data")]
        data: PathBuf,
        /// Number of users.
        #[arg(long, default_value_t = 20_000)]
        users: u64,
        /// Number of events.
        #[arg(long, default_value_t = 2_000_000)]
        events: u64,
    },
    /// Run a query (JSON from a file, or `-` for stdin) and print the result.
    Query {
        /// The data directory (with --clickhouse: optional, names are
        /// checked against it).
        #[arg(long, required_unless_present = "clickhouse")]
        data: Option<PathBuf>,
        /// Run the query's SQL translation on this ClickHouse HTTP
        /// endpoint (http://HOST:8123) instead, over the tables of
        /// `sql --ddl clickhouse` filled by `load-clickhouse`.
        #[arg(long)]
        clickhouse: Option<String>,
        /// With --clickhouse: the events relation.
        #[arg(long, default_value = "events", requires = "clickhouse")]
        table: String,
        /// With --clickhouse: the profiles relation.
        #[arg(long, default_value = "profiles", requires = "clickhouse")]
        profiles_table: String,
        #[command(flatten)]
        auth: ChAuth,
        /// Time budget in milliseconds.
        #[arg(long)]
        timeout_ms: Option<u64>,
        /// Print timing to stderr.
        #[arg(long)]
        timing: bool,
        /// The query file, or `-`.
        file: String,
    },
    /// Print a query as SQL that gives the same answer from the tables of
    /// `export --parquet`, one row per leaf of the result (path, num, text);
    /// or, with --ddl, the DDL of those tables in ClickHouse.
    Sql {
        /// The SQL dialect.
        #[arg(long, value_enum, default_value = "clickhouse")]
        dialect: DialectArg,
        /// Print the DDL of the events and profiles tables instead (with
        /// --data, the typed property columns of that store).
        #[arg(long, value_enum, conflicts_with = "file")]
        ddl: Option<DialectArg>,
        /// With --ddl: replicated tables and Distributed tables on this
        /// cluster (default: MergeTree tables for one server).
        #[arg(long, requires = "ddl")]
        cluster: Option<String>,
        /// With --ddl: the database of the tables.
        #[arg(long, default_value = "default", requires = "ddl")]
        database: String,
        /// The events relation: a table name or a table function.
        #[arg(long, default_value = "events")]
        table: String,
        /// The profiles relation (user, props as JSON text), read by
        /// queries with user conditions or user_prop.
        #[arg(long, default_value = "profiles")]
        profiles: String,
        /// A data directory whose names the query is checked against, as
        /// `query` checks them (default: none, any well-formed query).
        #[arg(long)]
        data: Option<PathBuf>,
        /// The query file, or `-`.
        #[arg(required_unless_present = "ddl")]
        file: Option<String>,
    },
    /// Stream a store's events and profiles into ClickHouse tables made
    /// by `sql --ddl clickhouse` (empty ones), over its HTTP interface.
    LoadClickhouse {
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
        /// The ClickHouse HTTP endpoint (http://HOST:8123).
        #[arg(long)]
        url: String,
        /// The events table.
        #[arg(long, default_value = "events")]
        table: String,
        /// The profiles table.
        #[arg(long, default_value = "profiles")]
        profiles_table: String,
        /// Rows per INSERT.
        #[arg(long, default_value_t = 100_000)]
        batch_rows: usize,
        /// Send the rows gzip-compressed.
        #[arg(long)]
        gzip: bool,
        #[command(flatten)]
        auth: ChAuth,
    },
    /// Run query files against a data set and report latencies.
    Bench {
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
        /// Query files or directories of them (default: benches/queries).
        #[arg(long = "queries", num_args = 1..)]
        queries: Vec<PathBuf>,
        /// Measured runs per query (after one warm-up).
        #[arg(long, default_value_t = 5)]
        repeat: usize,
        /// Query threads (0 = one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Serve the HTTP API (see server/API.md) until SIGINT/SIGTERM.
    Serve {
        /// The data directory (created if missing).
        #[arg(long)]
        data: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
        /// API keys file; required to listen on anything but loopback.
        #[arg(long)]
        keys: Option<PathBuf>,
        /// Largest request body in MiB (after gzip decoding too).
        #[arg(long, default_value_t = 64)]
        max_body_mb: usize,
        /// Per-query time budget in milliseconds.
        #[arg(long, default_value_t = 30_000)]
        query_timeout_ms: u64,
        /// Queries running at once; more are answered 503 + Retry-After.
        #[arg(long, default_value_t = 8)]
        max_queries: usize,
        /// Ingest requests (events, profiles, aliases) in flight at once;
        /// more are answered 503 + Retry-After.
        #[arg(long, default_value_t = 8)]
        max_ingests: usize,
        /// MiB that request bodies in flight may hold in all (as sent, as
        /// decoded and as parsed rows); beyond it, 503 + Retry-After.
        /// At least twice --max-body-mb.
        #[arg(long, default_value_t = 1024)]
        max_inflight_mb: usize,
        /// Milliseconds a client has to send a whole body (else 408).
        #[arg(long, default_value_t = 60_000)]
        body_timeout_ms: u64,
        /// Seconds a live cohort's members may age before a read
        /// re-evaluates its definition.
        #[arg(long, default_value_t = 60)]
        cohort_max_age_secs: u64,
        /// Shards of a new data directory.
        #[arg(long, default_value_t = 16)]
        shards: u32,
    },
    /// Export events and profiles as Parquet for ClickHouse, DuckDB, Spark:
    /// `events/date=YYYY-MM-DD/shard=NNN/part-RRRRR.parquet`, rows sorted by
    /// (user, time, seq), `profiles.parquet` and `manifest.json`. Into a
    /// directory that holds an export, only the events that arrived since
    /// are added (late ones with old times too).
    Export {
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
        /// Output directory (created if missing).
        #[arg(long)]
        parquet: PathBuf,
        /// Directory layout of a new export: `date` (date=YYYY-MM-DD/shard=NNN/,
        /// the UTC day) or `shard` (shard=NNN/). An existing export keeps its own.
        #[arg(long, value_enum)]
        partition: Option<PartitionArg>,
        /// `last`: append the events that arrived since the export already
        /// in the directory (its manifest's watermark); fail if there is none.
        /// Without it, a directory with an export is appended to as well.
        #[arg(long, value_enum)]
        since: Option<SinceArg>,
    },
    /// Flush the memtable and merge every shard's segments into one.
    Compact {
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
    },
}

#[derive(Subcommand)]
enum ScoreCmd {
    /// Every saved score with its last run, as JSON lines.
    List {
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
    },
    /// Run score NAME once, now.
    Run {
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
        /// The score's name.
        name: String,
    },
}

#[derive(Subcommand)]
enum WatchCmd {
    /// Every watch with its status, as JSON lines.
    List,
    /// Run watch ID once, now (each post tried up to 5 times).
    Run {
        /// The watch's id.
        id: String,
    },
}

/// What every load from files takes.
#[derive(clap::Args)]
struct LoadArgs {
    /// The data directory.
    #[arg(long)]
    data: PathBuf,
    /// Input format.
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    format: FormatArg,
    /// How many rejected rows to print.
    #[arg(long, default_value_t = 20)]
    show_errors: usize,
    /// Shards of a new data directory.
    #[arg(long, default_value_t = 16)]
    shards: u32,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Input files (`-` is stdin).
    #[arg(required = true)]
    files: Vec<String>,
}

#[derive(Subcommand)]
enum ProfilesCmd {
    /// Upsert profiles from files: CSV with a header `user,<prop>[:<type>],…`
    /// (types: string, int, number, bool, time), NDJSON or a JSON array of
    /// update rows `{"user", "op", "props"}`; `-` is stdin. Bad rows are
    /// reported by line and skipped; the others are kept, durably.
    Import {
        #[command(flatten)]
        load: LoadArgs,
        /// The operation applied with each CSV row (JSON rows name their
        /// own): set, set_once, unset, add, append, union or remove.
        #[arg(long, default_value = "set", value_parser = parse::profile_op)]
        op: ProfileOp,
    },
}

/// ClickHouse credentials (default: ClickHouse's `default` user).
#[derive(clap::Args)]
struct ChAuth {
    /// The ClickHouse user.
    #[arg(long)]
    user: Option<String>,
    /// The ClickHouse user's password.
    #[arg(long)]
    password: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum PartitionArg {
    Date,
    Shard,
}

#[derive(Clone, Copy, ValueEnum)]
enum SinceArg {
    Last,
}

#[derive(Clone, Copy, ValueEnum)]
enum DialectArg {
    Clickhouse,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Auto,
    Json,
    Csv,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Auto => Format::Auto,
            FormatArg::Json => Format::Json,
            FormatArg::Csv => Format::Csv,
        }
    }
}

/// Input files by name, `-` for stdin.
fn sources(files: &[String]) -> Vec<ingest::Source> {
    files
        .iter()
        .map(|f| match f.as_str() {
            "-" => ingest::Source::Stdin,
            f => ingest::Source::File(PathBuf::from(f)),
        })
        .collect()
}

/// Prints a load's summary (`what`: the rows it loads); the exit code is 2
/// when rows were rejected.
fn print_load(summary: &ingest::LoadSummary, json: bool, what: &str) -> Result<i32> {
    if json {
        out!("{}", serde_json::to_string_pretty(summary)?);
    } else {
        for e in &summary.errors {
            eprintln!("rejected {e}");
        }
        for w in &summary.warnings {
            eprintln!("warning: {w}");
        }
        if summary.rejected as usize > summary.errors.len() {
            eprintln!(
                "… and {} more rejected rows",
                summary.rejected as usize - summary.errors.len()
            );
        }
        out!(
            "accepted {} {what}, rejected {} rows, {:.1} MB in {:.2} s ({:.0} {what}/s); durable",
            summary.accepted,
            summary.rejected,
            summary.bytes as f64 / 1e6,
            summary.seconds,
            summary.accepted as f64 / summary.seconds.max(1e-9)
        );
    }
    Ok(if summary.rejected > 0 { 2 } else { 0 })
}

/// Ends the process after a failed write to stdout.
fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(141);
    }
    eprintln!("error: writing to stdout: {e}");
    std::process::exit(1);
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FOOTPRINT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let _ = MAX_PROPS.set(cli.max_props);
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

fn open(data: &std::path::Path, shards: u32, background: bool) -> Result<Engine> {
    let opts = EngineOptions {
        store: StoreOptions {
            shards,
            max_props: MAX_PROPS
                .get()
                .copied()
                .unwrap_or(footprint_engine::storage::DEFAULT_MAX_PROPS),
            ..StoreOptions::default()
        },
        background,
        ..EngineOptions::default()
    };
    Engine::open(data, opts).with_context(|| format!("cannot open {}", data.display()))
}

/// Opens an existing data directory (not creating one by mistake).
fn open_existing(data: &std::path::Path) -> Result<Engine> {
    if !data.join("MANIFEST").exists() {
        bail!(
            "{} is not a Footprint data directory (no MANIFEST)",
            data.display()
        );
    }
    open(data, 16, false)
}

/// Query `file`'s SQL over the `table` and `profiles` relations, its
/// names checked against `data` if given.
fn translate(
    file: &str,
    data: Option<&std::path::Path>,
    table: String,
    profiles: String,
) -> Result<String> {
    let text = read_query(file)?;
    let q: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{file}: the query is not valid JSON"))?;
    // Without a data directory, an empty one resolves no names: every
    // well-formed query translates.
    let scratch = tempfile::tempdir().context("cannot make a scratch directory")?;
    let engine = match data {
        Some(d) => open_existing(d)?,
        None => open(scratch.path(), 1, false)?,
    };
    let opts = footprint_engine::query::sql::Options {
        table,
        profiles,
        ..Default::default()
    };
    Ok(engine.translate_sql(&q, &opts, None)?)
}

/// A query file's text, or stdin's for `-`.
fn read_query(file: &str) -> Result<String> {
    if file == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("cannot read stdin")?;
        Ok(s)
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))
    }
}

fn bar(total: Option<u64>, what: &str) -> ProgressBar {
    let pb = match total {
        Some(t) => ProgressBar::new(t),
        None => ProgressBar::no_length(),
    };
    let style = ProgressStyle::with_template(&format!(
        "{what} [{{elapsed_precise}}] {{wide_bar}} {{percent}}% {{msg}}"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb
}

fn run(cli: Cli) -> Result<i32> {
    match cli.cmd {
        Cmd::Gen {
            users,
            events,
            days,
            seed,
            out,
            data,
            shards,
        } => {
            if users == 0 || events < users {
                bail!("--events must be at least --users (every user has at least one event), and --users at least 1");
            }
            if days == 0 {
                bail!("--days must be at least 1");
            }
            let spec = gen::GenSpec {
                users,
                events,
                days,
                seed,
            };
            cmd_gen(spec, out, data, shards)
        }
        Cmd::Ingest {
            load:
                LoadArgs {
                    data,
                    format,
                    show_errors,
                    shards,
                    json,
                    files,
                },
            wal,
            no_compact,
            no_flush,
        } => {
            let sources = sources(&files);
            let format = format.into();
            // No background thread with --no-flush: it would flush.
            let engine = open(&data, shards, !no_flush)?;
            let pb = bar(ingest::total_bytes(&sources), "ingest");
            let summary =
                ingest::load(&engine, &sources, format, wal, !no_flush, show_errors, &pb)?;
            pb.finish_and_clear();
            if !no_compact && !no_flush {
                // The load is durable already; merging its runs makes the
                // data faster to query.
                let t = Instant::now();
                let merges = engine.store().compact_all()?;
                if merges > 0 && !json {
                    eprintln!(
                        "compacted {merges} shards in {:.2} s",
                        t.elapsed().as_secs_f64()
                    );
                }
            }
            if no_flush {
                // Every batch is in the WAL already; closing would flush.
                drop(engine);
            } else {
                engine.close()?;
            }
            print_load(&summary, json, "events")
        }
        Cmd::Profiles {
            cmd:
                ProfilesCmd::Import {
                    load:
                        LoadArgs {
                            data,
                            format,
                            show_errors,
                            shards,
                            json,
                            files,
                        },
                    op,
                },
        } => {
            let sources = sources(&files);
            let engine = open(&data, shards, true)?;
            let pb = bar(ingest::total_bytes(&sources), "import");
            let summary =
                ingest::load_profiles(&engine, &sources, format.into(), op, show_errors, &pb)?;
            pb.finish_and_clear();
            engine.close()?;
            print_load(&summary, json, "profiles")
        }
        Cmd::Watch { data, cmd } => {
            let engine = open(&data, 16, false)?;
            let watches = footprint_server::watch::Watches::open(&data)?;
            match cmd {
                WatchCmd::List => {
                    for w in watches.list() {
                        out!("{w}");
                    }
                    Ok(0)
                }
                WatchCmd::Run { id } => {
                    if !watches.ids().contains(&id) {
                        bail!("no watch {id:?}; `footprint watch --data DIR list` lists them");
                    }
                    let r = watches.run(&engine, &id, true, 5)?;
                    out!("{}", serde_json::to_string(&r)?);
                    engine.close()?;
                    Ok(if r.error.is_some() { 1 } else { 0 })
                }
            }
        }
        Cmd::Score { cmd } => match cmd {
            ScoreCmd::List { data } => {
                let scores = footprint_server::scores::Scores::open(&data)?;
                for s in scores.list() {
                    out!("{s}");
                }
                Ok(0)
            }
            ScoreCmd::Run { data, name } => {
                let scores = footprint_server::scores::Scores::open(&data)?;
                if !scores.names().contains(&name) {
                    bail!("no score {name:?}; `footprint score list --data DIR` lists them");
                }
                let engine = open(&data, 16, false)?;
                let r = scores.run(&engine, &name, Default::default())?;
                out!("{}", serde_json::to_string(&r)?);
                engine.close()?;
                Ok(0)
            }
        },
        Cmd::Stats { data, json } => {
            let engine = open(&data, 16, false)?;
            let s = engine.stats()?;
            if json {
                out!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print_stats(&s);
            }
            Ok(0)
        }
        Cmd::Demo {
            data,
            users,
            events,
        } => cmd_demo(&data, users, events),
        Cmd::Bench {
            data,
            queries,
            repeat,
            threads,
            json,
        } => {
            if !data.join("MANIFEST").exists() {
                bail!(
                    "{} is not a Footprint data directory (no MANIFEST)",
                    data.display()
                );
            }
            let queries = if queries.is_empty() {
                vec![PathBuf::from("benches/queries")]
            } else {
                queries
            };
            let files = bench::query_files(&queries)?;
            if files.is_empty() {
                bail!("no query files found");
            }
            let opts = EngineOptions {
                store: StoreOptions::default(),
                background: false,
                query_threads: threads,
                ..EngineOptions::default()
            };
            let engine = Engine::open(&data, opts)
                .with_context(|| format!("cannot open {}", data.display()))?;
            if !json {
                let st = engine.stats()?;
                out!(
                    "{} events, {} users, {:.0} MB on disk; after open: RSS {:.0} MB (heap {:.0} MB, mapped {:.0} MB)",
                    st.events,
                    st.users,
                    (st.segment_bytes + st.dict_bytes + st.wal_bytes + st.profile_bytes) as f64 / 1e6,
                    bench::proc_status("VmRSS:") as f64 / 1e6,
                    bench::proc_status("RssAnon:") as f64 / 1e6,
                    bench::proc_status("RssFile:") as f64 / 1e6,
                );
            }
            let rows = bench::run(&engine, &files, repeat)?;
            if json {
                out!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                bench::print(&rows);
            }
            Ok(0)
        }
        Cmd::Export {
            data,
            parquet,
            partition,
            since,
        } => {
            if !data.join("MANIFEST").exists() {
                bail!(
                    "{} is not a Footprint data directory (no MANIFEST)",
                    data.display()
                );
            }
            let engine = open(&data, 16, false)?;
            let total = engine.stats()?.events;
            let pb = bar(Some(total), "export");
            let t = Instant::now();
            let opts = ExportOptions {
                partition: partition.map(|p| match p {
                    PartitionArg::Date => Partition::Date,
                    PartitionArg::Shard => Partition::Shard,
                }),
                since_last: matches!(since, Some(SinceArg::Last)),
            };
            let s = engine.export_parquet(&parquet, &opts, &|n| pb.inc(n))?;
            pb.finish_and_clear();
            let secs = t.elapsed().as_secs_f64();
            out!(
                "exported {} events{} and {} profiles to {} (run {}, by {}, {} files, {:.1} MB, typed property columns: {}) in {:.2} s, {:.0} events/s",
                s.events,
                if s.incremental {
                    format!(" new since the last export ({} already there)", s.already)
                } else {
                    String::new()
                },
                s.profiles,
                parquet.display(),
                s.run,
                s.partition,
                s.files,
                s.bytes as f64 / 1e6,
                s.typed_props.join(", "),
                secs,
                (s.events + s.already) as f64 / secs.max(1e-9)
            );
            Ok(0)
        }
        Cmd::Serve {
            data,
            addr,
            keys,
            max_body_mb,
            query_timeout_ms,
            max_queries,
            max_ingests,
            max_inflight_mb,
            body_timeout_ms,
            cohort_max_age_secs,
            shards,
        } => {
            let keys = match keys {
                Some(p) => Some(http::load_keys(&p)?),
                None => None,
            };
            let cfg = http::Config {
                keys,
                max_body: max_body_mb.saturating_mul(1 << 20),
                query_timeout: std::time::Duration::from_millis(query_timeout_ms),
                max_queries,
                max_ingests,
                max_inflight: max_inflight_mb.saturating_mul(1 << 20),
                body_timeout: std::time::Duration::from_millis(body_timeout_ms),
                cohort_max_age: std::time::Duration::from_secs(cohort_max_age_secs),
                ..http::Config::new(addr)
            };
            if cfg.keys.is_none() && !addr.ip().is_loopback() {
                bail!("refusing to listen on {addr} without API keys: pass --keys FILE or bind to 127.0.0.1");
            }
            cfg.check()?;
            let engine = open(&data, shards, true)?;
            http::serve(engine, cfg)?;
            Ok(0)
        }
        Cmd::Sql {
            dialect: DialectArg::Clickhouse,
            ddl: Some(DialectArg::Clickhouse),
            cluster,
            database,
            data,
            ..
        } => {
            let typed = match &data {
                Some(d) => footprint_engine::clickhouse::table_columns(open_existing(d)?.store())?,
                None => Vec::new(),
            };
            let opts = footprint_engine::clickhouse::DdlOptions { cluster, database };
            let mut out = std::io::stdout().lock();
            out.write_all(footprint_engine::clickhouse::ddl(&typed, &opts).as_bytes())
                .unwrap_or_else(|e| stdout_failed(e));
            Ok(0)
        }
        Cmd::Sql {
            dialect: DialectArg::Clickhouse,
            table,
            profiles,
            data,
            file,
            ..
        } => {
            let sql = translate(
                file.as_deref().unwrap_or("-"),
                data.as_deref(),
                table,
                profiles,
            )?;
            let mut out = std::io::stdout().lock();
            out.write_all(sql.as_bytes())
                .unwrap_or_else(|e| stdout_failed(e));
            Ok(0)
        }
        Cmd::LoadClickhouse {
            data,
            url,
            table,
            profiles_table,
            batch_rows,
            gzip,
            auth,
        } => {
            let engine = open_existing(&data)?;
            let client = clickhouse::Client::new(&url, auth.user, auth.password, gzip);
            let pb = bar(Some(engine.stats()?.events), "load");
            let t = Instant::now();
            let opts = clickhouse::LoadOptions {
                table,
                profiles: profiles_table,
                batch_rows,
            };
            let (events, profiles) = clickhouse::load(&engine, &client, &opts, &pb)?;
            pb.finish_and_clear();
            out!(
                "loaded {events} events into {} and {profiles} profiles into {} in {:.2} s; ClickHouse counts them all",
                opts.table,
                opts.profiles,
                t.elapsed().as_secs_f64()
            );
            Ok(0)
        }
        Cmd::Query {
            data,
            clickhouse: Some(url),
            table,
            profiles_table,
            auth,
            file,
            ..
        } => {
            let sql = translate(&file, data.as_deref(), table, profiles_table)?;
            let client = clickhouse::Client::new(&url, auth.user, auth.password, false);
            let result = clickhouse::query(&client, &sql)?;
            out!("{}", serde_json::to_string_pretty(&result)?);
            Ok(0)
        }
        Cmd::Query {
            data,
            timeout_ms,
            timing,
            file,
            ..
        } => {
            let text = read_query(&file)?;
            let data = data.context("--data DIR or --clickhouse URL is required")?;
            let engine = open_existing(&data)?;
            let q: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{file}: the query is not valid JSON"))?;
            let stats = std::sync::Arc::new(footprint_engine::ScanStats::default());
            let opts = footprint_engine::QueryOptions {
                timeout: timeout_ms.map(std::time::Duration::from_millis),
                stats: Some(stats.clone()),
                ..Default::default()
            };
            let t = Instant::now();
            let result = engine.query_json(&q, opts)?;
            if timing {
                use std::sync::atomic::Ordering::Relaxed;
                eprintln!(
                    "query took {:.1} ms; decoded {} events of {} users; {} users counted from bitmaps",
                    t.elapsed().as_secs_f64() * 1e3,
                    stats.events_read.load(Relaxed),
                    stats.users_read.load(Relaxed),
                    stats.users_from_bitmaps.load(Relaxed),
                );
            }
            out!("{}", serde_json::to_string_pretty(&result)?);
            Ok(0)
        }
        Cmd::Compact { data } => {
            let engine = open(&data, 16, false)?;
            let t = Instant::now();
            engine.flush()?;
            let merges = engine.store().compact_all()?;
            out!(
                "compacted {merges} shards in {:.2} s",
                t.elapsed().as_secs_f64()
            );
            engine.close()?;
            Ok(0)
        }
    }
}

fn cmd_demo(data: &std::path::Path, users: u64, events: u64) -> Result<i32> {
    if !data.join("MANIFEST").exists() {
        out!(
            "generating {events} events of {users} users into {} …",
            data.display()
        );
        let spec = gen::GenSpec {
            users,
            events,
            days: 90,
            seed: 1,
        };
        cmd_gen(spec, None, Some(data.to_owned()), 16)?;
    } else {
        out!("using the existing data set in {}", data.display());
    }
    let engine = open(data, 16, false)?;
    print_stats(&engine.stats()?);
    let demos = [
        (
            "4-step activation funnel, 7-day window, by utm_source",
            r#"{"kind": "funnel", "steps": [{"event": "visit"}, {"event": "signup"}, {"event": "view_demo"}, {"event": "create_report"}],
             "window": {"value": 7, "unit": "day"}, "breakdown": [{"event_prop": "utm_source"}], "limit": 3}"#,
        ),
        (
            "which channels bring the payments: attribution by channel, 30-day lookback, six models",
            r#"{"kind": "attribution", "conversion": {"event": "pay"}, "value_prop": "amount",
             "touch": {"event": "visit"}, "by": {"channel": true}, "lookback": {"value": 30, "unit": "day"},
             "models": ["last", "first", "linear", "position", "time_decay", "participation"], "limit": 6}"#,
        ),
        (
            "weekly lifecycle of logins: new, returning, resurrecting, dormant",
            r#"{"kind": "lifecycle", "event": {"event": "login"}, "interval": "week",
             "time_range": {"from": "2026-02-02T00:00:00Z", "to": "2026-03-30T00:00:00Z"}}"#,
        ),
        (
            "weekly retention of signups (return = login)",
            r#"{"kind": "retention", "start": {"event": "signup"}, "return": {"event": "login"}, "unit": "week", "periods": 4}"#,
        ),
        (
            "time from signup to first payment",
            r#"{"kind": "interval", "from": {"event": "signup"}, "to": {"event": "pay"}, "pairs": "first"}"#,
        ),
        (
            "weekly visitors and revenue",
            r#"{"kind": "events", "interval": "week",
             "metrics": [{"event": "visit", "agg": "users"}, {"event": "pay", "agg": "sum", "prop": "amount"}]}"#,
        ),
        (
            "at-risk accounts: 3+ logins in the last 30 days, none in the last 7 (saved as a cohort)",
            r#"{"kind": "users", "time_range": {"from": "2026-01-01T00:00:00Z", "to": "2026-03-31T00:00:00Z"},
             "did": [{"event": "login", "count": {"op": "gte", "value": 3}, "within": {"value": 30, "unit": "day"}}],
             "did_not": [{"event": "login", "within": {"value": 7, "unit": "day"}}],
             "save_as": "at_risk", "return_users": 5}"#,
        ),
        (
            "daily sessions in the first week (pages: visit and view_page, by page)",
            r#"{"kind": "sessions", "interval": "day", "page_events": ["visit", "view_page"], "page_prop": "page",
             "time_range": {"from": "2026-01-01T00:00:00Z", "to": "2026-01-08T00:00:00Z"}, "top": 3}"#,
        ),
        (
            "top paths from a visit, labelled by page (Sankey nodes and links)",
            r#"{"kind": "paths", "start": {"event": "visit"}, "steps": 3,
             "label": {"prop": "page", "events": ["visit", "view_page"]}, "top": 3}"#,
        ),
        (
            "what users click on /pricing",
            r#"{"kind": "heatmap", "event": {"event": "click", "where": {"prop": "page", "op": "eq", "value": "/pricing"}},
             "by": {"element": "element"}, "limit": 3}"#,
        ),
        (
            "how often the at-risk accounts logged in",
            r#"{"kind": "distribution", "event": "login", "buckets": [1, 2, 3, 6, 11, 21],
             "users": {"cohort": "at_risk"}}"#,
        ),
    ];
    for (title, q) in demos {
        let t = Instant::now();
        let r = engine.query(q)?;
        out!(
            "\n== {title} ({:.1} ms)\n{q}\n{}",
            t.elapsed().as_secs_f64() * 1e3,
            serde_json::to_string_pretty(&r)?
        );
    }
    engine.close()?;
    Ok(0)
}

fn print_stats(s: &footprint_engine::StoreStats) {
    let ev = s.events.max(1) as f64;
    out!(
        "events        {:>14} ({} in segments, {} in memtable)",
        s.events,
        s.events_in_segments,
        s.events_in_memtable
    );
    out!("users         {:>14}", s.users);
    out!("event names   {:>14}", s.event_names);
    out!("shards        {:>14}", s.shards);
    out!("segments      {:>14}", s.segments);
    out!("profiles      {:>14} ({} aliases)", s.profiles, s.aliases);
    out!("column bytes (segments):");
    let core: u64 = ["users", "time", "event", "tie", "event pairs"]
        .iter()
        .filter_map(|k| s.column_bytes.get(*k))
        .sum();
    for (k, v) in &s.column_bytes {
        out!("  {k:<22} {v:>14}  {:>6.2} B/event", *v as f64 / ev);
    }
    out!(
        "  {:<22} {core:>14}  {:>6.2} B/event",
        "user+event+time",
        core as f64 / ev
    );
    let total = s.segment_bytes + s.dict_bytes + s.wal_bytes + s.profile_bytes;
    out!("segments      {:>14} bytes", s.segment_bytes);
    out!("dictionaries  {:>14} bytes", s.dict_bytes);
    out!("wal           {:>14} bytes", s.wal_bytes);
    out!("profiles      {:>14} bytes", s.profile_bytes);
    out!(
        "total         {:>14} bytes  {:.2} B/event",
        total,
        total as f64 / ev
    );
}

fn cmd_gen(
    spec: gen::GenSpec,
    out: Option<PathBuf>,
    data: Option<PathBuf>,
    shards: u32,
) -> Result<i32> {
    let budgets = gen::budgets(&spec);
    let t = Instant::now();
    const USERS_PER_CHUNK: usize = 2_000;
    let chunks: Vec<(usize, &[u64])> = budgets
        .chunks(USERS_PER_CHUNK)
        .enumerate()
        .map(|(i, c)| (i * USERS_PER_CHUNK, c))
        .collect();
    let pb = bar(Some(spec.events), "gen");
    match (out, data) {
        (Some(path), None) => {
            let file = std::fs::File::create(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
            for group in chunks.chunks(rayon::current_num_threads().max(1) * 4) {
                let texts: Vec<(String, u64)> = group
                    .par_iter()
                    .map(|(first, b)| {
                        let mut evs = Vec::new();
                        let mut s = String::new();
                        for (k, &n) in b.iter().enumerate() {
                            evs.clear();
                            gen::user_events(&spec, (first + k) as u64, n, &mut evs);
                            for e in &evs {
                                gen::write_ndjson(e, &mut s);
                            }
                        }
                        (s, b.iter().sum())
                    })
                    .collect();
                for (s, n) in texts {
                    w.write_all(s.as_bytes())
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    pb.inc(n);
                }
            }
            w.flush()?;
            let ppath = PathBuf::from(format!("{}.profiles.ndjson", path.display()));
            let mut pw = std::io::BufWriter::new(
                std::fs::File::create(&ppath)
                    .with_context(|| format!("cannot create {}", ppath.display()))?,
            );
            let cpath = PathBuf::from(format!("{}.profiles.csv", path.display()));
            let mut cw = std::io::BufWriter::new(
                std::fs::File::create(&cpath)
                    .with_context(|| format!("cannot create {}", cpath.display()))?,
            );
            cw.write_all(gen::PROFILE_CSV_HEADER.as_bytes())?;
            let (mut s, mut c) = (String::new(), String::new());
            for i in 0..spec.users {
                s.clear();
                c.clear();
                let p = gen::user_profile(&spec, i);
                gen::write_profile_ndjson(&p, &mut s);
                gen::write_profile_csv(&p, &mut c);
                pw.write_all(s.as_bytes())?;
                cw.write_all(c.as_bytes())?;
            }
            pw.flush()?;
            cw.flush()?;
            pb.finish_and_clear();
            out!(
                "wrote {} events of {} users to {} and profiles to {} in {:.2} s",
                spec.events,
                spec.users,
                path.display(),
                ppath.display(),
                t.elapsed().as_secs_f64()
            );
        }
        (None, Some(dir)) => {
            let engine = open(&dir, shards, true)?;
            let store = engine.store();
            let mut bulk = store.bulk_load(4_000_000)?;
            for group in chunks.chunks(rayon::current_num_threads().max(1) * 4) {
                let batches: Vec<Vec<footprint_engine::Event>> = group
                    .par_iter()
                    .map(|(first, b)| {
                        let mut evs = Vec::new();
                        for (k, &n) in b.iter().enumerate() {
                            gen::user_events(&spec, (first + k) as u64, n, &mut evs);
                        }
                        evs
                    })
                    .collect();
                for evs in batches {
                    pb.inc(evs.len() as u64);
                    bulk.add(evs)?;
                }
            }
            pb.set_message("publishing");
            bulk.commit()?;
            pb.set_message("merging segments");
            engine.store().compact_all()?;
            let profiles: Vec<_> = (0..spec.users)
                .map(|i| gen::user_profile(&spec, i))
                .collect();
            engine.upsert_profiles(profiles)?;
            engine.close()?;
            pb.finish_and_clear();
            out!(
                "loaded {} events of {} users into {} in {:.2} s",
                spec.events,
                spec.users,
                dir.display(),
                t.elapsed().as_secs_f64()
            );
        }
        _ => bail!("give exactly one of --out FILE or --data DIR"),
    }
    Ok(0)
}
