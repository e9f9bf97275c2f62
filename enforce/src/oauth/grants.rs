//! The grants of the token endpoint, from an authenticated client and the request's
//! parameters to a token: RFC 6749 §4.4 `client_credentials` (minted by
//! [`crate::tokens::TokenService::issue_to`]) and RFC 8693 token exchange for delegation (the
//! rule is `sck_wire::delegation::exchange`, the token minted by
//! [`crate::tokens::TokenService::delegate`]).
//!
//! Invariant: a grant gives at most what the client may have — scopes ⊆ its scopes
//! (`invalid_scope`), an audience among its audiences (`invalid_target`, RFC 8707), its LoA
//! ceiling, a lifetime within its org's default TTL and its own expiry — and a delegated token
//! also at most what its subject token has; anything wider is refused rather than narrowed.
//! The audience asked for is the token's `aud`, so the token verifies only where that
//! audience is accepted.

use sck_wire::delegation::{self, Limits};
use serde::Serialize;

use super::clients::{invalid_client, AuthenticatedClient};
use super::OAuth;
use crate::clock::unix_now;
use crate::error::{EnforceError, EnforceResult};
use crate::tokens::issuers::check_scope;
use crate::tokens::{IssueRequest, IssuedToken};

/// The RFC 6749 `grant_type` of the client credentials grant.
pub const CLIENT_CREDENTIALS: &str = "client_credentials";

/// The RFC 8693 `grant_type` of token exchange.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// RFC 8693 §3 token type identifiers sck accepts and issues (a gateway token is both an
/// access token and a JWT).
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// The `artifactType` of tokens minted for a service account.
pub const SERVICE_ACCOUNT: &str = "service_account";

/// A successful token response (RFC 6749 §5.1).
#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// RFC 8693 §2.2.1: the type of the token issued by a token exchange.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
    /// Always `Bearer`.
    pub token_type: &'static str,
    pub expires_in: i64,
    /// Space-separated scopes granted.
    pub scope: String,
}

impl TokenResponse {
    /// The answer for `issued`; `issued_token_type` only for a token exchange.
    fn of(issued: IssuedToken, issued_token_type: Option<&'static str>) -> TokenResponse {
        TokenResponse {
            access_token: issued.token,
            issued_token_type,
            token_type: "Bearer",
            expires_in: issued.expires_in,
            scope: issued.scope.join(" "),
        }
    }
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// What a client asks a grant for: RFC 6749 `scope`, RFC 8707 `resource` and RFC 8693
/// `audience` (each selects the token's `aud`).
#[derive(Debug, Clone, Default)]
pub struct GrantRequest {
    pub scope: Vec<String>,
    pub resource: Option<String>,
    pub audience: Option<String>,
}

/// Refuses a requested scope that is not a well-formed scope token (`invalid_scope`).
fn well_formed(requested: &[String]) -> EnforceResult<()> {
    for scope in requested {
        check_scope(scope).map_err(|e| EnforceError::invalid("invalid_scope", e.detail))?;
    }
    Ok(())
}

/// The scopes a grant gives: the requested ones if all are the client's, else `invalid_scope`;
/// all of the client's when none is requested (RFC 6749 §3.3).
fn granted_scopes(
    client: &AuthenticatedClient,
    requested: &[String],
) -> EnforceResult<Vec<String>> {
    if requested.is_empty() {
        return Ok(client.scopes.clone());
    }
    well_formed(requested)?;
    let outside: Vec<&str> = requested
        .iter()
        .filter(|s| !client.scopes.contains(s))
        .map(String::as_str)
        .collect();
    if !outside.is_empty() {
        return Err(EnforceError::invalid(
            "invalid_scope",
            format!("the client may not be granted: {}", outside.join(" ")),
        ));
    }
    Ok(requested.to_vec())
}

/// The token's `aud` (RFC 8707 §2): the `resource` or `audience` asked for (both: the same
/// one), which must be one of the client's audiences (`invalid_target`); none asked: the
/// deployment's own audience if the client has it, else the client's first.
fn target<'a>(
    client: &'a AuthenticatedClient,
    request: &'a GrantRequest,
    own: &'a str,
) -> EnforceResult<&'a str> {
    let asked = match (&request.resource, &request.audience) {
        (Some(resource), Some(audience)) if resource != audience => {
            return Err(EnforceError::invalid(
                "invalid_target",
                "resource and audience name different audiences; a token has one",
            ))
        }
        (Some(target), _) | (None, Some(target)) => Some(target.as_str()),
        (None, None) => None,
    };
    match asked {
        Some(target) if client.audiences.iter().any(|a| a == target) => Ok(target),
        Some(target) => Err(EnforceError::invalid(
            "invalid_target",
            format!("{target:?} is not an audience of this client"),
        )),
        None if client.audiences.iter().any(|a| a == own) => Ok(own),
        None => {
            client.audiences.first().map(String::as_str).ok_or_else(|| {
                EnforceError::invalid("invalid_target", "the client has no audience")
            })
        }
    }
}

