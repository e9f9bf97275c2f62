//! An upstream verifies that a call came through the gateway: `examples/verify_upstream.py`
//! (the spec's X-SCK verification written in Python from the spec alone, Ed25519 by the
//! pinned `cryptography` package, the gateway's public key pinned at start) behind an `http`
//! route accepts the calls sck forwards — GET with a query, POST with a body — and refuses
//! unsigned and forged ones.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use support::http::{get_as, post_json, request, API};
use support::server::Server;
use support::{python, repo, tokens};

/// The example upstream, stopped on drop.
struct Verifying {
    child: Child,
    port: u16,
}

impl Verifying {
    fn start(signer: &Value) -> Verifying {
        let port = support::free_port();
        let child = Command::new("python3")
            .arg(repo().join("examples/verify_upstream.py"))
            .args(["--port", &port.to_string()])
            .args(["--public-key", signer["publicKey"].as_str().unwrap()])
            .args(["--ans-id", signer["ansId"].as_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs");
        support::wait_until(
            Duration::from_secs(30),
            "the example upstream listens",
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        );
        Verifying { child, port }
    }
}

impl Drop for Verifying {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_example_upstream_accepts_what_sck_forwards_and_refuses_the_rest() {
    assert!(
        python::available(
            "import cryptography; assert cryptography.__version__ == '48.0.0'",
            &["cryptography==48.0.0"],
        ),
        "the pinned cryptography package could not be installed"
    );
    let server = Server::start();
    let signer = get_as(
        &format!("{}{API}/gateway/signer", server.url),
        server.root(),
    )
    .expect(200);
    let upstream = Verifying::start(&signer);
    post_json(
        &format!("{}{API}/routes", server.url),
        Some(server.root()),
        &json!({"organizationId": "default", "id": "svc", "prefix": "/svc", "kind": "http",
                "upstream": format!("http://127.0.0.1:{}/base", upstream.port),
                "credentialHeader": "x-upstream-key", "credential": "upstream-secret-1"}),
    )
    .expect(201);
    let token = tokens::token_of(
        &server.url,
        server.root(),
        "default",
        "svc-tests",
        "agent-3",
        2,
        &["http:write"],
    );
    let bearer = format!("Bearer {token}");

    // What sck forwards verifies: a GET with a query, a POST with a body.
    let get = request(
        "GET",
        &format!("{}/svc/reports/q1?year=2026", server.url),
        &[("authorization", &bearer)],
        b"",
    );
    assert_eq!(get.status, 200, "{}", get.text());
    let seen = get.json();
    assert_eq!(seen["verified"], true, "{seen}");
    assert_eq!(seen["ans_id"], signer["ansId"]);
    assert_eq!(seen["organization"], "default");
    assert_eq!(seen["path"], "/base/reports/q1");
    let post = request(
        "POST",
        &format!("{}/svc/reports", server.url),
        &[
            ("authorization", &bearer),
            ("content-type", "application/json"),
        ],
        br#"{"quarter": 2}"#,
    );
    assert_eq!(post.status, 200, "{}", post.text());
    assert_eq!(
        (
            post.json()["verified"].clone(),
            post.json()["method"].clone()
        ),
        (json!(true), json!("POST"))
    );

    // Straight to the upstream: unsigned, and signed with a key that is not the gateway's.
    let direct = format!("http://127.0.0.1:{}/base/reports/q1", upstream.port);
    let unsigned = request("GET", &direct, &[], b"");
    assert_eq!(unsigned.status, 401, "{}", unsigned.text());
    let now = support::unix_now().to_string();
    let forged = request(
        "GET",
        &direct,
        &[
            (
                "x-sck-signature",
                &format!("ed25519={}", "A".repeat(86) + "=="),
            ),
            ("x-sck-timestamp", &now),
            ("x-sck-ans-id", signer["ansId"].as_str().unwrap()),
            ("x-sck-organization", "default"),
            ("x-sck-nonce", "0123456789abcdef"),
        ],
        b"",
    );
    assert_eq!(forged.status, 401, "{}", forged.text());
    assert_eq!(forged.json()["error"], "signature does not verify");
}
