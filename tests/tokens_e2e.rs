//! End-to-end tests of gateway tokens against the real `sck serve`: issuing with LoA and every
//! refusal's `code`, each verification refusal's `code` (forged tokens signed here with the
//! server's own key file or fresh keys), RFC 7662 introspection (JSON and form; the exact
//! inactive shape), RFC 7009 revocation (200 for unknown tokens), key rotation, HS256, PyJWT
//! interoperability against the served JWKS, revocations surviving a restart, and revocation on
//! replica A refused on replica B within a second (PostgreSQL).

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use support::db::{self, Deployment};
use support::http::{get, get_as, merged, post_json, post_raw, API};
use support::server::Server;
use support::tokens::{current, ed_header, forge, introspect, issue_reply, jwt_part, revoke};
use support::{cli, ledger, metrics, orgs, sidecar, tokens, unix_now as now};

const AUDIENCE: &str = "urn:sck:enforcement";

/// Creates issuer `name` of `org` with LoA ceiling `ceiling` and this file's scopes; its id.
fn create_issuer(server: &Server, key: &str, org: &str, name: &str, ceiling: u64) -> String {
    tokens::create_issuer(
        &server.url,
        key,
        org,
        name,
        ceiling,
        &["mcp:invoke", "tools:read"],
    )
}

/// Issues an `mcp:invoke` token at `loa` to artifact `agent-7` (an `mcp-client`) of the default
/// org; the answer.
fn issue(server: &Server, key: &str, issuer: &str, loa: u64) -> Value {
    let request = tokens::request("default", issuer, "agent-7", loa, json!(["mcp:invoke"]));
    tokens::issue(
        &server.url,
        key,
        &merged(&request, json!({"artifactType": "mcp-client"})),
    )
}

