//! The state every handler shares.

use std::sync::Arc;

use crate::config::Config;
use crate::decisions::DecisionService;
use crate::lifecycle::Lifecycle;
use crate::tokens::TokenService;

/// Shared server state: one pointer, so the per-request clone axum makes is a reference count.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> AppState {
        AppState(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services behind [`AppState`].
#[derive(Debug)]
pub struct Services {
    pub config: Arc<Config>,
    pub lifecycle: Lifecycle,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Gateway tokens: issue, verify, introspect, revoke, keys.
    pub tokens: TokenService,
    /// Policy snapshots, evaluation and decision ledgering.
    pub decisions: DecisionService,
    /// OPA sidecar fleet: status reports, drift, decision-log ingestion.
    pub fleet: crate::fleet::FleetService,
    /// X-SCK verification of signed upstream calls and the identity pins it uses.
    pub xsck: crate::xsck::pipeline::XsckVerifier,
}
