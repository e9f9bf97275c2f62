//! Decision endpoints: `POST /api/v1/enforcement/decide` (sck's API) and `POST /v1/data/{path}`
//! (OPA's Data API, so existing OPA clients work unchanged). Both require a gateway token and
//! evaluate the token's org's active policy; every decision is in the ledger before the answer.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::api_error::ApiError;
use crate::auth::GatewayToken;
use crate::extract::OptionalJsonBody;
use crate::respond::{self, facts, rate_limited, DecisionAnswer, DecisionRequest};
use crate::state::AppState;
use sck_enforce::clock::unix_now;
use sck_enforce::decisions::{DecisionRecord, Principal};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(decide))
        .routes(routes!(data_api))
}

#[utoipa::path(post, path = "/api/v1/enforcement/decide", tag = "decisions",
    request_body = DecisionRequest,
    security(("gateway_token" = [])),
    responses(
        (status = 200, description = "The decision (a deny carries its reasons), durable in the ledger", body = DecisionAnswer),
        (status = 400, description = "Not a decision request (`invalid_json`, `invalid_request`)"),
        (status = 401, description = "No valid gateway token; the `code` names the refusal"),
        (status = 429, description = "Rate limited; `Retry-After` says when to retry"),
    ))]
async fn decide(
    State(state): State<AppState>,
    GatewayToken(token): GatewayToken,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    let principal = Principal::Token(&token);
    respond::decide_and_answer(state.decisions(), principal, &method, &uri, &body).await
}

/// `data.` + the URL path, each segment a Rego identifier.
fn rule_path(path: &str) -> Result<String, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let valid = |s: &&str| {
        !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !s.as_bytes()[0].is_ascii_digit()
    };
    if !segments.iter().all(valid) {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("data path /{path} must be slash-separated Rego identifiers"),
        ));
    }
    Ok(format!("data.{}", segments.join(".")))
}

/// An OPA Data API request: `{"input": {...}}`. As in OPA, no body, `null`, a missing or
/// `null` `input` and unknown fields mean no input; any other JSON is `400 invalid_json`,
/// nothing evaluated or ledgered. Unlike OPA, `input` must be an object: the gateway adds its
/// verified facts to it, and a scalar input would let a caller drop them.
#[derive(Deserialize, ToSchema)]
pub struct DataRequest {
    /// The input document; the gateway replaces `token`, `request` and `now` with verified
    /// facts and drops `caller`.
    #[serde(default)]
    pub input: Option<std::collections::BTreeMap<String, Value>>,
}

/// An OPA Data API answer: the rule's `result` (absent when undefined) and sck's decision.
#[derive(Debug, Serialize, ToSchema)]
struct DataAnswer {
    decision_id: String,
    /// The ledgered decision with its receipt.
    sck: DecisionRecord,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
}

#[utoipa::path(post, path = "/v1/data/{*path}", tag = "decisions",
    params(("path" = String, Path, description = "The rule, as slash-separated Rego identifiers (`sck/gateway/decision`)")),
    request_body(content = DataRequest, description = "Optional (no body, `null` or no `input`: no input)"),
    security(("gateway_token" = [])),
    responses(
        (status = 200, description = "The rule's result with the ledgered decision", body = DataAnswer),
        (status = 400, description = "A path that is not Rego identifiers, or a body that is not a Data API request (`invalid_json`)"),
        (status = 401, description = "No valid gateway token; the `code` names the refusal"),
        (status = 429, description = "Rate limited; `Retry-After` says when to retry"),
    ))]
async fn data_api(
    State(state): State<AppState>,
    GatewayToken(token): GatewayToken,
    Path(path): Path<String>,
    method: Method,
    uri: Uri,
    body: OptionalJsonBody<DataRequest>,
) -> Result<Response, ApiError> {
    let decisions = &state.decisions();
    if let Err(limited) = decisions.check_rate(&token.org, &token.sub) {
        return Ok(rate_limited(limited));
    }
    let rule = rule_path(&path)?;
    // An integer beyond 64 bits would reach the policy rounded (see `decision::parse_input`).
    if !body.bytes.is_empty() {
        sck_bundler::decision::parse_input(&body.bytes)
            .map_err(|e| ApiError::bad_request(e.code(), format!("request body: {e}")))?;
    }
    let mut input: serde_json::Map<String, Value> = body
        .value
        .and_then(|request| request.input)
        .unwrap_or_default()
        .into_iter()
        .collect();
    // Only verified facts: the token comes from the gateway, never from the caller.
    let facts = facts(&method, &uri, &body.bytes);
    input.insert("token".into(), json!(token));
    input.remove("caller");
    input.insert("request".into(), json!(facts));
    input.insert("now".into(), json!(unix_now()));
    let (record, result) = decisions
        .decide(
            Value::Object(input),
            Principal::Token(&token),
            &facts,
            Some(&rule),
        )
        .await?;
    Ok(Json(DataAnswer {
        decision_id: record.decision_id.clone(),
        sck: record,
        result,
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_paths_become_rule_paths() {
        assert_eq!(
            rule_path("sck/gateway/decision").unwrap(),
            "data.sck.gateway.decision"
        );
        for bad in ["", "a//b", "a/b-c", "1a", "a/../b", "a;drop"] {
            assert!(rule_path(bad).is_err(), "{bad}");
        }
    }
}
