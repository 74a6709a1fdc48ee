//! attribution — 渠道分析 / UTM 归因: which touchpoints (a source, a
//! channel…) get the credit for each conversion, under the six models of
//! ANALYSES.md ("attribution").
//!
//! Per user, in (time, arrival) order, one pass keeps the touchpoints of
//! the last `lookback` in a queue; each conversion inside `time_range`
//! shares its credit among the queue (the touches at or before it, so a
//! conversion that is itself a touch counts). The scan starts `lookback`
//! before the range so that early touches are seen (GA4, Adobe).

use footprint_storage::{UserRows, Value};
use rustc_hash::FxHashMap;
use serde_json::{json, Map, Value as Json};

use crate::channels::{string_form, Slots as ChannelSlots};
use crate::error::{QueryError, Result};
use crate::exec::{num, Ctx, Prune, RowProps};
use crate::json::{array, Obj};
use crate::limits::{Metered, Usage, GROUP_CELLS};
use crate::model::{req_ref, Common, EventRef};
use crate::time::{parse_window, DAY};

/// An attribution model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// All credit to the first touchpoint.
    First,
    /// All credit to the last touchpoint.
    Last,
    /// Equal shares.
    Linear,
    /// 40 % first, 40 % last, 20 % shared by the middle.
    Position,
    /// Shares halving every `half_life` before the conversion.
    TimeDecay,
    /// 1 to every distinct value (not normalised).
    Participation,
}

const MODELS: &str = "first, last, linear, position, time_decay, participation";

impl Model {
    fn parse(s: &str) -> Option<Model> {
        Some(match s {
            "first" => Model::First,
            "last" => Model::Last,
            "linear" => Model::Linear,
            "position" => Model::Position,
            "time_decay" => Model::TimeDecay,
            "participation" => Model::Participation,
            _ => return None,
        })
    }

    /// The model's name in queries and results.
    pub fn name(self) -> &'static str {
        match self {
            Model::First => "first",
            Model::Last => "last",
            Model::Linear => "linear",
            Model::Position => "position",
            Model::TimeDecay => "time_decay",
            Model::Participation => "participation",
        }
    }
}

/// What a touchpoint's value is.
#[derive(Debug, Clone)]
pub enum By {
    /// The string form of an event property (absent or empty: no touchpoint).
    Prop(Option<usize>),
    /// The event's channel (every touch has one).
    Channel(ChannelSlots),
}

/// A parsed attribution query.
pub struct Attribution {
    /// The conversion event.
    pub conversion: EventRef,
    /// The touch events (`$any` by default).
    pub touch: EventRef,
    /// The touchpoint value.
    pub by: By,
    /// Slot of the conversion's value property, when revenue is asked for.
    pub value: Option<Option<usize>>,
    /// Look-back in ms.
    pub lookback: i64,
    /// Time-decay half-life in ms.
    pub half_life: i64,
    /// The models, in result order.
    pub models: Vec<Model>,
}

/// Query fields of this kind.
pub const FIELDS: [&str; 7] = [
    "conversion",
    "touch",
    "by",
    "value_prop",
    "lookback",
    "half_life",
    "models",
];

