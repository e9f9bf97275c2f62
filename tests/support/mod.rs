//! What the end-to-end tests share, one module per role; a test file declares `mod support;`
//! and uses the roles it needs, so every helper is defined once:
//!
//! - [`server`]: a running `sck serve` (start, environment, secrets, stop);
//! - [`db`]: its database — SQLite or a fresh PostgreSQL database, replicas on one deployment,
//!   every backend in turn, and direct SQL on a SQLite file;
//! - [`http`]: requests and whole answers ([`http::Reply`]), raw bytes on a socket, problem
//!   assertions;
//! - [`cli`]: the `sck` command line, with none of sck's settings inherited;
//! - [`orgs`], [`release`], [`tokens`], [`oauth`], [`routes`], [`signed`], [`sidecar`]: the API as
//!   its clients use it (orgs and credentials; compile → publish → activate; gateway tokens;
//!   service accounts and the token endpoint; X-SCK signed calls; the OPA sidecar protocol);
//! - [`python`]: real Python peers (pip-installed when missing); [`nginx`]: a real nginx;
//!   [`counting_upstream`]: a Python upstream that counts what reaches it;
//! - [`metrics`] and [`ledger`]: what operators and auditors read (`/metrics`; a ledger's
//!   export, verification, entries and counts);
//! - the interop and deployment harnesses: [`opa`] (a real OPA), [`relay`] (a recording relay
//!   between OPA and sck), [`interop`] (both sides of a sidecar set-up), [`deploy`] (deploy/
//!   run without a container engine), [`pg_instance`] (a private PostgreSQL a test can stop).
//!
//! Everything here runs the binary of the test target that includes it
//! (`env!("CARGO_BIN_EXE_sck")`, see [`cli::BIN`]).

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

pub mod cli;
pub mod counting_upstream;
pub mod db;
pub mod deploy;
pub mod http;
#[cfg(feature = "interop")]
pub mod interop;
pub mod ledger;
pub mod metrics;
pub mod nginx;
pub mod oauth;
pub mod opa;
pub mod orgs;
pub mod pg_instance;
pub mod python;
#[cfg(feature = "interop")]
pub mod relay;
pub mod release;
pub mod routes;
pub mod server;
pub mod sidecar;
pub mod signed;
pub mod tokens;

/// The workspace root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A loopback TCP port nobody listened on a moment ago (for programs that do not report the
/// port they bound for `:0`).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `done` until it holds, failing the test with `what` after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The current Unix time in seconds.
pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Sends SIGTERM to process `pid` (what `docker stop`, `systemctl stop` and a pod's
/// termination send).
pub fn terminate(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -TERM {pid}");
}
