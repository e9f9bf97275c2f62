//! The OPA sidecar fleet endpoints: OPA's status and decision-log services
//! (`POST /status[/{partition}]`, `POST /logs[/{partition}]`, sidecar credential) and the fleet
//! view (`GET /api/v1/enforcement/fleet?org=`, admin key).
//!
//! The org always comes from the sidecar credential, never from the payload, so a sidecar can
//! only write to its own org's ledger. Decision-log bodies must be gzip (`Content-Encoding:
//! gzip`), are bounded after decompression by `[fleet] max_decompressed_bytes`, and are
//! validated whole before anything is written; the answer (200) comes after every entry is
//! durable. Status reports may be plain or gzip JSON.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api_error::{ApiError, ApiResult};
use crate::auth::{AdminKey, SidecarCredential};
use crate::extract::QueryParams;
use crate::fleet::events::{gunzip_bounded, parse_batch};
use crate::fleet::status::parse_status;
use crate::fleet::Uploader;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/status", post(status_report))
        .route("/status/{*partition}", post(status_report_partition))
        .route("/logs", post(decision_logs))
        .route("/logs/{*partition}", post(decision_logs_partition))
        .route("/api/v1/enforcement/fleet", get(fleet_view))
}

/// The org of a sidecar credential (sidecar credentials always belong to one org).
fn sidecar_org(sidecar: &SidecarCredential) -> ApiResult<&str> {
    sidecar
        .0
        .org
        .as_deref()
        .ok_or_else(|| ApiError::forbidden("this credential belongs to no organization"))
}

fn body_bytes(body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body.map_err(|rejection| {
        let detail = rejection.body_text();
        if detail.to_lowercase().contains("length limit") {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", detail)
        } else {
            ApiError::bad_request("invalid_request", detail)
        }
    })
}

fn is_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case("gzip"))
}

async fn status_report(
    State(state): State<AppState>,
    sidecar: SidecarCredential,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    record_status(&state, &sidecar, None, &headers, body).await
}

async fn status_report_partition(
    State(state): State<AppState>,
    sidecar: SidecarCredential,
    Path(partition): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    record_status(&state, &sidecar, Some(&partition), &headers, body).await
}

async fn record_status(
    state: &AppState,
    sidecar: &SidecarCredential,
    partition: Option<&str>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let org = sidecar_org(sidecar)?;
    let body = body_bytes(body)?;
    let fleet = &state.fleet;
    let json = if is_gzip(headers) {
        gunzip_bounded(&body, fleet.config().max_decompressed_bytes)?
    } else {
        body.to_vec()
    };
    let value: Value = serde_json::from_slice(&json).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("the status report is not JSON: {e}"),
        )
    })?;
    let report = parse_status(&value)?;
    let uploader = Uploader {
        credential_id: &sidecar.0.id,
        partition,
    };
    fleet.record_status(org, &uploader, &report).await?;
    fleet.refresh_gauges_soon(org).await?;
    Ok(Json(json!({"instanceId": report.instance_id})))
}

async fn decision_logs(
    State(state): State<AppState>,
    sidecar: SidecarCredential,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    ingest_logs(&state, &sidecar, None, &headers, body).await
}

async fn decision_logs_partition(
    State(state): State<AppState>,
    sidecar: SidecarCredential,
    Path(partition): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    ingest_logs(&state, &sidecar, Some(&partition), &headers, body).await
}

async fn ingest_logs(
    state: &AppState,
    sidecar: &SidecarCredential,
    partition: Option<&str>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let org = sidecar_org(sidecar)?;
    let body = body_bytes(body)?;
    if !is_gzip(headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "gzip_required",
            "decision-log uploads must be gzip JSON arrays sent with Content-Encoding: gzip",
        ));
    }
    let fleet = &state.fleet;
    let config = fleet.config();
    let json = gunzip_bounded(&body, config.max_decompressed_bytes)?;
    let uploader = Uploader {
        credential_id: &sidecar.0.id,
        partition,
    };
    let batch = parse_batch(
        &json,
        &uploader,
        fleet.input_policy(org),
        config.max_events_per_batch,
    )?;
    let outcome = fleet.ingest(org, batch).await?;
    Ok(Json(json!({
        "received": outcome.received,
        "appended": outcome.appended,
        "duplicates": outcome.duplicates,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetQuery {
    org: Option<String>,
}

async fn fleet_view(
    State(state): State<AppState>,
    admin: AdminKey,
    QueryParams(query): QueryParams<FleetQuery>,
) -> ApiResult<Json<Value>> {
    let org = match (query.org, &admin.0.org) {
        (Some(org), _) => org,
        (None, Some(own)) => own.clone(),
        (None, None) => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "give ?org=<organization>",
            ))
        }
    };
    admin.authorize_read(&org, "organization")?;
    Ok(Json(state.fleet.view(&org).await?))
}
