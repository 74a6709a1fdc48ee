//! Profile rows: the JSON update rows of `POST /v1/profiles`, and a CRM's
//! CSV export (`footprint profiles import`, or `POST /v1/profiles` with
//! `Content-Type: text/csv`).
//!
//! A CSV starts with a header `user,<prop>[:<type>],…`. A cell is one
//! property of the row's user; an empty cell leaves it out. Untyped
//! columns infer their values as event CSV does (numbers, `true`/`false`,
//! else text); a type pins them: `string`, `int`, `number`, `bool`, or
//! `time` (RFC 3339, `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS` in UTC, or epoch
//! milliseconds; kept as written, read as a time by the relative time
//! conditions). A cell that does not parse as its type rejects its row,
//! with its line.

use super::{csv_cell_value, csv_error, Format, Rows};
use crate::event::{ProfileOp, ProfileUpdate, MAX_VALUE_LEN};
use crate::value::{time_of_str, Value};

/// The type of a CSV column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Auto,
    String,
    Int,
    Number,
    Bool,
    Time,
}

const TYPES: &str = "string, int, number, bool, time";

/// Parses a batch of profile rows: JSON update rows (NDJSON or an array,
/// each naming its op) or CSV (every row gets `op`).
pub fn parse_profile_batch(
    input: &[u8],
    format: Format,
    first_line: usize,
    op: ProfileOp,
) -> Rows<ProfileUpdate> {
    let format = match format {
        Format::Auto => super::detect(input),
        f => f,
    };
    match format {
        Format::Csv => parse_profile_csv(input, first_line, op),
        _ => super::parse_json_rows(input, first_line, super::parse_profile_update),
    }
}

/// Parses a piece of a JSON array of profile rows (see
/// [`super::parse_json_array_part`]).
pub fn parse_profile_array_part(
    input: &[u8],
    first: usize,
    part: super::ArrayPart,
) -> Rows<ProfileUpdate> {
    super::array_rows(input, first, part, super::parse_profile_update)
}

fn cell(name: &str, ty: Type, text: &str) -> Result<Value, String> {
    let bad = |what: &str| format!("column \"{name}\": \"{text}\" is not {what}");
    let v = match ty {
        Type::Auto => csv_cell_value(text).unwrap_or_else(|| Value::Str(String::new())),
        Type::String => Value::Str(text.to_owned()),
        Type::Int => Value::Int(text.trim().parse::<i64>().map_err(|_| bad("an integer"))?),
        Type::Number => match csv_cell_value(text.trim()) {
            Some(v @ (Value::Int(_) | Value::Float(_))) => v,
            _ => return Err(bad("a number")),
        },
        Type::Bool => match text.trim() {
            "true" | "TRUE" | "True" | "1" => Value::Bool(true),
            "false" | "FALSE" | "False" | "0" => Value::Bool(false),
            _ => return Err(bad("a boolean (true or false)")),
        },
        Type::Time => {
            time_of_str(text).ok_or_else(|| {
                bad("a time (RFC 3339, YYYY-MM-DD, YYYY-MM-DD HH:MM:SS or epoch milliseconds)")
            })?;
            Value::Str(text.trim().to_owned())
        }
    };
    if let Value::Str(s) = &v {
        if s.len() > MAX_VALUE_LEN {
            return Err(format!("column \"{name}\" is too long ({} bytes)", s.len()));
        }
    }
    Ok(v)
}

