//! The OpenAPI 3.1 document of the whole REST API, served at `GET /openapi.json` (no auth).
//!
//! It is generated from the code: every handler carries `#[utoipa::path]` and is registered
//! through `utoipa_axum::routes!`, so a module's router and its operations come from the same
//! place ([`crate::routes::documented`]); request and response types derive `ToSchema`. What
//! all operations share is added here once: the security schemes, the problem+json body of
//! every error response, and the statuses any route may answer (`413` for a body over
//! `[http] max_body_bytes`, `500`, `503`). Axum's wildcard segments (`{*path}`) are written as
//! OpenAPI path parameters (`{path}`).

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::Response;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Document, RefOr};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

/// An RFC 9457 problem: the body of every error answer (`application/problem+json`).
#[derive(ToSchema)]
pub struct Problem {
    /// `urn:sck:error:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP reason phrase.
    pub title: String,
    pub status: u16,
    /// What went wrong, for humans (never secrets or server internals).
    pub detail: String,
    /// The stable machine-readable error code.
    pub code: String,
    /// Individual problems (e.g. one per `file:line:col`), when there are several.
    pub diagnostics: Option<Vec<String>>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sck",
        description = "The sck policy-bundle enforcement gateway: bundle lifecycle, the OPA bundle, status and decision-log services, decisions, gateway tokens, X-SCK signed calls, identity pins and the trust ledger. Every error is an RFC 9457 problem with a stable `code`."
    ),
    components(schemas(Problem)),
    tags(
        (name = "bundles", description = "Bundle lifecycle: compile, publish, activate, revoke"),
        (name = "bundle service", description = "What OPA sidecars poll for bundles"),
        (name = "decisions", description = "Decisions (sck's API, OPA's Data API, X-SCK verify-then-decide)"),
        (name = "tokens", description = "Gateway tokens: issuers, issue, introspect, revoke, keys"),
        (name = "identities", description = "ANS identity pins for X-SCK signed calls"),
        (name = "routes", description = "The enforcement point's MCP and HTTP routes, and the identity it signs forwarded calls as"),
        (name = "oauth", description = "OAuth 2 for machines: the token endpoint, RFC 8414 discovery, service accounts"),
        (name = "fleet", description = "OPA sidecar status and decision logs"),
        (name = "ledger", description = "The trust ledger for auditors"),
        (name = "credentials", description = "Organizations, admin keys and sidecar credentials"),
        (name = "ops", description = "Health, readiness, metrics, signers, this document"),
    )
)]
struct ApiDoc;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(openapi_json))
}

static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| serde_json::to_string(&document()).expect("an OpenAPI document serializes"));

#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object)))]
async fn openapi_json() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
}

/// The OpenAPI document of every route `server::app` serves.
pub fn document() -> Document {
    let mut doc = ApiDoc::openapi();
    doc.merge(crate::routes::documented().into_openapi());
    doc.merge(router().into_openapi());
    doc.paths.paths = std::mem::take(&mut doc.paths.paths)
        .into_iter()
        .map(|(path, item)| (path.replace("{*", "{"), item))
        .collect();
    for item in doc.paths.paths.values_mut() {
        for operation in operations(item) {
            add_shared_responses(operation);
        }
    }
    let components = doc.components.get_or_insert_with(Default::default);
    for (name, scheme) in security_schemes() {
        components.add_security_scheme(name, scheme);
    }
    doc
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Statuses every route may answer, and the problem body of every error response.
fn add_shared_responses(operation: &mut Operation) {
    let mut shared = vec![
        (
            "500",
            "Internal failure (`internal_error`; details are in the server log)",
        ),
        (
            "503",
            "The database or ledger is unavailable, or the request timed out; retry later",
        ),
    ];
    if operation.request_body.is_some() {
        shared.push((
            "413",
            "The request body is over the size limit (`payload_too_large`)",
        ));
    }
    let responses = &mut operation.responses.responses;
    for (status, description) in shared {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(Response::new(description)));
    }
    for (status, response) in responses.iter_mut() {
        if let (true, RefOr::T(response)) = (status.starts_with(['4', '5']), response) {
            if response.content.is_empty() {
                response.content.insert(
                    "application/problem+json".to_owned(),
                    RefOr::T(Content::new(Some(RefOr::Ref(
                        utoipa::openapi::Ref::from_schema_name("Problem"),
                    )))),
                );
            }
        }
    }
}

fn bearer(format: Option<&str>, description: &str) -> SecurityScheme {
    let mut http = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .description(Some(description));
    if let Some(format) = format {
        http = http.bearer_format(format);
    }
    SecurityScheme::Http(http.build())
}

fn security_schemes() -> [(&'static str, SecurityScheme); 4] {
    [
        (
            "admin_key",
            bearer(None, "An admin key: an organization's (acts on that org only) or the deployment's root key"),
        ),
        (
            "gateway_token",
            bearer(Some("JWT"), "A gateway token issued by `POST /api/v1/enforcement/tokens/issue`"),
        ),
        (
            "sidecar_credential",
            bearer(None, "An OPA sidecar credential of one organization"),
        ),
        (
            "xsck_signature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-SCK-Signature",
                "An X-SCK request signature by a pinned ANS identity (with X-SCK-Timestamp, X-SCK-ANS-ID, X-SCK-Organization and X-SCK-Nonce; see x-sck.md)",
            ))),
        ),
    ]
}
