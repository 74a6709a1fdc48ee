//! distribution — 分布分析: how many users did an event 1, 2, 3–5, 6–10…
//! times in the range (or on how many days, or summed a property), in
//! buckets given by their lower bounds.

use footprint_storage::{UserRows, Value};
use serde_json::{json, Value as Json};

use crate::error::{QueryError, Result};
use crate::exec::{num, number, quantile_f64, Ctx, Prune};
use crate::groups::Size;
use crate::json::{array, Obj};
use crate::limits::{Metered, Usage, GROUP_CELLS};
use crate::model::{Breakdown, Common, EventRef, Key, Keys, Matcher};
use crate::time::{Clock, Unit};

/// Most bucket bounds.
pub const MAX_BUCKETS: usize = 1_000;

/// What is measured per user.
#[derive(Debug, Clone, PartialEq)]
pub enum Measure {
    /// Matching events.
    Count,
    /// Distinct calendar days (in the query's time zone) with a matching event.
    Days,
    /// Sum of a numeric event property over the matching events.
    Sum {
        /// Property name.
        prop: String,
        /// Scan slot.
        slot: Option<usize>,
    },
}

/// A parsed distribution query.
pub struct Distribution {
    /// The events measured.
    pub event: EventRef,
    /// The measure.
    pub measure: Measure,
    /// Ascending lower bounds of the buckets.
    pub bounds: Vec<f64>,
    matcher: Matcher,
}

const DEFAULT_BOUNDS: [f64; 10] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 11.0, 21.0, 51.0, 101.0];

impl Distribution {
    /// Reads the distribution fields: `event` (a name or `{"event", "where"}`),
    /// `measure` (`"count"`, `"days"` or `{"sum": PROP}`), `buckets`.
    pub fn parse(o: &mut Obj<'_>, ctx: &mut Ctx<'_>) -> Result<Distribution> {
        let ep = o.at("event");
        let event = match o.req("event")? {
            Json::String(name) => {
                let v = json!({ "event": name });
                EventRef::parse(&v, &ep, ctx)?
            }
            v @ Json::Object(_) => EventRef::parse(v, &ep, ctx)?,
            other => {
                return Err(QueryError::invalid(
                    ep,
                    format!(
                        "expected an event name or {{\"event\": NAME, \"where\": F}}, got {}",
                        crate::json::describe(other)
                    ),
                ))
            }
        };
        let mp = o.at("measure");
        let measure = match o.opt("measure") {
            None => Measure::Count,
            Some(Json::String(s)) if s == "count" => Measure::Count,
            Some(Json::String(s)) if s == "days" => Measure::Days,
            Some(v @ Json::Object(_)) => {
                let mut m = Obj::new(v, &mp)?;
                let sp = m.at("sum");
                let prop = m.req_str("sum")?;
                if prop.is_empty() {
                    return Err(QueryError::invalid(sp, "property name is empty"));
                }
                let slot = ctx.slot(prop, &sp)?;
                m.finish("sum")?;
                Measure::Sum {
                    prop: prop.to_owned(),
                    slot,
                }
            }
            Some(other) => {
                return Err(QueryError::invalid(
                    mp,
                    format!(
                        "expected \"count\", \"days\" or {{\"sum\": PROP}}, got {}",
                        crate::json::describe(other)
                    ),
                ))
            }
        };
        let bounds = match o.opt("buckets") {
            None => DEFAULT_BOUNDS.to_vec(),
            Some(v) => {
                let bp = o.at("buckets");
                let list = array(v, &bp)?;
                if list.is_empty() || list.len() > MAX_BUCKETS {
                    return Err(QueryError::invalid(
                        bp,
                        format!("needs 1 to {MAX_BUCKETS} lower bounds, e.g. [1, 2, 3, 6, 11]"),
                    ));
                }
                let mut out = Vec::with_capacity(list.len());
                for (i, b) in list.iter().enumerate() {
                    let x = b.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
                        QueryError::invalid(
                            format!("{bp}[{i}]"),
                            format!("expected a number, got {}", crate::json::describe(b)),
                        )
                    })?;
                    if out.last().is_some_and(|&p| x <= p) {
                        return Err(QueryError::invalid(
                            format!("{bp}[{i}]"),
                            "bounds must be strictly increasing",
                        ));
                    }
                    out.push(x);
                }
                out
            }
        };
        let matcher = Matcher::new([&event]);
        Ok(Distribution {
            event,
            measure,
            bounds,
            matcher,
        })
    }
}

