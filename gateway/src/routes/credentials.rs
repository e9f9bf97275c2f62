//! `/api/v1/enforcement/orgs` and `/api/v1/enforcement/credentials`: creating organizations
//! (root key only) and admin keys or sidecar credentials (secrets are returned once, stored
//! hashed, and recorded in the ledger by id only).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::api_error::{ApiError, ApiResult};
use crate::auth::AdminKey;
use crate::extract::JsonBody;
use crate::state::AppState;
use sck_enforce::registry::CredentialKind;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_org))
        .routes(routes!(create_credential))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Organization {
    organization_id: String,
}

#[utoipa::path(post, path = "/api/v1/enforcement/orgs", tag = "credentials",
    request_body = Organization,
    security(("admin_key" = [])),
    responses(
        (status = 201, description = "The organization exists (created if it did not)", body = Organization),
        (status = 400, description = "Malformed request, invalid organization id (`invalid_request`) or a name sck reserves (`reserved_name`)"),
        (status = 401, description = "No valid admin key"),
        (status = 403, description = "Only the root key creates organizations"),
    ))]
async fn create_org(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<Organization>,
) -> ApiResult<(StatusCode, Json<Organization>)> {
    if admin.0.org.is_some() {
        return Err(ApiError::forbidden(
            "only the root key creates organizations",
        ));
    }
    sck_enforce::org_names::check_new_org(&body.organization_id)?;
    state.registry().ensure_org(&body.organization_id).await?;
    Ok((StatusCode::CREATED, Json(body)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CredentialBody {
    organization_id: String,
    /// `admin` or `sidecar`.
    kind: String,
}

/// A new credential. The secret is shown this once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct NewCredential {
    id: String,
    kind: String,
    organization_id: String,
    secret: String,
}

#[utoipa::path(post, path = "/api/v1/enforcement/credentials", tag = "credentials",
    request_body = CredentialBody,
    security(("admin_key" = [])),
    responses(
        (status = 201, description = "The credential with its secret (shown once)", body = NewCredential),
        (status = 400, description = "Malformed request or unknown kind"),
        (status = 401, description = "No valid admin key"),
        (status = 403, description = "The key may not act on this organization"),
        (status = 404, description = "No such organization"),
    ))]
async fn create_credential(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<CredentialBody>,
) -> ApiResult<(StatusCode, Json<NewCredential>)> {
    admin.authorize_org(&body.organization_id)?;
    let kind = match body.kind.as_str() {
        "admin" => CredentialKind::Admin,
        "sidecar" => CredentialKind::Sidecar,
        other => {
            return Err(ApiError::bad_request(
                "invalid_request",
                format!("kind {other:?} is not admin or sidecar"),
            ))
        }
    };
    super::require_org(&state, &body.organization_id).await?;
    let (id, secret) = state
        .lifecycle()
        .issue_credential(kind, &body.organization_id, admin.actor())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(NewCredential {
            id,
            kind: body.kind,
            organization_id: body.organization_id,
            secret,
        }),
    ))
}
