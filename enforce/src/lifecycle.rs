//! Bundle lifecycle: compile → publish → activate → supersede / revoke.
//!
//! Each operation validates, changes the registry, records a ledger event in the org's log
//! (ids and digests only), and announces activations to long-polling sidecars. Activation
//! re-reads the stored tarball and checks its digest, signature and `metadata.sck` before the
//! version can be served, so a corrupted or tampered row is refused, not served.
//!
//! Compiling runs untrusted Rego (the bundle's tests) on a blocking thread, bounded three ways:
//! at most `[bundles] max_concurrent_compiles` at once (one more is refused with 503
//! `compile_busy`), every test stopped at `[bundles] test_timeout_ms` (refused with
//! `policy_test_timeout`, naming the test), and no further test started once the request is
//! gone (client disconnected, request timeout, shutdown). The slot is held until the blocking
//! work really ends, so abandoned work still counts against the cap.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sck_bundler::decision::EvalLimits;
use sck_bundler::policy::{self, TestOutcome, TestStatus};
use sck_bundler::{BuildOptions, Bundle, Limits, SckIdentity, SourceTree};
use sck_ledger::entry::EventType;
use sck_ledger::Ledger;
use serde_json::json;

use crate::activations::ActivationHub;
use crate::budget::{Budget, Reservation};
use crate::error::RETRY_AFTER_SECS;
use crate::error::{EnforceError, EnforceResult};
use crate::registry::{
    version_key, Activation, BundleRecord, CredentialKind, NewBundle, Registry, Revocation,
};
use crate::signers::Signers;

/// A compile request's source.
#[derive(Debug)]
pub enum Source {
    /// Path → file content.
    Files(BTreeMap<String, String>),
    /// A gzip tarball of the source tree.
    Tarball(Vec<u8>),
    /// A tree already read (the bootstrap policies).
    Tree(SourceTree),
}

/// What to compile.
#[derive(Debug)]
pub struct CompileRequest {
    pub org: String,
    pub name: String,
    pub version: String,
    pub revision: Option<String>,
    pub source: Source,
}

/// The lifecycle service shared by the HTTP handlers and the bootstrap.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    pub(crate) registry: Registry,
    pub(crate) ledger: Ledger,
    pub(crate) signers: Signers,
    pub(crate) hub: ActivationHub,
    pub(crate) limits: Limits,
    /// Decompressed bytes in flight, shared with the fleet uploads.
    pub(crate) decompression: Budget,
    /// Compiles running (one unit each).
    pub(crate) compiles: Budget,
    /// Time limit of each Rego test a compile runs.
    pub(crate) test_timeout: Duration,
}

/// Set when the request that started a compile is dropped, so its blocking work starts no
/// further test.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Refuses a bundle whose tests did not all pass: `policy_test_timeout` if any test ran out of
/// time, `bundle_invalid` otherwise; every failing test is named in the diagnostics.
fn refuse_failed_tests(outcomes: &[TestOutcome]) -> EnforceResult<()> {
    let failures: Vec<String> = outcomes
        .iter()
        .filter_map(|t| match &t.status {
            TestStatus::Pass => None,
            TestStatus::Fail => Some(format!("{}: {} failed", t.file, t.name)),
            TestStatus::Error(e) => Some(format!("{}: {} errored: {e}", t.file, t.name)),
            TestStatus::Timeout(limit) => Some(format!(
                "{}: {} exceeded the test time limit of {} ms ([bundles] test_timeout_ms)",
                t.file,
                t.name,
                limit.as_millis()
            )),
        })
        .collect();
    if failures.is_empty() {
        return Ok(());
    }
    let timed_out = outcomes
        .iter()
        .any(|t| matches!(t.status, TestStatus::Timeout(_)));
    let code = if timed_out {
        "policy_test_timeout"
    } else {
        "bundle_invalid"
    };
    Err(EnforceError {
        diagnostics: failures.clone(),
        ..EnforceError::unprocessable(code, failures.join("\n"))
    })
}

/// The `metadata.sck` of a stored bundle whose signature verifies, or why it is corrupt (the
/// inner error). The outer error is a transient refusal by the decompression budget.
fn signed_identity(
    tarball: &[u8],
    limits: &Limits,
    verification: &sck_bundler::VerificationConfig,
    reservation: &mut Reservation,
) -> EnforceResult<Result<sck_bundler::manifest::SckMetadata, String>> {
    let bundle = match Bundle::read_metered(tarball, limits, reservation) {
        Ok(bundle) => bundle,
        Err(sck_bundler::BundleError::BudgetExhausted) => {
            return Err(EnforceError::decompression_busy())
        }
        Err(e) => return Ok(Err(e.to_string())),
    };
    if let Err(e) = bundle.verify(verification) {
        return Ok(Err(e.to_string()));
    }
    Ok(bundle
        .manifest
        .sck()
        .ok_or_else(|| "manifest has no metadata.sck".to_string()))
}

