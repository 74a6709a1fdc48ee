//! Watches through the public API: a real webhook receiver on loopback
//! that fails the first attempts, the server SIGKILLed between
//! evaluations and during a post; every entry and leave is acted on
//! exactly once (deduplicated by idempotency key, as a receiver must),
//! every post carries a valid signature, and a resent key carries the
//! same body.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Server;
use hmac::{Hmac, Mac};
use serde_json::{json, Value as Json};
use sha2::Sha256;

const SECRET: &str = "test-secret-0123456789";

#[derive(Debug, Clone)]
struct Got {
    key: String,
    signature: String,
    watch: String,
    body: String,
    answered: u16,
}

/// A webhook receiver: answers 500 to the first `fail` posts, holds each
/// answer `hold_ms`, and records every post.
#[derive(Clone)]
struct Hook {
    addr: String,
    log: Arc<Mutex<Vec<Got>>>,
    fail: Arc<AtomicUsize>,
    hold_ms: Arc<AtomicU64>,
}

impl Hook {
    fn start(fail: usize) -> Hook {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let hook = Hook {
            addr: l.local_addr().unwrap().to_string(),
            log: Arc::default(),
            fail: Arc::new(AtomicUsize::new(fail)),
            hold_ms: Arc::new(AtomicU64::new(0)),
        };
        let h = hook.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { continue };
                let h = h.clone();
                std::thread::spawn(move || h.serve(s));
            }
        });
        hook
    }

    fn serve(&self, mut s: TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let (head, len) = loop {
            let n = match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..i]).to_string();
                let len = header(&head, "content-length")
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                buf.drain(..i + 4);
                break (head, len);
            }
        };
        while buf.len() < len {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let failing = self
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| f.checked_sub(1))
            .is_ok();
        let answered = if failing { 500 } else { 200 };
        self.log.lock().unwrap().push(Got {
            key: header(&head, "idempotency-key").unwrap_or_default(),
            signature: header(&head, "x-footprint-signature").unwrap_or_default(),
            watch: header(&head, "x-footprint-watch").unwrap_or_default(),
            body: String::from_utf8_lossy(&buf[..len]).to_string(),
            answered,
        });
        std::thread::sleep(Duration::from_millis(self.hold_ms.load(Ordering::SeqCst)));
        let reply =
            format!("HTTP/1.1 {answered} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let _ = s.write_all(reply.as_bytes());
    }

    fn log(&self) -> Vec<Got> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until `f` holds of the log (at most 40 s).
    fn wait(&self, what: &str, f: impl Fn(&[Got]) -> bool) {
        let t = Instant::now();
        while !f(&self.log()) {
            assert!(
                t.elapsed() < Duration::from_secs(40),
                "waited 40 s for {what}; got {:#?}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

/// (user, "entered"|"left") of the posts acknowledged with a 2xx.
fn acted(log: &[Got]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for g in log.iter().filter(|g| g.answered == 200) {
        // A receiver acts on a key once.
        if !seen.insert(g.key.clone()) {
            continue;
        }
        let v: Json = serde_json::from_str(&g.body).unwrap();
        for which in ["entered", "left"] {
            for u in v[which].as_array().unwrap() {
                out.push((u["user"].as_str().unwrap().to_owned(), which.to_owned()));
            }
        }
    }
    out
}

fn has(log: &[Got], user: &str, which: &str) -> bool {
    acted(log).iter().any(|(u, w)| u == user && w == which)
}

fn set_plan(s: &Server, user: &str, plan: &str) {
    let body = format!(r#"{{"user":"{user}","op":"set","props":{{"plan":"{plan}"}}}}"#);
    let (st, v) = s.json("POST", "/v1/profiles", &[], &body);
    assert_eq!(st, 200, "{v}");
}

fn sigkill(mut s: Server) {
    s.child.kill().unwrap();
    s.child.wait().unwrap();
}

#[test]
fn entries_are_delivered_once_signed_across_failures_and_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Hook::start(2);
    let s = Server::start(dir.path(), &[]);
    let (st, v) = s.json(
        "POST",
        "/v1/profiles",
        &[],
        "{\"user\":\"u1\",\"op\":\"set\",\"props\":{\"plan\":\"pro\",\"csm_owner\":\"alice\"}}\n\
         {\"user\":\"u2\",\"op\":\"set\",\"props\":{\"plan\":\"pro\",\"csm_owner\":\"bob\"}}\n\
         {\"user\":\"u3\",\"op\":\"set\",\"props\":{\"plan\":\"free\",\"csm_owner\":\"alice\"}}",
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = s.json(
        "PUT",
        "/v1/cohorts/pro",
        &[],
        r#"{"definition":{"kind":"users","profile":{"prop":"plan","op":"eq","value":"pro"}}}"#,
    );
    assert_eq!(st, 201, "{v}");
    let watch = json!({
        "cohort": "pro", "every": {"value": 1, "unit": "second"},
        "on": ["enter", "leave"], "webhook": format!("http://{}/hook", hook.addr),
        "fields": ["csm_owner", "plan"], "secret": SECRET, "initial": "enter",
    });
    let (st, w) = s.json("POST", "/v1/watches", &[], &watch.to_string());
    assert_eq!(st, 201, "{w}");
    let id = w["id"].as_str().unwrap().to_owned();
    assert_eq!(w["secret"], SECRET);
    let (_, list) = s.json("GET", "/v1/watches", &[], "");
    assert_eq!(list["watches"][0]["id"], json!(id));
    assert!(list["watches"][0].get("secret").is_none(), "{list}");

    // The first two posts fail; the batch arrives on the third.
    hook.wait("u1 and u2 entered", |l| {
        has(l, "u1", "entered") && has(l, "u2", "entered")
    });
    let first = hook.log();
    assert!(first.len() >= 3 && first[0].answered == 500 && first[1].answered == 500);
    assert_eq!(first[0].key, first[2].key, "retries keep the key");
    let body: Json = serde_json::from_str(&first[2].body).unwrap();
    let alice = body["entered"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user"] == "u1")
        .unwrap()
        .clone();
    assert_eq!(alice["props"], json!({"csm_owner": "alice", "plan": "pro"}));

    // Changes, then kill -9 before or between evaluations.
    set_plan(&s, "u3", "pro");
    set_plan(&s, "u1", "free");
    sigkill(s);
    let s = Server::start(dir.path(), &[]);
    hook.wait("u3 entered, u1 left", |l| {
        has(l, "u3", "entered") && has(l, "u1", "left")
    });

    // Kill -9 while a post is in flight (the receiver holds its answer):
    // the restarted server posts the same part again, same key and body.
    hook.hold_ms.store(3000, Ordering::SeqCst);
    let before = hook.log().len();
    set_plan(&s, "u2", "free");
    hook.wait("a post about u2", |l| {
        l[before..].iter().any(|g| g.body.contains("\"u2\""))
    });
    sigkill(s);
    hook.hold_ms.store(0, Ordering::SeqCst);
    let s = Server::start(dir.path(), &[]);
    let held = hook.log()[before..]
        .iter()
        .find(|g| g.body.contains("\"u2\""))
        .unwrap()
        .clone();
    hook.wait("the held post again", |l| {
        l.iter().filter(|g| g.key == held.key).count() >= 2
    });
    // Quiet: more evaluations find nothing new.
    std::thread::sleep(Duration::from_millis(2500));
    let (_, st) = s.json("GET", &format!("/v1/watches/{id}"), &[], "");
    assert_eq!(st["pending"], 0, "{st}");
    s.stop();

    let log = hook.log();
    let mut by_key: BTreeMap<&str, &str> = BTreeMap::new();
    for g in &log {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(g.body.as_bytes());
        let want: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(g.signature, format!("sha256={want}"), "{g:?}");
        assert_eq!(g.watch, id);
        let v: Json = serde_json::from_str(&g.body).unwrap();
        assert_eq!(v["idempotency_key"], json!(g.key));
        if let Some(b) = by_key.insert(&g.key, &g.body) {
            assert_eq!(b, g.body, "one key, one body");
        }
    }
    let mut acts = acted(&log);
    acts.sort();
    let want: Vec<(String, String)> = [
        ("u1", "entered"),
        ("u1", "left"),
        ("u2", "entered"),
        ("u2", "left"),
        ("u3", "entered"),
    ]
    .iter()
    .map(|(u, w)| (u.to_string(), w.to_string()))
    .collect();
    assert_eq!(acts, want, "each change acted on exactly once");

    // The CLI lists the watch and runs it once (nothing new to post).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_footprint"))
        .args(["watch", "--data"])
        .arg(dir.path())
        .arg("list")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains(&id), "{text}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_footprint"))
        .args(["watch", "--data"])
        .arg(dir.path())
        .args(["run", &id])
        .output()
        .unwrap();
    let r: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "{r}");
    assert_eq!(
        (&r["evaluated"], &r["entered"], &r["left"]),
        (&json!(true), &json!(0), &json!(0))
    );
    assert!(
        r["evaluation_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{r}"
    );
}

#[test]
fn bad_watches_are_refused_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let (st, _) = s.json("PUT", "/v1/cohorts/pro", &[], r#"{"ids":[]}"#);
    assert_eq!(st, 201);
    let ok = json!({"cohort": "pro", "every": {"value": 1, "unit": "hour"}, "webhook": "http://127.0.0.1:9/x"});
    for (patch, path) in [
        (json!({"cohort": "pr"}), "cohort"),
        (
            json!({"cohort": {"kind": "users", "did": [{"event": 3}]}}),
            "cohort.did[0].event",
        ),
        (
            json!({"every": {"value": 1, "unit": "fortnight"}}),
            "every.unit",
        ),
        (
            json!({"every": {"value": 0, "unit": "hour"}}),
            "every.value",
        ),
        (json!({"webhook": "ftp://example.com/"}), "webhook"),
        (json!({"on": ["enter", "stay"]}), "on[1]"),
        (json!({"secret": "short"}), "secret"),
        (json!({"evry": 1}), "evry"),
    ] {
        let mut w = ok.clone();
        for (k, v) in patch.as_object().unwrap() {
            w[k] = v.clone();
        }
        let (st, e) = s.json("POST", "/v1/watches", &[], &w.to_string());
        assert_eq!((st, &e["error"]["path"]), (400, &json!(path)), "{w}: {e}");
    }
    let (st, e) = s.json(
        "POST",
        "/v1/watches",
        &[],
        &json!({"cohort": "pr", "every": {"value": 1, "unit": "hour"}, "webhook": "http://x/"})
            .to_string(),
    );
    assert!(
        st == 400 && e.to_string().contains("did you mean \\\"pro\\\""),
        "{e}"
    );
    let (st, w) = s.json("POST", "/v1/watches", &[], &ok.to_string());
    assert_eq!(st, 201, "{w}");
    assert_eq!(w["secret"].as_str().unwrap().len(), 32, "a secret is made");
    let id = w["id"].as_str().unwrap();
    assert_eq!(
        s.json("DELETE", &format!("/v1/watches/{id}"), &[], "").0,
        200
    );
    assert_eq!(
        s.json("DELETE", &format!("/v1/watches/{id}"), &[], "").0,
        404
    );
    assert_eq!(s.json("GET", &format!("/v1/watches/{id}"), &[], "").0, 404);
}
