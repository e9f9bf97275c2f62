//! The counting upstream (`tests/usage/upstream.py`, Python's `http.server`): it answers
//! `<base>/ok`, `/fail`, `/stream` and `/mcp` and counts every request it receives by method
//! and path, which [`CountingUpstream::seen`] reads straight from it (never through sck).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use super::http::get;
use super::repo;

/// The upstream, on a port it printed; stopped on drop.
pub struct CountingUpstream {
    child: Child,
    pub port: u16,
}

impl CountingUpstream {
    pub fn start() -> CountingUpstream {
        let mut child = Command::new("python3")
            .arg(repo().join("tests/usage/upstream.py"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the Python upstream");
        let mut port = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut port)
            .unwrap();
        CountingUpstream {
            port: port.trim().parse().expect("the upstream's port"),
            child,
        }
    }

    /// The base URL routes point at.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}/base", self.port)
    }

    /// What it received so far: `{"<METHOD> <path>": count, "tools": [...]}`.
    pub fn seen(&self) -> Value {
        get(&format!("http://127.0.0.1:{}/__seen", self.port), &[]).expect(200)
    }
}

impl Drop for CountingUpstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
