//! `POST /api/v1/enforcement/verify`: an X-SCK signed upstream call (verified by the X-SCK
//! layer: the request being verified is this very request — method, path and raw query as
//! sent, the body, and the configured public authority), then a decision on the caller org's
//! active policy with the verified `caller` in the input. The body is a decision request
//! `{action, resource, context}`; the answer is the decision with its ledger receipt.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, Uri};
use axum::response::Response;
use axum::Router;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::api_error::ApiError;
use crate::respond::{self, DecisionAnswer, DecisionRequest};
use crate::signed_caller::{require_signed_caller, SignedCaller};
use crate::state::AppState;
use sck_enforce::decisions::Principal;

/// The verify route with its OpenAPI operation (without the X-SCK layer).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(verify))
}

/// The verify route, behind the X-SCK layer of `state`.
pub fn router(state: &AppState) -> Router<AppState> {
    require_signed_caller(routes().into(), state.xsck().clone())
}

#[utoipa::path(post, path = "/api/v1/enforcement/verify", tag = "decisions",
    request_body = DecisionRequest,
    params(
        ("X-SCK-Timestamp" = String, Header, description = "Unix seconds or RFC 3339"),
        ("X-SCK-ANS-ID" = String, Header, description = "The caller's pinned ANS ID"),
        ("X-SCK-Organization" = String, Header, description = "The caller's organization"),
        ("X-SCK-Nonce" = Option<String>, Header, description = "Single-use nonce"),
    ),
    security(("xsck_signature" = [])),
    responses(
        (status = 200, description = "The decision with the verified `caller`, durable in the ledger", body = DecisionAnswer),
        (status = 400, description = "Missing, duplicate or malformed X-SCK headers, or not a decision request"),
        (status = 401, description = "Refused signature: skew, unknown or revoked identity, org mismatch, bad signature, replayed nonce (the `code` says which)"),
        (status = 413, description = "The signed body is over the X-SCK limit"),
        (status = 429, description = "Rate limited; `Retry-After` says when to retry"),
    ))]
async fn verify(
    State(state): State<AppState>,
    SignedCaller(caller): SignedCaller,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    let principal = Principal::Caller(&caller);
    respond::decide_and_answer(state.decisions(), principal, &method, &uri, &body).await
}
