//! OAuth 2 for machines over HTTP: the token endpoint `POST /oauth2/token` (RFC 6749),
//! RFC 8414 discovery, and the admin API of service accounts
//! (`/api/v1/enforcement/clients`, org-scoped like every admin route).
//!
//! The token endpoint answers RFC 6749 §5.1/§5.2 JSON (`application/json`, `Cache-Control:
//! no-store`); a refusal carries `error` and `error_description` and, for sck's own clients,
//! the problem members (`type`, `title`, `status`, `detail`, `code` = `error`). Client
//! authentication failures (secrets or `private_key_jwt` assertions) are `401 invalid_client`
//! with `WWW-Authenticate: Basic`. Every
//! answer is counted in `sck_oauth_token_requests_total{grant_type, result}`.

use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::api_error::{ApiError, ApiResult};
use crate::auth::AdminKey;
use crate::edge::PeerAddr;
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;
use sck_enforce::error::{EnforceError, Kind};
use sck_enforce::oauth::assertion::AssertionRequest;
use sck_enforce::oauth::client_keys::{ClientKeySpec, ClientKeyView};
use sck_enforce::oauth::clients::{invalid_client, ClientView, NewClient, NewSecret};
use sck_enforce::oauth::grants::{
    ExchangeRequest, GrantRequest, TokenResponse, CLIENT_CREDENTIALS, TOKEN_EXCHANGE,
};
use sck_enforce::oauth::metadata::Metadata;
use sck_wire::oauth_form::{basic_credentials, FormRefused, TokenForm};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(token))
        .routes(routes!(metadata))
        .routes(routes!(list_clients, create_client))
        .routes(routes!(rotate_client))
        .routes(routes!(revoke_client))
        .routes(routes!(add_client_key))
        .routes(routes!(remove_client_key))
}

/// The error codes of RFC 6749 §5.2 and RFC 8707 §2 the token endpoint answers with.
const OAUTH_ERRORS: &[&str] = &[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
];

/// A refusal of the token endpoint, as RFC 6749 §5.2 words it.
#[derive(Debug)]
pub struct OAuthError(EnforceError);

impl From<EnforceError> for OAuthError {
    fn from(e: EnforceError) -> Self {
        OAuthError(e)
    }
}

impl From<FormRefused> for OAuthError {
    fn from(e: FormRefused) -> Self {
        OAuthError(EnforceError::invalid(e.code(), e.detail))
    }
}

impl OAuthError {
    /// The RFC error code: the service's own if it is one, else `invalid_request` for a
    /// refusal (`None` for a failure of the server, answered as a problem).
    fn error(&self) -> Option<&'static str> {
        match self.0.kind {
            Kind::Internal | Kind::Unavailable | Kind::RateLimited => None,
            _ if OAUTH_ERRORS.contains(&self.0.code) => Some(self.0.code),
            _ => Some("invalid_request"),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let Some(error) = self.error() else {
            return ApiError::from(self.0).into_response();
        };
        let status = if error == "invalid_client" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        let body = json!({
            "error": error,
            "error_description": self.0.detail,
            "type": format!("urn:sck:error:{error}"),
            "title": status.canonical_reason(),
            "status": status.as_u16(),
            "detail": self.0.detail,
            "code": error,
        });
        let mut response = (status, no_store(), Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"sck\""),
            );
        }
        response
    }
}

