//! The OPA sidecar fleet endpoints: OPA's status and decision-log services
//! (`POST /status[/{partition}]`, `POST /logs[/{partition}]`, sidecar credential) and the fleet
//! view (`GET /api/v1/enforcement/fleet?org=`, admin key).
//!
//! The org always comes from the sidecar credential, never from the payload, so a sidecar can
//! only write to its own org's ledger. Decision-log bodies must be gzip (`Content-Encoding:
//! gzip`), are bounded after decompression by `[fleet] max_decompressed_bytes`, and are
//! validated whole before anything is written; the answer (200) comes after every entry is
//! durable. Status reports may be plain or gzip JSON.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::api_error::{ApiError, ApiResult};
use crate::auth::{AdminKey, SidecarCredential};
use crate::extract::QueryParams;
use crate::state::AppState;
use sck_enforce::budget::Reservation;
use sck_enforce::fleet::events::{gunzip_bounded, parse_batch};
use sck_enforce::fleet::status::parse_status;
use sck_enforce::fleet::{ActiveRevision, FleetService, Uploader};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(status_report))
        .routes(routes!(status_report_partition))
        .routes(routes!(decision_logs))
        .routes(routes!(decision_logs_partition))
        .routes(routes!(fleet_view))
}

/// An upload of an authenticated sidecar: its org (sidecar credentials always belong to one),
/// its credential id, and the body as sent.
struct Upload {
    org: String,
    credential_id: String,
    gzip: bool,
    body: Bytes,
}

impl FromRequest<AppState> for Upload {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> ApiResult<Self> {
        let (mut parts, body) = request.into_parts();
        let sidecar = SidecarCredential::from_request_parts(&mut parts, state).await?;
        let org = sidecar
            .0
            .org
            .ok_or_else(|| ApiError::forbidden("this credential belongs to no organization"))?;
        let gzip = is_gzip(&parts.headers);
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|rejection| {
                let detail = rejection.body_text();
                if detail.to_lowercase().contains("length limit") {
                    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", detail)
                } else {
                    ApiError::bad_request("invalid_request", detail)
                }
            })?;
        Ok(Upload {
            org,
            credential_id: sidecar.0.id,
            gzip,
            body,
        })
    }
}

impl Upload {
    /// The JSON document: gunzipped (within `[fleet] max_decompressed_bytes`, charged to the
    /// shared decompression budget, whose reservation comes along: the bytes live as long as
    /// it) when sent with `Content-Encoding: gzip`; without it, the body as sent, or `415
    /// gzip_required` if gzip is required.
    fn json(
        &self,
        fleet: &FleetService,
        gzip_required: bool,
    ) -> ApiResult<(Vec<u8>, Option<Reservation>)> {
        if self.gzip {
            let mut reservation = fleet.reserve_for_gzip(&self.body)?;
            let json = gunzip_bounded(
                &self.body,
                fleet.config().max_decompressed_bytes,
                &mut reservation,
            )?;
            Ok((json, Some(reservation)))
        } else if gzip_required {
            Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "gzip_required",
                "decision-log uploads must be gzip JSON arrays sent with Content-Encoding: gzip",
            ))
        } else {
            Ok((self.body.to_vec(), None))
        }
    }

    fn uploader<'a>(&'a self, partition: Option<&'a str>) -> Uploader<'a> {
        Uploader {
            credential_id: &self.credential_id,
            partition,
        }
    }
}

fn is_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case("gzip"))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusAck {
    /// The reporting OPA's instance id (`labels.id`).
    instance_id: String,
}

/// The answers to a status report.
#[derive(utoipa::IntoResponses)]
pub enum StatusReportAnswers {
    /// Recorded as the instance's latest report.
    #[response(status = 200)]
    Recorded(#[to_schema] StatusAck),
    /// Not a status report (`invalid_json`, `invalid_gzip`, `invalid_request`).
    #[response(status = 400)]
    Invalid,
    /// No valid sidecar credential.
    #[response(status = 401)]
    Unauthenticated,
    /// The credential belongs to no organization.
    #[response(status = 403)]
    NoOrganization,
    /// Too large, before or after decompression.
    #[response(status = 413)]
    TooLarge,
    /// `decompression_busy`: the server's budget of decompressed bytes in flight
    /// (`[http] decompression_budget_bytes`) is in use; `Retry-After` says when to retry.
    #[response(status = 503)]
    Busy,
}

#[utoipa::path(post, path = "/status", tag = "fleet",
    request_body(content = Object, description = "OPA's status report (plain or `Content-Encoding: gzip` JSON)"),
    security(("sidecar_credential" = [])),
    responses(StatusReportAnswers))]
async fn status_report(
    State(state): State<AppState>,
    upload: Upload,
) -> ApiResult<Json<StatusAck>> {
    record_status(&state, &upload, None).await
}

#[utoipa::path(post, path = "/status/{*partition}", tag = "fleet",
    params(("partition" = String, Path, description = "OPA's `partition_name`")),
    request_body(content = Object, description = "OPA's status report (plain or `Content-Encoding: gzip` JSON)"),
    security(("sidecar_credential" = [])),
    responses(StatusReportAnswers))]
async fn status_report_partition(
    State(state): State<AppState>,
    Path(partition): Path<String>,
    upload: Upload,
) -> ApiResult<Json<StatusAck>> {
    record_status(&state, &upload, Some(&partition)).await
}