/// The source tree of a compile request; an uploaded tarball is inflated within `limits` and
/// charged to `reservation`.
fn source_tree(
    source: Source,
    limits: &Limits,
    reservation: &mut Reservation,
) -> EnforceResult<SourceTree> {
    Ok(match source {
        Source::Tree(tree) => tree,
        Source::Files(files) => SourceTree::from_files(
            files
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect(),
        )?,
        Source::Tarball(bytes) => {
            let mut files =
                sck_bundler::tarball::read_tarball_metered(&bytes, limits, reservation)?;
            // An uploaded bundle's signature is checked as far as it can be without a key (so
            // what `sck bundle verify` refuses whatever the key is refused here too), then
            // dropped: sck signs what it publishes with its own signer.
            if let Some(at) = files
                .iter()
                .position(|f| f.name == sck_bundler::signing::SIGNATURES_FILE)
            {
                sck_bundler::signing::check_unverified(&files.remove(at).bytes)?;
            }
            SourceTree::from_files(files.into_iter().map(|f| (f.name, f.bytes)).collect())?
        }
    })
}

/// Names are path segments of bundle URLs: keep them simple.
pub fn check_name(what: &str, value: &str) -> EnforceResult<()> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !value.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(EnforceError::invalid(
            "invalid_request",
            format!("{what} {value:?} must be 1-128 characters of A-Z a-z 0-9 - _ . (not starting with .)"),
        ))
    }
}

impl Lifecycle {
    /// The bundle signers by id.
    pub fn signers(&self) -> &Signers {
        &self.signers
    }

    /// Creates an admin key or sidecar credential of `org` and records `credential.created`
    /// (id only) in the org's log. Returns the id and the secret, shown this once.
    pub async fn issue_credential(
        &self,
        kind: CredentialKind,
        org: &str,
        actor: &str,
    ) -> EnforceResult<(String, String)> {
        let (id, secret) = self.registry.create_credential(kind, Some(org)).await?;
        let kind_name = format!("{kind:?}").to_lowercase();
        crate::events::record(
            &self.ledger,
            org,
            EventType::CredentialCreated,
            json!({"credential_id": id, "kind": kind_name, "actor": actor}),
        )
        .await?;
        Ok((id, secret))
    }

    /// Compiles and tests a source tree into a DRAFT version. Returns the record and the
    /// Rego test results.
    pub async fn compile(
        &self,
        actor: &str,
        request: CompileRequest,
    ) -> EnforceResult<BundleRecord> {
        check_name("organizationId", &request.org)?;
        check_name("name", &request.name)?;
        version_key(&request.version).map_err(|e| EnforceError::invalid("invalid_request", e))?;
        if !self.registry.org_exists(&request.org).await? {
            return Err(EnforceError::not_found(format!(
                "organization {} not found",
                request.org
            )));
        }
        let mut slot = self.compiles.reservation();
        if !slot.grow(1) {
            return Err(EnforceError::busy(
                "compile_busy",
                "as many compiles as [bundles] max_concurrent_compiles allows are running; retry later",
                RETRY_AFTER_SECS,
            ));
        }
        let mut reservation = match &request.source {
            Source::Tarball(bytes) => self
                .decompression
                .reserve_for_gzip(bytes, self.limits.max_decompressed_bytes)?,
            Source::Files(_) | Source::Tree(_) => self.decompression.reservation(),
        };
        let limits = self.limits;
        let test_limits = EvalLimits {
            time: self.test_timeout,
            ..EvalLimits::default()
        };
        let source = request.source;
        let revision = request.revision.unwrap_or_else(|| request.version.clone());
        let options = BuildOptions {
            revision: Some(revision.clone()),
            identity: Some(SckIdentity {
                org: request.org.clone(),
                name: request.name.clone(),
                version: request.version.clone(),
            }),
            built_at: Some(crate::db::now()),
            signing: None,
        };
        let stopped = Arc::new(AtomicBool::new(false));
        let _stop_when_dropped = StopOnDrop(stopped.clone());
        // Inflating and compiling is CPU work on untrusted input: keep it off the async workers.
        let built = tokio::task::spawn_blocking(move || -> EnforceResult<_> {
            // Held until this work ends, even when nobody waits for it any more.
            let _slot = slot;
            let source = source_tree(source, &limits, &mut reservation)?;
            let source_sha256 = source.sha256();
            let built = sck_bundler::build(&source, &options)?;
            // The bundle shares the modules' bytes; the source's data is not needed any more.
            drop(source);
            policy::check(&built.bundle)?;
            let outcomes = policy::run_tests(&built.bundle, &test_limits, &|| {
                stopped.load(Ordering::Relaxed)
            })?;
            refuse_failed_tests(&outcomes)?;
            Ok((built, source_sha256))
        })
        .await
        .map_err(|e| EnforceError::internal("compile", e))??;
        let (built, source_sha256) = built;
        let record = self
            .registry
            .insert_draft(NewBundle {
                org: request.org.clone(),
                name: request.name.clone(),
                version: request.version.clone(),
                revision,
                source_sha256: source_sha256.clone(),
                tarball: built.tarball,
            })
            .await?;
        crate::events::record(
            &self.ledger,
            &record.organization_id,
            EventType::BundleCompiled,
            json!({"bundle_id": record.id, "name": record.name, "version": record.version,
                   "source_sha256": source_sha256, "actor": actor}),
        )
        .await?;
        Ok(record)
    }

