//! `https://` upstreams: sck's TLS client (rustls) against a TLS server no one here wrote —
//! Python's `http.server` behind its standard `ssl` module (`tests/tls/upstream.py`) — with a
//! CA and certificates the test makes (rcgen).
//!
//! Checked: with the CA in `[proxy] upstream_ca_file`, allowed calls on an `http` route (by
//! host name) and an `mcp` route (by IP address) reach the upstream over TLS with the
//! injected credential and a verifying X-SCK signature, never the caller's token; a denied
//! call never opens a connection; without the CA (untrusted), with a certificate for another
//! host name and with an expired one, a call is 502 `upstream_tls` naming the reason, the
//! upstream having seen a handshake sck broke off and no request; a closed port behind an
//! `https://` URL is still `upstream_unreachable`; a CA file sck cannot use fails the start
//! before anything is stored.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::{json, Value};
use support::http::{get, get_as, post_json, Reply, API};
use support::routes::call;
use support::server::Server;
use support::{cli, db, repo, signed, tokens};

const SECRET: &str = "provider-key-tls";

/// A throw-away CA and the files of what it issued, in a directory of their own.
struct Pki {
    issuer: Issuer<'static, KeyPair>,
    ca: PathBuf,
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "sck tls_e2e CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, certificate.pem()).unwrap();
        Pki {
            issuer: Issuer::new(params, key),
            ca,
            dir,
        }
    }

    /// A server certificate for `names` (DNS names or IP addresses), expired a day ago when
    /// `expired`: its (chain, key) files.
    fn leaf(&self, file: &str, names: &[&str], expired: bool) -> (PathBuf, PathBuf) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, file);
        if expired {
            let now = time::OffsetDateTime::now_utc();
            params.not_before = now - time::Duration::days(30);
            params.not_after = now - time::Duration::days(1);
        }
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        let chain = self.dir.path().join(format!("{file}.pem"));
        let key_file = self.dir.path().join(format!("{file}.key"));
        std::fs::write(&chain, certificate.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (chain, key_file)
    }
}

/// `tests/tls/upstream.py` serving one certificate.
struct Upstream {
    child: Child,
    port: u16,
    control: u16,
}

impl Upstream {
    fn start((chain, key): (PathBuf, PathBuf)) -> Upstream {
        let mut child = Command::new("python3")
            .arg(repo().join("tests/tls/upstream.py"))
            .args([&chain, &key])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the Python TLS upstream");
        let mut ports = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ports)
            .unwrap();
        let mut ports = ports.split_whitespace().map(|p| p.parse().expect("a port"));
        let (Some(port), Some(control)) = (ports.next(), ports.next()) else {
            panic!("the upstream printed its two ports");
        };
        Upstream {
            child,
            port,
            control,
        }
    }

    /// What it saw so far, asked on its plain control port (never through sck).
    fn seen(&self) -> Value {
        get(&format!("http://127.0.0.1:{}/__seen", self.control), &[]).expect(200)
    }

    /// Waits until the upstream recorded a failed handshake, and returns what it saw.
    fn refused_handshake(&self) -> Value {
        support::wait_until(Duration::from_secs(10), "a failed handshake", || {
            !self.seen()["handshake_failures"]
                .as_array()
                .unwrap()
                .is_empty()
        });
        self.seen()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server that trusts `ca` for upstreams besides the platform's roots.
fn server_trusting(ca: &Path) -> Server {
    Server::start_with_env(&[("SCK_PROXY__UPSTREAM_CA_FILE", ca.to_str().unwrap())])
}

fn create_route(server: &Server, body: Value) {
    post_json(
        &format!("{}{API}/routes", server.url),
        Some(server.root()),
        &body,
    )
    .expect(201);
}

/// An `http` route `id` on `/<id>` to `upstream`.
fn http_route(server: &Server, id: &str, upstream: &str) {
    create_route(
        server,
        json!({"organizationId": "default", "id": id, "prefix": format!("/{id}"),
               "upstream": upstream, "kind": "http",
               "credentialHeader": "X-Api-Key", "credential": SECRET}),
    );
}

/// A LoA-2 token that may read and write over `http` routes and call tools.
fn token(server: &Server) -> String {
    let scopes = ["http:read", "http:write", "mcp:invoke", "mcp:read"];
    tokens::token_of(
        &server.url,
        server.root(),
        "default",
        "tls",
        "agent:tls",
        2,
        &scopes,
    )
}

/// The call is 502 `upstream_tls` and its detail gives `reason`.
fn assert_tls_refused(reply: Reply, reason: &str) {
    let problem = reply.assert_problem(502, "upstream_tls");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains(reason), "{problem}");
    assert!(!detail.contains(SECRET), "{problem}");
}

