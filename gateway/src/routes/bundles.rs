//! `/api/v1/enforcement/bundles/*`: the bundle lifecycle API (admin keys only).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api_error::{ApiError, ApiResult};
use crate::auth::AdminKey;
use crate::extract::{JsonBody, QueryParams};
use crate::lifecycle::{CompileRequest, Source};
use crate::registry::Status;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/enforcement/bundles", get(list))
        .route("/api/v1/enforcement/bundles/compile", post(compile))
        .route("/api/v1/enforcement/bundles/publish", post(publish))
        .route("/api/v1/enforcement/bundles/activate", post(activate))
        .route("/api/v1/enforcement/bundles/revoke", post(revoke))
        .route("/api/v1/enforcement/bundles/{id}", get(get_one))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CompileBody {
    organization_id: String,
    name: String,
    version: String,
    revision: Option<String>,
    files: Option<BTreeMap<String, String>>,
    tarball: Option<String>,
}

async fn compile(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<CompileBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    admin.authorize_org(&body.organization_id)?;
    let source = match (body.files, body.tarball) {
        (Some(files), None) => Source::Files(files),
        (None, Some(b64)) => Source::Tarball(
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| {
                    ApiError::bad_request("invalid_request", format!("tarball is not base64: {e}"))
                })?,
        ),
        _ => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "give exactly one of files (a path → content map) or tarball (base64)",
            ))
        }
    };
    let record = state
        .lifecycle
        .compile(
            admin.actor(),
            CompileRequest {
                org: body.organization_id,
                name: body.name,
                version: body.version,
                revision: body.revision,
                source,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!(record))))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PublishBody {
    bundle_id: String,
    signer_id: Option<String>,
}

async fn publish(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<PublishBody>,
) -> ApiResult<Json<Value>> {
    let record = state.lifecycle.get(&body.bundle_id).await?;
    admin.authorize_read(
        &record.organization_id,
        &format!("bundle {}", body.bundle_id),
    )?;
    let published = state
        .lifecycle
        .publish(admin.actor(), &body.bundle_id, body.signer_id.as_deref())
        .await?;
    Ok(Json(json!(published)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ActivateBody {
    bundle_id: String,
    #[serde(default)]
    rollback: bool,
}

async fn activate(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<ActivateBody>,
) -> ApiResult<Json<Value>> {
    let record = state.lifecycle.get(&body.bundle_id).await?;
    admin.authorize_read(
        &record.organization_id,
        &format!("bundle {}", body.bundle_id),
    )?;
    let activation = state
        .lifecycle
        .activate(admin.actor(), &body.bundle_id, body.rollback)
        .await?;
    // This replica enforces the new version before the activation is acknowledged.
    state.decisions.snapshots.refresh().await?;
    Ok(Json(json!({
        "bundle": activation.activated,
        "superseded": activation.superseded,
        "changed": activation.changed,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RevokeBody {
    bundle_id: String,
    reason: String,
    rollback_to: Option<String>,
    #[serde(default)]
    allow_no_active: bool,
}

async fn revoke(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<RevokeBody>,
) -> ApiResult<Json<Value>> {
    let record = state.lifecycle.get(&body.bundle_id).await?;
    admin.authorize_read(
        &record.organization_id,
        &format!("bundle {}", body.bundle_id),
    )?;
    let revocation = state
        .lifecycle
        .revoke(
            admin.actor(),
            &body.bundle_id,
            &body.reason,
            body.rollback_to.as_deref(),
            body.allow_no_active,
        )
        .await?;
    state.decisions.snapshots.refresh().await?;
    Ok(Json(json!({
        "bundle": revocation.revoked,
        "rolledBackTo": revocation.rolled_back_to,
        "wasActive": revocation.was_active,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListQuery {
    organization_id: Option<String>,
    name: Option<String>,
    status: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    admin: AdminKey,
    QueryParams(query): QueryParams<ListQuery>,
) -> ApiResult<Json<Value>> {
    let org = query.organization_id.or_else(|| admin.0.org.clone());
    if let Some(org) = &org {
        admin.authorize_org(org)?;
    }
    let status = match query.status.as_deref() {
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_request",
                format!("status {s:?} is not one of DRAFT, PUBLISHED, ACTIVE, SUPERSEDED, REVOKED"),
            )
        })?),
        None => None,
    };
    let bundles = state
        .lifecycle
        .registry
        .list(org.as_deref(), query.name.as_deref(), status)
        .await?;
    Ok(Json(json!({ "bundles": bundles })))
}

async fn get_one(
    State(state): State<AppState>,
    admin: AdminKey,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let record = state.lifecycle.get(&id).await?;
    admin.authorize_read(&record.organization_id, &format!("bundle {id}"))?;
    Ok(Json(json!(record)))
}
