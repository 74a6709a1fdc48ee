//! The read API for the query layer: per shard, each user's events in time
//! order, merged across segments and the memtable, restricted to a time
//! range, with only the requested property columns decoded.
//!
//! Segment columns are decoded block by block as the scan walks the users,
//! so a scan holds a few thousand decoded rows per segment, not the segment.

use std::sync::Arc;

use roaring::RoaringBitmap;

mod ev;
#[cfg(test)]
mod ev_tests;
use ev::EvRows;

use crate::bitpack::{BlockReader, BLOCK};
use crate::error::{Error, Result};
use crate::memtable::MemRun;
use crate::segment::{PropReader, Segment, SegmentFormat, PROP_CHUNK};
use crate::value::Value;

/// What a scan reads.
#[derive(Debug, Clone, Default)]
pub struct ScanSpec {
    /// Half-open `[from, to)` time range; `None` = all time.
    pub range: Option<(i64, i64)>,
    /// Property ids to decode; `UserRows::prop(k, i)` reads `props[k]`.
    pub props: Vec<u32>,
    /// Only these users (e.g. those who did step 1); `None` = all.
    pub users: Option<RoaringBitmap>,
    /// Never these users (e.g. alias groups, which are read separately).
    pub skip: Option<RoaringBitmap>,
    /// The event ids the query looks at (`events[id]`), when it needs only
    /// some. Segment rows of other events are then left out after
    /// decoding, so the query walks only the rows it can use. Not a
    /// promise: rows of other events may still appear (memtable rows are
    /// never filtered), so consumers keep checking event ids.
    pub events: Option<Vec<bool>>,
    /// The query never reads times (e.g. counts over all time): when the
    /// range is `None` and the shard has a single source, segment time
    /// columns are not decoded and `UserRows::times` is empty. A hint:
    /// times may still be there. Without times a format 2 segment hands
    /// over a user's rows grouped by event, not in time order, so only a
    /// query that does not depend on row order may ask.
    pub skip_times: bool,
    /// The query can take a user's rows as per-event runs
    /// ([`UserRows::runs`]) instead of one time-ordered list. A user whose
    /// rows all lie in one format 2 segment then comes as each event's
    /// rows as stored, without merging them; other users come as usual.
    /// Not with `props` (runs carry no properties) or skipped times.
    pub runs: bool,
    /// [`UserRows::origin`] must answer (it always can for memtable runs
    /// and format 1 segments; format 2 segments then keep each row's
    /// stream position, as they do when reading properties).
    pub origins: bool,
}

/// A user's rows as one run of times per event, each ascending (rows of
/// one event at the same time in arrival order). Only the events the scan
/// asked for; empty runs are left out. Runs do not say in which order rows
/// of *different* events at the same millisecond arrived: a query that
/// needs that takes merged rows.
#[derive(Debug, Clone, Copy)]
pub struct Runs<'a> {
    list: &'a [(u32, usize, usize)],
    times: &'a [i64],
}

impl<'a> Runs<'a> {
    /// Number of runs.
    pub fn len(&self) -> usize {
        self.list.len()
    }
    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    /// Run `i`: its event id and times.
    pub fn get(&self, i: usize) -> Option<(u32, &'a [i64])> {
        let &(ev, a, b) = self.list.get(i)?;
        Some((ev, self.times.get(a..b)?))
    }
    /// All runs, in event-id order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &'a [i64])> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

/// A consistent view of one shard: its segments and memtable batches at
/// the moment the snapshot was taken.
#[derive(Debug, Clone, Default)]
pub struct ShardSnapshot {
    /// Live segments, oldest first.
    pub segments: Vec<Arc<Segment>>,
    /// Memtable runs (frozen first, then active), oldest first.
    pub mem: Vec<Arc<MemRun>>,
}

/// A segment being decoded block by block.
///
/// Decoded rows are addressed by *handles*: without an event filter a
/// handle is the row number; with one, only the rows of wanted events are
/// kept and handles count kept rows (`rows` maps them back to row numbers
/// for property access).
struct SegRows<'a> {
    seg: &'a Segment,
    time_r: BlockReader<'a>,
    event_r: BlockReader<'a>,
    raw: Vec<u64>,
    raw_events: Vec<u64>,
    /// Decoded rows, handles `[base, base + times.len())`.
    times: Vec<i64>,
    events: Vec<u32>,
    /// With a filter: the row number of each kept row.
    rows: Vec<u32>,
    base: usize,
    /// The first row not decoded yet.
    next_row: usize,
    /// Values of the next block before `next_row` (after a jump).
    skip: usize,
    /// The time column is not decoded (`times` stays empty).
    no_times: bool,
    /// Which event ids to keep (`None` = all).
    want: Option<&'a [bool]>,
    /// Index of the user whose rows the next decoded row belongs to.
    conv_user: usize,
    last_t: i64,
    props: Vec<Option<PropStream<'a>>>,
    /// Bytes of the time and event columns already released from the
    /// resident set, so RSS follows the scan instead of the segment size.
    released: [usize; 2],
}

