//! The bundle service OPA sidecars poll: `GET /bundles/{org}/{name}.tar.gz` (the active
//! version) and `GET /bundles/{org}/sha256/{hex}.tar.gz` (an immutable published version).
//!
//! `ETag` is the quoted SHA-256 of the tarball; a matching `If-None-Match` gets 304. With
//! `Prefer: ...;wait=N` the request is held until the active version changes (or N seconds,
//! capped by configuration, pass: then 304). No `Content-Encoding` is ever set: the body is the
//! gzip tarball itself, as OPA expects. The active version comes from the activation-aware
//! cache (`registry::poll_cache`), so a 304 reads no database, and
//! tarballs are sent from memory, shared.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::api_error::{ApiError, ApiResult};
use crate::auth::SidecarCredential;
use crate::state::AppState;

/// How often a waiting long poll re-reads the active version even without a notification.
const RECHECK: Duration = Duration::from_secs(5);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(active_bundle))
        .routes(routes!(bundle_by_digest))
}

/// What both bundle resources answer instead of a bundle.
#[derive(utoipa::IntoResponses)]
pub enum FetchRefusals {
    /// The sidecar has this version (its `If-None-Match` names the ETag).
    #[response(status = 304)]
    NotModified,
    /// No valid sidecar credential.
    #[response(status = 401)]
    Unauthenticated,
    /// The credential belongs to another organization.
    #[response(status = 403)]
    OtherOrganization,
}

fn strip_tarball_suffix(file: &str) -> ApiResult<&str> {
    file.strip_suffix(".tar.gz")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::not_found(format!("{file}: bundle resources end in .tar.gz")))
}

/// The `wait=N` of a `Prefer` header (OPA long polling), if any.
fn prefer_wait(headers: &HeaderMap) -> Option<u64> {
    headers
        .get_all(header::HeaderName::from_static("prefer"))
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([';', ',']))
        .find_map(|part| part.trim().strip_prefix("wait=")?.trim().parse().ok())
}

/// True if `If-None-Match` names `sha256` (or is `*`).
fn not_modified(headers: &HeaderMap, sha256: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|tag| tag == sha256 || tag == "*")
}

fn etag(sha256: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{sha256}\"")).expect("hex is a valid header value")
}

fn not_modified_response(sha256: &str) -> Response {
    (StatusCode::NOT_MODIFIED, [(header::ETAG, etag(sha256))]).into_response()
}

fn bundle_response(tarball: Bytes, sha256: &str, long_poll: bool, immutable: bool) -> Response {
    let content_type = if long_poll {
        "application/vnd.openpolicyagent.bundles"
    } else {
        "application/gzip"
    };
    let cache = if immutable {
        "private, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::ETAG, etag(sha256)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        tarball,
    )
        .into_response()
}

#[utoipa::path(get, path = "/bundles/{org}/{file}", tag = "bundle service",
    params(
        ("org" = String, Path, description = "Organization"),
        ("file" = String, Path, description = "`<bundle name>.tar.gz`"),
        ("If-None-Match" = Option<String>, Header, description = "The ETag of the bundle the sidecar has"),
        ("Prefer" = Option<String>, Header, description = "`wait=N`: hold the request until the active version changes or N seconds pass (OPA long polling)"),
    ),
    security(("sidecar_credential" = [])),
    responses(
        (status = 200, description = "The active version's signed bundle (`application/vnd.openpolicyagent.bundles` for long polls)",
            content(
                (Vec<u8> = "application/gzip"),
                (Vec<u8> = "application/vnd.openpolicyagent.bundles"),
            ),
            headers(("ETag" = String, description = "The quoted SHA-256 of the tarball"))),
        (status = 404, description = "No active bundle of this name (`no_active_bundle`), or not a `.tar.gz` resource"),
        FetchRefusals,
    ))]
async fn active_bundle(
    State(state): State<AppState>,
    sidecar: SidecarCredential,
    Path((org, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    sidecar.authorize_org(&org)?;
    let name = strip_tarball_suffix(&file)?;
    let wait = prefer_wait(&headers).map(|w| w.min(state.config().http.long_poll_max_secs));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait.unwrap_or(0));
    let cache = state.poll_cache();
    // Subscribe before reading, so a change between the read and the wait is not missed.
    let mut changes = state.hub().subscribe();
    loop {
        let active = cache.active(&org, name).await?;
        if let Some(active) = &active {
            if !not_modified(&headers, &active.sha256) {
                metrics::counter!("sck_bundle_fetches_total", "result" => "200").increment(1);
                let tarball = cache.tarball(&active.bundle_id).await?.ok_or_else(|| {
                    ApiError::internal("bundle service", "active tarball missing")
                })?;
                return Ok(bundle_response(
                    tarball,
                    &active.sha256,
                    wait.is_some(),
                    false,
                ));
            }
        }
        let now = tokio::time::Instant::now();
        if wait.is_none() || now >= deadline {
            return match active {
                Some(active) => {
                    metrics::counter!("sck_bundle_fetches_total", "result" => "304").increment(1);
                    Ok(not_modified_response(&active.sha256))
                }
                None => Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "no_active_bundle",
                    format!("organization {org} has no active bundle named {name}"),
                )),
            };
        }
        let pause = (deadline - now).min(RECHECK);
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

#[utoipa::path(get, path = "/bundles/{org}/sha256/{file}", tag = "bundle service",
    params(
        ("org" = String, Path, description = "Organization"),
        ("file" = String, Path, description = "`<hex SHA-256 of the tarball>.tar.gz`"),
        ("If-None-Match" = Option<String>, Header, description = "The ETag of the bundle the sidecar has"),
    ),
    security(("sidecar_credential" = [])),
    responses(
        (status = 200, description = "A published version's signed bundle (immutable)",
            body = Vec<u8>, content_type = "application/gzip",
            headers(("ETag" = String, description = "The quoted SHA-256 of the tarball"))),
        (status = 404, description = "No published bundle with this digest in the organization"),
        FetchRefusals,
    ))]
async fn bundle_by_digest(
    State(state): State<AppState>,
    sidecar: SidecarCredential,
    Path((org, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    sidecar.authorize_org(&org)?;
    let sha256 = strip_tarball_suffix(&file)?.to_ascii_lowercase();
    let registry = &state.registry();
    let id = registry
        .published_by_sha256(&org, &sha256)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no published bundle {sha256} in organization {org}"
            ))
        })?;
    if not_modified(&headers, &sha256) {
        return Ok(not_modified_response(&sha256));
    }
    let tarball = state
        .poll_cache()
        .tarball(&id)
        .await?
        .ok_or_else(|| ApiError::internal("bundle service", "tarball missing"))?;
    Ok(bundle_response(tarball, &sha256, false, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_opa_long_poll_preference() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "prefer",
            HeaderValue::from_static("modes=snapshot,delta;wait=30"),
        );
        assert_eq!(prefer_wait(&headers), Some(30));
        assert_eq!(prefer_wait(&HeaderMap::new()), None);
    }

    #[test]
    fn matches_quoted_weak_and_listed_etags() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"aa\", W/\"bb\""),
        );
        assert!(not_modified(&headers, "aa"));
        assert!(not_modified(&headers, "bb"));
        assert!(!not_modified(&headers, "cc"));
    }
}
