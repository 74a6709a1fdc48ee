//! Scanning a version 2 segment: one cursor per event stream the query
//! wants, each user's rows from those streams merged back into time order
//! (ties by the stored rank, which restores arrival order).

use super::{release_behind, PropStream, Runs, ScanSpec};
use crate::bitpack::{BlockReader, BLOCK};
use crate::error::{Error, Result};
use crate::segment::{Segment, StreamReaders};
use crate::value::Value;

/// A version 2 segment being read user by user.
pub(super) struct EvRows<'a> {
    seg: &'a Segment,
    streams: Vec<Stream<'a>>,
    /// Times are not decoded (`times` stays empty and rows come grouped by
    /// event, not in time order).
    pub(super) no_times: bool,
    /// The current user's rows, in time order; handles index these.
    pub(super) times: Vec<i64>,
    pub(super) events: Vec<u32>,
    /// Per row: the stream it came from and its row within the stream.
    at: Vec<(u32, u32)>,
    /// Rows decoded for the current user.
    pub(super) decoded: usize,
    /// Property columns are read (`at` is kept).
    with_props: bool,
    /// Users may be handed over as per-event runs, not merged, restricted
    /// to this range: see [`ScanSpec::runs`].
    runs_mode: Option<Option<(i64, i64)>>,
    /// The current user was loaded as runs.
    as_runs: bool,
    /// Tie ranks are decoded (always, unless every user is handed over as
    /// runs: a stream's decoded blocks must serve every later user).
    ties: bool,
    /// The current user's runs: (event, start, end) in `run_t`/`run_k`.
    run_list: Vec<(u32, usize, usize)>,
    /// Merge scratch: the current user's rows per stream, concatenated,
    /// times and tie ranks (later merge keys).
    run_t: Vec<i64>,
    run_k: Vec<u64>,
    heads: Vec<usize>,
    /// (stream, first index in `run_*`, end, stream row of the first).
    runs: Vec<(usize, usize, usize, usize)>,
    /// The segment's `order` column, when it has one and enough streams
    /// and rows are wanted that following it beats comparing times: every stream
    /// is then opened (unwanted ones for their pairs only).
    order: Option<Order<'a>>,
}

/// Fewest wanted streams for which a scan follows the `order` column
/// instead of merging the streams by time (with two, the merge compares
/// one pair of heads per row).
const ORDER_FROM: usize = 3;

/// A scan follows the `order` column only when the wanted streams hold at
/// least 1/`ORDER_SHARE` of the segment's rows: at 10M generated events a
/// funnel of four streams holding 18% of the rows merged in 37 ms and
/// followed the column in 62 ms, while sessions and paths (every row)
/// took a quarter less time following it.
const ORDER_SHARE: usize = 2;

/// The `order` column decoded a few blocks at a time as the scan walks
/// the users (rows in user-time numbering, ascending).
struct Order<'a> {
    r: BlockReader<'a>,
    buf: Vec<u64>,
    base: usize,
}

impl<'a> Order<'a> {
    /// The ranks of rows `[a, b)` (`a` never decreasing between calls).
    fn rows(&mut self, seg: &Segment, a: usize, b: usize) -> Result<&[u64]> {
        let end = self.base + self.buf.len();
        if a >= end {
            let k = a / BLOCK;
            if a > end || !end.is_multiple_of(BLOCK) {
                self.r.seek_block(k).map_err(|e| seg.corrupt("order", e))?;
            }
            self.buf.clear();
            self.base = k * BLOCK;
        } else if a - self.base > 4 * BLOCK {
            let drop = (a - self.base) / BLOCK * BLOCK;
            self.buf.drain(..drop);
            self.base += drop;
        }
        while self.base + self.buf.len() < b {
            let before = self.buf.len();
            let more = self
                .r
                .next_block(&mut self.buf)
                .map_err(|e| seg.corrupt("order", e))?;
            if !more || self.buf.len() == before {
                return Err(Error::corrupt(seg.path(), "order column ends early"));
            }
        }
        self.buf
            .get(a - self.base..b - self.base)
            .ok_or_else(|| Error::corrupt(seg.path(), "order column ends early"))
    }
}