#[test]
fn with_the_ca_configured_allowed_calls_reach_the_https_upstream_and_denied_ones_never_connect() {
    let pki = Pki::new();
    let upstream = Upstream::start(pki.leaf("upstream", &["localhost", "127.0.0.1"], false));
    let server = server_trusting(&pki.ca);
    http_route(
        &server,
        "provider",
        &format!("https://localhost:{}/v1", upstream.port),
    );
    create_route(
        &server,
        json!({"organizationId": "default", "id": "tools", "prefix": "/mcp/tools",
               "upstream": format!("https://127.0.0.1:{}/mcp", upstream.port), "kind": "mcp",
               "credentialHeader": "X-Api-Key", "credential": SECRET}),
    );
    let token = token(&server);

    // DELETE needs LoA 3: denied by sck before any connection is opened.
    call(&server, &token, "DELETE", "/provider/items/ok", b"").assert_problem(403, "forbidden");
    assert_eq!(
        upstream.seen(),
        json!({"connections": 0, "handshake_failures": [], "requests": []})
    );

    let read = call(&server, &token, "GET", "/provider/items/ok?page=2", b"");
    assert_eq!((read.status, read.text().as_str()), (200, r#"{"ok":true}"#));
    let body = br#"{"order":42}"#;
    call(&server, &token, "POST", "/provider/items/ok", body).expect(200);
    let tool = call(
        &server,
        &token,
        "POST",
        "/mcp/tools",
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
               "params": {"name": "echo", "arguments": {}}})
        .to_string()
        .as_bytes(),
    )
    .expect(200);
    assert_eq!(tool["result"]["content"][0]["text"], "done", "{tool}");

    let seen = upstream.seen();
    assert_eq!(seen["handshake_failures"], json!([]), "{seen}");
    let requests = seen["requests"].as_array().unwrap();
    let lines: Vec<(&str, &str, &str)> = requests
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap(),
                r["path"].as_str().unwrap(),
                r["query"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("GET", "/v1/items/ok", "page=2"),
            ("POST", "/v1/items/ok", ""),
            ("POST", "/mcp", ""),
        ]
    );
    assert_eq!(requests[1]["body"], std::str::from_utf8(body).unwrap());
    assert_eq!(
        requests[0]["headers"]["host"],
        format!("localhost:{}", upstream.port)
    );
    assert_eq!(
        requests[2]["headers"]["host"],
        format!("127.0.0.1:{}", upstream.port)
    );
    let signer = get_as(
        &format!("{}{API}/gateway/signer", server.url),
        server.root(),
    )
    .expect(200);
    for recorded in requests {
        let headers = &recorded["headers"];
        assert_eq!(headers["x-api-key"], SECRET, "{recorded}");
        assert!(headers.get("authorization").is_none(), "{recorded}");
        assert!(!recorded.to_string().contains(&token), "{recorded}");
        signed::assert_gateway_signed(recorded, &signer);
    }
}

#[test]
fn certificates_for_another_name_or_expired_are_upstream_tls_and_no_request_is_sent() {
    let pki = Pki::new();
    let elsewhere = Upstream::start(pki.leaf("elsewhere", &["elsewhere.test"], false));
    let expired = Upstream::start(pki.leaf("expired", &["localhost", "127.0.0.1"], true));
    let server = server_trusting(&pki.ca);
    http_route(
        &server,
        "elsewhere",
        &format!("https://localhost:{}/", elsewhere.port),
    );
    http_route(
        &server,
        "expired",
        &format!("https://127.0.0.1:{}/", expired.port),
    );
    let token = token(&server);

    assert_tls_refused(
        call(&server, &token, "GET", "/elsewhere/ok", b""),
        "not valid for the upstream's host name",
    );
    assert_tls_refused(call(&server, &token, "GET", "/expired/ok", b""), "expired");
    for upstream in [&elsewhere, &expired] {
        let seen = upstream.refused_handshake();
        assert_eq!(seen["requests"], json!([]), "{seen}");
    }
}

#[test]
fn without_the_ca_the_upstream_is_untrusted_and_a_closed_port_is_still_unreachable() {
    let pki = Pki::new();
    let upstream = Upstream::start(pki.leaf("upstream", &["localhost", "127.0.0.1"], false));
    let server = Server::start();
    http_route(
        &server,
        "provider",
        &format!("https://localhost:{}/v1", upstream.port),
    );
    http_route(
        &server,
        "closed",
        &format!("https://127.0.0.1:{}/", support::free_port()),
    );
    let token = token(&server);

    assert_tls_refused(
        call(&server, &token, "GET", "/provider/items/ok", b""),
        "not issued by a CA sck trusts",
    );
    let seen = upstream.refused_handshake();
    assert_eq!(seen["requests"], json!([]), "{seen}");
    call(&server, &token, "GET", "/closed/ok", b"").assert_problem(502, "upstream_unreachable");
}

#[test]
fn a_ca_file_sck_cannot_use_fails_the_start_before_anything_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not-a-ca.pem");
    std::fs::write(&not_pem, "this is no certificate\n").unwrap();
    for (file, said) in [
        (dir.path().join("missing.pem"), "cannot be read"),
        (not_pem, "holds no PEM certificate"),
    ] {
        let data = tempfile::tempdir().unwrap();
        let out = cli::command(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &db::sqlite_url(data.path()),
        ])
        .env("SCK_DATA_DIR", data.path())
        .env("SCK_PROXY__UPSTREAM_CA_FILE", &file)
        .output()
        .unwrap();
        let (_, stderr) = cli::failed(out);
        assert!(stderr.contains("upstream_ca_file"), "{stderr}");
        assert!(stderr.contains(&file.display().to_string()), "{stderr}");
        assert!(stderr.contains(said), "{stderr}");
        assert!(!Path::new(&db::sqlite_url(data.path())).exists());
    }
}
