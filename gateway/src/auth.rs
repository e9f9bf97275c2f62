//! Who is calling: axum extractors for admin keys, sidecar credentials and gateway tokens.
//!
//! Both read `Authorization: Bearer <secret>` and look the secret's SHA-256 up in the registry.
//! A route's signature states who may call it (`AdminKey`, `SidecarCredential`); org checks
//! are explicit calls ([`AdminKey::authorize_org`]) so an org's key never reaches another org.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::api_error::{ApiError, ApiResult};
use crate::extract::{bearer_credential, BearerRefusal};
use crate::state::AppState;
use sck_enforce::registry::{Credential, CredentialKind};
use sck_wire::principal::VerifiedToken;

fn bearer(parts: &Parts) -> ApiResult<&str> {
    bearer_credential(parts).map_err(|refusal| {
        ApiError::unauthorized(match refusal {
            BearerRefusal::Missing => "missing Authorization: Bearer credential",
            BearerRefusal::Malformed => "malformed Authorization header",
            BearerRefusal::NotBearer => "expected Authorization: Bearer <credential>",
        })
    })
}

async fn authenticate(
    parts: &Parts,
    state: &AppState,
    kind: CredentialKind,
) -> ApiResult<Credential> {
    let secret = bearer(parts)?;
    let found = match kind {
        // Sidecars poll often: read through the poll cache (`registry::poll_cache`).
        CredentialKind::Sidecar => state.poll_cache().sidecar(secret).await?,
        _ => state.registry().authenticate(kind, secret).await?,
    };
    found.ok_or_else(|| ApiError::unauthorized("unknown or revoked credential"))
}

/// An authenticated admin key (org-scoped, or the deployment-wide root key).
#[derive(Debug, Clone)]
pub struct AdminKey(pub Credential);

impl AdminKey {
    /// Allows the root key everywhere and an org key only in its own org.
    pub fn authorize_org(&self, org: &str) -> ApiResult<()> {
        match &self.0.org {
            None => Ok(()),
            Some(own) if own == org => Ok(()),
            Some(_) => Err(ApiError::forbidden(format!(
                "this key may not act on organization {org}"
            ))),
        }
    }

    /// Like [`Self::authorize_org`], but answers 404 so a foreign resource's existence is
    /// not revealed.
    pub fn authorize_read(&self, org: &str, what: &str) -> ApiResult<()> {
        self.authorize_org(org)
            .map_err(|_| ApiError::not_found(format!("{what} not found")))
    }

    /// The key id, recorded as the actor in ledger events.
    pub fn actor(&self) -> &str {
        &self.0.id
    }
}

impl FromRequestParts<AppState> for AdminKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        authenticate(parts, state, CredentialKind::Admin)
            .await
            .map(AdminKey)
    }
}

/// An authenticated OPA sidecar credential of one org.
#[derive(Debug, Clone)]
pub struct SidecarCredential(pub Credential);

impl SidecarCredential {
    pub fn authorize_org(&self, org: &str) -> ApiResult<()> {
        match &self.0.org {
            Some(own) if own == org => Ok(()),
            _ => Err(ApiError::forbidden(format!(
                "this credential may not fetch bundles of organization {org}"
            ))),
        }
    }
}

impl FromRequestParts<AppState> for SidecarCredential {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        authenticate(parts, state, CredentialKind::Sidecar)
            .await
            .map(SidecarCredential)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{header::AUTHORIZATION, HeaderValue, Request};
    use proptest::prelude::*;

    use super::*;

    fn parts(value: &[u8]) -> Option<Parts> {
        let value = HeaderValue::from_bytes(value).ok()?;
        let (mut parts, ()) = Request::new(()).into_parts();
        parts.headers.insert(AUTHORIZATION, value);
        Some(parts)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        /// Any header value: a trimmed, non-empty credential after a case-insensitive
        /// `Bearer `, or a 401 `unauthorized` — never a panic.
        #[test]
        fn any_authorization_header_is_a_credential_or_a_401(
            value in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..200),
                "(?i)(bearer|basic|bearerx)?[ \t]{0,3}[!-~ ]{0,40}".prop_map(String::into_bytes),
            ],
        ) {
            let Some(parts) = parts(&value) else {
                return Ok(()); // not a header value http accepts: never reaches sck
            };
            match bearer(&parts) {
                Ok(token) => {
                    let text = std::str::from_utf8(&value).unwrap();
                    let (scheme, rest) = text.split_once(' ').unwrap();
                    prop_assert!(scheme.eq_ignore_ascii_case("bearer"));
                    prop_assert_eq!(token, rest.trim());
                    prop_assert!(!token.is_empty());
                }
                Err(e) => {
                    prop_assert_eq!(e.status, axum::http::StatusCode::UNAUTHORIZED);
                    prop_assert_eq!(e.code, "unauthorized");
                }
            }
        }

        #[test]
        fn a_bearer_credential_is_read_back(
            scheme in "(?i)bearer",
            spaces in " {1,3}",
            secret in "[!-~]{1,100}",
        ) {
            let parts = parts(format!("{scheme}{spaces}{secret}").as_bytes()).unwrap();
            prop_assert_eq!(bearer(&parts).unwrap(), secret.as_str());
        }
    }

    #[test]
    fn a_missing_header_is_a_401() {
        let (parts, ()) = Request::new(()).into_parts();
        assert_eq!(bearer(&parts).unwrap_err().code, "unauthorized");
    }
}

/// `Authorization: Bearer <token>` → the token text.
fn bearer_token(parts: &Parts) -> ApiResult<&str> {
    bearer_credential(parts).map_err(|refusal| match refusal {
        BearerRefusal::Missing => {
            ApiError::unauthorized("missing Authorization: Bearer gateway token")
        }
        BearerRefusal::Malformed => ApiError::from(sck_enforce::tokens::verify::reject(
            "invalid_token",
            "malformed Authorization header",
        )),
        BearerRefusal::NotBearer => ApiError::from(sck_enforce::tokens::verify::reject(
            "invalid_token",
            "expected Authorization: Bearer <gateway token>",
        )),
    })
}

/// A verified gateway token from `Authorization: Bearer` (via `TokenService::verify`).
#[derive(Debug, Clone)]
pub struct GatewayToken(pub VerifiedToken);

impl FromRequestParts<AppState> for GatewayToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let token = bearer_token(parts)?;
        Ok(GatewayToken(state.tokens().verify(token).await?))
    }
}
