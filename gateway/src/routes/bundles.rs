//! `/api/v1/enforcement/bundles/*`: the bundle lifecycle API (admin keys only).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::api_error::{ApiError, ApiResult};
use crate::auth::AdminKey;
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;
use sck_enforce::lifecycle::{CompileRequest, Source};
use sck_enforce::registry::{BundleRecord, Status};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_bundles))
        .routes(routes!(compile_bundle))
        .routes(routes!(publish_bundle))
        .routes(routes!(activate_bundle))
        .routes(routes!(revoke_bundle))
        .routes(routes!(get_bundle))
}

/// The bundle `id` if `admin` may see its org (404 otherwise, as for an unknown id).
async fn visible_bundle(state: &AppState, admin: &AdminKey, id: &str) -> ApiResult<BundleRecord> {
    let record = state.lifecycle().get(id).await?;
    admin.authorize_read(&record.organization_id, &format!("bundle {id}"))?;
    Ok(record)
}

/// A policy source to compile into a draft: exactly one of `files` or `tarball`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CompileBody {
    organization_id: String,
    name: String,
    /// Semantic version, unique per org and name.
    version: String,
    /// The manifest `revision` (defaults to the version).
    revision: Option<String>,
    /// Source tree: path → file content.
    files: Option<BTreeMap<String, String>>,
    /// A source or bundle `.tar.gz`, base64.
    tarball: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/enforcement/bundles/compile", tag = "bundles",
    request_body = CompileBody,
    security(("admin_key" = [])),
    responses(
        (status = 201, description = "The draft bundle", body = BundleRecord),
        (status = 400, description = "Malformed request (`invalid_json`, `invalid_request`)"),
        (status = 401, description = "No valid admin key"),
        (status = 403, description = "The key may not act on this organization"),
        (status = 404, description = "No such organization"),
        (status = 409, description = "This version exists already"),
        (status = 413, description = "The source or bundle is too large"),
        (status = 422, description = "The policy or bundle is invalid or a Rego test failed (`bundle_invalid`), or a Rego test ran past `[bundles] test_timeout_ms` (`policy_test_timeout`); `diagnostics` name each problem and test"),
        (status = 503, description = "At capacity: `compile_busy` (`[bundles] max_concurrent_compiles` compiles running) or `decompression_busy` (`[http] decompression_budget_bytes` in use); `Retry-After` says when to retry. Also: the database or ledger is unavailable, or the request timed out"),
    ))]
async fn compile_bundle(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<CompileBody>,
) -> ApiResult<(StatusCode, Json<BundleRecord>)> {
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
        .lifecycle()
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
    Ok((StatusCode::CREATED, Json(record)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PublishBody {
    bundle_id: String,
    /// The signer to sign with (the deployment's default signer when absent).
    signer_id: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/enforcement/bundles/publish", tag = "bundles",
    request_body = PublishBody,
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The signed, published bundle", body = BundleRecord),
        (status = 400, description = "Malformed request or unknown signer"),
        (status = 401, description = "No valid admin key"),
        (status = 404, description = "No such bundle (or not visible to this key)"),
        (status = 409, description = "The bundle is not a draft"),
        (status = 503, description = "`decompression_busy` (`[http] decompression_budget_bytes` in use, with `Retry-After`), the database or ledger is unavailable, or the request timed out"),
    ))]
async fn publish_bundle(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<PublishBody>,
) -> ApiResult<Json<BundleRecord>> {
    visible_bundle(&state, &admin, &body.bundle_id).await?;
    let published = state
        .lifecycle()
        .publish(admin.actor(), &body.bundle_id, body.signer_id.as_deref())
        .await?;
    Ok(Json(published))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ActivateBody {
    bundle_id: String,
    /// Allow activating a lower version than the active one.
    #[serde(default)]
    rollback: bool,
}

/// What an activation changed.
#[derive(Debug, Serialize, ToSchema)]
struct ActivationAnswer {
    /// The now active version.
    bundle: BundleRecord,
    /// The version it replaced, if any.
    superseded: Option<BundleRecord>,
    /// False when the bundle was active already.
    changed: bool,
}

#[utoipa::path(post, path = "/api/v1/enforcement/bundles/activate", tag = "bundles",
    request_body = ActivateBody,
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "Activated; this replica enforces it before answering", body = ActivationAnswer),
        (status = 400, description = "Malformed request"),
        (status = 401, description = "No valid admin key"),
        (status = 404, description = "No such bundle (or not visible to this key)"),
        (status = 409, description = "Not activatable: a draft, revoked, or a downgrade without `rollback`"),
        (status = 422, description = "The stored bundle failed re-verification"),
        (status = 503, description = "`decompression_busy` (`[http] decompression_budget_bytes` in use, with `Retry-After`), the database or ledger is unavailable, or the request timed out"),
    ))]
