//! Health scores (客户健康度): `"score"` in a `users` query gives every
//! member a score, Σ `weight` × min(measure, `cap`) over weighted, capped
//! components (logins in the last 30 days, use of a key feature, support
//! contacts with a negative weight), each a measure of the member's
//! matching events within a window that ends where `within` windows of
//! `did` end (the end of `time_range`, default now). The answer is the
//! distribution of the scores and the top and bottom members; saved
//! scores (the server's `/v1/scores`) write every member's score as a
//! profile property through [`all`].
//!
//! The members are the users query's own: its `profile`, `did`,
//! `did_not`, `where`, `time_range` and `users` decide who is scored, and
//! a member without a matching event scores 0 on every component.

use footprint_storage::UserRows;
use serde_json::{json, Value as Json};

use crate::error::{QueryError, Result};
use crate::exec::{number, quantile_f64, Ctx};
use crate::filter::Filter;
use crate::json::{array, check_keys, Obj};
use crate::limits::Usage;
use crate::model::{EventRef, Matcher};
use crate::time::{parse_window, Clock, Unit};

/// Most components of one score (one matcher bit each).
pub const MAX_COMPONENTS: usize = 32;
/// Most members listed in `top` (and in `bottom`).
pub const MAX_TOP: u64 = 1000;
/// Most histogram bins.
pub const MAX_BINS: u64 = 100;
/// Tied members whose names are looked up at once (for the order of
/// `top` and `bottom`).
const NAME_CHUNK: usize = 65_536;
/// The fields of `score`.
pub const FIELDS: [&str; 4] = ["components", "unit", "histogram", "top"];
const COMPONENT_FIELDS: [&str; 7] = [
    "name", "event", "where", "within", "measure", "weight", "cap",
];

/// What a component measures of a member's matching events in its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// How many there are.
    Count,
    /// On how many calendar days (in the query's time zone) there is one.
    Days,
    /// 1 when there is one, else 0.
    Did,
}

/// One weighted, capped component.
#[derive(Debug, Clone)]
pub struct Component {
    /// Its label in the answer.
    pub name: String,
    /// The events measured.
    pub event: EventRef,
    /// Only events at or after this instant count (the window's start).
    pub since: Option<i64>,
    /// What is measured.
    pub measure: Measure,
    /// Points per unit of the (capped) measure; negative for risks.
    pub weight: f64,
    /// The measure counts at most this much.
    pub cap: Option<f64>,
}

impl Component {
    /// The points a measure of `v` earns.
    pub fn points(&self, v: u64) -> f64 {
        let v = v as f64;
        self.weight * self.cap.map_or(v, |c| v.min(c))
    }
}

/// A parsed `score`.
#[derive(Debug, Clone)]
pub struct Score {
    /// The components, in the order given.
    pub components: Vec<Component>,
    /// Equal-width bins of the histogram.
    pub bins: usize,
    /// Members listed at each end.
    pub top: usize,
    matcher: Matcher,
}

/// The score of `values` (one measure per component, in order): the sum of
/// the components' points, added in component order.
pub fn total(components: &[Component], values: &[u64]) -> f64 {
    components
        .iter()
        .zip(values)
        .fold(0.0, |s, (c, &v)| s + c.points(v))
}

