//! Filter expressions on event and user properties.
//!
//! A comparison holds only when the property is present, non-null and of
//! the operand's family (string, number, bool); otherwise it is false, `ne`
//! and `not_in` included. `not` is plain boolean negation.

use std::cmp::Ordering;

use footprint_storage::{Family, Value};
use serde_json::Value as Json;

use crate::error::{QueryError, Result};
use crate::json::{array, describe, kind, Obj};

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Equal.
    Eq,
    /// Not equal (present and of the family).
    Ne,
    /// In a list.
    In,
    /// Not in a list (present and of the family).
    NotIn,
    /// Greater than.
    Gt,
    /// Greater or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less or equal.
    Lte,
    /// Between two bounds, both inclusive.
    Between,
    /// String contains.
    Contains,
    /// String starts with.
    StartsWith,
    /// Present and not null.
    IsSet,
    /// Absent or null.
    IsNotSet,
    /// A time (RFC 3339 or date text, or epoch milliseconds) from a
    /// duration before now up to now, both inclusive.
    WithinLast,
    /// A time from now up to a duration after now, both inclusive.
    WithinNext,
}

const OPS: &str = "eq, ne, in, not_in, gt, gte, lt, lte, between, contains, starts_with, is_set, is_not_set, within_last, within_next";

/// Where a compared property lives.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// An event property, read through the scan's property slot `k`.
    Event {
        /// Property name.
        name: String,
        /// Slot in the scan spec; `None` when no event has the property.
        slot: Option<usize>,
    },
    /// A user profile property.
    User(String),
}

/// A compiled filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Always true.
    True,
    /// All must hold.
    And(Vec<Filter>),
    /// Any must hold.
    Or(Vec<Filter>),
    /// Negation.
    Not(Box<Filter>),
    /// One comparison.
    Cmp {
        /// The property compared.
        target: Target,
        /// The operator.
        op: Op,
        /// Operand values (one, a list, or two bounds).
        values: Vec<Value>,
    },
}

/// Access to the properties of the row being filtered.
pub trait Props {
    /// Event property in slot `k`.
    fn event(&self, k: usize) -> Option<&Value>;
    /// User profile property `name`.
    fn user(&self, name: &str) -> Option<&Value>;
}

fn operand(v: &Json, path: &str) -> Result<Value> {
    match v {
        Json::String(s) => Ok(Value::Str(s.clone())),
        Json::Bool(b) => Ok(Value::Bool(*b)),
        Json::Number(n) => Ok(match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        }),
        other => Err(QueryError::invalid(
            path,
            format!("expected a string, number or boolean, got {}", kind(other)),
        )),
    }
}