/// RFC 6749 §5.1: token responses are never cached.
fn no_store() -> [(header::HeaderName, &'static str); 2] {
    [
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
    ]
}

/// A token request: the form parameters, the Basic credentials if any, and the peer address.
struct TokenRequest {
    form: TokenForm,
    basic: Option<(String, String)>,
    /// An `Authorization` header in another scheme than Basic.
    other_authorization: bool,
    peer: Option<std::net::IpAddr>,
}

impl<S: Send + Sync> FromRequest<S> for TokenRequest {
    type Rejection = OAuthError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let peer = req
            .extensions()
            .get::<ConnectInfo<PeerAddr>>()
            .map(|ConnectInfo(PeerAddr(addr))| addr.ip());
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().map(str::to_owned));
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| EnforceError::invalid("invalid_request", e.body_text()))?;
        let form = TokenForm::parse(content_type.as_deref(), &body)?;
        let (basic, other_authorization) = match authorization {
            None => (None, false),
            Some(Err(_)) => (None, true),
            Some(Ok(value)) => match basic_credentials(&value) {
                Some(Ok(pair)) => (Some(pair), false),
                Some(Err(_)) => return Err(invalid_client().into()),
                None => (None, true),
            },
        };
        Ok(TokenRequest {
            form,
            basic,
            other_authorization,
            peer,
        })
    }
}

impl TokenRequest {
    /// The `private_key_jwt` parameters if the request authenticates by a client assertion;
    /// with a secret (Basic or posted) as well it is `invalid_request` (RFC 6749 §2.3).
    fn assertion<'a>(
        &'a self,
        token_endpoint: &'a str,
    ) -> Result<Option<AssertionRequest<'a>>, OAuthError> {
        let assertion_type = self.form.get("client_assertion_type");
        let assertion = self.form.get("client_assertion");
        if assertion.is_none() && assertion_type.is_none() {
            return Ok(None);
        }
        if self.basic.is_some() || self.form.get("client_secret").is_some() {
            return Err(EnforceError::invalid(
                "invalid_request",
                "use one client authentication method (RFC 6749 §2.3): a client assertion or a secret, not both",
            )
            .into());
        }
        let assertion = assertion.ok_or_else(|| {
            EnforceError::unauthorized("invalid_client", "client_assertion is missing")
        })?;
        Ok(Some(AssertionRequest {
            client_id: self.form.get("client_id"),
            assertion_type,
            assertion,
            token_endpoint,
            peer: self.peer,
        }))
    }

    /// The client id and secret of `client_secret_basic` or `client_secret_post`; more than
    /// one method is `invalid_request` (RFC 6749 §2.3), none (or another scheme) `invalid_client`.
    fn secret_credentials(&self) -> Result<(&str, &str), OAuthError> {
        let posted = self.form.get("client_secret");
        match (&self.basic, posted) {
            (Some(_), Some(_)) => Err(EnforceError::invalid(
                "invalid_request",
                "use one client authentication method (RFC 6749 §2.3): Basic or client_secret, not both",
            )
            .into()),
            (Some((id, secret)), None) => match self.form.get("client_id") {
                Some(other) if other != id => Err(EnforceError::invalid(
                    "invalid_request",
                    "client_id differs from the authenticated client",
                )
                .into()),
                _ => Ok((id, secret)),
            },
            (None, Some(secret)) if !self.other_authorization => self
                .form
                .get("client_id")
                .map(|id| (id, secret))
                .ok_or_else(|| invalid_client().into()),
            _ => Err(invalid_client().into()),
        }
    }
}

/// The `grant_type` label of the metrics: the supported ones by name, anything else `other`.
fn grant_label(grant_type: Option<&str>) -> &'static str {
    match grant_type {
        Some(CLIENT_CREDENTIALS) => CLIENT_CREDENTIALS,
        Some(TOKEN_EXCHANGE) => "token_exchange",
        None => "none",
        Some(_) => "other",
    }
}

/// An RFC 6749 §5.2 error answer (the schema of the token endpoint's refusals).
#[derive(ToSchema)]
pub struct OAuthErrorBody {
    pub error: String,
    pub error_description: String,
    pub code: String,
}

