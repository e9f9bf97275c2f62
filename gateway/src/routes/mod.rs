//! HTTP routes, one module per area. Handlers stay small: extract, call a service, answer.
//!
//! Every route is registered through `utoipa_axum::routes!` from a handler annotated with
//! `#[utoipa::path]`, so each module's router carries the OpenAPI operations of exactly the
//! routes it serves; [`documented`] gathers them for `/openapi.json` (`crate::openapi`).

pub mod bundle_service;
pub mod bundles;
pub mod credentials;
pub mod decide;
pub mod fleet;
pub mod forward_auth;
pub mod gateway_routes;
pub mod identities;
pub mod ledger;
pub mod oauth;
pub mod ops;
pub mod tokens;
pub mod usage;
pub mod verify;

use utoipa_axum::router::OpenApiRouter;

use crate::api_error::{ApiError, ApiResult};
use crate::auth::AdminKey;
use crate::state::AppState;

/// The routes of every module `server::app` merges, with their OpenAPI operations (the
/// OpenAPI contract test checks that both name the same modules).
pub fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(bundles::router())
        .merge(credentials::router())
        .merge(ops::router())
        .merge(tokens::router())
        .merge(decide::router())
        .merge(fleet::router())
        .merge(identities::router())
        .merge(gateway_routes::router())
        .merge(usage::router())
        .merge(forward_auth::router())
        .merge(oauth::router())
        .merge(verify::routes())
        .merge(ledger::router())
        .merge(bundle_service::router())
}

/// `404` unless organization `org` exists (after the caller's key was authorized for it).
async fn require_org(state: &AppState, org: &str) -> ApiResult<()> {
    if state.registry().org_exists(org).await? {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("organization {org} not found")))
    }
}

/// The org a listing or view covers: the requested one if `authorize` allows it and it exists
/// (`404` for an org nobody created, to the root key too), else the key's own org (`None` for
/// the root key without a request: every org).
async fn org_scope(
    state: &AppState,
    admin: &AdminKey,
    requested: Option<String>,
    authorize: impl FnOnce(&str) -> ApiResult<()>,
) -> ApiResult<Option<String>> {
    match requested {
        Some(org) => {
            authorize(&org)?;
            require_org(state, &org).await?;
            Ok(Some(org))
        }
        None => Ok(admin.0.org.clone()),
    }
}