impl Filter {
    /// Parses a filter at `path`. `slot` resolves an event property name to
    /// its scan slot (registering it), or `None` if unknown.
    pub fn parse(
        v: &Json,
        path: &str,
        slot: &mut dyn FnMut(&str) -> Option<usize>,
    ) -> Result<Filter> {
        let mut o = Obj::new(v, path)?;
        for (key, ctor) in [("and", true), ("or", false)] {
            if let Some(list) = o.opt(if ctor { "and" } else { "or" }) {
                let p = o.at(key);
                let items = array(list, &p)?;
                if items.is_empty() {
                    return Err(QueryError::invalid(p, "needs at least one filter"));
                }
                let fs = items
                    .iter()
                    .enumerate()
                    .map(|(i, f)| Filter::parse(f, &format!("{p}[{i}]"), slot))
                    .collect::<Result<Vec<_>>>()?;
                o.finish(key)?;
                return Ok(if ctor {
                    Filter::And(fs)
                } else {
                    Filter::Or(fs)
                });
            }
        }
        if let Some(inner) = o.opt("not") {
            let f = Filter::parse(inner, &o.at("not"), slot)?;
            o.finish("not")?;
            return Ok(Filter::Not(Box::new(f)));
        }
        let target = match (o.opt_str("prop")?, o.opt_str("user_prop")?) {
            (Some(p), None) => Target::Event {
                name: p.to_owned(),
                slot: slot(p),
            },
            (None, Some(p)) => Target::User(p.to_owned()),
            (Some(_), Some(_)) => {
                return Err(QueryError::invalid(path, "give either \"prop\" or \"user_prop\", not both"))
            }
            (None, None) => {
                return Err(QueryError::invalid(
                    path,
                    "expected a comparison {\"prop\": P, \"op\": OP, \"value\": V} (or \"user_prop\"), or {\"and\": [...]}, {\"or\": [...]}, {\"not\": F}",
                ))
            }
        };
        let op_path = o.at("op");
        let op = match o.req_str("op")? {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "in" => Op::In,
            "not_in" => Op::NotIn,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "between" => Op::Between,
            "contains" => Op::Contains,
            "starts_with" => Op::StartsWith,
            "is_set" => Op::IsSet,
            "is_not_set" => Op::IsNotSet,
            "within_last" => Op::WithinLast,
            "within_next" => Op::WithinNext,
            other => {
                let hint = crate::suggest::nearest(other, OPS.split(", "))
                    .map(|s| format!(" (did you mean \"{s}\"?)"))
                    .unwrap_or_default();
                return Err(QueryError::invalid(
                    op_path,
                    format!("unknown op \"{other}\"{hint}; allowed: {OPS}"),
                ));
            }
        };
        let vpath = o.at("value");
        let raw = o.opt("value");
        let values = match op {
            Op::IsSet | Op::IsNotSet => {
                if raw.is_some() {
                    return Err(QueryError::invalid(
                        vpath,
                        "is_set and is_not_set take no value",
                    ));
                }
                Vec::new()
            }
            Op::WithinLast | Op::WithinNext => {
                // Bounds fixed now, at parse: one query reads one instant.
                let raw = raw.ok_or_else(|| QueryError::invalid(&vpath, "is required"))?;
                let d = crate::time::parse_window(raw, &vpath)?;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |t| t.as_millis() as i64);
                let (lo, hi) = match op {
                    Op::WithinLast => (now.saturating_sub(d), now),
                    _ => (now, now.saturating_add(d)),
                };
                vec![Value::Int(lo), Value::Int(hi)]
            }
            Op::In | Op::NotIn | Op::Between => {
                let raw = raw.ok_or_else(|| QueryError::invalid(&vpath, "is required"))?;
                let items = array(raw, &vpath)?;
                let vals = items
                    .iter()
                    .enumerate()
                    .map(|(i, x)| operand(x, &format!("{vpath}[{i}]")))
                    .collect::<Result<Vec<_>>>()?;
                if vals.is_empty() {
                    return Err(QueryError::invalid(vpath, "needs a non-empty list"));
                }
                if let Some(v) = vals.iter().find(|v| v.family() != vals[0].family()) {
                    return Err(QueryError::invalid(
                        vpath,
                        format!(
                            "mixes types: all values must be of one type ({:?} and {:?})",
                            vals[0].family(),
                            v.family()
                        ),
                    ));
                }
                if op == Op::Between {
                    if vals.len() != 2 {
                        return Err(QueryError::invalid(
                            vpath,
                            format!("between takes [low, high], got {} values", vals.len()),
                        ));
                    }
                    if vals[0].family() == Family::Bool {
                        return Err(QueryError::invalid(
                            vpath,
                            "between needs numbers or strings",
                        ));
                    }
                }
                vals
            }
            _ => {
                let raw = raw.ok_or_else(|| QueryError::invalid(&vpath, "is required"))?;
                let v = operand(raw, &vpath)?;
                match op {
                    Op::Contains | Op::StartsWith if v.family() != Family::String => {
                        return Err(QueryError::invalid(
                            vpath,
                            format!("needs a string, got {}", describe(raw)),
                        ));
                    }
                    Op::Gt | Op::Gte | Op::Lt | Op::Lte if v.family() == Family::Bool => {
                        return Err(QueryError::invalid(
                            vpath,
                            "booleans support only eq, ne, in, not_in",
                        ));
                    }
                    _ => {}
                }
                vec![v]
            }
        };
        o.finish("prop or user_prop, op, value")?;
        Ok(Filter::Cmp { target, op, values })
    }

    /// Evaluates the filter.
    pub fn eval(&self, p: &dyn Props) -> bool {
        match self {
            Filter::True => true,
            Filter::And(fs) => fs.iter().all(|f| f.eval(p)),
            Filter::Or(fs) => fs.iter().any(|f| f.eval(p)),
            Filter::Not(f) => !f.eval(p),
            Filter::Cmp { target, op, values } => {
                let v = match target {
                    Target::Event { slot: Some(k), .. } => p.event(*k),
                    Target::Event { slot: None, .. } => None,
                    Target::User(name) => p.user(name),
                };
                compare(v, *op, values)
            }
        }
    }

    /// True for the filter that accepts everything.
    #[inline]
    pub fn is_true(&self) -> bool {
        matches!(self, Filter::True)
    }

    /// True if the filter reads user properties.
    pub fn uses_user_props(&self) -> bool {
        match self {
            Filter::True => false,
            Filter::And(fs) | Filter::Or(fs) => fs.iter().any(|f| f.uses_user_props()),
            Filter::Not(f) => f.uses_user_props(),
            Filter::Cmp { target, .. } => matches!(target, Target::User(_)),
        }
    }

    /// True if the filter reads event properties.
    pub fn uses_event_props(&self) -> bool {
        match self {
            Filter::True => false,
            Filter::And(fs) | Filter::Or(fs) => fs.iter().any(|f| f.uses_event_props()),
            Filter::Not(f) => f.uses_event_props(),
            Filter::Cmp { target, .. } => matches!(target, Target::Event { .. }),
        }
    }
}