impl Distribution {
    /// Whether the query reads no times and no row order (see
    /// [`Ctx::order_free`]): over all time, not counting days, and without
    /// an `event_prop` breakdown, which takes the user's first matching
    /// event and so needs rows in time order.
    pub fn order_free(&self, c: &Common) -> bool {
        c.range.is_none()
            && self.measure != Measure::Days
            && !c.breakdown.iter().any(Breakdown::reads_event)
    }
}

struct Acc {
    clock: Clock,
    /// Per-user values, overall.
    all: Vec<f64>,
    keys: Keys,
    groups: Vec<Vec<f64>>,
}

impl Metered for Acc {
    fn usage(&self) -> Usage {
        // With a breakdown, every value is kept twice: overall and in its group.
        let copies = if self.keys.list.is_empty() { 1 } else { 2 };
        Usage {
            cells: self.keys.list.len() as u64 * (1 + GROUP_CELLS),
            samples: self.all.len() as u64 * copies,
        }
    }
}

/// Runs a distribution query.
pub fn run(q: &Distribution, c: &Common, ctx: &Ctx<'_>) -> Result<Json> {
    let acc = ctx.run(
        c.range,
        Prune::by(&q.event),
        || Acc {
            clock: Clock::new(c.tz),
            all: Vec::new(),
            keys: Keys::default(),
            groups: Vec::new(),
        },
        |acc, u| per_user(q, c, ctx, acc, u),
        |mut a, b| {
            a.all.extend(b.all);
            crate::model::merge_samples(&mut a.keys, &mut a.groups, b.keys, b.groups);
            a
        },
    )?;
    let mut out = render(q, acc.all);
    if !c.breakdown.is_empty() {
        let groups: Vec<(Key, Vec<f64>)> = acc.keys.list.into_iter().zip(acc.groups).collect();
        crate::groups::render(
            &mut out,
            &c.breakdown,
            c.limit,
            groups,
            |v| Size::Count(v.len() as u64),
            |v| render(q, v),
        );
    }
    Ok(out)
}

fn render(q: &Distribution, mut v: Vec<f64>) -> Json {
    v.sort_unstable_by(f64::total_cmp);
    let below = v.partition_point(|&x| x < q.bounds[0]);
    let buckets: Vec<Json> = q
        .bounds
        .iter()
        .enumerate()
        .map(|(i, &lo)| {
            let hi = q.bounds.get(i + 1).copied();
            let a = v.partition_point(|&x| x < lo);
            let b = hi.map_or(v.len(), |h| v.partition_point(|&x| x < h));
            json!({"from": number(lo), "to": hi.map_or(Json::Null, number), "users": b - a})
        })
        .collect();
    let avg = (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    json!({
        "users": v.len() - below,
        "below": below,
        "buckets": buckets,
        "min": v.first().map_or(Json::Null, |&x| number(x)),
        "median": num(quantile_f64(&v, 0.5)),
        "avg": num(avg),
        "max": v.last().map_or(Json::Null, |&x| number(x)),
    })
}

fn per_user(q: &Distribution, c: &Common, ctx: &Ctx<'_>, acc: &mut Acc, u: &UserRows<'_>) {
    let Some(profile) = ctx.admit(c, u.uid) else {
        return;
    };
    let mut n = 0u64;
    let mut days = 0u64;
    let mut last_day = i64::MIN;
    let mut sum = 0.0f64;
    let mut first: Option<usize> = None;
    let clock = &mut acc.clock;
    crate::model::for_each_match(&q.matcher, &c.filter, u, profile, |i, _| {
        n += 1;
        first.get_or_insert(i);
        match &q.measure {
            Measure::Count => {}
            Measure::Days => {
                // Rows are in time order, so days only move forward.
                let d = clock.bucket(Unit::Day, u.times[i]);
                if d != last_day {
                    days += 1;
                    last_day = d;
                }
            }
            Measure::Sum { slot, .. } => {
                if let Some(v) = slot.and_then(|k| u.prop(k, i)) {
                    match v {
                        Value::Int(x) => sum += *x as f64,
                        Value::Float(x) => sum += *x,
                        _ => {}
                    }
                }
            }
        }
    });
    let Some(first) = first else { return };
    let value = match q.measure {
        Measure::Count => n as f64,
        Measure::Days => days as f64,
        Measure::Sum { .. } => sum,
    };
    acc.all.push(value);
    if !c.breakdown.is_empty() {
        let id = acc.keys.id(&c.breakdown, u, first, profile) as usize;
        if id == acc.groups.len() {
            acc.groups.push(Vec::new());
        }
        acc.groups[id].push(value);
    }
}
