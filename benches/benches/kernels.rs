//! Micro-benchmarks of the kernels a query spends its time in: column
//! decode (time deltas, event ids), bitmap pruning (skipping users who
//! never did step 1), the funnel state machine, and WAL append + fsync. `cargo bench -p footprint-benches`; CI only builds them.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use footprint_query::funnel::{level_with, Entry, Modes, Scratch};
use footprint_storage::bitpack::{self, BlockReader};
use footprint_storage::codec::{Dec, Enc};
use footprint_storage::wal::{Wal, WalRecord};
use footprint_storage::{Event, ScanSpec, Store, StoreOptions, Value};
use roaring::RoaringBitmap;

fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn decode(c: &mut Criterion) {
    let n = 1 << 20;
    let mut s = 1u64;
    // Time deltas shaped like sessions: seconds apart, a day gap every ~8 events.
    let deltas: Vec<u64> = (0..n)
        .map(|_| {
            if rng(&mut s).is_multiple_of(8) {
                86_400_000 + rng(&mut s) % 86_400_000
            } else {
                2_000 + rng(&mut s) % 60_000
            }
        })
        .collect();
    let events: Vec<u64> = (0..n)
        .map(|_| (rng(&mut s) % 13).min(rng(&mut s) % 13))
        .collect();
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(n as u64));
    for (name, col) in [("time_deltas", &deltas), ("event_ids", &events)] {
        let mut e = Enc::new();
        bitpack::encode(col, &mut e);
        g.bench_function(name, |b| {
            let mut out = Vec::with_capacity(bitpack::BLOCK);
            b.iter(|| {
                let mut d = Dec::new(&e.buf);
                let mut r = BlockReader::new(&mut d, usize::MAX).unwrap();
                let mut sum = 0u64;
                loop {
                    out.clear();
                    if !r.next_block(&mut out).unwrap() {
                        break;
                    }
                    sum = sum.wrapping_add(out[0]);
                }
                sum
            })
        });
    }
    g.finish();
}

/// Bitmap pruning: the per-event user bitmap is read from the segment and
/// the scan walks only the users in it. Measures the bitmap kernels (read,
/// membership walk) and a real segment scan with and without pruning, for
/// an event 6% of users did.
fn pruning(c: &mut Criterion) {
    let users = 200_000u32;
    let mut s = 3u64;
    let rare: RoaringBitmap = (0..users).filter(|_| rng(&mut s) % 100 < 6).collect();
    let mut g = c.benchmark_group("pruning");
    g.throughput(Throughput::Elements(u64::from(users)));
    let mut bytes = Vec::new();
    rare.serialize_into(&mut bytes).unwrap();
    g.bench_function("bitmap_read", |b| {
        b.iter(|| {
            RoaringBitmap::deserialize_unchecked_from(&bytes[..])
                .unwrap()
                .len()
        })
    });
    g.bench_function("membership_walk", |b| {
        b.iter(|| (0..users).filter(|u| rare.contains(*u)).count())
    });
    // A real segment: 200k users × 10 events, 6% of them did "pay".
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(
        dir.path(),
        StoreOptions {
            shards: 1,
            memtable_rows: 1 << 30,
            max_segments_per_shard: 64,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let mut events = Vec::new();
    for u in 0..users {
        for k in 0..10 {
            let pay = k == 9 && rare.contains(u);
            events.push(Event {
                user: format!("u{u:07}"),
                event: if pay { "pay" } else { "view" }.into(),
                time: 1_767_225_600_000 + i64::from(k) * 60_000 + i64::from(u),
                props: vec![],
            });
        }
    }
    store.ingest(events).unwrap();
    store.flush().unwrap();
    let snap = store.snapshot();
    let shard = &snap.shards[0];
    let pay = store.event_id("pay").unwrap();
    g.throughput(Throughput::Elements(u64::from(users) * 10));
    g.bench_function("scan_all_users", |b| {
        let spec = ScanSpec::default();
        b.iter(|| {
            let mut n = 0usize;
            shard.scan(&spec, |u| n += u.len()).unwrap();
            n
        })
    });
    g.bench_function("scan_pruned_by_bitmap", |b| {
        b.iter(|| {
            let spec = ScanSpec {
                users: Some(shard.event_users(pay).unwrap()),
                ..ScanSpec::default()
            };
            let mut n = 0usize;
            shard.scan(&spec, |u| n += u.len()).unwrap();
            n
        })
    });
    g.finish();
}

fn funnel(c: &mut Criterion) {
    // 100k users × ~25 step events each, 4 steps, 7-day window.
    let mut s = 7u64;
    let users: Vec<Vec<Entry>> = (0..100_000)
        .map(|_| {
            let mut t = 0i64;
            let mut v: Vec<Entry> = (0..25)
                .map(|i| {
                    t += (rng(&mut s) % 3_600_000) as i64;
                    (t, (1 + rng(&mut s) % 4) as u8, i)
                })
                .collect();
            v.sort_unstable();
            v
        })
        .collect();
    let total: usize = users.iter().map(|u| u.len()).sum();
    let mut g = c.benchmark_group("funnel");
    g.throughput(Throughput::Elements(total as u64));
    for (name, modes) in [
        ("default", Modes::default()),
        (
            "strict_order",
            Modes {
                strict_order: true,
                ..Modes::default()
            },
        ),
    ] {
        g.bench_function(name, |b| {
            let mut scratch = Scratch::default();
            b.iter(|| {
                users
                    .iter()
                    .map(|u| level_with(u, 4, 7 * 86_400_000, modes, &mut scratch).0)
                    .sum::<usize>()
            })
        });
    }
    g.finish();
}

fn wal(c: &mut Criterion) {
    let events: Vec<Event> = (0..1000)
        .map(|i| Event {
            user: format!("u{i}"),
            event: "visit".into(),
            time: 1_767_225_600_000 + i,
            props: vec![("utm_source".into(), Value::Str("baidu".into()))],
        })
        .collect();
    let payload = WalRecord::Events(events).encode();
    let mut g = c.benchmark_group("wal");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("append_fsync_1000_events", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let wal = Wal::new(dir.path(), 1);
                (dir, wal)
            },
            |(_dir, wal)| {
                let t = wal.append(&payload).unwrap();
                wal.sync(t).unwrap();
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, decode, pruning, funnel, wal);
criterion_main!(benches);
