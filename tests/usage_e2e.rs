//! Usage accounting of the enforcement point, on every backend: calls, denials, errors
//! (upstream 500, upstream gone), bytes each way (a 1 MiB streamed answer too) and the tokens
//! an upstream reports in the route's `usageHeader` (a malformed report counted, the call
//! unharmed), per route, subject and tool; `GET /api/v1/enforcement/usage` with its filters,
//! org isolation and refusals; counts that survive a restart and add up across replicas;
//! bounded metrics; and a quota policy on `input.usage` that lets exactly N tool calls of a
//! window through, the upstream seeing only those N.
//!
//! The upstream is Python's `http.server` (`tests/usage/upstream.py`), which counts what it
//! receives.

mod support;

use serde_json::{json, Value};
use support::counting_upstream::CountingUpstream as Upstream;
use support::http::{get, get_as, post_json, request, Reply, API};
use support::routes::call;
use support::server::Server;
use support::{db, metrics, orgs, release, tokens};

fn create_route(server: &Server, key: &str, body: Value) {
    post_json(&format!("{}{API}/routes", server.url), Some(key), &body).expect(201);
}

/// A LoA-2 token of `org` for `subject` with `scopes` (from a new issuer `name`).
fn token(server: &Server, org: &str, name: &str, subject: &str, scopes: &[&str]) -> String {
    tokens::token_of(&server.url, server.root(), org, name, subject, 2, scopes)
}

/// `GET /usage?query` with `key`.
fn usage(server: &Server, key: &str, query: &str) -> Reply {
    get_as(&format!("{}{API}/usage?{query}", server.url), key)
}

/// The report's row of `route` and `tool`.
fn row<'a>(report: &'a Value, route: &str, tool: &str) -> &'a Value {
    report["usage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == route && r["tool"] == tool)
        .unwrap_or_else(|| panic!("no row of {route}/{tool:?} in {report}"))
}

/// The counts of a row, without its key.
fn counts(row: &Value) -> Value {
    let mut counts = row.clone();
    for key in ["route", "subject", "tool"] {
        counts.as_object_mut().unwrap().remove(key);
    }
    counts
}

/// The `svc` route (HTTP, reporting tokens in `X-Usage-Tokens`) and `gone` (an upstream
/// nobody listens on) in the default org.
fn http_routes(server: &Server, upstream: &Upstream) {
    create_route(
        server,
        server.root(),
        json!({"organizationId": "default", "id": "svc", "prefix": "/svc",
               "upstream": upstream.base(), "kind": "http", "usageHeader": "X-Usage-Tokens"}),
    );
    create_route(
        server,
        server.root(),
        json!({"organizationId": "default", "id": "gone", "prefix": "/gone",
               "upstream": format!("http://127.0.0.1:{}/", support::free_port()), "kind": "http"}),
    );
}

