//! RFC 8693 token exchange (delegation) against a real `sck serve`: a delegated token only
//! ever narrows (scopes, LoA, lifetime, audience) and records its actor chain in `act` (seen by
//! introspection, `/tokens/current` and policies as `input.token.act`); anything wider or
//! unacceptable is refused with RFC 8693 §2.2.2's code and issues nothing; the chain's depth
//! is bounded; revoking a token refuses every token delegated from it, after a restart and on
//! another replica (PostgreSQL) within a second; and plain Python `requests` makes the exchange
//! exactly as the RFC's example does.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use support::db;
use support::oauth::{
    as_client, assert_oauth_error, client_token, create_client, delegated, exchange, token_request,
    Client, FORM, TOKEN_EXCHANGE,
};
use support::release::{self, Source};
use support::server::Server;
use support::tokens::{current, decide, introspect, jwt_part, revoke};
use support::{cli, ledger, metrics, orgs};

const AUDIENCE: &str = "urn:sck:enforcement";

/// The parent agent (LoA 3, three scopes) and the sub-agent it hands work to (LoA 2, two).
fn agents(server: &Server) -> (Client, Client) {
    let key = server.root();
    let parent = create_client(
        &server.url,
        key,
        "default",
        "planner",
        3,
        &["mcp:invoke", "tools:read", "tools:write"],
    );
    let sub = create_client(
        &server.url,
        key,
        "default",
        "researcher",
        2,
        &["tools:read", "tools:write"],
    );
    (parent, sub)
}

fn claims(token: &str) -> Value {
    jwt_part(token, 1)
}

fn token_entries(server: &Server, org: &str, kind: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let entries = ledger::exported_entries(&server.database_url, org, dir.path());
    ledger::of_type(&entries, kind)
        .into_iter()
        .cloned()
        .collect()
}

#[test]
fn delegation_narrows_and_records_the_actor_chain_on_every_backend() {
    for deployment in db::backends() {
        let server = deployment.replica_with_env(&[("SCK_TOKENS_MAX_DELEGATION_DEPTH", "2")]);
        let (parent, sub) = agents(&server);
        let parent_token = client_token(&server.url, &parent);
        let parent_claims = claims(&parent_token);

        // The sub-agent asks for one scope of the parent's: RFC 8693 §2.2.1's answer.
        let reply = exchange(&server.url, &sub, &parent_token, &[("scope", "tools:read")]);
        assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
        let answer = reply.expect(200);
        assert_eq!(
            answer["issued_token_type"],
            "urn:ietf:params:oauth:token-type:access_token"
        );
        assert_eq!(answer["token_type"], "Bearer");
        assert_eq!(answer["scope"], "tools:read");
        let child = answer["access_token"].as_str().unwrap().to_owned();
        let child_claims = claims(&child);
        assert_eq!(child_claims["sub"], parent.id.as_str());
        assert_eq!(child_claims["act"], json!({"sub": sub.id}));
        assert_eq!(child_claims["client_id"], sub.id.as_str());
        assert_eq!(
            child_claims["loa"], 2,
            "the lower of the subject's 3 and the client's 2"
        );
        assert_eq!(child_claims["aud"], AUDIENCE);
        assert_eq!(
            child_claims["delegated_from"],
            json!([parent_claims["jti"]])
        );
        assert!(child_claims["exp"].as_i64() <= parent_claims["exp"].as_i64());

        // Introspection and the one verification show the chain and the client.
        let seen = introspect(&server.url, server.root(), &child);
        assert_eq!(seen["active"], true);
        assert_eq!(seen["act"], json!({"sub": sub.id}));
        assert_eq!(seen["client_id"], sub.id.as_str());
        let verified = current(&server.url, &child).expect(200);
        assert_eq!(verified["act"], json!({"sub": sub.id}));
        assert!(current(&server.url, &parent_token)
            .expect(200)
            .get("act")
            .is_none());

        // No scope asked: every subject scope the sub-agent may hold (mcp:invoke is not one).
        let default = exchange(&server.url, &sub, &parent_token, &[]).expect(200);
        assert_eq!(default["scope"], "tools:read tools:write");

        // The chain grows outward, and stops at the configured depth.
        let grandchild = delegated(&server.url, &parent, &child, &[]);
        let grandchild_claims = claims(&grandchild);
        assert_eq!(
            grandchild_claims["act"],
            json!({"sub": parent.id, "act": {"sub": sub.id}})
        );
        assert_eq!(grandchild_claims["scope"], "tools:read");
        assert_eq!(grandchild_claims["loa"], 2, "never above the subject's");
        let too_deep = exchange(&server.url, &sub, &grandchild, &[]);
        let body = assert_oauth_error(&too_deep, 400, "invalid_request");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("maximum depth"),
            "{body}"
        );

        // Each delegation is a token.issued entry with its chain; no token text in the ledger.
        let issued = token_entries(&server, "default", "token.issued");
        let child_entry = issued
            .iter()
            .find(|e| e["body"]["jti"] == child_claims["jti"])
            .expect("the child's token.issued entry");
        assert_eq!(child_entry["body"]["act"], json!({"sub": sub.id}));
        assert_eq!(
            child_entry["body"]["delegated_from"],
            child_claims["delegated_from"]
        );
        assert_eq!(child_entry["body"]["actor"], format!("client:{}", sub.id));
        let everything = serde_json::to_string(&issued).unwrap();
        for token in [&parent_token, &child, &grandchild] {
            assert!(!everything.contains(token.as_str()));
        }
        drop(deployment);
    }
}

