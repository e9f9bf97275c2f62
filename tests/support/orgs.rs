//! Orgs and their credentials, created over the API with an admin key as an operator creates
//! them (each call must succeed).

use serde_json::json;

use super::http::{post_json, API};

/// Creates org `org` with admin key `key`.
pub fn create(url: &str, key: &str, org: &str) {
    post_json(
        &format!("{url}{API}/orgs"),
        Some(key),
        &json!({"organizationId": org}),
    )
    .expect(201);
}

/// A new credential of `kind` (`admin` or `sidecar`) for `org`: its secret.
pub fn credential(url: &str, key: &str, org: &str, kind: &str) -> String {
    post_json(
        &format!("{url}{API}/credentials"),
        Some(key),
        &json!({"organizationId": org, "kind": kind}),
    )
    .expect(201)["secret"]
        .as_str()
        .expect("a secret")
        .to_owned()
}
