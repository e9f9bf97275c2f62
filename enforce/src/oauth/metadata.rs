//! RFC 8414 authorization server metadata: what a standard OAuth client needs to configure
//! itself from sck's issuer URL.
//!
//! Invariant: every endpoint and method listed is one sck serves; the `issuer` is the `iss`
//! of the tokens the token endpoint mints.

use serde::Serialize;

use super::client_keys::SIGNING_ALGS;
use super::grants::{CLIENT_CREDENTIALS, TOKEN_EXCHANGE};

/// The metadata document served at `/.well-known/oauth-authorization-server`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Metadata {
    pub issuer: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub introspection_endpoint: String,
    pub revocation_endpoint: String,
    pub grant_types_supported: Vec<&'static str>,
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    /// The `alg`s a `private_key_jwt` assertion may be signed with.
    pub token_endpoint_auth_signing_alg_values_supported: Vec<&'static str>,
    pub response_types_supported: Vec<&'static str>,
}

/// The paths of the endpoints the metadata names.
pub const TOKEN_PATH: &str = "/oauth2/token";
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
pub const INTROSPECTION_PATH: &str = "/api/v1/enforcement/tokens/introspect";
pub const REVOCATION_PATH: &str = "/api/v1/enforcement/tokens/revoke";

impl Metadata {
    /// The metadata of a deployment whose tokens carry `issuer` and whose endpoints are under
    /// `public_url`.
    pub fn new(issuer: &str, public_url: &str) -> Metadata {
        let base = public_url.trim_end_matches('/');
        Metadata {
            issuer: issuer.to_owned(),
            token_endpoint: format!("{base}{TOKEN_PATH}"),
            jwks_uri: format!("{base}{JWKS_PATH}"),
            introspection_endpoint: format!("{base}{INTROSPECTION_PATH}"),
            revocation_endpoint: format!("{base}{REVOCATION_PATH}"),
            grant_types_supported: vec![CLIENT_CREDENTIALS, TOKEN_EXCHANGE],
            token_endpoint_auth_methods_supported: vec![
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
            ],
            token_endpoint_auth_signing_alg_values_supported: SIGNING_ALGS.to_vec(),
            // No authorization endpoint: no response type is supported (RFC 8414 §2 requires the
            // member; an empty list says so).
            response_types_supported: Vec::new(),
        }
    }
}
