//! Fault tests through the real server: PostgreSQL killed and restarted mid-run, a replica
//! SIGKILLed mid-run, and disk full on the SQLite path.
//!
//! Each one holds sck to the same contract: while a dependency is gone every request fails
//! closed (503 with a problem `code` — never a 200 without a ledger entry, never a 500, never a
//! hang past the request timeout), service comes back by itself, the exported ledger verifies,
//! and every receipt a client was given (seq and leaf hash) is in it. The fourth fault of the
//! list, a corrupted bundle row, is `serve_e2e::a_corrupted_bundle_row_is_refused_at_activation`.
//!
//! PostgreSQL runs privately per test (`support::pg_instance`), so stopping it disturbs nothing
//! else. Disk full is a real file-size limit (`RLIMIT_FSIZE`, set on the running server with
//! `prlimit`): the kernel refuses every write that would grow a file, exactly the failed
//! `write(2)` SQLite sees on a full disk, with no mounts and no test-only knob in sck.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::db::{self, Deployment};
use support::http::{bearer, get, get_as, merged, try_request, Reply, API};
use support::pg_instance::PgInstance;
use support::server::Server;
use support::{cli, ledger, sidecar, tokens, wait_until};

/// `[http] request_timeout_secs` of the server (its default): no answer may take longer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Creates an issuer for the default org and issues a gateway token; returns (issuer, token).
fn gateway_token(server: &Server) -> (String, String) {
    let (url, root) = (&server.url, server.root());
    let issuer = tokens::create_issuer(url, root, "default", "faults", 3, &["mcp:invoke"]);
    let issued = tokens::issue(url, root, &issue_body(&issuer));
    let token = issued["token"].as_str().unwrap().to_owned();
    (issuer, token)
}

fn issue_body(issuer: &str) -> Value {
    let request = tokens::request("default", issuer, "art-faults", 3, json!(["mcp:invoke"]));
    merged(&request, json!({"subject": "agent:faults"}))
}

fn decide_body() -> Value {
    json!({"action": "tools.invoke", "resource": {"org": "default"}})
}

/// POSTs JSON with a bearer credential; `None` when no HTTP answer came back (a killed server).
fn try_post(url: &str, secret: &str, body: &Value) -> Option<Reply> {
    let auth = bearer(secret);
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    try_request("POST", url, &headers, &serde_json::to_vec(body).unwrap())
}

/// What a load thread sends.
#[derive(Clone)]
enum Kind {
    /// `POST /decide` with a gateway token.
    Decide { token: String },
    /// `POST /tokens/issue` with the root key (a second write path).
    Issue { root: String, issuer: String },
}

/// One request a load thread made and what came back.
#[derive(Debug, Clone)]
struct Call {
    /// Which load thread (e.g. `a/decide-0`).
    thread: String,
    started: Instant,
    ended: Instant,
    /// `None`: no HTTP answer at all (connection refused or cut).
    status: Option<u16>,
    code: String,
    content_type: String,
    /// `(seq, leaf hash)` of an acknowledged decision.
    receipt: Option<(u64, String)>,
}

impl Call {
    fn acknowledged(&self) -> bool {
        matches!(self.status, Some(200 | 201))
    }
}

/// Threads that send requests back to back until stopped, recording every call.
struct Load {
    stop: Arc<AtomicBool>,
    calls: Arc<Mutex<Vec<Call>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    fn new() -> Load {
        Load {
            stop: Arc::new(AtomicBool::new(false)),
            calls: Arc::new(Mutex::new(Vec::new())),
            threads: Vec::new(),
        }
    }

