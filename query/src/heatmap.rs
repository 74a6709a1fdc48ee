//! heatmap — 热图 / 点击分析: clicks by element, or binned into a grid of
//! page columns and pixel rows. Semantics: ANALYSES.md "heatmap",
//! NOTES.md 18–20.

use footprint_storage::{UserRows, Value};
use rustc_hash::FxHashMap;
use serde_json::{json, Value as Json};

use crate::by_value::ByValue;
use crate::error::{QueryError, Result};
use crate::exec::{num, Ctx, Prune};
use crate::json::Obj;
use crate::limits::{Metered, Usage};
use crate::model::{req_ref, Common, EventRef, Matcher};

/// The fields of a heatmap query besides the common ones.
pub const FIELDS: [&str; 2] = ["event", "by"];

/// How clicks are grouped.
#[derive(Debug, Clone)]
pub enum By {
    /// By the string form of a property (scan slot; `None`: no event has it).
    Element(Option<usize>),
    /// Into a grid.
    Grid(Grid),
}

/// A grid over the page: `cols` columns across the viewport, rows of
/// `row_px` pixels.
#[derive(Debug, Clone)]
pub struct Grid {
    x: Option<usize>,
    y: Option<usize>,
    width: Option<usize>,
    /// Columns across the viewport width.
    pub cols: u64,
    /// Pixels per row.
    pub row_px: u64,
}

/// A parsed heatmap query.
pub struct Heatmap {
    /// The click events.
    pub event: EventRef,
    /// How they are grouped.
    pub by: By,
    matcher: Matcher,
}

impl Heatmap {
    /// Reads the heatmap fields.
    pub fn parse(o: &mut Obj<'_>, ctx: &mut Ctx<'_>) -> Result<Heatmap> {
        let event = req_ref(o, "event", ctx)?;
        let bp = o.at("by");
        let mut b = Obj::new(o.req("by")?, &bp)?;
        let element = b.opt_str("element")?;
        let grid = b.opt("grid");
        let by = match (element, grid) {
            (Some(p), None) => By::Element(ctx.slot(p, &b.at("element"))?),
            (None, Some(g)) => {
                let mut go = Obj::new(g, &b.at("grid"))?;
                let mut prop = |go: &mut Obj<'_>, key: &'static str, default: &str| {
                    let p = go.at(key);
                    let name = go.opt_str(key)?;
                    match name {
                        Some(n) => ctx.slot(n, &p),
                        None => Ok(ctx.slot_if_stored(default)),
                    }
                };
                let x = prop(&mut go, "x", "$x")?;
                let y = prop(&mut go, "y", "$y")?;
                let width = prop(&mut go, "width", "$viewport_width")?;
                let positive = |go: &mut Obj<'_>, key: &'static str, default: u64| {
                    let n = go.opt_uint(key, 1 << 20)?.unwrap_or(default);
                    if n == 0 {
                        return Err(QueryError::invalid(go.at(key), "must be at least 1"));
                    }
                    Ok(n)
                };
                let cols = positive(&mut go, "cols", 20)?;
                let row_px = positive(&mut go, "row_px", 50)?;
                go.finish("x, y, width, cols, row_px")?;
                By::Grid(Grid {
                    x,
                    y,
                    width,
                    cols,
                    row_px,
                })
            }
            _ => {
                return Err(QueryError::invalid(
                    bp,
                    "expected {\"element\": PROP} or {\"grid\": {\"x\": PROP, \"y\": PROP, \"width\": PROP, \"cols\": N, \"row_px\": N}}",
                ))
            }
        };
        b.finish("element or grid")?;
        let matcher = Matcher::new([&event]);
        Ok(Heatmap { event, by, matcher })
    }
}

/// Clicks and distinct users of one element or cell.
#[derive(Default, Clone, Copy)]
struct Tally {
    clicks: u64,
    users: u64,
    /// The last user counted (each user is read once per shard).
    last: Option<u32>,
}

impl Tally {
    fn add(&mut self, uid: u32) {
        self.clicks += 1;
        if self.last != Some(uid) {
            self.last = Some(uid);
            self.users += 1;
        }
    }

    fn merge(&mut self, o: Tally) {
        self.clicks += o.clicks;
        self.users += o.users;
    }
}

#[derive(Default)]
struct Acc {
    clicks: u64,
    skipped: u64,
    elements: ByValue<Tally>,
    cells: FxHashMap<(u64, u64), Tally>,
}

impl Metered for Acc {
    fn usage(&self) -> Usage {
        Usage {
            cells: (self.elements.len() + self.cells.len()) as u64 * 3,
            samples: 0,
        }
    }
}

