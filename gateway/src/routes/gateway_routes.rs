//! `/api/v1/enforcement/routes`: the enforcement point's routes of an org (admin keys,
//! org-scoped), and the gateway's X-SCK signing identity upstreams verify.
//!
//! - `POST   /api/v1/enforcement/routes` `{organizationId, id, prefix, upstream, kind,
//!   actions?, credentialHeader?, credential?, forwardArguments?, usageHeader?}` → 201 with
//!   the route;
//! - `GET    /api/v1/enforcement/routes?organizationId=` → the routes (configured ones too);
//! - `GET    /api/v1/enforcement/routes/{id}`, `DELETE` the same path;
//! - `POST   /api/v1/enforcement/routes/{id}/credential` `{credential}` → the next version;
//! - `GET    /api/v1/enforcement/gateway/signer` → ANS ID and Ed25519 public key.
//!
//! The credential is write-only: no answer, log or ledger entry ever holds it (the route
//! shows the header name and version). Another org's route is answered as unknown (404).
//! Every change is ledgered (`route.created`, `route.deleted`, `route.credential_rotated`).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::api_error::ApiResult;
use crate::auth::AdminKey;
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;
use sck_enforce::proxy::route::{RouteConfig, RouteKind};
use sck_enforce::proxy::signer::SignerView;
use sck_enforce::proxy::RouteView;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_routes, create_route))
        .routes(routes!(get_route, delete_route))
        .routes(routes!(rotate_credential))
        .routes(routes!(signer))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RouteCreate {
    organization_id: String,
    /// `[A-Za-z0-9_-]`, at most 64 bytes: `resource.server` (MCP) / `resource.route` (HTTP).
    id: String,
    /// Public path prefix, e.g. `/mcp/weather`.
    prefix: String,
    /// Upstream base URL (`http://` or `https://`); absent for `forward_auth` routes.
    #[serde(default)]
    upstream: Option<String>,
    kind: RouteKind,
    /// Action names per MCP method or HTTP method, replacing the defaults.
    #[serde(default)]
    actions: BTreeMap<String, String>,
    /// Header the credential is injected as.
    #[serde(default)]
    credential_header: Option<String>,
    /// The upstream credential (write-only; stored sealed).
    #[serde(default)]
    credential: Option<String>,
    #[serde(default)]
    forward_arguments: bool,
    /// Response header the upstream reports used tokens in (e.g. `x-usage-tokens`).
    #[serde(default)]
    usage_header: Option<String>,
}

impl std::fmt::Debug for RouteCreate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteCreate")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[utoipa::path(post, path = "/api/v1/enforcement/routes", tag = "routes",
    request_body = RouteCreate,
    security(("admin_key" = [])),
    responses(
        (status = 201, description = "The route (never its credential)", body = RouteView),
        (status = 400, description = "Malformed request, prefix, upstream or header"),
        (status = 401, description = "No valid admin key"),
        (status = 403, description = "The key may not act on this organization"),
        (status = 404, description = "No such organization"),
        (status = 409, description = "The id is taken or the prefix overlaps another route's"),
    ))]
async fn create_route(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<RouteCreate>,
) -> ApiResult<(StatusCode, Json<RouteView>)> {
    admin.authorize_org(&body.organization_id)?;
    super::require_org(&state, &body.organization_id).await?;
    let config = RouteConfig {
        id: body.id,
        org: body.organization_id,
        prefix: body.prefix,
        upstream: body.upstream,
        kind: body.kind,
        actions: body.actions,
        credential_header: body.credential_header,
        credential_env: None,
        forward_arguments: body.forward_arguments,
        usage_header: body.usage_header,
    };
    let view = state
        .routes()
        .create(config, body.credential.as_deref(), admin.actor())
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// The organization (the key's own by default; every org for the root key).
    #[serde(default)]
    organization_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct RouteList {
    routes: Vec<RouteView>,
}

#[utoipa::path(get, path = "/api/v1/enforcement/routes", tag = "routes",
    params(ListQuery),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The routes", body = RouteList),
        (status = 400, description = "Unknown query parameter"),
        (status = 401, description = "No valid admin key"),
        (status = 404, description = "No such organization, or not visible to this key"),
    ))]
async fn list_routes(
    State(state): State<AppState>,
    admin: AdminKey,
    QueryParams(query): QueryParams<ListQuery>,
) -> ApiResult<Json<RouteList>> {
    let org = super::org_scope(&state, &admin, query.organization_id, |org| {
        admin.authorize_read(org, "organization")
    })
    .await?;
    let routes = state.routes().list(org.as_deref()).await?;
    Ok(Json(RouteList { routes }))
}

/// The route `id` if this key may see it (404 otherwise, whoever holds it).
async fn visible(state: &AppState, admin: &AdminKey, id: &str) -> ApiResult<RouteView> {
    let view = state.routes().get(admin.0.org.as_deref(), id).await?;
    admin.authorize_read(&view.organization_id, "route")?;
    Ok(view)
}

#[utoipa::path(get, path = "/api/v1/enforcement/routes/{id}", tag = "routes",
    params(("id" = String, Path, description = "Route id")),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The route", body = RouteView),
        (status = 401, description = "No valid admin key"),
        (status = 404, description = "No such route (or not visible to this key)"),
    ))]
async fn get_route(
    State(state): State<AppState>,
    admin: AdminKey,
    Path(id): Path<String>,
) -> ApiResult<Json<RouteView>> {
    Ok(Json(visible(&state, &admin, &id).await?))
}

#[utoipa::path(delete, path = "/api/v1/enforcement/routes/{id}", tag = "routes",
    params(("id" = String, Path, description = "Route id")),
    security(("admin_key" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid admin key"),
        (status = 404, description = "No such route (or not visible to this key)"),
        (status = 409, description = "A route of the configuration file"),
    ))]
async fn delete_route(
    State(state): State<AppState>,
    admin: AdminKey,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let view = visible(&state, &admin, &id).await?;
    state
        .routes()
        .delete(&view.organization_id, &id, admin.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CredentialRotate {
    /// The new upstream credential (write-only).
    credential: String,
}

#[utoipa::path(post, path = "/api/v1/enforcement/routes/{id}/credential", tag = "routes",
    params(("id" = String, Path, description = "Route id")),
    request_body = CredentialRotate,
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The route with its new credential version", body = RouteView),
        (status = 400, description = "Malformed credential, or a route without credentialHeader"),
        (status = 401, description = "No valid admin key"),
        (status = 404, description = "No such route (or not visible to this key)"),
        (status = 409, description = "A route of the configuration file, or changed meanwhile"),
    ))]
async fn rotate_credential(
    State(state): State<AppState>,
    admin: AdminKey,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<CredentialRotate>,
) -> ApiResult<Json<RouteView>> {
    let view = visible(&state, &admin, &id).await?;
    let view = state
        .routes()
        .rotate_credential(&view.organization_id, &id, &body.credential, admin.actor())
        .await?;
    Ok(Json(view))
}

#[utoipa::path(get, path = "/api/v1/enforcement/gateway/signer", tag = "routes",
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The identity forwarded requests are signed as", body = SignerView),
        (status = 401, description = "No valid admin key"),
    ))]
async fn signer(State(state): State<AppState>, _admin: AdminKey) -> Json<SignerView> {
    Json(state.signer().view())
}