/// An exchange by a client with extra parameters, and the RFC error it must get.
type Case<'a> = (&'a Client, Vec<(&'a str, &'a str)>, &'a str);

#[test]
fn wider_or_unacceptable_exchanges_are_refused_and_issue_nothing() {
    let server = Server::start();
    let key = server.root();
    let (parent, sub) = agents(&server);
    orgs::create(&server.url, key, "globex");
    let foreign = create_client(&server.url, key, "globex", "intruder", 4, &["tools:read"]);
    let parent_token = client_token(&server.url, &parent);
    let size = |org: &str| ledger::size(&server.url, key, org);
    let before = (size("default"), size("globex"));
    let saml = "urn:ietf:params:oauth:token-type:saml2";
    let cases: Vec<Case> = vec![
        // The subject holds mcp:invoke, but the sub-agent may not have it.
        (&sub, vec![("scope", "mcp:invoke")], "invalid_scope"),
        // Neither holds it.
        (
            &sub,
            vec![("scope", "tools:read admin:all")],
            "invalid_scope",
        ),
        (&sub, vec![("scope", "bad\"scope")], "invalid_scope"),
        (
            &sub,
            vec![("audience", "https://elsewhere.example")],
            "invalid_target",
        ),
        (
            &sub,
            vec![("resource", "https://elsewhere.example/api")],
            "invalid_target",
        ),
        // Another org's client presenting this org's token.
        (&foreign, vec![], "invalid_request"),
        (
            &sub,
            vec![("requested_token_type", saml)],
            "invalid_request",
        ),
        (
            &sub,
            vec![("actor_token", "not-a-token")],
            "invalid_request",
        ),
        (
            &sub,
            vec![("actor_token", "not-a-token"), ("actor_token_type", saml)],
            "invalid_request",
        ),
    ];
    for (client, extra, error) in &cases {
        let reply = exchange(&server.url, client, &parent_token, extra);
        assert_oauth_error(&reply, 400, error);
    }
    for (pairs, what) in [
        (
            vec![("grant_type", TOKEN_EXCHANGE), ("subject_token_type", saml)],
            "no subject token",
        ),
        (
            vec![
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", parent_token.as_str()),
                ("subject_token_type", saml),
            ],
            "a SAML subject token type",
        ),
        (
            vec![
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", "eyJhbGciOiJub25lIn0.e30."),
                ("subject_token_type", support::oauth::ACCESS_TOKEN_TYPE),
            ],
            "an alg:none subject token",
        ),
    ] {
        let reply = as_client(&server.url, &sub, &pairs);
        assert_eq!(reply.status, 400, "{what}: {}", reply.text());
        assert_eq!(reply.json()["error"], "invalid_request", "{what}");
    }
    // No client authentication at all.
    let unauthenticated = token_request(
        &server.url,
        &[("content-type", FORM)],
        &support::oauth::form(&[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", &parent_token),
            ("subject_token_type", support::oauth::ACCESS_TOKEN_TYPE),
        ]),
    );
    assert_oauth_error(&unauthenticated, 401, "invalid_client");

    assert_eq!(
        (size("default"), size("globex")),
        before,
        "nothing issued or ledgered"
    );
    let text = metrics::text(&server.url);
    let refused = |result: &str| {
        metrics::value(
            &text,
            &format!(
                "sck_oauth_token_requests_total{{grant_type=\"token_exchange\",result=\"{result}\"}}"
            ),
        )
    };
    assert_eq!(refused("invalid_scope"), Some(3.0));
    assert_eq!(refused("invalid_target"), Some(2.0));
    assert_eq!(refused("invalid_request"), Some(7.0));
    assert_eq!(refused("invalid_client"), Some(1.0));
}

