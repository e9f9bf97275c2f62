//! The state every handler shares: the services, the process's metrics handle and the
//! upstream client of the routes.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use sck_enforce::Services;

use crate::upstream::Upstream;

/// Shared server state: one pointer, so the per-request clone axum makes is a reference count.
/// Dereferences to the [`Services`].
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    services: Services,
    metrics: PrometheusHandle,
    upstream: Upstream,
}

impl AppState {
    pub fn new(services: Services, metrics: PrometheusHandle, upstream: Upstream) -> AppState {
        AppState(Arc::new(Inner {
            services,
            metrics,
            upstream,
        }))
    }

    /// The Prometheus recorder's handle (rendered at `/metrics`).
    pub fn metrics(&self) -> &PrometheusHandle {
        &self.0.metrics
    }

    /// The pooled client routes forward with.
    pub fn upstream(&self) -> &Upstream {
        &self.0.upstream
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0.services
    }
}