#[test]
fn issue_introspect_revoke_with_levels_of_assurance() {
    let server = Server::start();
    let key = server.root();
    let issuer = create_issuer(&server, key, "default", "portal", 3);
    let issued = issue(&server, key, &issuer, 3);
    let token = issued["token"].as_str().unwrap();
    assert_eq!(issued["loaLevel"], 3);
    assert_eq!(issued["acr"], "urn:sck:loa:3");
    assert_eq!(issued["expiresIn"], 900, "default TTL is 15 minutes");

    // RFC 9068 header and claims.
    let header = jwt_part(token, 0);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "at+jwt");
    let claims = jwt_part(token, 1);
    for claim in [
        "iss",
        "sub",
        "aud",
        "jti",
        "iat",
        "nbf",
        "exp",
        "org",
        "loa",
        "acr",
        "scope",
        "artifact_id",
        "artifact_type",
        "client_id",
    ] {
        assert!(
            claims.get(claim).is_some(),
            "claim {claim} missing: {claims}"
        );
    }
    assert_eq!(
        claims["scope"], "mcp:invoke",
        "scope is a space-separated string"
    );
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert_eq!(claims["aud"], AUDIENCE);

    // The kid is served in the JWKS as an RFC 7638 thumbprint.
    let jwks = get(&format!("{}/.well-known/jwks.json", server.url), &[]).json();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(kids.contains(&header["kid"].as_str().unwrap()), "{jwks}");
    assert_eq!(kids.len(), 2, "active and next keys are published: {jwks}");
    for jwk in jwks["keys"].as_array().unwrap() {
        assert_eq!(jwk["kty"], "OKP");
        assert_eq!(jwk["crv"], "Ed25519");
        assert!(jwk.get("d").is_none(), "no private part in the JWKS");
    }

    // The policy input view.
    let seen = current(&server.url, token);
    assert_eq!(seen.status, 200, "{}", seen.text());
    let seen = seen.json();
    assert_eq!(seen["loa"], 3);
    assert_eq!(seen["scope"], json!(["mcp:invoke"]));
    assert_eq!(seen["org"], "default");
    assert_eq!(seen["artifact_id"], "agent-7");
    assert_eq!(seen["sub"], "agent-7");

    // RFC 7662 introspection (JSON and form bodies).
    let active = introspect(&server.url, key, token);
    assert_eq!(active["active"], true);
    assert_eq!(active["loa"], 3);
    assert_eq!(active["acr"], "urn:sck:loa:3");
    assert_eq!(active["scope"], "mcp:invoke");
    assert_eq!(active["org"], "default");
    assert_eq!(active["artifact_type"], "mcp-client");
    assert_eq!(active["jti"], issued["tokenId"]);
    let form = post_raw(
        &format!("{}{API}/tokens/introspect", server.url),
        Some(key),
        "application/x-www-form-urlencoded",
        format!("token={token}&token_type_hint=access_token").as_bytes(),
    );
    assert_eq!(form.status, 200, "{}", form.text());
    assert_eq!(form.json()["active"], true);
    // Introspection needs an admin key.
    let anonymous = post_json(
        &format!("{}{API}/tokens/introspect", server.url),
        None,
        &json!({"token": token}),
    );
    assert_eq!(anonymous.status, 401);

    // Malformed tokens: exactly {"active": false}.
    for junk in ["", "x", "a.b.c", &token[..token.len() - 3]] {
        assert_eq!(
            introspect(&server.url, key, junk),
            json!({"active": false}),
            "{junk:?}"
        );
    }

    // RFC 7009: 200 for unknown tokens and ids, then a real revocation.
    for request in [
        json!({"token": "not-a-token"}),
        json!({"tokenId": "no-such-id", "organizationId": "default"}),
    ] {
        let reply = revoke(&server.url, key, &request);
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let reply = revoke(
        &server.url,
        key,
        &json!({"token": token, "organizationId": "default"}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        introspect(&server.url, key, token),
        json!({"active": false})
    );
    let refused = current(&server.url, token);
    assert_eq!(refused.status, 401);
    assert_eq!(refused.code(), "token_revoked");
    // Revoking again is still 200.
    assert_eq!(
        revoke(&server.url, key, &json!({"token": token})).status,
        200
    );

    // By id, with a form body.
    let second = issue(&server, key, &issuer, 2);
    let second_token = second["token"].as_str().unwrap();
    assert_eq!(current(&server.url, second_token).status, 200);
    let form = post_raw(
        &format!("{}{API}/tokens/revoke", server.url),
        Some(key),
        "application/x-www-form-urlencoded",
        format!("token_id={}", second["tokenId"].as_str().unwrap()).as_bytes(),
    );
    assert_eq!(form.status, 200, "{}", form.text());
    assert_eq!(current(&server.url, second_token).code(), "token_revoked");

    // The ledger and database hold the token's hash and jti, never the token or a private key.
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(&server.data_dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("sck.db")
        {
            stored.extend(std::fs::read(&path).unwrap());
        }
    }
    let stored = String::from_utf8_lossy(&stored);
    assert!(!stored.contains(token), "a token was stored");
    assert!(!stored.contains("PRIVATE KEY"), "a private key was stored");
    assert!(stored.contains(issued["tokenId"].as_str().unwrap()));
    assert!(
        stored.contains(&hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            token.as_bytes()
        )))
    );
    assert!(stored.contains("token.issued") && stored.contains("token.revoked"));
}