impl OAuth {
    /// RFC 6749 §4.4: a token for the authenticated service account itself.
    pub async fn client_credentials(
        &self,
        client: &AuthenticatedClient,
        request: &GrantRequest,
    ) -> EnforceResult<TokenResponse> {
        let scope = granted_scopes(client, &request.scope)?;
        let own = &self.tokens.settings().verify.audience;
        let audience = target(client, request, own)?;
        let default_ttl = self
            .tokens
            .org_settings(&client.org)
            .await?
            .default_ttl_seconds;
        let ttl = match client.expires_at {
            Some(at) => default_ttl.min(at - unix_now()),
            None => default_ttl,
        };
        if ttl < 1 {
            return Err(invalid_client());
        }
        let issued = self
            .tokens
            .issue_to(
                &IssueRequest {
                    organization_id: client.org.clone(),
                    artifact_id: client.client_id.clone(),
                    artifact_type: SERVICE_ACCOUNT.to_owned(),
                    loa_level: i64::from(client.loa_ceiling),
                    scope,
                    issuer_id: client.client_id.clone(),
                    subject: Some(client.client_id.clone()),
                    ttl_seconds: Some(ttl),
                },
                audience,
                &format!("client:{}", client.client_id),
            )
            .await?;
        Ok(TokenResponse::of(issued, None))
    }
}

/// An RFC 8693 §2.1 token exchange request, beyond [`GrantRequest`]'s parameters.
#[derive(Debug, Clone, Copy)]
pub struct ExchangeRequest<'a> {
    pub subject_token: Option<&'a str>,
    pub subject_token_type: Option<&'a str>,
    pub actor_token: Option<&'a str>,
    pub actor_token_type: Option<&'a str>,
    pub requested_token_type: Option<&'a str>,
}

/// A token type sck accepts, else why not (`invalid_request`, RFC 8693 §2.2.2).
fn accepted_type(parameter: &str, value: Option<&str>) -> EnforceResult<&'static str> {
    match value {
        Some(ACCESS_TOKEN_TYPE) => Ok(ACCESS_TOKEN_TYPE),
        Some(JWT_TOKEN_TYPE) => Ok(JWT_TOKEN_TYPE),
        None => Err(EnforceError::invalid(
            "invalid_request",
            format!("{parameter} is required"),
        )),
        Some(_) => Err(EnforceError::invalid(
            "invalid_request",
            format!("{parameter} must be {ACCESS_TOKEN_TYPE} or {JWT_TOKEN_TYPE}"),
        )),
    }
}

impl ExchangeRequest<'_> {
    /// The subject token, its checked type, the actor token if any (its type checked), and
    /// the type to issue.
    fn checked(&self) -> EnforceResult<(&str, Option<&str>, &'static str)> {
        let subject = self
            .subject_token
            .ok_or_else(|| EnforceError::invalid("invalid_request", "subject_token is required"))?;
        accepted_type("subject_token_type", self.subject_token_type)?;
        match (self.actor_token, self.actor_token_type) {
            (Some(_), kind) => {
                accepted_type("actor_token_type", kind)?;
            }
            (None, Some(_)) => {
                return Err(EnforceError::invalid(
                    "invalid_request",
                    "actor_token_type is given without an actor_token",
                ))
            }
            (None, None) => {}
        }
        let issued = match self.requested_token_type {
            None => ACCESS_TOKEN_TYPE,
            kind => accepted_type("requested_token_type", kind)?,
        };
        Ok((subject, self.actor_token, issued))
    }
}

/// A presented token that does not verify, as RFC 8693 §2.2.2 answers it.
fn unacceptable(parameter: &str, refusal: EnforceError) -> EnforceError {
    match refusal.kind {
        crate::error::Kind::Unauthorized => EnforceError::invalid(
            "invalid_request",
            format!("{parameter} is not acceptable: {}", refusal.detail),
        ),
        _ => refusal,
    }
}