impl Attribution {
    /// Reads the attribution fields.
    pub fn parse(o: &mut Obj<'_>, ctx: &mut Ctx<'_>, c: &Common) -> Result<Attribution> {
        if !c.breakdown.is_empty() {
            return Err(QueryError::invalid(
                "breakdown",
                "attribution groups conversions by `by` (an event_prop or the channel); it takes no breakdown",
            ));
        }
        let conversion = req_ref(o, "conversion", ctx)?;
        let touch = match o.opt("touch") {
            None => EventRef {
                name: "$any".into(),
                id: None,
                filter: crate::filter::Filter::True,
            },
            Some(v) => EventRef::parse(v, &o.at("touch"), ctx)?,
        };
        let bp = o.at("by");
        let mut bo = Obj::new(o.req("by")?, &bp)?;
        let by = match (bo.opt_str("event_prop")?, bo.opt("channel")) {
            (Some(name), None) => By::Prop(ctx.slot(name, &bo.at("event_prop"))?),
            (None, Some(Json::Bool(true))) => By::Channel(ChannelSlots::register(ctx)),
            (None, Some(_)) => return Err(QueryError::invalid(bo.at("channel"), "expected true")),
            _ => {
                return Err(QueryError::invalid(
                    &bp,
                    "expected {\"event_prop\": NAME} or {\"channel\": true}",
                ))
            }
        };
        bo.finish("event_prop or channel")?;
        let value = match o.opt_str("value_prop")? {
            None => None,
            Some(name) => Some(ctx.slot(name, &o.at("value_prop"))?),
        };
        let lookback = match o.opt("lookback") {
            None => 30 * DAY,
            Some(v) => parse_window(v, &o.at("lookback"))?,
        };
        let half_life = match o.opt("half_life") {
            None => 7 * DAY,
            Some(v) => parse_window(v, &o.at("half_life"))?,
        };
        if half_life <= 0 {
            return Err(QueryError::invalid(o.at("half_life"), "must be positive"));
        }
        let models = match o.opt("models") {
            None => vec![Model::Last],
            Some(v) => {
                let mp = o.at("models");
                let list = array(v, &mp)?;
                if list.is_empty() {
                    return Err(QueryError::invalid(
                        mp,
                        format!("needs at least one model (allowed: {MODELS})"),
                    ));
                }
                let mut models = Vec::new();
                for (i, m) in list.iter().enumerate() {
                    let ip = format!("{mp}[{i}]");
                    let name = m
                        .as_str()
                        .ok_or_else(|| QueryError::invalid(&ip, "expected a model name string"))?;
                    let Some(model) = Model::parse(name) else {
                        let hint = crate::suggest::nearest(name, MODELS.split(", "))
                            .map(|s| format!(" (did you mean \"{s}\"?)"))
                            .unwrap_or_default();
                        return Err(QueryError::invalid(
                            ip,
                            format!("unknown model \"{name}\"{hint} (allowed: {MODELS})"),
                        ));
                    };
                    if models.contains(&model) {
                        return Err(QueryError::invalid(
                            ip,
                            format!("model \"{name}\" is listed twice"),
                        ));
                    }
                    models.push(model);
                }
                models
            }
        };
        Ok(Attribution {
            conversion,
            touch,
            by,
            value,
            lookback,
            half_life,
            models,
        })
    }

    /// The time range to scan: `lookback` more before the query's range.
    pub fn scan_range(&self, c: &Common) -> Option<(i64, i64)> {
        c.range
            .map(|(from, to)| (from.saturating_sub(self.lookback), to))
    }
}

struct Acc {
    ids: FxHashMap<String, u32>,
    values: Vec<String>,
    /// Per value id and model, credited conversions and revenue:
    /// `cells[(id * models + k) * 2 + {0, 1}]`.
    cells: Vec<f64>,
    /// Per value id: it was a touchpoint of some conversion (it gets a row).
    used: Vec<bool>,
    conversions: u64,
    users: u64,
    revenue: f64,
    /// This user's touches of the last `lookback`, from `start` on: (time,
    /// row, value id or [`UNREAD`] or [`NO_VALUE`]).
    queue: Vec<(i64, u32, u32)>,
    start: usize,
    /// One conversion's touchpoints: (time, value id).
    touches: Vec<(i64, u32)>,
    /// Value id of each channel, [`UNREAD`] until seen.
    channel_ids: [u32; crate::channels::ALL.len()],
    /// Per value id, the last conversion that credited it, and its share
    /// of that conversion's touchpoints.
    stamp: Vec<u64>,
    agg: Vec<ValueAgg>,
    /// The values of one conversion's touchpoints.
    distinct: Vec<u32>,
    models: usize,
}

impl Metered for Acc {
    fn usage(&self) -> Usage {
        Usage {
            cells: self.values.len() as u64 * (2 * self.models as u64 + GROUP_CELLS),
            samples: 0,
        }
    }
}

impl Acc {
    fn id(&mut self, v: &str) -> u32 {
        if let Some(&id) = self.ids.get(v) {
            return id;
        }
        let id = self.values.len() as u32;
        self.ids.insert(v.to_owned(), id);
        self.values.push(v.to_owned());
        self.cells.extend(std::iter::repeat_n(0.0, 2 * self.models));
        self.used.push(false);
        id
    }
}

/// The value `(direct)` stands for conversions without touchpoints.
pub const DIRECT: &str = "(direct)";