impl Score {
    /// Reads `score` at `path`; `end` is where `within` windows end.
    pub fn parse(v: &Json, path: &str, ctx: &mut Ctx<'_>, end: i64) -> Result<Score> {
        check_keys(v, path, &FIELDS)?;
        let mut o = Obj::new(v, path)?;
        match o.opt("unit") {
            None => {}
            Some(Json::String(s)) if s == "user" => {}
            Some(Json::Object(m)) if m.contains_key("group") => {
                return Err(QueryError::unsupported(
                    o.at("unit"),
                    "scores per account (group analytics) are not built yet; scores are per user",
                ))
            }
            Some(_) => {
                return Err(QueryError::invalid(
                    o.at("unit"),
                    "expected \"user\" (accounts, {\"group\": NAME}, are not built yet)",
                ))
            }
        }
        let lp = o.at("components");
        let list = array(o.req("components")?, &lp)?;
        if list.is_empty() || list.len() > MAX_COMPONENTS {
            return Err(QueryError::invalid(
                lp,
                format!("give 1 to {MAX_COMPONENTS} components"),
            ));
        }
        let mut components: Vec<Component> = Vec::new();
        for (i, c) in list.iter().enumerate() {
            let ip = format!("{lp}[{i}]");
            check_keys(c, &ip, &COMPONENT_FIELDS)?;
            let mut co = Obj::new(c, &ip)?;
            let name = co.req_str("name")?;
            if name.is_empty() || name.len() > 64 {
                return Err(QueryError::invalid(
                    co.at("name"),
                    "a name of 1 to 64 bytes",
                ));
            }
            if components.iter().any(|x| x.name == name) {
                return Err(QueryError::invalid(
                    co.at("name"),
                    format!("two components are named \"{name}\""),
                ));
            }
            let event = EventRef::read(&mut co, ctx)?;
            let since = match co.opt("within") {
                None => None,
                Some(w) => Some(end.saturating_sub(parse_window(w, &co.at("within"))?)),
            };
            let measure = match co.opt_str("measure")? {
                None | Some("count") => Measure::Count,
                Some("days") => Measure::Days,
                Some("did") => Measure::Did,
                Some(other) => {
                    return Err(QueryError::invalid(
                        co.at("measure"),
                        format!("unknown measure \"{other}\"; allowed: count, days, did"),
                    ))
                }
            };
            let weight = finite(co.req("weight")?, &co.at("weight"))?;
            let cap = match co.opt("cap") {
                None => None,
                Some(v) => {
                    let cap = finite(v, &co.at("cap"))?;
                    if cap < 0.0 {
                        return Err(QueryError::invalid(
                            co.at("cap"),
                            format!("a cap is at least 0, got {cap}"),
                        ));
                    }
                    Some(cap)
                }
            };
            co.finish(&COMPONENT_FIELDS.join(", "))?;
            components.push(Component {
                name: name.to_owned(),
                event,
                since,
                measure,
                weight,
                cap,
            });
        }
        let bins = match o.opt("histogram") {
            None => 10,
            Some(h) => {
                let mut ho = Obj::new(h, &o.at("histogram"))?;
                let bins = ho.opt_uint("bins", MAX_BINS)?.unwrap_or(10);
                if bins == 0 {
                    return Err(QueryError::invalid(ho.at("bins"), "at least 1 bin"));
                }
                ho.finish("bins")?;
                bins as usize
            }
        };
        let top = o.opt_uint("top", MAX_TOP)?.unwrap_or(10) as usize;
        o.finish(&FIELDS.join(", "))?;
        let matcher = Matcher::new(components.iter().map(|c| &c.event));
        Ok(Score {
            components,
            bins,
            top,
            matcher,
        })
    }

    /// Whether scoring reads event times (windows, days).
    pub fn reads_times(&self) -> bool {
        self.components
            .iter()
            .any(|c| c.since.is_some() || c.measure == Measure::Days)
    }

    /// The earliest instant a component counts from (`None`: all time).
    pub fn earliest(&self) -> Option<i64> {
        self.components
            .iter()
            .map(|c| c.since)
            .try_fold(i64::MAX, |m, s| s.map(|s| m.min(s)))
    }

    /// The filters of the components' events.
    pub fn filters(&self) -> impl Iterator<Item = &Filter> {
        self.components.iter().map(|c| &c.event.filter)
    }

    /// An empty accumulator for a query in time zone `tz`.
    pub fn acc(&self, tz: chrono_tz::Tz) -> Acc {
        Acc {
            clock: Clock::new(tz),
            k: self.components.len(),
            uids: Vec::new(),
            scores: Vec::new(),
            values: Vec::new(),
            last_day: Vec::new(),
        }
    }

