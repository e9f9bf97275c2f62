//! `GET /api/v1/enforcement/usage`: the enforcement point's usage of an org (admin keys,
//! org-scoped: a key sees its own org's usage only, the root key names the org).
//!
//! Query: `organizationId` (required for the root key), `route`, `subject`, `tool` (exact
//! matches; `tool=` selects calls naming no tool), `since` / `until` (Unix seconds; windows
//! starting in `[since, until)`, `since` rounded down to its window). Rows are summed over the
//! windows and the replicas that flushed them (this replica's counts are flushed first).

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::api_error::{ApiError, ApiResult};
use crate::auth::AdminKey;
use crate::extract::QueryParams;
use crate::state::AppState;
use sck_enforce::usage::{UsageFilter, UsageReport};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(usage))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct UsageQuery {
    /// The organization (the key's own by default; required for the root key).
    #[serde(default)]
    organization_id: Option<String>,
    /// Only this route id.
    #[serde(default)]
    route: Option<String>,
    /// Only this subject (a gateway token's `sub`).
    #[serde(default)]
    subject: Option<String>,
    /// Only this MCP tool (empty: calls naming no tool).
    #[serde(default)]
    tool: Option<String>,
    /// First window counted, Unix seconds (rounded down to its window; default: all).
    #[serde(default)]
    since: Option<i64>,
    /// Windows starting before this, Unix seconds (default: through the current window).
    #[serde(default)]
    until: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/enforcement/usage", tag = "routes",
    params(UsageQuery),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "Usage per route, subject and tool, summed over the selected windows", body = UsageReport),
        (status = 400, description = "No organization given to the root key, a malformed or unknown query parameter (`invalid_request`), or since after until (`invalid_window`)"),
        (status = 401, description = "No valid admin key"),
        (status = 404, description = "No such organization, or not visible to this key"),
    ))]
async fn usage(
    State(state): State<AppState>,
    admin: AdminKey,
    QueryParams(query): QueryParams<UsageQuery>,
) -> ApiResult<Json<UsageReport>> {
    let org = super::org_scope(&state, &admin, query.organization_id, |org| {
        admin.authorize_read(org, "organization")
    })
    .await?
    .ok_or_else(|| ApiError::bad_request("invalid_request", "give ?organizationId="))?;
    let filter = UsageFilter {
        route: query.route,
        subject: query.subject,
        tool: query.tool,
        since: query.since,
        until: query.until,
    };
    Ok(Json(state.usage().query(&org, &filter).await?))
}
