//! The one error type of the HTTP API: every failure becomes an RFC 9457
//! `application/problem+json` body with the HTTP status and a stable machine-readable `code`.
//!
//! Internal failures (database, ledger) are logged with their cause and answered with a generic
//! message: details of the server never leak to a client, and neither do secrets.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A failure to report to an API client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// Individual problems (e.g. one per `file:line:col`), when there are several.
    pub diagnostics: Vec<String>,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    diagnostics: &'a [String],
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
            diagnostics: Vec::new(),
        }
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    /// An unexpected server-side failure: logged in full, reported generically.
    pub fn internal(context: &str, error: impl std::fmt::Display) -> Self {
        tracing::error!(context, error = %error, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            format!("{context} failed; see the server log"),
        )
    }

    /// The database or ledger is unreachable: fail closed, the client may retry.
    pub fn unavailable(context: &str, error: impl std::fmt::Display) -> Self {
        tracing::error!(context, error = %error, "dependency unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("{context} is unavailable; retry later"),
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.code, self.detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = Problem {
            kind: format!("urn:sck:error:{}", self.code),
            title,
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
            diagnostics: &self.diagnostics,
        };
        let json = serde_json::to_vec(&body).expect("problem serialises");
        (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            json,
        )
            .into_response()
    }
}

impl From<sck_bundler::BundleError> for ApiError {
    fn from(e: sck_bundler::BundleError) -> Self {
        let status = match e.code() {
            "bundle_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
            "io_error" => return ApiError::internal("bundle", e),
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let code = match e.code() {
            "policy_invalid" | "bundle_invalid" => "bundle_invalid",
            other => other,
        };
        let diagnostics = match &e {
            sck_bundler::BundleError::Policy(problems) => problems.clone(),
            _ => Vec::new(),
        };
        ApiError {
            diagnostics,
            ..ApiError::new(status, code, e.to_string())
        }
    }
}

impl From<sck_ledger::error::LedgerError> for ApiError {
    fn from(e: sck_ledger::error::LedgerError) -> Self {
        use sck_ledger::error::LedgerError as E;
        match e {
            E::UnknownLog(org) => ApiError::not_found(format!("no ledger log for {org}")),
            E::OutOfRange(message) => ApiError::bad_request("invalid_request", message),
            E::Proof(e) => ApiError::bad_request("invalid_request", e.to_string()),
            other => ApiError::unavailable("ledger", other),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::unavailable("database", e)
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;
