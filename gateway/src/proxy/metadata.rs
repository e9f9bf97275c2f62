//! OAuth 2.0 Protected Resource Metadata (RFC 9728) for MCP routes, and the 401 that points
//! clients at it: `WWW-Authenticate: Bearer resource_metadata="..."` (RFC 9728 §5.1, with
//! RFC 6750's `error="invalid_token"` when a token was presented but refused).
//!
//! The metadata of the route at prefix `/p` is served at `/.well-known/oauth-protected-
//! resource/p` (the well-known segment inserted before the resource's path, §3.1) and names
//! sck itself (`public_url`) as the authorization server that issues its gateway tokens.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::api_error::ApiError;
use crate::state::AppState;
use sck_enforce::proxy::route::Route;

const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

fn public_base(state: &AppState) -> &str {
    state.config().public_url.trim_end_matches('/')
}

/// The metadata document's URL for `route`.
pub fn metadata_url(state: &AppState, route: &Route) -> String {
    format!("{}{WELL_KNOWN}{}", public_base(state), route.prefix)
}

/// The 401 a caller without a valid gateway token gets on `route`.
pub fn unauthorized(
    state: &AppState,
    route: &Route,
    error: &ApiError,
    presented: bool,
) -> Response {
    let mut challenge = format!(
        "Bearer resource_metadata=\"{}\"",
        metadata_url(state, route)
    );
    if presented {
        challenge.push_str(", error=\"invalid_token\"");
    }
    let mut response = ApiError::new(
        axum::http::StatusCode::UNAUTHORIZED,
        error.code,
        error.detail.clone(),
    )
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// `GET /.well-known/oauth-protected-resource<prefix>`: the route's metadata, if `path` is
/// under that well-known path (404 for a path that is no route's prefix).
pub async fn document(state: &AppState, path: &str) -> Option<Response> {
    let prefix = path.strip_prefix(WELL_KNOWN)?;
    if !prefix.starts_with('/') {
        return None;
    }
    Some(answer(state, prefix).await)
}

async fn answer(state: &AppState, prefix: &str) -> Response {
    let route = match state.routes().resolve(prefix).await {
        Ok(Some((stored, rest))) if rest.is_empty() => stored.route.clone(),
        Ok(_) => return ApiError::not_found("no route at this path").into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    Json(json!({
        "resource": format!("{}{}", public_base(state), route.prefix),
        "authorization_servers": [public_base(state)],
        "bearer_methods_supported": ["header"],
        "scopes_supported": ["mcp:read", "mcp:invoke", "mcp:*"],
        "resource_name": route.id,
    }))
    .into_response()
}