/// How far a scan moves through a column between releases of the pages
/// behind it.
const RELEASE_STEP: usize = 1 << 20;

/// Drops from the resident set the pages `readers` have moved past since
/// `done` (bytes already released per reader), once a step's worth.
fn release_behind(seg: &Segment, readers: [&BlockReader<'_>; 2], done: &mut [usize; 2]) {
    for (r, done) in readers.into_iter().zip(done) {
        let seen = r.consumed();
        if seen.len() >= *done + RELEASE_STEP {
            seg.release_part(&seen[*done..]);
            *done = seen.len();
        }
    }
}

/// A property column decoded a chunk at a time, alongside the rows.
struct PropStream<'a> {
    reader: PropReader<'a>,
    /// Value indexes of rows `[base, base + idx.len())`.
    idx: Vec<u32>,
    base: usize,
    next_chunk: usize,
}

impl<'a> PropStream<'a> {
    fn new(reader: PropReader<'a>) -> Self {
        PropStream {
            reader,
            idx: Vec::new(),
            base: 0,
            next_chunk: 0,
        }
    }

    fn ensure(&mut self, a: usize, b: usize) -> Result<()> {
        let end = self.base + self.idx.len();
        if a >= end {
            let k = a / PROP_CHUNK;
            self.idx.clear();
            if k > self.next_chunk {
                self.next_chunk = k;
            }
            self.base = self.next_chunk * PROP_CHUNK;
        } else if a > self.base + PROP_CHUNK {
            self.idx.drain(..a - self.base);
            self.base = a;
        }
        while self.base + self.idx.len() < b {
            self.reader.decode_chunk(self.next_chunk, &mut self.idx)?;
            self.next_chunk += 1;
        }
        Ok(())
    }

    fn get(&self, row: usize) -> Option<&Value> {
        let i = *self.idx.get(row.checked_sub(self.base)?)?;
        if i == 0 {
            None
        } else {
            self.reader.values.get(i as usize - 1)
        }
    }

    /// The 1-based index into the segment's values of `row`'s value
    /// (`None` when the row lacks the property).
    fn code(&self, row: usize) -> Option<u32> {
        let i = *self.idx.get(row.checked_sub(self.base)?)?;
        (i != 0).then_some(i)
    }
}

/// How far decoded rows may trail the scan before they are dropped.
const KEEP: usize = 16 * 1024;

impl<'a> SegRows<'a> {
    fn new(seg: &'a Segment, spec: &'a ScanSpec, no_times: bool) -> Result<Self> {
        let (time_r, event_r) = seg.column_readers()?;
        let mut props = Vec::with_capacity(spec.props.len());
        for &p in &spec.props {
            props.push(seg.prop_reader(p)?.map(PropStream::new));
        }
        Ok(SegRows {
            seg,
            time_r,
            event_r,
            raw: Vec::with_capacity(crate::bitpack::BLOCK),
            raw_events: Vec::with_capacity(crate::bitpack::BLOCK),
            times: Vec::new(),
            events: Vec::new(),
            rows: Vec::new(),
            base: 0,
            next_row: 0,
            skip: 0,
            no_times,
            want: spec.events.as_deref(),
            conv_user: 0,
            last_t: 0,
            props,
            released: [0; 2],
        })
    }

    /// How many decoded rows lie before row `r` (`r` at or past the first
    /// decoded row).
    fn before(&self, r: usize) -> usize {
        match self.want {
            None => r.saturating_sub(self.base).min(self.events.len()),
            Some(_) => {
                // The rows asked about are nearly always the last decoded:
                // gallop back from the end.
                let v = &self.rows;
                let (mut lo, mut hi, mut step) = (v.len(), v.len(), 1);
                while lo > 0 && v[lo - 1] as usize >= r {
                    hi = lo - 1;
                    lo = lo.saturating_sub(step);
                    step *= 2;
                }
                lo + v[lo..hi].partition_point(|&x| (x as usize) < r)
            }
        }
    }