/// Runs a heatmap query.
pub fn run(q: &Heatmap, c: &Common, ctx: &Ctx<'_>) -> Result<Json> {
    let acc = ctx.run(
        c.range,
        Prune::by(&q.event),
        Acc::default,
        |acc, u| per_user(q, c, ctx, acc, u),
        |mut a, b| {
            a.clicks += b.clicks;
            a.skipped += b.skipped;
            a.elements.merge(b.elements, |x, t| x.merge(t));
            for (k, t) in b.cells {
                a.cells.entry(k).or_default().merge(t);
            }
            a
        },
    )?;
    Ok(match q.by {
        By::Element(_) => {
            let mut rows: Vec<(String, Tally)> = acc.elements.into_pairs();
            rows.sort_by(|a, b| b.1.clicks.cmp(&a.1.clicks).then_with(|| a.0.cmp(&b.0)));
            let total = rows.len();
            rows.truncate(c.limit);
            let mut out = json!({
                "clicks": acc.clicks,
                "elements": rows.into_iter().map(|(e, t)| json!({
                    "element": e, "clicks": t.clicks, "users": t.users,
                    "share": num((acc.clicks > 0).then(|| t.clicks as f64 / acc.clicks as f64)),
                })).collect::<Vec<_>>(),
            });
            if total > c.limit {
                out["elements_truncated"] = json!(total);
            }
            out
        }
        By::Grid(_) => {
            let mut cells: Vec<((u64, u64), Tally)> = acc.cells.into_iter().collect();
            cells.sort_by_key(|c| c.0);
            json!({
                "cells": cells.into_iter().map(|((row, col), t)| json!({
                    "col": col, "row": row, "clicks": t.clicks, "users": t.users,
                })).collect::<Vec<_>>(),
                "skipped": acc.skipped,
            })
        }
    })
}

fn per_user(q: &Heatmap, c: &Common, ctx: &Ctx<'_>, acc: &mut Acc, u: &UserRows<'_>) {
    let Some(profile) = ctx.admit(c, u.uid) else {
        return;
    };
    crate::model::for_each_match(&q.matcher, &c.filter, u, profile, |i, _| match &q.by {
        By::Element(slot) => {
            acc.clicks += 1;
            if let Some(t) = slot.and_then(|k| acc.elements.at(u, k, i)) {
                t.add(u.uid);
            }
        }
        By::Grid(g) => {
            let read = |s: Option<usize>| s.and_then(|k| u.prop(k, i));
            match cell(g, read(g.x), read(g.y), read(g.width)) {
                Some(at) => acc.cells.entry(at).or_default().add(u.uid),
                None => acc.skipped += 1,
            }
        }
    });
}

/// The (row, col) of a click, or `None` when x, y or the width is missing,
/// not a number, negative, or the width is not positive.
fn cell(g: &Grid, x: Option<&Value>, y: Option<&Value>, w: Option<&Value>) -> Option<(u64, u64)> {
    let (x, y, w) = (x?, y?, w?);
    let col = match (x, w) {
        (Value::Int(x), Value::Int(w)) => {
            if *x < 0 || *w <= 0 {
                return None;
            }
            // Exact: floor(x · cols / w) in integers.
            (i128::from(*x) * i128::from(g.cols) / i128::from(*w)).min(i128::from(u64::MAX)) as u64
        }
        _ => {
            let (x, w) = (number(x)?, number(w)?);
            if x < 0.0 || w <= 0.0 {
                return None;
            }
            (x * g.cols as f64 / w).floor() as u64
        }
    };
    let row = match y {
        Value::Int(y) if *y >= 0 => *y as u64 / g.row_px,
        Value::Int(_) => return None,
        other => {
            let y = number(other)?;
            if y < 0.0 {
                return None;
            }
            (y / g.row_px as f64).floor() as u64
        }
    };
    Some((row, col.min(g.cols - 1)))
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) if f.is_finite() => Some(*f),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_cells_clamp_and_skip() {
        let g = Grid {
            x: None,
            y: None,
            width: None,
            cols: 20,
            row_px: 50,
        };
        let i = |n: i64| Some(Value::Int(n));
        let c = |x: Option<Value>, y: Option<Value>, w: Option<Value>| {
            cell(&g, x.as_ref(), y.as_ref(), w.as_ref())
        };
        assert_eq!(c(i(999), i(49), i(1000)), Some((0, 19)));
        assert_eq!(c(i(1000), i(50), i(1000)), Some((1, 19)));
        assert_eq!(c(i(5000), i(0), i(1000)), Some((0, 19)));
        assert_eq!(c(i(499), i(100), i(1000)), Some((2, 9)));
        assert_eq!(c(i(-1), i(0), i(1000)), None);
        assert_eq!(c(i(1), i(-1), i(1000)), None);
        assert_eq!(c(i(1), i(1), i(0)), None);
        assert_eq!(c(Some(Value::Bool(true)), i(1), i(10)), None);
        assert_eq!(c(Some(Value::Str("5".into())), i(1), i(10)), None);
        assert_eq!(c(None, i(1), i(10)), None);
        assert_eq!(
            c(Some(Value::Float(2.5)), Some(Value::Float(75.5)), i(10)),
            Some((1, 5))
        );
    }
}
