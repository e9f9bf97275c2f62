//! Bounds on the work a request brings in, against the real `sck serve` (issue 14, items 2
//! and 4): a compile's Rego tests stop at their time limit and a panic in one is a refusal; a
//! compile over `[bundles] max_concurrent_compiles` is refused, and a compile whose request is
//! gone starts no further test; the decompressed bytes of all requests in flight share one
//! budget; SIGTERM ends the process while a runaway test is still evaluating.
//!
//! Outcomes only (codes, named tests, what the ledger holds, whether the process exited
//! before a generous deadline), never speed.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::db;
use support::http::{self, get, get_as, gzip, post_json, Reply, API};
use support::ledger;
use support::metrics::wait_for_gauge;
use support::release::{self, compile_request, tarball, Source};
use support::server::Server;
use support::sidecar;

/// Ten billion iterations: far past any test time limit (issue 14's probe). The range is
/// built once, so the bounded built-ins' memory budget is charged once and the test runs until
/// its time limit, however fast the machine (building it per outer iteration exhausts the
/// budget first on a fast one: `evaluation_limit`, not `policy_test_timeout`).
const RUNAWAY: &str = "xs := numbers.range(1, 100000); \
                       count([1 | some x in xs; some y in xs; x == y]) > 0";

/// A policy tree of one package `probe` whose test module is `tests`.
fn probe_files(tests: &str) -> Source {
    Source::Files(json!({
        "probe/probe.rego": "package probe\n\nallow if input.ok\n",
        "probe/probe_test.rego": format!("package probe\n\n{tests}"),
    }))
}

/// A compile request for bundle `probe` of the default org.
fn probe_request(version: &str, source: &Source) -> Value {
    compile_request("default", "probe", version, source)
}

fn compile(server: &Server, version: &str, source: &Source) -> Reply {
    release::compile(&server.url, server.root(), &probe_request(version, source))
}

fn bundle_versions(server: &Server) -> Vec<String> {
    let list = get_as(
        &format!("{}{API}/bundles?name=probe", server.url),
        server.root(),
    )
    .json();
    list["bundles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["version"].as_str().unwrap().to_owned())
        .collect()
}

/// A runaway test is stopped at `[bundles] test_timeout_ms` and the compile refused with
/// `policy_test_timeout` naming it; a test whose evaluation fails is a refusal naming it (a
/// panicking one was a 500, and in `sck bundle test` a crash). Nothing is recorded for either.
#[test]
fn runaway_and_failing_tests_are_refused_by_name() {
    for deployment in db::backends() {
        let server = deployment.replica_with_env(&[("SCK_BUNDLES__TEST_TIMEOUT_MS", "300")]);
        let slow = compile(
            &server,
            "1.0.0",
            &probe_files(&format!(
                "test_fine if true\n\ntest_runaway if {{ {RUNAWAY} }}\n"
            )),
        );
        assert_eq!(
            (slow.status, slow.code()),
            (422, "policy_test_timeout".into()),
            "{}",
            String::from_utf8_lossy(&slow.body)
        );
        let diagnostics = slow.json()["diagnostics"].clone();
        assert_eq!(diagnostics.as_array().unwrap().len(), 1, "{diagnostics}");
        assert!(
            diagnostics[0]
                .as_str()
                .unwrap()
                .contains("data.probe.test_runaway exceeded the test time limit of 300 ms"),
            "{diagnostics}"
        );

        // A test whose evaluation fails (a panic inside regorus is one too: the policy module's
        // unit test, since no built-in sck leaves to regorus is known to panic) is named.
        let errors = compile(
            &server,
            "1.0.1",
            &probe_files("test_errors if 1 / 0 == 1\n"),
        );
        assert_eq!(
            (errors.status, errors.code()),
            (422, "bundle_invalid".into()),
            "{}",
            String::from_utf8_lossy(&errors.body)
        );
        assert!(errors.json()["diagnostics"][0]
            .as_str()
            .unwrap()
            .contains("data.probe.test_errors errored: "));

        assert_eq!(bundle_versions(&server), Vec::<String>::new());
        let fine = compile(&server, "1.0.2", &probe_files("test_fine if true\n"));
        assert_eq!(fine.status, 201, "{}", String::from_utf8_lossy(&fine.body));
        assert!(server.stop().success());
    }
}

/// A capacity refusal: 503, `code`, and when to retry.
fn assert_busy(reply: &Reply, code: &str) {
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (503, code),
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.header("retry-after").as_deref(), Some("1"));
}

