//! The HTTP face of errors: every failure becomes an RFC 9457 `application/problem+json` body
//! with the HTTP status and a stable machine-readable `code`. Services fail with
//! [`EnforceError`]; this module is the one place its [`Kind`] becomes a status.
//!
//! Internal failures (database, ledger) are answered with a generic message and their cause is
//! logged once, by [`log_causes`] in the request's span: details of the server never leak to a
//! client, and neither do secrets. Constructors never log.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use sck_enforce::error::{Cause, EnforceError, Kind};

/// A failure to report to an API client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// Individual problems (e.g. one per `file:line:col`), when there are several.
    pub diagnostics: Vec<String>,
    /// Seconds for a `Retry-After` header (a transient refusal).
    pub retry_after: Option<u64>,
    /// What the log says about an unexpected failure (never answered).
    pub cause: Option<Box<Cause>>,
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
            retry_after: None,
            cause: None,
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
        EnforceError::internal(context, error).into()
    }

    /// 503 with `Retry-After`: the server is at a capacity bound (concurrent compiles, the
    /// decompression budget); the same request may succeed later.
    pub fn busy(code: &'static str, detail: impl Into<String>, retry_after_secs: u64) -> Self {
        EnforceError::busy(code, detail, retry_after_secs).into()
    }

    /// The database or ledger is unreachable: fail closed, the client may retry.
    pub fn unavailable(context: &str, error: impl std::fmt::Display) -> Self {
        EnforceError::unavailable(context, error).into()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.code, self.detail)
    }
}

impl ApiError {
    /// The `application/problem+json` body of this error.
    pub fn problem_body(&self) -> Vec<u8> {
        let body = Problem {
            kind: format!("urn:sck:error:{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
            diagnostics: &self.diagnostics,
        };
        serde_json::to_vec(&body).expect("problem serialises")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            self.problem_body(),
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        if let Some(cause) = self.cause {
            response.extensions_mut().insert(*cause);
        }
        response
    }
}

/// Logs the cause of every internal failure answered, once, in the request's span (the
/// answer itself carries only the generic detail).
pub async fn log_causes(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(request).await;
    if let Some(cause) = response.extensions().get::<Cause>() {
        let status = response.status().as_u16();
        tracing::error!(status, context = %cause.context, error = %cause.error, "request failed");
    }
    response
}

/// Marks an upstream's answer relayed by a gateway route: [`problem_for_bare_errors`] leaves
/// it as the upstream sent it.
#[derive(Debug, Clone, Copy)]
pub struct Relayed;

/// Gives every error answer a problem body: those produced below the handlers (a wrong method,
/// an undecodable path parameter, a request timeout, a body over the limit) come from axum and
/// tower-http as plain text or empty. Answers that already carry JSON, and upstream answers
/// relayed by a route ([`Relayed`]), pass through unchanged.
pub async fn problem_for_bare_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if status.as_u16() < 400 || is_json || response.extensions().get::<Relayed>().is_some() {
        return response;
    }
    let code = match status {
        StatusCode::BAD_REQUEST => "invalid_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        s if s.is_server_error() => "internal_error",
        _ => "http_error",
    };
    let allow = response.headers().get(header::ALLOW).cloned();
    let text = axum::body::to_bytes(response.into_body(), 16 << 10)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let detail = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    let mut problem = ApiError::new(status, code, detail).into_response();
    if let Some(allow) = allow {
        problem.headers_mut().insert(header::ALLOW, allow);
    }
    problem
}

