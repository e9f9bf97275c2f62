//! The enforcement point's routes as the tests set them up.

use serde_json::json;

use super::http::{post_json, API};
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
