//! Gateway tokens as their clients use them: an issuer, a token request and its issue (each
//! must succeed; a test expecting a refusal posts [`issue_reply`]), the one verification
//! route (`GET /tokens/current`), RFC 7662 introspection and RFC 7009 revocation, and tokens
//! forged with the server's own key file (its data directory's `token-keys/`), for the checks
//! a leaked key must still meet.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::http::{get_as, post_json, Reply, API};

/// Creates issuer `name` for `org`, allowed LoA up to `loa_ceiling` and `scopes`; its id.
pub fn create_issuer(
    url: &str,
    key: &str,
    org: &str,
    name: &str,
    loa_ceiling: u64,
    scopes: &[&str],
) -> String {
    post_json(
        &format!("{url}{API}/tokens/issuers"),
        Some(key),
        &json!({"organizationId": org, "name": name, "loaCeiling": loa_ceiling, "scopes": scopes}),
    )
    .expect(201)["id"]
        .as_str()
        .expect("an issuer id")
        .to_owned()
}

/// The token of `subject` (also its artifact) at `loa` with `scopes`, from a new issuer
/// `name` of `org` that may grant them (LoA ceiling 4).
pub fn token_of(
    url: &str,
    key: &str,
    org: &str,
    name: &str,
    subject: &str,
    loa: u64,
    scopes: &[&str],
) -> String {
    let issuer = create_issuer(url, key, org, name, 4, scopes);
    issue(
        url,
        key,
        &request(org, &issuer, subject, loa, json!(scopes)),
    )["token"]
        .as_str()
        .expect("a token")
        .to_owned()
}

/// A token request of `org`'s `issuer` at `loa` for `scope` (a JSON array), for artifact
/// `artifact` (an `agent`); add `subject`, `ttlSeconds` or change fields with [`super::http::merged`].
pub fn request(org: &str, issuer: &str, artifact: &str, loa: u64, scope: Value) -> Value {
    json!({"organizationId": org, "artifactId": artifact, "artifactType": "agent",
           "loaLevel": loa, "scope": scope, "issuerId": issuer})
}

/// `POST /tokens/issue` with `request`, answered.
pub fn issue_reply(url: &str, key: &str, request: &Value) -> Reply {
    post_json(&format!("{url}{API}/tokens/issue"), Some(key), request)
}

/// Issues `request`: the answer (`token`, `tokenId`, `keyId`, ...).
pub fn issue(url: &str, key: &str, request: &Value) -> Value {
    issue_reply(url, key, request).expect(201)
}

/// `GET /tokens/current` with a bearer gateway token: the one verification function.
pub fn current(url: &str, token: &str) -> Reply {
    get_as(&format!("{url}{API}/tokens/current"), token)
}

/// RFC 7662 introspection of `token` (a JSON body), which must answer 200.
pub fn introspect(url: &str, key: &str, token: &str) -> Value {
    post_json(
        &format!("{url}{API}/tokens/introspect"),
        Some(key),
        &json!({"token": token}),
    )
    .expect(200)
}

/// RFC 7009 revocation with `request` (`token` or `tokenId`, and `organizationId`), answered.
pub fn revoke(url: &str, key: &str, request: &Value) -> Reply {
    post_json(&format!("{url}{API}/tokens/revoke"), Some(key), request)
}

/// Part `index` of a JWT (0: header, 1: claims), decoded.
pub fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("a JWT part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// The header sck issues tokens with: EdDSA, `typ: at+jwt`, key id `kid`.
pub fn ed_header(kid: &str) -> Header {
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some("at+jwt".into());
    header.kid = Some(kid.into());
    header
}

/// `claims` under `header`, signed with the Ed25519 key file `kid` of the server whose data
/// directory is `data_dir` (a leaked key, as an attacker would use it).
pub fn forge(data_dir: &Path, kid: &str, header: &Header, claims: &Value) -> String {
    let pem = std::fs::read(data_dir.join("token-keys").join(format!("{kid}.pem"))).unwrap();
    jsonwebtoken::encode(header, claims, &EncodingKey::from_ed_pem(&pem).unwrap()).unwrap()
}

/// `POST /decide` of `request` with gateway token `token`, answered.
pub fn decide(url: &str, token: &str, request: &Value) -> Reply {
    post_json(&format!("{url}{API}/decide"), Some(token), request)
}