/// Sends a JSON POST over a raw connection and returns it unread: dropping it is a client
/// that gave up.
fn send_and_leave(server: &Server, path: &str, body: &Value) -> std::net::TcpStream {
    let authority = server.url.strip_prefix("http://").unwrap();
    let body = serde_json::to_vec(body).unwrap();
    let mut stream = std::net::TcpStream::connect(authority).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {}\r\nContent-Length: {}\r\n\r\n",
        server.root_key.as_deref().unwrap(),
        body.len()
    )
    .unwrap();
    stream.write_all(&body).unwrap();
    stream
}

/// Compiles `version` (a passing bundle) until it is not refused as `compile_busy`, for 60 s
/// at most, and checks that it was accepted: the abandoned compile gave its slot back.
fn compile_once_the_slot_is_back(server: &Server, version: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let reply = loop {
        let reply = compile(server, version, &probe_files("test_ok if true\n"));
        if reply.code() != "compile_busy" || Instant::now() > deadline {
            break reply;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        reply.status,
        201,
        "the abandoned compile still holds its slot: {}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(bundle_versions(server), [version]);
}

/// A server with one compile slot, 2-second tests and `request_timeout_secs`; and a
/// bundle of 100 runaway tests, 200 s of evaluation if nothing stopped it.
fn one_slot_server(request_timeout_secs: &str) -> (Server, Source) {
    let server = Server::start_with_env(&[
        ("SCK_BUNDLES__MAX_CONCURRENT_COMPILES", "1"),
        ("SCK_BUNDLES__TEST_TIMEOUT_MS", "2000"),
        ("SCK_HTTP__REQUEST_TIMEOUT_SECS", request_timeout_secs),
    ]);
    let tests: String = (0..100)
        .map(|i| format!("test_runaway_{i} if {{ {RUNAWAY} }}\n"))
        .collect();
    (server, probe_files(&tests))
}

/// With one compile slot, a second compile is refused with `compile_busy` and `Retry-After`
/// while the first runs. Once the first one's client disconnects, it starts no further test:
/// the slot comes back after the test running then, long before the 200 s of its tests and
/// the 600 s request timeout.
#[test]
fn compiles_over_the_cap_are_refused_and_a_disconnected_clients_compile_stops() {
    let (server, runaway) = one_slot_server("600");
    let gone = send_and_leave(
        &server,
        &format!("{API}/bundles/compile"),
        &probe_request("1.0.0", &runaway),
    );
    wait_for_gauge(&server.url, "sck_compiles_in_flight", 1.0);
    let second = compile(&server, "1.0.1", &probe_files("test_ok if true\n"));
    assert_busy(&second, "compile_busy");
    drop(gone);
    compile_once_the_slot_is_back(&server, "1.0.1");
}

/// A compile whose request times out (503 after 2 s) starts no further test either.
#[test]
fn a_timed_out_compile_stops() {
    let (server, runaway) = one_slot_server("2");
    let timed_out = compile(&server, "1.0.0", &runaway);
    assert_eq!(timed_out.status, 503);
    assert_ne!(timed_out.code(), "compile_busy");
    compile_once_the_slot_is_back(&server, "1.0.1");
}

/// One event whose input makes the upload inflate to about `bytes`.
fn padded_upload(bytes: usize) -> Vec<u8> {
    let event = json!({
        "labels": {"id": "opa-pad", "version": "0.60.0"},
        "decision_id": format!("pad-{bytes}"),
        "path": "sck/gateway/decision",
        "input": {"pad": "p".repeat(bytes)},
        "result": true,
        "timestamp": "2026-01-01T00:00:00Z",
    });
    gzip(&serde_json::to_vec(&[event]).unwrap())
}

fn upload_logs(server: &Server, body: &[u8]) -> Reply {
    sidecar::post(
        &server.url,
        "/logs",
        Some(server.sidecar()),
        Some("gzip"),
        body,
    )
}

/// The decompressed bytes of every request in flight share one budget: while a compile
/// upload holds 1.5 MiB of a 2 MiB budget (its runaway test keeps it busy), a sidecar upload
/// inflating to 0.75 MiB and a second compile upload are refused with `decompression_busy`
/// and `Retry-After`, and nothing is written; once the compile is over, the same upload goes
/// through.
#[test]
fn the_decompression_budget_is_shared_by_every_upload() {
    let env = [
        ("SCK_HTTP__DECOMPRESSION_BUDGET_BYTES", "2097152"),
        ("SCK_BUNDLES__MAX_DECOMPRESSED_BYTES", "2097152"),
        ("SCK_FLEET__MAX_DECOMPRESSED_BYTES", "1048576"),
        ("SCK_BUNDLES__TEST_TIMEOUT_MS", "5000"),
    ];
    for deployment in db::backends() {
        let server = deployment.replica_with_env(&env);
        let pad = format!("{{\"pad\": \"{}\"}}", "p".repeat(1536 << 10)).into_bytes();
        let big = Source::Tarball(tarball(&[
            (
                "probe/probe.rego",
                b"package probe\n\nallow if input.ok\n".to_vec(),
            ),
            (
                "probe/probe_test.rego",
                format!("package probe\n\ntest_runaway if {{ {RUNAWAY} }}\n").into_bytes(),
            ),
            ("pad/data.json", pad),
        ]));
        let body = probe_request("1.0.0", &big);
        let (url, key) = (server.url.clone(), server.root_key.clone());
        let holder = std::thread::spawn(move || {
            post_json(
                &format!("{url}{API}/bundles/compile"),
                key.as_deref(),
                &body,
            )
        });
        wait_for_gauge(
            &server.url,
            "sck_decompression_bytes_in_flight",
            (1536 << 10) as f64,
        );

        let upload = padded_upload(768 << 10);
        assert_busy(&upload_logs(&server, &upload), "decompression_busy");
        assert_busy(&compile(&server, "1.0.1", &big), "decompression_busy");

        let held = holder.join().unwrap();
        assert_eq!(held.code(), "policy_test_timeout");
        // The refused upload left nothing behind: its decision id is still new.
        let accepted = upload_logs(&server, &upload);
        assert_eq!(
            (accepted.status, accepted.json()["appended"].clone()),
            (200, json!(1)),
            "{}",
            String::from_utf8_lossy(&accepted.body)
        );
        assert!(server.stop().success());
    }
}

/// The size of the last checkpoint in a ledger export, and its number of entries.
fn checkpointed_and_total(export: &std::path::Path) -> (u64, u64) {
    let notes = String::from_utf8(ledger::member(export, "checkpoints.txt")).unwrap();
    // Signed notes: origin, tree size, root hash, a blank line, signatures; one after another.
    let last = notes
        .split("\n\n")
        .filter(|block| !block.starts_with('\u{2014}') && !block.trim().is_empty())
        .last()
        .expect("a checkpoint");
    let size = last.lines().nth(1).unwrap().parse().unwrap();
    (size, ledger::leaves(export).len() as u64)
}

/// SIGTERM while a compile's test is evaluating (limit: ten minutes) and a sidecar long poll
/// is open: the process exits well before the test would end, and the final checkpoint covers
/// the whole log. It used to stop listening and then hang until SIGKILL.
#[test]
fn sigterm_exits_while_a_runaway_test_evaluates() {
    let env = [
        ("SCK_BUNDLES__TEST_TIMEOUT_MS", "600000"),
        ("SCK_HTTP__SHUTDOWN_GRACE_SECS", "1"),
    ];
    for deployment in db::backends() {
        let server = deployment.replica_with_env(&env);
        let body = probe_request(
            "1.0.0",
            &probe_files(&format!("test_runaway if {{ {RUNAWAY} }}\n")),
        );
        let (url, key) = (server.url.clone(), server.root_key.clone());
        let _compile = std::thread::spawn(move || {
            let _ = http::agent()
                .post(format!("{url}{API}/bundles/compile"))
                .header("Authorization", format!("Bearer {}", key.unwrap()))
                .send_json(&body);
        });
        let token = server.sidecar_token.clone().unwrap();
        let bundle = format!("{}/bundles/default/gateway.tar.gz", server.url);
        let etag = get(&bundle, &[("Authorization", &format!("Bearer {token}"))])
            .header("etag")
            .unwrap();
        let _poll = std::thread::spawn(move || {
            let _ = http::agent()
                .get(bundle)
                .header("Authorization", format!("Bearer {token}"))
                .header("If-None-Match", etag)
                .header("Prefer", "wait=300")
                .call();
        });
        wait_for_gauge(&server.url, "sck_compiles_in_flight", 1.0);
        // An entry after the last periodic checkpoint, for the final one to cover.
        let fine = release::compile(
            &server.url,
            server.root(),
            &compile_request(
                "default",
                "other",
                "1.0.0",
                &probe_files("test_ok if true\n"),
            ),
        );
        assert_eq!(fine.status, 201, "{}", String::from_utf8_lossy(&fine.body));

        let status = server
            .stop_within(Duration::from_secs(60))
            .expect("sck serve exits after SIGTERM while a runaway test evaluates");
        assert!(status.success(), "{status:?}");
        let export = ledger::export(&deployment.database_url, "default", deployment.data_dir());
        let (checkpointed, total) = checkpointed_and_total(&export);
        assert_eq!(checkpointed, total);
    }
}
