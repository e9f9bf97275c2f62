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
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api_error::{ApiError, ApiResult};
use crate::auth::AdminKey;
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;
use crate::tokens::{GatewayToken, IssueRequest, RevokeTarget};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/enforcement/tokens/issue", post(issue))
        .route("/api/v1/enforcement/tokens/introspect", post(introspect))
        .route("/api/v1/enforcement/tokens/revoke", post(revoke))
        .route(
            "/api/v1/enforcement/tokens/issuers",
            post(create_issuer).get(list_issuers),
        )
        .route(
            "/api/v1/enforcement/tokens/settings",
            post(set_settings).get(get_settings),
        )
        .route("/api/v1/enforcement/tokens/keys", get(list_keys))
        .route("/api/v1/enforcement/tokens/keys/rotate", post(rotate_keys))
        .route("/api/v1/enforcement/tokens/current", get(current))
        .route("/.well-known/jwks.json", get(jwks))
}

async fn issue(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<IssueRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    admin.authorize_org(&body.organization_id)?;
    let issued = state.tokens.issue(&body, admin.actor()).await?;
    Ok((StatusCode::CREATED, Json(json!(issued))))
}

/// The body of introspection and revocation: JSON (`{token}` / `{tokenId}`) or an RFC 6749
/// form (`token=...&token_type_hint=...`).
#[derive(Debug, Default, Deserialize)]
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

async fn introspect(
    State(state): State<AppState>,
    admin: AdminKey,
    body: TokenBody,
) -> ApiResult<Json<Value>> {
    let token = body
        .token
        .ok_or_else(|| ApiError::bad_request("invalid_request", "token is required (RFC 7662)"))?;
    Ok(Json(
        state
            .tokens
            .introspect(&token, admin.0.org.as_deref())
            .await,
    ))
}

async fn revoke(
    State(state): State<AppState>,
    admin: AdminKey,
    body: TokenBody,
) -> ApiResult<Json<Value>> {
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
    state.tokens.revoke(&target, org, admin.actor()).await?;
    // RFC 7009: the same 200 whether or not the token was known.
    Ok(Json(json!({})))
}

/// The caller's own gateway token as policies see it (`input.token`), after the one
/// verification function: lets clients check a token and shows each refusal's `code`.
async fn current(GatewayToken(token): GatewayToken) -> Json<Value> {
    Json(json!(token))
}

async fn jwks(
    State(state): State<AppState>,
) -> ApiResult<([(header::HeaderName, &'static str); 1], Json<Value>)> {
    Ok((
        [(header::CACHE_CONTROL, "public, max-age=60")],
        Json(json!(state.tokens.jwks())),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IssuerBody {
    organization_id: String,
    name: String,
    loa_ceiling: i64,
    scopes: Vec<String>,
    #[serde(default)]
    algorithm: Option<String>,
}

async fn create_issuer(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<IssuerBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    admin.authorize_org(&body.organization_id)?;
    if !state
        .lifecycle
        .registry
        .org_exists(&body.organization_id)
        .await?
    {
        return Err(ApiError::not_found(format!(
            "organization {} not found",
            body.organization_id
        )));
    }
    let issuer = state
        .tokens
        .create_issuer(
            &body.organization_id,
            &body.name,
            body.loa_ceiling,
            &body.scopes,
            body.algorithm.as_deref(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!(issuer))))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OrgQuery {
    #[serde(default)]
    organization_id: Option<String>,
}

async fn list_issuers(
    State(state): State<AppState>,
    admin: AdminKey,
    QueryParams(query): QueryParams<OrgQuery>,
) -> ApiResult<Json<Value>> {
    let org = match (&query.organization_id, &admin.0.org) {
        (Some(org), _) => {
            admin.authorize_org(org)?;
            Some(org.as_str())
        }
        (None, own) => own.as_deref(),
    };
    let issuers = state.tokens.list_issuers(org).await?;
    Ok(Json(json!({"issuers": issuers})))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SettingsBody {
    organization_id: String,
    max_ttl_seconds: i64,
    #[serde(default)]
    default_ttl_seconds: Option<i64>,
}

async fn set_settings(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<SettingsBody>,
) -> ApiResult<Json<Value>> {
    admin.authorize_org(&body.organization_id)?;
    let settings = state
        .tokens
        .set_org_settings(
            &body.organization_id,
            body.default_ttl_seconds,
            body.max_ttl_seconds,
        )
        .await?;
    Ok(Json(
        json!({"organizationId": body.organization_id, "defaultTtlSeconds": settings.default_ttl_seconds, "maxTtlSeconds": settings.max_ttl_seconds}),
    ))
}

async fn get_settings(
    State(state): State<AppState>,
    admin: AdminKey,
    QueryParams(query): QueryParams<OrgQuery>,
) -> ApiResult<Json<Value>> {
    let org = query
        .organization_id
        .or(admin.0.org.clone())
        .ok_or_else(|| ApiError::bad_request("invalid_request", "organizationId is required"))?;
    admin.authorize_org(&org)?;
    let settings = state.tokens.org_settings(&org).await?;
    Ok(Json(
        json!({"organizationId": org, "defaultTtlSeconds": settings.default_ttl_seconds, "maxTtlSeconds": settings.max_ttl_seconds}),
    ))
}

async fn list_keys(State(state): State<AppState>, _admin: AdminKey) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"keys": state.tokens.key_records()})))
}

async fn rotate_keys(State(state): State<AppState>, admin: AdminKey) -> ApiResult<Json<Value>> {
    if admin.0.org.is_some() {
        return Err(ApiError::forbidden(
            "only the root key rotates the token signing keys",
        ));
    }
    let rotation = state.tokens.rotate_keys(admin.actor()).await?;
    Ok(Json(json!(rotation)))
}