/// The status of each kind of service failure.
pub fn status_of(kind: Kind) -> StatusCode {
    match kind {
        Kind::Invalid => StatusCode::BAD_REQUEST,
        Kind::Unauthorized => StatusCode::UNAUTHORIZED,
        Kind::Forbidden => StatusCode::FORBIDDEN,
        Kind::NotFound => StatusCode::NOT_FOUND,
        Kind::Conflict => StatusCode::CONFLICT,
        Kind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Kind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        Kind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<EnforceError> for ApiError {
    fn from(e: EnforceError) -> Self {
        ApiError {
            status: status_of(e.kind),
            code: e.code,
            detail: e.detail,
            diagnostics: e.diagnostics,
            retry_after: e.retry_after,
            cause: e.cause,
        }
    }
}

/// Other crates' refusals reach a handler through [`EnforceError`], which decides their kind.
macro_rules! through_enforce_error {
    ($($source:ty),* $(,)?) => {$(
        impl From<$source> for ApiError {
            fn from(e: $source) -> Self {
                EnforceError::from(e).into()
            }
        }
    )*};
}

through_enforce_error!(
    sqlx::Error,
    sck_bundler::BundleError,
    sck_ledger::error::LedgerError,
    sck_wire::xsck::Rejection,
    sck_wire::opa_logs::UploadError,
    sck_wire::opa_status::StatusRefused,
);

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Everything logged while `f` runs.
    fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let out = tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        (out, text)
    }

    #[test]
    fn causes_are_logged_once_by_the_middleware_and_never_answered() {
        use tower::ServiceExt;
        let (error, by_constructor) =
            logged(|| EnforceError::unavailable("database", "pool timed out on db-7"));
        assert_eq!(by_constructor, "", "constructors never log");
        let app = axum::Router::new()
            .route(
                "/fail",
                axum::routing::get(move || {
                    let error = error.clone();
                    async move { ApiError::from(error) }
                }),
            )
            .layer(axum::middleware::from_fn(log_causes));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let ((status, body), log) = logged(|| {
            runtime.block_on(async {
                let request = axum::http::Request::get("/fail")
                    .body(axum::body::Body::empty())
                    .unwrap();
                let response = app.oneshot(request).await.unwrap();
                let status = response.status();
                let body = axum::body::to_bytes(response.into_body(), 1 << 16)
                    .await
                    .unwrap();
                (status, String::from_utf8(body.to_vec()).unwrap())
            })
        });
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body.contains("database is unavailable; retry later"),
            "{body}"
        );
        assert!(
            !body.contains("db-7"),
            "the cause leaked to the client: {body}"
        );
        assert_eq!(log.matches("request failed").count(), 1, "{log}");
        assert!(
            log.contains("pool timed out on db-7") && log.contains("database"),
            "{log}"
        );
    }
    use sck_wire::opa_logs::{BatchCode, UploadError};
    use sck_wire::xsck::Rejection;

    #[test]
    fn signed_call_refusals_keep_their_status_and_code() {
        for (rejection, status) in [
            (Rejection::MissingHeader("x-sck-ans-id"), 400),
            (Rejection::DuplicateHeader("x-sck-nonce"), 400),
            (
                Rejection::InvalidHeader("x-sck-timestamp", "bad".into()),
                400,
            ),
            (Rejection::BodyTooLarge(10), 413),
            (Rejection::TimestampSkew, 401),
            (Rejection::UnknownIdentity, 401),
            (Rejection::OrgMismatch, 401),
            (Rejection::IdentityRevoked, 401),
            (Rejection::SignatureMismatch, 401),
            (Rejection::ReplayedNonce, 401),
        ] {
            let e = ApiError::from(rejection.clone());
            assert_eq!(
                (e.status.as_u16(), e.code, e.detail),
                (status, rejection.code(), rejection.detail())
            );
        }
    }

    #[test]
    fn upload_refusals_keep_their_status_code_and_diagnostics() {
        for (refusal, status, code) in [
            (UploadError::InvalidGzip("g".into()), 400, "invalid_gzip"),
            (UploadError::TooLarge("t".into()), 413, "payload_too_large"),
            (UploadError::InvalidJson("j".into()), 400, "invalid_json"),
            (UploadError::BudgetExhausted, 503, "decompression_busy"),
        ] {
            let e = ApiError::from(refusal);
            assert_eq!((e.status.as_u16(), e.code), (status, code));
        }
        let e = ApiError::from(UploadError::InvalidBatch {
            code: BatchCode::MissingDecisionId,
            detail: "refused".into(),
            diagnostics: vec!["event 1 has no decision_id".into()],
        });
        assert_eq!(
            (e.status.as_u16(), e.code, e.detail.as_str(), e.diagnostics),
            (
                400,
                "missing_decision_id",
                "refused",
                vec!["event 1 has no decision_id".to_owned()]
            )
        );
        let e = ApiError::from(sck_wire::opa_status::StatusRefused("labels".into()));
        assert_eq!(
            (e.status.as_u16(), e.code, e.detail.as_str()),
            (400, "invalid_status", "status report refused: labels")
        );
    }
}
