//! OAuth 2 for machines against a real `sck serve`: service accounts (admin API and `sck
//! client`), `POST /oauth2/token` with `client_credentials` by `client_secret_basic` and
//! `client_secret_post`, RFC 6749 §5.2 refusals that issue and ledger nothing, secret rotation
//! and revocation, source allowlists, RFC 8414 discovery, and a real client (Authlib, pinned)
//! whose token PyJWT verifies against the JWKS.

mod support;

use std::process::Command;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use support::db;
use support::http::{get, post_json, request, Reply, API};
use support::server::Server;
use support::tokens::{current, introspect};
use support::{cli, ledger, metrics};

const AUDIENCE: &str = "urn:sck:enforcement";
const FORM: &str = "application/x-www-form-urlencoded";

/// Creates service account `name` of `default` (LoA 2, two scopes) with extra fields: the
/// answer (`client`, `secret`).
fn create_client(server: &Server, name: &str, extra: Value) -> Value {
    let mut body = json!({"organizationId": "default", "name": name, "loaCeiling": 2,
                          "scopes": ["mcp:invoke", "tools:read"]});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    post_json(
        &format!("{}{API}/clients", server.url),
        Some(server.root()),
        &body,
    )
    .expect(201)
}

fn ids(created: &Value) -> (String, String) {
    (
        created["client"]["clientId"].as_str().unwrap().to_owned(),
        created["secret"]["clientSecret"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

fn token_request(server: &Server, headers: &[(&str, &str)], body: &str) -> Reply {
    request(
        "POST",
        &format!("{}/oauth2/token", server.url),
        headers,
        body.as_bytes(),
    )
}

/// `client_credentials` by `client_secret_basic`, answered.
fn by_basic(server: &Server, id: &str, secret: &str, body: &str) -> Reply {
    let auth = basic(id, secret);
    token_request(
        server,
        &[("content-type", FORM), ("authorization", &auth)],
        body,
    )
}

fn assert_oauth_error(reply: &Reply, status: u16, error: &str) {
    assert_eq!(reply.status, status, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["code"], error, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
    if status == 401 {
        assert_eq!(
            reply.header("www-authenticate").as_deref(),
            Some("Basic realm=\"sck\"")
        );
    }
}

#[test]
fn service_accounts_get_tokens_by_basic_and_post_on_every_backend() {
    db::on_each_backend(|server| {
        let created = create_client(server, "ci-bot", json!({}));
        let (id, secret) = ids(&created);
        assert!(secret.starts_with("sckc_"));
        assert_eq!(created["client"]["audiences"], json!([AUDIENCE]));

        let by_basic = by_basic(
            server,
            &id,
            &secret,
            "grant_type=client_credentials&scope=tools%3Aread",
        );
        assert_eq!(by_basic.status, 200, "{}", by_basic.text());
        assert_eq!(
            by_basic.header("cache-control").as_deref(),
            Some("no-store")
        );
        let issued = by_basic.json();
        assert_eq!(issued["token_type"], "Bearer");
        assert_eq!(issued["scope"], "tools:read");
        let token = issued["access_token"].as_str().unwrap();
        let verified = current(&server.url, token).expect(200);
        assert_eq!(verified["loa"], 2);
        assert_eq!(verified["sub"], id.as_str());
        assert_eq!(verified["artifact_type"], "service_account");
        let seen = introspect(&server.url, server.root(), token);
        assert_eq!(seen["active"], true);
        assert_eq!(seen["client_id"], id.as_str());

        let by_post = token_request(
            server,
            &[("content-type", FORM)],
            &format!(
                "grant_type=client_credentials&client_id={id}&client_secret={secret}&resource={}",
                form_urlencoded::byte_serialize(AUDIENCE.as_bytes()).collect::<String>()
            ),
        );
        assert_eq!(by_post.status, 200, "{}", by_post.text());
        assert_eq!(by_post.json()["scope"], "mcp:invoke tools:read");

        // Listing shows the secret's id, never the secret; the ledger has neither the secret
        // nor its hash.
        let listed = get(
            &format!("{}{API}/clients?organizationId=default", server.url),
            &[("authorization", &support::http::bearer(server.root()))],
        )
        .expect(200);
        assert!(!listed.to_string().contains(&secret));
        assert_eq!(listed["clients"][0]["secrets"].as_array().unwrap().len(), 1);
        let dir = tempfile::tempdir().unwrap();
        let entries = ledger::exported_entries(&server.database_url, "default", dir.path());
        let created_events = ledger::of_type(&entries, "client.created");
        assert_eq!(created_events.len(), 1);
        let everything = serde_json::to_string(&entries).unwrap();
        assert!(!everything.contains(&secret[5..]));
        assert_eq!(ledger::of_type(&entries, "token.issued").len(), 2);
    });
}

/// A bad token request: headers, body, and the status and RFC 6749 error it must get.
type Case<'a> = (Vec<(&'a str, &'a str)>, String, u16, &'a str);

#[test]
fn bad_token_requests_get_rfc_6749_errors_and_change_nothing() {
    let server = Server::start();
    let (id, secret) = ids(&create_client(&server, "ci-bot", json!({})));
    let auth = basic(&id, &secret);
    let wrong_secret = basic(&id, "sckc_wrong");
    let unknown_client = basic("iss_unknown", &secret);
    let size = || ledger::size(&server.url, server.root(), "default");
    let before = size();
    let cases: Vec<Case> = vec![
        // JSON instead of a form.
        (
            vec![
                ("content-type", "application/json"),
                ("authorization", &auth),
            ],
            r#"{"grant_type":"client_credentials"}"#.into(),
            400,
            "invalid_request",
        ),
        // A duplicated parameter, even with equal values.
        (
            vec![("content-type", FORM), ("authorization", &auth)],
            "grant_type=client_credentials&grant_type=client_credentials".into(),
            400,
            "invalid_request",
        ),
        (
            vec![("content-type", FORM), ("authorization", &auth)],
            "scope=tools%3Aread".into(),
            400,
            "invalid_request",
        ),
        (
            vec![("content-type", FORM), ("authorization", &auth)],
            "grant_type=password&username=a&password=b".into(),
            400,
            "unsupported_grant_type",
        ),
        (
            vec![("content-type", FORM)],
            "grant_type=client_credentials".into(),
            401,
            "invalid_client",
        ),
        (
            vec![("content-type", FORM), ("authorization", &wrong_secret)],
            "grant_type=client_credentials".into(),
            401,
            "invalid_client",
        ),
        (
            vec![("content-type", FORM), ("authorization", &unknown_client)],
            "grant_type=client_credentials".into(),
            401,
            "invalid_client",
        ),
        (
            vec![("content-type", FORM), ("authorization", "Bearer abc")],
            format!("grant_type=client_credentials&client_id={id}&client_secret={secret}"),
            401,
            "invalid_client",
        ),
        // Two authentication methods at once.
        (
            vec![("content-type", FORM), ("authorization", &auth)],
            format!("grant_type=client_credentials&client_id={id}&client_secret={secret}"),
            400,
            "invalid_request",
        ),
        // Wider than the client: refused, not narrowed.
        (
            vec![("content-type", FORM), ("authorization", &auth)],
            "grant_type=client_credentials&scope=tools%3Aread+admin".into(),
            400,
            "invalid_scope",
        ),
        (
            vec![("content-type", FORM), ("authorization", &auth)],
            "grant_type=client_credentials&resource=https%3A%2F%2Felsewhere.example".into(),
            400,
            "invalid_target",
        ),
        (
            vec![("content-type", FORM), ("authorization", &auth)],
            "grant_type=client_credentials&audience=urn%3Aother".into(),
            400,
            "invalid_target",
        ),
    ];
    for (headers, body, status, error) in &cases {
        let reply = token_request(&server, headers, body);
        assert_oauth_error(&reply, *status, error);
    }
    assert_eq!(size(), before, "a refused token request ledgered something");
    let text = metrics::text(&server.url);
    assert_eq!(
        metrics::value(&text, "sck_tokens_issued_total{org=\"default\"}"),
        None
    );
    let refusals: f64 = text
        .lines()
        .filter(|l| {
            l.starts_with("sck_oauth_token_requests_total{") && !l.contains("result=\"issued\"")
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(refusals, cases.len() as f64, "{text}");
    assert_eq!(
        metrics::value(&text, "sck_oauth_token_requests_total{grant_type=\"other\",result=\"unsupported_grant_type\"}"),
        Some(1.0)
    );
}

#[test]
fn two_secrets_live_through_rotation_and_revocation_ends_client_and_tokens() {
    db::on_each_backend(|server| {
        let created = create_client(server, "rotating", json!({}));
        let (id, first) = ids(&created);
        let first_id = created["secret"]["secretId"].as_str().unwrap().to_owned();
        let rotate = |retire: Option<&str>| {
            post_json(
                &format!("{}{API}/clients/rotate", server.url),
                Some(server.root()),
                &json!({"organizationId": "default", "clientId": id, "retireSecretId": retire}),
            )
        };
        let rotated = rotate(None).expect(200);
        let second = rotated["secret"]["clientSecret"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(rotated["retired"], json!([]));
        let grant = "grant_type=client_credentials";
        for secret in [&first, &second] {
            assert_eq!(by_basic(server, &id, secret, grant).status, 200);
        }
        let third = rotate(None).expect(200);
        assert_eq!(third["retired"], json!([first_id]));
        assert_oauth_error(&by_basic(server, &id, &first, grant), 401, "invalid_client");
        let token = by_basic(server, &id, &second, grant).json()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        rotate(Some("cs_unknown")).assert_problem(404, "not_found");

        let revoked = post_json(
            &format!("{}{API}/clients/revoke", server.url),
            Some(server.root()),
            &json!({"organizationId": "default", "clientId": id}),
        )
        .expect(200);
        assert!(revoked["revokedAt"].is_i64());
        let newest = third["secret"]["clientSecret"].as_str().unwrap();
        assert_oauth_error(&by_basic(server, &id, newest, grant), 401, "invalid_client");
        current(&server.url, &token).assert_problem(401, "token_revoked");
        rotate(None).assert_problem(404, "not_found");
        let dir = tempfile::tempdir().unwrap();
        let entries = ledger::exported_entries(&server.database_url, "default", dir.path());
        assert_eq!(ledger::of_type(&entries, "client.rotated").len(), 2);
        let revocation = ledger::of_type(&entries, "client.revoked");
        assert_eq!(revocation[0]["body"]["tokens_revoked"], 3);
    });
}

#[test]
fn source_allowlists_and_expiry_are_enforced() {
    let server = Server::start();
    let grant = "grant_type=client_credentials";
    let (far, far_secret) = ids(&create_client(
        &server,
        "far",
        json!({"sourceRanges": ["10.0.0.0/8"]}),
    ));
    assert_oauth_error(
        &by_basic(&server, &far, &far_secret, grant),
        401,
        "invalid_client",
    );
    let (near, near_secret) = ids(&create_client(
        &server,
        "near",
        json!({"sourceRanges": ["127.0.0.1"]}),
    ));
    assert_eq!(by_basic(&server, &near, &near_secret, grant).status, 200);

    let soon = support::unix_now() + 30;
    let (brief, brief_secret) = ids(&create_client(&server, "brief", json!({"expiresAt": soon})));
    let token = by_basic(&server, &brief, &brief_secret, grant).json();
    assert!(token["expires_in"].as_i64().unwrap() <= 30, "{token}");

    for (body, what) in [
        (
            json!({"sourceRanges": ["example.com"]}),
            "a source range that is no address",
        ),
        (json!({"expiresAt": 1}), "an expiry in the past"),
        (
            json!({"audiences": ["https://elsewhere.example"]}),
            "an audience sck does not serve",
        ),
        (json!({"loaCeiling": 5}), "a LoA ceiling above 4"),
    ] {
        let mut request =
            json!({"organizationId": "default", "name": "bad", "loaCeiling": 2, "scopes": ["x"]});
        request
            .as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        let reply = post_json(
            &format!("{}{API}/clients", server.url),
            Some(server.root()),
            &request,
        );
        assert_eq!(reply.status, 400, "{what}: {}", reply.text());
    }
    let twice = post_json(
        &format!("{}{API}/clients", server.url),
        Some(server.root()),
        &json!({"organizationId": "default", "name": "near", "loaCeiling": 2, "scopes": ["x"]}),
    );
    twice.assert_problem(409, "client_exists");
}

#[test]
fn sck_client_commands_manage_service_accounts() {
    let server = Server::start();
    let key = server.root();
    let created: Value = serde_json::from_str(&cli::succeeded(cli::remote(
        &server.url,
        key,
        &[
            "client",
            "create",
            "--org",
            "default",
            "--name",
            "cli-bot",
            "--loa-ceiling",
            "1",
            "--scope",
            "tools:read",
            "--source-range",
            "127.0.0.0/8",
        ],
    )))
    .unwrap();
    let (id, secret) = ids(&created);
    assert_eq!(created["client"]["sourceRanges"], json!(["127.0.0.0/8"]));
    let listed = cli::succeeded(cli::remote(
        &server.url,
        key,
        &["client", "list", "--org", "default"],
    ));
    assert!(listed.contains(&id) && !listed.contains(&secret));
    let rotated: Value = serde_json::from_str(&cli::succeeded(cli::remote(
        &server.url,
        key,
        &["client", "rotate", "--org", "default", "--client-id", &id],
    )))
    .unwrap();
    let second = rotated["secret"]["clientSecret"].as_str().unwrap();
    assert_eq!(
        by_basic(&server, &id, second, "grant_type=client_credentials").status,
        200
    );
    cli::succeeded(cli::remote(
        &server.url,
        key,
        &["client", "revoke", "--org", "default", "--client-id", &id],
    ));
    let (_, stderr) = cli::failed(cli::remote(
        &server.url,
        key,
        &["client", "revoke", "--org", "default", "--client-id", &id],
    ));
    assert!(stderr.contains("[not_found]"), "{stderr}");
}

#[test]
fn authlib_discovers_the_endpoint_and_pyjwt_verifies_its_token() {
    assert!(
        support::python::oauth_clients_available(),
        "python3 with authlib==1.9.6, requests and PyJWT is required (pip install authlib==1.9.6 requests pyjwt cryptography)"
    );
    let server = Server::start_public(&[]);
    let (id, secret) = ids(&create_client(&server, "authlib", json!({})));
    let out = Command::new("python3")
        .arg(support::repo().join("tests/oauth_interop.py"))
        .args([&server.url, &id, &secret, "tools:read", AUDIENCE])
        .env("AUTHLIB_INSECURE_TRANSPORT", "1")
        .output()
        .unwrap();
    let report: Value = serde_json::from_str(&cli::succeeded(out)).unwrap();
    assert_eq!(
        report["metadata"]["token_endpoint"],
        format!("{}/oauth2/token", server.url)
    );
    assert_eq!(report["token"]["scope"], "tools:read");
    assert_eq!(report["claims"]["client_id"], id.as_str());
    assert_eq!(report["claims"]["iss"], server.url.as_str());
    // The token Authlib obtained is a gateway token sck itself accepts.
    let token = report["token"]["access_token"].as_str().unwrap();
    assert_eq!(
        current(&server.url, token).expect(200)["scope"],
        json!(["tools:read"])
    );
}