/// A cursor over one event stream.
struct Stream<'a> {
    event: u32,
    /// The scan wants this event's rows (unwanted streams are open only
    /// in order mode, for their pairs).
    wanted: bool,
    /// Segment row of the stream's first row.
    start: usize,
    r: StreamReaders<'a>,
    /// Decoded pair block: user indexes, row counts and first stream rows;
    /// `pi` is the next pair.
    pu: Vec<u64>,
    pc: Vec<u64>,
    pr: Vec<u64>,
    pi: usize,
    last_user: Option<u64>,
    /// Stream row of the first pair of the next block.
    next_row: usize,
    /// Decoded time deltas and tie ranks of stream rows `[base, base + dt.len())`.
    dt: Vec<u64>,
    dk: Vec<u64>,
    base: usize,
    props: Vec<Option<PropStream<'a>>>,
    released: [usize; 2],
}

impl<'a> Stream<'a> {
    fn corrupt(&self, seg: &Segment, why: impl std::fmt::Display) -> Error {
        Error::corrupt(seg.path(), format!("event {} stream: {why}", self.event))
    }

    /// Decodes the next block of (user, rows) pairs into absolute user
    /// indexes and row starts, checking them; `false` at the end of the
    /// stream.
    fn refill(&mut self, seg: &Segment) -> Result<bool> {
        self.pu.clear();
        self.pc.clear();
        self.pr.clear();
        self.pi = 0;
        let name = |p| format!("ev.{}.{p}", self.event);
        if !self
            .r
            .users
            .next_block(&mut self.pu)
            .map_err(|e| seg.corrupt(&name("users"), e))?
        {
            return Ok(false);
        }
        if !self
            .r
            .counts
            .next_block(&mut self.pc)
            .map_err(|e| seg.corrupt(&name("counts"), e))?
            || self.pc.len() != self.pu.len()
            || self.pu.is_empty()
        {
            return Err(self.corrupt(seg, "pair columns of different lengths"));
        }
        let (users, rows) = (seg.meta().users, self.r.time.len() as u64);
        let mut ok = true;
        let mut row = self.next_row as u64;
        for (u, &n) in self.pu.iter_mut().zip(&self.pc) {
            // The first pair's user is absolute, later ones deltas (> 0).
            let abs = match self.last_user {
                None => *u,
                Some(prev) => {
                    ok &= *u > 0;
                    prev.saturating_add(*u)
                }
            };
            ok &= abs < users && n > 0;
            *u = abs;
            self.last_user = Some(abs);
            self.pr.push(row);
            row = row.saturating_add(n);
        }
        if !ok || row > rows {
            return Err(self.corrupt(seg, "a pair outside the users table or the stream"));
        }
        self.next_row = row as usize;
        Ok(true)
    }

    /// The stream rows of user `c` (user indexes never decrease between
    /// calls): `(first stream row, count)`, or `None` if the user has none.
    fn pair_for(&mut self, seg: &Segment, c: usize) -> Result<Option<(usize, usize)>> {
        let c = c as u64;
        loop {
            if self.pi == self.pu.len() && !self.refill(seg)? {
                return Ok(None);
            }
            let u = self.pu[self.pi];
            if u > c {
                return Ok(None);
            }
            self.pi += 1;
            if u == c {
                let i = self.pi - 1;
                return Ok(Some((self.pr[i] as usize, self.pc[i] as usize)));
            }
        }
    }

    /// Decodes stream rows `[off, off + n)` (with their tie ranks if
    /// `ties`) and appends their times to `out`, checking them against the
    /// segment's range; returns where the rows start in `dt`/`dk`.
    fn append_times(
        &mut self,
        seg: &Segment,
        off: usize,
        n: usize,
        ties: bool,
        out: &mut Vec<i64>,
    ) -> Result<usize> {
        self.decode(seg, off, n, ties)?;
        let meta = seg.meta();
        let span = meta.max_time.wrapping_sub(meta.min_time) as u64;
        let i = off - self.base;
        let Some(dt) = self.dt.get(i..i + n) else {
            return Err(self.corrupt(seg, "time column ends early"));
        };
        let mut t = meta.min_time;
        let mut dmax = 0;
        out.extend(dt.iter().map(|&d| {
            dmax = dmax.max(d);
            t = t.wrapping_add(d as i64);
            t
        }));
        if dmax > span || t > meta.max_time || t < meta.min_time {
            return Err(self.corrupt(seg, "a time outside the segment's range"));
        }
        Ok(i)
    }

