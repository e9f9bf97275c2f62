//! The forward-auth endpoint for proxies that already sit in front of a service: nginx
//! `auth_request` and Traefik `ForwardAuth` (`GET /api/v1/enforcement/forward-auth`, the
//! original request in `X-Original-Method`/`X-Original-URI` or `X-Forwarded-Method`/
//! `X-Forwarded-Uri`), and Envoy's ext_authz HTTP service (any method on
//! `/api/v1/enforcement/forward-auth/{path}`: the original method, and the original path
//! appended to the configured `path_prefix`).
//!
//! The original path must be under a `forward_auth` route; it is refused like a proxied path
//! ([`unsafe_path`], 400 `path_refused`; a path no such route protects is 403 `no_route`, so
//! an unprotected path is denied, never waved through), the caller must be of the route's
//! org — a gateway token (401 with `WWW-Authenticate`), or an X-SCK signature over the
//! original method, path and query (and the body Envoy forwards; nginx and Traefik send none,
//! so there it covers the empty body) verified exactly as `/verify` does —, and the call is decided and ledgered exactly as an
//! `http` route's (`http.<method>`, `resource.route`, `resource.path`). 200 carries
//! `X-SCK-Decision-Id`, `X-SCK-Subject`, `X-SCK-Org` and `X-SCK-Route` for the proxy to copy
//! upstream; 403 names the decision.
//!
//! Invariant: only a 200 allows, and a 200 is answered only after a verified token or
//! signature and an allowing, ledgered decision; an original request that cannot be read unambiguously (a
//! header missing, repeated, or from both header families) is refused, never guessed.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::uri::PathAndQuery;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sck_enforce::decisions::Principal;
use sck_enforce::proxy::route::{unsafe_path, Route, RouteKind};
use sck_enforce::xsck::pipeline::Target;
use sck_wire::principal::{VerifiedCaller, VerifiedToken};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::api_error::ApiError;
use crate::proxy::http::{decide, Call, DECISION_ID};
use crate::signed_caller;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(forward_auth))
        .routes(routes!(
            envoy_get,
            envoy_post,
            envoy_put,
            envoy_delete,
            envoy_patch
        ))
}

/// The request the proxy asks about.
struct Original {
    method: String,
    target: PathAndQuery,
    /// Its body as far as the proxy sends one (Envoy's `with_request_body`; never nginx's or
    /// Traefik's): what an X-SCK signature must cover.
    body: Bytes,
}

/// Who asked: the bearer of a gateway token, or an X-SCK signed caller.
enum Authenticated {
    Token(Box<VerifiedToken>),
    Caller(VerifiedCaller),
}

impl Authenticated {
    fn as_principal(&self) -> Principal<'_> {
        match self {
            Authenticated::Token(token) => Principal::Token(token),
            Authenticated::Caller(caller) => Principal::Caller(caller),
        }
    }
}

/// The caller of the original request, of the route's org: an X-SCK signature over the
/// original method, path, query and [`Original::body`] if `X-SCK-Signature` is present
/// (verified, nonce spent and ledgered like `/verify`'s), else a gateway token. Both at once
/// are refused: which one speaks for the request would be a guess.
async fn authenticate(
    state: &AppState,
    route: &Route,
    parts: &Parts,
    original: &Original,
) -> Result<Authenticated, Response> {
    if !parts.headers.contains_key(XSCK_SIGNATURE) {
        return crate::proxy::authenticate(state, route, parts)
            .await
            .map(|token| Authenticated::Token(Box::new(token)))
            .map_err(|response| *response);
    }
    if parts.headers.contains_key(header::AUTHORIZATION) {
        return Err(bad(
            "ambiguous_credentials",
            "both Authorization and X-SCK-Signature are present: send one",
        )
        .into_response());
    }
    let target = Target {
        method: &original.method,
        path: original.target.path(),
        query: original.target.query().unwrap_or(""),
    };
    let caller = signed_caller::verify(state.xsck(), &target, &parts.headers, &original.body)
        .await
        .map_err(IntoResponse::into_response)?;
    if caller.org != route.org {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "org_mismatch",
            "the signed caller is not of this route's organization",
        )
        .into_response());
    }
    Ok(Authenticated::Caller(caller))
}

const XSCK_SIGNATURE: &str = "x-sck-signature";

fn bad(code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, detail)
}