#[utoipa::path(post, path = "/oauth2/token", tag = "oauth",
    request_body(content_type = "application/x-www-form-urlencoded",
        description = "RFC 6749 §4.4.2 `grant_type=client_credentials`, or RFC 8693 §2.1 `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` with `subject_token`, `subject_token_type`, optional `actor_token` + `actor_token_type`, `requested_token_type`; both with optional `scope`, `resource` (RFC 8707), `audience`; client authentication by HTTP Basic, `client_id` + `client_secret` in the form, or `client_assertion_type` + `client_assertion` (RFC 7523 `private_key_jwt`)"),
    responses(
        (status = 200, description = "RFC 6749 §5.1 token response (RFC 8693 §2.2.1 with `issued_token_type` for a token exchange)", body = TokenResponse),
        (status = 400, description = "RFC 6749 §5.2: `invalid_request` (not a form, a duplicated parameter, two authentication methods; RFC 8693 §2.2.2: a subject or actor token that is missing, of another type, org, expired, revoked or too deeply delegated), `unsupported_grant_type`, `invalid_scope` (wider than the client or the subject token), `invalid_target`", body = OAuthErrorBody),
        (status = 401, description = "`invalid_client`, with `WWW-Authenticate: Basic`", body = OAuthErrorBody),
    ))]
async fn token(
    State(state): State<AppState>,
    request: Result<TokenRequest, OAuthError>,
) -> Response {
    let grant_type = request
        .as_ref()
        .ok()
        .and_then(|r| r.form.get("grant_type").map(str::to_owned));
    let answer = match request {
        Ok(request) => grant(&state, &request).await,
        Err(refused) => Err(refused),
    };
    let result = match &answer {
        Ok(_) => "issued",
        Err(e) => e.error().unwrap_or("server_error"),
    };
    metrics::counter!("sck_oauth_token_requests_total",
        "grant_type" => grant_label(grant_type.as_deref()), "result" => result)
    .increment(1);
    match answer {
        Ok(issued) => (no_store(), Json(issued)).into_response(),
        Err(refused) => refused.into_response(),
    }
}

async fn grant(state: &AppState, request: &TokenRequest) -> Result<TokenResponse, OAuthError> {
    let grant_type = match request.form.get("grant_type") {
        None => {
            return Err(EnforceError::invalid("invalid_request", "grant_type is required").into())
        }
        Some(kind @ (CLIENT_CREDENTIALS | TOKEN_EXCHANGE)) => kind,
        Some(_) => {
            return Err(EnforceError::invalid(
                "unsupported_grant_type",
                format!("supported grant types: {CLIENT_CREDENTIALS}, {TOKEN_EXCHANGE}"),
            )
            .into())
        }
    };
    let endpoint = token_endpoint(state);
    let client = match request.assertion(&endpoint)? {
        Some(assertion) => state.oauth().authenticate_assertion(&assertion).await?,
        None => {
            let (client_id, secret) = request.secret_credentials()?;
            state
                .oauth()
                .authenticate_secret(client_id, secret, request.peer)
                .await?
        }
    };
    let form = &request.form;
    let grant = GrantRequest {
        scope: form.list("scope"),
        resource: form.get("resource").map(str::to_owned),
        audience: form.get("audience").map(str::to_owned),
    };
    if grant_type == CLIENT_CREDENTIALS {
        return Ok(state.oauth().client_credentials(&client, &grant).await?);
    }
    let exchange = ExchangeRequest {
        subject_token: form.get("subject_token"),
        subject_token_type: form.get("subject_token_type"),
        actor_token: form.get("actor_token"),
        actor_token_type: form.get("actor_token_type"),
        requested_token_type: form.get("requested_token_type"),
    };
    Ok(state
        .oauth()
        .token_exchange(&client, &grant, &exchange)
        .await?)
}

fn server_metadata(state: &AppState) -> Metadata {
    Metadata::new(
        &state.tokens().settings().verify.issuer,
        &state.config().public_url,
    )
}

/// The URL of this token endpoint, as client assertions name it in `aud`.
fn token_endpoint(state: &AppState) -> String {
    server_metadata(state).token_endpoint
}

#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "oauth",
    responses((status = 200, description = "RFC 8414 authorization server metadata", body = Metadata)))]
