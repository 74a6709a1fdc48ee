//! Child process of the crash test: ingests numbered batches forever and
//! prints `ack N` after batch N is acknowledged. The test kills it with
//! SIGKILL at random moments.

use std::io::Write;
use std::time::Duration;

use footprint_engine::{Engine, EngineOptions, Event, StoreOptions, Value};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: crash_writer DIR START_BATCH");
    let start: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .expect("start batch");
    let opts = EngineOptions {
        store: StoreOptions {
            shards: 4,
            memtable_rows: 300,
            max_segments_per_shard: 3,
            ..StoreOptions::default()
        },
        background: true,
        flush_interval: Duration::from_millis(50),
        query_threads: 1,
        ..EngineOptions::default()
    };
    let engine = Engine::open(std::path::Path::new(&dir), opts).expect("open");
    let out = std::io::stdout();
    for batch in start.. {
        let events: Vec<Event> = (0..batch_len(batch)).map(|i| event(batch, i)).collect();
        engine.ingest(events).expect("ingest");
        let mut o = out.lock();
        writeln!(o, "ack {batch}").expect("stdout");
        o.flush().expect("stdout");
    }
}

/// Batch sizes vary so frames and flushes fall at varied offsets.
pub fn batch_len(batch: u64) -> u64 {
    1 + (batch * 7919) % 23
}

/// Event `i` of batch `batch`: deterministic, so the test can rebuild it.
pub fn event(batch: u64, i: u64) -> Event {
    Event {
        user: format!("user-{}", (batch * 31 + i) % 97),
        event: ["visit", "signup", "pay"][(i % 3) as usize].into(),
        time: 1_700_000_000_000 + (batch as i64) * 1000 + i as i64,
        props: vec![
            ("batch".into(), Value::Int(batch as i64)),
            ("i".into(), Value::Int(i as i64)),
        ],
    }
}