    /// Signs a DRAFT with `signer` (default signer if `None`): PUBLISHED and immutable.
    pub async fn publish(
        &self,
        actor: &str,
        id: &str,
        signer: Option<&str>,
    ) -> EnforceResult<BundleRecord> {
        let record = self.get(id).await?;
        if record.status != crate::registry::Status::Draft {
            return Err(EnforceError::conflict(
                "not_draft",
                format!(
                    "bundle {id} is {:?}; published versions are immutable",
                    record.status
                ),
            ));
        }
        let signer = self.signers.get(signer).ok_or_else(|| {
            EnforceError::invalid(
                "unknown_signer",
                format!("no signer {:?}", signer.unwrap_or("")),
            )
        })?;
        let tarball = self
            .registry
            .tarball(id)
            .await?
            .ok_or_else(|| EnforceError::not_found(format!("bundle {id} not found")))?;
        let limits = self.limits;
        let config = signer.signing_config();
        let mut reservation = self
            .decompression
            .reserve_for_gzip(&tarball, limits.max_decompressed_bytes)?;
        let signed = tokio::task::spawn_blocking(move || -> EnforceResult<_> {
            let bundle = Bundle::read_metered(&tarball, &limits, &mut reservation)?;
            Ok(sck_bundler::sign_bundle(&bundle, &config)?)
        })
        .await
        .map_err(|e| EnforceError::internal("publish", e))??;
        let published = self
            .registry
            .publish(id, &signer.id, &signed.tarball, &signed.sha256)
            .await?;
        crate::events::record(
            &self.ledger,
            &published.organization_id,
            EventType::BundlePublished,
            json!({"bundle_id": published.id, "name": published.name, "version": published.version,
                   "sha256": signed.sha256, "signer_id": signer.id, "actor": actor}),
        )
        .await?;
        Ok(published)
    }

    /// Checks the stored tarball of a published version before it may be served.
    async fn check_servable(&self, record: &BundleRecord) -> EnforceResult<()> {
        let tarball =
            self.registry.tarball(&record.id).await?.ok_or_else(|| {
                EnforceError::not_found(format!("bundle {} not found", record.id))
            })?;
        let corrupt = |why: String| {
            tracing::error!(org = %record.organization_id, bundle = %record.id, reason = %why, "stored bundle failed its integrity check");
            metrics::counter!("sck_bundle_integrity_failures_total", "org" => record.organization_id.clone())
                .increment(1);
            EnforceError::conflict(
                "bundle_corrupt",
                format!(
                    "stored bundle {} failed its integrity check: {why}",
                    record.id
                ),
            )
        };
        if record.sha256.as_deref() != Some(sck_bundler::sha256_hex(&tarball).as_str()) {
            return Err(corrupt("digest does not match the published digest".into()));
        }
        let signer = record
            .signer_id
            .as_deref()
            .and_then(|id| self.signers.get(Some(id)))
            .ok_or_else(|| corrupt(format!("signer {:?} is not configured", record.signer_id)))?;
        let limits = self.limits;
        let verification = signer.verification_config();
        let mut reservation = self
            .decompression
            .reserve_for_gzip(&tarball, limits.max_decompressed_bytes)?;
        let sck = tokio::task::spawn_blocking(move || {
            signed_identity(&tarball, &limits, &verification, &mut reservation)
        })
        .await
        .map_err(|e| EnforceError::internal("activate", e))??
        .map_err(corrupt)?;
        if (sck.org.as_str(), sck.name.as_str(), sck.version.as_str())
            != (
                record.organization_id.as_str(),
                record.name.as_str(),
                record.version.as_str(),
            )
        {
            return Err(corrupt(
                "signed metadata.sck does not name this org, bundle and version".into(),
            ));
        }
        Ok(())
    }