/// The one value of header `name`, if present (repeated or not visible ASCII: refused).
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(bad("duplicate_header", format!("{name} is repeated")));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| bad("invalid_header", format!("{name} is not visible ASCII")))
}

/// The original request from nginx's or Traefik's headers: exactly one family present, and
/// both of its headers.
fn from_headers(headers: &HeaderMap) -> Result<Original, ApiError> {
    const FAMILIES: [(&str, &str); 2] = [
        ("x-forwarded-method", "x-forwarded-uri"),
        ("x-original-method", "x-original-uri"),
    ];
    let mut present = Vec::new();
    for (method, uri) in FAMILIES {
        if let Some(target) = single(headers, uri)? {
            present.push((method, uri, target));
        }
    }
    let (method_header, uri_header, target) = match present.as_slice() {
        [one] => *one,
        [] => {
            return Err(bad(
                "missing_header",
                "the original request is needed: X-Original-URI and X-Original-Method (nginx) or X-Forwarded-Uri and X-Forwarded-Method (Traefik)",
            ))
        }
        _ => {
            return Err(bad(
                "ambiguous_original",
                "both X-Original-URI and X-Forwarded-Uri are present: which request is being asked about is ambiguous",
            ))
        }
    };
    let method = single(headers, method_header)?.ok_or_else(|| {
        bad(
            "missing_header",
            format!("{uri_header} needs {method_header}"),
        )
    })?;
    let method = axum::http::Method::from_bytes(method.as_bytes()).map_err(|_| {
        bad(
            "invalid_header",
            format!("{method_header} is not an HTTP method"),
        )
    })?;
    let target = target
        .parse::<PathAndQuery>()
        .ok()
        .filter(|t| t.path().starts_with('/'))
        .ok_or_else(|| {
            bad(
                "invalid_header",
                format!("{uri_header} is not an origin-form URI (/path?query)"),
            )
        })?;
    Ok(Original {
        method: method.as_str().to_owned(),
        target,
        body: Bytes::new(),
    })
}

/// Decides `original` for the caller of `parts` and answers the proxy.
async fn answer(state: AppState, parts: Parts, original: Original) -> Response {
    match authorize(&state, &parts, &original).await {
        Ok(response) | Err(response) => response,
    }
}

async fn authorize(
    state: &AppState,
    parts: &Parts,
    original: &Original,
) -> Result<Response, Response> {
    let path = original.target.path();
    let refuse = |e: ApiError| e.into_response();
    let (stored, rest) = match state
        .routes()
        .resolve(path)
        .await
        .map_err(|e| refuse(e.into()))?
    {
        Some((stored, rest)) if stored.route.kind == RouteKind::ForwardAuth => (stored, rest),
        _ => {
            return Err(refuse(ApiError::new(
                StatusCode::FORBIDDEN,
                "no_route",
                "no forward_auth route protects this path",
            )))
        }
    };
    if let Some(why) = unsafe_path(&rest) {
        return Err(refuse(bad("path_refused", format!("path refused: {why}"))));
    }
    let route = &stored.route;
    let principal = authenticate(state, route, parts, original).await?;
    let call = Call {
        method: &original.method,
        path,
        rest: &rest,
        query: original.target.query(),
        body: &original.body,
    };
    let decision = decide(state, route, principal.as_principal(), call)
        .await
        .map_err(refuse)??;
    let headers = [
        (DECISION_ID, decision.decision_id.as_str()),
        ("x-sck-subject", principal.as_principal().subject()),
        ("x-sck-org", route.org.as_str()),
        ("x-sck-route", route.id.as_str()),
    ];
    let mut response = StatusCode::OK.into_response();
    for (name, value) in headers {
        let value = HeaderValue::from_str(value)
            .map_err(|e| refuse(ApiError::internal("forward-auth header", e)))?;
        response.headers_mut().insert(name, value);
    }
    Ok(response)
}

