//! Forwarding one request to a route's upstream with hyper's client (hyper-util's pooled
//! client over hyper-rustls for `https://` upstreams, [`tls`]; nothing parsed by hand): the
//! upstream URL under the route's base path, the headers that may cross (hop-by-hop headers,
//! `Host`, the caller's `Authorization` and any `X-SCK-*`/`X-Forwarded-*` it sent never do),
//! `X-Forwarded-*` set by sck, the route's credential injected, and the gateway's X-SCK
//! signature over exactly what is sent.
//!
//! Invariants: the caller's credentials never reach the upstream; an `https://` upstream's
//! certificate and host name are verified before anything is sent; a connect failure is 502
//! `upstream_unreachable`, a refused TLS handshake 502 `upstream_tls`, no response head
//! within `[proxy] response_timeout_secs` (or no connection within `connect_timeout_ms`) is
//! 504 `upstream_timeout` — a request never hangs on an upstream.

pub mod tls;

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, Request, Response, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sck_enforce::clock::unix_now;
use sck_enforce::config::Config;
use sck_enforce::proxy::route::Route;
use sck_enforce::proxy::{Credential, StoredRoute};
use sck_enforce::Services;
use sck_wire::xsck::SignedRequest;

use crate::api_error::ApiError;

/// The pooled upstream client (`http://` and `https://`).
#[derive(Debug, Clone)]
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Body>,
    response_timeout: Duration,
}

/// Headers that describe one connection (RFC 9110 §7.6.1), never forwarded either way.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether `name` may be passed from one side to the other: not hop-by-hop, not listed in
/// the message's `Connection` header, not framing (`content-length` is recomputed).
pub fn end_to_end(name: &HeaderName, headers: &HeaderMap) -> bool {
    let name = name.as_str();
    !HOP_BY_HOP.contains(&name)
        && name != "content-length"
        && !headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|listed| listed.trim().eq_ignore_ascii_case(name))
}

/// Whether a caller's request header may reach the upstream: end-to-end, and not one sck
/// sets or that identifies the caller to sck.
fn forwardable(name: &HeaderName, headers: &HeaderMap) -> bool {
    let n = name.as_str();
    end_to_end(name, headers)
        && !matches!(n, "host" | "authorization" | "cookie" | "forwarded")
        && !n.starts_with("x-sck-")
        && !n.starts_with("x-forwarded-")
}

/// What to send: the method, the path below the route's prefix, the query, the caller's
/// headers (filtered here) and the body.
pub struct Outgoing<'a> {
    pub method: Method,
    pub rest: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// Caller headers to pass even on a route that passes only some (`None`: every
    /// forwardable header).
    pub only: Option<&'a [HeaderName]>,
    pub body: Bytes,
}

impl Upstream {
    /// The client of `config`'s `[proxy]` settings; fails if `upstream_ca_file` is set and
    /// cannot be used.
    pub fn new(config: &Config) -> Result<Upstream, tls::TrustError> {
        let mut tcp = HttpConnector::new();
        tcp.set_connect_timeout(Some(Duration::from_millis(config.proxy.connect_timeout_ms)));
        tcp.set_nodelay(true);
        // The scheme is the TLS connector's to check (http or https, nothing else).
        tcp.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls::client_config(
                config.proxy.upstream_ca_file.as_deref(),
            )?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        Ok(Upstream {
            client: Client::builder(TokioExecutor::new()).build(connector),
            response_timeout: Duration::from_secs(config.proxy.response_timeout_secs),
        })
    }

