//! Scopes (per-owner access) through the engine API: a query, cohort,
//! lookup or schema read with `QueryOptions::scope` sees only the people
//! the scope admits — and the proptest: a scoped query equals the same
//! query, unscoped, over a second store holding only the in-scope
//! people's events, profiles and aliases.

mod common;

use footprint_engine::{Alias, Engine, Format, QueryOptions, Scope};
use proptest::prelude::*;
use serde_json::{json, Value as Json};

fn alice() -> QueryOptions {
    QueryOptions {
        scope: Some(
            Scope::new(
                json!({"user_prop": "csm_owner", "op": "eq", "value": "alice"}),
                "users",
            )
            .unwrap(),
        ),
        cohort_max_age: Some(std::time::Duration::ZERO),
        ..Default::default()
    }
}

use common::{open, profile, sorted_ids};

/// a1, a2 are alice's; b1 bob's; anon is a cookie aliased to a1; cookie
/// one aliased to b1 says (falsely) it is alice's; p1 is alice's with a
/// profile and no event; lone has events and no profile.
fn seed(e: &Engine) {
    let t0 = 1_767_225_600_000i64; // 2026-01-01
    let day = 86_400_000i64;
    let mut rows = String::new();
    for (user, ev, d, src) in [
        ("a1", "visit", 0, "ads"),
        ("a1", "pay", 1, "ads"),
        ("a2", "visit", 2, "mail"),
        ("anon", "visit", 3, "social"),
        ("b1", "visit", 0, "secret_source"),
        ("b1", "pay", 1, "secret_source"),
        ("bcookie", "visit", 9, "secret_source"),
        ("lone", "visit", 20, "secret_source"),
    ] {
        rows.push_str(&format!(
            "{{\"user\":\"{user}\",\"event\":\"{ev}\",\"time\":{},\"props\":{{\"utm_source\":\"{src}\"}}}}\n",
            t0 + d * day
        ));
    }
    e.ingest_text(&rows, Format::Auto).unwrap();
    for (u, owner, plan) in [
        ("a1", "alice", "pro"),
        ("a2", "alice", "free"),
        ("p1", "alice", "pro"),
        ("b1", "bob", "enterprise"),
        ("bcookie", "alice", "pro"),
    ] {
        profile(e, u, json!({"csm_owner": owner, "plan": plan}));
    }
    e.alias(vec![
        Alias {
            anonymous: "anon".into(),
            known: "a1".into(),
        },
        Alias {
            anonymous: "bcookie".into(),
            known: "b1".into(),
        },
    ])
    .unwrap();
}

