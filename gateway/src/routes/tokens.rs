//! Gateway token endpoints: issue, introspect (RFC 7662), revoke (RFC 7009), the public JWKS,
//! issuers and org token settings, and key listing/rotation.
//!
//! Who may call what: an org admin key acts on its own org (issuers, settings, issuing,
//! introspecting and revoking that org's tokens); the root key acts on every org and is the
//! only caller that may rotate the deployment-wide signing keys. The JWKS is public, and
//! `GET /api/v1/enforcement/tokens/current` answers a gateway token's bearer with its verified
//! facts (or the refusal with its `code`).

use axum::extract::{FromRequest, Request, State};
use axum::http::{header, StatusCode};
use axum::Json;
use jsonwebtoken::jwk::JwkSet;
use sck_wire::principal::VerifiedToken;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::api_error::{ApiError, ApiResult};
use crate::auth::AdminKey;
use crate::auth::GatewayToken;
use crate::extract::{JsonBody, NoParameters, OptionalJsonBody, QueryParams};
use crate::state::AppState;
use sck_enforce::tokens::issuers::{Issuer, OrgTokenSettings};
use sck_enforce::tokens::keys::{KeyRecord, Rotation};
use sck_enforce::tokens::{IssueRequest, IssuedToken, RevokeTarget};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(issue_token))
        .routes(routes!(introspect_token))
        .routes(routes!(revoke_token))
        .routes(routes!(create_issuer, list_issuers))
        .routes(routes!(set_token_settings, get_token_settings))
        .routes(routes!(list_token_keys))
        .routes(routes!(rotate_token_keys))
        .routes(routes!(current_token))
        .routes(routes!(jwks))
}

#[utoipa::path(post, path = "/api/v1/enforcement/tokens/issue", tag = "tokens",
    request_body = IssueRequest,
    security(("admin_key" = [])),
    responses(
        (status = 201, description = "The signed gateway token and what it grants", body = IssuedToken),
        (status = 400, description = "Malformed request (`invalid_json`, `invalid_request`)"),
        (status = 401, description = "No valid admin key"),
        (status = 403, description = "Not allowed: another org's key, LoA above the issuer's ceiling, scopes beyond the issuer's, TTL above the org maximum"),
        (status = 404, description = "No such issuer in this organization"),
    ))]
async fn issue_token(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<IssueRequest>,
) -> ApiResult<(StatusCode, Json<IssuedToken>)> {
    admin.authorize_org(&body.organization_id)?;
    let issued = state.tokens().issue(&body, admin.actor()).await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

/// The body of introspection and revocation: JSON (`{token}` / `{tokenId}`) or an RFC 6749
/// form (`token=...&token_type_hint=...`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TokenBody {
    #[serde(default)]
    token: Option<String>,
    #[serde(default, alias = "token_id")]
    token_id: Option<String>,
    #[serde(default, alias = "organization_id")]
    organization_id: Option<String>,
    #[serde(default, alias = "token_type_hint")]
    #[allow(dead_code)]
    token_type_hint: Option<String>,
}

impl<S: Send + Sync> FromRequest<S> for TokenBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("application/x-www-form-urlencoded") {
            let bytes = axum::body::Bytes::from_request(req, state)
                .await
                .map_err(|e| ApiError::bad_request("invalid_request", e.body_text()))?;
            let mut body = TokenBody::default();
            for (key, value) in form_urlencoded::parse(&bytes) {
                let value = Some(value.into_owned());
                match key.as_ref() {
                    "token" => body.token = value,
                    "token_id" | "tokenId" => body.token_id = value,
                    "organization_id" | "organizationId" => body.organization_id = value,
                    "token_type_hint" => body.token_type_hint = value,
                    _ => {}
                }
            }
            Ok(body)
        } else {
            JsonBody::<TokenBody>::from_request(req, state)
                .await
                .map(|JsonBody(body)| body)
        }
    }
}

/// An RFC 7662 introspection answer: `{"active": false}` for an unknown, invalid, expired,
/// revoked or foreign token, else the token's verified claims.
#[derive(ToSchema)]
pub struct Introspection {
    pub active: bool,
    /// Space-separated scopes.
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub token_type: Option<String>,
    pub sub: Option<String>,
    pub aud: Option<String>,
    pub iss: Option<String>,
    pub jti: Option<String>,
    pub exp: Option<i64>,
    pub iat: Option<i64>,
    pub nbf: Option<i64>,
    pub org: Option<String>,
    pub loa: Option<u8>,
    pub acr: Option<String>,
    pub artifact_id: Option<String>,
    pub artifact_type: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/enforcement/tokens/introspect", tag = "tokens",
    request_body(content(
        (TokenBody = "application/json"),
        (TokenBody = "application/x-www-form-urlencoded"),
    )),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "RFC 7662 introspection (an org key sees only its org's tokens as active)", body = Introspection),
        (status = 400, description = "No `token`, or a malformed body"),
        (status = 401, description = "No valid admin key"),
    ))]