#[utoipa::path(get, path = "/api/v1/enforcement/forward-auth", tag = "routes",
    params(
        ("X-Original-URI" = Option<String>, Header, description = "nginx: the original request target (`$request_uri`)"),
        ("X-Original-Method" = Option<String>, Header, description = "nginx: the original method (`$request_method`)"),
        ("X-Forwarded-Uri" = Option<String>, Header, description = "Traefik: the original request target"),
        ("X-Forwarded-Method" = Option<String>, Header, description = "Traefik: the original method"),
    ),
    security(("gateway_token" = []), ("xsck_signature" = [])),
    responses(
        (status = 200, description = "Allowed (decision ledgered); `X-SCK-Decision-Id`, `X-SCK-Subject` (the token's `sub` or the signed caller's ANS ID), `X-SCK-Org`, `X-SCK-Route` name it for the proxy to copy upstream"),
        (status = 400, description = "The original request is missing, repeated, ambiguous (both header families), malformed, or its path is refused (`path_refused`); both a token and a signature (`ambiguous_credentials`); malformed X-SCK headers"),
        (status = 401, description = "No valid gateway token of the route's organization (`WWW-Authenticate` names the route's RFC 9728 metadata), or a refused X-SCK signature (skew, unknown or revoked identity, `org_mismatch`, bad signature, replayed nonce: the `code` says which)"),
        (status = 403, description = "Denied by policy (`forbidden`, decision ledgered; `X-SCK-Decision-Id` names it), or no `forward_auth` route protects the original path (`no_route`, nothing decided)"),
        (status = 429, description = "Rate limited; `Retry-After` says when to retry"),
    ))]
async fn forward_auth(State(state): State<AppState>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    match from_headers(&parts.headers) {
        Ok(original) => answer(state, parts, original).await,
        Err(e) => e.into_response(),
    }
}

const ENDPOINT: &str = "/api/v1/enforcement/forward-auth";

/// Envoy ext_authz: the original method is this request's; the original path (raw, as sent:
/// never percent-decoded) and query are what follows [`ENDPOINT`]. The body Envoy sends with
/// `with_request_body` is read (up to the X-SCK limit) only to check an X-SCK signature over
/// it; decisions never see bodies.
async fn envoy(state: AppState, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let original = parts
        .uri
        .path_and_query()
        .and_then(|t| t.as_str().strip_prefix(ENDPOINT))
        .and_then(|t| t.parse::<PathAndQuery>().ok());
    let Some(target) = original else {
        return bad("invalid_path", "the original path cannot be read").into_response();
    };
    let body = if parts.headers.contains_key(XSCK_SIGNATURE) {
        let signed_for = Target {
            method: parts.method.as_str(),
            path: target.path(),
            query: target.query().unwrap_or(""),
        };
        match signed_caller::signed_body(state.xsck(), &signed_for, body).await {
            Ok(body) => body,
            Err(e) => return e.into_response(),
        }
    } else {
        Bytes::new()
    };
    let original = Original {
        method: parts.method.as_str().to_owned(),
        target,
        body,
    };
    answer(state, parts, original).await
}

/// One documented Envoy operation per method (the original request's).
macro_rules! envoy_operation {
    ($name:ident, $method:ident) => {
        #[utoipa::path($method, path = "/api/v1/enforcement/forward-auth/{*path}", tag = "routes",
            params(("path" = String, Path, description = "The original request's path (Envoy appends it to `path_prefix`)")),
            security(("gateway_token" = []), ("xsck_signature" = [])),
            responses(
                (status = 200, description = "Allowed (decision ledgered); `X-SCK-Decision-Id`, `X-SCK-Subject` (the token's `sub` or the signed caller's ANS ID), `X-SCK-Org`, `X-SCK-Route` name it for the proxy to copy upstream"),
                (status = 400, description = "The original path is refused (`path_refused`); both a token and a signature (`ambiguous_credentials`); malformed X-SCK headers"),
                (status = 413, description = "The body Envoy forwarded with an X-SCK signature is over the X-SCK limit"),
                (status = 401, description = "No valid gateway token of the route's organization (`WWW-Authenticate` names the route's RFC 9728 metadata), or a refused X-SCK signature (skew, unknown or revoked identity, `org_mismatch`, bad signature, replayed nonce: the `code` says which)"),
                (status = 403, description = "Denied by policy (`forbidden`, decision ledgered; `X-SCK-Decision-Id` names it), or no `forward_auth` route protects the original path (`no_route`, nothing decided)"),
                (status = 429, description = "Rate limited; `Retry-After` says when to retry"),
            ))]
        async fn $name(State(state): State<AppState>, request: Request) -> Response {
            envoy(state, request).await
        }
    };
}

envoy_operation!(envoy_get, get);
envoy_operation!(envoy_post, post);
envoy_operation!(envoy_put, put);
envoy_operation!(envoy_delete, delete);
envoy_operation!(envoy_patch, patch);
