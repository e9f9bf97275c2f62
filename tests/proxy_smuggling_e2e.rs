//! Request smuggling through an `http` route, with raw bytes on the socket: ambiguous framing
//! (two different `Content-Length`s, a `Transfer-Encoding` that is not chunked, a space before
//! the colon) is refused before anything is decided or forwarded; `Content-Length` together
//! with `Transfer-Encoding` is read by the transfer coding alone and the connection closed after
//! its answer (RFC 9112 §6.1, hyper's behaviour), so the bytes after it are never a second
//! request; and a body that holds a request is forwarded as one request's bytes, re-framed by
//! sck. Bodies over `[http] max_body_bytes` on `http` and `mcp` routes are 413 before any
//! decision. The upstream (Python's `http.server`, counting what it receives) never sees a
//! request sck did not decide.

mod support;

use serde_json::{json, Value};
use support::counting_upstream::CountingUpstream;
use support::http::{exchange_raw, parse_response, post_json, post_oversized, API};
use support::server::Server;
use support::{ledger, tokens};

/// A raw request to the route: `method` `path`, the gateway token, `framing` header lines
/// (with `Connection: close` where the server would otherwise keep the connection), then
/// `body`.
fn raw(
    server: &Server,
    method: &str,
    path: &str,
    token: &str,
    framing: &str,
    body: &str,
) -> Vec<u8> {
    let authority = server.url.trim_start_matches("http://");
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\n\
         {framing}\r\n{body}"
    )
    .into_bytes()
}

/// The one answer on a connection the server closed after it.
fn one_answer(answer: &[u8]) -> support::http::Reply {
    assert_eq!(
        String::from_utf8_lossy(answer).matches("HTTP/1.1 ").count(),
        1,
        "one answer on the connection"
    );
    parse_response(answer)
}

/// The upstream's counts without its `tools` list.
fn counts(upstream: &CountingUpstream) -> Value {
    let mut seen = upstream.seen();
    seen.as_object_mut().unwrap().remove("tools");
    seen
}

#[test]
fn ambiguous_framing_is_refused_and_a_smuggled_request_never_reaches_the_upstream() {
    let server = Server::start();
    let upstream = CountingUpstream::start();
    post_json(
        &format!("{}{API}/routes", server.url),
        Some(server.root()),
        &json!({"organizationId": "default", "id": "svc", "prefix": "/svc", "kind": "http",
                "upstream": upstream.base()}),
    )
    .expect(201);
    let token = &tokens::token_of(
        &server.url,
        server.root(),
        "default",
        "smuggle",
        "agent-s",
        2,
        &["http:write"],
    );
    let authority = server.url.trim_start_matches("http://").to_owned();
    let hidden = "GET /svc/admin HTTP/1.1\r\nHost: x\r\n\r\n";

    // Framing a server and the upstream could read two ways: refused, nothing decided or sent.
    let ledgered = ledger::size(&server.url, server.root(), "default");
    for (framing, body) in [
        (
            "Content-Length: 4\r\nContent-Length: 40\r\n",
            format!("abcd{hidden}"),
        ),
        (
            "Transfer-Encoding: chunked, identity\r\n",
            format!("0\r\n\r\n{hidden}"),
        ),
        (
            "Transfer-Encoding: xchunked\r\n",
            format!("0\r\n\r\n{hidden}"),
        ),
        ("Content-Length : 4\r\n", format!("abcd{hidden}")),
    ] {
        let reply = parse_response(&exchange_raw(
            &authority,
            &raw(&server, "POST", "/svc/ok", token, framing, &body),
        ));
        assert_eq!(reply.status, 400, "{framing:?}: {}", reply.text());
    }
    assert_eq!(counts(&upstream), json!({}), "nothing reached the upstream");
    assert_eq!(
        ledger::size(&server.url, server.root(), "default"),
        ledgered,
        "nothing was decided"
    );

    // Both lengths: the transfer coding frames the body (empty here) and the connection is
    // closed after the one answer (no `Connection: close` asked for), so the request after
    // the body is never read.
    let answer = exchange_raw(
        &authority,
        &raw(
            &server,
            "POST",
            "/svc/ok",
            token,
            "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
            &format!("0\r\n\r\n{hidden}"),
        ),
    );
    assert_eq!(one_answer(&answer).status, 200);
    assert_eq!(counts(&upstream), json!({"POST /base/ok": 1}));

    // A well-framed body that holds a request: one decided POST, forwarded as bytes with
    // framing sck set (chunked in, Content-Length out), and no second request upstream.
    let chunk = format!("{:x}\r\n{hidden}\r\n0\r\n\r\n", hidden.len());
    let answer = exchange_raw(
        &authority,
        &raw(
            &server,
            "POST",
            "/svc/ok",
            token,
            "Transfer-Encoding: chunked\r\nConnection: close\r\n",
            &chunk,
        ),
    );
    let reply = one_answer(&answer);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(counts(&upstream), json!({"POST /base/ok": 2}));
}

#[test]
fn bodies_over_the_limit_are_413_and_never_forwarded_on_http_and_mcp_routes() {
    let server = Server::start_with_env(&[("SCK_HTTP__MAX_BODY_BYTES", "4096")]);
    let upstream = CountingUpstream::start();
    for (id, kind) in [("svc", "http"), ("tools", "mcp")] {
        post_json(
            &format!("{}{API}/routes", server.url),
            Some(server.root()),
            &json!({"organizationId": "default", "id": id, "prefix": format!("/{id}"),
                    "kind": kind, "upstream": upstream.base()}),
        )
        .expect(201);
    }
    let token = tokens::token_of(
        &server.url,
        server.root(),
        "default",
        "big",
        "agent-b",
        3,
        &["http:write", "mcp:*"],
    );
    let bearer = format!("Bearer {token}");
    let ledgered = ledger::size(&server.url, server.root(), "default");
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "echo", "arguments": {"text": "x".repeat(8192)}}});
    for (path, body) in [
        ("/svc/ok", vec![b'x'; 8192]),
        ("/tools/mcp", serde_json::to_vec(&call).unwrap()),
    ] {
        let reply = post_oversized(
            &format!("{}{path}", server.url),
            &[
                ("authorization", &bearer),
                ("content-type", "application/json"),
                ("accept", "application/json, text/event-stream"),
            ],
            &body,
        );
        reply.assert_problem(413, "payload_too_large");
    }
    assert_eq!(counts(&upstream), json!({}), "nothing reached the upstream");
    assert_eq!(
        ledger::size(&server.url, server.root(), "default"),
        ledgered,
        "nothing was decided"
    );
}