    /// Makes the time deltas and tie ranks of stream rows `[off, off + n)`
    /// available in `dt`/`dk` from index `off - base`.
    fn decode(&mut self, seg: &Segment, off: usize, n: usize, ties: bool) -> Result<()> {
        let end = self.base + self.dt.len();
        let mut skip = 0;
        if off >= end {
            // A jump (or the very next row): restart at the block holding
            // `off`; the block's earlier rows are not decoded.
            let k = off / BLOCK;
            if off > end || !end.is_multiple_of(BLOCK) {
                let name = |p| format!("ev.{}.{p}", self.event);
                self.r
                    .time
                    .seek_block(k)
                    .map_err(|e| seg.corrupt(&name("time"), e))?;
                if ties {
                    self.r
                        .tie
                        .seek_block(k)
                        .map_err(|e| seg.corrupt(&name("tie"), e))?;
                }
            }
            skip = off - k * BLOCK;
            self.dt.clear();
            self.dk.clear();
            self.base = off;
        } else if off - self.base > 4 * BLOCK {
            self.dt.drain(..off - self.base);
            if ties {
                self.dk.drain(..off - self.base);
            }
            self.base = off;
        }
        let mut decoded = false;
        while self.base + self.dt.len() < off + n {
            let before = self.dt.len();
            let name = |p| format!("ev.{}.{p}", self.event);
            let more = self
                .r
                .time
                .next_block_from(skip, &mut self.dt)
                .map_err(|e| seg.corrupt(&name("time"), e))?;
            if !more || self.dt.len() == before {
                return Err(self.corrupt(seg, "time column ends early"));
            }
            if ties {
                let more = self
                    .r
                    .tie
                    .next_block_from(skip, &mut self.dk)
                    .map_err(|e| seg.corrupt(&name("tie"), e))?;
                if !more || self.dk.len() != self.dt.len() {
                    return Err(self.corrupt(seg, "tie column ends early"));
                }
            }
            skip = 0;
            decoded = true;
        }
        if decoded {
            release_behind(seg, [&self.r.time, &self.r.tie], &mut self.released);
        }
        Ok(())
    }
}

impl<'a> EvRows<'a> {
    /// `runs`: users may be handed over as runs; `only_runs`: every user
    /// will be (the segment is the shard's only source).
    pub(super) fn new(
        seg: &'a Segment,
        spec: &ScanSpec,
        no_times: bool,
        runs: bool,
        only_runs: bool,
    ) -> Result<Self> {
        let wanted = |event: u32| match &spec.events {
            None => true,
            Some(w) => w.get(event as usize).copied().unwrap_or(false),
        };
        let n_wanted = seg.streams().iter().filter(|m| wanted(m.event)).count();
        let rows_wanted: usize = (seg.streams().iter())
            .filter(|m| wanted(m.event))
            .map(|m| m.rows)
            .sum();
        // Following the order column reads a rank for every row of every
        // user read, wanted or not; merging touches only wanted rows.
        let few_rows = rows_wanted.saturating_mul(ORDER_SHARE) < seg.meta().rows as usize;
        let order = if no_times || (runs && only_runs) || n_wanted < ORDER_FROM || few_rows {
            None
        } else {
            seg.order_reader()?.map(|r| Order {
                r,
                buf: Vec::new(),
                base: 0,
            })
        };
        let mut streams = Vec::new();
        for (i, m) in seg.streams().iter().enumerate() {
            let wanted = wanted(m.event);
            if !wanted && order.is_none() {
                continue;
            }
            let mut props = Vec::with_capacity(spec.props.len());
            if wanted {
                for &p in &spec.props {
                    props.push(seg.prop_reader(p)?.map(PropStream::new));
                }
            }
            streams.push(Stream {
                event: m.event,
                wanted,
                start: m.start,
                r: seg.stream_readers(i)?,
                pu: Vec::with_capacity(BLOCK),
                pc: Vec::with_capacity(BLOCK),
                pr: Vec::with_capacity(BLOCK),
                pi: 0,
                last_user: None,
                next_row: 0,
                dt: Vec::new(),
                dk: Vec::new(),
                base: 0,
                props,
                released: [0; 2],
            });
        }
        Ok(EvRows {
            seg,
            streams,
            no_times,
            times: Vec::new(),
            events: Vec::new(),
            at: Vec::new(),
            decoded: 0,
            with_props: !spec.props.is_empty() || spec.origins,
            runs_mode: runs.then_some(spec.range),
            as_runs: false,
            // Following the order column needs no tie ranks.
            ties: !(runs && only_runs) && order.is_none(),
            run_list: Vec::new(),
            run_t: Vec::new(),
            run_k: Vec::new(),
            heads: Vec::new(),
            runs: Vec::new(),
            order,
        })
    }

