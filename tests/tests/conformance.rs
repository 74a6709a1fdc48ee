//! Runs every case of `tests/conformance/cases` (answers computed by
//! ClickHouse; a copy of the shared conformance set, so a fresh clone tests
//! them; `FOOTPRINT_CONFORMANCE` points elsewhere) against Footprint, in four storage layouts: all events in
//! the memtable, all flushed to segments of format 2, or of format 1, and
//! split over segments of both formats plus the memtable.

use std::path::PathBuf;

use footprint_engine::Event;
use serde_json::Value;

mod layouts;
use layouts::{load, LAYOUTS};

fn cases_dir() -> PathBuf {
    if let Ok(d) = std::env::var("FOOTPRINT_CONFORMANCE") {
        return PathBuf::from(d).join("cases");
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conformance/cases")
}

fn close(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y || ((x - y).abs() <= 1e-9 * x.abs().max(y.abs())),
        _ => a.is_null() && b.is_null(),
    }
}

fn check(expect: &Value, got: &Value) -> Result<(), String> {
    let exp = expect.as_object().ok_or("expect is not an object")?;
    for (key, want) in exp {
        match key.as_str() {
            "steps.users" => {
                let have: Vec<Value> = got["steps"]
                    .as_array()
                    .ok_or("no steps")?
                    .iter()
                    .map(|s| s["users"].clone())
                    .collect();
                if &Value::Array(have.clone()) != want {
                    return Err(format!(
                        "steps.users: want {want}, got {}",
                        Value::Array(have)
                    ));
                }
            }
            "total.users" => {
                if &got["total"]["users"] != want {
                    return Err(format!(
                        "total.users: want {want}, got {}",
                        got["total"]["users"]
                    ));
                }
            }
            "total.retained[1..]" => {
                let r = got["total"]["retained"]
                    .as_array()
                    .ok_or("no total.retained")?;
                let have = Value::Array(r.iter().skip(1).cloned().collect());
                if &have != want {
                    return Err(format!("total.retained[1..]: want {want}, got {have}"));
                }
            }
            "cohorts" => {
                let rows = got["cohorts"].as_array().ok_or("no cohorts")?;
                let have: Vec<Value> = rows
                    .iter()
                    .map(|r| {
                        let ret: Vec<Value> = r["retained"].as_array().map(|a| a.iter().skip(1).cloned().collect()).unwrap_or_default();
                        serde_json::json!({"cohort": r["cohort"], "users": r["users"], "retained[1..]": ret})
                    })
                    .collect();
                if &Value::Array(have.clone()) != want {
                    return Err(format!("cohorts: want {want}, got {}", Value::Array(have)));
                }
            }
            "interval" => {
                let w = want.as_object().ok_or("interval expect")?;
                for (stat, wv) in w {
                    let gv = &got[stat.as_str()];
                    let ok = match stat.as_str() {
                        "count" | "min" | "max" => {
                            gv == wv
                                || (wv.is_null() && gv.is_null())
                                || close(gv, wv) && gv.is_i64() == wv.is_i64()
                        }
                        _ => close(gv, wv),
                    };
                    if !ok {
                        return Err(format!("interval.{stat}: want {wv}, got {gv}"));
                    }
                }
            }
            other => return Err(format!("unknown expect key {other}")),
        }
    }
    Ok(())
}

#[test]
fn clickhouse_conformance_cases() {
    let dir = cases_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "cannot read the conformance cases at {}: {e}",
                dir.display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no cases in {}", dir.display());
    let mut failures = Vec::new();
    let mut runs = 0;
    for f in &files {
        let case: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        let name = case["name"].as_str().unwrap_or("?").to_owned();
        let events: Vec<Event> = case["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| footprint_engine::storage::parse::event_from_json(e.clone()).unwrap())
            .collect();
        for layout in LAYOUTS {
            runs += 1;
            let (_dir, engine) = load(&events, layout);
            match engine.query_json(&case["query"], Default::default()) {
                Ok(got) => {
                    if let Err(e) = check(&case["expect"], &got) {
                        failures.push(format!("{name} [{layout:?}]: {e}"));
                    }
                }
                Err(e) => failures.push(format!("{name} [{layout:?}]: query failed: {e}")),
            }
        }
    }
    eprintln!(
        "conformance: {} cases × {} layouts = {runs} runs, {} failures",
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
