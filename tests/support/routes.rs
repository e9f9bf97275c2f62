//! The enforcement point's routes as the tests set them up.

use serde_json::json;

use super::http::{post_json, request, Reply, API};
use super::release;
use super::server::Server;
use super::tokens;

/// A `forward_auth` route `reports` protecting `/reports` in the default org, and a token of
/// subject `agent-7` that may read (`http:read`) but not write; returns the token.
pub fn forward_auth_reader(server: &Server) -> String {
    post_json(
        &format!("{}{API}/routes", server.url),
        Some(server.root()),
        &json!({"organizationId": "default", "id": "reports", "prefix": "/reports",
                "kind": "forward_auth"}),
    )
    .expect(201);
    let issuer = tokens::create_issuer(
        &server.url,
        server.root(),
        "default",
        "fwd",
        4,
        &["http:read"],
    );
    let issued = tokens::issue(
        &server.url,
        server.root(),
        &tokens::request("default", &issuer, "agent-7", 2, json!(["http:read"])),
    );
    issued["token"].as_str().unwrap().to_owned()
}

/// Activates the default policy for the default org with `ans_id` an upstream caller of it
/// that may take `actions` (`data.sck.gateway.upstream.callers`), at `version`.
pub fn release_with_caller(server: &Server, version: &str, ans_id: &str, actions: &[&str]) {
    let mut files = release::policy_files();
    let data = files["sck/gateway/data.json"].as_str().unwrap();
    let mut data: serde_json::Value = serde_json::from_str(data).unwrap();
    data["upstream"]["callers"][ans_id] = json!({"org": "default", "actions": actions});
    files.insert("sck/gateway/data.json".into(), json!(data.to_string()));
    release::release_source(
        &server.url,
        server.root(),
        "default",
        version,
        &release::Source::from(files),
    );
}

/// `method path` with a JSON `body` on the server's routes, as a client holding `token`
/// sends it (accepting JSON or an SSE stream, as MCP clients do).
pub fn call(server: &Server, token: &str, method: &str, path: &str, body: &[u8]) -> Reply {
    let bearer = format!("Bearer {token}");
    request(
        method,
        &format!("{}{path}", server.url),
        &[
            ("authorization", &bearer),
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ],
        body,
    )
}
