//! Operations endpoints: `/health` (the process is up), `/ready` (the database answers and the
//! bootstrap bundle is active, so decisions can be served), `/metrics` (Prometheus text), and
//! the public list of bundle signers (`/api/v1/enforcement/signers`).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .route("/api/v1/enforcement/signers", get(signers))
}

async fn health() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let registry = &state.lifecycle.registry;
    let database = registry.is_empty().await.is_ok();
    let bundles = &state.config.bundles;
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
        Json(json!({
            "status": if ready { "ready" } else { "not_ready" },
            "checks": {"database": database, "default_bundle_active": bundle},
        })),
    )
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

async fn signers(State(state): State<AppState>) -> impl IntoResponse {
    Json(json!({"signers": state.lifecycle.signers.infos()}))
}
