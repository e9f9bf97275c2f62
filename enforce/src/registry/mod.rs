//! The bundle registry in the database: orgs, credentials, bundle versions and which version is
//! active per org and bundle name.
//!
//! Invariants kept here: a published version's content never changes (also enforced by a
//! trigger); activations and revocations of one org/name run in one transaction that first
//! locks its `bundle_heads` row (`FOR UPDATE` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite), so
//! concurrent calls serialise and exactly one version is ACTIVE; a revoked digest is never
//! activated again. Secrets are stored as SHA-256 digests only.
//!
//! Org scoping: statements by bundle id serve callers that checked the id's org first (the
//! lifecycle routes, `rollbackTo` here), and a version's org never changes (trigger). Statements
//! by digest (`revoked_hashes`) cannot reach another org's versions: every stored tarball's
//! manifest names its org (`metadata.sck`, stamped at compile, re-checked at activation), so a
//! digest belongs to one org.

pub mod poll_cache;
pub mod schema;

use base64::Engine as _;
use rand::RngCore;
use sck_ledger::store::BeginWrite;
use sck_ledger::store::{Backend, Store};
use serde::Serialize;
use sha2::Digest;
use sqlx::Row;

use crate::db::{new_id, now, with_pool};
use crate::error::{EnforceError, EnforceResult};

/// Lifecycle states of a bundle version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Draft,
    Published,
    Active,
    Superseded,
    Revoked,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "DRAFT",
            Status::Published => "PUBLISHED",
            Status::Active => "ACTIVE",
            Status::Superseded => "SUPERSEDED",
            Status::Revoked => "REVOKED",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Draft,
            Status::Published,
            Status::Active,
            Status::Superseded,
            Status::Revoked,
        ]
        .into_iter()
        .find(|status| status.as_str().eq_ignore_ascii_case(s))
    }
}

/// One bundle version, without its tarball.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BundleRecord {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    pub version: String,
    pub status: Status,
    pub revision: String,
    pub source_sha256: String,
    pub sha256: Option<String>,
    pub signer_id: Option<String>,
    pub revoke_reason: Option<String>,
    pub created_at: String,
    pub published_at: Option<String>,
    pub activated_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// A new DRAFT version.
#[derive(Debug, Clone)]
pub struct NewBundle {
    pub org: String,
    pub name: String,
    pub version: String,
    pub revision: String,
    pub source_sha256: String,
    pub tarball: Vec<u8>,
}

/// What an activation changed.
#[derive(Debug, Clone)]
pub struct Activation {
    pub activated: BundleRecord,
    /// The version that was active before, now SUPERSEDED.
    pub superseded: Option<BundleRecord>,
    /// False when the version was already active (nothing changed).
    pub changed: bool,
}

/// What a revocation changed.
#[derive(Debug, Clone)]
pub struct Revocation {
    pub revoked: BundleRecord,
    /// The version rolled back to, if the revoked one was active and a rollback was chosen.
    pub rolled_back_to: Option<BundleRecord>,
    /// True if the revoked version was active (the org/name may now have no active bundle).
    pub was_active: bool,
}

/// The active version of an org/name as the bundle service needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveBundle {
    pub bundle_id: String,
    pub version: String,
    pub sha256: String,
}

/// Kinds of credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    Admin,
    Sidecar,
}

impl CredentialKind {
    fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Admin => "admin",
            CredentialKind::Sidecar => "sidecar",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            CredentialKind::Admin => "sck_admin_",
            CredentialKind::Sidecar => "sck_sidecar_",
        }
    }
}

/// An authenticated credential: its id and org (`None` for the deployment-wide root key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub id: String,
    pub org: Option<String>,
}

const BUNDLE_COLUMNS: &str = "id, org_id, name, version, status, revision, source_sha256, sha256, \
     signer_id, revoke_reason, created_at, published_at, activated_at, revoked_at";

/// Decodes a bundle row (same code for both backends' row types).
macro_rules! record {
    ($row:expr) => {{
        let row = $row;
        let status: String = row.try_get("status")?;
        BundleRecord {
            id: row.try_get("id")?,
            organization_id: row.try_get("org_id")?,
            name: row.try_get("name")?,
            version: row.try_get("version")?,
            status: Status::parse(&status).ok_or_else(|| {
                EnforceError::internal("read bundle", format!("unknown bundle status {status:?}"))
            })?,
            revision: row.try_get("revision")?,
            source_sha256: row.try_get("source_sha256")?,
            sha256: row.try_get("sha256")?,
            signer_id: row.try_get("signer_id")?,
            revoke_reason: row.try_get("revoke_reason")?,
            created_at: row.try_get("created_at")?,
            published_at: row.try_get("published_at")?,
            activated_at: row.try_get("activated_at")?,
            revoked_at: row.try_get("revoked_at")?,
        }
    }};
}

