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
use sck_enforce::decisions::{DecisionRecord, DecisionService, Principal, RequestFacts};
use sck_enforce::proxy::route::Route;
use sck_enforce::proxy::StoredRoute;
use sck_enforce::usage::UsageKey;
use sck_wire::principal::VerifiedToken;
use serde_json::json;
use sha2::Digest;

use super::outcome::Outcome;
use crate::api_error::ApiError;
use crate::state::AppState;
use crate::upstream::{copy_response_headers, Outgoing};

/// An HTTP request on `route` as the policy sees it: the original method, the path below
/// the prefix, the query and the body (its SHA-256 only).
pub struct Call<'a> {
    pub method: &'a str,
    /// The whole path as requested (what the decision's request facts record).
    pub path: &'a str,
    /// The path below the route's prefix (`""` for the prefix itself).
    pub rest: &'a str,
    pub query: Option<&'a str>,
    pub body: &'a [u8],
}

/// Decides `call` on `route` for `principal` (a gateway token, or on the forward-auth
/// endpoint an X-SCK signed caller; rate limit first; the call counted in usage, with
/// the window's earlier calls as `input.usage`; the decision is ledgered): the allowing
/// decision, or the answer refusing the call (429, or 403 with the reasons and
/// `X-SCK-Decision-Id`). Shared with the forward-auth endpoint.
pub async fn decide(
    state: &AppState,
    route: &Route,
    principal: Principal<'_>,
    call: Call<'_>,
) -> Result<Result<DecisionRecord, Response>, ApiError> {
    if let Err(limited) = state
        .decisions()
        .check_rate(&route.org, principal.subject())
    {
        return Ok(Err(crate::respond::rate_limited(limited)));
    }
    let method = call.method;
    let path = if call.rest.is_empty() { "/" } else { call.rest };
    let action = route.action(method, || format!("http.{}", method.to_ascii_lowercase()));
    let facts = RequestFacts {
        method: method.to_owned(),
        path: call.path.to_owned(),
        body_sha256: hex::encode(sha2::Sha256::digest(call.body)),
        call: Some(json!({"route": route.id, "method": method, "target": path})),
    };
    let mut input = DecisionService::input(
        json!({"action": action, "resource": {"org": route.org, "route": route.id, "path": path},
                "context": {"query": call.query}}),
        principal,
        &facts,
        unix_now(),
    );
    let key = usage_key(route, principal.subject());
    input["usage"] = json!(state.usage().begin(&key));
    let (decision, _) = state
        .decisions()
        .decide(input, principal, &facts, None)
        .await?;
    if decision.allow {
        return Ok(Ok(decision));
    }
    state.usage().denied(&key);
    let mut error = ApiError::forbidden(format!(
        "denied by policy: {} (decision {})",
        decision.reasons.join(", "),
        decision.decision_id
    ));
    error.diagnostics = decision.reasons.clone();
    let mut response = error.into_response();
    if let Ok(id) = decision.decision_id.parse() {
        response.headers_mut().insert(DECISION_ID, id);
    }
    Ok(Err(response))
}

/// What an HTTP call of `subject` on `route` is counted as (HTTP calls name no tool).
fn usage_key(route: &Route, subject: &str) -> UsageKey {
    UsageKey::new(&route.org, &route.id, subject, "")
}

/// The header naming the decision a call was answered by.
pub const DECISION_ID: &str = "x-sck-decision-id";

pub async fn handle(
    state: AppState,
    stored: Arc<StoredRoute>,
    token: VerifiedToken,
    rest: String,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let route = &stored.route;
    let call = Call {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        rest: &rest,
        query: parts.uri.query(),
        body: &body,
    };
    let decision = match decide(&state, route, Principal::Token(&token), call).await? {
        Ok(decision) => decision,
        Err(refused) => return Ok(refused),
    };
    let started = Instant::now();
    let request_bytes = body.len() as u64;
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
    )
    .charged(Some(usage_key(route, &token.sub)), request_bytes);
    let upstream = match sent {
        Ok(response) => response,
        Err(e) => {
            outcome.failed(e.status.as_u16(), e.code);
            return Err(e);
        }
    };
    let (head, body) = upstream.into_parts();
    outcome.status = head.status.as_u16();
    outcome.report(route, &head.headers);
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
