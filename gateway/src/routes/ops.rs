//! Operations endpoints: `/health` (the process is up), `/ready` (the database answers and the
//! bootstrap bundle is active, so decisions can be served), `/metrics` (Prometheus text), and
//! the public list of bundle signers (`/api/v1/enforcement/signers`).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;
use sck_enforce::signers::SignerInfo;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(metrics))
        .routes(routes!(list_signers))
}

#[derive(Debug, Serialize, ToSchema)]
struct Health {
    /// Always `ok`.
    status: &'static str,
}

#[utoipa::path(get, path = "/health", tag = "ops",
    responses((status = 200, description = "The process is up", body = Health)))]
async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Debug, Serialize, ToSchema)]
struct Readiness {
    /// `ready` or `not_ready`.
    status: &'static str,
    checks: ReadinessChecks,
}

#[derive(Debug, Serialize, ToSchema)]
struct ReadinessChecks {
    database: bool,
    default_bundle_active: bool,
}

#[utoipa::path(get, path = "/ready", tag = "ops",
    responses(
        (status = 200, description = "Ready to serve decisions", body = Readiness),
        (status = 503, description = "Not ready; `checks` says why", body = Readiness),
    ))]
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let registry = &state.registry();
    let database = registry.is_empty().await.is_ok();
    let bundles = &state.config().bundles;
    let bundle = match registry
        .active(&bundles.default_org, &bundles.default_bundle)
        .await
    {
        Ok(active) => active.is_some() || bundles.bootstrap_policies.is_none(),
        Err(_) => false,
    };
    let ready = database && bundle;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            status: if ready { "ready" } else { "not_ready" },
            checks: ReadinessChecks {
                database,
                default_bundle_active: bundle,
            },
        }),
    )
}

#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text exposition format",
        body = String, content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render() + &state.decisions().snapshots().active_metric(),
    )
}

#[derive(Debug, Serialize, ToSchema)]
struct SignerList {
    signers: Vec<SignerInfo>,
}

#[utoipa::path(get, path = "/api/v1/enforcement/signers", tag = "ops",
    responses((status = 200, description = "The bundle signers and their public keys", body = SignerList)))]
async fn list_signers(State(state): State<AppState>) -> Json<SignerList> {
    Json(SignerList {
        signers: state.lifecycle().signers().infos(),
    })
}
