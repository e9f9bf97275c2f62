//! `/api/v1/enforcement/orgs` and `/api/v1/enforcement/credentials`: creating organizations
//! (root key only) and admin keys or sidecar credentials (secrets are returned once, stored
//! hashed, and recorded in the ledger by id only).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use sck_ledger::entry::{Event, EventType};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api_error::{ApiError, ApiResult};
use crate::auth::AdminKey;
use crate::extract::JsonBody;
use crate::registry::CredentialKind;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/enforcement/orgs", post(create_org))
        .route("/api/v1/enforcement/credentials", post(create_credential))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OrgBody {
    organization_id: String,
}

async fn create_org(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<OrgBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if admin.0.org.is_some() {
        return Err(ApiError::forbidden(
            "only the root key creates organizations",
        ));
    }
    crate::lifecycle::check_name("organizationId", &body.organization_id)?;
    state
        .lifecycle
        .registry
        .ensure_org(&body.organization_id)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"organizationId": body.organization_id})),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CredentialBody {
    organization_id: String,
    kind: String,
}

async fn create_credential(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<CredentialBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
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
    let registry = &state.lifecycle.registry;
    if !registry.org_exists(&body.organization_id).await? {
        return Err(ApiError::not_found(format!(
            "organization {} not found",
            body.organization_id
        )));
    }
    let (id, secret) = issue_credential(&state, kind, &body.organization_id, admin.actor()).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": id, "kind": body.kind, "organizationId": body.organization_id, "secret": secret}),
        ),
    ))
}

/// Creates a credential and records `credential.created` (id only) in the org's log.
pub async fn issue_credential(
    state: &AppState,
    kind: CredentialKind,
    org: &str,
    actor: &str,
) -> ApiResult<(String, String)> {
    let (id, secret) = state
        .lifecycle
        .registry
        .create_credential(kind, Some(org))
        .await?;
    let event = Event::new(
        EventType::CredentialCreated,
        json!({"credential_id": id, "kind": format!("{kind:?}").to_lowercase(), "actor": actor}),
    )
    .map_err(|e| ApiError::internal("ledger event", e))?;
    state.lifecycle.ledger.append(org, event).await?;
    Ok((id, secret))
}
