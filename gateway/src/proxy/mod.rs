//! The enforcement point: requests on a route's prefix (the router's fallback, so sck's own
//! API always wins) are authenticated with a gateway token of the route's org, decided on
//! that org's policy, and only then forwarded — MCP routes by [`mcp`], HTTP routes by
//! [`http`] — through [`crate::upstream`], with each forwarded call's [`outcome`] ledgered.
//! [`metadata`] serves the routes' RFC 9728 documents and words the 401s.
//!
//! Invariant: nothing reaches an upstream before a verified token and an allowing decision;
//! a path that could escape the route's base path ([`unsafe_path`]) is refused (400
//! `path_refused`) before anything else.

pub mod http;
pub mod mcp;
pub mod metadata;
pub mod outcome;

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use sck_enforce::proxy::route::{unsafe_path, Route, RouteKind};
use sck_wire::principal::VerifiedToken;

use crate::api_error::ApiError;
use crate::extract::{bearer_credential, BearerRefusal};
use crate::state::AppState;

/// The router's fallback: a route's request, a route's metadata document, or 404.
pub async fn dispatch(State(state): State<AppState>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    if let Some(document) = metadata::document(&state, &path).await {
        return document;
    }
    let (stored, rest) = match state.routes().resolve(&path).await {
        Ok(Some(found)) => found,
        Ok(None) => return ApiError::not_found("no such route").into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    if stored.route.kind == RouteKind::ForwardAuth {
        return served_elsewhere().into_response();
    }
    if let Some(why) = unsafe_path(&rest) {
        return ApiError::bad_request("path_refused", format!("path refused: {why}"))
            .into_response();
    }
    let (parts, body) = request.into_parts();
    let token = match authenticate(&state, &stored.route, &parts).await {
        Ok(token) => token,
        Err(response) => return *response,
    };
    let body = match read_body(&state, body).await {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    let answer = match stored.route.kind {
        RouteKind::Mcp => mcp::handle(state, stored, token, rest, parts, body).await,
        RouteKind::Http => http::handle(state, stored, token, rest, parts, body).await,
        RouteKind::ForwardAuth => Err(served_elsewhere()),
    };
    answer.unwrap_or_else(IntoResponse::into_response)
}

/// A `forward_auth` route's path asked of sck itself: the proxy in front serves it.
fn served_elsewhere() -> ApiError {
    ApiError::not_found("this route is served by the proxy in front, not by sck")
}

/// A request body read whole, up to `[http] max_body_bytes` (`413 payload_too_large`).
async fn read_body(
    state: &AppState,
    body: axum::body::Body,
) -> Result<axum::body::Bytes, ApiError> {
    let max = state.config().http.max_body_bytes;
    axum::body::to_bytes(body, max).await.map_err(|_| {
        ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body over {max} bytes"),
        )
    })
}

/// The caller's verified gateway token, which must be of the route's org; else the 401
/// naming the route's metadata document.
pub(crate) async fn authenticate(
    state: &AppState,
    route: &Route,
    parts: &Parts,
) -> Result<VerifiedToken, Box<Response>> {
    let refuse = |error: ApiError, presented: bool| {
        Box::new(metadata::unauthorized(state, route, &error, presented))
    };
    let token = match bearer_credential(parts) {
        Ok(token) => token,
        Err(BearerRefusal::Missing) => {
            return Err(refuse(
                ApiError::unauthorized("this route needs Authorization: Bearer <gateway token>"),
                false,
            ))
        }
        Err(_) => {
            return Err(refuse(
                ApiError::unauthorized("expected Authorization: Bearer <gateway token>"),
                true,
            ))
        }
    };
    match state.tokens().verify(token).await {
        Ok(verified) if verified.org == route.org => Ok(verified),
        Ok(_) => Err(refuse(
            ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "invalid_token",
                "this token is not for this route's organization",
            ),
            true,
        )),
        Err(e) if e.kind == sck_enforce::error::Kind::Unauthorized => {
            Err(refuse(ApiError::from(e), true))
        }
        Err(e) => Err(Box::new(ApiError::from(e).into_response())),
    }
}
