//! The state every handler shares.

use std::sync::Arc;

use crate::config::Config;
use crate::lifecycle::Lifecycle;

/// Shared, cheaply cloned server state.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub lifecycle: Lifecycle,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}