    fn spawn(&mut self, thread: &str, base_url: &str, kind: Kind) {
        let (stop, calls) = (self.stop.clone(), self.calls.clone());
        let (thread, base_url) = (thread.to_owned(), base_url.to_owned());
        self.threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let reply = match &kind {
                    Kind::Decide { token } => {
                        try_post(&format!("{base_url}{API}/decide"), token, &decide_body())
                    }
                    Kind::Issue { root, issuer } => try_post(
                        &format!("{base_url}{API}/tokens/issue"),
                        root,
                        &issue_body(issuer),
                    ),
                };
                let ended = Instant::now();
                let call = match reply {
                    None => Call {
                        thread: thread.clone(),
                        started,
                        ended,
                        status: None,
                        code: String::new(),
                        content_type: String::new(),
                        receipt: None,
                    },
                    Some(reply) => {
                        let json: Value =
                            serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
                        let receipt = json["receipt"]["seq"].as_u64().map(|seq| {
                            (
                                seq,
                                json["receipt"]["leaf_hash"]
                                    .as_str()
                                    .unwrap_or("")
                                    .to_owned(),
                            )
                        });
                        Call {
                            thread: thread.clone(),
                            started,
                            ended,
                            status: Some(reply.status),
                            code: json["code"].as_str().unwrap_or("").to_owned(),
                            content_type: reply.header("content-type").unwrap_or_default(),
                            receipt: if reply.status == 200 { receipt } else { None },
                        }
                    }
                };
                let refused = call.status != Some(200) && call.status != Some(201);
                calls.lock().unwrap().push(call);
                if refused {
                    // Do not hammer a server that is refusing or gone.
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }));
    }

    /// How many recorded calls satisfy `filter`.
    fn count(&self, filter: impl Fn(&Call) -> bool) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| filter(c))
            .count()
    }

    /// Stops every thread and returns all calls.
    fn finish(self) -> Vec<Call> {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().expect("load thread");
        }
        let calls = self.calls.lock().unwrap().clone();
        calls
    }
}

/// An answer is either a success or a fail-closed refusal: 503 with a problem body and code,
/// within the request timeout.
fn assert_fails_closed(call: &Call) {
    let elapsed = call.ended - call.started;
    assert!(
        elapsed < REQUEST_TIMEOUT,
        "{call:?} took {elapsed:?}, past the request timeout"
    );
    if call.acknowledged() {
        return;
    }
    assert_eq!(call.status, Some(503), "not a fail-closed answer: {call:?}");
    assert_eq!(call.code, "unavailable", "{call:?}");
    assert_eq!(call.content_type, "application/problem+json", "{call:?}");
}

/// Exports the default org's log from `database_url`, verifies the export with `verifiers`
/// (`sck ledger verify`), and returns the leaf hash of every entry by seq.
fn verified_leaf_hashes(database_url: &str, verifiers: &[String], dir: &Path) -> Vec<String> {
    let export = ledger::export(database_url, "default", dir);
    ledger::verify_export(&export, verifiers);
    ledger::leaves(&export)
        .iter()
        .map(|leaf| hex::encode(sck_ledger::merkle::leaf_hash(leaf)))
        .collect()
}

/// Every acknowledged receipt is in the verified log at its seq with its leaf hash, and no two
/// acknowledged receipts share a seq (the chain did not fork).
fn assert_receipts_in_ledger<'a>(
    receipts: impl IntoIterator<Item = &'a (u64, String)>,
    leaves: &[String],
) -> usize {
    let mut seen = HashSet::new();
    for (seq, leaf) in receipts {
        assert!(
            seen.insert(*seq),
            "two acknowledged receipts for seq {seq}: the chain forked"
        );
        let stored = leaves.get(*seq as usize);
        assert_eq!(
            stored,
            Some(leaf),
            "acknowledged entry {seq} is missing or different in the ledger ({} entries)",
            leaves.len()
        );
    }
    seen.len()
}

fn receipts(calls: &[Call]) -> impl Iterator<Item = &(u64, String)> {
    calls.iter().filter_map(|c| c.receipt.as_ref())
}

