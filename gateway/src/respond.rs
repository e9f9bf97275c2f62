//! The decide-and-answer path shared by `POST /api/v1/enforcement/decide` (a gateway token's
//! subject) and `POST /api/v1/enforcement/verify` (a verified X-SCK caller): rate limits, the
//! `{action, resource, context}` body check, the input document with verified facts,
//! evaluation with its ledger entry, and the answer. The OPA Data API reuses the request
//! helpers (`facts`, `rate_limited`, `unix_now`).

use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sck_wire::principal::VerifiedCaller;
use serde::Serialize;
use serde_json::Value;
use sha2::Digest;

use crate::api_error::ApiError;
use sck_enforce::clock::unix_now;
use sck_enforce::decisions::rate_limit::Limited;
use sck_enforce::decisions::{DecisionRecord, DecisionService, Principal, RequestFacts};

/// A decision request. Policies see only these fields and the verified facts the gateway
/// adds (`token` or `caller`, `request`, `now`); any other field is refused.
#[derive(utoipa::ToSchema)]
pub struct DecisionRequest {
    /// What the caller wants to do, e.g. `tools.call`.
    pub action: String,
    /// What it wants to do it to (any JSON; `{}` when absent).
    pub resource: Option<Value>,
    /// Anything else the policy may use (any JSON; `{}` when absent).
    pub context: Option<Value>,
}

/// A decision as answered: the decision with its ledger receipt and, for a signed upstream
/// call, the verified caller.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DecisionAnswer {
    #[serde(flatten)]
    pub decision: DecisionRecord,
    /// The verified X-SCK caller (`/verify` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller: Option<VerifiedCaller>,
}

/// The request facts recorded with a decision: method, path and the body's SHA-256.
pub fn facts(method: &Method, uri: &Uri, body: &[u8]) -> RequestFacts {
    RequestFacts {
        method: method.to_string(),
        path: uri.path().to_owned(),
        body_sha256: hex::encode(sha2::Sha256::digest(body)),
        call: None,
    }
}

/// The body as JSON, or `400 invalid_json`; `400 number_out_of_range` for an integer beyond
/// 64 bits or a decimal with more digits than a double holds, which sck could not evaluate
/// exactly as OPA does (see `decision::parse_input`).
fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    sck_bundler::decision::parse_input(body)
        .map_err(|e| ApiError::bad_request(e.code(), format!("request body: {e}")))
}

/// 429 with `Retry-After`, as problem+json.
pub fn rate_limited(limited: Limited) -> Response {
    let seconds = limited.retry_after.as_secs_f64().ceil().max(1.0) as u64;
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "{} rate limit exceeded; retry after {seconds} s",
            limited.scope
        ),
    )
    .into_response();
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_str(&seconds.to_string()).expect("digits"),
    );
    response
}

/// Refuses anything but a [`DecisionRequest`] (`400 invalid_request`).
fn check_request(request: &Value) -> Result<(), ApiError> {
    let Some(fields) = request.as_object() else {
        return Err(ApiError::bad_request(
            "invalid_request",
            "body must be a JSON object {action, resource, context}",
        ));
    };
    if !fields.get("action").is_some_and(Value::is_string) {
        return Err(ApiError::bad_request(
            "invalid_request",
            "action must be a string",
        ));
    }
    if let Some(unknown) = fields
        .keys()
        .find(|k| !matches!(k.as_str(), "action" | "resource" | "context"))
    {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("unknown field {unknown:?}: policies see only action, resource, context and verified facts"),
        ));
    }
    Ok(())
}

/// Decides the [`DecisionRequest`] in `body` for `principal` on its org's active policy and
/// answers with the ledgered decision (or 429 when `principal` or its org is rate limited).
pub async fn decide_and_answer(
    decisions: &DecisionService,
    principal: Principal<'_>,
    method: &Method,
    uri: &Uri,
    body: &[u8],
) -> Result<Response, ApiError> {
    if let Err(limited) = decisions.check_rate(principal.org(), principal.subject()) {
        return Ok(rate_limited(limited));
    }
    let request = parse_body(body)?;
    check_request(&request)?;
    let facts = facts(method, uri, body);
    let input = DecisionService::input(request, principal, &facts, unix_now());
    let (decision, _) = decisions.decide(input, principal, &facts, None).await?;
    let caller = match principal {
        Principal::Token(_) => None,
        Principal::Caller(caller) => Some(caller.clone()),
    };
    Ok(Json(DecisionAnswer { decision, caller }).into_response())
}