async fn metadata(State(state): State<AppState>) -> Json<Metadata> {
    Json(server_metadata(&state))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClientCreate {
    organization_id: String,
    name: String,
    /// Highest Level of Assurance (1-4) of its tokens (they carry this one).
    loa_ceiling: i64,
    /// Scopes it may be granted.
    scopes: Vec<String>,
    /// Audiences it may ask for (default: the deployment's).
    #[serde(default)]
    audiences: Option<Vec<String>>,
    /// IP addresses or CIDR ranges it may authenticate from (default: any).
    #[serde(default)]
    source_ranges: Vec<String>,
    /// Unix seconds after which it authenticates no more.
    #[serde(default)]
    expires_at: Option<i64>,
    /// Public keys for `private_key_jwt` (at most 4); a client created with keys gets no
    /// secret (a rotation can add one).
    #[serde(default)]
    keys: Vec<ClientKeySpec>,
}

/// A service account with the secret just generated for it (shown this once; `null` for a
/// client created with keys).
#[derive(Serialize, ToSchema)]
struct ClientWithSecret {
    client: ClientView,
    secret: Option<NewSecret>,
}

#[utoipa::path(post, path = "/api/v1/enforcement/clients", tag = "oauth",
    request_body = ClientCreate,
    security(("admin_key" = [])),
    responses(
        (status = 201, description = "The service account and its first secret (or its keys)", body = ClientWithSecret),
        (status = 400, description = "Malformed request, name, LoA ceiling, scope, audience, source range, expiry or key (`invalid_key`)"),
        (status = 401, description = "No valid admin key"),
        (status = 403, description = "The key may not act on this organization"),
        (status = 404, description = "No such organization"),
        (status = 409, description = "A service account of this name exists (`client_exists`)"),
    ))]
async fn create_client(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<ClientCreate>,
) -> ApiResult<(StatusCode, Json<ClientWithSecret>)> {
    admin.authorize_org(&body.organization_id)?;
    super::require_org(&state, &body.organization_id).await?;
    let request = NewClient {
        name: body.name,
        loa_ceiling: body.loa_ceiling,
        scopes: body.scopes,
        audiences: body.audiences,
        source_ranges: body.source_ranges,
        expires_at: body.expires_at,
        keys: body.keys,
    };
    let (client, secret) = state
        .oauth()
        .create(&body.organization_id, &request, admin.actor())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ClientWithSecret { client, secret }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// The organization (the key's own by default; every org for the root key).
    #[serde(default)]
    organization_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct ClientList {
    clients: Vec<ClientView>,
}

#[utoipa::path(get, path = "/api/v1/enforcement/clients", tag = "oauth",
    params(ListQuery),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The service accounts (no secrets)", body = ClientList),
        (status = 400, description = "Unknown query parameter"),
        (status = 401, description = "No valid admin key"),
        (status = 404, description = "No such organization, or not visible to this key"),
    ))]
async fn list_clients(
    State(state): State<AppState>,
    admin: AdminKey,
    QueryParams(query): QueryParams<ListQuery>,
) -> ApiResult<Json<ClientList>> {
    let org = super::org_scope(&state, &admin, query.organization_id, |org| {
        admin.authorize_read(org, "organization")
    })
    .await?;
    let clients = state.oauth().list(org.as_deref()).await?;
    Ok(Json(ClientList { clients }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClientRotate {
    organization_id: String,
    client_id: String,
    /// The live secret to retire (default: the oldest, when two are live).
    #[serde(default)]
    retire_secret_id: Option<String>,
}

/// A service account after a rotation: the new secret (shown this once) and what was retired.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ClientRotated {
    client: ClientView,
    secret: NewSecret,
    retired: Vec<String>,
}

#[utoipa::path(post, path = "/api/v1/enforcement/clients/rotate", tag = "oauth",
    request_body = ClientRotate,
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "A new secret; the named or oldest one retired when two were live", body = ClientRotated),
        (status = 400, description = "Malformed request"),
        (status = 401, description = "No valid admin key"),
        (status = 403, description = "The key may not act on this organization"),
        (status = 404, description = "No live service account (or secret) with this id in this organization"),
    ))]
