//! HTTP routes: every request is decided as `http.<method>` (lowercase; a route may rename
//! it) with `resource.route`, `resource.path` (below the prefix) and `resource.org`, then
//! forwarded with the caller's end-to-end headers, and the answer streamed back as it comes.
//!
//! The request body is read whole (bounded by `[http] max_body_bytes`) because the
//! gateway's X-SCK signature covers its SHA-256; the response body is never buffered.
//! A deny is 403 `forbidden` problem+json with the reasons and the decision id; nothing is
//! forwarded.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use sck_enforce::clock::unix_now;
use sck_enforce::decisions::{DecisionService, Principal, RequestFacts};
use sck_enforce::proxy::StoredRoute;
use sck_wire::principal::VerifiedToken;
use serde_json::json;
use sha2::Digest;

use super::outcome::Outcome;
use crate::api_error::ApiError;
use crate::state::AppState;
use crate::upstream::{copy_response_headers, Outgoing};

pub async fn handle(
    state: AppState,
    stored: Arc<StoredRoute>,
    token: VerifiedToken,
    rest: String,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let route = &stored.route;
    let method = parts.method.as_str();
    if let Err(limited) = state.decisions().check_rate(&route.org, &token.sub) {
        return Ok(crate::respond::rate_limited(limited));
    }
    let path = if rest.is_empty() { "/" } else { rest.as_str() };
    let action = route.action(method, || format!("http.{}", method.to_ascii_lowercase()));
    let facts = RequestFacts {
        method: method.to_owned(),
        path: parts.uri.path().to_owned(),
        body_sha256: hex::encode(sha2::Sha256::digest(&body)),
        call: Some(json!({"route": route.id, "method": method, "target": path})),
    };
    let principal = Principal::Token(&token);
    let input = DecisionService::input(
        json!({"action": action, "resource": {"org": route.org, "route": route.id, "path": path},
                "context": {"query": parts.uri.query()}}),
        principal,
        &facts,
        unix_now(),
    );
    let (decision, _) = state
        .decisions()
        .decide(input, principal, &facts, None)
        .await?;
    if !decision.allow {
        let mut error = ApiError::forbidden(format!(
            "denied by policy: {} (decision {})",
            decision.reasons.join(", "),
            decision.decision_id
        ));
        error.diagnostics = decision.reasons.clone();
        let mut response = error.into_response();
        if let Ok(id) = decision.decision_id.parse() {
            response.headers_mut().insert("x-sck-decision-id", id);
        }
        return Ok(response);
    }
    let started = Instant::now();
    let sent = state
        .upstream()
        .send(
            &state,
            &stored,
            Outgoing {
                method: parts.method.clone(),
                rest: &rest,
                query: parts.uri.query(),
                headers: &parts.headers,
                only: None,
                body,
            },
        )
        .await;
    let mut outcome = Outcome::start(
        &state,
        route,
        std::slice::from_ref(&decision.decision_id),
        started,
    );
    let upstream = match sent {
        Ok(response) => response,
        Err(e) => {
            outcome.failed(e.status.as_u16(), e.code);
            return Err(e);
        }
    };
    let (head, body) = upstream.into_parts();
    outcome.status = head.status.as_u16();
    let mut builder = Response::builder()
        .status(head.status)
        .extension(crate::api_error::Relayed);
    if let Some(headers) = builder.headers_mut() {
        copy_response_headers(&head.headers, headers);
    }
    let stream = body.into_data_stream();
    builder
        .body(Body::from_stream(outcome.meter(stream)))
        .map_err(|e| ApiError::internal("response", e))
}