    /// Scores member `u`, whose events pass `global` (the query's `where`).
    pub fn add(
        &self,
        acc: &mut Acc,
        global: &Filter,
        u: &UserRows<'_>,
        profile: Option<footprint_storage::profiles::Profile<'_>>,
    ) {
        let start = acc.values.len();
        acc.values.resize(start + acc.k, 0);
        acc.last_day.clear();
        acc.last_day.resize(acc.k, i64::MIN);
        let (values, last_day, clock) =
            (&mut acc.values[start..], &mut acc.last_day, &mut acc.clock);
        crate::model::for_each_match(&self.matcher, global, u, profile, |i, mut mask| {
            while mask != 0 {
                let k = mask.trailing_zeros() as usize;
                mask &= mask - 1;
                let c = &self.components[k];
                if c.since.is_some_and(|s| u.times[i] < s) {
                    continue;
                }
                match c.measure {
                    Measure::Count => values[k] += 1,
                    Measure::Did => values[k] = 1,
                    Measure::Days => {
                        // Rows are in time order, so days only move forward.
                        let d = clock.bucket(Unit::Day, u.times[i]);
                        if d != last_day[k] {
                            values[k] += 1;
                            last_day[k] = d;
                        }
                    }
                }
            }
        });
        let s = total(&self.components, &acc.values[start..]);
        acc.uids.push(u.uid);
        acc.scores.push(s);
    }

    /// Scores member `uid`, who has no event the scan read: 0 everywhere.
    pub fn add_zero(&self, acc: &mut Acc, uid: u32) {
        let zeros = vec![0; acc.k];
        acc.values.extend_from_slice(&zeros);
        acc.uids.push(uid);
        acc.scores.push(total(&self.components, &zeros));
    }

    /// The answer: `users` scored, `min`, `max`, `mean`, `median` (exact),
    /// the `histogram` and the `top` and `bottom` members.
    pub fn render(&self, acc: Acc, ctx: &Ctx<'_>) -> Json {
        let n = acc.uids.len();
        // Ascending by score (ties in any order: they are settled by id
        // below, where order shows).
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_unstable_by(|&a, &b| acc.scores[a].total_cmp(&acc.scores[b]));
        let sorted: Vec<f64> = order.iter().map(|&i| acc.scores[i]).collect();
        // Summed in ascending order, so the mean does not depend on how
        // shards split the users.
        let mean = (n > 0).then(|| sorted.iter().sum::<f64>() / n as f64);
        let pick = |top: bool| -> Vec<Json> {
            let want = self.top.min(n);
            if want == 0 {
                return Vec::new();
            }
            // Every member tied with the last one listed is a candidate;
            // ties go by user id.
            let bound = if top {
                sorted[n - want]
            } else {
                sorted[want - 1]
            };
            let range = if top {
                sorted.partition_point(|&s| s < bound)..n
            } else {
                0..sorted.partition_point(|&s| s <= bound)
            };
            let by = |a: &(f64, String, usize), b: &(f64, String, usize)| {
                let by_score = if top {
                    b.0.total_cmp(&a.0)
                } else {
                    a.0.total_cmp(&b.0)
                };
                by_score.then_with(|| a.1.cmp(&b.1))
            };
            // Names are looked up a chunk at a time, keeping the best
            // `want`: many members may tie (every user who never logged
            // in scores 0).
            let mut best: Vec<(f64, String, usize)> = Vec::new();
            for chunk in order[range].chunks(NAME_CHUNK) {
                let uids: Vec<u32> = chunk.iter().map(|&i| acc.uids[i]).collect();
                let names = ctx.user_names(&uids);
                best.extend(
                    chunk
                        .iter()
                        .zip(names)
                        .map(|(&i, name)| (acc.scores[i], name, i)),
                );
                best.sort_by(by);
                best.truncate(want);
            }
            best.into_iter()
                .map(|(s, name, i)| {
                    let vals = &acc.values[i * acc.k..(i + 1) * acc.k];
                    let comps: serde_json::Map<String, Json> = self
                        .components
                        .iter()
                        .zip(vals)
                        .map(|(c, &v)| (c.name.clone(), json!(v)))
                        .collect();
                    json!({"user": name, "score": number(s), "components": comps})
                })
                .collect()
        };
        json!({
            "users": n,
            "min": sorted.first().map_or(Json::Null, |&x| number(x)),
            "max": sorted.last().map_or(Json::Null, |&x| number(x)),
            "mean": mean.map_or(Json::Null, number),
            "median": quantile_f64(&sorted, 0.5).map_or(Json::Null, number),
            "histogram": histogram(&sorted, self.bins),
            "top": pick(true),
            "bottom": pick(false),
        })
    }
}

