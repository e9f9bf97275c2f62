//! `private_key_jwt` (RFC 7523) client authentication against a real `sck serve`: keys
//! registered by the admin API and `sck client`, assertions accepted once (replays refused,
//! also across two replicas of one database), every refused assertion one `invalid_client`
//! that issues and ledgers nothing and is counted, RFC 8414 discovery of the method, and
//! Authlib (pinned) signing RS256 and ES256 assertions whose tokens PyJWT verifies.

mod support;

use std::process::Command;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use support::db;
use support::http::{get, post_json, request, Reply, API};
use support::server::Server;
use support::tokens::current;
use support::{cli, ledger, metrics};

const FORM: &str = "application/x-www-form-urlencoded";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn public_jwk(key: &SigningKey, kid: &str) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "kid": kid,
           "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes())})
}

/// Creates service account `name` of `default` with `keys` (API key objects): its client id.
fn create_with_keys(server: &Server, name: &str, keys: Value) -> Value {
    post_json(
        &format!("{}{API}/clients", server.url),
        Some(server.root()),
        &json!({"organizationId": "default", "name": name, "loaCeiling": 2,
                "scopes": ["mcp:invoke", "tools:read"], "keys": keys}),
    )
    .expect(201)
}

/// The token endpoint URL and the issuer, as RFC 8414 metadata names them.
fn endpoints(server: &Server) -> (String, String) {
    let metadata = get(
        &format!("{}/.well-known/oauth-authorization-server", server.url),
        &[],
    )
    .expect(200);
    (
        metadata["token_endpoint"].as_str().unwrap().to_owned(),
        metadata["issuer"].as_str().unwrap().to_owned(),
    )
}

