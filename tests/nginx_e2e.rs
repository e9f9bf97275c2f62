//! A real nginx (Debian's 1.22 package) with `auth_request` pointing at sck's forward-auth
//! endpoint protects a small upstream, configured with the very snippet `docs/gateway.md`
//! documents: an allowed request reaches the upstream with the decision id nginx copied from
//! sck's answer, a denied one gets 403 and an unauthenticated one 401 with sck's
//! `WWW-Authenticate` challenge, neither reaching the upstream; the ledger holds each decision.
//! An X-SCK signed call passes through nginx's subrequest unchanged and is decided as its
//! caller; its replay is refused.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use support::http::request;
use support::nginx::{self, Nginx};
use support::server::Server;
use support::signed::{self, Call, Key};
use support::{db, ledger, repo, routes};

/// The upstream: answers every request 200 and prints `METHOD PATH DECISION-ID` per request.
const UPSTREAM: &str = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def answer(self):
        print(self.command, self.path, self.headers.get("X-SCK-Decision-Id", "-"), flush=True)
        body = b"upstream answered"
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = answer
    def log_message(self, *args): pass
server = http.server.HTTPServer(("127.0.0.1", 0), H)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

struct Upstream {
    child: Child,
    port: u16,
    lines: BufReader<std::process::ChildStdout>,
}

impl Upstream {
    fn start() -> Upstream {
        let mut child = Command::new("python3")
            .args(["-c", UPSTREAM])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the Python upstream");
        let mut lines = BufReader::new(child.stdout.take().unwrap());
        let mut port = String::new();
        lines.read_line(&mut port).unwrap();
        Upstream {
            port: port.trim().parse().expect("the upstream's port"),
            child,
            lines,
        }
    }

    /// The next request the upstream received (`METHOD PATH DECISION-ID`).
    fn next_request(&mut self) -> String {
        let mut line = String::new();
        self.lines.read_line(&mut line).unwrap();
        line.trim().to_owned()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The nginx configuration `docs/gateway.md` documents, pointed at this test's sck and upstream.
fn documented_config(sck: &str, upstream_port: u16) -> String {
    let doc = std::fs::read_to_string(repo().join("docs/gateway.md")).unwrap();
    let snippet = doc
        .split("```nginx\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/gateway.md has an nginx snippet");
    let sck_host = sck.trim_start_matches("http://");
    assert!(snippet.contains("http://reports-backend") && snippet.contains("sck:8080"));
    snippet
        .replace(
            "http://reports-backend",
            &format!("http://127.0.0.1:{upstream_port}"),
        )
        .replace("sck:8080", sck_host)
}

#[test]
fn nginx_auth_request_allows_denies_and_challenges_and_every_decision_is_ledgered() {
    println!("{}", nginx::version(&nginx::binary()));
    db::on_each_backend(|server| {
        let bearer = format!("Bearer {}", routes::forward_auth_reader(server));
        let mut upstream = Upstream::start();
        let proxy = Nginx::start(&documented_config(&server.url, upstream.port));

        // Allowed: the upstream answers, and sees the decision id nginx copied from sck.
        let allowed = request(
            "GET",
            &format!("{}/reports/q1?year=2026", proxy.url),
            &[("authorization", &bearer)],
            b"",
        );
        proxy.assert_passed(&allowed);
        assert_eq!(allowed.text(), "upstream answered");
        let seen = upstream.next_request();
        let allowed_id = seen
            .strip_prefix("GET /reports/q1?year=2026 ")
            .unwrap_or_else(|| {
                panic!("the upstream saw {seen:?}");
            });

        // Denied (a write with a read-only token) and unauthenticated: sck's statuses, and the
        // upstream never sees either (its next request is the allowed one sent after them).
        let denied = request(
            "POST",
            &format!("{}/reports/q1", proxy.url),
            &[("authorization", &bearer)],
            b"{}",
        );
        assert_eq!(denied.status, 403, "{}", denied.text());
        let anonymous = request("GET", &format!("{}/reports/q1", proxy.url), &[], b"");
        assert_eq!(anonymous.status, 401, "{}", anonymous.text());
        let challenge = anonymous.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer resource_metadata="),
            "nginx passes sck's challenge on: {challenge:?}"
        );
        let again = request(
            "GET",
            &format!("{}/reports/q2", proxy.url),
            &[("authorization", &bearer)],
            b"",
        );
        assert_eq!(again.status, 200);
        let seen = upstream.next_request();
        assert!(
            seen.starts_with("GET /reports/q2 "),
            "the upstream saw {seen:?}"
        );

        // The ledger: allowed, denied, allowed — the ids the upstream was handed.
        let dir = tempfile::tempdir().unwrap();
        let entries = ledger::entries(&ledger::export(&server.database_url, "default", dir.path()));
        let ledgered: Vec<(String, String)> = entries
            .iter()
            .filter(|e| e["body"]["call"]["route"] == "reports")
            .map(|e| {
                (
                    format!(
                        "{} {}",
                        e["type"].as_str().unwrap(),
                        e["body"]["call"]["method"]
                    ),
                    e["body"]["decision_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let kinds: Vec<&str> = ledgered.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "decision.allowed \"GET\"",
                "decision.denied \"POST\"",
                "decision.allowed \"GET\""
            ]
        );
        assert_eq!(ledgered[0].1, allowed_id);
        assert_eq!(ledgered[2].1, seen.rsplit(' ').next().unwrap());
    });
}

#[test]
fn nginx_passes_an_x_sck_signed_call_to_sck_which_decides_it_as_the_caller() {
    const PUBLIC: &str = "https://app.example";
    const ANS: &str = "ans://v1.0.0.reports-reader.example";
    let server = Server::start_with_env(&[("SCK_PUBLIC_URL", PUBLIC)]);
    routes::forward_auth_reader(&server);
    routes::release_with_caller(&server, "2.0.0", ANS, &["http.get"]);
    let (secret, _) = signed::pin_hmac(&server.url, server.root(), "default", ANS);
    let mut upstream = Upstream::start();
    let proxy = Nginx::start(&documented_config(&server.url, upstream.port));

    // Signed for sck's public authority and the target nginx is asked for: nginx's
    // subrequest carries the X-SCK headers, sck verifies and decides, the upstream answers.
    let mut call = Call::new(PUBLIC, ANS, "default", Vec::new());
    call.method = "GET".into();
    call.path_and_query = "/reports/q1?year=2026".into();
    let headers = call.headers(&Key::Hmac(secret));
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let url = format!("{}/reports/q1?year=2026", proxy.url);
    let allowed = request("GET", &url, &headers, b"");
    proxy.assert_passed(&allowed);
    let seen = upstream.next_request();
    assert!(seen.starts_with("GET /reports/q1?year=2026 "), "{seen}");

    // The same signed request again: a replay, refused by sck, passed on by nginx as 401.
    let replayed = request("GET", &url, &headers, b"");
    assert_eq!(replayed.status, 401, "{}", replayed.text());

    // The decision is in the ledger as the caller's.
    let dir = tempfile::tempdir().unwrap();
    let entries = ledger::entries(&ledger::export(&server.database_url, "default", dir.path()));
    let decisions: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["body"]["call"]["route"] == "reports")
        .collect();
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert_eq!(decisions[0]["type"], "decision.allowed");
    assert!(decisions[0].to_string().contains(ANS));
    assert_eq!(
        Some(decisions[0]["body"]["decision_id"].as_str().unwrap()),
        seen.rsplit(' ').next()
    );
}