#[test]
fn a_scope_restricts_every_engine_entry_point() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    seed(&e);
    let q = |v: Json| e.query_json(&v, alice()).unwrap();

    // users: the in-scope people, the profile-only one included; the
    // alias whose own profile says alice counts under bob's id, outside.
    let all = q(json!({"kind": "users"}));
    assert_eq!(sorted_ids(&all), ["a1", "a2", "p1"]);
    assert_eq!(all["users"], 3);
    let by_plan = q(json!({"kind": "users", "breakdown": [{"user_prop": "plan"}]}));
    let keys: Vec<&Json> = by_plan["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| &g["key"]["plan"])
        .collect();
    assert_eq!(keys, [&json!("pro"), &json!("free")], "{by_plan}");

    // A breakdown's top values and totals are the scope's: bob's source
    // is nowhere, not even in an $other bucket.
    let trend = q(json!({"kind": "events", "interval": "day",
        "metrics": [{"event": "visit"}], "breakdown": [{"event_prop": "utm_source"}], "limit": 1}));
    assert_eq!(trend["series"][0]["total"], 3, "{trend}");
    assert!(!trend.to_string().contains("secret_source"), "{trend}");
    // The buckets span the in-scope people's events (days 0–3), not
    // everyone's (days 0–20).
    assert_eq!(trend["buckets"].as_array().unwrap().len(), 4, "{trend}");
    let paths = q(json!({"kind": "paths", "steps": 2, "top": 1,
        "label": {"prop": "utm_source"}}));
    assert!(!paths.to_string().contains("secret_source"), "{paths}");

    // explain_users: an out-of-scope user looks like an unknown one.
    let f = q(
        json!({"kind": "funnel", "steps": [{"event": "visit"}, {"event": "pay"}],
        "window": {"value": 7, "unit": "day"}, "explain_users": ["b1", "nobody", "a1"]}),
    );
    assert_eq!(f["steps"][0]["users"], 2, "{f}");
    assert_eq!(f["explain"][0]["level"], f["explain"][1]["level"]);
    assert_eq!(f["explain"][0]["reason"], f["explain"][1]["reason"]);
    assert_eq!(f["explain"][2]["level"], 2);

    // Cohorts: sizes are the scope's, history is withheld, and a cohort
    // saved under the scope stays within it for an unscoped reader too.
    e.create_cohort(
        "payers",
        &json!({"kind": "users", "did": [{"event": "pay"}]}),
        &QueryOptions::default(),
    )
    .unwrap();
    let c = e.cohort("payers", &alice()).unwrap();
    assert_eq!(
        e.store().user_names(&c.members.iter().collect::<Vec<_>>()),
        ["a1"]
    );
    assert!(c.history.is_empty());
    assert_eq!(
        e.cohort("payers", &QueryOptions::default())
            .unwrap()
            .members
            .len(),
        2
    );
    let listed = e.cohorts(&alice()).unwrap();
    assert_eq!(listed[0].1.members.len(), 1);
    let mine = e
        .create_cohort("mine", &json!({"kind": "users"}), &alice())
        .unwrap();
    assert_eq!(mine.members.len(), 3);
    let def: Json = serde_json::from_str(
        e.cohort("mine", &QueryOptions::default())
            .unwrap()
            .definition
            .as_deref()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(def["users"]["and"][0]["value"], "alice", "{def}");
    let unscoped = QueryOptions {
        cohort_max_age: Some(std::time::Duration::ZERO),
        ..Default::default()
    };
    assert_eq!(e.cohort("mine", &unscoped).unwrap().members.len(), 3);
    // save_as under a scope does the same.
    q(json!({"kind": "users", "save_as": "mine2"}));
    assert_eq!(e.cohort("mine2", &unscoped).unwrap().members.len(), 3);

    // A static cohort: ids outside the scope are "unknown", like ids
    // never seen.
    let ids: Vec<String> = ["a2", "b1", "bcookie", "ghost"].map(String::from).to_vec();
    let s = e.create_static_cohort("list", &ids, &alice()).unwrap();
    assert_eq!((s.cohort.members.len(), s.unknown), (1, 3));
    assert_eq!(s.unknown_ids, ["b1", "bcookie", "ghost"]);

    // Lookups: out of scope is the same as never seen.
    assert!(e.person("b1", &alice()).unwrap().is_none());
    assert!(e.person("bcookie", &alice()).unwrap().is_none());
    assert!(e.person("ghost", &alice()).unwrap().is_none());
    let anon = e.person("anon", &alice()).unwrap().unwrap();
    assert_eq!(e.store().user_names(&anon), ["a1", "anon"]);

    // Schema counts are the scope's.
    let sch = e.schema(&alice()).unwrap();
    assert_eq!(sch.events["visit"], 3);
    assert_eq!(sch.events["pay"], 1);
    assert_eq!(sch.profile_properties["plan"], 3);
    assert_eq!(sch.properties["utm_source"]["string"], None);
    let all = e.schema(&QueryOptions::default()).unwrap();
    assert_eq!(all.events["visit"], 6);

    // SQL (over a store without aliases, which SQL cannot merge): the
    // scope is in the translated query.
    let dir2 = tempfile::tempdir().unwrap();
    let e2 = open(dir2.path());
    e2.ingest_text(r#"{"user":"a1","event":"visit","time":1}"#, Format::Auto)
        .unwrap();
    profile(&e2, "a1", json!({"csm_owner": "alice"}));
    let sql = e2
        .translate_sql(
            &json!({"kind": "distribution", "event": "visit"}),
            &Default::default(),
            alice().scope.as_ref(),
        )
        .unwrap();
    assert!(sql.contains("'alice'"), "{sql}");

    // A definition evaluated under the scope (a watch's).
    let m = e
        .evaluate_definition(
            &json!({"kind": "users", "did": [{"event": "visit"}]}),
            &alice(),
        )
        .unwrap();
    assert_eq!(
        e.store().user_names(&m.iter().collect::<Vec<_>>()),
        ["a1", "a2"]
    );

    // A scope through a cohort: only the cohort's people, and its own
    // error names the key's scope when the cohort is missing.
    let via = QueryOptions {
        scope: Some(Scope::new(json!({"cohort": "payers"}), "users").unwrap()),
        ..Default::default()
    };
    assert_eq!(
        sorted_ids(&e.query_json(&json!({"kind": "users"}), via).unwrap()),
        ["a1", "b1"]
    );
    let gone = QueryOptions {
        scope: Some(Scope::new(json!({"cohort": "nope"}), "users").unwrap()),
        ..Default::default()
    };
    let err = e.query_json(&json!({"kind": "users"}), gone).unwrap_err();
    assert!(
        err.to_string().starts_with("scope.cohort: the key's scope"),
        "{err}"
    );
}

// ---- the proptest ----

const EVENTS: [&str; 3] = ["visit", "signup", "purchase"];
const DAY: i64 = 86_400_000;
const T0: i64 = 1_767_225_600_000;

#[derive(Debug, Clone)]
struct Data {
    /// (user 0..10, event, minute offset, source)
    events: Vec<(u8, u8, u32, u8)>,
    /// user 0..10 → owner (0 alice, 1 bob, 2 none) and plan.
    profiles: Vec<(u8, u8, u8)>,
    /// anonymous 7..10 → known 0..7.
    aliases: Vec<(u8, u8)>,
    scope: u8,
    flush: bool,
}

fn data() -> impl Strategy<Value = Data> {
    (
        proptest::collection::vec((0u8..10, 0u8..3, 0u32..(20 * 24 * 60), 0u8..4), 0..40),
        proptest::collection::vec((0u8..10, 0u8..3, 0u8..3), 0..10),
        proptest::collection::vec((7u8..10, 0u8..7), 0..3),
        0u8..3,
        any::<bool>(),
    )
        .prop_map(|(events, profiles, aliases, scope, flush)| Data {
            events,
            profiles,
            aliases,
            scope,
            flush,
        })
}

fn scope_json(k: u8) -> Json {
    match k {
        0 => json!({"user_prop": "owner", "op": "eq", "value": "alice"}),
        // Matches people without a profile too.
        1 => json!({"user_prop": "owner", "op": "is_not_set"}),
        _ => json!({"or": [{"user_prop": "owner", "op": "eq", "value": "bob"},
                           {"user_prop": "plan", "op": "eq", "value": "p2"}]}),
    }
}

/// The profile each user ends with: owner, plan (later rows win).
fn final_profiles(d: &Data) -> Vec<Option<(Option<&'static str>, String)>> {
    let mut out = vec![None; 10];
    for &(u, owner, plan) in &d.profiles {
        let owner = match owner {
            0 => Some("alice"),
            1 => Some("bob"),
            _ => None,
        };
        out[u as usize] = Some((owner, format!("p{plan}")));
    }
    out
}

/// The known id each user is read under (the last link of an id wins).
fn known_of(d: &Data) -> Vec<u8> {
    let mut k: Vec<u8> = (0..10).collect();
    for &(a, known) in &d.aliases {
        k[a as usize] = known;
    }
    k
}

fn in_scope(d: &Data, uid: u8) -> bool {
    let known = known_of(d)[uid as usize] as usize;
    let p = &final_profiles(d)[known];
    let (owner, plan) = match p {
        Some((o, p)) => (*o, Some(p.as_str())),
        None => (None, None),
    };
    match d.scope {
        0 => owner == Some("alice"),
        1 => owner.is_none(),
        _ => owner == Some("bob") || plan == Some("p2"),
    }
}

/// Loads `d` into `e`, only the users `keep` takes.
fn load(e: &Engine, d: &Data, keep: &dyn Fn(u8) -> bool) {
    let mut rows = String::new();
    for &(u, ev, minute, src) in &d.events {
        if keep(u) {
            rows.push_str(&format!(
                "{{\"user\":\"u{u}\",\"event\":\"{}\",\"time\":{},\"props\":{{\"utm\":\"s{src}\"}}}}\n",
                EVENTS[ev as usize],
                T0 + i64::from(minute) * 60_000
            ));
        }
    }
    if !rows.is_empty() {
        e.ingest_text(&rows, Format::Auto).unwrap();
    }
    for (u, p) in final_profiles(d).into_iter().enumerate() {
        let u = u as u8;
        if let (Some((owner, plan)), true) = (p, keep(u)) {
            let mut props = json!({"plan": plan});
            if let Some(o) = owner {
                props["owner"] = json!(o);
            }
            profile(e, &format!("u{u}"), props);
        }
    }
    for &(a, k) in &d.aliases {
        if keep(a) && keep(k) {
            e.alias(vec![Alias {
                anonymous: format!("u{a}"),
                known: format!("u{k}"),
            }])
            .unwrap();
        }
    }
    if d.flush {
        e.flush().unwrap();
    }
}

fn queries() -> Vec<Json> {
    let explain: Vec<String> = (0..11).map(|u| format!("u{u}")).collect();
    let range = json!({"from": T0 + 2 * DAY, "to": T0 + 12 * DAY});
    vec![
        json!({"kind": "users"}),
        json!({"kind": "users", "did": [{"event": "visit", "count": {"op": "gte", "value": 2}}],
               "breakdown": [{"user_prop": "plan"}]}),
        json!({"kind": "users", "did_not": [{"event": "purchase"}], "profile": {"prop": "plan", "op": "ne", "value": "p0"}}),
        json!({"kind": "users", "users": {"cohort": "buyers"}}),
        json!({"kind": "events", "interval": "day",
               "metrics": [{"event": "visit"}, {"event": "$any", "agg": "users"}],
               "breakdown": [{"event_prop": "utm"}], "limit": 2}),
        json!({"kind": "events", "interval": "total", "metrics": [{"event": "$any", "agg": "per_user"}],
               "breakdown": [{"user_prop": "plan"}], "users": {"cohort": "buyers"}}),
        json!({"kind": "funnel", "steps": [{"event": "visit"}, {"event": "signup"}, {"event": "purchase"}],
               "window": {"value": 7, "unit": "day"}, "explain_users": explain}),
        json!({"kind": "funnel", "steps": [{"event": "visit"}, {"event": "purchase"}],
               "window": {"value": 3, "unit": "day"}, "trend": {"interval": "week"},
               "breakdown": [{"event_prop": "utm"}], "limit": 1}),
        json!({"kind": "retention", "start": {"event": "visit"}, "return": {"event": "purchase"},
               "unit": "day", "periods": 5, "time_range": range}),
        json!({"kind": "interval", "from": {"event": "visit"}, "to": {"event": "purchase"}}),
        json!({"kind": "distribution", "event": "visit", "breakdown": [{"user_prop": "owner"}]}),
        json!({"kind": "sessions", "interval": "week", "page_events": ["visit"], "page_prop": "utm", "top": 2}),
        json!({"kind": "paths", "steps": 3, "top": 2, "label": {"prop": "utm"}, "count": "users"}),
        json!({"kind": "attribution", "conversion": {"event": "purchase"}, "touch": {"event": "visit"},
               "by": {"event_prop": "utm"}, "models": ["first", "linear"]}),
        json!({"kind": "lifecycle", "event": {"event": "visit"}, "interval": "week"}),
        json!({"kind": "stickiness", "event": {"event": "visit"}, "interval": "day"}),
    ]
}

/// A result without what a scope does not hide: warnings (names of the
/// whole data set), and `ids` in id order (ids differ between stores).
fn comparable(r: Result<Json, footprint_engine::Error>) -> Result<Json, String> {
    let mut v = r.map_err(|e| e.to_string())?;
    if let Json::Object(m) = &mut v {
        m.shift_remove("warnings");
        if m.contains_key("ids") {
            let ids = sorted_ids(&Json::Object(m.clone()));
            m.insert("ids".into(), json!(ids));
        }
    }
    Ok(v)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn a_scoped_query_equals_the_query_over_the_in_scope_people_alone(d in data()) {
        let (full_dir, part_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let full = open(full_dir.path());
        let part = open(part_dir.path());
        load(&full, &d, &|_| true);
        load(&part, &d, &|u| in_scope(&d, u));
        let buyers = json!({"kind": "users", "did": [{"event": "purchase"}]});
        full.create_cohort("buyers", &buyers, &QueryOptions::default()).unwrap();
        part.create_cohort("buyers", &buyers, &QueryOptions::default()).unwrap();
        let scoped = QueryOptions {
            scope: Some(Scope::new(scope_json(d.scope), "users").unwrap()),
            ..Default::default()
        };
        for q in queries() {
            let a = comparable(full.query_json(&q, scoped.clone()));
            let b = comparable(part.query_json(&q, QueryOptions::default()));
            prop_assert_eq!(a, b, "query {}", q);
        }
        let sa = full.schema(&scoped).unwrap();
        let sb = part.schema(&QueryOptions::default()).unwrap();
        prop_assert_eq!(sa.events, sb.events);
        prop_assert_eq!(sa.profile_properties, sb.profile_properties);
    }
}