async fn rotate_client(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<ClientRotate>,
) -> ApiResult<Json<ClientRotated>> {
    admin.authorize_org(&body.organization_id)?;
    let (client, secret, retired) = state
        .oauth()
        .rotate(
            &body.organization_id,
            &body.client_id,
            body.retire_secret_id.as_deref(),
            admin.actor(),
        )
        .await?;
    Ok(Json(ClientRotated {
        client,
        secret,
        retired,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClientRevoke {
    organization_id: String,
    client_id: String,
}

#[utoipa::path(post, path = "/api/v1/enforcement/clients/revoke", tag = "oauth",
    request_body = ClientRevoke,
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "Revoked: it authenticates no more and its unexpired tokens are revoked", body = ClientView),
        (status = 400, description = "Malformed request"),
        (status = 401, description = "No valid admin key"),
        (status = 403, description = "The key may not act on this organization"),
        (status = 404, description = "No live service account with this id in this organization"),
    ))]
async fn revoke_client(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<ClientRevoke>,
) -> ApiResult<Json<ClientView>> {
    admin.authorize_org(&body.organization_id)?;
    Ok(Json(
        state
            .oauth()
            .revoke(&body.organization_id, &body.client_id, admin.actor())
            .await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClientKeyAdd {
    organization_id: String,
    client_id: String,
    key: ClientKeySpec,
}

#[utoipa::path(post, path = "/api/v1/enforcement/clients/keys", tag = "oauth",
    request_body = ClientKeyAdd,
    security(("admin_key" = [])),
    responses(
        (status = 201, description = "The key, registered for `private_key_jwt`", body = ClientKeyView),
        (status = 400, description = "Malformed request or key (`invalid_key`)"),
        (status = 401, description = "No valid admin key"),
        (status = 403, description = "The key may not act on this organization"),
        (status = 404, description = "No live service account with this id in this organization"),
        (status = 409, description = "A key with this kid exists (`key_exists`) or four are live (`too_many_keys`)"),
    ))]
async fn add_client_key(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<ClientKeyAdd>,
) -> ApiResult<(StatusCode, Json<ClientKeyView>)> {
    admin.authorize_org(&body.organization_id)?;
    let key = state
        .oauth()
        .add_key(
            &body.organization_id,
            &body.client_id,
            &body.key,
            admin.actor(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(key)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClientKeyRemove {
    organization_id: String,
    client_id: String,
    kid: String,
}

#[utoipa::path(post, path = "/api/v1/enforcement/clients/keys/remove", tag = "oauth",
    request_body = ClientKeyRemove,
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "Removed: assertions it signs fail from now on", body = ClientView),
        (status = 400, description = "Malformed request"),
        (status = 401, description = "No valid admin key"),
        (status = 403, description = "The key may not act on this organization"),
        (status = 404, description = "No live key with this kid of this client in this organization"),
    ))]
async fn remove_client_key(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<ClientKeyRemove>,
) -> ApiResult<Json<ClientView>> {
    admin.authorize_org(&body.organization_id)?;
    let oauth = state.oauth();
    oauth
        .remove_key(
            &body.organization_id,
            &body.client_id,
            &body.kid,
            admin.actor(),
        )
        .await?;
    Ok(Json(
        oauth.get(&body.organization_id, &body.client_id).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_worded_as_rfc_6749_errors() {
        let unknown = OAuthError(EnforceError::forbidden("ttl_above_maximum", "x"));
        assert_eq!(unknown.error(), Some("invalid_request"));
        let scope = OAuthError(EnforceError::invalid("invalid_scope", "x"));
        assert_eq!(scope.error(), Some("invalid_scope"));
        let down = OAuthError(EnforceError::unavailable("database", "gone"));
        assert_eq!(down.error(), None);
    }
}