#[test]
fn allowed_denied_and_failing_calls_are_counted_with_bytes_and_reported_tokens() {
    db::on_each_backend(|server| {
        let upstream = Upstream::start();
        http_routes(server, &upstream);
        let writer = token(
            server,
            "default",
            "usage",
            "agent:writer",
            &["http:read", "http:write"],
        );
        let body = br#"{"order":42}"#;
        call(server, &writer, "GET", "/svc/ok?tokens=123", b"").expect(200);
        assert_eq!(
            call(server, &writer, "POST", "/svc/ok?tokens=7", body).text(),
            r#"{"ok":true}"#
        );
        // A malformed report is counted; the call is answered as the upstream answered.
        let malformed = call(server, &writer, "GET", "/svc/ok?tokens=lots", b"");
        assert_eq!(
            (malformed.status, malformed.text().as_str()),
            (200, r#"{"ok":true}"#)
        );
        call(server, &writer, "GET", "/svc/fail", b"").expect(500);
        // DELETE needs LoA 3: denied, never forwarded, counted as a denied call.
        call(server, &writer, "DELETE", "/svc/ok", b"").assert_problem(403, "forbidden");
        let streamed = call(server, &writer, "GET", "/svc/stream", b"");
        assert_eq!((streamed.status, streamed.body.len()), (200, 1 << 20));
        call(server, &writer, "GET", "/gone/x", b"").assert_problem(502, "upstream_unreachable");
        assert_eq!(upstream.seen().get("DELETE /base/ok"), None);

        let report = usage(server, server.root(), "organizationId=default").expect(200);
        let svc = row(&report, "svc", "");
        assert_eq!(svc["subject"], "agent:writer");
        // The answers' bytes: 3 x {"ok":true} + {"error":"boom"} + the 1 MiB stream.
        assert_eq!(
            counts(svc),
            json!({"calls": 6, "denied": 1, "errors": 1, "requestBytes": body.len(),
                   "responseBytes": 3 * 11 + 16 + (1 << 20), "tokens": 130, "malformedReports": 1})
        );
        let gone = row(&report, "gone", "");
        assert_eq!(
            (&gone["calls"], &gone["errors"], &gone["responseBytes"]),
            (&json!(1), &json!(1), &json!(0))
        );

        // Filters: a route, a subject nobody is, a window that ended before the calls.
        let only = usage(server, server.root(), "organizationId=default&route=gone").expect(200);
        assert_eq!(only["usage"].as_array().unwrap().len(), 1, "{only}");
        let nobody = usage(
            server,
            server.root(),
            "organizationId=default&subject=agent:nobody",
        )
        .expect(200);
        assert_eq!(nobody["usage"], json!([]));
        let past = usage(
            server,
            server.root(),
            "organizationId=default&since=0&until=60",
        )
        .expect(200);
        assert_eq!(past["usage"], json!([]));

        // Metrics: org, route and tool labels, never the subject.
        let text = metrics::text(&server.url);
        let series = r#"sck_usage_calls_total{org="default",route="svc",tool=""}"#;
        assert_eq!(metrics::value(&text, series), Some(6.0), "{text}");
        let tokens = r#"sck_usage_tokens_total{org="default",route="svc",tool=""}"#;
        assert_eq!(metrics::value(&text, tokens), Some(130.0));
        assert!(!text.contains("agent:writer"));
    });
}

#[test]
fn usage_is_org_scoped_and_bad_queries_are_refused() {
    db::on_each_backend(|server| {
        let upstream = Upstream::start();
        http_routes(server, &upstream);
        orgs::create(&server.url, server.root(), "acme");
        let policies = release::Source::policies();
        release::release_source(&server.url, server.root(), "acme", "1.0.0", &policies);
        let acme_admin = orgs::credential(&server.url, server.root(), "acme", "admin");
        create_route(
            server,
            &acme_admin,
            json!({"organizationId": "acme", "id": "acme-svc", "prefix": "/acme",
                   "upstream": upstream.base(), "kind": "http"}),
        );
        let ours = token(server, "default", "usage", "agent:ours", &["http:read"]);
        let theirs = token(server, "acme", "usage-acme", "agent:theirs", &["http:read"]);
        call(server, &ours, "GET", "/svc/ok", b"").expect(200);
        call(server, &theirs, "GET", "/acme/ok", b"").expect(200);

        // Each org's admin key sees its own org's usage only; another org's is unknown.
        let acme = usage(server, &acme_admin, "").expect(200);
        assert_eq!(acme["organizationId"], "acme");
        assert_eq!(acme["usage"].as_array().unwrap().len(), 1, "{acme}");
        assert_eq!(row(&acme, "acme-svc", "")["subject"], "agent:theirs");
        usage(server, &acme_admin, "organizationId=default").assert_problem(404, "not_found");
        let default = usage(server, server.root(), "organizationId=default").expect(200);
        assert!(!default.to_string().contains("agent:theirs"), "{default}");

        // Refusals: precise codes, and they count nothing.
        let root = server.root();
        usage(server, root, "").assert_problem(400, "invalid_request");
        for query in [
            "since=soon",
            "until=-",
            "bogus=1",
            &format!("subject={}", "s".repeat(257)),
        ] {
            usage(server, root, &format!("organizationId=default&{query}"))
                .assert_problem(400, "invalid_request");
        }
        for query in ["since=100&until=50", "since=70&until=65", "since=-5"] {
            usage(server, root, &format!("organizationId=default&{query}"))
                .assert_problem(400, "invalid_window");
        }
        usage(server, root, "organizationId=nowhere").assert_problem(404, "not_found");
        get(&format!("{}{API}/usage", server.url), &[]).assert_problem(401, "unauthorized");
        let again = usage(server, root, "organizationId=default").expect(200);
        assert_eq!(again["usage"], default["usage"]);
    });
}

#[test]
fn persisted_counts_survive_a_restart_and_add_up_across_replicas() {
    for deployment in db::backends() {
        let upstream = Upstream::start();
        // No periodic flush: what persists is what each replica writes at shutdown.
        let env = [("SCK_PROXY__USAGE_FLUSH_SECS", "3600")];
        let first = deployment.replica_with_env(&env);
        http_routes(&first, &upstream);
        let reader = token(&first, "default", "usage", "agent:reader", &["http:read"]);
        let second = deployment.replica_with_env(&env);
        for server in [&first, &second, &second] {
            call(server, &reader, "GET", "/svc/ok?tokens=5", b"").expect(200);
        }
        let root = first.root_key.clone().unwrap();
        // The second replica's counts are not written yet: the first sees its own.
        let own = usage(&first, &root, "organizationId=default").expect(200);
        assert_eq!(row(&own, "svc", "")["calls"], 1, "{own}");
        assert_eq!(second.stop().code(), Some(0));
        let both = usage(&first, &root, "organizationId=default").expect(200);
        assert_eq!(counts(row(&both, "svc", ""))["calls"], 3, "{both}");
        assert_eq!(row(&both, "svc", "")["tokens"], 15);
        call(&first, &reader, "GET", "/svc/fail", b"").expect(500);
        assert_eq!(first.stop().code(), Some(0));

        let restarted = deployment.replica_with_env(&env);
        let after = usage(&restarted, &root, "organizationId=default").expect(200);
        assert_eq!(
            counts(row(&after, "svc", "")),
            json!({"calls": 4, "denied": 0, "errors": 1, "requestBytes": 0,
                   "responseBytes": 3 * 11 + 16, "tokens": 15, "malformedReports": 0})
        );
    }
}

/// The default policy plus a quota: at most 3 calls of one tool per subject and window.
fn quota_policy() -> release::Source {
    let mut files = release::policy_files();
    files.insert(
        "sck/gateway/quota.rego".into(),
        json!("package sck.gateway\n\nimport rego.v1\n\ndeny contains \"quota_exceeded\" if input.usage.tool_calls >= 3\n"),
    );
    release::Source::from(files)
}

/// A `tools/call` of `tool` on the `tools` route: the JSON-RPC answer.
fn tool_call(server: &Server, token: &str, tool: &str) -> Value {
    mcp_request(
        server,
        token,
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": tool, "arguments": {}}}),
    )
}

/// A JSON-RPC request on the `tools` route: the answer.
fn mcp_request(server: &Server, token: &str, body: Value) -> Value {
    let bearer = format!("Bearer {token}");
    request(
        "POST",
        &format!("{}/mcp/tools", server.url),
        &[
            ("authorization", &bearer),
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ],
        body.to_string().as_bytes(),
    )
    .expect(200)
}

#[test]
fn a_quota_policy_on_input_usage_lets_exactly_n_calls_of_a_window_through() {
    for deployment in db::backends() {
        // A day-long window, so no window ends during the test; two tool names get a label.
        let server = deployment.replica_with_env(&[
            ("SCK_PROXY__USAGE_WINDOW_SECS", "86400"),
            ("SCK_PROXY__USAGE_TOOL_LABELS", "2"),
        ]);
        let upstream = Upstream::start();
        create_route(
            &server,
            server.root(),
            json!({"organizationId": "default", "id": "tools", "prefix": "/mcp/tools",
                   "upstream": format!("{}/mcp", upstream.base()), "kind": "mcp",
                   "usageHeader": "x-usage-tokens"}),
        );
        release::release_source(
            &server.url,
            server.root(),
            "default",
            "2.0.0",
            &quota_policy(),
        );
        let token = token(
            &server,
            "default",
            "quota",
            "agent:quota",
            &["mcp:invoke", "mcp:read"],
        );
        for _ in 0..3 {
            let answer = tool_call(&server, &token, "echo");
            assert_eq!(answer["result"]["content"][0]["text"], "done", "{answer}");
        }
        let refused = tool_call(&server, &token, "echo");
        assert_eq!(refused["error"]["code"], -32003, "{refused}");
        assert_eq!(
            refused["error"]["data"]["reasons"],
            json!(["quota_exceeded"])
        );
        // The quota is per tool: another tool still has its own three.
        tool_call(&server, &token, "add")["result"]
            .as_object()
            .expect("allowed");
        tool_call(&server, &token, "mul")["result"]
            .as_object()
            .expect("allowed");
        assert_eq!(
            upstream.seen()["tools"],
            json!(["echo", "echo", "echo", "add", "mul"])
        );
        // A listing shows each tool as its next call would be decided: echo is spent.
        let listed = mcp_request(
            &server,
            &token,
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        );
        let names: Vec<&Value> = listed["result"]["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .map(|t| &t["name"])
            .collect();
        assert_eq!(names, [&json!("add")], "{listed}");

        let report = usage(&server, server.root(), "organizationId=default&tool=echo").expect(200);
        assert_eq!(report["usage"].as_array().unwrap().len(), 1, "{report}");
        let echo = row(&report, "tools", "echo");
        assert_eq!(
            (&echo["calls"], &echo["denied"], &echo["tokens"]),
            (&json!(4), &json!(1), &json!(30))
        );
        // Tool labels are capped: the third tool name is counted as `other`.
        let text = metrics::text(&server.url);
        for (tool, n) in [("echo", 4.0), ("add", 1.0), ("other", 1.0)] {
            let series =
                format!(r#"sck_usage_calls_total{{org="default",route="tools",tool="{tool}"}}"#);
            assert_eq!(metrics::value(&text, &series), Some(n), "{series}\n{text}");
        }
        assert!(!text.contains("tool=\"mul\""));
    }
}
