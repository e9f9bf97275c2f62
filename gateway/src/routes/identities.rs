//! `/api/v1/enforcement/identities`: ANS identity pins of an org (admin keys, org-scoped).
//!
//! - `POST   /api/v1/enforcement/identities` `{organizationId, ansId, scheme?, publicKey?}` →
//!   201 with the pin and its first key (an HMAC secret is shown this once);
//! - `GET    /api/v1/enforcement/identities?organizationId=` → the org's pins (no secrets);
//! - `POST   /api/v1/enforcement/identities/rotate` `{organizationId, ansId, scheme?,
//!   publicKey?, retireKeyId?}` → adds a key, retiring the named or the oldest when two are live;
//! - `POST   /api/v1/enforcement/identities/revoke` `{organizationId, ansId, reason?}`.
//!
//! A key naming another org gets 403 (writes) or 404 (reads); an ANS ID pinned in another org
//! is answered as an unknown one (404) by rotate and revoke, and creating it is the same
//! `409 identity_exists` as for one the org holds (docs/xsck.md). Every
//! change is ledgered.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::api_error::{ApiError, ApiResult};
use crate::auth::AdminKey;
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;
use sck_enforce::identities::{KeyRequest, NewKeyView, PinView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_identities, create_identity))
        .routes(routes!(rotate_identity))
        .routes(routes!(revoke_identity))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PinCreate {
    organization_id: String,
    ans_id: String,
    /// `hmac-sha256` (default: sck generates the secret) or `ed25519` (with `publicKey`).
    #[serde(default)]
    scheme: Option<String>,
    /// Base64 Ed25519 public key.
    #[serde(default)]
    public_key: Option<String>,
}

/// A pin with the key just added to it (an HMAC `secret` is shown this once).
#[derive(Serialize, ToSchema)]
struct PinWithNewKey {
    identity: PinView,
    key: NewKeyView,
}

#[utoipa::path(post, path = "/api/v1/enforcement/identities", tag = "identities",
    request_body = PinCreate,
    security(("admin_key" = [])),
    responses(
        (status = 201, description = "The pin and its first key", body = PinWithNewKey),
        (status = 400, description = "Malformed request, ANS ID, scheme or public key"),
        (status = 401, description = "No valid admin key"),
        (status = 403, description = "The key may not act on this organization"),
        (status = 404, description = "No such organization"),
        (status = 409, description = "The ANS ID is or was pinned (in any org)"),
    ))]
async fn create_identity(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<PinCreate>,
) -> ApiResult<(StatusCode, Json<PinWithNewKey>)> {
    admin.authorize_org(&body.organization_id)?;
    super::require_org(&state, &body.organization_id).await?;
    let key = KeyRequest::parse(body.scheme.as_deref(), body.public_key.as_deref())?;
    let (identity, key) = state
        .xsck()
        .identities()
        .create(&body.organization_id, &body.ans_id, &key, admin.actor())
        .await?;
    Ok((StatusCode::CREATED, Json(PinWithNewKey { identity, key })))
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
struct PinList {
    identities: Vec<PinView>,
}

#[utoipa::path(get, path = "/api/v1/enforcement/identities", tag = "identities",
    params(ListQuery),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The pins (no secrets)", body = PinList),
        (status = 400, description = "Unknown query parameter"),
        (status = 401, description = "No valid admin key"),
        (status = 404, description = "No such organization, or not visible to this key"),
    ))]
async fn list_identities(
    State(state): State<AppState>,
    admin: AdminKey,
    QueryParams(query): QueryParams<ListQuery>,
) -> ApiResult<Json<PinList>> {
    let org = super::org_scope(&state, &admin, query.organization_id, |org| {
        admin.authorize_read(org, "organization")
    })
    .await?;
    let identities = state.xsck().identities().list(org.as_deref()).await?;
    Ok(Json(PinList { identities }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PinRotate {
    organization_id: String,
    ans_id: String,
    #[serde(default)]
    scheme: Option<String>,
    #[serde(default)]
    public_key: Option<String>,
    /// The live key to retire (the oldest when two are live and none is named).
    #[serde(default)]
    retire_key_id: Option<String>,
}

/// A pin after a rotation: the key just added and the key ids retired.
#[derive(Serialize, ToSchema)]
struct Rotated {
    identity: PinView,
    key: NewKeyView,
    retired: Vec<String>,
}

#[utoipa::path(post, path = "/api/v1/enforcement/identities/rotate", tag = "identities",
    request_body = PinRotate,
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The new key (an HMAC secret shown this once)", body = Rotated),
        (status = 400, description = "Malformed request, scheme or public key"),
        (status = 401, description = "No valid admin key"),
        (status = 403, description = "The key may not act on this organization"),
        (status = 404, description = "No live pin with this ANS ID, or `retireKeyId` is not one of its live keys"),
    ))]
async fn rotate_identity(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<PinRotate>,
) -> ApiResult<Json<Rotated>> {
    admin.authorize_org(&body.organization_id)?;
    let key = KeyRequest::parse(body.scheme.as_deref(), body.public_key.as_deref())?;
    let (identity, key, retired) = state
        .xsck()
        .identities()
        .rotate(
            &body.organization_id,
            &body.ans_id,
            &key,
            body.retire_key_id.as_deref(),
            admin.actor(),
        )
        .await?;
    Ok(Json(Rotated {
        identity,
        key,
        retired,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PinRevoke {
    organization_id: String,
    ans_id: String,
    /// Up to 512 bytes (`unspecified` when absent).
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct RevokedPin {
    identity: PinView,
}

#[utoipa::path(post, path = "/api/v1/enforcement/identities/revoke", tag = "identities",
    request_body = PinRevoke,
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The revoked pin (its calls are refused from now on)", body = RevokedPin),
        (status = 400, description = "Malformed request or a reason over 512 bytes"),
        (status = 401, description = "No valid admin key"),
        (status = 403, description = "The key may not act on this organization"),
        (status = 404, description = "No live pin with this ANS ID in this organization"),
    ))]
async fn revoke_identity(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<PinRevoke>,
) -> ApiResult<Json<RevokedPin>> {
    admin.authorize_org(&body.organization_id)?;
    let reason = body.reason.as_deref().unwrap_or("unspecified");
    if reason.len() > 512 {
        return Err(ApiError::bad_request(
            "invalid_request",
            "reason is limited to 512 bytes",
        ));
    }
    let identity = state
        .xsck()
        .identities()
        .revoke(&body.organization_id, &body.ans_id, reason, admin.actor())
        .await?;
    Ok(Json(RevokedPin { identity }))
}
