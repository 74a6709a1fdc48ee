//! Runs every case of `tests/conformance/analyses/cases` (the kinds of
//! `ANALYSES.md`; answers from an independent model, cross-checked with
//! ClickHouse where SQL covers them; a copy of the shared set, so a fresh
//! clone tests them, or `FOOTPRINT_CONFORMANCE`) against Footprint in the
//! four storage layouts of `layouts`, comparing as the set's README says
//! (`oracle/analyses_check.py` is the same comparison in Python).
//!
//! A feature not in [`ANSWERED`] must still fail honestly: its queries must
//! be rejected with an error (`not_supported`, or an unknown kind or field),
//! never answered.

use std::path::PathBuf;

use footprint_engine::ErrorKind;
use footprint_engine::{Engine, Event};
use serde_json::Value;

mod layouts;
use layouts::{load, LAYOUTS};

/// The features whose cases must pass (a case's feature is its query's
/// `kind`; funnel cases are `funnel_trend`).
const ANSWERED: &[&str] = &[
    "sessions",
    "paths",
    "heatmap",
    "attribution",
    "lifecycle",
    "stickiness",
    "funnel_trend",
];

fn cases_dir() -> PathBuf {
    if let Ok(d) = std::env::var("FOOTPRINT_CONFORMANCE") {
        return PathBuf::from(d).join("analyses/cases");
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conformance/analyses/cases")
}

fn feature(query: &Value) -> String {
    match query["kind"].as_str().unwrap_or("?") {
        "funnel" => "funnel_trend".to_owned(),
        k => k.to_owned(),
    }
}

const REL: f64 = 1e-9;
const ABS: f64 = 1e-12;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= REL * a.abs().max(b.abs()) + ABS
}

/// `None` when `got` matches `exp` (objects over `exp`'s keys, lists in
/// order, integers exactly, floats within 1e-9), else where they differ.
fn same(exp: &Value, got: &Value, path: &str) -> Option<String> {
    let differ = || Some(format!("{path}: expect {exp} got {got}"));
    match (exp, got) {
        (Value::Null, Value::Null) => None,
        (Value::Null, _) | (_, Value::Null) => differ(),
        (Value::Bool(a), Value::Bool(b)) => (a != b).then(differ).flatten(),
        (Value::Number(a), Value::Number(b)) => {
            if a.is_f64() || b.is_f64() {
                let (x, y) = (a.as_f64()?, b.as_f64()?);
                let integral_expected = !a.is_f64() && y.fract() != 0.0;
                (integral_expected || !close(x, y)).then(differ).flatten()
            } else {
                (a != b).then(differ).flatten()
            }
        }
        (Value::String(a), Value::String(b)) => (a != b).then(differ).flatten(),
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                return Some(format!(
                    "{path}: expect {} items got {} (expect {exp} got {got})",
                    a.len(),
                    b.len()
                ));
            }
            a.iter()
                .zip(b)
                .enumerate()
                .find_map(|(i, (x, y))| same(x, y, &format!("{path}[{i}]")))
        }
        (Value::Object(a), Value::Object(b)) => a.iter().find_map(|(k, v)| match b.get(k) {
            None => Some(format!("{path}.{k}: missing")),
            Some(g) => same(v, g, &format!("{path}.{k}")),
        }),
        _ => differ(),
    }
}

/// Attribution rows: the same set of values, each row equal, in the order
/// of the first model's conversions (desc, ties within 1e-9) then value.
fn attribution_rows(exp: &Value, got: &Value, first_model: &str) -> Option<String> {
    let (Some(exp), Some(got)) = (exp.as_array(), got.as_array()) else {
        return Some("rows: not a list".into());
    };
    let mut ev: Vec<String> = exp.iter().map(|r| r["value"].to_string()).collect();
    let mut gv: Vec<String> = got.iter().map(|r| r["value"].to_string()).collect();
    ev.sort();
    gv.sort();
    if ev != gv {
        return Some(format!("rows: values expect {ev:?} got {gv:?}"));
    }
    for r in exp {
        let g = got.iter().find(|g| g["value"] == r["value"])?;
        if let Some(m) = same(r, g, &format!("rows[{}]", r["value"])) {
            return Some(m);
        }
    }
    for (i, w) in got.windows(2).enumerate() {
        let conv = |r: &Value| r[first_model]["conversions"].as_f64().unwrap_or(f64::NAN);
        let (ca, cb) = (conv(&w[0]), conv(&w[1]));
        let by_value = w[0]["value"].as_str() < w[1]["value"].as_str();
        let ok = if close(ca, cb) { by_value } else { ca > cb };
        if !ok {
            return Some(format!(
                "rows: order at {i}: {} ({ca}) before {} ({cb})",
                w[0]["value"], w[1]["value"]
            ));
        }
    }
    None
}