/// `bins` equal-width bins from the lowest score to the highest, each
/// `[from, to)` but the last, which holds the highest too (one bin when all
/// scores are equal; none without scores).
pub fn histogram(sorted: &[f64], bins: usize) -> Vec<Json> {
    let (Some(&lo), Some(&hi)) = (sorted.first(), sorted.last()) else {
        return Vec::new();
    };
    if lo == hi || bins <= 1 {
        return vec![json!({"from": number(lo), "to": number(hi), "users": sorted.len()})];
    }
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0u64; bins];
    for &s in sorted {
        let b = (((s - lo) / width).floor() as usize).min(bins - 1);
        counts[b] += 1;
    }
    counts
        .iter()
        .enumerate()
        .map(|(i, &users)| {
            let from = lo + width * i as f64;
            let to = if i + 1 == bins {
                hi
            } else {
                lo + width * (i + 1) as f64
            };
            json!({"from": number(from), "to": number(to), "users": users})
        })
        .collect()
}

fn finite(v: &Json, path: &str) -> Result<f64> {
    match v.as_f64() {
        Some(x) if x.is_finite() && x.abs() <= 1e12 => Ok(x),
        _ => Err(QueryError::invalid(
            path,
            format!(
                "expected a number from -1e12 to 1e12, got {}",
                crate::json::describe(v)
            ),
        )),
    }
}

/// The scores of one shard (or, merged, of all): per member its id, score
/// and the measure of each component.
pub struct Acc {
    clock: Clock,
    /// Components per member.
    k: usize,
    /// Member ids.
    pub uids: Vec<u32>,
    /// Scores, by member.
    pub scores: Vec<f64>,
    /// `k` measures per member.
    values: Vec<u64>,
    last_day: Vec<i64>,
}

impl Acc {
    /// What the accumulator holds: two samples per member and one per
    /// component measure.
    pub fn usage(&self) -> Usage {
        Usage {
            cells: 0,
            samples: self.uids.len() as u64 * (2 + self.k as u64),
        }
    }

    /// Appends `other`'s members.
    pub fn merge(&mut self, other: Acc) {
        self.uids.extend(other.uids);
        self.scores.extend(other.scores);
        self.values.extend(other.values);
    }
}

/// Every member's score under `query` (a `users` query with `score`),
/// ascending by user id: what a saved score writes. Runs as
/// [`crate::execute`] runs the query (same validation, time budget,
/// cancellation and scope).
pub fn all(
    store: &footprint_storage::Store,
    query: &Json,
    opts: crate::QueryOptions,
) -> Result<Vec<(u32, f64)>> {
    let (kind, mut o, mut ctx, common) = crate::head(store, query, opts, crate::Limits::default())?;
    if kind != "users" || query.get("score").is_none() {
        return Err(QueryError::invalid(
            if kind != "users" { "kind" } else { "score" },
            "a score is a users query with \"score\"",
        ));
    }
    let q = crate::users_plan(&mut o, &mut ctx, &common)?;
    o.finish(&format!(
        "{}, {}",
        crate::COMMON,
        crate::USERS_FIELDS.join(", ")
    ))?;
    let acc = crate::users::scores(&q, &common, &ctx)?;
    let mut out: Vec<(u32, f64)> = acc.uids.into_iter().zip(acc.scores).collect();
    out.sort_unstable_by_key(|p| p.0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_bins_span_min_to_max_and_the_last_holds_the_max() {
        assert!(histogram(&[], 10).is_empty());
        assert_eq!(
            histogram(&[3.0, 3.0], 10),
            vec![json!({"from": 3, "to": 3, "users": 2})]
        );
        assert_eq!(
            histogram(&[0.0, 4.9, 5.0, 10.0], 2),
            vec![
                json!({"from": 0, "to": 5, "users": 2}),
                json!({"from": 5, "to": 10, "users": 2}),
            ]
        );
        assert_eq!(
            histogram(&[-1.0, 2.0], 1),
            vec![json!({"from": -1, "to": 2, "users": 2})]
        );
    }
}