#[test]
fn revoking_a_token_refuses_everything_delegated_from_it_even_after_a_restart() {
    for deployment in db::backends() {
        let server = deployment.replica();
        let key = server.root().to_owned();
        let (parent, sub) = agents(&server);
        let parent_token = client_token(&server.url, &parent);
        let sibling = client_token(&server.url, &parent);
        let child = delegated(&server.url, &sub, &parent_token, &[]);
        let grandchild = delegated(&server.url, &parent, &child, &[]);
        let unrelated = delegated(&server.url, &sub, &sibling, &[]);

        let reply = revoke(
            &server.url,
            &key,
            &json!({"tokenId": claims(&parent_token)["jti"], "organizationId": "default"}),
        );
        assert_eq!(reply.status, 200, "{}", reply.text());
        for token in [&parent_token, &child, &grandchild] {
            assert_eq!(current(&server.url, token).code(), "token_revoked");
            assert_eq!(
                introspect(&server.url, &key, token),
                json!({"active": false})
            );
        }
        for token in [&sibling, &unrelated] {
            assert_eq!(current(&server.url, token).status, 200);
        }
        // A revoked subject (or one delegated from it) cannot be exchanged either.
        for subject in [&parent_token, &child] {
            let body = assert_oauth_error(
                &exchange(&server.url, &sub, subject, &[]),
                400,
                "invalid_request",
            );
            assert!(body["error_description"]
                .as_str()
                .unwrap()
                .contains("revoked"));
        }
        // The revocation's ledger entry names what it refused with it.
        let revoked = token_entries(&server, "default", "token.revoked");
        assert_eq!(revoked.len(), 1);
        let mut expected = vec![
            claims(&child)["jti"].as_str().unwrap().to_owned(),
            claims(&grandchild)["jti"].as_str().unwrap().to_owned(),
        ];
        expected.sort();
        assert_eq!(revoked[0]["body"]["delegated"], json!(expected));

        assert!(server.stop().success());
        let again = deployment.replica();
        assert_eq!(current(&again.url, &grandchild).code(), "token_revoked");
        assert_eq!(current(&again.url, &unrelated).status, 200);
    }
}

/// A gateway policy that allows only delegated tokens, naming the chain in its reason.
fn act_policy() -> Source {
    let mut files = Map::new();
    files.insert(
        ".manifest".into(),
        json!(r#"{"roots": ["sck"], "metadata": {"sck": {"entrypoint": "sck/gateway/decision"}}}"#),
    );
    files.insert(
        "sck/gateway/p.rego".into(),
        json!(
            "package sck.gateway\nimport rego.v1\n\
             default decision := {\"allow\": false, \"reasons\": [\"not delegated\"]}\n\
             decision := {\"allow\": true, \"reasons\": [concat(\" for \", [input.token.act.sub, input.token.sub])]} if input.token.act.sub\n"
        ),
    );
    Source::from(files)
}

/// Installs the pinned `requests` and PyJWT for `python3` if missing.
fn python_requests_available() -> bool {
    support::python::available(
        "import requests, jwt, cryptography; assert requests.__version__ == '2.34.2'",
        &["requests==2.34.2", "pyjwt==2.15.1", "cryptography"],
    )
}

#[test]
fn an_rfc_8693_exchange_by_plain_requests_is_decided_by_its_chain_and_dies_with_its_parent() {
    assert!(
        python_requests_available(),
        "python3 with requests==2.34.2 and PyJWT is required (pip install requests==2.34.2 pyjwt cryptography)"
    );
    for deployment in db::backends() {
        let postgres = deployment.database_url.starts_with("postgres");
        let a = deployment.replica();
        // A second replica on PostgreSQL; SQLite is one process.
        let b = postgres.then(|| deployment.replica());
        let key = a.root().to_owned();
        release::release_source(&a.url, &key, "default", "7.0.0", &act_policy());
        let (parent, sub) = agents(&a);
        let parent_token = client_token(&a.url, &parent);

        let out = Command::new("python3")
            .arg(support::repo().join("tests/token_exchange_rfc8693.py"))
            .args([&a.url, &sub.id, &sub.secret, &parent_token, AUDIENCE])
            .output()
            .unwrap();
        let report: Value = serde_json::from_str(&cli::succeeded(out)).unwrap();
        assert_eq!(report["response"]["token_type"], "Bearer");
        assert_eq!(report["claims"]["act"], json!({"sub": sub.id}));
        assert_eq!(report["claims"]["sub"], parent.id.as_str());
        let child = report["response"]["access_token"]
            .as_str()
            .unwrap()
            .to_owned();

        let action = json!({"action": "tools.invoke", "resource": {"tool": "search"}});
        let allowed = decide(&a.url, &child, &action).expect(200);
        assert_eq!(allowed["allow"], true, "{allowed}");
        assert_eq!(
            allowed["reasons"],
            json!([format!("{} for {}", sub.id, parent.id)])
        );
        let undelegated = decide(&a.url, &parent_token, &action).expect(200);
        assert_eq!(undelegated["reasons"], json!(["not delegated"]));

        let other = b.as_ref().unwrap_or(&a);
        assert_eq!(
            decide(&other.url, &child, &action).expect(200)["allow"],
            true
        );
        let reply = revoke(&a.url, &key, &json!({"token": parent_token}));
        assert_eq!(reply.status, 200, "{}", reply.text());
        let revoked_at = Instant::now();
        loop {
            let reply = decide(&other.url, &child, &action);
            if reply.status == 401 {
                assert_eq!(reply.code(), "token_revoked");
                break;
            }
            assert!(
                revoked_at.elapsed() < Duration::from_secs(1),
                "the other replica still accepts the delegated token 1 s after its parent's revocation"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(b);
        drop(deployment);
    }
}
