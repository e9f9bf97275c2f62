//! A route: a public path prefix of this gateway mapped to an upstream base URL, an org, a
//! kind (`mcp`, `http`, or `forward_auth`: no upstream, the path of a service another proxy
//! forwards to, which asks sck's forward-auth endpoint first), the action names its calls are
//! decided as, and optionally an upstream credential header to inject.
//!
//! Invariants: a prefix is one or more plain segments (`[A-Za-z0-9._~-]`, no `.`/`..`, no
//! empty segment), not under a path sck serves itself; a request matches a route only on a
//! segment boundary ([`Route::match_path`]), and the rest of its path is forwarded only if
//! [`unsafe_path`] finds no `%`-escape of `/`, `.` or `\`, no backslash and no dot or empty
//! segment, so no request can reach an upstream path outside the route's base path.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{EnforceError, EnforceResult};

/// What a route speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RouteKind {
    /// MCP Streamable HTTP (JSON-RPC 2.0): every request decided, list answers filtered.
    Mcp,
    /// Plain HTTP: every request decided as `http.<method>`.
    Http,
    /// No upstream: requests reach the service through another proxy (nginx, Traefik,
    /// Envoy), which asks `/api/v1/enforcement/forward-auth` first; decided like `http`.
    ForwardAuth,
}

impl RouteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Mcp => "mcp",
            RouteKind::Http => "http",
            RouteKind::ForwardAuth => "forward_auth",
        }
    }
}

/// A route as configured (`[[routes]]` in the TOML file) or created through the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Stable id (`[A-Za-z0-9_-]`, at most 64 bytes); `resource.server` / `resource.route`.
    pub id: String,
    /// The org whose tokens may use it and whose policy decides.
    pub org: String,
    /// Public path prefix, e.g. `/mcp/weather`.
    pub prefix: String,
    /// Upstream base URL (`http://` or `https://`); the rest of the path is appended to it.
    /// Required, except for `forward_auth` routes, which have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    pub kind: RouteKind,
    /// Action names per MCP method (`tools/call` → `tools.invoke` by default) or HTTP method
    /// (`GET` → `http.get`), overriding the defaults.
    #[serde(default)]
    pub actions: BTreeMap<String, String>,
    /// Header the upstream credential is injected as (e.g. `x-api-key`, `authorization`).
    #[serde(default)]
    pub credential_header: Option<String>,
    /// TOML routes only: the environment variable holding the credential (never the file).
    #[serde(default)]
    #[schema(ignore)]
    pub credential_env: Option<String>,
    /// Put `tools/call` arguments into `input.context.arguments` (default: only their SHA-256
    /// reaches the policy input and the ledger).
    #[serde(default)]
    pub forward_arguments: bool,
    /// Response header in which the upstream reports the tokens a call used (e.g.
    /// `x-usage-tokens: 123`), counted in the route's usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_header: Option<String>,
}

/// Paths sck serves itself: no route prefix may start with one.
const RESERVED: &[&str] = &[
    "api",
    "bundles",
    "v1",
    ".well-known",
    "health",
    "ready",
    "metrics",
    "openapi.json",
    "logs",
    "status",
];

const MAX_ID_LEN: usize = 64;
const MAX_PREFIX_LEN: usize = 256;

fn invalid(detail: impl Into<String>) -> EnforceError {
    EnforceError::invalid("invalid_route", detail)
}

fn plain_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment != "."
        && segment != ".."
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
}

/// A header name as HTTP allows it (RFC 9110 token), lowercased; hop-by-hop, framing and
/// sck's own headers are refused (`option` names the route option in the refusal).
fn header_name(option: &str, name: &str) -> EnforceResult<String> {
    let lower = name.to_ascii_lowercase();
    let token = !lower.is_empty()
        && lower.len() <= 64
        && lower
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token
        || matches!(
            lower.as_str(),
            "host"
                | "content-length"
                | "transfer-encoding"
                | "connection"
                | "te"
                | "upgrade"
                | "trailer"
                | "keep-alive"
                | "proxy-connection"
        )
        || lower.starts_with("x-sck-")
        || lower.starts_with("x-forwarded-")
    {
        return Err(invalid(format!(
            "{option} {name:?} is not an end-to-end header sck may use"
        )));
    }
    Ok(lower)
}