/// Runs an attribution query.
pub fn run(q: &Attribution, c: &Common, ctx: &Ctx<'_>) -> Result<Json> {
    let nm = q.models.len();
    let init = || Acc {
        ids: FxHashMap::default(),
        values: Vec::new(),
        cells: Vec::new(),
        used: Vec::new(),
        conversions: 0,
        users: 0,
        revenue: 0.0,
        queue: Vec::new(),
        start: 0,
        touches: Vec::new(),
        channel_ids: [UNREAD; crate::channels::ALL.len()],
        stamp: Vec::new(),
        agg: Vec::new(),
        distinct: Vec::new(),
        models: nm,
    };
    let acc = ctx.run(
        q.scan_range(c),
        Prune::by(&q.conversion),
        init,
        |acc, u| per_user(q, c, ctx, acc, u),
        |mut a, b| {
            for (i, v) in b.values.iter().enumerate() {
                if !b.used[i] {
                    continue;
                }
                let id = a.id(v) as usize;
                a.used[id] = true;
                let (mine, theirs) = (id * 2 * nm, i * 2 * nm);
                for k in 0..2 * nm {
                    a.cells[mine + k] += b.cells[theirs + k];
                }
            }
            a.conversions += b.conversions;
            a.users += b.users;
            a.revenue += b.revenue;
            a
        },
    )?;
    let mut rows: Vec<(String, &[f64])> = acc
        .values
        .into_iter()
        .zip(acc.cells.chunks(2 * nm))
        .zip(&acc.used)
        .filter(|(_, &used)| used)
        .map(|(row, _)| row)
        .collect();
    order_rows(&mut rows);
    rows.truncate(c.limit);
    let rows: Vec<Json> = rows
        .into_iter()
        .map(|(v, cr)| {
            let mut m = Map::new();
            m.insert("value".into(), Json::String(v));
            for (k, model) in q.models.iter().enumerate() {
                let mut cell = json!({ "conversions": num(Some(cr[2 * k])) });
                if q.value.is_some() {
                    cell["revenue"] = num(Some(cr[2 * k + 1]));
                }
                m.insert(model.name().into(), cell);
            }
            Json::Object(m)
        })
        .collect();
    let mut total = json!({ "conversions": acc.conversions, "users": acc.users });
    if q.value.is_some() {
        total["revenue"] = num(Some(acc.revenue));
    }
    Ok(json!({ "rows": rows, "total": total }))
}

/// Orders rows by the first model's conversions, largest first, then by
/// value. Sums within 1e-9 of each other are ties (the same credit summed
/// in another order differs in the last bits), so the value decides: runs
/// of neighbours that close are sorted by value.
fn order_rows(rows: &mut [(String, &[f64])]) {
    let first = |r: &(String, &[f64])| r.1.first().copied().unwrap_or(0.0);
    rows.sort_by(|a, b| first(b).total_cmp(&first(a)).then_with(|| a.0.cmp(&b.0)));
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()) + 1e-12;
    let mut i = 0;
    while i < rows.len() {
        let mut j = i + 1;
        while j < rows.len() && close(first(&rows[j - 1]), first(&rows[j])) {
            j += 1;
        }
        rows[i..j].sort_by(|a, b| a.0.cmp(&b.0));
        i = j;
    }
}

fn per_user(q: &Attribution, c: &Common, ctx: &Ctx<'_>, acc: &mut Acc, u: &UserRows<'_>) {
    let Some(profile) = ctx.admit(c, u.uid) else {
        return;
    };
    acc.queue.clear();
    acc.start = 0;
    let mut converted = false;
    let (global, touch_filter, conv_filter) = (
        !c.filter.is_true(),
        !q.touch.filter.is_true(),
        !q.conversion.filter.is_true(),
    );
    for i in 0..u.len() {
        let ev = u.events[i];
        let (is_touch, is_conv) = (
            q.touch.id.is_none() || q.touch.id == Some(Some(ev)),
            q.conversion.id == Some(Some(ev)),
        );
        if !is_touch && !is_conv {
            continue;
        }
        let p = RowProps {
            rows: u,
            i,
            profile,
        };
        if global && !c.filter.eval(&p) {
            continue;
        }
        let t = u.times[i];
        if is_touch && (!touch_filter || q.touch.filter.eval(&p)) {
            // Its value is read only if a conversion looks back at it.
            acc.queue.push((t, i as u32, UNREAD));
        }
        if !is_conv || (conv_filter && !q.conversion.filter.eval(&p)) {
            continue;
        }
        if c.range.is_some_and(|(from, to)| t < from || t >= to) {
            continue;
        }
        let amount = q
            .value
            .flatten()
            .and_then(|k| u.prop(k, i))
            .and_then(amount);
        convert(q, acc, u, t, amount.unwrap_or(0.0));
        converted = true;
    }
    if converted {
        acc.users += 1;
    }
    // A rare user with a huge queue must not keep its memory.
    crate::exec::reset(&mut acc.queue);
}

/// A queued touch whose value is not read yet.
const UNREAD: u32 = u32::MAX;
/// A queued touch without a value (no touchpoint).
const NO_VALUE: u32 = u32::MAX - 1;