async fn activate_bundle(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<ActivateBody>,
) -> ApiResult<Json<ActivationAnswer>> {
    visible_bundle(&state, &admin, &body.bundle_id).await?;
    let activation = state
        .lifecycle()
        .activate(admin.actor(), &body.bundle_id, body.rollback)
        .await?;
    // This replica enforces the new version before the activation is acknowledged.
    state.decisions().snapshots().refresh().await?;
    Ok(Json(ActivationAnswer {
        bundle: activation.activated,
        superseded: activation.superseded,
        changed: activation.changed,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RevokeBody {
    bundle_id: String,
    reason: String,
    /// The published version to activate instead, when revoking the active one.
    rollback_to: Option<String>,
    /// Allow leaving no active version.
    #[serde(default)]
    allow_no_active: bool,
}

/// What a revocation changed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct RevocationAnswer {
    /// The revoked version.
    bundle: BundleRecord,
    /// The version activated in its place, if any.
    rolled_back_to: Option<BundleRecord>,
    /// Whether the revoked version was the active one.
    was_active: bool,
}

#[utoipa::path(post, path = "/api/v1/enforcement/bundles/revoke", tag = "bundles",
    request_body = RevokeBody,
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "Revoked", body = RevocationAnswer),
        (status = 400, description = "Malformed request or unusable rollback target"),
        (status = 401, description = "No valid admin key"),
        (status = 404, description = "No such bundle or `rollbackTo` version (or not visible to this key)"),
        (status = 409, description = "Not revocable as asked (e.g. the active version without a rollback target)"),
        (status = 503, description = "`decompression_busy` (`[http] decompression_budget_bytes` in use, with `Retry-After`), the database or ledger is unavailable, or the request timed out"),
    ))]
async fn revoke_bundle(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<RevokeBody>,
) -> ApiResult<Json<RevocationAnswer>> {
    visible_bundle(&state, &admin, &body.bundle_id).await?;
    let revocation = state
        .lifecycle()
        .revoke(
            admin.actor(),
            &body.bundle_id,
            &body.reason,
            body.rollback_to.as_deref(),
            body.allow_no_active,
        )
        .await?;
    state.decisions().snapshots().refresh().await?;
    Ok(Json(RevocationAnswer {
        bundle: revocation.revoked,
        rolled_back_to: revocation.rolled_back_to,
        was_active: revocation.was_active,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// The organization (the key's own by default; the root key lists every org).
    organization_id: Option<String>,
    name: Option<String>,
    /// DRAFT, PUBLISHED, ACTIVE, SUPERSEDED or REVOKED.
    status: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct BundleList {
    bundles: Vec<BundleRecord>,
}

#[utoipa::path(get, path = "/api/v1/enforcement/bundles", tag = "bundles",
    params(ListQuery),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "Matching bundle versions", body = BundleList),
        (status = 400, description = "Unknown query parameter or status"),
        (status = 401, description = "No valid admin key"),
        (status = 403, description = "The key may not act on this organization"),
        (status = 404, description = "No such organization"),
    ))]
async fn list_bundles(
    State(state): State<AppState>,
    admin: AdminKey,
    QueryParams(query): QueryParams<ListQuery>,
) -> ApiResult<Json<BundleList>> {
    let org = super::org_scope(&state, &admin, query.organization_id, |org| {
        admin.authorize_org(org)
    })
    .await?;
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
        .registry()
        .list(org.as_deref(), query.name.as_deref(), status)
        .await?;
    Ok(Json(BundleList { bundles }))
}

#[utoipa::path(get, path = "/api/v1/enforcement/bundles/{id}", tag = "bundles",
    params(("id" = String, Path, description = "Bundle id")),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The bundle version", body = BundleRecord),
        (status = 401, description = "No valid admin key"),
        (status = 404, description = "No such bundle (or not visible to this key)"),
    ))]
async fn get_bundle(
    State(state): State<AppState>,
    admin: AdminKey,
    Path(id): Path<String>,
) -> ApiResult<Json<BundleRecord>> {
    Ok(Json(visible_bundle(&state, &admin, &id).await?))
}