impl OAuth {
    /// RFC 8693: a token for the authenticated client (or the subject of its actor token)
    /// acting for the subject token's subject, narrowed as `sck_wire::delegation` says.
    pub async fn token_exchange(
        &self,
        client: &AuthenticatedClient,
        request: &GrantRequest,
        exchange: &ExchangeRequest<'_>,
    ) -> EnforceResult<TokenResponse> {
        let (subject_token, actor_token, issued_type) = exchange.checked()?;
        well_formed(&request.scope)?;
        let subject = self
            .tokens
            .verify(subject_token)
            .await
            .map_err(|e| unacceptable("subject_token", e))?;
        let actor_sub = match actor_token {
            None => client.client_id.clone(),
            Some(token) => {
                let actor = self
                    .tokens
                    .verify(token)
                    .await
                    .map_err(|e| unacceptable("actor_token", e))?;
                if actor.org != client.org {
                    return Err(EnforceError::invalid(
                        "invalid_request",
                        "the actor token belongs to another org",
                    ));
                }
                actor.sub
            }
        };
        let targets: Vec<&str> = [&request.resource, &request.audience]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        let limits = Limits {
            ttl_secs: self
                .tokens
                .org_settings(&client.org)
                .await?
                .default_ttl_seconds,
            max_depth: self.tokens.settings().verify.max_delegation_depth,
        };
        let ask = delegation::Request {
            org: &client.org,
            actor_sub: &actor_sub,
            client_scopes: &client.scopes,
            client_loa_ceiling: client.loa_ceiling,
            client_expires_at: client.expires_at,
            scope: &request.scope,
            targets: &targets,
        };
        let grant = delegation::exchange(&subject, ask, limits, unix_now())
            .map_err(|refused| EnforceError::invalid(refused.code(), refused.to_string()))?;
        let issued = self
            .tokens
            .delegate(
                &subject,
                grant,
                &client.client_id,
                &format!("client:{}", client.client_id),
            )
            .await?;
        Ok(TokenResponse::of(issued, Some(issued_type)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> AuthenticatedClient {
        AuthenticatedClient {
            client_id: "iss_1".into(),
            org: "default".into(),
            loa_ceiling: 2,
            scopes: vec!["mcp:invoke".into(), "tools:read".into()],
            audiences: vec!["urn:sck:enforcement".into()],
            expires_at: None,
        }
    }

    #[test]
    fn scopes_are_granted_only_within_the_clients() {
        let c = client();
        assert_eq!(granted_scopes(&c, &[]).unwrap(), c.scopes);
        assert_eq!(
            granted_scopes(&c, &["tools:read".into()]).unwrap(),
            ["tools:read"]
        );
        let wider = granted_scopes(&c, &["tools:read".into(), "admin".into()]).unwrap_err();
        assert_eq!(wider.code, "invalid_scope");
        assert!(wider.detail.contains("admin"));
        assert_eq!(
            granted_scopes(&c, &["a\"b".into()]).unwrap_err().code,
            "invalid_scope"
        );
    }

    #[test]
    fn the_target_is_one_of_the_clients_audiences() {
        let mut c = client();
        c.audiences.push("https://api.example".into());
        let own = "urn:sck:enforcement";
        let asked = |resource: Option<&str>, audience: Option<&str>| GrantRequest {
            resource: resource.map(str::to_owned),
            audience: audience.map(str::to_owned),
            ..GrantRequest::default()
        };
        let chosen = |r: &GrantRequest| target(&c, r, own).map(str::to_owned);
        assert_eq!(chosen(&asked(None, None)).unwrap(), own);
        let api = Some("https://api.example");
        assert_eq!(chosen(&asked(api, None)).unwrap(), "https://api.example");
        assert_eq!(chosen(&asked(None, api)).unwrap(), "https://api.example");
        assert_eq!(chosen(&asked(api, api)).unwrap(), "https://api.example");
        for refused in [
            asked(api, Some(own)),
            asked(Some("https://elsewhere.example"), None),
            asked(None, Some("https://elsewhere.example")),
        ] {
            assert_eq!(chosen(&refused).unwrap_err().code, "invalid_target");
        }
        c.audiences = vec!["https://api.example".into()];
        assert_eq!(
            target(&c, &asked(None, None), own).unwrap(),
            "https://api.example"
        );
    }

    #[test]
    fn exchange_requests_name_their_token_types() {
        let full = ExchangeRequest {
            subject_token: Some("t"),
            subject_token_type: Some(ACCESS_TOKEN_TYPE),
            actor_token: None,
            actor_token_type: None,
            requested_token_type: Some(JWT_TOKEN_TYPE),
        };
        assert_eq!(full.checked().unwrap(), ("t", None, JWT_TOKEN_TYPE));
        let cases = [
            ExchangeRequest {
                subject_token: None,
                ..full
            },
            ExchangeRequest {
                subject_token_type: None,
                ..full
            },
            ExchangeRequest {
                subject_token_type: Some("urn:ietf:params:oauth:token-type:saml2"),
                ..full
            },
            ExchangeRequest {
                actor_token: Some("a"),
                ..full
            },
            ExchangeRequest {
                actor_token_type: Some(ACCESS_TOKEN_TYPE),
                ..full
            },
            ExchangeRequest {
                requested_token_type: Some("urn:ietf:params:oauth:token-type:refresh_token"),
                ..full
            },
        ];
        for case in cases {
            assert_eq!(
                case.checked().unwrap_err().code,
                "invalid_request",
                "{case:?}"
            );
        }
    }
}
