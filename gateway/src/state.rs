//! The state every handler shares.

use std::sync::Arc;

use crate::config::Config;
use crate::decisions::DecisionService;
use crate::lifecycle::Lifecycle;
use crate::tokens::TokenService;

/// Shared, cheaply cloned server state.
#[derive(Debug, Clone)]
pub struct AppState {
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
