//! The enforcement point with parts no one here wrote: the official MCP Python SDK (pinned
//! [`MCP_SDK`]) — its `MCPServer` as the upstream (`tests/mcp/upstream.py`, which records
//! every request it receives) and its streamable-HTTP client (`tests/mcp/client.py`) talking
//! to it through an sck MCP route with a gateway token, on every backend.
//!
//! Checked: allowed calls return the upstream's results; a tool the default policy denies
//! gets a JSON-RPC error with the reasons and decision id and never reaches the upstream;
//! `tools/list` shows only what the token may call; progress notifications arrive while the
//! tool runs (the tool waits for the client to have seen each one); a revoked token is
//! refused on its next call; the upstream sees the injected credential and a verifying
//! X-SCK signature, never the caller's token; the ledger holds every decision and outcome,
//! no secret, and verifies. Bad input: malformed JSON-RPC, a batch mixing allowed and
//! denied calls, path tricks, route definitions that would clash.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use support::http::{merged, post_json, request, Reply, API};
use support::server::Server;
use support::{db, ledger, repo, signed, tokens};

/// The SDK version the tests run against.
const MCP_SDK: &str = "mcp==2.3.0";
const SECRET: &str = "upstream-secret-one";

/// Installs the pinned SDK for `python3` if missing; panics with the reason if it cannot.
fn require_sdk() {
    let version = || {
        Command::new("python3")
            .args([
                "-c",
                "import importlib.metadata as m; print(m.version('mcp'))",
            ])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let wanted = MCP_SDK.trim_start_matches("mcp==");
    if version().as_deref() == Some(wanted) {
        return;
    }
    for extra in [&[][..], &["--break-system-packages"][..]] {
        let _ = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", MCP_SDK])
            .args(extra)
            .status();
        if version().as_deref() == Some(wanted) {
            return;
        }
    }
    panic!("python3 with the MCP SDK is required: `python3 -m pip install {MCP_SDK}` failed");
}

/// The SDK's server on a free port, recording what it receives.
struct Upstream {
    child: Child,
    port: u16,
    record: PathBuf,
    signals: PathBuf,
    _dir: tempfile::TempDir,
}

impl Upstream {
    fn start() -> Upstream {
        let dir = tempfile::tempdir().unwrap();
        let port = support::free_port();
        let record = dir.path().join("record.jsonl");
        let signals = dir.path().join("signals");
        std::fs::create_dir(&signals).unwrap();
        let child = Command::new("python3")
            .arg(repo().join("tests/mcp/upstream.py"))
            .arg(port.to_string())
            .arg(&record)
            .arg(&signals)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs");
        support::wait_until(Duration::from_secs(30), "the MCP upstream listens", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Upstream {
            child,
            port,
            record,
            signals,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// Every request the upstream received so far.
    fn requests(&self) -> Vec<Value> {
        let Ok(file) = std::fs::File::open(&self.record) else {
            return Vec::new();
        };
        BufReader::new(file)
            .lines()
            .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
            .collect()
    }

    /// The tools the upstream was asked to call.
    fn tools_called(&self) -> Vec<String> {
        self.requests()
            .iter()
            .flat_map(|r| r["calls"].as_array().cloned().unwrap_or_default())
            .filter(|c| c["method"] == "tools/call")
            .map(|c| c["tool"].as_str().unwrap_or("").to_owned())
            .collect()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The SDK client's run of `scenario` through `url` with `token`: what it saw.
fn client(url: &str, token: &str, signals: &Path, scenario: &str) -> Value {
    let out = Command::new("timeout")
        .arg("120")
        .arg("python3")
        .arg(repo().join("tests/mcp/client.py"))
        .args([url, token])
        .arg(signals)
        .arg(scenario)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "client printed no result: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// An issuer of the default org and a LoA-2 token for `mcp:invoke mcp:read`.
fn token(server: &Server, subject: &str) -> Value {
    let issuer = tokens::create_issuer(
        &server.url,
        server.root(),
        "default",
        &format!("mcp-{}", subject.replace(':', "-")),
        4,
        &["mcp:invoke", "mcp:read"],
    );
    let request = tokens::request(
        "default",
        &issuer,
        "agent-1",
        2,
        json!(["mcp:invoke", "mcp:read"]),
    );
    tokens::issue(
        &server.url,
        server.root(),
        &merged(&request, json!({"subject": subject})),
    )
}

fn create_route(server: &Server, body: &Value) -> Reply {
    post_json(
        &format!("{}{API}/routes", server.url),
        Some(server.root()),
        body,
    )
}

fn weather(upstream: &Upstream) -> Value {
    json!({"organizationId": "default", "id": "weather", "prefix": "/mcp/weather",
           "upstream": upstream.url(), "kind": "mcp",
           "credentialHeader": "X-Upstream-Key", "credential": SECRET})
}

/// A raw MCP POST of `body` to `url` (with a token and a session, if given).
fn mcp_post(url: &str, token: Option<&str>, session: Option<&str>, body: &[u8]) -> Reply {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    if let Some(b) = &bearer {
        headers.push(("authorization", b));
    }
    if let Some(s) = session {
        headers.push(("mcp-session-id", s));
    }
    request("POST", url, &headers, body)
}

#[test]
fn the_sdk_client_reaches_the_sdk_server_only_through_allowing_decisions() {
    require_sdk();
    db::on_each_backend(|server| {
        let upstream = Upstream::start();
        let route = create_route(server, &weather(&upstream)).expect(201);
        assert_eq!(route["credentialVersion"], 1);
        assert!(!route.to_string().contains(SECRET), "{route}");
        let issued = token(server, "agent:alice");
        let token = issued["token"].as_str().unwrap();
        let url = format!("{}/mcp/weather", server.url);

        let seen = client(&url, token, &upstream.signals, "session");
        assert_eq!(seen["server"], "sck-test-upstream", "{seen}");
        // shell.exec needs LoA 4 (policies/sck/gateway/data.json): listed for nobody at LoA 2.
        assert_eq!(
            seen["tools"],
            json!(["add", "count_slowly", "echo"]),
            "{seen}"
        );
        assert_eq!(seen["echo"]["text"], json!(["echo: hi"]), "{seen}");
        assert_eq!(seen["add"]["text"], json!(["5"]), "{seen}");
        let denied = &seen["denied"];
        assert_eq!(denied["ok"], false, "{seen}");
        assert_eq!(denied["code"], -32003, "{seen}");
        assert_eq!(
            denied["data"]["reasons"],
            json!(["tool shell.exec requires loa 4"]),
            "{seen}"
        );
        let denied_id = denied["data"]["decision_id"].as_str().unwrap().to_owned();
        // Each step of count_slowly waited for the client to have seen the previous one.
        assert_eq!(seen["slow"]["text"], json!(["counted to 3"]), "{seen}");
        assert_eq!(seen["progress"], json!([1.0, 2.0, 3.0]), "{seen}");

        let called = upstream.tools_called();
        assert!(!called.contains(&"shell.exec".to_owned()), "{called:?}");
        assert_eq!(called, ["echo", "add", "count_slowly"]);
        let signer = support::http::get_as(
            &format!("{}{API}/gateway/signer", server.url),
            server.root(),
        )
        .expect(200);
        for recorded in upstream.requests() {
            let h = &recorded["headers"];
            assert!(
                h.get("authorization").is_none(),
                "caller token forwarded: {recorded}"
            );
            assert_eq!(h["x-upstream-key"], SECRET, "{recorded}");
            signed::assert_gateway_signed(&recorded, &signer);
        }

        // The ledger: every call's decision (the denied one too) and the forwarded calls'
        // outcomes bound to their decisions; no secret; it verifies.
        let dir = tempfile::tempdir().unwrap();
        let export = ledger::export(&server.database_url, "default", dir.path());
        let raw = std::fs::read(&export).unwrap();
        let entries = ledger::entries(&export);
        let text = serde_json::to_string(&entries).unwrap();
        assert!(
            !text.contains(SECRET) && !text.contains(token),
            "secret in the ledger"
        );
        let _ = raw;
        let calls: Vec<&Value> = entries
            .iter()
            .filter(|e| e["body"]["call"]["method"] == "tools/call")
            .collect();
        let targets: Vec<(&str, &str)> = calls
            .iter()
            .map(|e| {
                (
                    e["type"].as_str().unwrap(),
                    e["body"]["call"]["target"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            targets,
            [
                ("decision.allowed", "echo"),
                ("decision.allowed", "add"),
                ("decision.denied", "shell.exec"),
                ("decision.allowed", "count_slowly"),
            ]
        );
        assert!(calls.iter().all(|e| e["body"]["call"]["arguments_sha256"]
            .as_str()
            .is_some_and(|h| h.len() == 64)));
        assert!(calls
            .iter()
            .any(|e| e["body"]["decision_id"] == denied_id.as_str()));
        let outcomes = ledger::of_type(&entries, "proxy.completed");
        let echo_id = calls[0]["body"]["decision_id"].as_str().unwrap();
        let echo_outcome = outcomes
            .iter()
            .find(|o| {
                o["body"]["decisions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|d| d == echo_id)
            })
            .expect("the echo call's outcome");
        assert_eq!(echo_outcome["body"]["status"], 200);
        assert_eq!(echo_outcome["body"]["complete"], true);
        assert!(echo_outcome["body"]["bytes"].as_u64().unwrap() > 0);
        assert!(!outcomes.iter().any(|o| o["body"]["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d == denied_id.as_str())));
        assert_eq!(ledger::of_type(&entries, "route.created").len(), 1);
        ledger::verify_db(&server.database_url, "default");
        ledger::verify_export(&export, &ledger::published_keys(&server.url, "default"));

        // A revoked token is refused on its next call (401 from sck, nothing forwarded).
        let before = upstream.requests().len();
        tokens::revoke(
            &server.url,
            server.root(),
            &json!({"organizationId": "default", "tokenId": issued["tokenId"]}),
        )
        .expect(200);
        let refused = client(&url, token, &upstream.signals, "echo");
        assert!(
            refused["failed"].is_string() && refused.get("echo").is_none(),
            "{refused}"
        );
        let reply = mcp_post(
            &url,
            Some(token),
            None,
            br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
        );
        reply.assert_problem(401, "token_revoked");
        assert_eq!(upstream.requests().len(), before);
    });
}

/// `GET path` with an optional bearer token over a raw socket (ureq would clean the path).
fn raw_get(server: &Server, path: &str, token: &str) -> Reply {
    let authority = server.url.strip_prefix("http://").unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    support::http::send_raw(authority, request.as_bytes())
}

/// The SSE or JSON answer of an MCP POST as JSON-RPC messages.
fn messages(reply: &Reply) -> Vec<Value> {
    let text = reply.text();
    let values: Vec<Value> = if reply
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/event-stream"))
    {
        text.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect()
    } else {
        vec![serde_json::from_str(&text).unwrap_or_else(|_| panic!("{text}"))]
    };
    values
        .into_iter()
        .flat_map(|v| match v {
            Value::Array(items) => items,
            one => vec![one],
        })
        .collect()
}

#[test]
fn bad_input_is_refused_and_nothing_denied_is_forwarded() {
    require_sdk();
    db::on_each_backend(|server| {
        let upstream = Upstream::start();
        create_route(server, &weather(&upstream)).expect(201);
        let url = format!("{}/mcp/weather", server.url);

        // Route definitions that would clash or escape are refused and change nothing.
        for (patch, status, code) in [
            (
                json!({"id": "other", "prefix": "/api/x"}),
                400,
                "invalid_route",
            ),
            (
                json!({"id": "other", "prefix": "/a/../b"}),
                400,
                "invalid_route",
            ),
            (
                json!({"id": "other", "prefix": "/o", "upstream": "ftp://example.com/"}),
                400,
                "invalid_route",
            ),
            (
                json!({"id": "other", "prefix": "/o", "credentialHeader": "Transfer-Encoding"}),
                400,
                "invalid_route",
            ),
            (
                json!({"id": "other", "prefix": "/o", "credentialHeader": null}),
                400,
                "invalid_route",
            ),
            (
                json!({"id": "weather", "prefix": "/elsewhere"}),
                409,
                "route_exists",
            ),
            (
                json!({"id": "other", "prefix": "/mcp/weather/deeper"}),
                409,
                "route_exists",
            ),
            (
                json!({"id": "other", "prefix": "/mcp"}),
                409,
                "route_exists",
            ),
        ] {
            create_route(server, &merged(&weather(&upstream), patch.clone()))
                .assert_problem(status, code);
        }
        let listed = support::http::get_as(&format!("{}{API}/routes", server.url), server.root())
            .expect(200);
        assert_eq!(listed["routes"].as_array().unwrap().len(), 1, "{listed}");
        assert!(!listed.to_string().contains(SECRET));

        // No token: 401 naming the RFC 9728 metadata, which names sck as the authorization server.
        let reply = mcp_post(
            &url,
            None,
            None,
            br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
        );
        reply.assert_problem(401, "unauthorized");
        let challenge = reply.header("www-authenticate").unwrap();
        let well_known = "/.well-known/oauth-protected-resource/mcp/weather";
        assert!(
            challenge.starts_with("Bearer resource_metadata=\"") && challenge.contains(well_known),
            "{challenge}"
        );
        let metadata = support::http::get(&format!("{}{well_known}", server.url), &[]).expect(200);
        assert!(
            metadata["resource"]
                .as_str()
                .unwrap()
                .ends_with("/mcp/weather"),
            "{metadata}"
        );
        assert_eq!(
            metadata["authorization_servers"].as_array().unwrap().len(),
            1
        );
        let garbage = mcp_post(&url, Some("not-a-token"), None, b"{}");
        garbage.assert_problem(401, "invalid_token");
        assert!(garbage
            .header("www-authenticate")
            .unwrap()
            .contains("error=\"invalid_token\""));

        let issued = token(server, "agent:bob");
        let token = issued["token"].as_str().unwrap();
        let before = upstream.requests().len();
        // Malformed JSON-RPC: 400 with the JSON-RPC error, nothing forwarded.
        for (body, code) in [
            (&b"{\"jsonrpc\":"[..], -32700),
            (b"[]", -32600),
            (br#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#, -32600),
            (
                br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"id":2}]"#,
                -32600,
            ),
        ] {
            let reply = mcp_post(&url, Some(token), None, body);
            assert_eq!(reply.status, 400, "{}", reply.text());
            assert_eq!(reply.json()["error"]["code"], code, "{}", reply.text());
        }
        // Path tricks never leave the route's base path (and never reach the upstream).
        for path in [
            "/mcp/weather/%2e%2e/x",
            "/mcp/weather/../x",
            "/mcp/weather//x",
            "/mcp/weather/a%2fb",
            "/mcp/weather/%2E%2E",
        ] {
            raw_get(server, path, token).assert_problem(400, "path_refused");
        }
        assert_eq!(upstream.requests().len(), before, "nothing forwarded");

        // A session, then a batch mixing an allowed and a denied call: the denied one is
        // answered by sck and only the allowed one goes up.
        let init = mcp_post(&url, Some(token), None,
            br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#);
        assert_eq!(init.status, 200, "{}", init.text());
        let session = init.header("mcp-session-id").expect("a session id");
        assert_eq!(
            messages(&init)[0]["result"]["serverInfo"]["name"],
            "sck-test-upstream"
        );
        mcp_post(
            &url,
            Some(token),
            Some(&session),
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        );
        let batch = mcp_post(&url, Some(token), Some(&session),
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"a"}}},
                 {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"shell.exec","arguments":{"command":"id"}}}]"#);
        let answers = messages(&batch);
        let denied = answers
            .iter()
            .find(|m| m["id"] == 2)
            .unwrap_or_else(|| panic!("{}", batch.text()));
        assert_eq!(denied["error"]["code"], -32003, "{denied}");
        assert!(denied["error"]["data"]["decision_id"].is_string());
        assert!(!upstream.tools_called().contains(&"shell.exec".to_owned()));
        let sent = upstream.requests().last().unwrap()["body"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            sent.contains("echo") && !sent.contains("shell.exec"),
            "{sent}"
        );

        // The credential rotates: the next call carries the new one; the API never shows it.
        let rotated = post_json(
            &format!("{}{API}/routes/weather/credential", server.url),
            Some(server.root()),
            &json!({"credential": "upstream-secret-two"}),
        )
        .expect(200);
        assert_eq!(rotated["credentialVersion"], 2);
        assert!(!rotated.to_string().contains("secret-two"));
        mcp_post(
            &url,
            Some(token),
            Some(&session),
            br#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#,
        );
        assert_eq!(
            upstream.requests().last().unwrap()["headers"]["x-upstream-key"],
            "upstream-secret-two"
        );

        // Deleted: the prefix is no route's any more.
        let deleted = request(
            "DELETE",
            &format!("{}{API}/routes/weather", server.url),
            &[("authorization", &format!("Bearer {}", server.root()))],
            b"",
        );
        assert_eq!(deleted.status, 204, "{}", deleted.text());
        mcp_post(
            &url,
            Some(token),
            Some(&session),
            br#"{"jsonrpc":"2.0","id":4,"method":"ping"}"#,
        )
        .assert_problem(404, "not_found");

        let dir = tempfile::tempdir().unwrap();
        let entries = ledger::exported_entries(&server.database_url, "default", dir.path());
        let text = serde_json::to_string(&entries).unwrap();
        assert!(!text.contains(SECRET) && !text.contains("upstream-secret-two"));
        for kind in ["route.created", "route.credential_rotated", "route.deleted"] {
            assert_eq!(ledger::of_type(&entries, kind).len(), 1, "{kind}");
        }
        ledger::verify_db(&server.database_url, "default");
    });
}

#[test]
fn an_http_route_injects_the_key_signs_and_never_forwards_the_callers_token() {
    require_sdk();
    db::on_each_backend(|server| {
        let upstream = Upstream::start();
        create_route(
            server,
            &json!({"organizationId": "default", "id": "files", "prefix": "/files",
            "upstream": format!("http://127.0.0.1:{}/plain", upstream.port), "kind": "http",
            "credentialHeader": "x-upstream-key", "credential": SECRET}),
        )
        .expect(201);
        let issuer = tokens::create_issuer(
            &server.url,
            server.root(),
            "default",
            "http-tests",
            4,
            &["http:read"],
        );
        let issued = tokens::issue(
            &server.url,
            server.root(),
            &tokens::request("default", &issuer, "agent-2", 2, json!(["http:read"])),
        );
        let token = issued["token"].as_str().unwrap();
        let bearer = format!("Bearer {token}");

        // GET is allowed (http:read): forwarded below the base path with the query.
        let reply = request(
            "GET",
            &format!("{}/files/reports/q1?year=2026", server.url),
            &[("authorization", &bearer)],
            b"",
        );
        assert!(!reply.text().contains(SECRET) && reply.header("x-upstream-key").is_none());
        // The upstream (an MCP app, no /plain route) answered 404: relayed as it sent it.
        assert_eq!(reply.status, 404);
        assert!(
            !reply
                .header("content-type")
                .unwrap_or_default()
                .contains("problem"),
            "{}",
            reply.text()
        );
        let seen = upstream
            .requests()
            .pop()
            .expect("the GET reached the upstream");
        assert_eq!(
            (
                seen["method"].as_str(),
                seen["path"].as_str(),
                seen["query"].as_str()
            ),
            (Some("GET"), Some("/plain/reports/q1"), Some("year=2026"))
        );
        assert!(seen["headers"].get("authorization").is_none(), "{seen}");
        assert_eq!(seen["headers"]["x-upstream-key"], SECRET);
        let signer = support::http::get_as(
            &format!("{}{API}/gateway/signer", server.url),
            server.root(),
        )
        .expect(200);
        signed::assert_gateway_signed(&seen, &signer);

        // POST needs http:write: 403 with the decision, nothing forwarded.
        let count = upstream.requests().len();
        let denied = request(
            "POST",
            &format!("{}/files/reports", server.url),
            &[("authorization", &bearer)],
            b"{}",
        );
        denied.assert_problem(403, "forbidden");
        assert!(denied.header("x-sck-decision-id").is_some());
        assert_eq!(upstream.requests().len(), count);

        // An upstream that is gone: 502 problem+json, the call's outcome still ledgered.
        drop(upstream);
        request(
            "GET",
            &format!("{}/files/x", server.url),
            &[("authorization", &bearer)],
            b"",
        )
        .assert_problem(502, "upstream_unreachable");
        let dir = tempfile::tempdir().unwrap();
        let entries = ledger::exported_entries(&server.database_url, "default", dir.path());
        support::wait_until(Duration::from_secs(10), "the failed call's outcome", || {
            let entries = ledger::exported_entries(&server.database_url, "default", dir.path());
            ledger::of_type(&entries, "proxy.completed")
                .iter()
                .any(|o| o["body"]["error"] == "upstream_unreachable")
        });
        let decided: Vec<&str> = entries
            .iter()
            .filter(|e| e["body"]["call"]["route"] == "files")
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            decided,
            ["decision.allowed", "decision.denied", "decision.allowed"]
        );
    });
}

/// An upstream that accepts connections and then hangs (never answers) or resets them.
fn bad_upstream(hang: bool) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            if hang {
                held.push(stream);
            } else {
                // Closing with the rest of the request unread makes the kernel send a reset.
                let mut first = [0u8; 1];
                let _ = std::io::Read::read(&mut &stream, &mut first);
                drop(stream);
            }
        }
    });
    port
}

#[test]
fn an_upstream_that_hangs_or_resets_is_a_clear_error_and_ledgered() {
    for deployment in db::backends() {
        let server = deployment.replica_with_env(&[("SCK_PROXY__RESPONSE_TIMEOUT_SECS", "1")]);
        let issuer = tokens::create_issuer(
            &server.url,
            server.root(),
            "default",
            "faults",
            4,
            &["mcp:invoke", "mcp:read"],
        );
        let issued = tokens::issue(
            &server.url,
            server.root(),
            &tokens::request(
                "default",
                &issuer,
                "agent-3",
                2,
                json!(["mcp:invoke", "mcp:read"]),
            ),
        );
        let token = issued["token"].as_str().unwrap();
        for (id, hang, status, code) in [
            ("hangs", true, 504, "upstream_timeout"),
            ("resets", false, 502, "upstream_unreachable"),
        ] {
            let port = bad_upstream(hang);
            create_route(
                &server,
                &json!({"organizationId": "default", "id": id, "prefix": format!("/mcp/{id}"),
                "upstream": format!("http://127.0.0.1:{port}/mcp"), "kind": "mcp"}),
            )
            .expect(201);
            mcp_post(&format!("{}/mcp/{id}", server.url), Some(token), None,
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#)
                .assert_problem(status, code);
        }
        let dir = tempfile::tempdir().unwrap();
        support::wait_until(
            Duration::from_secs(10),
            "both failed calls' outcomes",
            || {
                let entries = ledger::exported_entries(&server.database_url, "default", dir.path());
                let errors: Vec<Value> = ledger::of_type(&entries, "proxy.completed")
                    .iter()
                    .map(|o| json!([o["body"]["route"], o["body"]["status"], o["body"]["error"]]))
                    .collect();
                errors
                    == [
                        json!(["hangs", 504, "upstream_timeout"]),
                        json!(["resets", 502, "upstream_unreachable"]),
                    ]
            },
        );
        ledger::verify_db(&server.database_url, "default");
    }
}