    /// The row number of handle `h`.
    fn row_of(&self, h: usize) -> Option<usize> {
        match self.want {
            None => Some(h),
            Some(_) => self
                .rows
                .get(h.checked_sub(self.base)?)
                .map(|&r| r as usize),
        }
    }

    /// Makes rows `[a, b)` available (`a` never decreases between calls) and
    /// returns their handles. Rows of users in between that nobody asked
    /// for are skipped a block at a time without decoding.
    fn ensure(&mut self, a: usize, b: usize) -> Result<(usize, usize)> {
        if a > self.next_row {
            // Jump: a user's first row is relative to the segment minimum, so
            // decoding can restart at the block holding row `a`.
            let k = a / BLOCK;
            self.time_r
                .seek_block(k)
                .map_err(|e| self.seg.corrupt("time", e))?;
            self.event_r
                .seek_block(k)
                .map_err(|e| self.seg.corrupt("event", e))?;
            self.base = match self.want {
                None => a,
                Some(_) => self.base + self.events.len(),
            };
            self.times.clear();
            self.events.clear();
            self.rows.clear();
            // Rows before `a` in its block belong to earlier, unwanted
            // users: they are not decoded.
            self.next_row = a;
            self.skip = a - k * BLOCK;
            // The user holding row `a`: at or after the current one,
            // usually a few users on.
            let starts = self.seg.user_starts();
            self.conv_user = gallop(starts, self.conv_user, a as u32 + 1).saturating_sub(1);
            self.last_t = self.seg.meta().min_time;
        }
        // Rows decoded from here on are at or past `a`, so the count of
        // rows before it stays put.
        let mut lo = self.before(a);
        if lo > KEEP {
            self.times.drain(..lo.min(self.times.len()));
            self.events.drain(..lo);
            if self.want.is_some() {
                self.rows.drain(..lo);
            }
            self.base += lo;
            lo = 0;
        }
        while self.next_row < b {
            self.decode_block()?;
        }
        for p in self.props.iter_mut().flatten() {
            p.ensure(a, b)?;
        }
        release_behind(self.seg, [&self.time_r, &self.event_r], &mut self.released);
        Ok((self.base + lo, self.base + self.before(b)))
    }

    /// Decodes the next block of both columns, keeping the wanted rows.
    fn decode_block(&mut self) -> Result<()> {
        self.raw_events.clear();
        if !self
            .event_r
            .next_block_from(self.skip, &mut self.raw_events)
            .map_err(|e| self.seg.corrupt("event", e))?
            || self.raw_events.is_empty()
        {
            // (An empty block would never move the scan forward.)
            return Err(Error::corrupt(self.seg.path(), "event column ends early"));
        }
        if self.raw_events.iter().fold(0, |a, &e| a | e) > u64::from(u32::MAX) {
            return Err(Error::corrupt(self.seg.path(), "event id out of range"));
        }
        if !self.no_times {
            self.raw.clear();
            if !self
                .time_r
                .next_block_from(self.skip, &mut self.raw)
                .map_err(|e| self.seg.corrupt("time", e))?
                || self.raw.len() != self.raw_events.len()
            {
                return Err(Error::corrupt(self.seg.path(), "time column ends early"));
            }
            if !self.deltas_to_times() {
                return Err(Error::corrupt(
                    self.seg.path(),
                    "time outside the segment's range",
                ));
            }
        }
        self.skip = 0;
        let first = self.next_row;
        let n = self.raw_events.len();
        let events = &self.raw_events;
        let times = &self.raw;
        match self.want {
            None => {
                if !self.no_times {
                    self.times.extend(times.iter().map(|&t| t as i64));
                }
                self.events.extend(events.iter().map(|&e| e as u32));
            }
            Some(want) => {
                let mut pick = [0u8; BLOCK];
                let m = pick_wanted(events, want, &mut pick);
                let picked = &pick[..m];
                if !self.no_times {
                    self.times
                        .extend(picked.iter().map(|&j| times[j as usize] as i64));
                }
                self.events
                    .extend(picked.iter().map(|&j| events[j as usize] as u32));
                self.rows
                    .extend(picked.iter().map(|&j| (first + j as usize) as u32));
            }
        }
        self.next_row = first + n;
        Ok(())
    }

