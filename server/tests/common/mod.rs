//! A real `footprint serve` process on an ephemeral loopback port, and raw
//! HTTP/1.1 requests to it.

#![allow(dead_code)] // each test binary uses its own part

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Server {
    pub fn start(data: &std::path::Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_footprint"))
            .args(["serve", "--addr", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("{line}"))
            .to_owned();
        Server { child, addr }
    }

    /// One request; returns (status, headers, body).
    pub fn req(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String, String) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        let _ = s.write_all(body);
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        let text = String::from_utf8_lossy(&raw).to_string();
        let (h, b) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = h
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        // Bodies here are small; axum sends them with Content-Length.
        (status, h.to_lowercase(), b.to_owned())
    }

    pub fn json(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, serde_json::Value) {
        let (st, _, b) = self.req(method, path, headers, body.as_bytes());
        (
            st,
            serde_json::from_str(&b).unwrap_or(serde_json::Value::String(b)),
        )
    }

    /// Starts a request that declares `declared` body bytes but sends only
    /// `part` of them; [`finish`] sends the rest and reads the reply.
    pub fn partial(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        declared: usize,
        part: &[u8],
    ) -> TcpStream {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {declared}\r\n",
            self.addr
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(part).unwrap();
        s.flush().unwrap();
        s
    }

    /// The server's peak resident memory so far, in bytes (Linux).
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kb * 1024
    }

    pub fn stop(mut self) -> (i32, String) {
        sigterm(self.child.id());
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let code = self.child.wait().unwrap().code().unwrap_or(-1);
        (code, err)
    }
}

/// Sends the rest of a [`Server::partial`] request; returns (status, body).
pub fn finish(mut s: TcpStream, rest: &[u8]) -> (u16, String) {
    let _ = s.write_all(rest);
    reply(s)
}

/// Reads a whole reply; returns (status, body).
pub fn reply(mut s: TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let (h, b) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = h
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, b.to_owned())
}

/// SIGTERM through the `kill` command (no libc needed).
pub fn sigterm(pid: u32) {
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// The sorted strings of a list: its items, or each item's `field`.
pub fn sorted(list: &serde_json::Value, field: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = list
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|x| field.map_or(x, |f| &x[f]).as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

/// The `ids` of a `users` answer, sorted.
pub fn ids(v: &serde_json::Value) -> Vec<String> {
    sorted(&v["ids"], None)
}
