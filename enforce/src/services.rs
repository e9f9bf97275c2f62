//! [`Services`]: every service of one sck process, opened from the configuration.
//!
//! Invariant: [`Services::open`] opens storage, the ledger, the signers and the key rings and
//! starts no background task; [`Services::spawn_background`] starts them (activation and
//! token listeners on PostgreSQL, snapshot refresh, sweeps, retention) and
//! [`Services::shutdown`] stops the ledger writer after signing its final checkpoints. A
//! one-shot command opens, does its work and shuts down, with nothing running behind it.

use std::sync::Arc;
use std::time::Duration;

use sck_bundler::Limits;
use sck_ledger::{Ledger, LedgerKey, Store, WriterConfig};

use crate::activations::ActivationHub;
use crate::budget::Budget;
use crate::config::Config;
use crate::decisions::DecisionService;
use crate::fleet::FleetService;
use crate::identities::sealing::MasterKey;
use crate::identities::Identities;
use crate::lifecycle::Lifecycle;
use crate::oauth::OAuth;
use crate::proxy::signer::GatewaySigner;
use crate::proxy::RouteService;
use crate::registry::poll_cache::PollCache;
use crate::registry::Registry;
use crate::signers::Signers;
use crate::tokens::TokenService;
use crate::usage::UsageService;
use crate::xsck::pipeline::XsckVerifier;

/// The services of one process; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Services {
    config: Arc<Config>,
    lifecycle: Lifecycle,
    tokens: TokenService,
    oauth: OAuth,
    decisions: DecisionService,
    fleet: FleetService,
    xsck: XsckVerifier,
    routes: Arc<RouteService>,
    signer: Arc<GatewaySigner>,
    usage: Arc<UsageService>,
    poll_cache: PollCache,
}