    /// Turns the time deltas of the unpacked block (`raw`, starting at row
    /// `next_row`) into times in place, one user's run at a time. Returns
    /// `false` if a time falls outside the segment's range.
    fn deltas_to_times(&mut self) -> bool {
        let starts = self.seg.user_starts();
        let meta = self.seg.meta();
        // Every delta is at most the segment's span and every time at most
        // its max, so the running sum can never overflow.
        let span = (meta.max_time - meta.min_time) as u64;
        let n = self.raw.len();
        let mut row = self.next_row;
        let mut ok = true;
        let mut i = 0;
        let mut t = self.last_t;
        while i < n {
            while starts[self.conv_user + 1] as usize <= row {
                self.conv_user += 1;
            }
            let (ustart, uend) = (
                starts[self.conv_user] as usize,
                starts[self.conv_user + 1] as usize,
            );
            let run = (uend - row).min(n - i);
            if row == ustart {
                t = meta.min_time;
            }
            let mut dmax = 0;
            for d in &mut self.raw[i..i + run] {
                dmax = dmax.max(*d);
                t = t.wrapping_add(*d as i64);
                *d = t as u64;
            }
            // Times only grow within a run, so its last is its largest.
            ok &= dmax <= span && t <= meta.max_time && t >= meta.min_time;
            row += run;
            i += run;
        }
        self.last_t = t;
        ok
    }
}

/// Writes into `pick` the indexes of the rows of `events` whose event is
/// wanted, without a branch per row; returns how many.
fn pick_wanted(events: &[u64], want: &[bool], pick: &mut [u8; BLOCK]) -> usize {
    let mut m = 0usize;
    for (j, &e) in events.iter().enumerate().take(BLOCK) {
        pick[m & (BLOCK - 1)] = j as u8;
        m += usize::from(want.get(e as usize).copied().unwrap_or(false));
    }
    m
}

enum Source<'a> {
    /// A version 1 segment.
    Seg(Box<SegRows<'a>>),
    /// A version 2 segment.
    Ev(Box<EvRows<'a>>),
    Run(&'a MemRun, &'a [u32]),
}

impl<'a> Source<'a> {
    /// The user table, borrowed from the segment or run (not from `self`).
    fn tables(&self) -> (&'a [u32], &'a [u32]) {
        match self {
            Source::Seg(s) => (s.seg.user_ids(), s.seg.user_starts()),
            Source::Ev(s) => (s.seg().user_ids(), s.seg().user_starts()),
            Source::Run(m, _) => (&m.user_ids, &m.user_starts),
        }
    }
    /// Narrows the handles `[a, b)` of a user's rows to a time range.
    fn in_range(&self, a: usize, b: usize, range: Option<(i64, i64)>) -> (usize, usize) {
        match range {
            None => (a, b),
            Some((from, to)) => {
                let t = self.times(a, b);
                (
                    a + t.partition_point(|&x| x < from),
                    a + t.partition_point(|&x| x < to),
                )
            }
        }
    }
    fn user_ids(&self) -> &[u32] {
        self.tables().0
    }
    fn user_starts(&self) -> &[u32] {
        self.tables().1
    }
    /// Makes the rows of user `c` (rows `[a, b)` of the source) available;
    /// returns their handles and how many rows were decoded for them.
    /// `as_runs`: the user's rows are all in this source, so a format 2
    /// segment may hand them over as runs.
    fn ensure(
        &mut self,
        c: usize,
        a: usize,
        b: usize,
        as_runs: bool,
    ) -> Result<(usize, usize, usize)> {
        match self {
            Source::Seg(s) => s.ensure(a, b).map(|(x, y)| (x, y, b - a)),
            Source::Ev(s) => s.load_user(c, as_runs).map(|n| (0, n, s.decoded)),
            Source::Run(..) => Ok((a, b, b - a)),
        }
    }
    fn times(&self, a: usize, b: usize) -> &[i64] {
        match self {
            Source::Seg(s) if s.no_times => &[],
            Source::Seg(s) => &s.times[a - s.base..b - s.base],
            Source::Ev(s) if s.no_times => &[],
            Source::Ev(s) => &s.times[a..b],
            Source::Run(m, _) => &m.times[a..b],
        }
    }
    fn events(&self, a: usize, b: usize) -> &[u32] {
        match self {
            Source::Seg(s) => &s.events[a - s.base..b - s.base],
            Source::Ev(s) => &s.events[a..b],
            Source::Run(m, _) => &m.events[a..b],
        }
    }
    /// The current user's rows as runs, when the last `ensure` handed
    /// them over so.
    fn runs(&self) -> Option<Runs<'_>> {
        match self {
            Source::Ev(s) => s.runs(),
            _ => None,
        }
    }
    /// The stored row of handle `h`: the segment's physical row, or the
    /// run's row.
    fn stored_row(&self, h: usize) -> Option<usize> {
        match self {
            Source::Seg(s) => s.row_of(h),
            Source::Ev(s) => s.stored_row(h),
            Source::Run(..) => Some(h),
        }
    }
    /// An identity of the value [`Source::prop`] returns, shared by every
    /// row with an equal value in this source: its index into the
    /// segment's values. `None` for memtable rows (no shared values) and
    /// rows without the property.
    fn prop_code(&self, k: usize, h: usize) -> Option<u32> {
        match self {
            Source::Seg(s) => s.props.get(k)?.as_ref()?.code(s.row_of(h)?),
            Source::Ev(s) => s.prop_code(k, h),
            Source::Run(..) => None,
        }
    }
    fn prop(&self, k: usize, h: usize) -> Option<&Value> {
        match self {
            Source::Seg(s) => s.props.get(k)?.as_ref()?.get(s.row_of(h)?),
            Source::Ev(s) => s.prop(k, h),
            Source::Run(m, pids) => m.prop(*pids.get(k)?, h),
        }
    }
}