async fn introspect_token(
    State(state): State<AppState>,
    admin: AdminKey,
    body: TokenBody,
) -> ApiResult<Json<Value>> {
    let token = body
        .token
        .ok_or_else(|| ApiError::bad_request("invalid_request", "token is required (RFC 7662)"))?;
    Ok(Json(
        state
            .tokens()
            .introspect(&token, admin.0.org.as_deref())
            .await,
    ))
}

/// RFC 7009: the same empty object whether or not the token was known.
#[derive(Serialize, ToSchema)]
struct Revoked {}

#[utoipa::path(post, path = "/api/v1/enforcement/tokens/revoke", tag = "tokens",
    request_body(content(
        (TokenBody = "application/json"),
        (TokenBody = "application/x-www-form-urlencoded"),
    )),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke (RFC 7009)", body = Revoked),
        (status = 400, description = "Not exactly one of `token` or `tokenId`, or a malformed body"),
        (status = 401, description = "No valid admin key"),
        (status = 403, description = "The key may not act on this organization"),
    ))]
async fn revoke_token(
    State(state): State<AppState>,
    admin: AdminKey,
    body: TokenBody,
) -> ApiResult<Json<Revoked>> {
    if let Some(org) = &body.organization_id {
        admin.authorize_org(org)?;
    }
    let target = match (body.token, body.token_id) {
        (Some(token), None) => RevokeTarget::Token(token),
        (None, Some(id)) => RevokeTarget::TokenId(id),
        _ => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "give exactly one of token or tokenId",
            ))
        }
    };
    let org = body.organization_id.as_deref().or(admin.0.org.as_deref());
    state.tokens().revoke(&target, org, admin.actor()).await?;
    // RFC 7009: the same 200 whether or not the token was known.
    Ok(Json(Revoked {}))
}

/// The caller's own gateway token as policies see it (`input.token`), after the one
/// verification function: lets clients check a token and shows each refusal's `code`.
#[utoipa::path(get, path = "/api/v1/enforcement/tokens/current", tag = "tokens",
    security(("gateway_token" = [])),
    responses(
        (status = 200, description = "The verified token as policies see it (`input.token`)", body = VerifiedToken),
        (status = 401, description = "No valid gateway token; the `code` names the refusal"),
    ))]
async fn current_token(GatewayToken(token): GatewayToken) -> Json<VerifiedToken> {
    Json(token)
}

/// A JSON Web Key Set (RFC 7517) of the token verification keys.
#[derive(ToSchema)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// A public key: an Ed25519 `OKP` key (`crv`, `x`) with its RFC 7638 `kid`.
#[derive(ToSchema)]
pub struct Jwk {
    pub kty: String,
    pub kid: String,
    pub alg: Option<String>,
    #[serde(rename = "use")]
    pub public_key_use: Option<String>,
    pub crv: Option<String>,
    pub x: Option<String>,
}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "tokens",
    responses((status = 200, description = "The public keys gateway tokens are verified with", body = Jwks)))]
