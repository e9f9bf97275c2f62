//! X-SCK verification as a tower layer, so any route can require a signed upstream caller:
//!
//! ```ignore
//! let routes = Router::new().route("/internal/thing", post(handler));
//! let routes = crate::signed_caller::require_signed_caller(routes, state.xsck().clone());
//! async fn handler(SignedCaller(caller): SignedCaller, body: Bytes) { /* caller is verified */ }
//! ```
//!
//! The layer ([`verify_signed_request`] under `axum::middleware::from_fn_with_state`) reads the
//! body (up to the X-SCK limit), runs [`XsckVerifier::verify`], and passes the request on with
//! the same body and a [`SignedCaller`] in its extensions; a refused request never reaches the
//! handler. Mounted with `route_layer`, unmatched paths stay 404.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use sck_wire::principal::VerifiedCaller;

use crate::api_error::ApiError;
use sck_enforce::clock::unix_now;
use sck_enforce::xsck::pipeline::{Target, XsckVerifier};

/// The verified upstream caller of this request (put there by the layer).
#[derive(Debug, Clone)]
pub struct SignedCaller(pub VerifiedCaller);

impl<S: Send + Sync> FromRequestParts<S> for SignedCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<SignedCaller>()
            .cloned()
            .ok_or_else(|| {
                // Fail closed: a handler asked for a signed caller on a route without the layer.
                ApiError::internal(
                    "X-SCK",
                    "SignedCaller used on a route without the X-SCK layer",
                )
            })
    }
}

/// Reads the body of a request signed for `target`, up to the X-SCK limit (beyond it the
/// refusal is ledgered and answered).
pub async fn signed_body(
    verifier: &XsckVerifier,
    target: &Target<'_>,
    body: Body,
) -> Result<Bytes, ApiError> {
    match axum::body::to_bytes(body, verifier.max_body_bytes()).await {
        Ok(bytes) => Ok(bytes),
        Err(_) => Err(verifier.reject_oversized(target).await.into()),
    }
}

/// Verifies the X-SCK headers in `headers` over `target` and `body` (every outcome ledgered).
pub async fn verify(
    verifier: &XsckVerifier,
    target: &Target<'_>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<VerifiedCaller, ApiError> {
    let headers = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()));
    Ok(verifier.verify(target, headers, body, unix_now()).await?)
}

/// The middleware function: verify, then run the inner service with the verified caller.
pub async fn verify_signed_request(
    State(verifier): State<XsckVerifier>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let target = Target {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
    };
    let bytes = match signed_body(&verifier, &target, body).await {
        Ok(bytes) => bytes,
        Err(e) => return e.into_response(),
    };
    match verify(&verifier, &target, &parts.headers, &bytes).await {
        Ok(caller) => {
            parts.extensions.insert(SignedCaller(caller));
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(e) => e.into_response(),
    }
}

/// Requires a verified X-SCK signature on every route of `router`.
pub fn require_signed_caller<S>(router: Router<S>, verifier: XsckVerifier) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router.route_layer(axum::middleware::from_fn_with_state(
        verifier,
        verify_signed_request,
    ))
}