/// One user's events in the scanned range, in time order (ties keep
/// storage order: older segments first, then arrival order).
pub struct UserRows<'a> {
    /// The user id.
    pub uid: u32,
    /// Event times, ascending (empty when the scan was asked to skip
    /// times and could: see [`ScanSpec::skip_times`]).
    pub times: &'a [i64],
    /// Event ids, parallel to `times`.
    pub events: &'a [u32],
    /// Rows decoded for this user, counting those the event filter left
    /// out (for scan statistics).
    pub decoded: usize,
    /// When the scan was asked for runs ([`ScanSpec::runs`]) and could:
    /// the rows as per-event runs, and `times`/`events` are empty.
    pub runs: Option<Runs<'a>>,
    loc: Loc<'a>,
}

enum Loc<'a> {
    Owned {
        props: &'a [Vec<Option<Value>>],
    },
    Single {
        /// The source's index among the scanned ones.
        s: usize,
        src: &'a Source<'a>,
        base: usize,
    },
    Multi {
        srcs: &'a [Source<'a>],
        at: &'a [(u32, u32)],
    },
}

impl std::fmt::Debug for UserRows<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRows")
            .field("uid", &self.uid)
            .field("times", &self.times)
            .field("events", &self.events)
            .finish()
    }
}

impl<'a> UserRows<'a> {
    /// Rows assembled by the caller (e.g. one person's events gathered from
    /// several user ids): `props[i][k]` is property slot `k` of event `i`.
    pub fn owned(
        uid: u32,
        times: &'a [i64],
        events: &'a [u32],
        props: &'a [Vec<Option<Value>>],
    ) -> Self {
        UserRows {
            uid,
            times,
            events,
            decoded: times.len(),
            runs: None,
            loc: Loc::Owned { props },
        }
    }