async fn jwks(
    State(state): State<AppState>,
) -> ApiResult<([(header::HeaderName, &'static str); 1], Json<JwkSet>)> {
    Ok((
        [(header::CACHE_CONTROL, "public, max-age=60")],
        Json(state.tokens().jwks()),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IssuerBody {
    organization_id: String,
    name: String,
    /// Highest Level of Assurance (1-4) its tokens may carry.
    loa_ceiling: i64,
    /// Scopes its tokens may grant.
    scopes: Vec<String>,
    /// `EdDSA` (default) or `HS256` (when the deployment has a shared secret).
    #[serde(default)]
    algorithm: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/enforcement/tokens/issuers", tag = "tokens",
    request_body = IssuerBody,
    security(("admin_key" = [])),
    responses(
        (status = 201, description = "The new issuer", body = Issuer),
        (status = 400, description = "Malformed request, LoA ceiling out of range, bad scope or algorithm"),
        (status = 401, description = "No valid admin key"),
        (status = 403, description = "The key may not act on this organization"),
        (status = 404, description = "No such organization"),
        (status = 409, description = "An issuer of this name exists"),
    ))]
async fn create_issuer(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<IssuerBody>,
) -> ApiResult<(StatusCode, Json<Issuer>)> {
    admin.authorize_org(&body.organization_id)?;
    super::require_org(&state, &body.organization_id).await?;
    let issuer = state
        .tokens()
        .create_issuer(
            &body.organization_id,
            &body.name,
            body.loa_ceiling,
            &body.scopes,
            body.algorithm.as_deref(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(issuer)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct OrgQuery {
    /// The organization (the key's own by default).
    #[serde(default)]
    organization_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct IssuerList {
    issuers: Vec<Issuer>,
}

#[utoipa::path(get, path = "/api/v1/enforcement/tokens/issuers", tag = "tokens",
    params(OrgQuery),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The issuers (of every org for the root key without a query)", body = IssuerList),
        (status = 400, description = "Unknown query parameter"),
        (status = 401, description = "No valid admin key"),
        (status = 403, description = "The key may not act on this organization"),
        (status = 404, description = "No such organization"),
    ))]
async fn list_issuers(
    State(state): State<AppState>,
    admin: AdminKey,
    QueryParams(query): QueryParams<OrgQuery>,
) -> ApiResult<Json<IssuerList>> {
    let org = super::org_scope(&state, &admin, query.organization_id, |org| {
        admin.authorize_org(org)
    })
    .await?;
    let issuers = state.tokens().list_issuers(org.as_deref()).await?;
    Ok(Json(IssuerList { issuers }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SettingsBody {
    organization_id: String,
    max_ttl_seconds: i64,
    #[serde(default)]
    default_ttl_seconds: Option<i64>,
}

/// An org's token lifetimes.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct OrgSettings {
    organization_id: String,
    #[serde(flatten)]
    settings: OrgTokenSettings,
}

#[utoipa::path(post, path = "/api/v1/enforcement/tokens/settings", tag = "tokens",
    request_body = SettingsBody,
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The org's new token settings", body = OrgSettings),
        (status = 400, description = "Malformed request or TTLs out of range"),
        (status = 401, description = "No valid admin key"),
        (status = 403, description = "The key may not act on this organization"),
        (status = 404, description = "No such organization"),
    ))]
async fn set_token_settings(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<SettingsBody>,
) -> ApiResult<Json<OrgSettings>> {
    admin.authorize_org(&body.organization_id)?;
    super::require_org(&state, &body.organization_id).await?;
    let settings = state
        .tokens()
        .set_org_settings(
            &body.organization_id,
            body.default_ttl_seconds,
            body.max_ttl_seconds,
        )
        .await?;
    Ok(Json(OrgSettings {
        organization_id: body.organization_id,
        settings,
    }))
}

#[utoipa::path(get, path = "/api/v1/enforcement/tokens/settings", tag = "tokens",
    params(OrgQuery),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The org's token settings (deployment defaults if unset)", body = OrgSettings),
        (status = 400, description = "No organization given to the root key, or an unknown query parameter"),
        (status = 401, description = "No valid admin key"),
        (status = 403, description = "The key may not act on this organization"),
        (status = 404, description = "No such organization"),
    ))]
async fn get_token_settings(
    State(state): State<AppState>,
    admin: AdminKey,
    QueryParams(query): QueryParams<OrgQuery>,
) -> ApiResult<Json<OrgSettings>> {
    let org = super::org_scope(&state, &admin, query.organization_id, |org| {
        admin.authorize_org(org)
    })
    .await?
    .ok_or_else(|| ApiError::bad_request("invalid_request", "organizationId is required"))?;
    let settings = state.tokens().org_settings(&org).await?;
    Ok(Json(OrgSettings {
        organization_id: org,
        settings,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
struct KeyList {
    keys: Vec<KeyRecord>,
}

#[utoipa::path(get, path = "/api/v1/enforcement/tokens/keys", tag = "tokens",
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "Every token signing key with its state", body = KeyList),
        (status = 401, description = "No valid admin key"),
    ))]
async fn list_token_keys(
    State(state): State<AppState>,
    _admin: AdminKey,
) -> ApiResult<Json<KeyList>> {
    Ok(Json(KeyList {
        keys: state.tokens().key_records(),
    }))
}

#[utoipa::path(post, path = "/api/v1/enforcement/tokens/keys/rotate", tag = "tokens",
    request_body(content = NoParameters, description = "Optional: no body, or `{}`"),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "next → active → retiring; a new next key", body = Rotation),
        (status = 400, description = "A body that is not `{}` (`invalid_json`); nothing rotated"),
        (status = 401, description = "No valid admin key"),
        (status = 403, description = "Only the root key rotates the token signing keys"),
    ))]
async fn rotate_token_keys(
    State(state): State<AppState>,
    admin: AdminKey,
    _: OptionalJsonBody<NoParameters>,
) -> ApiResult<Json<Rotation>> {
    if admin.0.org.is_some() {
        return Err(ApiError::forbidden(
            "only the root key rotates the token signing keys",
        ));
    }
    Ok(Json(state.tokens().rotate_keys(admin.actor()).await?))
}
