//! interval — 间隔分析: time from a `from` event to the next `to` event.
//! Semantics: the conformance folder's SEMANTICS.md §3.

use footprint_storage::UserRows;
use serde_json::{json, Value as Json};

use crate::error::{QueryError, Result};
use crate::exec::{num, quantile, Ctx};
use crate::groups::Size;
use crate::json::Obj;
use crate::limits::{Metered, Usage, GROUP_CELLS};
use crate::model::{req_ref, Common, EventRef, Key};
use crate::time::parse_window;

/// How pairs are formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pairs {
    /// Each user's earliest `from` to the next `to`.
    First,
    /// Every `from` to the next `to`, pairs not overlapping.
    Each,
}

/// A parsed interval query.
pub struct Interval {
    /// Start event.
    pub from: EventRef,
    /// End event.
    pub to: EventRef,
    /// Pairing.
    pub pairs: Pairs,
    /// Longest pair kept (inclusive), ms.
    pub window: Option<i64>,
    /// `from` (bit 0) and `to` (bit 1) as one matcher.
    pub matcher: crate::model::Matcher,
}

impl Interval {
    /// Reads the interval fields.
    pub fn parse(o: &mut Obj<'_>, ctx: &mut Ctx<'_>) -> Result<Interval> {
        let from = req_ref(o, "from", ctx)?;
        let to = req_ref(o, "to", ctx)?;
        let pairs = match o.opt_str("pairs")? {
            None | Some("each") => Pairs::Each,
            Some("first") => Pairs::First,
            Some(other) => {
                return Err(QueryError::invalid(
                    o.at("pairs"),
                    format!("unknown pairs \"{other}\"; allowed: each, first"),
                ))
            }
        };
        let window = match o.opt("window") {
            None => None,
            Some(w) => Some(parse_window(w, &o.at("window"))?),
        };
        if let Some(true) = o.opt_bool("approximate")? {
            // Exact is fast enough; the flag is accepted and answers stay exact.
        }
        let matcher = crate::model::Matcher::new([&from, &to]);
        Ok(Interval {
            from,
            to,
            pairs,
            window,
            matcher,
        })
    }
}

struct Acc {
    all: Vec<i64>,
    keys: crate::model::Keys,
    groups: Vec<Vec<i64>>,
    froms: Vec<usize>,
    tos: Vec<usize>,
    pairs: Vec<(i64, usize)>,
}

impl Metered for Acc {
    fn usage(&self) -> Usage {
        // With a breakdown, every pair is kept twice: overall and in its group.
        let copies = if self.keys.list.is_empty() { 1 } else { 2 };
        Usage {
            cells: self.keys.list.len() as u64 * (1 + GROUP_CELLS),
            samples: self.all.len() as u64 * copies,
        }
    }
}

/// Runs an interval query.
pub fn run(q: &Interval, c: &Common, ctx: &Ctx<'_>) -> Result<Json> {
    let acc = ctx.run(
        c.range,
        crate::exec::Prune::by(&q.from),
        || Acc {
            all: Vec::new(),
            keys: crate::model::Keys::default(),
            groups: Vec::new(),
            froms: Vec::new(),
            tos: Vec::new(),
            pairs: Vec::new(),
        },
        |acc, u| per_user(q, c, ctx, acc, u),
        |mut a, b| {
            a.all.extend(b.all);
            crate::model::merge_samples(&mut a.keys, &mut a.groups, b.keys, b.groups);
            a
        },
    )?;
    let mut out = stats(acc.all);
    if !c.breakdown.is_empty() {
        let groups: Vec<(Key, Vec<i64>)> = acc.keys.list.into_iter().zip(acc.groups).collect();
        crate::groups::render(
            &mut out,
            &c.breakdown,
            c.limit,
            groups,
            |v| Size::Count(v.len() as u64),
            stats,
        );
    }
    Ok(out)
}

/// Histogram bucket bounds (ms): human-scale steps.
pub(crate) const BOUNDS: [i64; 12] = [
    0,
    1_000,
    10_000,
    60_000,
    600_000,
    3_600_000,
    21_600_000,
    86_400_000,
    259_200_000,
    604_800_000,
    2_592_000_000,
    7_776_000_000,
];

fn stats(mut d: Vec<i64>) -> Json {
    d.sort_unstable();
    if d.is_empty() {
        return json!({"count": 0, "min": null, "p25": null, "median": null, "p75": null,
                      "max": null, "avg": null, "histogram": []});
    }
    let avg = d.iter().map(|&x| x as f64).sum::<f64>() / d.len() as f64;
    let mut hist = Vec::new();
    for (i, &lo) in BOUNDS.iter().enumerate() {
        let hi = BOUNDS.get(i + 1).copied();
        let a = d.partition_point(|&x| x < lo);
        let b = hi.map_or(d.len(), |h| d.partition_point(|&x| x < h));
        if b > a {
            hist.push(json!({"from": lo, "to": hi, "count": b - a}));
        }
    }
    json!({
        "count": d.len(),
        "min": d[0],
        "p25": num(quantile(&d, 0.25)),
        "median": num(quantile(&d, 0.5)),
        "p75": num(quantile(&d, 0.75)),
        "max": d[d.len() - 1],
        "avg": num(Some(avg)),
        "histogram": hist,
    })
}

fn per_user(q: &Interval, c: &Common, ctx: &Ctx<'_>, acc: &mut Acc, u: &UserRows<'_>) {
    let Some(profile) = ctx.admit(c, u.uid) else {
        return;
    };
    crate::exec::reset(&mut acc.froms);
    crate::exec::reset(&mut acc.tos);
    let (froms, tos) = (&mut acc.froms, &mut acc.tos);
    crate::model::for_each_match(&q.matcher, &c.filter, u, profile, |i, m| {
        if m & 1 != 0 {
            froms.push(i);
        }
        if m & 2 != 0 {
            tos.push(i);
        }
    });
    if acc.froms.is_empty() || acc.tos.is_empty() {
        return;
    }
    let times = u.times;
    // The earliest `to` at or after `from`'s time that is not the same row.
    let tos = &acc.tos;
    let next_to = |fi: usize| -> Option<usize> {
        let ft = times[fi];
        let start = tos.partition_point(|&r| times[r] < ft);
        tos[start..].iter().copied().find(|&r| r != fi)
    };
    crate::exec::reset(&mut acc.pairs);
    match q.pairs {
        Pairs::First => {
            let fi = acc.froms[0];
            if let Some(ti) = next_to(fi) {
                acc.pairs.push((times[ti] - times[fi], fi));
            }
        }
        Pairs::Each => {
            let mut last_to: Option<i64> = None;
            for &fi in &acc.froms {
                let ft = times[fi];
                if last_to.is_some_and(|lt| ft <= lt) {
                    continue;
                }
                if let Some(ti) = next_to(fi) {
                    acc.pairs.push((times[ti] - ft, fi));
                    last_to = Some(times[ti]);
                }
            }
        }
    }
    for &(delta, fi) in &acc.pairs {
        if q.window.is_some_and(|w| delta > w) {
            continue;
        }
        acc.all.push(delta);
        if !c.breakdown.is_empty() {
            let id = acc.keys.id(&c.breakdown, u, fi, profile) as usize;
            if id == acc.groups.len() {
                acc.groups.push(Vec::new());
            }
            acc.groups[id].push(delta);
        }
    }
}