#[test]
fn issue_refusals_have_codes() {
    let server = Server::start();
    let key = server.root();
    let issuer = create_issuer(&server, key, "default", "portal", 2);
    let base = json!({"organizationId": "default", "artifactId": "a", "artifactType": "t",
                      "loaLevel": 2, "scope": ["mcp:invoke"], "issuerId": issuer});
    let with = |patch: Value| merged(&base, patch);
    let cases = [
        (with(json!({"loaLevel": 3})), 403, "loa_above_ceiling"),
        (
            with(json!({"scope": ["mcp:invoke", "admin:all"]})),
            403,
            "scope_not_allowed",
        ),
        (with(json!({"ttlSeconds": 3601})), 403, "ttl_above_maximum"),
        (with(json!({"loaLevel": 5})), 400, "invalid_request"),
        (with(json!({"loaLevel": 0})), 400, "invalid_request"),
        (with(json!({"scope": []})), 400, "invalid_request"),
        (
            with(json!({"scope": ["two words"]})),
            400,
            "invalid_request",
        ),
        (with(json!({"ttlSeconds": 0})), 400, "invalid_request"),
        (with(json!({"artifactId": ""})), 400, "invalid_request"),
        (
            with(json!({"issuerId": "iss_nope"})),
            404,
            "issuer_not_found",
        ),
        (with(json!({"extra": 1})), 400, "invalid_json"),
    ];
    for (request, status, code) in cases {
        let reply = issue_reply(&server.url, key, &request);
        assert_eq!(
            (reply.status, reply.code()),
            (status, code.to_owned()),
            "{request}: {}",
            reply.text()
        );
    }
    assert_eq!(issue_reply(&server.url, key, &base).status, 201);

    // Per-org maximum TTL.
    let set = post_json(
        &format!("{}{API}/tokens/settings", server.url),
        Some(key),
        &json!({"organizationId": "default", "maxTtlSeconds": 600}),
    );
    assert_eq!(set.status, 200, "{}", set.text());
    assert_eq!(set.json()["defaultTtlSeconds"], 600);
    let reply = issue_reply(&server.url, key, &with(json!({"ttlSeconds": 601})));
    assert_eq!(reply.code(), "ttl_above_maximum");
    assert_eq!(
        issue_reply(&server.url, key, &with(json!({"ttlSeconds": 600}))).status,
        201
    );

    // Another org: its admin key may not issue for "default", nor use default's issuer.
    orgs::create(&server.url, key, "acme");
    let acme_key = orgs::credential(&server.url, key, "acme", "admin");
    let reply = issue_reply(&server.url, &acme_key, &base);
    reply.assert_problem(403, "forbidden");
    let reply = issue_reply(
        &server.url,
        &acme_key,
        &with(json!({"organizationId": "acme"})),
    );
    reply.assert_problem(404, "issuer_not_found");
    let reply = issue_reply(&server.url, "sck_admin_wrong", &base);
    reply.assert_problem(401, "unauthorized");

    // An org key sees its own issuers only, and another org's tokens as inactive.
    let listed = get_as(&format!("{}{API}/tokens/issuers", server.url), &acme_key);
    assert_eq!(listed.json()["issuers"], json!([]));
    let token = issue_reply(&server.url, key, &base).json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        introspect(&server.url, &acme_key, &token),
        json!({"active": false})
    );
    assert_eq!(introspect(&server.url, key, &token)["active"], true);
    // ... and cannot revoke it (200, but nothing happens).
    assert_eq!(
        revoke(&server.url, &acme_key, &json!({"token": token})).status,
        200
    );
    assert_eq!(current(&server.url, &token).status, 200);
    let reply = revoke(
        &server.url,
        &acme_key,
        &json!({"token": token, "organizationId": "default"}),
    );
    assert_eq!(reply.code(), "forbidden");

    // Issuer refusals.
    let reply = post_json(
        &format!("{}{API}/tokens/issuers", server.url),
        Some(key),
        &json!({"organizationId": "default", "name": "hs", "loaCeiling": 2, "scopes": ["a"], "algorithm": "HS256"}),
    );
    assert_eq!(reply.code(), "hs256_not_configured");
    let reply = post_json(
        &format!("{}{API}/tokens/issuers", server.url),
        Some(key),
        &json!({"organizationId": "default", "name": "portal", "loaCeiling": 2, "scopes": ["a"]}),
    );
    assert_eq!(reply.code(), "issuer_exists");
}