/// SHA-256 hex of a secret, as stored.
fn secret_digest(secret: &str) -> String {
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// Orders bundle versions: semantic versions, with a bare integer `N` read as `N.0.0`.
pub fn version_key(version: &str) -> Result<semver::Version, String> {
    if let Ok(v) = semver::Version::parse(version) {
        return Ok(v);
    }
    version
        .parse::<u64>()
        .map(|n| semver::Version::new(n, 0, 0))
        .map_err(|_| {
            format!("version {version:?} is not a semantic version (e.g. 1.4.2) or a whole number")
        })
}

/// Handle on the registry tables.
#[derive(Debug, Clone)]
pub struct Registry {
    store: Store,
}

impl Registry {
    /// Uses `store`, whose registry migrations must have run.
    pub fn new(store: Store) -> Self {
        Registry { store }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// True when nothing has ever been set up (no org exists).
    pub async fn is_empty(&self) -> EnforceResult<bool> {
        let count: i64 = with_pool!(&self.store, pool => {
            sqlx::query("SELECT COUNT(*) AS n FROM orgs").fetch_one(pool).await?.try_get("n")?
        });
        Ok(count == 0)
    }

    /// Creates `org` if it does not exist.
    pub async fn ensure_org(&self, org: &str) -> EnforceResult<()> {
        with_pool!(&self.store, pool => {
            sqlx::query("INSERT INTO orgs (id, created_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
                .bind(org)
                .bind(now())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    pub async fn org_exists(&self, org: &str) -> EnforceResult<bool> {
        let row = with_pool!(&self.store, pool => {
            sqlx::query("SELECT id FROM orgs WHERE id = $1").bind(org).fetch_optional(pool).await?.is_some()
        });
        Ok(row)
    }

    /// Creates a credential and returns `(id, secret)`; only the secret's digest is stored.
    pub async fn create_credential(
        &self,
        kind: CredentialKind,
        org: Option<&str>,
    ) -> EnforceResult<(String, String)> {
        let mut random = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut random);
        let secret = format!(
            "{}{}",
            kind.prefix(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
        );
        let id = new_id(&format!("cred_{}", kind.as_str()));
        with_pool!(&self.store, pool => {
            sqlx::query("INSERT INTO credentials (id, kind, org_id, secret_sha256, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&id)
                .bind(kind.as_str())
                .bind(org)
                .bind(secret_digest(&secret))
                .bind(now())
                .execute(pool)
                .await?;
        });
        Ok((id, secret))
    }

    /// Finds the live credential of `kind` whose secret is `secret`.
    pub async fn authenticate(
        &self,
        kind: CredentialKind,
        secret: &str,
    ) -> EnforceResult<Option<Credential>> {
        if !secret.starts_with(kind.prefix()) {
            return Ok(None);
        }
        let found = with_pool!(&self.store, pool => {
            match sqlx::query("SELECT id, org_id FROM credentials WHERE secret_sha256 = $1 AND kind = $2 AND revoked_at IS NULL")
                .bind(secret_digest(secret))
                .bind(kind.as_str())
                .fetch_optional(pool)
                .await?
            {
                Some(row) => Some(Credential { id: row.try_get("id")?, org: row.try_get("org_id")? }),
                None => None,
            }
        });
        Ok(found)
    }

    /// Stores a new DRAFT version. A version equal in precedence to one the org/name already
    /// has (`2.0.0+build` next to `2.0.0`, or `2` next to `2.0.0`) is a conflict: versions are
    /// immutable, and build metadata does not make a different version (SemVer §10). The head
    /// row is locked first, so two compiles of equal versions cannot both pass the check.
    pub async fn insert_draft(&self, new: NewBundle) -> EnforceResult<BundleRecord> {
        let id = new_id("bnd");
        let created = now();
        let lock = self.head_lock();
        let existing: Option<String> = with_pool!(&self.store, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query("INSERT INTO bundle_heads (org_id, name) VALUES ($1, $2) ON CONFLICT (org_id, name) DO NOTHING")
                .bind(&new.org)
                .bind(&new.name)
                .execute(&mut *tx)
                .await?;
            sqlx::query(lock).bind(&new.org).bind(&new.name).fetch_one(&mut *tx).await?;
            let versions = sqlx::query("SELECT version FROM bundles WHERE org_id = $1 AND name = $2")
                .bind(&new.org)
                .bind(&new.name)
                .fetch_all(&mut *tx)
                .await?;
            let mut equal = None;
            for row in versions {
                let version: String = row.try_get("version")?;
                if same_precedence(&version, &new.version) {
                    equal = Some(version);
                    break;
                }
            }
            if equal.is_none() {
                sqlx::query(
                    "INSERT INTO bundles (id, org_id, name, version, status, revision, source_sha256, tarball, created_at) \
                     VALUES ($1, $2, $3, $4, 'DRAFT', $5, $6, $7, $8)",
                )
                .bind(&id)
                .bind(&new.org)
                .bind(&new.name)
                .bind(&new.version)
                .bind(&new.revision)
                .bind(&new.source_sha256)
                .bind(&new.tarball)
                .bind(&created)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
            equal
        });
        if let Some(existing) = existing {
            let detail = if existing == new.version {
                format!(
                    "version {} of {}/{} already exists; versions are immutable",
                    new.version, new.org, new.name
                )
            } else {
                format!(
                    "version {} of {}/{} has the precedence of the existing version {existing} (build metadata does not count); versions are immutable",
                    new.version, new.org, new.name
                )
            };
            return Err(EnforceError::conflict("version_exists", detail));
        }
        self.get(&id)
            .await?
            .ok_or_else(|| EnforceError::internal("insert bundle", "row vanished"))
    }

    pub async fn get(&self, id: &str) -> EnforceResult<Option<BundleRecord>> {
        let sql = format!("SELECT {BUNDLE_COLUMNS} FROM bundles WHERE id = $1");
        let found = with_pool!(&self.store, pool => {
            match sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await? {
                Some(row) => Some(record!(&row)),
                None => None,
            }
        });
        Ok(found)
    }

    /// The stored tarball of a version.
    pub async fn tarball(&self, id: &str) -> EnforceResult<Option<Vec<u8>>> {
        let found = with_pool!(&self.store, pool => {
            match sqlx::query("SELECT tarball FROM bundles WHERE id = $1").bind(id).fetch_optional(pool).await? {
                Some(row) => Some(row.try_get::<Vec<u8>, _>("tarball")?),
                None => None,
            }
        });
        Ok(found)
    }

    /// Versions filtered by org, name and status, newest first.
    pub async fn list(
        &self,
        org: Option<&str>,
        name: Option<&str>,
        status: Option<Status>,
    ) -> EnforceResult<Vec<BundleRecord>> {
        let sql = format!(
            "SELECT {BUNDLE_COLUMNS} FROM bundles WHERE ($1 IS NULL OR org_id = $1) \
             AND ($2 IS NULL OR name = $2) AND ($3 IS NULL OR status = $3) \
             ORDER BY created_at DESC, id LIMIT 1000"
        );
        let mut records = Vec::new();
        with_pool!(&self.store, pool => {
            for row in sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(org)
                .bind(name)
                .bind(status.map(Status::as_str))
                .fetch_all(pool)
                .await?
            {
                records.push(record!(&row));
            }
        });
        Ok(records)
    }

    /// DRAFT → PUBLISHED with the signed tarball and its digest.
    pub async fn publish(
        &self,
        id: &str,
        signer_id: &str,
        tarball: &[u8],
        sha256: &str,
    ) -> EnforceResult<BundleRecord> {
        let updated = with_pool!(&self.store, pool => {
            sqlx::query(
                "UPDATE bundles SET status = 'PUBLISHED', tarball = $1, sha256 = $2, signer_id = $3, published_at = $4 \
                 WHERE id = $5 AND status = 'DRAFT'",
            )
            .bind(tarball)
            .bind(sha256)
            .bind(signer_id)
            .bind(now())
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if updated == 0 {
            return Err(EnforceError::conflict(
                "not_draft",
                format!("bundle {id} is not a DRAFT; published versions are immutable"),
            ));
        }
        self.get(id)
            .await?
            .ok_or_else(|| EnforceError::internal("publish bundle", "row vanished"))
    }

    /// The active version of `org`/`name`, if any.
    pub async fn active(&self, org: &str, name: &str) -> EnforceResult<Option<ActiveBundle>> {
        let found = with_pool!(&self.store, pool => {
            match sqlx::query(
                "SELECT b.id, b.version, b.sha256 FROM bundle_heads h JOIN bundles b ON b.id = h.active_bundle_id \
                 WHERE h.org_id = $1 AND h.name = $2",
            )
            .bind(org)
            .bind(name)
            .fetch_optional(pool)
            .await?
            {
                Some(row) => Some(ActiveBundle {
                    bundle_id: row.try_get("id")?,
                    version: row.try_get("version")?,
                    sha256: row.try_get::<Option<String>, _>("sha256")?.unwrap_or_default(),
                }),
                None => None,
            }
        });
        Ok(found)
    }

    /// The active version of bundle `name` in every org that has one.
    pub async fn active_heads(&self, name: &str) -> EnforceResult<Vec<(String, ActiveBundle)>> {
        let mut heads = Vec::new();
        with_pool!(&self.store, pool => {
            for row in sqlx::query(
                "SELECT h.org_id, b.id, b.version, b.sha256 FROM bundle_heads h JOIN bundles b ON b.id = h.active_bundle_id \
                 WHERE h.name = $1",
            )
            .bind(name)
            .fetch_all(pool)
            .await?
            {
                heads.push((
                    row.try_get::<String, _>("org_id")?,
                    ActiveBundle {
                        bundle_id: row.try_get("id")?,
                        version: row.try_get("version")?,
                        sha256: row.try_get::<Option<String>, _>("sha256")?.unwrap_or_default(),
                    },
                ));
            }
        });
        Ok(heads)
    }

    /// A published (never revoked) version of `org` by digest.
    pub async fn published_by_sha256(
        &self,
        org: &str,
        sha256: &str,
    ) -> EnforceResult<Option<String>> {
        let found = with_pool!(&self.store, pool => {
            match sqlx::query(
                "SELECT id FROM bundles WHERE org_id = $1 AND sha256 = $2 AND status IN ('PUBLISHED', 'ACTIVE', 'SUPERSEDED') \
                 AND sha256 NOT IN (SELECT sha256 FROM revoked_hashes)",
            )
            .bind(org)
            .bind(sha256)
            .fetch_optional(pool)
            .await?
            {
                Some(row) => Some(row.try_get::<String, _>("id")?),
                None => None,
            }
        });
        Ok(found)
    }

    /// Makes `id` the active version of its org/name. Refuses drafts, revoked versions and
    /// digests, and — unless `rollback` — versions older than the active one.
    pub async fn activate(&self, id: &str, rollback: bool) -> EnforceResult<Activation> {
        let target = self
            .get(id)
            .await?
            .ok_or_else(|| EnforceError::not_found(format!("bundle {id} not found")))?;
        let lock = self.head_lock();
        let ts = now();
        let outcome: Result<Option<String>, EnforceError> = with_pool!(&self.store, pool => {
            let mut tx = pool.begin_write().await?;
            let head = sqlx::query(lock).bind(&target.organization_id).bind(&target.name).fetch_one(&mut *tx).await?;
            let current_id: Option<String> = head.try_get("active_bundle_id")?;
            let status: String = sqlx::query("SELECT status FROM bundles WHERE id = $1").bind(id).fetch_one(&mut *tx).await?.try_get("status")?;
            let revoked = sqlx::query("SELECT 1 AS r FROM revoked_hashes WHERE sha256 = $1")
                .bind(&target.sha256)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            let check = activation_check(&target, &status, revoked, current_id.as_deref());
            let outcome = match check {
                Err(e) => Err(e),
                Ok(()) if current_id.as_deref() == Some(id) => Ok(current_id.clone()),
                Ok(()) => {
                    if let Some(current) = &current_id {
                        let current_version: String = sqlx::query("SELECT version FROM bundles WHERE id = $1")
                            .bind(current)
                            .fetch_one(&mut *tx)
                            .await?
                            .try_get("version")?;
                        if !rollback && !is_newer(&target.version, &current_version) {
                            return Err(EnforceError::conflict(
                                "downgrade_refused",
                                format!(
                                    "version {} is not newer than the active version {current_version}; activate it as an explicit rollback",
                                    target.version
                                ),
                            ));
                        }
                        sqlx::query("UPDATE bundles SET status = 'SUPERSEDED' WHERE id = $1")
                            .bind(current)
                            .execute(&mut *tx)
                            .await?;
                    }
                    sqlx::query("UPDATE bundles SET status = 'ACTIVE', activated_at = $1 WHERE id = $2")
                        .bind(&ts)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("UPDATE bundle_heads SET active_bundle_id = $1, generation = generation + 1 WHERE org_id = $2 AND name = $3")
                        .bind(id)
                        .bind(&target.organization_id)
                        .bind(&target.name)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(current_id.clone())
                }
            };
            outcome
        });
        let previous = outcome?;
        let changed = previous.as_deref() != Some(id);
        let superseded = match (&previous, changed) {
            (Some(prev), true) => self.get(prev).await?,
            _ => None,
        };
        let activated = self
            .get(id)
            .await?
            .ok_or_else(|| EnforceError::internal("activate bundle", "row vanished"))?;
        Ok(Activation {
            activated,
            superseded,
            changed,
        })
    }
    /// The statement that reads an org/name head row and locks it until the transaction ends
    /// (on SQLite the write transaction already holds the database lock).
    fn head_lock(&self) -> &'static str {
        match self.store.backend() {
            Backend::Sqlite => {
                "SELECT active_bundle_id FROM bundle_heads WHERE org_id = $1 AND name = $2"
            }
            Backend::Postgres => {
                "SELECT active_bundle_id FROM bundle_heads WHERE org_id = $1 AND name = $2 FOR UPDATE"
            }
        }
    }

    /// The version `rollbackTo` names, when revoking `target`: another version of the same
    /// org/name. Another org's version is answered as an unknown id (its existence is not
    /// revealed).
    async fn rollback_target(
        &self,
        target: &BundleRecord,
        rid: &str,
    ) -> EnforceResult<BundleRecord> {
        let r = self
            .get(rid)
            .await?
            .filter(|r| r.organization_id == target.organization_id)
            .ok_or_else(|| EnforceError::not_found(format!("bundle {rid} not found")))?;
        if r.name != target.name {
            return Err(EnforceError::invalid(
                "invalid_rollback",
                format!(
                    "rollbackTo {rid} is not a version of {}/{}",
                    target.organization_id, target.name
                ),
            ));
        }
        if r.id == target.id {
            return Err(EnforceError::invalid(
                "invalid_rollback",
                "cannot roll back to the revoked version",
            ));
        }
        Ok(r)
    }

    /// Revokes `id`: its digest is never served or activated again. If it is active, either
    /// `rollback_to` becomes active in the same transaction, or (with `allow_no_active`) the
    /// org/name is left with no active bundle.
    pub async fn revoke(
        &self,
        id: &str,
        reason: &str,
        rollback_to: Option<&str>,
        allow_no_active: bool,
    ) -> EnforceResult<Revocation> {
        let target = self
            .get(id)
            .await?
            .ok_or_else(|| EnforceError::not_found(format!("bundle {id} not found")))?;
        let rollback = match rollback_to {
            Some(rid) => Some(self.rollback_target(&target, rid).await?),
            None => None,
        };
        let lock = self.head_lock();
        let ts = now();
        let was_active: Result<bool, EnforceError> = with_pool!(&self.store, pool => {
            let mut tx = pool.begin_write().await?;
            let head = sqlx::query(lock).bind(&target.organization_id).bind(&target.name).fetch_one(&mut *tx).await?;
            let current_id: Option<String> = head.try_get("active_bundle_id")?;
            let status: String = sqlx::query("SELECT status FROM bundles WHERE id = $1").bind(id).fetch_one(&mut *tx).await?.try_get("status")?;
            if status == "REVOKED" {
                return Err(EnforceError::conflict("already_revoked", format!("bundle {id} is already revoked")));
            }
            let was_active = current_id.as_deref() == Some(id);
            if !was_active && rollback.is_some() {
                return Err(EnforceError::invalid(
                    "invalid_rollback",
                    "rollbackTo applies only when revoking the active version",
                ));
            }
            if was_active && rollback.is_none() && !allow_no_active {
                return Err(EnforceError::conflict(
                    "choice_required",
                    "this version is active: name a published version in rollbackTo, or set allowNoActive to leave no active bundle",
                ));
            }
            if let Some(r) = &rollback {
                let r_status: String = sqlx::query("SELECT status FROM bundles WHERE id = $1").bind(&r.id).fetch_one(&mut *tx).await?.try_get("status")?;
                let r_revoked = sqlx::query("SELECT 1 AS r FROM revoked_hashes WHERE sha256 = $1").bind(&r.sha256).fetch_optional(&mut *tx).await?.is_some();
                activation_check(r, &r_status, r_revoked, current_id.as_deref())?;
            }
            sqlx::query("UPDATE bundles SET status = 'REVOKED', revoked_at = $1, revoke_reason = $2 WHERE id = $3")
                .bind(&ts)
                .bind(reason)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if let Some(sha) = &target.sha256 {
                sqlx::query("INSERT INTO revoked_hashes (sha256, org_id, revoked_at, reason) VALUES ($1, $2, $3, $4) ON CONFLICT (sha256) DO NOTHING")
                    .bind(sha)
                    .bind(&target.organization_id)
                    .bind(&ts)
                    .bind(reason)
                    .execute(&mut *tx)
                    .await?;
            }
            if was_active {
                if let Some(r) = &rollback {
                    sqlx::query("UPDATE bundles SET status = 'ACTIVE', activated_at = $1 WHERE id = $2")
                        .bind(&ts)
                        .bind(&r.id)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query("UPDATE bundle_heads SET active_bundle_id = $1, generation = generation + 1 WHERE org_id = $2 AND name = $3")
                    .bind(rollback.as_ref().map(|r| r.id.as_str()))
                    .bind(&target.organization_id)
                    .bind(&target.name)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(was_active)
        });
        let was_active = was_active?;
        let revoked = self
            .get(id)
            .await?
            .ok_or_else(|| EnforceError::internal("revoke bundle", "row vanished"))?;
        let rolled_back_to = match rollback {
            Some(r) => self.get(&r.id).await?,
            None => None,
        };
        Ok(Revocation {
            revoked,
            rolled_back_to,
            was_active,
        })
    }
}

/// Whether `target` (with its current `status`) may become active.
fn activation_check(
    target: &BundleRecord,
    status: &str,
    revoked: bool,
    current: Option<&str>,
) -> EnforceResult<()> {
    match status {
        "DRAFT" => Err(EnforceError::conflict(
            "not_published",
            format!("bundle {} is a DRAFT; publish it first", target.id),
        )),
        "REVOKED" => Err(EnforceError::conflict(
            "bundle_revoked",
            format!("bundle {} is revoked and can never be activated", target.id),
        )),
        _ if revoked => Err(EnforceError::conflict(
            "bundle_revoked",
            format!(
                "bundle digest {} is revoked",
                target.sha256.as_deref().unwrap_or("")
            ),
        )),
        "ACTIVE" if current != Some(target.id.as_str()) => Err(EnforceError::internal(
            "activate bundle",
            "status ACTIVE without being the head",
        )),
        _ => Ok(()),
    }
}

/// SemVer precedence of `a` against `b` (§11: build metadata is ignored, unlike `Ord` of
/// `semver::Version`, which breaks ties by it), or `None` if either is not a version.
fn precedence(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    Some(version_key(a).ok()?.cmp_precedence(&version_key(b).ok()?))
}

/// True if `candidate` has a higher precedence than `active`: what activating without
/// `rollback` requires (equal precedence is not newer; unparseable versions never are).
fn is_newer(candidate: &str, active: &str) -> bool {
    precedence(candidate, active) == Some(std::cmp::Ordering::Greater)
}

/// True if `a` and `b` are the same version by precedence (`2`, `2.0.0` and `2.0.0+b`).
fn same_precedence(a: &str, b: &str) -> bool {
    precedence(a, b) == Some(std::cmp::Ordering::Equal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_needs_a_strictly_higher_precedence() {
        for (candidate, active) in [("2.0.1", "2.0.0"), ("3", "2.9.9"), ("2.0.0", "2.0.0-rc.1")] {
            assert!(is_newer(candidate, active), "{candidate} > {active}");
        }
        for (candidate, active) in [
            ("2.0.0+evil", "2.0.0"),
            ("2.0.0", "2.0.0+build.1"),
            ("2", "2.0.0"),
            ("1.9.0", "2.0.0"),
            ("2.0.0-rc.1", "2.0.0"),
            ("not-a-version", "1.0.0"),
            ("9.0.0", "not-a-version"),
        ] {
            assert!(
                !is_newer(candidate, active),
                "{candidate} is not newer than {active}"
            );
        }
        assert!(same_precedence("2.0.0+evil", "2.0.0"));
        assert!(same_precedence("2", "2.0.0+x"));
        assert!(!same_precedence("2.0.0-rc.1", "2.0.0"));
    }
}
