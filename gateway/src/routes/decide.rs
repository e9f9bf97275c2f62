//! Decision endpoints: `POST /api/v1/enforcement/decide` (sck's API) and `POST /v1/data/{path}`
//! (OPA's Data API, so existing OPA clients work unchanged). Both require a gateway token and
//! evaluate the token's org's active policy; every decision is in the ledger before the answer.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use sha2::Digest;

use crate::api_error::ApiError;
use crate::decisions::{DecisionService, Principal, RequestFacts};
use crate::state::AppState;
use crate::tokens::GatewayToken;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/enforcement/decide", post(decide))
        .route("/v1/data/{*path}", post(data_api))
}

pub fn facts(method: &Method, uri: &Uri, body: &[u8]) -> RequestFacts {
    RequestFacts {
        method: method.to_string(),
        path: uri.path().to_owned(),
        body_sha256: hex::encode(sha2::Sha256::digest(body)),
    }
}

pub fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("request body: {e}")))
}

/// 429 with `Retry-After`, as problem+json.
pub fn rate_limited(limited: crate::decisions::rate_limit::Limited) -> Response {
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

pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

async fn decide(
    State(state): State<AppState>,
    GatewayToken(token): GatewayToken,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    let decisions = &state.decisions;
    if let Err(limited) = decisions.limits.check(&token.org, &token.sub) {
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
    let principal = Principal::Token(&token);
    let input = DecisionService::input(&request, principal, &facts, unix_now());
    let (record, _) = decisions.decide(input, principal, &facts, None).await?;
    Ok(Json(record).into_response())
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

async fn data_api(
    State(state): State<AppState>,
    GatewayToken(token): GatewayToken,
    Path(path): Path<String>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    let decisions = &state.decisions;
    if let Err(limited) = decisions.limits.check(&token.org, &token.sub) {
        return Ok(rate_limited(limited));
    }
    let rule = rule_path(&path)?;
    let request = if body.is_empty() {
        json!({})
    } else {
        parse_body(&body)?
    };
    let mut input = match request.get("input") {
        None => json!({}),
        Some(Value::Object(map)) => Value::Object(map.clone()),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "input must be a JSON object",
            ))
        }
    };
    // Only verified facts: the token comes from the gateway, never from the caller.
    let facts = facts(&method, &uri, &body);
    if let Value::Object(map) = &mut input {
        map.insert("token".into(), json!(token));
        map.remove("caller");
        map.insert("request".into(), json!(facts));
        map.insert("now".into(), json!(unix_now()));
    }
    let (record, result) = decisions
        .decide(input, Principal::Token(&token), &facts, Some(&rule))
        .await?;
    let mut answer = json!({"decision_id": record.decision_id, "sck": record});
    if let Some(result) = result {
        answer["result"] = result;
    }
    Ok(Json(answer).into_response())
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
