//! RFC 8707 `resource` / `audience` on `POST /oauth2/token` against two real replicas of one
//! deployment: the parameters select the token's `aud` among the client's audiences (which are
//! among the deployment's: `SCK_TOKENS_AUDIENCE` and `SCK_TOKENS_EXTRA_AUDIENCES`), anything
//! else is `invalid_target`, and a token verifies only on the replica whose
//! `SCK_TOKENS_AUDIENCE` is its `aud`.

mod support;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};
use support::db;
use support::http::{post_json, request, Reply, API};
use support::server::Server;
use support::tokens::current;

const OWN: &str = "urn:sck:enforcement";
const API_AUD: &str = "https://api.example";

fn token_request(server: &Server, auth: &str, body: &str) -> Reply {
    request(
        "POST",
        &format!("{}/oauth2/token", server.url),
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("authorization", auth),
        ],
        body.as_bytes(),
    )
}

fn aud_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()["aud"]
        .clone()
}

fn enc(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[test]
fn resource_and_audience_select_the_aud_and_the_token_verifies_only_where_it_is_accepted() {
    for deployment in db::backends() {
        let issuer = ("SCK_TOKENS_ISSUER", "https://sck.test");
        let gateway =
            deployment.replica_with_env(&[issuer, ("SCK_TOKENS_EXTRA_AUDIENCES", API_AUD)]);
        let clients = format!("{}{API}/clients", gateway.url);
        let create = |name: &str, audiences: Value| {
            post_json(
                &clients,
                Some(gateway.root()),
                &json!({"organizationId": "default", "name": name, "loaCeiling": 2,
                        "scopes": ["tools:read"], "audiences": audiences}),
            )
        };
        create("elsewhere", json!(["https://elsewhere.example"]))
            .assert_problem(400, "invalid_request");
        let created = create("both", json!([OWN, API_AUD])).expect(201);
        let id = created["client"]["clientId"].as_str().unwrap();
        let secret = created["secret"]["clientSecret"].as_str().unwrap();
        let auth = format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
        let only_api = create("api-only", json!([API_AUD])).expect(201);
        // Started after the clients exist, it knows their issuers from its first load.
        let api = deployment.replica_with_env(&[issuer, ("SCK_TOKENS_AUDIENCE", API_AUD)]);
        let issue = |extra: &str| {
            let reply = token_request(
                &gateway,
                &auth,
                &format!("grant_type=client_credentials{extra}"),
            );
            assert_eq!(reply.status, 200, "{extra}: {}", reply.text());
            reply.json()["access_token"].as_str().unwrap().to_owned()
        };

        let own = issue("");
        assert_eq!(aud_of(&own), OWN);
        current(&gateway.url, &own).expect(200);
        current(&api.url, &own).assert_problem(401, "invalid_audience");
        for extra in [
            format!("&resource={}", enc(API_AUD)),
            format!("&audience={}", enc(API_AUD)),
            format!("&resource={0}&audience={0}", enc(API_AUD)),
        ] {
            let for_api = issue(&extra);
            assert_eq!(aud_of(&for_api), API_AUD, "{extra}");
            current(&api.url, &for_api).expect(200);
            current(&gateway.url, &for_api).assert_problem(401, "invalid_audience");
        }
        for refused in [
            format!("&resource={}&audience={}", enc(API_AUD), enc(OWN)),
            format!("&resource={}", enc("https://elsewhere.example")),
        ] {
            let reply = token_request(
                &gateway,
                &auth,
                &format!("grant_type=client_credentials{refused}"),
            );
            assert_eq!(reply.status, 400, "{refused}: {}", reply.text());
            assert_eq!(reply.json()["error"], "invalid_target");
        }
        // A client of the other audience only gets tokens for it without asking.
        let auth = format!(
            "Basic {}",
            STANDARD.encode(format!(
                "{}:{}",
                only_api["client"]["clientId"].as_str().unwrap(),
                only_api["secret"]["clientSecret"].as_str().unwrap()
            ))
        );
        let reply = token_request(&gateway, &auth, "grant_type=client_credentials");
        assert_eq!(
            aud_of(reply.json()["access_token"].as_str().unwrap()),
            API_AUD
        );
    }
}