/// Session groups: matched by `key`, order not compared.
fn session_groups(exp: &Value, got: &Value) -> Option<String> {
    let (Some(exp), Some(got)) = (exp.as_array(), got.as_array()) else {
        return Some("groups: not a list".into());
    };
    if exp.len() != got.len() {
        return Some(format!("groups: expect {} got {}", exp.len(), got.len()));
    }
    exp.iter()
        .find_map(|g| match got.iter().find(|h| h["key"] == g["key"]) {
            None => Some(format!("groups: key {} missing", g["key"])),
            Some(h) => same(g, h, &format!("groups[{}]", g["key"])),
        })
}

fn compare(query: &Value, expect: &Value, got: &Value) -> Option<String> {
    let kind = query["kind"].as_str().unwrap_or("?");
    let Some(got) = got.as_object() else {
        return Some("result is not an object".into());
    };
    let exp = expect.as_object()?;
    for (k, v) in exp {
        let Some(g) = got.get(k) else {
            return Some(format!("{k}: missing from result"));
        };
        let m = match (kind, k.as_str()) {
            ("attribution", "rows") => {
                let first = query["models"][0].as_str().unwrap_or("last");
                attribution_rows(v, g, first)
            }
            ("sessions", "groups") => session_groups(v, g),
            _ => same(v, g, k),
        };
        if m.is_some() {
            return m;
        }
    }
    None
}

/// The outcome of one case in one layout: `Err` says what is wrong.
fn run(engine: &Engine, case: &Value, answered: bool) -> Result<(), String> {
    let wants_error = case["expect"]["error"] == Value::Bool(true);
    let result = engine.query_json(&case["query"], Default::default());
    let not_supported = |e: &footprint_engine::Error| matches!(e, footprint_engine::Error::Query(q) if q.kind == ErrorKind::NotSupported);
    match (answered, result) {
        (false, Err(_)) => Ok(()),
        (false, Ok(_)) => Err(
            "not answered yet, so it must be rejected; got an answer (add its feature to ANSWERED)"
                .into(),
        ),
        (true, Err(e)) if not_supported(&e) => Err(format!("not_supported: {e}")),
        (true, Err(_)) if wants_error => Ok(()),
        (true, Err(e)) => Err(format!("query failed: {e}")),
        (true, Ok(_)) if wants_error => Err("expected an error, the query succeeded".into()),
        (true, Ok(got)) => compare(&case["query"], &case["expect"], &got).map_or(Ok(()), Err),
    }
}

#[test]
fn analyses_conformance_cases() {
    let dir = cases_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the analyses cases at {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no cases in {}", dir.display());
    let (mut failures, mut runs, mut answered_cases) = (Vec::new(), 0, 0);
    for f in &files {
        let case: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        let name = case["name"].as_str().unwrap_or("?").to_owned();
        let answered = ANSWERED.contains(&feature(&case["query"]).as_str());
        answered_cases += usize::from(answered);
        let events: Vec<Event> = case["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| footprint_engine::storage::parse::event_from_json(e.clone()).unwrap())
            .collect();
        for layout in LAYOUTS {
            runs += 1;
            let (_dir, engine) = load(&events, layout);
            if let Err(e) = run(&engine, &case, answered) {
                failures.push(format!("{name} [{layout:?}]: {e}"));
            }
        }
    }
    eprintln!(
        "analyses conformance: {} cases ({answered_cases} of answered features) × {} layouts = {runs} runs, {} failures",
        files.len(),
        LAYOUTS.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {runs} runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