    /// The segment read.
    pub(super) fn seg(&self) -> &'a Segment {
        self.seg
    }

    /// Loads the rows of user `c` (index into the users table; never
    /// decreasing between calls) from the wanted streams, in time order,
    /// or as per-event runs if `as_runs` and the scan allows it (see
    /// [`EvRows::runs`]). Returns how many.
    pub(super) fn load_user(&mut self, c: usize, as_runs: bool) -> Result<usize> {
        self.as_runs = as_runs && self.runs_mode.is_some();
        if self.order.is_some() && !self.as_runs {
            return self.load_user_ordered(c);
        }
        let seg = self.seg;
        let meta = seg.meta();
        let span = meta.max_time.wrapping_sub(meta.min_time) as u64;
        // Rows merge on (time − min) << tb | tie rank in one u64.
        let tb = span.leading_zeros().clamp(1, 63);
        self.times.clear();
        self.events.clear();
        self.at.clear();
        self.run_t.clear();
        self.run_k.clear();
        self.runs.clear();
        self.decoded = 0;
        let mut kmax = 0u64;
        for (s, st) in self.streams.iter_mut().enumerate() {
            if !st.wanted {
                continue;
            }
            let Some((off, n)) = st.pair_for(seg, c)? else {
                continue;
            };
            self.decoded += n;
            let phys = st.start + off;
            for p in st.props.iter_mut().flatten() {
                p.ensure(phys, phys + n)?;
            }
            if self.no_times {
                self.events.extend(std::iter::repeat_n(st.event, n));
                if self.with_props {
                    self.at.extend((off..off + n).map(|r| (s as u32, r as u32)));
                }
                continue;
            }
            // Runs are handed over without tie ranks.
            let ties = self.ties;
            let from = self.run_t.len();
            let i = st.append_times(seg, off, n, ties, &mut self.run_t)?;
            if ties {
                let Some(dk) = st.dk.get(i..i + n) else {
                    return Err(st.corrupt(seg, "tie column ends early"));
                };
                self.run_k.extend(dk.iter().map(|&k| {
                    kmax = kmax.max(k);
                    k
                }));
            } else if !self.as_runs {
                return Err(st.corrupt(seg, "rows to merge without tie ranks"));
            }
            // A sentinel closes each run for the merge.
            self.run_t.push(0);
            self.run_k.push(u64::MAX);
            self.runs.push((s, from, from + n, off));
        }
        if self.no_times {
            return Ok(self.events.len());
        }
        if let (true, Some(range)) = (self.as_runs, self.runs_mode) {
            self.run_list.clear();
            let mut total = 0;
            for &(s, a, b, _) in &self.runs {
                let t = &self.run_t[a..b];
                let (lo, hi) = match range {
                    None => (0, t.len()),
                    Some((from, to)) => (
                        t.partition_point(|&x| x < from),
                        t.partition_point(|&x| x < to),
                    ),
                };
                if lo < hi {
                    self.run_list.push((self.streams[s].event, a + lo, a + hi));
                    total += hi - lo;
                }
            }
            return Ok(total);
        }
        if let [(s, a, b, off)] = self.runs[..] {
            let ev = self.streams[s].event;
            self.times.extend_from_slice(&self.run_t[a..b]);
            self.events.extend(std::iter::repeat_n(ev, b - a));
            if self.with_props {
                self.at
                    .extend((off..off + (b - a)).map(|r| (s as u32, r as u32)));
            }
        } else if kmax < (1 << tb) - 1 {
            self.merge(meta.min_time, tb);
        } else {
            self.merge_wide();
        }
        Ok(self.times.len())
    }

    /// Loads user `c`'s rows in time order by following the `order`
    /// column: each rank names the stream (among the user's, ascending)
    /// whose next row comes next, so rows are placed without comparing
    /// times, ties included.
    fn load_user_ordered(&mut self, c: usize) -> Result<usize> {
        let seg = self.seg;
        self.times.clear();
        self.events.clear();
        self.at.clear();
        self.run_t.clear();
        self.runs.clear();
        self.heads.clear();
        self.decoded = 0;
        // Per stream of the user: (stream, first index in `run_t`, end,
        // stream row of the first); an unwanted stream's "indexes" only
        // count its rows.
        for (s, st) in self.streams.iter_mut().enumerate() {
            let Some((off, n)) = st.pair_for(seg, c)? else {
                continue;
            };
            if !st.wanted {
                self.runs.push((s, 0, n, off));
                continue;
            }
            self.decoded += n;
            let phys = st.start + off;
            for p in st.props.iter_mut().flatten() {
                p.ensure(phys, phys + n)?;
            }
            let from = self.run_t.len();
            st.append_times(seg, off, n, false, &mut self.run_t)?;
            self.runs.push((s, from, from + n, off));
        }
        self.heads.extend(self.runs.iter().map(|r| r.1));
        let starts = seg.user_starts();
        let (Some(&a), Some(&b)) = (starts.get(c), starts.get(c + 1)) else {
            return Err(Error::corrupt(
                seg.path(),
                "user index outside the users table",
            ));
        };
        let Some(order) = self.order.as_mut() else {
            return Ok(0);
        };
        let ranks = order.rows(seg, a as usize, b as usize)?;
        let disagree =
            || Error::corrupt(seg.path(), "order column disagrees with the event streams");
        self.times.reserve(self.decoded);
        self.events.reserve(self.decoded);
        for &r in ranks {
            let j = r as usize;
            let (Some(&(s, from, end, off)), Some(h)) = (self.runs.get(j), self.heads.get_mut(j))
            else {
                return Err(disagree());
            };
            if *h >= end {
                return Err(disagree());
            }
            let row = *h;
            *h += 1;
            let st = &self.streams[s];
            if !st.wanted {
                continue;
            }
            self.times.push(self.run_t[row]);
            self.events.push(st.event);
            if self.with_props {
                self.at.push((s as u32, (off + row - from) as u32));
            }
        }
        if self.heads.iter().zip(&self.runs).any(|(h, r)| *h != r.2) {
            return Err(disagree());
        }
        Ok(self.times.len())
    }

    /// Merges the user's runs (one per stream, each sorted by time and
    /// rank, each closed by a sentinel) on keys packing both, which fit
    /// when ranks stay below `2^tb − 1`.
    fn merge(&mut self, min_time: i64, tb: u32) {
        for (t, k) in self.run_t.iter().zip(self.run_k.iter_mut()) {
            if *k != u64::MAX {
                *k |= (t.wrapping_sub(min_time) as u64) << tb;
            }
        }
        let keys = &self.run_k;
        let total: usize = self.runs.iter().map(|r| r.2 - r.1).sum();
        self.times.reserve(total);
        self.events.reserve(total);
        self.heads.clear();
        self.heads.extend(self.runs.iter().map(|r| r.1));
        let heads = &mut self.heads[..];
        for _ in 0..total {
            let mut j = 0;
            let mut best = keys[heads[0]];
            for (r, &h) in heads.iter().enumerate().skip(1) {
                if keys[h] < best {
                    best = keys[h];
                    j = r;
                }
            }
            let h = heads[j];
            heads[j] += 1;
            let (s, from, _, off) = self.runs[j];
            self.times.push(self.run_t[h]);
            self.events.push(self.streams[s].event);
            if self.with_props {
                self.at.push((s as u32, (off + h - from) as u32));
            }
        }
    }

    /// The merge for ranks too large to pack with the time: a sort on
    /// (time, rank).
    fn merge_wide(&mut self) {
        let mut order: Vec<(i64, u64, usize, usize)> = Vec::new();
        for &(s, from, end, off) in &self.runs {
            order.extend((from..end).map(|h| (self.run_t[h], self.run_k[h], s, off + h - from)));
        }
        order.sort_unstable();
        for (t, _, s, r) in order {
            self.times.push(t);
            self.events.push(self.streams[s].event);
            if self.with_props {
                self.at.push((s as u32, r as u32));
            }
        }
    }

    /// The current user's runs, when the scan hands over runs.
    pub(super) fn runs(&self) -> Option<Runs<'_>> {
        self.as_runs.then_some(Runs {
            list: &self.run_list,
            times: &self.run_t,
        })
    }

    /// Property `k` of the current user's row `h`.
    /// The segment row of handle `h`.
    pub(super) fn stored_row(&self, h: usize) -> Option<usize> {
        let &(s, r) = self.at.get(h)?;
        Some(self.streams.get(s as usize)?.start + r as usize)
    }

    pub(super) fn prop_code(&self, k: usize, h: usize) -> Option<u32> {
        let &(s, r) = self.at.get(h)?;
        let st = self.streams.get(s as usize)?;
        st.props.get(k)?.as_ref()?.code(st.start + r as usize)
    }

    pub(super) fn prop(&self, k: usize, h: usize) -> Option<&Value> {
        let &(s, r) = self.at.get(h)?;
        let st = self.streams.get(s as usize)?;
        st.props.get(k)?.as_ref()?.get(st.start + r as usize)
    }
}
