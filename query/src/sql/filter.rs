//! Filters as ClickHouse conditions over the `props` JSON column (and
//! `uprops`, the user's profile, for `user_prop`), with the
//! type-family rule: a comparison holds only when the property is present,
//! non-null and of the operand's family (`JSONType`), `ne` included.

use footprint_storage::{Family, Value};

use super::quote;
use crate::error::{QueryError, Result};
use crate::filter::{Filter, Op, Target};

/// The condition for `f`, found at JSON path `path` (for errors).
pub(super) fn expr(f: &Filter, path: &str) -> Result<String> {
    Ok(match f {
        Filter::True => "1".to_owned(),
        Filter::And(fs) => join(fs, path, "AND")?,
        Filter::Or(fs) => join(fs, path, "OR")?,
        Filter::Not(f) => format!("(NOT {})", expr(f, path)?),
        Filter::Cmp {
            op: Op::WithinLast | Op::WithinNext,
            ..
        } => {
            // The engine reads a time from text in several shapes or from
            // epoch milliseconds, against the instant the query ran.
            return Err(QueryError::not_translatable(
                path,
                "within_last and within_next (times relative to now) are not translated",
            ));
        }
        Filter::Cmp { target, op, values } => match target {
            Target::Event { name, .. } => cmp("props", name, *op, values),
            // The profile's JSON, joined to every row (see `base`).
            Target::User(name) => cmp("uprops", name, *op, values),
        },
    })
}

fn join(fs: &[Filter], path: &str, op: &str) -> Result<String> {
    let parts = fs
        .iter()
        .map(|f| expr(f, path))
        .collect::<Result<Vec<_>>>()?;
    Ok(format!("({})", parts.join(&format!(" {op} "))))
}

fn cmp(col: &str, name: &str, op: Op, values: &[Value]) -> String {
    let key = quote(name);
    let ty = format!("JSONType({col}, {key})");
    match op {
        Op::IsSet => return format!("({ty} != 'Null')"),
        Op::IsNotSet => return format!("({ty} = 'Null')"),
        _ => {}
    }
    let Some(first) = values.first() else {
        return "0".to_owned();
    };
    // Integers and floats are one family and compare as numbers.
    let (family, v) = match first.family() {
        Family::String => (
            format!("{ty} = 'String'"),
            format!("JSONExtractString({col}, {key})"),
        ),
        Family::Bool => (
            format!("{ty} = 'Bool'"),
            format!("JSONExtractBool({col}, {key})"),
        ),
        _ => (
            format!("{ty} IN ('Int64', 'UInt64', 'Double')"),
            format!("JSONExtractFloat({col}, {key})"),
        ),
    };
    let lits: Vec<String> = values.iter().map(literal).collect();
    let test = test_of(op, &v, &lits);
    if values.iter().all(|x| matches!(x, Value::Int(_))) {
        // Two integers compare exactly, as in the engine (beyond 2^53 a
        // float comparison would not).
        let ints: Vec<String> = values
            .iter()
            .map(|x| match x {
                Value::Int(i) => i.to_string(),
                _ => String::new(),
            })
            .collect();
        let exact = test_of(op, &format!("JSONExtractInt({col}, {key})"), &ints);
        return format!("({family} AND if({ty} = 'Int64', {exact}, {test}))");
    }
    format!("({family} AND {test})")
}

fn test_of(op: Op, v: &str, lits: &[String]) -> String {
    match op {
        Op::Eq => format!("{v} = {}", lits[0]),
        Op::Ne => format!("{v} != {}", lits[0]),
        Op::In => format!("{v} IN ({})", lits.join(", ")),
        Op::NotIn => format!("{v} NOT IN ({})", lits.join(", ")),
        Op::Gt => format!("{v} > {}", lits[0]),
        Op::Gte => format!("{v} >= {}", lits[0]),
        Op::Lt => format!("{v} < {}", lits[0]),
        Op::Lte => format!("{v} <= {}", lits[0]),
        Op::Between => match lits {
            [lo, hi] => format!("{v} >= {lo} AND {v} <= {hi}"),
            _ => "0".to_owned(),
        },
        Op::Contains => format!("position({v}, {}) > 0", lits[0]),
        Op::StartsWith => format!("startsWith({v}, {})", lits[0]),
        Op::IsSet | Op::IsNotSet | Op::WithinLast | Op::WithinNext => "1".to_owned(),
    }
}

/// An operand as a literal of its family.
fn literal(v: &Value) -> String {
    match v {
        Value::Str(s) => quote(s),
        Value::Bool(b) => u8::from(*b).to_string(),
        Value::Int(i) => format!("toFloat64({i})"),
        Value::Float(x) => format!("toFloat64({x:?})"),
    }
}