#[test]
fn postgres_restart_fails_closed_and_recovers_without_losing_acknowledged_entries() {
    let pg = PgInstance::start();
    let deployment = Deployment::on(pg.url());
    let server = deployment.replica();
    let root = server.root().to_owned();
    let (issuer, token) = gateway_token(&server);
    let verifiers = ledger::published_keys(&server.url, "default");
    let url = server.url.clone();

    let mut load = Load::new();
    let threads = ["decide-0", "decide-1", "decide-2", "issue"];
    for name in &threads[..3] {
        load.spawn(
            name,
            &url,
            Kind::Decide {
                token: token.clone(),
            },
        );
    }
    load.spawn("issue", &url, Kind::Issue { root, issuer });
    wait_until(Duration::from_secs(30), "load before the outage", || {
        load.count(|c| c.status == Some(200)) >= 20 && load.count(|c| c.status == Some(201)) >= 3
    });

    pg.stop();
    let down = Instant::now();
    // The process is up; it is not ready to serve decisions.
    assert_eq!(get(&format!("{url}/health"), &[]).status, 200);
    let ready = get(&format!("{url}/ready"), &[]);
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert_eq!(ready.json()["checks"]["database"], false);
    wait_until(
        Duration::from_secs(60),
        "every load thread to be refused during the outage",
        || {
            threads.iter().all(|name| {
                load.count(|c| c.thread == *name && c.started >= down && c.status.is_some()) > 0
            })
        },
    );
    assert_eq!(get(&format!("{url}/health"), &[]).status, 200);
    let up = Instant::now();
    pg.start_again();

    // Without restarting sck, both write paths and readiness come back by themselves.
    let back = Instant::now();
    wait_until(
        Duration::from_secs(60),
        "decisions and token issue after the restart",
        || {
            load.count(|c| c.started >= back && c.status == Some(200)) >= 10
                && load.count(|c| c.started >= back && c.status == Some(201)) >= 1
        },
    );
    wait_until(Duration::from_secs(30), "/ready after the restart", || {
        get(&format!("{url}/ready"), &[]).status == 200
    });
    let calls = load.finish();

    for call in &calls {
        assert!(call.status.is_some(), "no answer: {call:?}");
        assert_fails_closed(call);
    }
    let in_outage: Vec<&Call> = calls
        .iter()
        .filter(|c| c.started >= down && c.ended <= up)
        .collect();
    assert!(!in_outage.is_empty());
    for call in &in_outage {
        assert_eq!(
            call.status,
            Some(503),
            "answered while PostgreSQL was down: {call:?}"
        );
    }

    assert!(server.stop().success());
    let leaves = verified_leaf_hashes(&deployment.database_url, &verifiers, deployment.data_dir());
    let acknowledged = assert_receipts_in_ledger(receipts(&calls), &leaves);
    eprintln!(
        "postgres restart: {} calls, {} refused during the outage, {acknowledged} acknowledged decisions all in the verified ledger of {} entries",
        calls.len(),
        in_outage.len(),
        leaves.len()
    );
}

#[test]
fn a_replica_sigkilled_mid_run_leaves_the_other_serving_and_no_acknowledged_entry_lost() {
    let pg = PgInstance::start();
    let deployment = Deployment::on(pg.url());
    let a = deployment.replica();
    let b = deployment.replica();
    let (_, token) = gateway_token(&a);
    let verifiers = ledger::published_keys(&a.url, "default");

    let mut load = Load::new();
    for (server, name) in [(&a, "a"), (&b, "b")] {
        for i in 0..2 {
            let decide = Kind::Decide {
                token: token.clone(),
            };
            load.spawn(&format!("{name}/decide-{i}"), &server.url, decide);
        }
    }
    let ok_on = |load: &Load, replica: &str, since: Instant| {
        load.count(|c| c.thread.starts_with(replica) && c.started >= since && c.status == Some(200))
    };
    let start = Instant::now();
    wait_until(Duration::from_secs(30), "load on both replicas", || {
        ok_on(&load, "a/", start) >= 10 && ok_on(&load, "b/", start) >= 10
    });

    drop(a); // SIGKILL, mid-run.
    let killed = Instant::now();
    wait_until(
        Duration::from_secs(30),
        "replica B to keep answering",
        || ok_on(&load, "b/", killed) >= 20,
    );

    let restarted = deployment.replica();
    assert!(
        restarted.root_key.is_none(),
        "the restarted replica found the deployment"
    );
    load.spawn("a2/decide", &restarted.url, Kind::Decide { token });
    let back = Instant::now();
    wait_until(
        Duration::from_secs(30),
        "the restarted replica to serve",
        || ok_on(&load, "a2/", back) >= 10,
    );
    let calls = load.finish();

    for call in &calls {
        if call.thread.starts_with("a/") {
            // Replica A answered until it died; after that there is nobody to answer.
            assert!(call.status.is_none() || call.acknowledged(), "{call:?}");
            assert!(call.status.is_none() || call.started < killed, "{call:?}");
        } else {
            assert_eq!(call.status, Some(200), "{call:?}");
        }
        assert!(call.ended - call.started < REQUEST_TIMEOUT, "{call:?}");
    }

    assert!(b.stop().success());
    assert!(restarted.stop().success());
    let leaves = verified_leaf_hashes(&deployment.database_url, &verifiers, deployment.data_dir());
    let acknowledged = assert_receipts_in_ledger(receipts(&calls), &leaves);
    let mut per_thread: BTreeMap<&str, usize> = BTreeMap::new();
    for call in calls.iter().filter(|c| c.receipt.is_some()) {
        *per_thread
            .entry(call.thread.split('/').next().unwrap())
            .or_default() += 1;
    }
    eprintln!(
        "replica kill: {acknowledged} acknowledged decisions by replica {per_thread:?}, all in the verified ledger of {} entries",
        leaves.len()
    );
}