/// An upstream base URL as routes accept it: `http://` or `https://` with a host, nothing else.
fn upstream_url(upstream: &str) -> EnforceResult<url::Url> {
    let upstream = url::Url::parse(upstream).map_err(|e| invalid(format!("upstream: {e}")))?;
    if !matches!(upstream.scheme(), "http" | "https")
        || upstream.host_str().is_none()
        || !upstream.username().is_empty()
        || upstream.password().is_some()
        || upstream.query().is_some()
        || upstream.fragment().is_some()
    {
        return Err(invalid(
            "upstream must be an http or https URL with a host and no credentials, query or fragment",
        ));
    }
    Ok(upstream)
}

/// A validated route.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub id: String,
    pub org: String,
    pub prefix: String,
    /// `None` exactly for `forward_auth` routes.
    pub upstream: Option<url::Url>,
    pub kind: RouteKind,
    pub actions: BTreeMap<String, String>,
    pub credential_header: Option<String>,
    pub forward_arguments: bool,
    pub usage_header: Option<String>,
}

impl Route {
    /// Validates `config` (everything but the credential itself).
    pub fn from_config(config: &RouteConfig) -> EnforceResult<Route> {
        if config.id.is_empty()
            || config.id.len() > MAX_ID_LEN
            || !config
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(invalid(format!(
                "route id must be 1 to {MAX_ID_LEN} of [A-Za-z0-9_-]"
            )));
        }
        let prefix = config.prefix.strip_suffix('/').unwrap_or(&config.prefix);
        let segments: Vec<&str> = prefix.strip_prefix('/').unwrap_or("").split('/').collect();
        if !config.prefix.starts_with('/')
            || prefix.len() > MAX_PREFIX_LEN
            || !segments.iter().all(|s| plain_segment(s))
        {
            return Err(invalid(
                "prefix must be /segment[/segment...] of [A-Za-z0-9._~-] (no . or .. segments)",
            ));
        }
        if RESERVED.contains(&segments[0]) {
            return Err(invalid(format!(
                "prefix /{} is a path sck serves itself",
                segments[0]
            )));
        }
        let upstream = match (config.kind, &config.upstream) {
            (RouteKind::ForwardAuth, None) if config.credential_header.is_none() => None,
            (RouteKind::ForwardAuth, _) => {
                return Err(invalid(
                    "a forward_auth route has no upstream and no credential_header: the proxy in front forwards",
                ))
            }
            (_, None) => return Err(invalid("upstream is required")),
            (_, Some(upstream)) => Some(upstream_url(upstream)?),
        };
        for action in config.actions.values() {
            if action.is_empty() || action.len() > 128 {
                return Err(invalid("action names must be 1 to 128 bytes"));
            }
        }
        Ok(Route {
            id: config.id.clone(),
            org: config.org.clone(),
            prefix: prefix.to_owned(),
            upstream,
            kind: config.kind,
            actions: config.actions.clone(),
            credential_header: config
                .credential_header
                .as_deref()
                .map(|h| header_name("credential_header", h))
                .transpose()?,
            forward_arguments: config.forward_arguments,
            usage_header: config
                .usage_header
                .as_deref()
                .map(|h| header_name("usage_header", h))
                .transpose()?,
        })
    }

    /// The rest of `path` below this route's prefix (`""` or `/...`) when `path` is under it
    /// (on a segment boundary); whether the rest is safe to forward is [`unsafe_path`]'s call.
    pub fn match_path<'p>(&self, path: &'p str) -> Option<&'p str> {
        let rest = path.strip_prefix(self.prefix.as_str())?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        Some(rest)
    }

    /// The action a call is decided as: the route's override for `key`, else `default`.
    pub fn action(&self, key: &str, default: impl FnOnce() -> String) -> String {
        self.actions.get(key).cloned().unwrap_or_else(default)
    }
}

