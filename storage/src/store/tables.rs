//! The in-memory tables of a store: dictionaries, the memtable, the live
//! segments of every shard, profiles and aliases, behind one lock.
//!
//! The lock (`state`) is the innermost of the store's locks but the WAL's
//! and the poison flag's (see `store/mod.rs`). It is never held across I/O
//! or a call out of this file: readers copy what they need (a
//! [`Snapshot`] is a list of `Arc`s) and let go.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use crate::dict::{Dict, DictTail};
use crate::event::Event;
use crate::manifest::DictCounts;
use crate::memtable::{push_run, MemBatch, Memtable};
use crate::profiles::{Aliases, Overlay, ProfileBase, ProfileTable};
use crate::scan::ShardSnapshot;
use crate::segment::Segment;
use crate::value::Value;
use crate::wal::WalRecord;

use super::Snapshot;

pub(crate) struct State {
    pub users: Dict,
    pub events: Dict,
    pub props: Dict,
    pub mem: Memtable,
    /// The memtable a running flush is writing out (still visible to reads).
    pub frozen: Option<Arc<Memtable>>,
    pub segments: Vec<Vec<(u64, Arc<Segment>)>>,
    pub profiles: ProfileTable,
    pub aliases: Arc<Aliases>,
    /// Profiles or aliases changed since the last snapshot file.
    pub profiles_dirty: bool,
}

/// What a flush takes out of the tables at once.
pub(crate) struct Frozen {
    pub mem: Arc<Memtable>,
    /// Profiles and aliases to write, when they changed.
    pub profiles: Option<ProfilesOut>,
}

/// The profile files a flush writes.
pub(crate) struct ProfilesOut {
    /// A new base to write: the old one and the changes a merge took.
    pub merge: Option<(Option<Arc<ProfileBase>>, Arc<Overlay>)>,
    /// The changes the snapshot file holds (those not merged).
    pub changes: Overlay,
    pub aliases: Arc<Aliases>,
}

/// The dictionary names not yet durable, copied out for a manifest update.
pub(crate) struct DictTails {
    users: DictTail,
    events: DictTail,
    props: DictTail,
}

pub(crate) struct Tables {
    state: RwLock<State>,
    shards: u32,
}

impl Tables {
    pub fn new(state: State, shards: u32) -> Self {
        Tables {
            state: RwLock::new(state),
            shards,
        }
    }

    /// Runs `f` over the state, shared. `f` must not call back into the store.
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.state.read())
    }

    /// Runs `f` over the state, exclusive. `f` must not do I/O or call back
    /// into the store.
    pub fn write<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.write())
    }

    /// Whether the lock can be taken within `timeout` (health checks).
    pub fn responsive(&self, timeout: Duration) -> bool {
        self.state.try_read_for(timeout).is_some()
    }

    /// Applies a logged record (ingest and replay).
    pub fn apply(&self, rec: WalRecord) {
        apply(&mut self.state.write(), self.shards, rec);
    }

    /// Leaves out of `events` the properties whose names are new and would
    /// take the number of property names past `max`. Names are admitted
    /// in row order; concurrent batches may together pass `max` by the new
    /// names they carry.
    pub fn admit_props(&self, events: &mut [Event], max: usize) -> super::Ingested {
        let st = self.state.read();
        let known = st.props.len();
        let mut out = super::Ingested::default();
        if known + events.iter().map(|e| e.props.len()).sum::<usize>() <= max {
            return out; // cannot pass the limit: nothing to look up
        }
        let mut admitted: rustc_hash::FxHashSet<String> = Default::default();
        for e in events.iter_mut() {
            e.props.retain(|(k, _)| {
                if st.props.get(k).is_some() || admitted.contains(k) {
                    return true;
                }
                if known + admitted.len() < max {
                    admitted.insert(k.clone());
                    return true;
                }
                out.dropped_values += 1;
                if out.dropped.len() < 10 && !out.dropped.contains(k) {
                    out.dropped.push(k.clone());
                }
                false
            });
        }
        out
    }

    /// Interns the names of `events` and appends their rows to per-shard
    /// batches (bulk load).
    /// Property names past `max` are left out here, as they are interned
    /// (a bulk load logs nothing, so nothing else must agree with it).
    pub fn intern_into(
        &self,
        events: Vec<Event>,
        per_shard: &mut [MemBatch],
        max: usize,
    ) -> super::Ingested {
        let mut st = self.state.write();
        let mut out = super::Ingested::default();
        intern_events(
            &mut st,
            self.shards,
            events.into_iter(),
            per_shard,
            Some((max, &mut out)),
        );
        out
    }

    /// Swaps out the memtable (and changed profiles) for a flush; `None`
    /// when there is nothing to write. Profile changes are merged into a
    /// new base once `merge_at` users changed (0: always, even none).
    pub fn freeze(&self, merge_at: usize) -> Option<Frozen> {
        let mut st = self.state.write();
        let merge = st.profiles.overlay().len() >= merge_at;
        if st.mem.rows == 0 && !st.profiles_dirty && !merge {
            return None;
        }
        let mem = Arc::new(std::mem::replace(
            &mut st.mem,
            Memtable::new(self.shards as usize),
        ));
        st.frozen = Some(mem.clone());
        let profiles = (st.profiles_dirty || merge).then(|| {
            let merge = if merge { st.profiles.freeze() } else { None };
            ProfilesOut {
                changes: match merge {
                    Some(_) => Overlay::default(),
                    None => st.profiles.overlay().clone(),
                },
                merge,
                aliases: st.aliases.clone(),
            }
        });
        st.profiles_dirty = false;
        Some(Frozen { mem, profiles })
    }

    /// The dictionary names a manifest update must make durable first.
    pub fn dict_tails(&self) -> DictTails {
        let st = self.state.read();
        DictTails {
            users: st.users.tail(),
            events: st.events.tail(),
            props: st.props.tail(),
        }
    }

    /// A consistent read view of every shard, with profiles and aliases.
    pub fn snapshot(&self) -> Snapshot {
        let st = self.state.read();
        let shards = (0..self.shards as usize)
            .map(|s| {
                let mut mem = Vec::new();
                if let Some(f) = &st.frozen {
                    mem.extend(f.shards[s].iter().cloned());
                }
                mem.extend(st.mem.shards[s].iter().cloned());
                ShardSnapshot {
                    segments: st.segments[s].iter().map(|(_, seg)| seg.clone()).collect(),
                    mem,
                }
            })
            .collect();
        Snapshot {
            shards,
            profiles: st.profiles.clone(),
            aliases: st.aliases.clone(),
        }
    }
}