    /// A user handed over as per-event runs.
    fn from_runs(uid: u32, decoded: usize, runs: Runs<'a>) -> Self {
        UserRows {
            uid,
            times: &[],
            events: &[],
            decoded,
            runs: Some(runs),
            loc: Loc::Owned { props: &[] },
        }
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }
    /// True if no events.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
    /// Value of requested property `k` (index into `ScanSpec::props`) at event `i`.
    #[inline]
    pub fn prop(&self, k: usize, i: usize) -> Option<&'a Value> {
        match self.loc {
            Loc::Owned { props } => props.get(i)?.get(k)?.as_ref(),
            Loc::Single { src, base, .. } => src.prop(k, base + i),
            Loc::Multi { srcs, at } => {
                let (s, r) = *at.get(i)?;
                srcs.get(s as usize)?.prop(k, r as usize)
            }
        }
    }

    /// An identity of the value [`UserRows::prop`] returns for property
    /// `k` at event `i`, for caching what is derived from it: within one
    /// scan of a shard, rows with equal codes have equal values (rows
    /// with equal values may still have different codes, or none).
    /// `None` when the row lacks the property or its value has no shared
    /// identity (memtable rows, rows assembled by the caller).
    #[inline]
    pub fn prop_code(&self, k: usize, i: usize) -> Option<u64> {
        let (s, code) = match self.loc {
            Loc::Owned { .. } => return None,
            Loc::Single { s, src, base } => (s, src.prop_code(k, base + i)?),
            Loc::Multi { srcs, at } => {
                let (s, r) = *at.get(i)?;
                (s as usize, srcs.get(s as usize)?.prop_code(k, r as usize)?)
            }
        };
        Some(((s as u64) << 32) | u64::from(code))
    }

    /// Where event `i` is stored: the index of its source among the
    /// scanned ones (the snapshot's segments that have rows and overlap
    /// the range, oldest first, then its memtable runs) and its row there
    /// (the segment's physical row). `None` for rows assembled by the
    /// caller. A merge uses it to move property columns whole.
    pub fn origin(&self, i: usize) -> Option<(usize, usize)> {
        match self.loc {
            Loc::Owned { .. } => None,
            Loc::Single { s, src, base } => Some((s, src.stored_row(base + i)?)),
            Loc::Multi { srcs, at } => {
                let (s, r) = *at.get(i)?;
                Some((s as usize, srcs.get(s as usize)?.stored_row(r as usize)?))
            }
        }
    }
}

/// Membership tests for ascending ids, amortized O(1): the bitmap is read
/// once, front to back, instead of searched per id.
struct Cursor<'b> {
    it: roaring::bitmap::Iter<'b>,
    cur: Option<u32>,
}

impl<'b> Cursor<'b> {
    fn new(bm: &'b RoaringBitmap) -> Self {
        let mut it = bm.iter();
        let cur = it.next();
        Cursor { it, cur }
    }

    /// Whether the bitmap holds `id`; ids must not decrease between calls.
    fn contains(&mut self, id: u32) -> bool {
        match self.cur {
            Some(c) if c < id => {
                self.it.advance_to(id);
                self.cur = self.it.next();
                self.cur == Some(id)
            }
            Some(c) => c == id,
            None => false,
        }
    }
}

/// The first index `i >= from` with `v[i] >= x` (`v` ascending), found by
/// galloping: cheap when it is near `from`.
pub(crate) fn gallop(v: &[u32], from: usize, x: u32) -> usize {
    let mut lo = from;
    let mut step = 1;
    let mut hi = from;
    while hi < v.len() && v[hi] < x {
        lo = hi + 1;
        hi = from + step;
        step *= 2;
    }
    let hi = hi.min(v.len());
    lo + v[lo..hi].partition_point(|&y| y < x)
}

/// Calls `f(i)` for each index of `ids` (ascending user ids) whose user is
/// in `users` (all when `None`), in order, until `f` returns `false`.
/// Leapfrogs: a sparse bitmap skips ids by galloping, a sparse user table
/// skips bitmap runs with `advance_to`.
fn for_wanted(
    ids: &[u32],
    users: Option<&RoaringBitmap>,
    mut f: impl FnMut(usize) -> Result<bool>,
) -> Result<bool> {
    let Some(users) = users else {
        for i in 0..ids.len() {
            if !f(i)? {
                return Ok(false);
            }
        }
        return Ok(true);
    };
    let mut it = users.iter();
    let mut i = 0;
    while let Some(w) = it.next() {
        i = gallop(ids, i, w);
        let Some(&id) = ids.get(i) else { break };
        if id == w {
            if !f(i)? {
                return Ok(false);
            }
            i += 1;
        } else {
            it.advance_to(id);
        }
    }
    Ok(true)
}

fn overlaps(min: i64, max: i64, range: Option<(i64, i64)>) -> bool {
    match range {
        None => true,
        Some((from, to)) => max >= from && min < to,
    }
}

impl ShardSnapshot {
    /// Rows in this snapshot.
    pub fn rows(&self) -> u64 {
        self.segments.iter().map(|s| s.meta().rows).sum::<u64>()
            + self.mem.iter().map(|r| r.len() as u64).sum::<u64>()
    }