    /// Activates a published version (`rollback` allows an older version).
    pub async fn activate(
        &self,
        actor: &str,
        id: &str,
        rollback: bool,
    ) -> EnforceResult<Activation> {
        let record = self.get(id).await?;
        if record.sha256.is_some() {
            self.check_servable(&record).await?;
        }
        let activation = self.registry.activate(id, rollback).await?;
        if activation.changed {
            self.announce_activation(
                actor,
                &activation.activated,
                activation.superseded.as_ref(),
                rollback,
            )
            .await?;
        }
        Ok(activation)
    }

    async fn announce_activation(
        &self,
        actor: &str,
        activated: &BundleRecord,
        superseded: Option<&BundleRecord>,
        rollback: bool,
    ) -> EnforceResult<()> {
        self.hub
            .announce(&activated.organization_id, &activated.name)
            .await;
        if let Some(old) = superseded {
            crate::events::record(
                &self.ledger,
                &old.organization_id,
                EventType::BundleSuperseded,
                json!({"bundle_id": old.id, "name": old.name, "version": old.version,
                       "sha256": old.sha256, "superseded_by": activated.id, "actor": actor}),
            )
            .await?;
        }
        crate::events::record(
            &self.ledger,
            &activated.organization_id,
            EventType::BundleActivated,
            json!({"bundle_id": activated.id, "name": activated.name, "version": activated.version,
                   "sha256": activated.sha256, "rollback": rollback,
                   "previous": superseded.map(|s| s.id.clone()), "actor": actor}),
        )
        .await?;
        Ok(())
    }

    /// Revokes a version; see [`Registry::revoke`].
    pub async fn revoke(
        &self,
        actor: &str,
        id: &str,
        reason: &str,
        rollback_to: Option<&str>,
        allow_no_active: bool,
    ) -> EnforceResult<Revocation> {
        if reason.trim().is_empty() {
            return Err(EnforceError::invalid(
                "invalid_request",
                "reason is required",
            ));
        }
        if let Some(target) = rollback_to {
            let revoked = self.get(id).await?;
            let record = self.get_in(&revoked.organization_id, target).await?;
            self.check_servable(&record).await?;
        }
        let revocation = self
            .registry
            .revoke(id, reason, rollback_to, allow_no_active)
            .await?;
        let revoked = &revocation.revoked;
        crate::events::record(
            &self.ledger,
            &revoked.organization_id,
            EventType::BundleRevoked,
            json!({"bundle_id": revoked.id, "name": revoked.name, "version": revoked.version,
                   "sha256": revoked.sha256, "reason": reason, "was_active": revocation.was_active,
                   "rollback_to": rollback_to, "actor": actor}),
        )
        .await?;
        if revocation.was_active {
            self.hub
                .announce(&revoked.organization_id, &revoked.name)
                .await;
            if let Some(r) = &revocation.rolled_back_to {
                crate::events::record(
&self.ledger,
                    &r.organization_id,
                    EventType::BundleActivated,
                    json!({"bundle_id": r.id, "name": r.name, "version": r.version,
                           "sha256": r.sha256, "rollback": true, "previous": revoked.id, "actor": actor}),
                )
                .await?;
            }
        }
        Ok(revocation)
    }

    /// A version by id, or 404.
    pub async fn get(&self, id: &str) -> EnforceResult<BundleRecord> {
        self.registry
            .get(id)
            .await?
            .ok_or_else(|| EnforceError::not_found(format!("bundle {id} not found")))
    }

    /// A version of `org` by id, or the same 404 as for an unknown id (another org's version
    /// is not revealed).
    async fn get_in(&self, org: &str, id: &str) -> EnforceResult<BundleRecord> {
        match self.get(id).await? {
            record if record.organization_id == org => Ok(record),
            _ => Err(EnforceError::not_found(format!("bundle {id} not found"))),
        }
    }
}