async fn record_status(
    state: &AppState,
    upload: &Upload,
    partition: Option<&str>,
) -> ApiResult<Json<StatusAck>> {
    let fleet = &state.fleet();
    let (json, _reservation) = upload.json(fleet, false)?;
    let value: Value = serde_json::from_slice(&json).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("the status report is not JSON: {e}"),
        )
    })?;
    let report = parse_status(&value)?;
    let org = &upload.org;
    fleet
        .record_status(org, &upload.uploader(partition), &report)
        .await?;
    fleet.refresh_gauges_soon(org).await?;
    Ok(Json(StatusAck {
        instance_id: report.instance_id,
    }))
}

/// What a decision-log upload did: every event was received; new decision ids were appended
/// to the org's ledger, ids seen before were not.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogsAck {
    received: usize,
    appended: usize,
    duplicates: usize,
}

/// The answers to a decision-log upload.
#[derive(utoipa::IntoResponses)]
pub enum LogUploadAnswers {
    /// Every new decision is durable in the org's ledger.
    #[response(status = 200)]
    Ingested(#[to_schema] LogsAck),
    /// Not a valid batch (`invalid_gzip`, `invalid_json`, `invalid_request`); nothing was
    /// written.
    #[response(status = 400)]
    Invalid,
    /// No valid sidecar credential.
    #[response(status = 401)]
    Unauthenticated,
    /// The credential belongs to no organization.
    #[response(status = 403)]
    NoOrganization,
    /// Too large, before or after decompression, or too many events.
    #[response(status = 413)]
    TooLarge,
    /// Not sent with `Content-Encoding: gzip` (`gzip_required`).
    #[response(status = 415)]
    GzipRequired,
    /// `decompression_busy`: the server's budget of decompressed bytes in flight
    /// (`[http] decompression_budget_bytes`) is in use; `Retry-After` says when to retry.
    /// Nothing was written.
    #[response(status = 503)]
    Busy,
}

#[utoipa::path(post, path = "/logs", tag = "fleet",
    params(("Content-Encoding" = String, Header, description = "Must be `gzip`")),
    request_body(content = Vec<Object>, description = "A gzip JSON array of OPA decision-log events"),
    security(("sidecar_credential" = [])),
    responses(LogUploadAnswers))]
async fn decision_logs(State(state): State<AppState>, upload: Upload) -> ApiResult<Json<LogsAck>> {
    ingest_logs(&state, &upload, None).await
}

#[utoipa::path(post, path = "/logs/{*partition}", tag = "fleet",
    params(
        ("partition" = String, Path, description = "OPA's `partition_name`"),
        ("Content-Encoding" = String, Header, description = "Must be `gzip`"),
    ),
    request_body(content = Vec<Object>, description = "A gzip JSON array of OPA decision-log events"),
    security(("sidecar_credential" = [])),
    responses(LogUploadAnswers))]
async fn decision_logs_partition(
    State(state): State<AppState>,
    Path(partition): Path<String>,
    upload: Upload,
) -> ApiResult<Json<LogsAck>> {
    ingest_logs(&state, &upload, Some(&partition)).await
}

async fn ingest_logs(
    state: &AppState,
    upload: &Upload,
    partition: Option<&str>,
) -> ApiResult<Json<LogsAck>> {
    let fleet = &state.fleet();
    let config = fleet.config();
    let (json, _reservation) = upload.json(fleet, true)?;
    let org = &upload.org;
    let batch = parse_batch(
        &json,
        &upload.uploader(partition),
        fleet.input_policy(org),
        config.max_events_per_batch,
    )?;
    let outcome = fleet.ingest(org, batch).await?;
    Ok(Json(LogsAck {
        received: outcome.received,
        appended: outcome.appended,
        duplicates: outcome.duplicates,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct FleetQuery {
    /// The organization (the key's own by default; required for the root key).
    org: Option<String>,
}

/// The fleet of one org: its active bundle versions and every sidecar's latest report.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FleetView {
    pub organization_id: String,
    pub active_bundles: Vec<ActiveRevision>,
    pub summary: FleetSummary,
    pub sidecars: Vec<SidecarView>,
}

/// Sidecar counts (drifted counts live sidecars only).
#[derive(ToSchema)]
pub struct FleetSummary {
    pub sidecars: u64,
    pub live: u64,
    pub drifted: u64,
    pub stale: u64,
}

/// One sidecar's latest status report and its drift.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarView {
    pub instance_id: String,
    pub opa_version: Option<String>,
    pub labels: BTreeMap<String, Value>,
    pub partition: Option<String>,
    pub credential_id: String,
    pub first_seen: String,
    pub last_contact: String,
    /// No report within `[fleet] stale_after_secs`.
    pub stale: bool,
    /// Bundle name → the `active_revision` it reported.
    pub active_revisions: BTreeMap<String, Value>,
    pub drift: bool,
    pub drift_reasons: Vec<String>,
    /// Per reported bundle: its summary plus `expected_revision`, `expected_version`, `in_sync`.
    pub bundles: Vec<BTreeMap<String, Value>>,
    /// Plugin name → state.
    pub plugins: BTreeMap<String, Value>,
}

#[utoipa::path(get, path = "/api/v1/enforcement/fleet", tag = "fleet",
    params(FleetQuery),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The org's sidecars, their drift and staleness", body = FleetView),
        (status = 400, description = "No organization given to the root key, or an unknown query parameter"),
        (status = 401, description = "No valid admin key"),
        (status = 404, description = "No such organization, or not visible to this key"),
    ))]
async fn fleet_view(
    State(state): State<AppState>,
    admin: AdminKey,
    QueryParams(query): QueryParams<FleetQuery>,
) -> ApiResult<Json<Value>> {
    let org = super::org_scope(&state, &admin, query.org, |org| {
        admin.authorize_read(org, "organization")
    })
    .await?
    .ok_or_else(|| ApiError::bad_request("invalid_request", "give ?org=<organization>"))?;
    Ok(Json(state.fleet().view(&org).await?))
}