/// One comparison, with the family rule.
pub fn compare(v: Option<&Value>, op: Op, values: &[Value]) -> bool {
    match op {
        Op::IsSet => return v.is_some(),
        Op::IsNotSet => return v.is_none(),
        Op::WithinLast | Op::WithinNext => {
            let t = v.and_then(footprint_storage::value::time_of);
            return matches!((t, values), (Some(t), [Value::Int(lo), Value::Int(hi)]) if *lo <= t && t <= *hi);
        }
        _ => {}
    }
    let Some(v) = v else { return false };
    let Some(first) = values.first() else {
        return false;
    };
    if v.family() != first.family() {
        return false;
    }
    let cmp = |w: &Value| v.compare(w);
    match op {
        Op::Eq => cmp(first) == Some(Ordering::Equal),
        Op::Ne => matches!(cmp(first), Some(o) if o != Ordering::Equal),
        Op::In => values.iter().any(|w| cmp(w) == Some(Ordering::Equal)),
        Op::NotIn => values
            .iter()
            .all(|w| matches!(cmp(w), Some(o) if o != Ordering::Equal)),
        Op::Gt => cmp(first) == Some(Ordering::Greater),
        Op::Gte => matches!(cmp(first), Some(Ordering::Greater | Ordering::Equal)),
        Op::Lt => cmp(first) == Some(Ordering::Less),
        Op::Lte => matches!(cmp(first), Some(Ordering::Less | Ordering::Equal)),
        Op::Between => {
            values.len() == 2
                && matches!(cmp(&values[0]), Some(Ordering::Greater | Ordering::Equal))
                && matches!(cmp(&values[1]), Some(Ordering::Less | Ordering::Equal))
        }
        Op::Contains => {
            matches!((v, first), (Value::Str(a), Value::Str(b)) if a.contains(b.as_str()))
        }
        Op::StartsWith => {
            matches!((v, first), (Value::Str(a), Value::Str(b)) if a.starts_with(b.as_str()))
        }
        Op::IsSet | Op::IsNotSet | Op::WithinLast | Op::WithinNext => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct P(Vec<Option<Value>>);
    impl Props for P {
        fn event(&self, k: usize) -> Option<&Value> {
            self.0.get(k)?.as_ref()
        }
        fn user(&self, _: &str) -> Option<&Value> {
            None
        }
    }

    fn f(j: Json) -> Filter {
        Filter::parse(&j, "where", &mut |n| (n == "x").then_some(0)).unwrap()
    }

    #[test]
    fn family_rule() {
        let ten_f = P(vec![Some(Value::Float(10.0))]);
        let s3 = P(vec![Some(Value::Str("3".into()))]);
        let none = P(vec![None]);
        assert!(f(json!({"prop":"x","op":"eq","value":10})).eval(&ten_f));
        assert!(!f(json!({"prop":"x","op":"eq","value":3})).eval(&s3));
        assert!(!f(json!({"prop":"x","op":"ne","value":3})).eval(&s3));
        assert!(!f(json!({"prop":"x","op":"ne","value":"a"})).eval(&none));
        assert!(f(json!({"prop":"x","op":"is_not_set"})).eval(&none));
        assert!(f(json!({"not":{"prop":"x","op":"eq","value":"a"}})).eval(&none));
        assert!(f(json!({"prop":"x","op":"between","value":[5, 10]})).eval(&ten_f));
        assert!(f(json!({"prop":"x","op":"in","value":["1","3"]})).eval(&s3));
        assert!(!f(json!({"prop":"y","op":"eq","value":"a"})).eval(&s3));
        assert!(f(
            json!({"or":[{"prop":"x","op":"lt","value":"4"},{"prop":"x","op":"eq","value":1}]})
        )
        .eval(&s3));
    }

    #[test]
    fn errors_name_the_path() {
        let bad = [
            (json!({"prop":"x","op":"equals","value":1}), "where.op"),
            (json!({"prop":"x","op":"in","value":[]}), "where.value"),
            (json!({"prop":"x","op":"in","value":[1,"a"]}), "where.value"),
            (json!({"prop":"x","op":"gt","value":true}), "where.value"),
            (json!({"prop":"x","op":"eq"}), "where.value"),
            (
                json!({"prop":"x","op":"eq","value":1,"vlaue":2}),
                "where.vlaue",
            ),
            (
                json!({"and":[{"prop":"x","op":"eq","value":{}}]}),
                "where.and[0].value",
            ),
            (json!({"prop":"x","op":"is_set","value":1}), "where.value"),
        ];
        for (j, path) in bad {
            let e = Filter::parse(&j, "where", &mut |_| Some(0)).unwrap_err();
            assert_eq!(e.path, path, "{e}");
        }
    }
}