fn claims(client_id: &str, aud: &str, jti: &str) -> Value {
    let now = support::unix_now();
    json!({"iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + 60, "jti": jti})
}

fn sign(key: &SigningKey, kid: Option<&str>, claims: &Value) -> String {
    let der = key.to_pkcs8_der().unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(der.as_bytes())).unwrap()
}

fn enc(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn by_assertion(server: &Server, assertion: &str, extra: &str) -> Reply {
    request(
        "POST",
        &format!("{}/oauth2/token", server.url),
        &[("content-type", FORM)],
        format!(
            "grant_type=client_credentials&client_assertion_type={}&client_assertion={}{extra}",
            enc(JWT_BEARER),
            enc(assertion)
        )
        .as_bytes(),
    )
}

fn assert_invalid_client(reply: &Reply, assertion: &str, says: &str) {
    assert_eq!(reply.status, 401, "{says}: {}", reply.text());
    let body = reply.json();
    assert_eq!(body["error"], "invalid_client", "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(description.contains(says), "{says}: {description}");
    assert!(
        !reply.text().contains(assertion),
        "the answer echoes the assertion"
    );
    assert_eq!(
        reply.header("www-authenticate").as_deref(),
        Some("Basic realm=\"sck\"")
    );
}

#[test]
fn private_key_jwt_clients_get_tokens_and_bad_assertions_get_nothing_on_every_backend() {
    db::on_each_backend(|server| {
        let signer = key(1);
        let created = create_with_keys(
            server,
            "signer",
            json!([{"jwk": public_jwk(&signer, "k1")}]),
        );
        let id = created["client"]["clientId"].as_str().unwrap().to_owned();
        assert_eq!(
            created["secret"],
            Value::Null,
            "a client with keys got a secret"
        );
        assert_eq!(created["client"]["keys"][0]["kid"], "k1");
        assert_eq!(created["client"]["keys"][0]["alg"], "EdDSA");
        let (endpoint, issuer) = endpoints(server);
        let metadata = get(
            &format!("{}/.well-known/oauth-authorization-server", server.url),
            &[],
        )
        .expect(200);
        assert!(metadata["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("private_key_jwt")));
        assert_eq!(
            metadata["token_endpoint_auth_signing_alg_values_supported"],
            json!(["EdDSA", "ES256", "RS256"])
        );

        // aud = the token endpoint, with kid and client_id; aud = the issuer, neither.
        let first = sign(&signer, Some("k1"), &claims(&id, &endpoint, "jti-1"));
        let issued = by_assertion(
            server,
            &first,
            &format!("&client_id={id}&scope=tools%3Aread"),
        );
        assert_eq!(issued.status, 200, "{}", issued.text());
        let token = issued.json()["access_token"].as_str().unwrap().to_owned();
        let verified = current(&server.url, &token).expect(200);
        assert_eq!(verified["sub"], id.as_str());
        assert_eq!(verified["scope"], json!(["tools:read"]));
        let to_issuer = sign(&signer, None, &claims(&id, &issuer, "jti-2"));
        assert_eq!(by_assertion(server, &to_issuer, "").status, 200);

        let size = || ledger::size(&server.url, server.root(), "default");
        let before = size();
        let now = support::unix_now();
        let with = |claim: &str, value: Value| {
            let mut c = claims(&id, &endpoint, &format!("jti-{claim}"));
            c[claim] = value;
            c
        };
        let mut no_jti = claims(&id, &endpoint, "unused");
        no_jti.as_object_mut().unwrap().remove("jti");
        let public_key_as_secret = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(&id, &endpoint, "jti-hs"),
            &EncodingKey::from_secret(signer.verifying_key().as_bytes()),
        )
        .unwrap();
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims(&id, &endpoint, "jti-none").to_string())
        );
        let cases: Vec<(String, &str)> = vec![
            (first.clone(), "replay"),
            (
                sign(&signer, Some("k1"), &with("exp", json!(now - 60))),
                "expired",
            ),
            (
                sign(&signer, Some("k1"), &with("exp", json!(now + 3600))),
                "ahead",
            ),
            (
                sign(&signer, Some("k1"), &with("nbf", json!(now + 120))),
                "nbf",
            ),
            (
                sign(
                    &signer,
                    Some("k1"),
                    &with("aud", json!("https://elsewhere.example/token")),
                ),
                "aud",
            ),
            (
                sign(&signer, Some("k1"), &with("iss", json!("iss_other"))),
                "iss",
            ),
            (
                sign(&signer, Some("k1"), &with("sub", json!("iss_other"))),
                "sub",
            ),
            (sign(&signer, Some("k1"), &no_jti), "jti"),
            (
                sign(&signer, Some("k9"), &claims(&id, &endpoint, "jti-k9")),
                "k9",
            ),
            (
                sign(&key(2), Some("k1"), &claims(&id, &endpoint, "jti-forged")),
                "signature",
            ),
            (unsigned, "\"none\""),
            (public_key_as_secret, "HS256"),
        ];
        for (assertion, says) in &cases {
            assert_invalid_client(&by_assertion(server, assertion, ""), assertion, says);
        }
        // Another assertion type, and a secret beside the assertion.
        let fresh = sign(&signer, Some("k1"), &claims(&id, &endpoint, "jti-extra"));
        let wrong_type = request(
            "POST",
            &format!("{}/oauth2/token", server.url),
            &[("content-type", FORM)],
            format!(
                "grant_type=client_credentials&client_assertion_type=urn%3Aother&client_assertion={}",
                enc(&fresh)
            )
            .as_bytes(),
        );
        assert_invalid_client(&wrong_type, &fresh, "client_assertion_type");
        let both = by_assertion(
            server,
            &fresh,
            &format!("&client_id={id}&client_secret=sckc_x"),
        );
        assert_eq!(both.status, 400, "{}", both.text());
        assert_eq!(both.json()["error"], "invalid_request");
        // A client with keys only has no secret to authenticate with.
        let secret_try = request(
            "POST",
            &format!("{}/oauth2/token", server.url),
            &[("content-type", FORM)],
            format!("grant_type=client_credentials&client_id={id}&client_secret=sckc_x").as_bytes(),
        );
        assert_eq!(secret_try.status, 401);

        assert_eq!(size(), before, "a refused assertion ledgered something");
        let text = metrics::text(&server.url);
        assert_eq!(
            metrics::value(&text, "sck_tokens_issued_total{org=\"default\"}"),
            Some(2.0)
        );
        assert_eq!(
            metrics::value(
                &text,
                "sck_oauth_token_requests_total{grant_type=\"client_credentials\",result=\"invalid_client\"}"
            ),
            Some(cases.len() as f64 + 2.0),
            "{text}"
        );
        // The ledger names keys by kid and thumbprint, never their material.
        let dir = tempfile::tempdir().unwrap();
        let entries = ledger::exported_entries(&server.database_url, "default", dir.path());
        let created_event = &ledger::of_type(&entries, "client.created")[0]["body"];
        assert_eq!(created_event["keys"][0]["kid"], "k1");
        assert!(created_event["keys"][0]["thumbprint"].is_string());
        let x = public_jwk(&signer, "k1")["x"].as_str().unwrap().to_owned();
        assert!(!serde_json::to_string(&entries).unwrap().contains(&x));
    });
}

#[test]
fn one_assertion_is_accepted_once_across_two_replicas() {
    for deployment in db::backends() {
        let (a, b) = (deployment.replica(), deployment.replica());
        let signer = key(3);
        let created = create_with_keys(
            &a,
            "replicated",
            json!([{"jwk": public_jwk(&signer, "r1")}]),
        );
        let id = created["client"]["clientId"].as_str().unwrap().to_owned();
        let (endpoint, _) = endpoints(&a);
        for round in 0..5 {
            let assertion = sign(
                &signer,
                None,
                &claims(&id, &endpoint, &format!("race-{round}")),
            );
            let statuses: Vec<u16> = std::thread::scope(|scope| {
                let sent: Vec<_> = [&a, &b]
                    .map(|server| {
                        let assertion = assertion.clone();
                        scope.spawn(move || by_assertion(server, &assertion, "").status)
                    })
                    .into_iter()
                    .collect();
                sent.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let mut sorted = statuses.clone();
            sorted.sort();
            assert_eq!(sorted, [200, 401], "round {round}: {statuses:?}");
        }
    }
}

#[test]
fn keys_are_added_and_removed_by_the_api_and_sck_client() {
    let server = Server::start();
    let first = key(4);
    let created = create_with_keys(
        &server,
        "rotating",
        json!([{"jwk": public_jwk(&first, "old")}]),
    );
    let id = created["client"]["clientId"].as_str().unwrap().to_owned();
    let (endpoint, _) = endpoints(&server);

    // A second key, as a PEM file through `sck client add-key`; no kid: its thumbprint names it.
    let second = key(5);
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("new.pem");
    std::fs::write(
        &pem,
        second
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap(),
    )
    .unwrap();
    let added: Value = serde_json::from_str(&cli::succeeded(cli::remote(
        &server.url,
        server.root(),
        &[
            "client",
            "add-key",
            "--org",
            "default",
            "--client-id",
            &id,
            "--key-file",
            pem.to_str().unwrap(),
        ],
    )))
    .unwrap();
    let kid = added["kid"].as_str().unwrap().to_owned();
    assert_eq!(added["thumbprint"], kid.as_str());
    let by_new = sign(&second, Some(&kid), &claims(&id, &endpoint, "new-1"));
    assert_eq!(by_assertion(&server, &by_new, "").status, 200);

    let remove_old = || {
        cli::remote(
            &server.url,
            server.root(),
            &[
                "client",
                "remove-key",
                "--org",
                "default",
                "--client-id",
                &id,
                "--kid",
                "old",
            ],
        )
    };
    cli::succeeded(remove_old());
    let by_old = sign(&first, Some("old"), &claims(&id, &endpoint, "old-1"));
    assert_invalid_client(&by_assertion(&server, &by_old, ""), &by_old, "old");
    let (_, stderr) = cli::failed(remove_old());
    assert!(stderr.contains("[not_found]"), "{stderr}");

    let keys = format!("{}{API}/clients/keys", server.url);
    let add = |body: Value| post_json(&keys, Some(server.root()), &body);
    let mut private = public_jwk(&first, "p");
    private["d"] = json!(URL_SAFE_NO_PAD.encode([4u8; 32]));
    add(json!({"organizationId": "default", "clientId": id, "key": {"jwk": private}}))
        .assert_problem(400, "invalid_key");
    add(json!({"organizationId": "default", "clientId": id,
               "key": {"jwk": {"kty": "oct", "k": "c2VjcmV0"}}}))
    .assert_problem(400, "invalid_key");
    add(json!({"organizationId": "default", "clientId": id,
               "key": {"jwk": public_jwk(&key(6), &kid)}}))
    .assert_problem(409, "key_exists");
    add(
        json!({"organizationId": "default", "clientId": "iss_nothing",
               "key": {"jwk": public_jwk(&key(6), "n")}}),
    )
    .assert_problem(404, "not_found");
    for seed in 7..10 {
        add(json!({"organizationId": "default", "clientId": id,
                   "key": {"jwk": public_jwk(&key(seed), &format!("s{seed}"))}}))
        .expect(201);
    }
    add(json!({"organizationId": "default", "clientId": id,
               "key": {"jwk": public_jwk(&key(10), "s10")}}))
    .assert_problem(409, "too_many_keys");

    let entries = ledger::exported_entries(&server.database_url, "default", dir.path());
    assert_eq!(ledger::of_type(&entries, "client.key_added").len(), 4);
    let removed = ledger::of_type(&entries, "client.key_removed");
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0]["body"]["kid"], "old");
}

#[test]
fn authlib_authenticates_by_private_key_jwt_and_pyjwt_verifies_the_token() {
    assert!(
        support::python::oauth_clients_available(),
        "python3 with authlib==1.9.6, requests and PyJWT is required (pip install authlib==1.9.6 requests pyjwt cryptography)"
    );
    let server = Server::start_public(&[]);
    let out = Command::new("python3")
        .arg(support::repo().join("tests/oauth_assertion_interop.py"))
        .args([&server.url, server.root(), "tools:read"])
        .env("AUTHLIB_INSECURE_TRANSPORT", "1")
        .output()
        .unwrap();
    let report: Value = serde_json::from_str(&cli::succeeded(out)).unwrap();
    for alg in ["RS256", "ES256"] {
        let run = &report[alg];
        let id = run["client_id"].as_str().unwrap();
        assert_eq!(run["claims"]["client_id"], id, "{run}");
        assert_eq!(run["claims"]["sub"], id, "{run}");
        assert_eq!(run["token"]["scope"], "tools:read");
        let token = run["token"]["access_token"].as_str().unwrap();
        assert_eq!(current(&server.url, token).expect(200)["sub"], id);
    }
}
