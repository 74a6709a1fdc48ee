//! The write path: the write gate, the WAL and the poison flag.
//!
//! An ingest holds the gate shared from its WAL append until its rows are
//! in the memtable, so a flush that holds it exclusively sees every logged
//! record applied. Nothing under the exclusive gate does I/O: the WAL's
//! next file is created by the first append after a rotation.

use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::wal::{Wal, WalRecord};

use super::tables::{Frozen, Tables};

pub(crate) struct WritePath {
    gate: RwLock<()>,
    wal: Wal,
    /// Why the store refuses writes, after a write-path I/O error.
    poison: Mutex<Option<String>>,
}

impl WritePath {
    pub fn new(wal: Wal) -> Self {
        WritePath {
            gate: RwLock::new(()),
            wal,
            poison: Mutex::new(None),
        }
    }

    /// Refuses when an earlier write-path error poisoned the store.
    pub fn check(&self) -> Result<()> {
        match &*self.poison.lock() {
            Some(why) => Err(Error::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    /// Why the store refuses writes, if it does.
    pub fn poison_reason(&self) -> Option<String> {
        self.poison.lock().clone()
    }

    /// Passes `r` through, poisoning the store when it is an error.
    pub fn poisoned<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            let mut p = self.poison.lock();
            if p.is_none() {
                *p = Some(match e {
                    Error::Poisoned(why) => why.clone(),
                    e => e.to_string(),
                });
            }
        }
        r
    }

    /// Durably logs `rec`, then applies it to `tables`. Returns once it is
    /// on stable storage and visible to reads.
    pub fn write(&self, tables: &Tables, rec: WalRecord) -> Result<()> {
        self.check()?;
        let payload = rec.encode();
        let _g = self.gate.read();
        let ticket = self.poisoned(self.wal.append(&payload))?;
        self.poisoned(self.wal.sync(ticket))?;
        tables.apply(rec);
        Ok(())
    }

    /// Swaps the memtable out of `tables` and starts a new WAL file, at one
    /// instant: the returned memtable holds exactly the records of the WAL
    /// files before the returned number.
    pub fn freeze(&self, tables: &Tables, merge_at: usize) -> Option<(Frozen, u64)> {
        let _g = self.gate.write();
        let frozen = tables.freeze(merge_at)?;
        Some((frozen, self.wal.rotate()))
    }

    /// Whether the gate can be taken within `timeout` (health checks).
    pub fn responsive(&self, timeout: Duration) -> bool {
        self.gate.try_read_for(timeout).is_some()
    }
}