impl DictTails {
    /// Appends and fsyncs the names; returns the counts a manifest may promise.
    pub fn write(&self, ddir: &std::path::Path) -> crate::error::Result<DictCounts> {
        Ok(DictCounts {
            users: Dict::write_tail(&ddir.join("users.dict"), &self.users)?,
            events: Dict::write_tail(&ddir.join("events.dict"), &self.events)?,
            props: Dict::write_tail(&ddir.join("props.dict"), &self.props)?,
        })
    }
}

impl State {
    /// Records that the dictionaries are durable up to `c`.
    pub fn mark_persisted(&mut self, c: &DictCounts) {
        self.users.mark_persisted(c.users);
        self.events.mark_persisted(c.events);
        self.props.mark_persisted(c.props);
    }
}

/// Applies a logged record to the in-memory state.
pub(crate) fn apply(st: &mut State, shards: u32, rec: WalRecord) {
    match rec {
        WalRecord::Events(evs) => {
            let mut per_shard: Vec<MemBatch> = vec![MemBatch::default(); shards as usize];
            let bytes = intern_events(st, shards, evs.into_iter(), &mut per_shard, None);
            for (s, b) in per_shard.into_iter().enumerate() {
                if !b.is_empty() {
                    st.mem.rows += b.len();
                    push_run(&mut st.mem.shards[s], b);
                }
            }
            st.mem.bytes += bytes;
        }
        WalRecord::Profiles(ups) => {
            for u in &ups {
                let uid = st.users.intern(&u.user);
                st.profiles.apply(uid, u);
            }
            st.profiles_dirty = true;
        }
        WalRecord::Aliases(al) => {
            for a in &al {
                let anonymous = st.users.intern(&a.anonymous);
                let known = st.users.intern(&a.known);
                Arc::make_mut(&mut st.aliases).link(anonymous, known);
            }
            st.profiles_dirty = true;
        }
    }
}

/// Interns names and appends rows to per-shard batches; returns approximate
/// bytes. With `limit`, a property whose name is new once the dictionary
/// holds `max` names is left out and counted.
fn intern_events(
    st: &mut State,
    shards: u32,
    evs: impl Iterator<Item = Event>,
    per_shard: &mut [MemBatch],
    mut limit: Option<(usize, &mut super::Ingested)>,
) -> usize {
    let mut bytes = 0usize;
    for e in evs {
        let uid = st.users.intern(&e.user);
        let ev = st.events.intern(&e.event);
        let mut props: Vec<(u32, Value)> = Vec::with_capacity(e.props.len());
        for (k, v) in e.props {
            match &mut limit {
                Some((max, out)) if st.props.len() >= *max && st.props.get(&k).is_none() => {
                    out.dropped_values += 1;
                    if out.dropped.len() < 10 && !out.dropped.contains(&k) {
                        out.dropped.push(k);
                    }
                }
                _ => props.push((st.props.intern(&k), v)),
            }
        }
        bytes += 32 + props.len() * 40;
        let b = &mut per_shard[(uid % shards) as usize];
        b.uids.push(uid);
        b.events.push(ev);
        b.times.push(e.time);
        b.props.push(props);
    }
    bytes
}
