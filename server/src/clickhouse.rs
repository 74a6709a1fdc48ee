//! A ClickHouse HTTP client for the CLI (issue 19): `load-clickhouse`
//! streams a store's events and profiles into the tables of
//! `footprint sql --ddl clickhouse`, and `query --clickhouse` runs a
//! query's translation there and rebuilds the result JSON.
//!
//! Only the HTTP interface (port 8123): a POST whose body is the SQL, or
//! `?query=INSERT … FORMAT JSONEachRow` with the rows as the body. An
//! answer other than 200 is an error carrying the status and
//! ClickHouse's own message.

use std::io::Write as _;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use footprint_engine::clickhouse::{event_row, for_each_row, profile_rows, table_columns};
use footprint_engine::Engine;
use indicatif::ProgressBar;

/// Largest answer read (a long-form result has one row per leaf).
const MAX_ANSWER: u64 = 1 << 30;

/// One ClickHouse server (or a cluster's entry point).
pub struct Client {
    url: String,
    user: Option<String>,
    password: Option<String>,
    gzip: bool,
    agent: ureq::Agent,
}

impl Client {
    /// A client of the HTTP interface at `url` (`http://host:8123`,
    /// optionally with settings such as `?database=fp`); with `gzip`,
    /// request bodies are sent compressed.
    pub fn new(url: &str, user: Option<String>, password: Option<String>, gzip: bool) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .user_agent("footprint-clickhouse/1")
            .build();
        Client {
            url: url.trim_end_matches('/').to_owned(),
            user,
            password,
            gzip,
            agent: ureq::Agent::new_with_config(config),
        }
    }

    /// POSTs `body`, with `query` (if any) and `settings` in the URL;
    /// ClickHouse's answer, or an error naming the status and its message.
    fn post(&self, query: Option<&str>, settings: &[(&str, &str)], body: &[u8]) -> Result<String> {
        let mut params = form_urlencoded::Serializer::new(String::new());
        if let Some(q) = query {
            params.append_pair("query", q);
        }
        for (k, v) in settings {
            params.append_pair(k, v);
        }
        let params = params.finish();
        let url = match (params.is_empty(), self.url.contains('?')) {
            (true, _) => self.url.clone(),
            (false, true) => format!("{}&{params}", self.url),
            (false, false) => format!("{}/?{params}", self.url),
        };
        let mut req = self.agent.post(&url);
        if let Some(u) = &self.user {
            req = req.header("X-ClickHouse-User", u);
        }
        if let Some(p) = &self.password {
            req = req.header("X-ClickHouse-Key", p);
        }
        let sent = if self.gzip {
            req = req.header("Content-Encoding", "gzip");
            let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            z.write_all(body).context("cannot compress a request")?;
            z.finish().context("cannot compress a request")?
        } else {
            body.to_vec()
        };
        let resp = req
            .send(&sent[..])
            .with_context(|| format!("ClickHouse at {} cannot be reached", self.url))?;
        let status = resp.status();
        let text = resp
            .into_body()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_string()
            .with_context(|| format!("cannot read ClickHouse's answer ({status})"))?;
        if !status.is_success() {
            bail!(
                "ClickHouse at {} answered {status}: {}",
                self.url,
                text.trim()
            );
        }
        Ok(text)
    }

    /// Runs one statement; its output.
    pub fn execute(&self, sql: &str) -> Result<String> {
        self.post(None, &[], sql.as_bytes())
    }

    /// Inserts `rows` (JSONEachRow lines) into `table`, waiting for a
    /// Distributed table to have passed them to its shards, so that a
    /// count right after sees them. A typed property column the table
    /// lacks (DDL made without `--data`) is skipped: `props` has it.
    pub fn insert(&self, table: &str, rows: &[u8]) -> Result<()> {
        self.post(
            Some(&format!("INSERT INTO {table} FORMAT JSONEachRow")),
            &[
                ("insert_distributed_sync", "1"),
                ("input_format_skip_unknown_fields", "1"),
            ],
            rows,
        )
        .with_context(|| format!("inserting into {table}"))?;
        Ok(())
    }

    /// `SELECT count() FROM table`.
    pub fn count(&self, table: &str) -> Result<u64> {
        let text = self.execute(&format!("SELECT count() FROM {table}"))?;
        text.trim()
            .parse()
            .with_context(|| format!("ClickHouse counted {table} as {:?}", text.trim()))
    }
}

/// What [`load`] sends where.
pub struct LoadOptions {
    /// The events table.
    pub table: String,
    /// The profiles table.
    pub profiles: String,
    /// Rows per INSERT.
    pub batch_rows: usize,
}

/// Streams every event and profile of `engine` into ClickHouse; the
/// (events, profiles) sent, each checked against a count afterwards.
/// The tables must be empty: loading twice would count every event twice.
pub fn load(
    engine: &Engine,
    client: &Client,
    opts: &LoadOptions,
    pb: &ProgressBar,
) -> Result<(u64, u64)> {
    for t in [&opts.table, &opts.profiles] {
        let n = client.count(t)?;
        if n > 0 {
            bail!("{t} already holds {n} rows; loading again would count them twice (TRUNCATE TABLE {t} first)");
        }
    }
    let store = engine.store();
    let typed = table_columns(store)?;
    let batch = opts.batch_rows.max(1);
    let mut buf = String::new();
    let (mut rows, mut events) = (0usize, 0u64);
    let mut failed: Option<anyhow::Error> = None;
    for_each_row(store, |shard, e, seq| {
        if failed.is_some() {
            return;
        }
        event_row(&mut buf, shard, e, seq, &typed);
        rows += 1;
        if rows >= batch {
            if let Err(e) = client.insert(&opts.table, buf.as_bytes()) {
                failed = Some(e);
            }
            events += rows as u64;
            pb.inc(rows as u64);
            buf.clear();
            rows = 0;
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    if rows > 0 {
        client.insert(&opts.table, buf.as_bytes())?;
        events += rows as u64;
        pb.inc(rows as u64);
    }
    let profiles = profile_rows(store);
    pb.set_message("profiles");
    for chunk in profiles.chunks(batch) {
        let mut body = chunk.join("\n");
        body.push('\n');
        client.insert(&opts.profiles, body.as_bytes())?;
    }
    for (t, sent) in [
        (&opts.table, events),
        (&opts.profiles, profiles.len() as u64),
    ] {
        let n = client.count(t)?;
        if n != sent {
            bail!("sent {sent} rows to {t}, but ClickHouse counts {n}");
        }
    }
    Ok((events, profiles.len() as u64))
}

/// Runs translated `sql` (long form: path, num, text) and rebuilds the
/// result JSON with [`footprint_engine::query::sql::rebuild`].
pub fn query(client: &Client, sql: &str) -> Result<serde_json::Value> {
    #[derive(serde::Deserialize)]
    struct Row {
        path: String,
        num: Option<f64>,
        text: Option<String>,
    }
    let text = client.execute(&format!("{sql}\nFORMAT JSONEachRow"))?;
    let mut leaves = Vec::new();
    for (i, line) in text.lines().filter(|l| !l.is_empty()).enumerate() {
        let r: Row = serde_json::from_str(line)
            .with_context(|| format!("ClickHouse's row {} is not (path, num, text)", i + 1))?;
        leaves.push((r.path, r.num, r.text));
    }
    footprint_engine::query::sql::rebuild(leaves)
        .map_err(|e| anyhow::anyhow!("cannot rebuild the result from ClickHouse's rows: {e}"))
}