#[test]
fn verification_refusals_have_codes() {
    let server = Server::start();
    let key = server.root();
    let issuer = create_issuer(&server, key, "default", "portal", 4);
    let issued = issue(&server, key, &issuer, 4);
    let token = issued["token"].as_str().unwrap();
    let kid = issued["keyId"].as_str().unwrap();
    let claims = jwt_part(token, 1);
    let t = now();
    let with = |patch: Value| merged(&claims, patch);
    // A correctly forged token verifies (so each case below fails for its one reason).
    let fresh = forge(
        &server.data_dir,
        kid,
        &ed_header(kid),
        &with(json!({"jti": "forged-ok"})),
    );
    assert_eq!(
        current(&server.url, &fresh).status,
        200,
        "{}",
        current(&server.url, &fresh).text()
    );

    let mut jwt_typ = ed_header(kid);
    jwt_typ.typ = Some("JWT".into());
    let mut no_typ = ed_header(kid);
    no_typ.typ = None;
    let mut unknown_kid = ed_header(kid);
    unknown_kid.kid = Some("not-a-key".into());
    let mut no_kid = ed_header(kid);
    no_kid.kid = None;

    // alg none: header and claims as an attacker would send them.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "at+jwt", "kid": kid}).to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    // HS256 "signed" with the server's public key (algorithm confusion), with the key's kid.
    let jwks = get(&format!("{}/.well-known/jwks.json", server.url), &[]).json();
    let x = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap()["x"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.typ = Some("at+jwt".into());
    hs_header.kid = Some(kid.into());
    let mut confusion = Vec::new();
    for secret in [
        URL_SAFE_NO_PAD.decode(&x).unwrap(),
        x.as_bytes().to_vec(),
        jwks.to_string().into_bytes(),
    ] {
        confusion.push(
            jsonwebtoken::encode(&hs_header, &claims, &EncodingKey::from_secret(&secret)).unwrap(),
        );
    }
    // A different Ed25519 key claiming the server's kid.
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let stranger_pem = {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        stranger.to_pkcs8_pem(Default::default()).unwrap()
    };
    let wrong_key = jsonwebtoken::encode(
        &ed_header(kid),
        &claims,
        &EncodingKey::from_ed_pem(stranger_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    // A tampered payload.
    let parts: Vec<&str> = token.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(with(json!({"loa": 4, "org": "acme"})).to_string()),
        parts[2]
    );

    let sign = |header: &Header, patch: Value| forge(&server.data_dir, kid, header, &with(patch));
    let mut cases: Vec<(String, &str, &str)> = vec![
        (none, "invalid_token", "alg none"),
        (wrong_key, "signature_mismatch", "another key under our kid"),
        (tampered, "signature_mismatch", "tampered claims"),
        ("garbage".into(), "invalid_token", "not a JWT"),
        ("a.b.c".into(), "invalid_token", "junk segments"),
        (sign(&jwt_typ, json!({})), "invalid_token_type", "typ JWT"),
        (sign(&no_typ, json!({})), "invalid_token_type", "no typ"),
        (sign(&unknown_kid, json!({})), "unknown_key", "unknown kid"),
        (sign(&no_kid, json!({})), "unknown_key", "no kid"),
        (
            sign(&ed_header(kid), json!({"iss": "https://evil.example"})),
            "invalid_issuer",
            "iss",
        ),
        (
            sign(&ed_header(kid), json!({"aud": "someone-else"})),
            "invalid_audience",
            "aud",
        ),
        (
            sign(
                &ed_header(kid),
                json!({"exp": t - 120, "nbf": t - 300, "iat": t - 300}),
            ),
            "token_expired",
            "exp",
        ),
        (
            sign(&ed_header(kid), json!({"nbf": t + 120})),
            "token_not_yet_valid",
            "nbf",
        ),
        (
            sign(&ed_header(kid), json!({"loa": 5, "acr": "urn:sck:loa:5"})),
            "invalid_token",
            "loa 5",
        ),
        (
            sign(&ed_header(kid), json!({"acr": "urn:sck:loa:1"})),
            "invalid_token",
            "acr disagrees",
        ),
        (
            sign(&ed_header(kid), json!({"jti": null})),
            "invalid_token",
            "no jti",
        ),
    ];
    for forged in confusion {
        cases.push((forged, "algorithm_mismatch", "HS256 with the public key"));
    }
    for (forged, code, why) in cases {
        let reply = current(&server.url, &forged);
        assert_eq!(
            (reply.status, reply.code()),
            (401, code.to_owned()),
            "{why}: {}",
            reply.text()
        );
        assert_eq!(
            introspect(&server.url, key, &forged),
            json!({"active": false}),
            "{why}"
        );
    }
    // Within the leeway (5 s) an expiry is tolerated; the cache never outlives exp.
    let nearly = sign(
        &ed_header(kid),
        json!({"exp": t - 2, "iat": t - 60, "nbf": t - 60, "jti": "nearly"}),
    );
    assert_eq!(current(&server.url, &nearly).status, 200);
    // Missing and malformed Authorization headers.
    let reply = get(&format!("{}{API}/tokens/current", server.url), &[]);
    reply.assert_problem(401, "unauthorized");
    let reply = get(
        &format!("{}{API}/tokens/current", server.url),
        &[("Authorization", "Basic abc")],
    );
    reply.assert_problem(401, "invalid_token");
}

/// Defence in depth for a leaked key file: a token signed with sck's own key is refused, with
/// its code, unless sck could have issued it — no `crit` header, a known issuer of its org,
/// within the issuer's LoA ceiling and scopes, `iat` not in the future, a lifetime within the
/// org's maximum TTL (which applies to cached tokens at once when lowered), and the text
/// claims issuing requires.
#[test]
fn tokens_sck_could_not_have_issued_are_refused() {
    db::on_each_backend(|server| {
        let key = server.root();
        let issuer = create_issuer(server, key, "default", "low", 2);
        let issued = issue(server, key, &issuer, 2);
        let kid = issued["keyId"].as_str().unwrap();
        let claims = jwt_part(issued["token"].as_str().unwrap(), 1);
        orgs::create(&server.url, key, "acme");
        let foreign = create_issuer(server, key, "acme", "theirs", 4);
        let t = now();
        let forged = |header: &Header, patch: Value| {
            let fresh = merged(&claims, json!({"jti": uuid::Uuid::new_v4().to_string()}));
            forge(&server.data_dir, kid, header, &merged(&fresh, patch))
        };
        // A forgery that changes nothing verifies, so each case fails for its one reason.
        let plain = forged(&ed_header(kid), json!({}));
        assert_eq!(
            current(&server.url, &plain).status,
            200,
            "{}",
            current(&server.url, &plain).text()
        );

        let mut crit = ed_header(kid);
        crit.crit = Some(vec!["exp".into()]);
        let mut crit_empty = ed_header(kid);
        crit_empty.crit = Some(vec![]);
        let cases = [
            (
                forged(&crit, json!({})),
                "unsupported_critical_header",
                "crit",
            ),
            (
                forged(&crit_empty, json!({})),
                "unsupported_critical_header",
                "crit []",
            ),
            (
                forged(&ed_header(kid), json!({"exp": t + 10 * 365 * 86_400})),
                "ttl_above_maximum",
                "exp in ten years",
            ),
            (
                forged(&ed_header(kid), json!({"exp": t + 3601})),
                "ttl_above_maximum",
                "one second over the maximum TTL",
            ),
            (
                forged(&ed_header(kid), json!({"iat": t + 3600, "exp": t + 4000})),
                "issued_in_future",
                "iat in an hour",
            ),
            (
                forged(&ed_header(kid), json!({"loa": 3, "acr": "urn:sck:loa:3"})),
                "loa_above_ceiling",
                "loa 3 from a ceiling-2 issuer",
            ),
            (
                forged(&ed_header(kid), json!({"client_id": "iss_unknown"})),
                "unknown_client",
                "unknown client_id",
            ),
            (
                forged(&ed_header(kid), json!({"client_id": foreign})),
                "unknown_client",
                "another org's issuer",
            ),
            (
                forged(&ed_header(kid), json!({"scope": "mcp:invoke admin:all"})),
                "scope_not_allowed",
                "a scope outside the issuer's",
            ),
            (
                forged(&ed_header(kid), json!({"sub": ""})),
                "invalid_claim",
                "empty sub",
            ),
            (
                forged(&ed_header(kid), json!({"sub": "  "})),
                "invalid_claim",
                "blank sub",
            ),
            (
                forged(&ed_header(kid), json!({"sub": "a\u{1}b"})),
                "invalid_claim",
                "control character in sub",
            ),
            (
                forged(&ed_header(kid), json!({"artifact_id": ""})),
                "invalid_claim",
                "empty artifact_id",
            ),
        ];
        for (forged, code, why) in &cases {
            let reply = current(&server.url, forged);
            assert_eq!(
                (reply.status, reply.code()),
                (401, (*code).to_owned()),
                "{why}: {}",
                reply.text()
            );
            assert_eq!(
                introspect(&server.url, key, forged),
                json!({"active": false}),
                "{why}"
            );
        }
        let metrics = metrics::text(&server.url);
        for (_, code, _) in &cases {
            let series = format!("sck_token_verifications_total{{result=\"{code}\"}}");
            assert!(
                metrics::value(&metrics, &series).is_some_and(|n| n >= 1.0),
                "{series}"
            );
        }

        // Lowering the org's maximum TTL ends longer tokens at once, cached ones too.
        let long = issue(server, key, &issuer, 1);
        let long = long["token"].as_str().unwrap();
        assert_eq!(current(&server.url, long).status, 200);
        let lowered = post_json(
            &format!("{}{API}/tokens/settings", server.url),
            Some(key),
            &json!({"organizationId": "default", "maxTtlSeconds": 600, "defaultTtlSeconds": 300}),
        );
        assert_eq!(lowered.status, 200, "{}", lowered.text());
        let reply = current(&server.url, long);
        reply.assert_problem(401, "ttl_above_maximum");
        let short = issue(server, key, &issuer, 1);
        assert_eq!(
            current(&server.url, short["token"].as_str().unwrap()).status,
            200
        );
    });
}

fn rotate(server: &Server) -> Value {
    serde_json::from_str(&cli::succeeded(server.cli(&["keys", "rotate"]))).unwrap()
}

#[test]
fn rotation_keeps_retiring_keys_verifying() {
    let server = Server::start();
    let key = server.root();
    // Issuers through the CLI too.
    let out = cli::succeeded(server.cli(&[
        "issuer",
        "create",
        "--org",
        "default",
        "--name",
        "cli",
        "--loa-ceiling",
        "2",
        "--scope",
        "mcp:invoke",
    ]));
    let issuer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(issuer["loaCeiling"], 2);
    let out = server.cli(&["issuer", "list", "--org", "default"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"cli\""));
    let issuer = issuer["id"].as_str().unwrap();

    let before = issue(&server, key, issuer, 1);
    let keys_before = get(&format!("{}/.well-known/jwks.json", server.url), &[]).json();
    let rotation = rotate(&server);
    assert_eq!(rotation["retiring"], before["keyId"]);
    let after = issue(&server, key, issuer, 1);
    assert_eq!(after["keyId"], rotation["activated"]);
    assert_ne!(after["keyId"], before["keyId"]);
    // The key that became active had been published as `next` before the rotation.
    assert!(keys_before
        .to_string()
        .contains(rotation["activated"].as_str().unwrap()));
    // Both tokens verify: the old one under the retiring key.
    assert_eq!(
        current(&server.url, before["token"].as_str().unwrap()).status,
        200
    );
    assert_eq!(
        current(&server.url, after["token"].as_str().unwrap()).status,
        200
    );
    let jwks = get(&format!("{}/.well-known/jwks.json", server.url), &[]).json();
    assert_eq!(
        jwks["keys"].as_array().unwrap().len(),
        3,
        "next, active, retiring: {jwks}"
    );

    let out = server.cli(&["keys", "list"]);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let states: Vec<&str> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states.iter().filter(|s| **s == "retiring").count(),
        1,
        "{listed}"
    );
    // Org keys may not rotate.
    orgs::create(&server.url, key, "acme");
    let acme_key = orgs::credential(&server.url, key, "acme", "admin");
    let reply = post_json(
        &format!("{}{API}/tokens/keys/rotate", server.url),
        Some(&acme_key),
        &json!({}),
    );
    assert_eq!(reply.code(), "forbidden");
}

/// A body that is not `{}` (or `null`) rotates nothing: `400 invalid_json`, the keys and the
/// ledger as they were. No body, `null` or `{}` rotates.
#[test]
fn key_rotation_refuses_any_body_but_nothing_or_an_empty_object() {
    db::on_each_backend(|server| {
        let key = server.root();
        let url = format!("{}{API}/tokens/keys/rotate", server.url);
        let keys = || get_as(&format!("{}{API}/tokens/keys", server.url), key).json();
        let system_log = || ledger::size(&server.url, key, "default");
        let (keys_before, log_before) = (keys(), system_log());
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        let garbage: [&[u8]; 8] = [
            b"{",
            b"1e400",
            b"{\"a\": 1e400}",
            deep.as_bytes(),
            b"[]",
            b"\"x\"",
            b"{\"rotate\": false}",
            b"\xff\xfe",
        ];
        for sent in garbage {
            for content_type in ["application/json", "text/plain"] {
                let reply = post_raw(&url, Some(key), content_type, sent);
                assert_eq!(
                    (reply.status, reply.code()),
                    (400, "invalid_json".to_owned()),
                    "{}: {}",
                    String::from_utf8_lossy(sent),
                    reply.text()
                );
            }
        }
        assert_eq!(keys(), keys_before, "a refused rotation changed the keys");
        assert_eq!(system_log(), log_before, "a refused rotation was ledgered");
        for sent in [&b""[..], b"{}", b" { } ", b"null"] {
            let reply = post_raw(&url, Some(key), "application/json", sent);
            assert_eq!(reply.status, 200, "{}", reply.text());
        }
        assert_ne!(keys(), keys_before);
    });
}

#[test]
fn hs256_with_a_configured_secret() {
    let secret = "an-hs256-shared-secret-of-at-least-32-bytes";
    let server = Server::start_with_env(&[("SCK_TOKENS_HS256_SECRET", secret)]);
    let key = server.root();
    let reply = post_json(
        &format!("{}{API}/tokens/issuers", server.url),
        Some(key),
        &json!({"organizationId": "default", "name": "shared", "loaCeiling": 2,
                "scopes": ["mcp:invoke"], "algorithm": "HS256"}),
    );
    assert_eq!(reply.status, 201, "{}", reply.text());
    let issued = issue(&server, key, reply.json()["id"].as_str().unwrap(), 2);
    let token = issued["token"].as_str().unwrap();
    assert_eq!(jwt_part(token, 0)["alg"], "HS256");
    assert_eq!(current(&server.url, token).status, 200);
    // The secret's kid is not served, and nothing resembling the secret is.
    let jwks = get(&format!("{}/.well-known/jwks.json", server.url), &[]);
    assert!(!jwks.text().contains(issued["keyId"].as_str().unwrap()));
    assert!(!jwks.text().contains(&URL_SAFE_NO_PAD.encode(secret)));
    // An EdDSA-signed token claiming the HS256 kid is refused before any signature check.
    let claims = jwt_part(token, 1);
    let forged = forge(
        &server.data_dir,
        &active_kid(&server, key),
        &ed_header(issued["keyId"].as_str().unwrap()),
        &claims,
    );
    assert_eq!(current(&server.url, &forged).code(), "algorithm_mismatch");
}

fn active_kid(server: &Server, key: &str) -> String {
    let listed = get_as(&format!("{}{API}/tokens/keys", server.url), key).json();
    listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["state"] == "active")
        .unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn revocations_survive_a_restart() {
    let deployment = Deployment::sqlite();
    let server = deployment.replica();
    let key = server.root().to_owned();
    let issuer = create_issuer(&server, &key, "default", "portal", 2);
    let revoked = issue(&server, &key, &issuer, 2);
    let kept = issue(&server, &key, &issuer, 2);
    assert_eq!(
        revoke(&server.url, &key, &json!({"tokenId": revoked["tokenId"]})).status,
        200
    );
    assert!(server.stop().success());

    let again = deployment.replica();
    let refused = current(&again.url, revoked["token"].as_str().unwrap());
    assert_eq!(refused.code(), "token_revoked");
    assert_eq!(
        introspect(&again.url, &key, revoked["token"].as_str().unwrap()),
        json!({"active": false})
    );
    assert_eq!(
        current(&again.url, kept["token"].as_str().unwrap()).status,
        200
    );
}

#[test]
fn revocation_on_one_replica_is_enforced_by_another_within_a_second() {
    let Some(deployment) = Deployment::postgres() else {
        return;
    };
    let a = deployment.replica();
    let b = deployment.replica();
    let key = a.root();
    let issuer = create_issuer(&a, key, "default", "portal", 3);
    let issued = issue(&a, key, &issuer, 3);
    let token = issued["token"].as_str().unwrap();
    // B verifies (and caches) it.
    for _ in 0..3 {
        assert_eq!(current(&b.url, token).status, 200);
    }
    let reply = revoke(&a.url, key, &json!({"token": token}));
    assert_eq!(reply.status, 200);
    let revoked_at = Instant::now();
    // Bounded wait for the NOTIFY-driven update on B.
    loop {
        let reply = current(&b.url, token);
        if reply.status == 401 {
            assert_eq!(reply.code(), "token_revoked");
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "replica B still accepts the token after 1 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "revocation reached replica B after {:?}",
        revoked_at.elapsed()
    );
    // Rotation on B is seen by A: a token B signs with its new key verifies on A.
    cli::succeeded(cli::remote(&b.url, key, &["keys", "rotate"]));
    let fresh = issue(&b, key, &issuer, 3);
    let started = Instant::now();
    loop {
        let reply = current(&a.url, fresh["token"].as_str().unwrap());
        if reply.status == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{}",
            reply.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Installs PyJWT (and cryptography) for `python3` if missing; `false` if that is impossible.
fn pyjwt_available() -> bool {
    support::python::available("import jwt, cryptography", &["pyjwt", "cryptography"])
}

fn pyjwt_verify(server: &Server, token: &str, issuer: &str) -> std::process::Output {
    Command::new("python3")
        .arg(support::repo().join("tests/jwt_interop.py"))
        .args([
            &format!("{}/.well-known/jwks.json", server.url),
            token,
            issuer,
            AUDIENCE,
        ])
        .output()
        .unwrap()
}

#[test]
fn pyjwt_verifies_issued_tokens_before_and_after_rotation() {
    assert!(
        pyjwt_available(),
        "python3 with PyJWT and cryptography is required (pip install pyjwt cryptography)"
    );
    let server = Server::start();
    let key = server.root();
    let issuer = create_issuer(&server, key, "default", "portal", 3);
    let before = issue(&server, key, &issuer, 3);
    let iss = jwt_part(before["token"].as_str().unwrap(), 1)["iss"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = cli::succeeded(pyjwt_verify(
        &server,
        before["token"].as_str().unwrap(),
        &iss,
    ));
    let verified: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(verified["claims"]["loa"], 3);
    assert_eq!(verified["kid"], before["keyId"]);

    rotate(&server);
    let after = issue(&server, key, &issuer, 3);
    assert_ne!(after["keyId"], before["keyId"]);
    for token in [&before, &after] {
        cli::succeeded(pyjwt_verify(
            &server,
            token["token"].as_str().unwrap(),
            &iss,
        ));
    }
    // PyJWT refuses a token with a flipped signature byte (the script really verifies).
    let token = after["token"].as_str().unwrap();
    let mut bad = token.to_owned();
    let at = bad.len() - 2;
    let flipped = if &bad[at..at + 1] == "A" { "B" } else { "A" };
    bad.replace_range(at..at + 1, flipped);
    let out = pyjwt_verify(&server, &bad, &iss);
    assert!(!out.status.success());
}

/// The metrics an operator needs are exported once the events behind them happened: token issue
/// and revoke counts, decisions by org and result, the active revision per org, ledger batch
/// size and latency, the time of the last checkpoint, sidecar fetches and per-route latency.
#[test]
fn operator_metrics_are_exported() {
    let server = Server::start_with_env(&[("SCK_LEDGER__CHECKPOINT_EVERY", "1")]);
    let key = server.root();
    let issuer = create_issuer(&server, key, "default", "portal", 3);
    let issued = issue(&server, key, &issuer, 3);
    let token = issued["token"].as_str().unwrap();
    let decided = tokens::decide(
        &server.url,
        token,
        &json!({"action": "tools.invoke", "resource": {"org": "default", "tool": "search.web"}}),
    );
    assert_eq!(decided.status, 200, "{}", decided.text());
    assert_eq!(
        revoke(&server.url, key, &json!({"token": token})).status,
        200
    );
    let fetched = sidecar::fetch_bundle(&server.url, "default", server.sidecar(), None, None);
    assert_eq!(fetched.status, 200);

    let text = metrics::text(&server.url);
    let value = |series: &str| -> f64 {
        metrics::value(&text, series)
            .unwrap_or_else(|| panic!("no `{series}` in /metrics:\n{text}"))
    };
    assert_eq!(value("sck_tokens_issued_total{org=\"default\"}"), 1.0);
    assert_eq!(value("sck_tokens_revoked_total{org=\"default\"}"), 1.0);
    let decisions = text
        .lines()
        .find(|l| l.starts_with("sck_decisions_total{") && l.contains("org=\"default\""))
        .expect("decisions by org and result");
    assert!(decisions.contains("result=\""), "{decisions}");
    let active = text
        .lines()
        .find(|l| l.starts_with("sck_bundle_active{") && l.ends_with(" 1"))
        .expect("the active revision of the default org");
    assert!(
        active.contains("org=\"default\"") && active.contains("version=\""),
        "{active}"
    );
    assert!(value("sck_ledger_batch_entries_count") >= 3.0);
    assert!(value("sck_ledger_append_seconds_count") >= 3.0);
    assert!(value("sck_ledger_commit_seconds_count") >= 1.0);
    assert!(value("sck_ledger_checkpoint_timestamp_seconds{org=\"default\"}") > 1.7e9);
    assert_eq!(value("sck_bundle_fetches_total{result=\"200\"}"), 1.0);
    assert!(text
        .contains("sck_http_request_duration_seconds_bucket{route=\"/api/v1/enforcement/decide\""));
}