    /// Sends `out` to `stored`'s upstream for `org` and returns its response head (the body
    /// streams).
    pub async fn send(
        &self,
        services: &Services,
        stored: &StoredRoute,
        out: Outgoing<'_>,
    ) -> Result<Response<hyper::body::Incoming>, ApiError> {
        let route = &stored.route;
        let credential = services.routes().credential(stored)?;
        let (uri, authority, path) = target(route, out.rest, out.query)?;
        let mut request = Request::builder()
            .method(out.method.clone())
            .uri(uri)
            .body(Body::from(out.body.clone()))
            .map_err(|e| ApiError::internal("upstream request", e))?;
        let headers = request.headers_mut();
        for (name, value) in out.headers {
            let allowed = out.only.is_none_or(|only| only.contains(name));
            if allowed && forwardable(name, out.headers) {
                headers.append(name.clone(), value.clone());
            }
        }
        set_forwarded(headers, services.config(), route)?;
        if let Some(Credential { header, value }) = &credential {
            headers.insert(
                HeaderName::from_bytes(header.as_bytes())
                    .map_err(|e| ApiError::internal("credential header", e))?,
                HeaderValue::from_str(value).map_err(|e| ApiError::internal("credential", e))?,
            );
        }
        let signed = SignedRequest {
            method: out.method.as_str(),
            authority: &authority,
            path: &path,
            query: out.query.unwrap_or(""),
            body: &out.body,
        };
        for (name, value) in services.signer().headers(&signed, &route.org, unix_now()) {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(&value).map_err(|e| ApiError::internal("x-sck", e))?,
            );
        }
        match tokio::time::timeout(self.response_timeout, self.client.request(request)).await {
            Err(_) => Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                format!("upstream of route {} sent no response in time", route.id),
            )),
            Ok(Err(e)) => Err(failure(route, &e)),
            Ok(Ok(response)) => Ok(response),
        }
    }
}

/// The answer to a request the client could not complete: a connect timeout (504), a refused
/// TLS handshake (502 `upstream_tls`) or any other failure (502 `upstream_unreachable`).
fn failure(route: &Route, error: &hyper_util::client::legacy::Error) -> ApiError {
    if error.is_connect() && is_timeout(error) {
        return ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            format!("connecting to the upstream of route {} timed out", route.id),
        );
    }
    if let Some(handshake) = tls::handshake_failure(error) {
        tracing::warn!(route = %route.id, error = %handshake, "upstream TLS handshake failed");
        return ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_tls",
            format!(
                "the TLS handshake with the upstream of route {} failed: {}",
                route.id,
                tls::describe(handshake)
            ),
        );
    }
    tracing::warn!(route = %route.id, error = %error, "upstream request failed");
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "upstream_unreachable",
        format!(
            "the upstream of route {} failed or closed the connection",
            route.id
        ),
    )
}

/// Whether a client error was a connect timeout (an `io::Error` of kind `TimedOut` among its
/// sources, as hyper-util's connector reports one).
fn is_timeout(error: &hyper_util::client::legacy::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
    while let Some(e) = source {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// The upstream URI, its authority (for the X-SCK string to sign) and path.
fn target(
    route: &Route,
    rest: &str,
    query: Option<&str>,
) -> Result<(Uri, String, String), ApiError> {
    let Some(upstream) = &route.upstream else {
        return Err(ApiError::internal(
            "upstream",
            "a forward_auth route has no upstream",
        ));
    };
    let base = upstream.path().trim_end_matches('/');
    let path = match (base, rest) {
        ("", "") => "/".to_owned(),
        (base, rest) => format!("{base}{rest}"),
    };
    let host = upstream.host_str().unwrap_or_default();
    let authority = match upstream.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let scheme = upstream.scheme();
    let uri = match query {
        Some(q) => format!("{scheme}://{authority}{path}?{q}"),
        None => format!("{scheme}://{authority}{path}"),
    };
    let uri = uri.parse().map_err(|_| {
        ApiError::bad_request("invalid_path", "the request path cannot be forwarded")
    })?;
    Ok((uri, authority, path))
}

/// `X-Forwarded-Host`, `-Proto` and `-Prefix` from sck's public URL and the route.
fn set_forwarded(headers: &mut HeaderMap, config: &Config, route: &Route) -> Result<(), ApiError> {
    let public = url::Url::parse(&config.public_url).ok();
    let mut set = |name: &'static str, value: &str| -> Result<(), ApiError> {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).map_err(|e| ApiError::internal("x-forwarded", e))?,
        );
        Ok(())
    };
    if let Some(public) = &public {
        if let Some(host) = public.host_str() {
            let host = match public.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            };
            set("x-forwarded-host", &host)?;
        }
        set("x-forwarded-proto", public.scheme())?;
    }
    set("x-forwarded-prefix", &route.prefix)
}

/// Copies the end-to-end headers of an upstream response onto `into`.
pub fn copy_response_headers(from: &HeaderMap, into: &mut HeaderMap) {
    for (name, value) in from {
        if end_to_end(name, from) {
            into.append(name.clone(), value.clone());
        }
    }
}