/// Why a path under a route is refused: `None` if it is safe to forward.
pub fn unsafe_path(rest: &str) -> Option<&'static str> {
    let lower = rest.to_ascii_lowercase();
    if lower.contains("%2f")
        || lower.contains("%5c")
        || lower.contains("%2e")
        || rest.contains('\\')
    {
        return Some("encoded '/', '\\' or '.' in the path");
    }
    if rest.len() > 1
        && rest[1..]
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Some("empty, '.' or '..' path segment");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(prefix: &str, upstream: &str) -> RouteConfig {
        RouteConfig {
            id: "weather".into(),
            org: "default".into(),
            prefix: prefix.into(),
            upstream: Some(upstream.into()),
            kind: RouteKind::Mcp,
            actions: BTreeMap::new(),
            credential_header: None,
            credential_env: None,
            forward_arguments: false,
            usage_header: None,
        }
    }

    #[test]
    fn prefixes_and_upstreams_are_checked() {
        assert!(Route::from_config(&config("/mcp/weather", "http://127.0.0.1:9/mcp")).is_ok());
        let https =
            Route::from_config(&config("/provider", "https://api.example.com:8443/v1")).unwrap();
        assert_eq!(
            https.upstream.map(String::from).as_deref(),
            Some("https://api.example.com:8443/v1")
        );
        assert_eq!(
            Route::from_config(&config("/mcp/weather/", "http://h/"))
                .unwrap()
                .prefix,
            "/mcp/weather"
        );
        for prefix in [
            "",
            "/",
            "mcp",
            "/a//b",
            "/a/../b",
            "/a/./b",
            "/a%2fb",
            "/api/x",
            "/.well-known/x",
            "/a b",
        ] {
            assert!(
                Route::from_config(&config(prefix, "http://h/")).is_err(),
                "{prefix}"
            );
        }
        for upstream in [
            "ftp://h/",
            "ws://h/",
            "https://u:p@h/",
            "https://h/?q=1",
            "http://u:p@h/",
            "http://h/?q=1",
            "http://h/#f",
            "/relative",
            "http://",
        ] {
            assert!(
                Route::from_config(&config("/a", upstream)).is_err(),
                "{upstream}"
            );
        }
        let mut c = config("/a", "http://h/");
        c.upstream = None;
        assert!(Route::from_config(&c).is_err(), "mcp without upstream");
        c.kind = RouteKind::ForwardAuth;
        assert_eq!(Route::from_config(&c).unwrap().upstream, None);
        c.credential_header = Some("x-api-key".into());
        assert!(
            Route::from_config(&c).is_err(),
            "forward_auth with a credential"
        );
        c.credential_header = None;
        c.upstream = Some("http://h/".into());
        assert!(
            Route::from_config(&c).is_err(),
            "forward_auth with an upstream"
        );
        let mut c = config("/a", "http://h/");
        c.credential_header = Some("Transfer-Encoding".into());
        assert!(Route::from_config(&c).is_err());
        c.credential_header = Some("X-Api-Key".into());
        assert_eq!(
            Route::from_config(&c).unwrap().credential_header.as_deref(),
            Some("x-api-key")
        );
        c.usage_header = Some("X-Usage-Tokens".into());
        assert_eq!(
            Route::from_config(&c).unwrap().usage_header.as_deref(),
            Some("x-usage-tokens")
        );
        for bad in ["", "a b", "content-length", "x-sck-decision-id"] {
            c.usage_header = Some(bad.into());
            assert!(Route::from_config(&c).is_err(), "usage_header {bad:?}");
        }
    }

    #[test]
    fn paths_match_on_segment_boundaries_and_tricks_are_refused() {
        let route = Route::from_config(&config("/mcp/weather", "http://h/")).unwrap();
        assert_eq!(route.match_path("/mcp/weather"), Some(""));
        assert_eq!(route.match_path("/mcp/weather/x/y"), Some("/x/y"));
        assert_eq!(route.match_path("/mcp/weatherx"), None);
        assert_eq!(route.match_path("/mcp"), None);
        for rest in [
            "/../x",
            "/a/..",
            "/%2e%2e/x",
            "/%2E%2e",
            "/a%2fb",
            "//x",
            "/a//b",
            "/.",
            "/a\\b",
            "/%5c",
        ] {
            assert!(unsafe_path(rest).is_some(), "{rest}");
        }
        for rest in ["", "/", "/a/b", "/a.b/c..d", "/%20"] {
            assert_eq!(unsafe_path(rest), None, "{rest}");
        }
    }
}
