//! The compiled policy each org enforces, swapped atomically on activation.
//!
//! Each org's active bundle (the configured bundle name) is read, verified by the registry's
//! activation checks, and compiled once into an immutable [`Snapshot`]. The map of snapshots is
//! an `ArcSwap`: a request takes one `Arc<Snapshot>` at its start and finishes on it, so no
//! request ever sees a half-loaded bundle and in-flight requests complete on the old version
//! while new ones use the new. A watcher task rebuilds snapshots whenever the
//! [`ActivationHub`](crate::activations::ActivationHub) reports a change (on every replica).

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use metrics_exporter_prometheus::formatting::{
    sanitize_label_value, write_help_line, write_type_line,
};
use sck_bundler::decision::{EvalLimits, Evaluator, Mode};
use sck_bundler::{Bundle, Limits};
use tokio::sync::Mutex;

use crate::error::EnforceResult;
use crate::registry::{ActiveBundle, Registry};

/// One org's compiled, active policy.
#[derive(Debug)]
pub struct Snapshot {
    pub org: String,
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub evaluator: Evaluator,
}

/// Active snapshots by org.
#[derive(Debug)]
pub struct Snapshots {
    map: ArcSwap<HashMap<String, Arc<Snapshot>>>,
    registry: Registry,
    bundle_name: String,
    limits: Limits,
    eval_limits: EvalLimits,
    mode: Mode,
    /// Serialises rebuilds so two refreshes never race to install different maps.
    rebuild: Mutex<()>,
}

impl Snapshots {
    pub fn new(
        registry: Registry,
        bundle_name: String,
        limits: Limits,
        eval_limits: EvalLimits,
        mode: Mode,
    ) -> Snapshots {
        Snapshots {
            map: ArcSwap::from_pointee(HashMap::new()),
            registry,
            bundle_name,
            limits,
            eval_limits,
            mode,
            rebuild: Mutex::new(()),
        }
    }

    /// The snapshot `org` enforces now, if it has an active bundle.
    pub fn get(&self, org: &str) -> Option<Arc<Snapshot>> {
        self.map.load().get(org).cloned()
    }

    /// `sck_bundle_active{org, name, version, sha256} 1` for the revision each org enforces now,
    /// in the Prometheus text format. Rendered from the live map at scrape time, so a replaced
    /// revision's series disappears instead of lingering (the metrics facade cannot drop one).
    pub fn active_metric(&self) -> String {
        const NAME: &str = "sck_bundle_active";
        let map = self.map.load();
        let mut active: Vec<_> = map.values().collect();
        active.sort_unstable_by(|a, b| a.org.cmp(&b.org));
        let mut out = String::new();
        write_help_line(
            &mut out,
            NAME,
            None,
            None,
            "The bundle revision each org enforces.",
        );
        write_type_line(&mut out, NAME, None, None, "gauge");
        for s in active {
            out.push_str(&format!(
                "{NAME}{{org=\"{}\",name=\"{}\",version=\"{}\",sha256=\"{}\"}} 1\n",
                sanitize_label_value(&s.org),
                sanitize_label_value(&s.name),
                sanitize_label_value(&s.version),
                sanitize_label_value(&s.sha256)
            ));
        }
        out
    }

    /// Brings every org's snapshot in line with the registry: compiles what changed, drops
    /// what is no longer active, and swaps the whole map at once.
    pub async fn refresh(&self) -> EnforceResult<()> {
        let _guard = self.rebuild.lock().await;
        let heads = self.registry.active_heads(&self.bundle_name).await?;
        let current = self.map.load_full();
        let mut next = HashMap::with_capacity(heads.len());
        for (org, active) in heads {
            match current.get(&org) {
                Some(snapshot) if snapshot.sha256 == active.sha256 => {
                    next.insert(org, snapshot.clone());
                }
                _ => match self.compile(&org, &active).await {
                    Ok(snapshot) => {
                        tracing::info!(org = %org, version = %snapshot.version, engine = snapshot.evaluator.mode(), "policy snapshot swapped in");
                        metrics::counter!("sck_bundle_activations_total", "org" => org.clone())
                            .increment(1);
                        next.insert(org, Arc::new(snapshot));
                    }
                    Err(e) => {
                        // Keep enforcing nothing rather than a stale or broken policy.
                        tracing::error!(org = %org, bundle = %active.bundle_id, error = %e, "cannot compile the active bundle; the org denies everything");
                    }
                },
            }
        }
        self.map.store(Arc::new(next));
        Ok(())
    }

    async fn compile(&self, org: &str, active: &ActiveBundle) -> Result<Snapshot, String> {
        let tarball = self
            .registry
            .tarball(&active.bundle_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("tarball missing")?;
        if sck_bundler::sha256_hex(&tarball) != active.sha256 {
            return Err("stored tarball does not match its digest".into());
        }
        let (limits, eval_limits, mode) = (self.limits, self.eval_limits, self.mode);
        let evaluator = tokio::task::spawn_blocking(move || -> Result<Evaluator, String> {
            let bundle = Bundle::read(&tarball, &limits).map_err(|e| e.to_string())?;
            Evaluator::new(&bundle, None, eval_limits, mode).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        Ok(Snapshot {
            org: org.to_owned(),
            name: self.bundle_name.clone(),
            version: active.version.clone(),
            sha256: active.sha256.clone(),
            evaluator,
        })
    }

    /// Keeps snapshots current: refreshes on every activation announcement (this replica or,
    /// on PostgreSQL, any other) and periodically as a safety net.
    pub fn spawn_watcher(self: Arc<Self>, hub: crate::activations::ActivationHub) {
        let mut changes = hub.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    _ = tokio::time::sleep(std::time::Duration::from_secs(30)) => {}
                }
                if let Err(e) = self.refresh().await {
                    tracing::warn!(error = %e, "policy snapshot refresh failed");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::sanitize_label_value;

    /// `active_metric` relies on the exporter's escaping being the exposition format's.
    #[test]
    fn label_values_are_escaped_for_the_exposition_format() {
        assert_eq!(sanitize_label_value("1.0.0"), "1.0.0");
        assert_eq!(sanitize_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