/// Parses a CSV of profiles: a header `user,<prop>[:<type>],…`, then one
/// row per user, each applied with `op`.
pub fn parse_profile_csv(input: &[u8], first_line: usize, op: ProfileOp) -> Rows<ProfileUpdate> {
    let mut out = Rows::default();
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let mut records = rdr.records();
    let header = match records.next() {
        None => return out,
        Some(Err(e)) => {
            out.reject(
                first_line,
                format!("unreadable CSV header: {}", csv_error(&e)),
            );
            return out;
        }
        Some(Ok(h)) => h,
    };
    let mut cols: Vec<(String, Type)> = Vec::new();
    for (i, raw) in header.iter().enumerate() {
        let raw = raw.trim();
        let (name, ty) = match raw.rsplit_once(':') {
            Some((n, t)) => {
                let ty = match t.trim() {
                    "string" => Type::String,
                    "int" => Type::Int,
                    "number" | "float" => Type::Number,
                    "bool" => Type::Bool,
                    "time" => Type::Time,
                    other => {
                        out.reject(
                            first_line,
                            format!(
                                "CSV header column {}: unknown type \"{other}\" (types: {TYPES})",
                                i + 1
                            ),
                        );
                        return out;
                    }
                };
                (n.trim(), ty)
            }
            None => (raw, Type::Auto),
        };
        if i == 0 {
            if name != "user" {
                out.reject(
                    first_line,
                    format!("a profile CSV header must start with user; got \"{raw}\""),
                );
                return out;
            }
        } else if let Err(m) = super::check_name(name, "property name") {
            out.reject(first_line, format!("CSV header column {}: {m}", i + 1));
            return out;
        }
        if cols.iter().any(|(n, _)| n == name) {
            out.reject(
                first_line,
                format!("CSV header names column \"{name}\" twice"),
            );
            return out;
        }
        cols.push((name.to_owned(), ty));
    }
    for rec in records {
        let line =
            |p: Option<&csv::Position>| p.map(|p| p.line() as usize + first_line - 1).unwrap_or(0);
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                out.reject(
                    line(e.position()),
                    format!("unreadable CSV row: {}", csv_error(&e)),
                );
                continue;
            }
        };
        let n = line(rec.position());
        if rec.len() == 1 && rec.get(0).is_some_and(|c| c.trim().is_empty()) {
            continue;
        }
        if rec.len() != cols.len() {
            out.reject(
                n,
                format!(
                    "expected {} CSV columns (as in the header), got {}",
                    cols.len(),
                    rec.len()
                ),
            );
            continue;
        }
        let row = (|| {
            let user = rec.get(0).unwrap_or_default().trim();
            super::check_name(user, "user")?;
            let mut props = Vec::new();
            for ((name, ty), text) in cols.iter().zip(rec.iter()).skip(1) {
                if text.is_empty() {
                    continue;
                }
                let v = match op {
                    ProfileOp::Unset => Value::Bool(true),
                    _ => cell(name, *ty, text)?,
                };
                if op == ProfileOp::Add && v.as_f64().is_none() {
                    return Err(format!(
                        "add needs numbers; column \"{name}\": \"{text}\" is not a number"
                    ));
                }
                props.push((name.clone(), v));
            }
            Ok(ProfileUpdate {
                user: user.to_owned(),
                op,
                props,
            })
        })();
        out.take(n, row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_typed_and_bad() {
        let input = b"user,plan,arr:number,seats:int,active:bool,contract_end:time,zip:string\n\
u1,pro,1200.5,3,true,2027-01-31,02134\n\
u2,free,,,,,\n\
u3,pro,12x,1,true,2027-01-31,1\n\
u4,pro,1,1.5,true,2027-01-31,1\n\
u5,pro,1,1,maybe,2027-01-31,1\n\
u6,pro,1,1,true,next week,1\n\
u7,pro\n\
u8,\"a,b\",7,7,false,1767225600000,x\n";
        let r = parse_profile_csv(input, 1, ProfileOp::Set);
        let users: Vec<&str> = r.rows.iter().map(|u| u.user.as_str()).collect();
        assert_eq!(users, ["u1", "u2", "u8"]);
        assert_eq!(
            r.rows[0].props,
            vec![
                ("plan".into(), Value::Str("pro".into())),
                ("arr".into(), Value::Float(1200.5)),
                ("seats".into(), Value::Int(3)),
                ("active".into(), Value::Bool(true)),
                ("contract_end".into(), Value::Str("2027-01-31".into())),
                ("zip".into(), Value::Str("02134".into())),
            ]
        );
        // Empty cells leave the property out.
        assert_eq!(r.rows[1].props.len(), 1);
        let lines: Vec<usize> = r.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [4, 5, 6, 7, 8], "{:?}", r.errors);
        assert!(
            r.errors[0].message.contains("\"arr\""),
            "{}",
            r.errors[0].message
        );
        assert!(r.errors[1].message.contains("integer"));
        assert!(r.errors[2].message.contains("boolean"));
        assert!(r.errors[3].message.contains("time"));
        assert!(r.errors[4].message.contains("expected 7 CSV columns"));
    }

    #[test]
    fn csv_header_and_encoding_problems() {
        let r = parse_profile_csv(b"id,plan\nu1,pro\n", 1, ProfileOp::Set);
        assert!(r.rows.is_empty() && r.errors[0].message.contains("start with user"));
        let r = parse_profile_csv(b"user,plan:money\nu1,pro\n", 1, ProfileOp::Set);
        assert!(r.errors[0].message.contains("unknown type \"money\""));
        // One line that is not UTF-8 is rejected by its number; the others stay.
        let r = parse_profile_csv(
            b"user,plan\nu1,pro\nu2,\xff\xfe\nu3,free\n",
            1,
            ProfileOp::Set,
        );
        assert_eq!(r.rows.len(), 2);
        assert_eq!(r.errors[0].line, 3);
        assert!(
            r.errors[0].message.contains("UTF-8"),
            "{}",
            r.errors[0].message
        );
        // add needs numbers.
        let r = parse_profile_csv(b"user,logins\nu1,2\nu2,many\n", 1, ProfileOp::Add);
        assert_eq!((r.rows.len(), r.errors[0].line), (1, 3));
    }

    #[test]
    fn json_rows_name_unknown_ops() {
        let input = b"{\"user\":\"u1\",\"op\":\"set\",\"props\":{\"plan\":\"pro\"}}\n\
{\"user\":\"u2\",\"op\":\"merge\",\"props\":{}}\n\
{\"user\":\"u3\",\"op\":\"append\",\"props\":{\"tags\":\"vip\"}}\n";
        let r = parse_profile_batch(input, Format::Auto, 1, ProfileOp::Set);
        assert_eq!(r.rows.len(), 2);
        assert_eq!(r.errors[0].line, 2);
        assert!(r.errors[0].message.contains("unknown op \"merge\""));
    }
}
