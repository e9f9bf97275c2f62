//! `POST /api/v1/enforcement/verify`: an X-SCK signed upstream call (verified by the X-SCK
//! layer: the request being verified is this very request — method, path and raw query as
//! sent, the body, and the configured public authority), then a decision on the caller org's
//! active policy with the verified `caller` in the input. The body is a decision request
//! `{action, resource, context}`; the answer is the decision with its ledger receipt.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::api_error::ApiError;
use crate::decisions::{DecisionService, Principal};
use crate::routes::decide::{facts, parse_body, rate_limited, unix_now};
use crate::state::AppState;
use crate::xsck::layer::{require_signed_caller, SignedCaller};

/// The verify route, behind the X-SCK layer of `state`.
pub fn router(state: &AppState) -> Router<AppState> {
    let routes = Router::new().route("/api/v1/enforcement/verify", post(verify));
    require_signed_caller(routes, state.xsck.clone())
}

async fn verify(
    State(state): State<AppState>,
    SignedCaller(caller): SignedCaller,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    let decisions = &state.decisions;
    if let Err(limited) = decisions.limits.check(&caller.org, &caller.ans_id) {
        return Ok(rate_limited(limited));
    }
    let request = parse_body(&body)?;
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
    let facts = facts(&method, &uri, &body);
    let principal = Principal::Caller(&caller);
    let input = DecisionService::input(&request, principal, &facts, unix_now());
    let (record, _) = decisions.decide(input, principal, &facts, None).await?;
    let mut answer = json!(record);
    answer["caller"] = json!(caller);
    Ok(Json(answer).into_response())
}