impl Services {
    /// Opens storage (running every component's migrations), the ledger and the signers, and
    /// builds each service. Starts nothing: see [`Self::spawn_background`].
    pub async fn open(config: Config) -> Result<Services, String> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| format!("{}: {e}", config.data_dir.display()))?;
        let store = Store::open(
            &config.database_url,
            &[
                sck_ledger::schema::MIGRATIONS,
                crate::registry::schema::MIGRATIONS,
                crate::tokens::schema::MIGRATIONS,
                crate::fleet::schema::MIGRATIONS,
                crate::identities::schema::MIGRATIONS,
                crate::proxy::schema::MIGRATIONS,
                crate::oauth::schema::MIGRATIONS,
                crate::usage::schema::MIGRATIONS,
            ],
        )
        .await
        .map_err(|e| format!("database: {e}"))?;
        let key = ledger_key(&config)?;
        let ledger = Ledger::open(
            store.clone(),
            key.clone(),
            WriterConfig {
                deployment: config.deployment.clone(),
                checkpoint_every: config.ledger.checkpoint_every,
                checkpoint_interval: Duration::from_secs(config.ledger.checkpoint_interval_secs),
                ..WriterConfig::default()
            },
        )
        .await
        .map_err(|e| format!("ledger: {e}"))?;
        retire_other_ledger_keys(&ledger, key).await?;
        let signers = Signers::load(
            &config.data_dir.join("signers"),
            &config.bundles.default_signer,
        )?;
        let tokens = TokenService::open(store.clone(), ledger.clone(), &config)
            .await
            .map_err(|e| format!("tokens: {e}"))?;
        let oauth = OAuth::new(store.clone(), ledger.clone(), tokens.clone());
        let limits = Limits {
            max_files: config.bundles.max_files,
            max_decompressed_bytes: config.bundles.max_decompressed_bytes,
        };
        let master_key = MasterKey::load(
            &config
                .xsck
                .master_key_file
                .clone()
                .unwrap_or_else(|| config.data_dir.join("master.key")),
        )?;
        let routes = RouteService::open(
            store.clone(),
            ledger.clone(),
            master_key.clone(),
            &config.routes,
        )?;
        let signer = GatewaySigner::load(
            &config
                .proxy
                .signing_key_file
                .clone()
                .unwrap_or_else(|| config.data_dir.join("gateway-signing.key")),
            config
                .proxy
                .ans_id
                .clone()
                .unwrap_or_else(|| format!("ans://gateway.{}", config.deployment)),
        )?;
        let xsck = XsckVerifier::new(
            Identities::new(store.clone(), ledger.clone(), master_key),
            ledger.clone(),
            &config.xsck,
            &config.public_url,
            &config.bundles.default_org,
        );
        let decompression = Budget::new(
            "sck_decompression_bytes_in_flight",
            config.http.decompression_budget_bytes,
        );
        let fleet = FleetService::new(
            store.clone(),
            ledger.clone(),
            &config.fleet,
            decompression.clone(),
        )?;
        let usage = UsageService::new(store.clone(), &config.proxy);
        let registry = Registry::new(store.clone());
        let decisions = DecisionService::new(
            &config.decisions,
            registry.clone(),
            config.bundles.default_bundle.clone(),
            limits,
            ledger.clone(),
        );
        let hub = ActivationHub::new(store);
        let poll_cache = PollCache::new(registry.clone(), hub.clone());
        let lifecycle = Lifecycle {
            registry,
            ledger,
            signers,
            hub,
            limits,
            decompression,
            compiles: Budget::new(
                "sck_compiles_in_flight",
                config.bundles.max_concurrent_compiles as u64,
            ),
            test_timeout: Duration::from_millis(config.bundles.test_timeout_ms),
        };
        Ok(Services {
            config: Arc::new(config),
            lifecycle,
            tokens,
            oauth,
            decisions,
            fleet,
            xsck,
            routes: Arc::new(routes),
            signer: Arc::new(signer),
            usage: Arc::new(usage),
            poll_cache,
        })
    }

    /// Loads the active policies and starts every background task: cross-replica listeners
    /// (PostgreSQL), snapshot refresh on activations, the token, nonce, client assertion and fleet sweeps and
    /// input retention.
    pub async fn spawn_background(&self) -> Result<(), String> {
        let hub = self.lifecycle.hub.clone();
        hub.listen()
            .await
            .map_err(|e| format!("activation listener: {e}"))?;
        self.tokens
            .spawn_background()
            .await
            .map_err(|e| format!("token listener: {e}"))?;
        self.xsck.spawn_background();
        self.oauth.spawn_background();
        self.decisions
            .snapshots()
            .refresh()
            .await
            .map_err(|e| format!("loading active policies: {e}"))?;
        self.decisions.spawn_background(hub.clone());
        self.fleet.spawn_background(hub);
        self.usage.spawn_background();
        Ok(())
    }

    /// Writes the usage counts, signs the ledger's final checkpoints and stops its writer.
    pub async fn shutdown(&self) -> Result<(), String> {
        if let Err(e) = self.usage.flush().await {
            tracing::error!(error = %e.detail, "writing usage counts at shutdown failed");
        }
        self.lifecycle
            .ledger
            .shutdown()
            .await
            .map_err(|e| format!("ledger shutdown: {e}"))
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    pub fn registry(&self) -> &Registry {
        &self.lifecycle.registry
    }

    pub fn ledger(&self) -> &Ledger {
        &self.lifecycle.ledger
    }

    pub fn hub(&self) -> &ActivationHub {
        &self.lifecycle.hub
    }

    /// What sidecar polls read: their credential and the active versions (cached; see
    /// [`PollCache`]).
    pub fn poll_cache(&self) -> &PollCache {
        &self.poll_cache
    }

    pub fn tokens(&self) -> &TokenService {
        &self.tokens
    }

    pub fn oauth(&self) -> &OAuth {
        &self.oauth
    }

    pub fn decisions(&self) -> &DecisionService {
        &self.decisions
    }

    pub fn fleet(&self) -> &FleetService {
        &self.fleet
    }

    pub fn xsck(&self) -> &XsckVerifier {
        &self.xsck
    }

    pub fn routes(&self) -> &RouteService {
        &self.routes
    }

    pub fn signer(&self) -> &GatewaySigner {
        &self.signer
    }

    pub fn usage(&self) -> &UsageService {
        &self.usage
    }
}

/// Loads the ledger signing key: `SCK_LEDGER_SIGNING_KEY`, else the key file (generated if missing).
fn ledger_key(config: &Config) -> Result<LedgerKey, String> {
    if let Some(key) = LedgerKey::from_env().map_err(|e| format!("SCK_LEDGER_SIGNING_KEY: {e}"))? {
        return Ok(key);
    }
    let path = config
        .ledger
        .key_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join("ledger.key"));
    if path.exists() {
        return LedgerKey::load_file(&path).map_err(|e| format!("{}: {e}", path.display()));
    }
    let key = LedgerKey::generate(&format!("{}-ledger", config.deployment))
        .map_err(|e| format!("ledger key: {e}"))?;
    crate::files::write_private(&path, key.to_private_text().as_bytes())?;
    tracing::info!(path = %path.display(), "generated ledger checkpoint key");
    Ok(key)
}

/// Starting with a new ledger key is a key rotation: the previous keys stay published but their
/// validity windows are closed (all replicas of a deployment share one key).
async fn retire_other_ledger_keys(ledger: &Ledger, key: LedgerKey) -> Result<(), String> {
    let ours = key.verifier().to_string();
    let keys = ledger
        .reader()
        .keys()
        .await
        .map_err(|e| format!("ledger keys: {e}"))?;
    if keys
        .iter()
        .any(|k| k.valid_until.is_none() && k.verifier != ours)
    {
        tracing::info!(key = %key.name(), "new ledger key: retiring the previous ones");
        ledger
            .rotate_key(key)
            .await
            .map_err(|e| format!("ledger key rotation: {e}"))?;
    }
    Ok(())
}
