//! OAuth 2 for machines as its clients use it: service accounts created over the admin API,
//! token requests to `POST /oauth2/token` (form bodies with HTTP Basic client authentication),
//! `client_credentials` tokens and RFC 8693 token exchanges. Each helper that must succeed
//! says so; a test expecting a refusal posts [`token_request`] itself.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::http::{post_json, request, Reply, API};

/// The form media type of token requests.
pub const FORM: &str = "application/x-www-form-urlencoded";
/// RFC 8693 identifiers.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// A service account: its `client_id` and the secret shown when it was created.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub secret: String,
}

/// Creates service account `name` of `org` with LoA ceiling `loa` and `scopes`.
pub fn create_client(
    url: &str,
    key: &str,
    org: &str,
    name: &str,
    loa: u64,
    scopes: &[&str],
) -> Client {
    let created = post_json(
        &format!("{url}{API}/clients"),
        Some(key),
        &json!({"organizationId": org, "name": name, "loaCeiling": loa, "scopes": scopes}),
    )
    .expect(201);
    Client {
        id: created["client"]["clientId"]
            .as_str()
            .expect("a client id")
            .to_owned(),
        secret: created["secret"]["clientSecret"]
            .as_str()
            .expect("a secret")
            .to_owned(),
    }
}

/// The `Authorization` value of `client_secret_basic`.
pub fn basic(client: &Client) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", client.id, client.secret))
    )
}

/// A form body of `pairs`, each form-urlencoded.
pub fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// `POST /oauth2/token` with `headers` and `body`, answered.
pub fn token_request(url: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    request(
        "POST",
        &format!("{url}/oauth2/token"),
        headers,
        body.as_bytes(),
    )
}

/// A token request of `client` (Basic) with the form `pairs`, answered.
pub fn as_client(url: &str, client: &Client, pairs: &[(&str, &str)]) -> Reply {
    let auth = basic(client);
    token_request(
        url,
        &[("content-type", FORM), ("authorization", &auth)],
        &form(pairs),
    )
}

/// `client`'s own token by `client_credentials` (must be issued): the access token.
pub fn client_token(url: &str, client: &Client) -> String {
    let issued = as_client(url, client, &[("grant_type", "client_credentials")]).expect(200);
    issued["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

/// RFC 8693: `client` exchanges `subject` (an access token) with the `extra` parameters, answered.
pub fn exchange(url: &str, client: &Client, subject: &str, extra: &[(&str, &str)]) -> Reply {
    let mut pairs = vec![
        ("grant_type", TOKEN_EXCHANGE),
        ("subject_token", subject),
        ("subject_token_type", ACCESS_TOKEN_TYPE),
    ];
    pairs.extend_from_slice(extra);
    as_client(url, client, &pairs)
}

/// [`exchange`] that must be issued: the delegated access token.
pub fn delegated(url: &str, client: &Client, subject: &str, extra: &[(&str, &str)]) -> String {
    let issued = exchange(url, client, subject, extra).expect(200);
    issued["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

/// Asserts `reply` is the RFC 6749 §5.2 refusal `error` with `status`, not cached: its body.
pub fn assert_oauth_error(reply: &Reply, status: u16, error: &str) -> Value {
    assert_eq!(reply.status, status, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
    body
}
