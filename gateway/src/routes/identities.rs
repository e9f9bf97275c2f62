//! `/api/v1/enforcement/identities`: ANS identity pins of an org (admin keys, org-scoped).
//!
//! - `POST   /api/v1/enforcement/identities` `{organizationId, ansId, scheme?, publicKey?}` →
//!   201 with the pin and its first key (an HMAC secret is shown this once);
//! - `GET    /api/v1/enforcement/identities?organizationId=` → the org's pins (no secrets);
//! - `POST   /api/v1/enforcement/identities/rotate` `{organizationId, ansId, scheme?,
//!   publicKey?, retireKeyId?}` → adds a key, retiring the named or the oldest when two are live;
//! - `POST   /api/v1/enforcement/identities/revoke` `{organizationId, ansId, reason?}`.
//!
//! A key of another org gets 403 (writes) or 404 (reads); every change is ledgered.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api_error::{ApiError, ApiResult};
use crate::auth::AdminKey;
use crate::extract::{JsonBody, QueryParams};
use crate::identities::KeyRequest;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/enforcement/identities", get(list).post(create))
        .route("/api/v1/enforcement/identities/rotate", post(rotate))
        .route("/api/v1/enforcement/identities/revoke", post(revoke))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateBody {
    organization_id: String,
    ans_id: String,
    #[serde(default)]
    scheme: Option<String>,
    #[serde(default)]
    public_key: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<CreateBody>,
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
    let key = KeyRequest::parse(body.scheme.as_deref(), body.public_key.as_deref())?;
    let (pin, key) = state
        .xsck
        .identities
        .create(&body.organization_id, &body.ans_id, &key, admin.actor())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"identity": pin, "key": key})),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    organization_id: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    admin: AdminKey,
    QueryParams(query): QueryParams<ListQuery>,
) -> ApiResult<Json<Value>> {
    let org = match (&query.organization_id, &admin.0.org) {
        (Some(org), _) => {
            admin.authorize_read(org, "organization")?;
            Some(org.as_str())
        }
        (None, own) => own.as_deref(),
    };
    let pins = state.xsck.identities.list(org).await?;
    Ok(Json(json!({"identities": pins})))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RotateBody {
    organization_id: String,
    ans_id: String,
    #[serde(default)]
    scheme: Option<String>,
    #[serde(default)]
    public_key: Option<String>,
    #[serde(default)]
    retire_key_id: Option<String>,
}

async fn rotate(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<RotateBody>,
) -> ApiResult<Json<Value>> {
    admin.authorize_org(&body.organization_id)?;
    let key = KeyRequest::parse(body.scheme.as_deref(), body.public_key.as_deref())?;
    let (pin, key, retired) = state
        .xsck
        .identities
        .rotate(
            &body.organization_id,
            &body.ans_id,
            &key,
            body.retire_key_id.as_deref(),
            admin.actor(),
        )
        .await?;
    Ok(Json(
        json!({"identity": pin, "key": key, "retired": retired}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RevokeBody {
    organization_id: String,
    ans_id: String,
    #[serde(default)]
    reason: Option<String>,
}

async fn revoke(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<RevokeBody>,
) -> ApiResult<Json<Value>> {
    admin.authorize_org(&body.organization_id)?;
    let reason = body.reason.as_deref().unwrap_or("unspecified");
    if reason.len() > 512 {
        return Err(ApiError::bad_request(
            "invalid_request",
            "reason is limited to 512 bytes",
        ));
    }
    let pin = state
        .xsck
        .identities
        .revoke(&body.organization_id, &body.ans_id, reason, admin.actor())
        .await?;
    Ok(Json(json!({"identity": pin})))
}