/// The value id of touch event `row`, or [`NO_VALUE`].
fn touch_value(q: &Attribution, acc: &mut Acc, u: &UserRows<'_>, row: usize) -> u32 {
    match &q.by {
        By::Channel(slots) => {
            let ch = slots.channel(u, row);
            match acc.channel_ids[ch as usize] {
                UNREAD => {
                    let id = acc.id(ch.name());
                    acc.channel_ids[ch as usize] = id;
                    id
                }
                id => id,
            }
        }
        By::Prop(slot) => match slot.and_then(|k| u.prop(k, row)) {
            Some(v) => {
                let s = string_form(v);
                if s.is_empty() {
                    NO_VALUE
                } else {
                    acc.id(&s)
                }
            }
            None => NO_VALUE,
        },
    }
}

/// A number's value; strings and booleans add nothing (NOTES.md §26).
fn amount(v: &Value) -> Option<f64> {
    match v {
        Value::Int(_) | Value::Float(_) => v.as_f64(),
        _ => None,
    }
}

/// Credits one conversion at `t` worth `amount` to the queued touchpoints
/// of the last `lookback`.
fn convert(q: &Attribution, acc: &mut Acc, u: &UserRows<'_>, t: i64, amount: f64) {
    acc.conversions += 1;
    acc.revenue += amount;
    let edge = t.saturating_sub(q.lookback);
    while acc.start < acc.queue.len() && acc.queue[acc.start].0 <= edge {
        acc.start += 1;
    }
    let mut touches = std::mem::take(&mut acc.touches);
    touches.clear();
    for k in acc.start..acc.queue.len() {
        let (ti, row, mut id) = acc.queue[k];
        if id == UNREAD {
            id = touch_value(q, acc, u, row as usize);
            acc.queue[k].2 = id;
        }
        if id != NO_VALUE {
            touches.push((ti, id));
        }
    }
    credit(q, acc, &touches, amount);
    acc.touches = touches;
}

/// Shares one conversion among its touchpoints `(time, value id)`.
fn credit(q: &Attribution, acc: &mut Acc, touches: &[(i64, u32)], amount: f64) {
    let n = touches.len();
    if n == 0 {
        let id = acc.id(DIRECT) as usize;
        acc.used[id] = true;
        let base = id * 2 * q.models.len();
        for cell in acc.cells[base..base + 2 * q.models.len()].chunks_exact_mut(2) {
            cell[0] += 1.0;
            cell[1] += amount;
        }
        return;
    }
    // Per distinct value: its touches, those strictly between the first
    // and the last, its time-decay weight, and whether it holds the first
    // or the last touch. Every model's credit is a function of these, so
    // a conversion costs one pass over its touches plus one per value.
    let decay = q.models.contains(&Model::TimeDecay);
    // Weights relative to the latest touch: normalising gives the same
    // shares as 2^(-(t - t_i)/h), and the latest weight is 1, so the sum
    // never underflows to zero.
    let latest = touches[n - 1].0;
    let h = q.half_life as f64;
    acc.stamp.resize(acc.values.len(), 0);
    acc.agg.resize(acc.values.len(), ValueAgg::default());
    let stamp = acc.conversions;
    acc.distinct.clear();
    let mut sum = 0.0;
    for (i, &(ti, id)) in touches.iter().enumerate() {
        let v = id as usize;
        if acc.stamp[v] != stamp {
            acc.stamp[v] = stamp;
            acc.agg[v] = ValueAgg::default();
            acc.distinct.push(id);
        }
        let a = &mut acc.agg[v];
        a.touches += 1;
        if i > 0 && i + 1 < n {
            a.middle += 1;
        }
        if decay {
            let w = (-((latest - ti) as f64) / h).exp2();
            a.weight += w;
            sum += w;
        }
    }
    let (first, last) = (touches[0].1, touches[n - 1].1);
    let nf = n as f64;
    let nm = q.models.len();
    for &id in &acc.distinct {
        let v = id as usize;
        let a = acc.agg[v];
        let ends = f64::from(u8::from(id == first)) + f64::from(u8::from(id == last));
        acc.used[v] = true;
        let base = v * 2 * nm;
        let cells = &mut acc.cells[base..base + 2 * nm];
        for (k, m) in q.models.iter().enumerate() {
            let credit = match m {
                Model::First => f64::from(u8::from(id == first)),
                Model::Last => f64::from(u8::from(id == last)),
                Model::Linear => a.touches as f64 / nf,
                Model::Position => match n {
                    1 => 1.0,
                    2 => 0.5 * ends,
                    _ => 0.4 * ends + 0.2 * a.middle as f64 / (nf - 2.0),
                },
                Model::TimeDecay => a.weight / sum,
                Model::Participation => 1.0,
            };
            cells[2 * k] += credit;
            cells[2 * k + 1] += credit * amount;
        }
    }
}

/// One value's share of a conversion's touchpoints.
#[derive(Debug, Clone, Copy, Default)]
struct ValueAgg {
    touches: u32,
    middle: u32,
    weight: f64,
}