/// Sets the soft file-size limit (`RLIMIT_FSIZE`, bytes or `unlimited`) of a running process
/// (with `prlimit`, from util-linux).
fn limit_file_size(pid: u32, limit: &str) {
    cli::run_ok(std::process::Command::new("prlimit").args([
        "--pid",
        &pid.to_string(),
        &format!("--fsize={limit}:"),
    ]));
}

fn decide(url: &str, token: &str) -> Reply {
    try_post(&format!("{url}{API}/decide"), token, &decide_body()).expect("an answer")
}

fn receipt(reply: &Reply) -> (u64, String) {
    let json = reply.expect(200);
    let leaf = json["receipt"]["leaf_hash"].as_str().unwrap().to_owned();
    (json["receipt"]["seq"].as_u64().unwrap(), leaf)
}

#[test]
fn sqlite_disk_full_refuses_writes_keeps_reads_and_corrupts_nothing() {
    let deployment = Deployment::sqlite();
    let db = &deployment.database_url;
    let server = deployment.replica();
    let (root, sidecar) = (server.root(), server.sidecar());
    let (issuer, token) = gateway_token(&server);
    let verifiers = ledger::published_keys(&server.url, "default");
    let url = server.url.clone();
    let mut acknowledged: Vec<(u64, String)> =
        (0..5).map(|_| receipt(&decide(&url, &token))).collect();

    // From now on no file of the server may grow: the database, its WAL, anything.
    limit_file_size(server.pid(), "0");
    for _ in 0..5 {
        decide(&url, &token).assert_problem(503, "unavailable");
    }
    let issued = tokens::issue_reply(&url, root, &issue_body(&issuer));
    issued.assert_problem(503, "unavailable");
    // Reads still work, and the process is alive.
    assert_eq!(get(&format!("{url}/health"), &[]).status, 200);
    let entries = get_as(
        &format!("{url}/api/v1/ledger/default/entries?from=0&limit=1000"),
        root,
    )
    .expect(200);
    let stored = entries["entries"].as_array().unwrap().len() as u64;
    assert!(stored > acknowledged.last().unwrap().0, "{stored} entries");
    let bundle = sidecar::fetch_bundle(&url, "default", sidecar, None, None);
    assert_eq!(bundle.status, 200);

    // Space again: writes succeed without a restart.
    limit_file_size(server.pid(), "unlimited");
    wait_until(
        Duration::from_secs(30),
        "decisions after the disk has space",
        || {
            let reply = decide(&url, &token);
            if reply.status == 200 {
                acknowledged.push(receipt(&reply));
            }
            reply.status == 200
        },
    );
    assert!(server.stop().success());

    // The database is intact, the ledger verifies and holds every acknowledged decision.
    assert_eq!(db::sqlite_text(db, "PRAGMA integrity_check"), "ok");
    let leaves = verified_leaf_hashes(db, &verifiers, deployment.data_dir());
    assert_receipts_in_ledger(&acknowledged, &leaves);

    // And the deployment starts again on it.
    let again = deployment.replica();
    receipt(&decide(&again.url, &token));
}
