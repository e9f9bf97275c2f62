//! The state every handler shares: the services and the process's metrics handle.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use sck_enforce::Services;

/// Shared server state: one pointer, so the per-request clone axum makes is a reference count.
/// Dereferences to the [`Services`].
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    services: Services,
    metrics: PrometheusHandle,
}

impl AppState {
    pub fn new(services: Services, metrics: PrometheusHandle) -> AppState {
        AppState(Arc::new(Inner { services, metrics }))
    }

    /// The Prometheus recorder's handle (rendered at `/metrics`).
    pub fn metrics(&self) -> &PrometheusHandle {
        &self.0.metrics
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0.services
    }
}
