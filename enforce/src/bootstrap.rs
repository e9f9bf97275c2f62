//! First start on an empty database: create the default org, a root admin key and a sidecar
//! credential (printed once, stored hashed), and compile, publish and activate the bootstrap
//! policy tree so the gateway enforces something from its first request.

use sck_bundler::SourceTree;
use sck_ledger::entry::EventType;
use serde_json::json;

use crate::config::Config;
use crate::error::EnforceResult;
use crate::lifecycle::Lifecycle;
use crate::lifecycle::{CompileRequest, Source};
use crate::registry::CredentialKind;

/// The version the bootstrap bundle gets.
const BOOTSTRAP_VERSION: &str = "1.0.0";

/// Bootstraps an empty deployment; does nothing on a database that has an org.
pub async fn run(config: &Config, lifecycle: &Lifecycle) -> EnforceResult<()> {
    if !lifecycle.registry.is_empty().await? {
        return Ok(());
    }
    let org = &config.bundles.default_org;
    crate::org_names::check_new_org(org)?;
    lifecycle.registry.ensure_org(org).await?;
    let (root_id, root_secret) = lifecycle
        .registry
        .create_credential(CredentialKind::Admin, None)
        .await?;
    crate::events::record(
        &lifecycle.ledger,
        "system",
        EventType::CredentialCreated,
        json!({"credential_id": root_id, "kind": "admin", "scope": "root", "actor": "bootstrap"}),
    )
    .await?;
    let (_, sidecar_secret) = lifecycle
        .issue_credential(CredentialKind::Sidecar, org, "bootstrap")
        .await?;

    let mut bundle_line = String::from("no bootstrap policies configured");
    if let Some(dir) = &config.bundles.bootstrap_policies {
        let tree = SourceTree::from_dir(dir)?;
        let request = CompileRequest {
            org: org.clone(),
            name: config.bundles.default_bundle.clone(),
            version: BOOTSTRAP_VERSION.into(),
            revision: None,
            source: Source::Tree(tree),
        };
        match lifecycle.compile("bootstrap", request).await {
            Ok(draft) => {
                lifecycle.publish("bootstrap", &draft.id, None).await?;
                let activation = lifecycle.activate("bootstrap", &draft.id, false).await?;
                bundle_line = format!(
                    "bundle {}/{} {} active (sha256 {})",
                    org,
                    activation.activated.name,
                    activation.activated.version,
                    activation.activated.sha256.unwrap_or_default()
                );
            }
            // Another replica bootstrapped the same database at the same moment.
            Err(e) if e.code == "version_exists" => {
                bundle_line = "bundle bootstrapped by another replica".into()
            }
            Err(e) => return Err(e),
        }
    }
    println!(
        "\n== sck first start: save these secrets now, they are never shown again ==\n\
         root admin key:            {root_secret}\n\
         sidecar token (org {org}): {sidecar_secret}\n\
         {bundle_line}\n"
    );
    Ok(())
}
