//! Footprint storage: a durable, user-sharded columnar event store.
//!
//! Events are logged to a CRC-framed write-ahead log (fsync'ed with group
//! commit before an ingest returns), held in a memtable, and flushed to
//! immutable segments sorted by (user, time), one per shard. A MANIFEST,
//! replaced atomically, lists the live segments; recovery replays the WAL
//! files it does not cover. See `storage/FORMAT.md` for every byte.
//!
//! ```
//! use footprint_storage::{Event, Store, StoreOptions, ScanSpec};
//! let dir = tempfile::tempdir().unwrap();
//! let (store, _report) = Store::open(dir.path(), StoreOptions::default()).unwrap();
//! store.ingest(vec![Event { user: "u1".into(), event: "signup".into(), time: 1_000, props: vec![] }]).unwrap();
//! store.flush().unwrap();
//! let mut n = 0;
//! for shard in store.snapshot().shards {
//!     shard.scan(&ScanSpec::default(), |u| n += u.len()).unwrap();
//! }
//! assert_eq!(n, 1);
//! ```

#![warn(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod bitpack;
pub mod codec;
pub mod cohorts;
pub mod dict;
pub mod error;
pub mod event;
pub mod failpoint;
pub mod fsutil;
pub mod manifest;
pub mod memtable;
mod mmap;
pub mod parse;
pub mod profiles;
pub mod scan;
pub mod segment;
pub mod store;
pub mod value;
pub mod wal;

pub use store::bulk;

pub use error::{Error, Result};
pub use event::{Alias, Event, ProfileOp, ProfileUpdate};
pub use parse::{Format, Parsed, RowError};
pub use profiles::{AliasGroups, Aliases, ProfileTable, Profiles, PropMap};
pub use scan::{Runs, ScanSpec, ShardSnapshot, UserRows};
pub use segment::SegmentFormat;
pub use store::{
    Ingested, OpenReport, Snapshot, Store, StoreOptions, StoreStats, DEFAULT_MAX_PROPS,
};
pub use value::{Family, Props, Value};