    /// Drops the pages of this shard's segments from the process's resident
    /// set once a scan is done with them (they stay in the page cache).
    pub fn release_pages(&self) {
        for seg in &self.segments {
            seg.release_pages();
        }
    }

    /// Users of this shard who did event `event` (in any time).
    pub fn event_users(&self, event: u32) -> Result<RoaringBitmap> {
        let mut out = RoaringBitmap::new();
        for seg in &self.segments {
            if let Some(bm) = seg.event_users(event)? {
                out |= bm;
            }
        }
        for r in &self.mem {
            for (u, e) in r.uids.iter().zip(&r.events) {
                if *e == event {
                    out.insert(*u);
                }
            }
        }
        Ok(out)
    }

    /// Calls `f` once per user with events in the range, in user-id order.
    pub fn scan(&self, spec: &ScanSpec, mut f: impl FnMut(&UserRows<'_>)) -> Result<()> {
        self.scan_while(spec, |u| {
            f(u);
            true
        })
        .map(|_| ())
    }

    /// Like [`ShardSnapshot::scan`], but stops as soon as `f` returns
    /// `false` (cancellation, time budget). Returns whether it ran to the end.
    pub fn scan_while(
        &self,
        spec: &ScanSpec,
        mut f: impl FnMut(&UserRows<'_>) -> bool,
    ) -> Result<bool> {
        let mut sources: Vec<Source<'_>> = Vec::new();
        let live = |seg: &&Arc<Segment>| {
            let m = seg.meta();
            m.rows > 0 && overlaps(m.min_time, m.max_time, spec.range)
        };
        // Several sources are merged by time, so only a lone segment can
        // go without its times.
        let lone =
            self.segments.iter().filter(live).count() == 1 && self.mem.iter().all(|r| r.is_empty());
        let no_times = spec.skip_times && spec.range.is_none() && lone;
        let runs = spec.runs && !no_times && spec.props.is_empty();
        for seg in self.segments.iter().filter(live) {
            sources.push(match seg.format() {
                SegmentFormat::TimeOrder => {
                    Source::Seg(Box::new(SegRows::new(seg, spec, no_times)?))
                }
                SegmentFormat::EventMajor | SegmentFormat::EventMajorWithoutOrder => {
                    Source::Ev(Box::new(EvRows::new(seg, spec, no_times, runs, lone)?))
                }
            });
        }
        for run in &self.mem {
            if !run.is_empty() {
                sources.push(Source::Run(run, &spec.props));
            }
        }
        if let [src] = &mut sources[..] {
            // One source (the common case after compaction): walk its users,
            // or leapfrog between its user table and the wanted bitmap.
            let (ids, starts) = src.tables();
            let mut skip = spec.skip.as_ref().map(Cursor::new);
            return for_wanted(ids, spec.users.as_ref(), |c| {
                let uid = ids[c];
                if skip.as_mut().is_some_and(|s| s.contains(uid)) {
                    return Ok(true);
                }
                let (a, b) = (starts[c] as usize, starts[c + 1] as usize);
                let (a, b, decoded) = src.ensure(c, a, b, true)?;
                if let Some(runs) = src.runs() {
                    return Ok(runs.is_empty() || f(&UserRows::from_runs(uid, decoded, runs)));
                }
                let (a, b) = src.in_range(a, b, spec.range);
                if a >= b {
                    return Ok(true);
                }
                let src = &*src;
                Ok(f(&UserRows {
                    uid,
                    times: src.times(a, b),
                    events: src.events(a, b),
                    decoded,
                    runs: None,
                    loc: Loc::Single { s: 0, src, base: a },
                }))
            });
        }
        let mut users = spec.users.as_ref().map(Cursor::new);
        let mut skip = spec.skip.as_ref().map(Cursor::new);
        let mut cursor = vec![0usize; sources.len()];
        let mut present: Vec<(usize, usize, usize)> = Vec::new();
        let mut times: Vec<i64> = Vec::new();
        let mut events: Vec<u32> = Vec::new();
        let mut at: Vec<(u32, u32)> = Vec::new();
        let mut heads: Vec<usize> = Vec::new();
        loop {
            let mut uid = u32::MAX;
            let mut any = false;
            for (s, src) in sources.iter().enumerate() {
                if let Some(&u) = src.user_ids().get(cursor[s]) {
                    if !any || u < uid {
                        uid = u;
                        any = true;
                    }
                }
            }
            if !any {
                return Ok(true);
            }
            let wanted = users.as_mut().is_none_or(|users| users.contains(uid))
                && skip.as_mut().is_none_or(|skip| !skip.contains(uid));
            present.clear();
            let mut decoded = 0;
            // A user whose rows are all in one source may come as runs.
            let holders = sources
                .iter()
                .enumerate()
                .filter(|(s, src)| src.user_ids().get(cursor[*s]) == Some(&uid))
                .count();
            let mut as_runs: Option<usize> = None;
            for (s, src) in sources.iter_mut().enumerate() {
                let c = cursor[s];
                if src.user_ids().get(c) != Some(&uid) {
                    continue;
                }
                cursor[s] += 1;
                let (a, b) = (
                    src.user_starts()[c] as usize,
                    src.user_starts()[c + 1] as usize,
                );
                if !wanted {
                    continue;
                }
                let (a, b, n) = src.ensure(c, a, b, holders == 1)?;
                decoded += n;
                if src.runs().is_some() {
                    as_runs = Some(s);
                    continue;
                }
                let (a, b) = src.in_range(a, b, spec.range);
                if a < b {
                    present.push((s, a, b));
                }
            }
            if let Some(runs) = as_runs.and_then(|s| sources[s].runs()) {
                if !runs.is_empty() && !f(&UserRows::from_runs(uid, decoded, runs)) {
                    return Ok(false);
                }
                continue;
            }
            if present.is_empty() {
                continue;
            }
            if let [(s, a, b)] = present[..] {
                let src = &sources[s];
                let go = f(&UserRows {
                    uid,
                    times: src.times(a, b),
                    events: src.events(a, b),
                    decoded,
                    runs: None,
                    loc: Loc::Single { s, src, base: a },
                });
                if !go {
                    return Ok(false);
                }
                continue;
            }
            // Merge the sorted runs; ties go to the older source first.
            times.clear();
            events.clear();
            at.clear();
            heads.clear();
            heads.extend(present.iter().map(|p| p.1));
            loop {
                let mut best: Option<(i64, usize)> = None;
                for (j, &(s, _, b)) in present.iter().enumerate() {
                    let h = heads[j];
                    if h < b {
                        let t = sources[s].times(h, h + 1)[0];
                        if best.is_none_or(|(bt, _)| t < bt) {
                            best = Some((t, j));
                        }
                    }
                }
                let Some((t, j)) = best else { break };
                let (s, h) = (present[j].0, heads[j]);
                times.push(t);
                events.push(sources[s].events(h, h + 1)[0]);
                at.push((s as u32, h as u32));
                heads[j] += 1;
            }
            let go = f(&UserRows {
                uid,
                times: &times,
                events: &events,
                decoded,
                runs: None,
                loc: Loc::Multi {
                    srcs: &sources,
                    at: &at,
                },
            });
            if !go {
                return Ok(false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn leapfrog_finds_exactly_the_wanted_ids(
            ids in proptest::collection::btree_set(0u32..3000, 0..400),
            want in proptest::collection::btree_set(0u32..3000, 0..400),
            stop_after in 0usize..50,
        ) {
            let ids: Vec<u32> = ids.into_iter().collect();
            let bm: RoaringBitmap = want.iter().copied().collect();
            let mut got = Vec::new();
            for_wanted(&ids, Some(&bm), |i| { got.push(ids[i]); Ok(true) }).unwrap();
            let expect: Vec<u32> = ids.iter().copied().filter(|u| want.contains(u)).collect();
            prop_assert_eq!(&got, &expect);
            // Stopping early stops.
            let mut n = 0;
            let done = for_wanted(&ids, Some(&bm), |_| { n += 1; Ok(n <= stop_after) }).unwrap();
            prop_assert_eq!(done, expect.len() <= stop_after);
            // The cursor agrees with contains for ascending ids.
            let mut c = Cursor::new(&bm);
            for &u in &ids {
                prop_assert_eq!(c.contains(u), bm.contains(u));
            }
            for (k, &x) in ids.iter().enumerate().step_by(7) {
                for from in [0, k / 2, k] {
                    prop_assert_eq!(gallop(&ids, from, x), k.max(from).min(k));
                }
            }
        }
    }
}
