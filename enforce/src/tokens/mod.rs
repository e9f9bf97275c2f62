//! Gateway tokens: issuing (RFC 9068 `at+jwt` with a Level of Assurance), the one verification
//! function and its extractor, introspection (RFC 7662), revocation (RFC 7009) and key rotation.
//!
//! [`TokenService`] owns the key ring ([`keys`]), the verifier with its cache and revoked set
//! ([`verify`]), the issuers and org settings ([`issuers`]) with their in-memory snapshot for
//! verification ([`directory`]) and the tables ([`schema`]).
//!
//! Invariants:
//! - Every route that accepts a gateway token calls [`TokenService::verify`] (directly or via
//!   the `GatewayToken` extractor of the HTTP edge); there is no other path that accepts one.
//! - An issuer never mints a LoA above its ceiling, a scope outside its set, or a TTL above
//!   its org's maximum; tokens are only issued for the issuer's own org.
//! - Every issue, revocation and key change is appended to the ledger before the API answers;
//!   entries carry the `jti` and the token's SHA-256, never the token or key material.
//! - A revoked `jti` is stored until the token's `exp`, loaded at start, and pushed to every
//!   replica (PostgreSQL `NOTIFY` on [`CHANNEL`]; a periodic reload covers a lost notification);
//!   so are key changes and new issuers or org settings.
//! - A token is accepted only if this deployment could have issued it: signed with a current
//!   key, and within its issuer's LoA ceiling, scopes and algorithm and its org's maximum TTL.
//!
//! Settings come from the environment (documented in docs/tokens.md): `SCK_TOKENS_ISSUER`
//! (default: the configured `public_url`), `SCK_TOKENS_AUDIENCE` (`urn:sck:enforcement`),
//! `SCK_TOKENS_HS256_SECRET` (unset: HS256 disabled; at least 32 bytes),
//! `SCK_TOKENS_LEEWAY_SECS` (5), `SCK_TOKENS_DEFAULT_TTL_SECS` (900),
//! `SCK_TOKENS_MAX_TTL_SECS` (3600; the ceiling of every org's maximum, at most 86400),
//! `SCK_TOKENS_CACHE_SIZE` (10000), `SCK_TOKENS_MAX_DELEGATION_DEPTH` (4: the most actors a
//! delegated token's `act` chain may hold, 1-16), `SCK_TOKENS_EXTRA_AUDIENCES` (comma-separated
//! audiences tokens may also be minted for, e.g. by RFC 8707 `resource`; tokens for them do not
//! verify here, only where that audience is `SCK_TOKENS_AUDIENCE`).

pub mod directory;
pub mod issuers;
pub mod keys;
pub mod schema;
mod throttle;
pub mod verify;

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::Header;
use sck_ledger::companion::Row as CompanionRow;
use sck_ledger::entry::EventType;
use sck_ledger::store::Store;
use sck_ledger::Ledger;
use sck_wire::delegation::Grant;
use sck_wire::principal::VerifiedToken;
use sck_wire::token::{acr_for, algorithm_name, is_valid_text, Claims, TOKEN_TYPE};

use crate::events::event;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Digest;
use sqlx::Row;

pub use issuers::{Issuer, OrgTokenSettings};
use keys::SigningKey;
pub use keys::{KeyRecord, KeyRing, KeyState, Rotation};
pub use verify::{Verifier, VerifySettings};

use crate::clock::unix_now;
use crate::config::Config;
use crate::db::with_pool;
use crate::error::{EnforceError, EnforceResult, Kind};

/// The PostgreSQL notification channel for revocations and key changes.
pub const CHANNEL: &str = "sck_tokens";

/// Hard ceiling of any token lifetime (24 h).
pub const MAX_TTL_CEILING: i64 = 86_400;

/// Deployment-wide token settings (from the environment).
#[derive(Clone)]
pub struct TokenSettings {
    pub verify: VerifySettings,
    /// Every audience tokens may be minted for: `verify.audience` first, then the extra ones.
    pub audiences: Vec<String>,
    pub hs256_secret: Option<Vec<u8>>,
    pub defaults: OrgTokenSettings,
}

impl std::fmt::Debug for TokenSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSettings")
            .field("verify", &self.verify)
            .field("audiences", &self.audiences)
            .field("hs256", &self.hs256_secret.is_some())
            .field("defaults", &self.defaults)
            .finish()
    }
}

fn env_number(name: &str, default: i64) -> Result<i64, String> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("{name}: not a whole number")),
        Err(_) => Ok(default),
    }
}

impl TokenSettings {
    /// Reads the `SCK_TOKENS_*` variables (see the module docs for defaults).
    pub fn from_env(config: &Config) -> Result<TokenSettings, String> {
        let issuer =
            std::env::var("SCK_TOKENS_ISSUER").unwrap_or_else(|_| config.public_url.clone());
        let audience =
            std::env::var("SCK_TOKENS_AUDIENCE").unwrap_or_else(|_| "urn:sck:enforcement".into());
        let hs256_secret = match std::env::var("SCK_TOKENS_HS256_SECRET") {
            Ok(s) if s.len() >= 32 => Some(s.into_bytes()),
            Ok(_) => return Err("SCK_TOKENS_HS256_SECRET must be at least 32 bytes".into()),
            Err(_) => None,
        };
        let leeway = env_number("SCK_TOKENS_LEEWAY_SECS", 5)?;
        let default_ttl = env_number("SCK_TOKENS_DEFAULT_TTL_SECS", 900)?;
        let max_ttl = env_number("SCK_TOKENS_MAX_TTL_SECS", 3600)?;
        let cache = env_number("SCK_TOKENS_CACHE_SIZE", 10_000)?;
        let depth = env_number("SCK_TOKENS_MAX_DELEGATION_DEPTH", 4)?;
        if !(1..=16).contains(&depth) {
            return Err("SCK_TOKENS_MAX_DELEGATION_DEPTH must be 1-16".into());
        }
        if !(0..=300).contains(&leeway) {
            return Err("SCK_TOKENS_LEEWAY_SECS must be 0-300".into());
        }
        if !(1..=MAX_TTL_CEILING).contains(&max_ttl) || !(1..=max_ttl).contains(&default_ttl) {
            return Err(format!(
                "token TTLs: need 1 <= SCK_TOKENS_DEFAULT_TTL_SECS <= SCK_TOKENS_MAX_TTL_SECS <= {MAX_TTL_CEILING}"
            ));
        }
        if issuer.is_empty() || audience.is_empty() {
            return Err("SCK_TOKENS_ISSUER and SCK_TOKENS_AUDIENCE must not be empty".into());
        }
        let mut audiences = vec![audience.clone()];
        for extra in std::env::var("SCK_TOKENS_EXTRA_AUDIENCES")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            if !is_valid_text(extra) || extra.contains(char::is_whitespace) {
                return Err("SCK_TOKENS_EXTRA_AUDIENCES: each audience is 1-256 characters without spaces or control characters".into());
            }
            if !audiences.iter().any(|a| a == extra) {
                audiences.push(extra.to_owned());
            }
        }
        Ok(TokenSettings {
            audiences,
            verify: VerifySettings {
                issuer,
                audience,
                leeway_secs: leeway as u64,
                cache_capacity: cache.max(1) as usize,
                max_delegation_depth: depth as usize,
            },
            hs256_secret,
            defaults: OrgTokenSettings {
                default_ttl_seconds: default_ttl,
                max_ttl_seconds: max_ttl,
            },
        })
    }
}

/// A request to issue a token (field names as in `gateway.md`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssueRequest {
    pub organization_id: String,
    pub artifact_id: String,
    pub artifact_type: String,
    pub loa_level: i64,
    pub scope: Vec<String>,
    pub issuer_id: String,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub ttl_seconds: Option<i64>,
}

/// An issued token and what it grants.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuedToken {
    pub token: String,
    pub token_id: String,
    pub token_type: &'static str,
    pub issued_at: i64,
    pub expires_at: i64,
    pub expires_in: i64,
    pub organization_id: String,
    pub subject: String,
    pub loa_level: u8,
    pub acr: String,
    pub scope: Vec<String>,
    pub issuer_id: String,
    pub key_id: String,
    pub algorithm: &'static str,
}

/// What to revoke.
#[derive(Debug, Clone)]
pub enum RevokeTarget {
    /// The token text.
    Token(String),
    /// The token's `jti`.
    TokenId(String),
}

/// Tokens: issue, verify, introspect, revoke, rotate keys.
#[derive(Clone)]
pub struct TokenService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    ledger: Ledger,
    settings: TokenSettings,
    keys: KeyRing,
    directory: directory::Directory,
    verifier: Verifier,
    /// The ledger log that records deployment-wide key events.
    system_org: String,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("settings", &self.inner.settings)
            .field("keys", &self.inner.keys)
            .finish_non_exhaustive()
    }
}

/// SHA-256 hex of a token, as recorded in the ledger and `issued_tokens`.
pub fn token_sha256(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// The `scope` claim of `scopes`: sorted, each once, space-separated.
fn normalized(scopes: &[String]) -> String {
    let mut scopes = scopes.to_vec();
    scopes.sort();
    scopes.dedup();
    scopes.join(" ")
}

/// The request's own checks (text fields, at least one well-formed scope) and its LoA (1-4).
fn checked_loa(request: &IssueRequest) -> EnforceResult<u8> {
    check_text("artifactId", &request.artifact_id)?;
    check_text("artifactType", &request.artifact_type)?;
    if let Some(subject) = &request.subject {
        check_text("subject", subject)?;
    }
    let loa = u8::try_from(request.loa_level)
        .ok()
        .filter(|l| (1..=4).contains(l))
        .ok_or_else(|| {
            EnforceError::invalid("invalid_request", "loaLevel must be an integer 1-4")
        })?;
    if request.scope.is_empty() {
        return Err(EnforceError::invalid(
            "invalid_request",
            "scope must name at least one scope",
        ));
    }
    for scope in &request.scope {
        issuers::check_scope(scope)?;
    }
    Ok(loa)
}

fn check_text(field: &str, value: &str) -> EnforceResult<()> {
    if !is_valid_text(value) {
        return Err(EnforceError::invalid(
            "invalid_request",
            format!("{field} must be 1-256 characters without control characters"),
        ));
    }
    Ok(())
}

async fn load_revocations(store: &Store, since: i64) -> Result<HashMap<String, i64>, sqlx::Error> {
    with_pool!(store, pool => {
        let rows = sqlx::query("SELECT jti, expires_at FROM revoked_tokens WHERE expires_at >= $1")
            .bind(since)
            .fetch_all(pool)
            .await?;
        let mut all = HashMap::with_capacity(rows.len());
        for row in rows {
            all.insert(row.try_get::<String, _>("jti")?, row.try_get::<i64, _>("expires_at")?);
        }
        Ok(all)
    })
}

impl TokenService {
    /// Opens the token service: key ring (creating the first keys) and revoked ids from the
    /// database; [`Self::spawn_background`] starts its listener and sweep.
    pub async fn open(
        store: Store,
        ledger: Ledger,
        config: &Config,
    ) -> Result<TokenService, String> {
        let settings = TokenSettings::from_env(config)?;
        let (keys, created) = KeyRing::open(
            store.clone(),
            config.data_dir.join("token-keys"),
            settings.hs256_secret.clone(),
        )
        .await?;
        let directory = directory::Directory::open(store.clone(), settings.defaults)
            .await
            .map_err(|e| format!("token issuers: {e}"))?;
        let verifier = Verifier::default();
        let leeway = settings.verify.leeway_secs as i64;
        verifier.replace_revoked(
            load_revocations(&store, unix_now() - leeway)
                .await
                .map_err(|e| format!("load revoked tokens: {e}"))?,
        );
        let service = TokenService {
            inner: Arc::new(Inner {
                store,
                ledger,
                settings,
                keys,
                directory,
                verifier,
                system_org: config.bundles.default_org.clone(),
            }),
        };
        for (kid, state) in created {
            service
                .record_key_event(EventType::KeyCreated, &kid, state.as_str(), "system")
                .await
                .map_err(|e| e.detail)?;
            if state == KeyState::Active {
                service
                    .record_key_event(EventType::KeyActivated, &kid, "active", "system")
                    .await
                    .map_err(|e| e.detail)?;
            }
        }
        Ok(service)
    }

    /// Starts the cross-replica listener (PostgreSQL) and the periodic sweep.
    pub async fn spawn_background(&self) -> Result<(), sqlx::Error> {
        self.start_listener().await?;
        self.start_sweep();
        Ok(())
    }

    /// The deployment-wide settings.
    pub fn settings(&self) -> &TokenSettings {
        &self.inner.settings
    }

    /// The one verification function for gateway tokens (see [`verify`]).
    pub async fn verify(&self, bearer: &str) -> Result<VerifiedToken, EnforceError> {
        let result = self
            .inner
            .verifier
            .verify(
                &self.inner.keys,
                &self.inner.directory,
                &self.inner.settings.verify,
                bearer,
            )
            .await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.code,
        };
        metrics::counter!("sck_token_verifications_total", "result" => outcome).increment(1);
        result
    }

    /// Verification without the cache (and without the revocation check): what a cache miss
    /// costs. For benchmarks and tests.
    pub async fn verify_uncached(&self, bearer: &str) -> Result<VerifiedToken, EnforceError> {
        self.inner
            .verifier
            .verify_uncached(
                &self.inner.keys,
                &self.inner.directory,
                &self.inner.settings.verify,
                bearer,
            )
            .await
    }

    /// Empties the verification cache.
    pub fn clear_cache(&self) {
        self.inner.verifier.clear_cache();
    }

    /// The public keys (RFC 7517 JWK set).
    pub fn jwks(&self) -> JwkSet {
        self.inner.keys.jwks()
    }

    /// Every signing key with its state.
    pub fn key_records(&self) -> Vec<KeyRecord> {
        self.inner.keys.records()
    }

    /// Creates an issuer in `org` (the caller has checked the org exists and may be acted on).
    pub async fn create_issuer(
        &self,
        org: &str,
        name: &str,
        loa_ceiling: i64,
        scopes: &[String],
        algorithm: Option<&str>,
    ) -> EnforceResult<Issuer> {
        crate::lifecycle::check_name("name", name)?;
        let loa = u8::try_from(loa_ceiling)
            .ok()
            .filter(|l| (1..=4).contains(l))
            .ok_or_else(|| EnforceError::invalid("invalid_request", "loaCeiling must be 1-4"))?;
        if scopes.is_empty() {
            return Err(EnforceError::invalid(
                "invalid_request",
                "scopes must name at least one scope",
            ));
        }
        for scope in scopes {
            issuers::check_scope(scope)?;
        }
        let mut scopes = scopes.to_vec();
        scopes.sort();
        scopes.dedup();
        let algorithm = match algorithm.unwrap_or("EdDSA") {
            "EdDSA" => "EdDSA",
            "HS256" if self.inner.settings.hs256_secret.is_some() => "HS256",
            "HS256" => {
                return Err(EnforceError::invalid(
                    "hs256_not_configured",
                    "HS256 needs SCK_TOKENS_HS256_SECRET on the server",
                ))
            }
            other => {
                return Err(EnforceError::invalid(
                    "invalid_request",
                    format!("algorithm {other:?} is not EdDSA or HS256"),
                ))
            }
        };
        let issuer = issuers::create(&self.inner.store, org, name, loa, &scopes, algorithm).await?;
        self.directory_changed().await?;
        Ok(issuer)
    }

    /// After a change of issuers or org settings: this replica's directory reloads, the others
    /// are told.
    async fn directory_changed(&self) -> EnforceResult<()> {
        self.inner.directory.reload().await?;
        self.notify("issuers").await;
        Ok(())
    }

    /// Issuers of `org` (every org for `None`).
    pub async fn list_issuers(&self, org: Option<&str>) -> EnforceResult<Vec<Issuer>> {
        issuers::list(&self.inner.store, org).await
    }

    /// The TTL settings of `org`.
    pub async fn org_settings(&self, org: &str) -> EnforceResult<OrgTokenSettings> {
        issuers::settings(&self.inner.store, org, self.inner.settings.defaults).await
    }

    /// Sets the TTL settings of `org`, bounded by the deployment maximum.
    pub async fn set_org_settings(
        &self,
        org: &str,
        default_ttl: Option<i64>,
        max_ttl: i64,
    ) -> EnforceResult<OrgTokenSettings> {
        let ceiling = self.inner.settings.defaults.max_ttl_seconds;
        if !(1..=ceiling).contains(&max_ttl) {
            return Err(EnforceError::invalid(
                "invalid_request",
                format!("maxTtlSeconds must be 1-{ceiling}"),
            ));
        }
        let default_ttl = default_ttl
            .unwrap_or(self.inner.settings.defaults.default_ttl_seconds)
            .min(max_ttl);
        if default_ttl < 1 {
            return Err(EnforceError::invalid(
                "invalid_request",
                "defaultTtlSeconds must be at least 1",
            ));
        }
        let value = OrgTokenSettings {
            default_ttl_seconds: default_ttl,
            max_ttl_seconds: max_ttl,
        };
        issuers::set_settings(&self.inner.store, org, value).await?;
        self.directory_changed().await?;
        Ok(value)
    }

    /// Issues a token; the caller has been authorized for `request.organization_id`. The
    /// steps: the request's own checks, the issuer's ceiling and scopes, the org's TTL, the
    /// signing key, then the `issued_tokens` row and the ledger entry before it is answered.
    pub async fn issue(&self, request: &IssueRequest, actor: &str) -> EnforceResult<IssuedToken> {
        let audience = self.inner.settings.verify.audience.clone();
        self.issue_to(request, &audience, actor).await
    }

    /// [`TokenService::issue`] for `audience`, one of the deployment's audiences (else
    /// `invalid_target`): the token verifies only where `audience` is accepted.
    pub async fn issue_to(
        &self,
        request: &IssueRequest,
        audience: &str,
        actor: &str,
    ) -> EnforceResult<IssuedToken> {
        if !self.inner.settings.audiences.iter().any(|a| a == audience) {
            return Err(EnforceError::invalid(
                "invalid_target",
                format!("{audience:?} is not an audience of this deployment"),
            ));
        }
        let org = request.organization_id.as_str();
        let loa = checked_loa(request)?;
        let issuer = self.granting_issuer(request, loa).await?;
        let ttl = self.granted_ttl(request).await?;
        let key = self.signing_key(&issuer)?;
        let now = unix_now();
        let subject = request
            .subject
            .clone()
            .unwrap_or_else(|| request.artifact_id.clone());
        let claims = Claims {
            iss: self.inner.settings.verify.issuer.clone(),
            sub: subject,
            aud: audience.to_owned(),
            jti: uuid::Uuid::new_v4().to_string(),
            iat: now,
            nbf: now,
            exp: now + ttl,
            client_id: issuer.id,
            org: org.to_owned(),
            loa,
            acr: acr_for(loa),
            scope: normalized(&request.scope),
            artifact_id: request.artifact_id.clone(),
            artifact_type: request.artifact_type.clone(),
            act: None,
            delegated_from: Vec::new(),
        };
        self.mint(claims, &key, actor).await
    }

    /// RFC 8693: issues the token `grant` describes (computed by
    /// `sck_wire::delegation::exchange` from the verified `subject` and the authenticated
    /// client `client_id`, an issuer of the subject's org): the subject's `sub`, artifact and
    /// audience, the grant's scopes, LoA, `exp`, `act` and `delegated_from`. Recorded with its
    /// parent's `jti`, so a revocation can name what it cascades to.
    pub async fn delegate(
        &self,
        subject: &VerifiedToken,
        grant: Grant,
        client_id: &str,
        actor: &str,
    ) -> EnforceResult<IssuedToken> {
        let issuer = issuers::get(&self.inner.store, &subject.org, client_id)
            .await?
            .ok_or_else(|| {
                EnforceError::unauthorized("invalid_client", "client authentication failed")
            })?;
        let key = self.signing_key(&issuer)?;
        let now = unix_now();
        if grant.exp <= now {
            return Err(EnforceError::invalid(
                "invalid_request",
                "the subject token expires now",
            ));
        }
        let claims = Claims {
            iss: self.inner.settings.verify.issuer.clone(),
            sub: subject.sub.clone(),
            aud: subject.aud.clone(),
            jti: uuid::Uuid::new_v4().to_string(),
            iat: now,
            nbf: now,
            exp: grant.exp,
            client_id: issuer.id,
            org: subject.org.clone(),
            loa: grant.loa,
            acr: acr_for(grant.loa),
            scope: normalized(&grant.scope),
            artifact_id: subject.artifact_id.clone(),
            artifact_type: subject.artifact_type.clone(),
            act: Some(grant.act),
            delegated_from: grant.delegated_from,
        };
        self.mint(claims, &key, actor).await
    }

    /// Signs `claims`, records the token (row and ledger entry) and answers it.
    async fn mint(
        &self,
        claims: Claims,
        key: &SigningKey,
        actor: &str,
    ) -> EnforceResult<IssuedToken> {
        let mut header = Header::new(key.alg);
        header.typ = Some(TOKEN_TYPE.into());
        header.kid = Some(key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &key.encoding)
            .map_err(|e| EnforceError::internal("sign token", e))?;
        let digest = token_sha256(&token);
        self.record_issued(&claims, key, &digest, actor).await?;
        metrics::counter!("sck_tokens_issued_total", "org" => claims.org.clone()).increment(1);
        Ok(IssuedToken {
            token,
            token_id: claims.jti,
            token_type: "Bearer",
            issued_at: claims.iat,
            expires_at: claims.exp,
            expires_in: claims.exp - claims.iat,
            organization_id: claims.org,
            subject: claims.sub,
            loa_level: claims.loa,
            acr: claims.acr,
            scope: claims.scope.split(' ').map(str::to_owned).collect(),
            issuer_id: claims.client_id,
            key_id: key.kid.clone(),
            algorithm: algorithm_name(key.alg),
        })
    }

    /// The request's issuer, if it may grant `loa` and every requested scope (another org's
    /// issuer is answered as an unknown one: its existence is not revealed).
    async fn granting_issuer(&self, request: &IssueRequest, loa: u8) -> EnforceResult<Issuer> {
        let org = request.organization_id.as_str();
        let issuer = issuers::get(&self.inner.store, org, &request.issuer_id)
            .await?
            .ok_or_else(|| {
                EnforceError::new(
                    Kind::NotFound,
                    "issuer_not_found",
                    format!(
                        "issuer {} not found in organization {org}",
                        request.issuer_id
                    ),
                )
            })?;
        if loa > issuer.loa_ceiling {
            return Err(EnforceError::forbidden(
                "loa_above_ceiling",
                format!(
                    "loaLevel {loa} is above the ceiling {} of issuer {}",
                    issuer.loa_ceiling, issuer.id
                ),
            ));
        }
        let outside: Vec<&str> = request
            .scope
            .iter()
            .filter(|s| !issuer.scopes.contains(s))
            .map(String::as_str)
            .collect();
        if !outside.is_empty() {
            return Err(EnforceError::forbidden(
                "scope_not_allowed",
                format!("issuer {} may not grant: {}", issuer.id, outside.join(" ")),
            ));
        }
        Ok(issuer)
    }

    /// The token's lifetime: the requested one or the org's default, at least 1 s and at
    /// most the org's maximum.
    async fn granted_ttl(&self, request: &IssueRequest) -> EnforceResult<i64> {
        let org = request.organization_id.as_str();
        let settings = self.org_settings(org).await?;
        let ttl = request.ttl_seconds.unwrap_or(settings.default_ttl_seconds);
        if ttl < 1 {
            return Err(EnforceError::invalid(
                "invalid_request",
                "ttlSeconds must be at least 1",
            ));
        }
        if ttl > settings.max_ttl_seconds {
            return Err(EnforceError::forbidden(
                "ttl_above_maximum",
                format!(
                    "ttlSeconds {ttl} is above the maximum {} of organization {org}",
                    settings.max_ttl_seconds
                ),
            ));
        }
        Ok(ttl)
    }

    /// The current key of the issuer's algorithm on this replica.
    fn signing_key(&self, issuer: &Issuer) -> EnforceResult<SigningKey> {
        let ring = self.inner.keys.snapshot();
        match issuer.algorithm.as_str() {
            "HS256" => ring.hs256.clone(),
            _ => ring.ed25519.clone(),
        }
        .ok_or_else(|| {
            EnforceError::new(
                Kind::Unavailable,
                "signing_key_unavailable",
                format!(
                    "no {} signing key is available on this replica",
                    issuer.algorithm
                ),
            )
        })
    }

    /// The `token.issued` ledger entry (with `act` and `delegated_from` for a delegated token)
    /// and, in the same transaction (a companion row of the ledger's group commit), the
    /// `issued_tokens` row (jti, org, issuer, kid, the token's SHA-256, times, the parent's
    /// jti) — never the token itself.
    async fn record_issued(
        &self,
        claims: &Claims,
        key: &SigningKey,
        digest: &str,
        actor: &str,
    ) -> EnforceResult<()> {
        let org = claims.org.as_str();
        let row = CompanionRow::new(
            "issued_tokens",
            &[
                "jti",
                "org_id",
                "issuer_id",
                "kid",
                "token_sha256",
                "issued_at",
                "expires_at",
                "parent_jti",
            ],
            vec![
                claims.jti.as_str().into(),
                org.into(),
                claims.client_id.as_str().into(),
                key.kid.as_str().into(),
                digest.into(),
                claims.iat.into(),
                claims.exp.into(),
                claims.delegated_from.last().cloned().into(),
            ],
        )
        .map_err(|e| EnforceError::internal("issued token row", e))?;
        let scopes: Vec<&str> = claims.scope.split(' ').collect();
        let mut body = json!({
            "jti": claims.jti, "token_sha256": digest, "issuer_id": claims.client_id,
            "kid": key.kid, "alg": algorithm_name(key.alg), "sub": claims.sub,
            "loa": claims.loa, "acr": claims.acr, "scope": scopes,
            "artifact_id": claims.artifact_id, "artifact_type": claims.artifact_type,
            "iat": claims.iat, "exp": claims.exp, "actor": actor,
        });
        if let Some(act) = &claims.act {
            body["act"] = json!(act);
            body["delegated_from"] = json!(claims.delegated_from);
        }
        self.inner
            .ledger
            .append(org, event(EventType::TokenIssued, body)?.with_row(row))
            .await?;
        Ok(())
    }

    /// RFC 7662: the active token's fields, or exactly `{"active": false}` for anything that
    /// does not verify or belongs to an org `caller_org` may not see.
    pub async fn introspect(&self, token: &str, caller_org: Option<&str>) -> Value {
        match self.verify(token).await {
            Ok(t) if caller_org.is_none_or(|org| org == t.org) => {
                let mut fields = json!({
                "active": true,
                "scope": t.scope.join(" "),
                "client_id": t.client_id,
                "token_type": "Bearer",
                "sub": t.sub,
                "aud": t.aud,
                "iss": t.iss,
                "jti": t.jti,
                "exp": t.exp,
                "iat": t.iat,
                "nbf": t.nbf,
                "org": t.org,
                "loa": t.loa,
                "acr": t.acr,
                "artifact_id": t.artifact_id,
                "artifact_type": t.artifact_type,
                });
                if let Some(act) = &t.act {
                    fields["act"] = json!(act);
                }
                fields
            }
            _ => json!({"active": false}),
        }
    }

    /// RFC 7009: revokes a token of `org_filter` (any org for `None`) by text or id, and with it
    /// every token delegated from it (verification refuses a token any of whose ancestors is
    /// revoked; the ledger entry lists the unexpired descendants as `delegated`). Unknown,
    /// invalid, expired, already revoked or foreign tokens change nothing (and are not errors).
    /// Returns whether this call revoked something.
    pub async fn revoke(
        &self,
        target: &RevokeTarget,
        org_filter: Option<&str>,
        actor: &str,
    ) -> EnforceResult<bool> {
        let now = unix_now();
        let found: Option<(String, String, i64, String)> = match target {
            RevokeTarget::Token(token) => match self.verify(token).await {
                Ok(t) => Some((t.jti, t.org, t.exp, token_sha256(token))),
                Err(_) => None,
            },
            RevokeTarget::TokenId(jti) => {
                if jti.is_empty() || jti.len() > 128 {
                    None
                } else {
                    with_pool!(&self.inner.store, pool => {
                        match sqlx::query(
                            "SELECT org_id, expires_at, token_sha256 FROM issued_tokens WHERE jti = $1 \
                             AND (CAST($2 AS TEXT) IS NULL OR org_id = $2)",
                        )
                            .bind(jti)
                            .bind(org_filter)
                            .fetch_optional(pool)
                            .await?
                        {
                            Some(row) => Some((
                                jti.clone(),
                                row.try_get::<String, _>("org_id")?,
                                row.try_get::<i64, _>("expires_at")?,
                                row.try_get::<String, _>("token_sha256")?,
                            )),
                            None => None,
                        }
                    })
                }
            }
        };
        let Some((jti, org, exp, digest)) = found else {
            return Ok(false);
        };
        if org_filter.is_some_and(|filter| filter != org) || exp < now {
            return Ok(false);
        }
        let inserted = with_pool!(&self.inner.store, pool => {
            sqlx::query(
                "INSERT INTO revoked_tokens (jti, org_id, expires_at, revoked_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (jti) DO NOTHING",
            )
            .bind(&jti)
            .bind(&org)
            .bind(exp)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        self.inner.verifier.revoke(&jti, exp);
        self.notify(&format!("revoke {jti} {exp}")).await;
        if inserted == 0 {
            return Ok(false);
        }
        let delegated = self.unexpired_descendants(&jti, now).await?;
        self.inner
            .ledger
            .append(
                &org,
                event(
                    EventType::TokenRevoked,
                    json!({"jti": jti, "token_sha256": digest, "exp": exp, "actor": actor,
                           "delegated": delegated}),
                )?,
            )
            .await?;
        metrics::counter!("sck_tokens_revoked_total", "org" => org).increment(1);
        Ok(true)
    }

    /// The unexpired tokens delegated from `jti`, transitively (what its revocation refuses
    /// with it: verification checks every ancestor). For the ledger entry of the revocation.
    async fn unexpired_descendants(&self, jti: &str, now: i64) -> EnforceResult<Vec<String>> {
        let jtis = with_pool!(&self.inner.store, pool => {
            sqlx::query_scalar::<_, String>(
                "WITH RECURSIVE descendants(jti) AS ( \
                     SELECT jti FROM issued_tokens WHERE parent_jti = $1 \
                     UNION SELECT t.jti FROM issued_tokens t JOIN descendants d ON t.parent_jti = d.jti) \
                 SELECT d.jti FROM descendants d JOIN issued_tokens t ON t.jti = d.jti \
                 WHERE t.expires_at >= $2 ORDER BY d.jti",
            )
            .bind(jti)
            .bind(now)
            .fetch_all(pool)
            .await?
        });
        Ok(jtis)
    }

    /// Rotates the signing keys (`next → active → retiring`, new `next`) on every replica.
    pub async fn rotate_keys(&self, actor: &str) -> EnforceResult<Rotation> {
        let rotation = self
            .inner
            .keys
            .rotate()
            .await
            .map_err(|e| EnforceError::unavailable("key rotation", e))?;
        self.notify("keys").await;
        self.record_key_event(EventType::KeyCreated, &rotation.next, "next", actor)
            .await?;
        self.record_key_event(
            EventType::KeyActivated,
            &rotation.activated,
            "active",
            actor,
        )
        .await?;
        if let Some(retiring) = &rotation.retiring {
            self.record_key_event(EventType::KeyRetired, retiring, "retiring", actor)
                .await?;
        }
        Ok(rotation)
    }

    async fn record_key_event(
        &self,
        kind: EventType,
        kid: &str,
        state: &str,
        actor: &str,
    ) -> EnforceResult<()> {
        self.inner
            .ledger
            .append(
                &self.inner.system_org,
                event(
                    kind,
                    json!({"kid": kid, "alg": "EdDSA", "state": state, "actor": actor}),
                )?,
            )
            .await?;
        Ok(())
    }

    /// Tells other replicas (PostgreSQL only; SQLite is one process).
    async fn notify(&self, payload: &str) {
        if let Store::Postgres(pool) = &self.inner.store {
            if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(payload)
                .execute(pool)
                .await
            {
                tracing::warn!(error = %e, "could not notify other replicas of a token change");
            }
        }
    }

    /// Reloads revocations and keys from the database (after a missed notification).
    async fn resync(&self) {
        let leeway = self.inner.settings.verify.leeway_secs as i64;
        match load_revocations(&self.inner.store, unix_now() - leeway).await {
            Ok(all) => {
                // Merge rather than replace: a local revocation is never forgotten.
                for (jti, exp) in all {
                    self.inner.verifier.revoke(&jti, exp);
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not reload revoked tokens"),
        }
        if let Err(e) = self.inner.keys.reload().await {
            tracing::warn!(error = %e, "could not reload token keys");
        }
        self.reload_directory().await;
    }

    async fn reload_directory(&self) {
        if let Err(e) = self.inner.directory.reload().await {
            tracing::warn!(error = %e, "could not reload token issuers");
        }
    }

    async fn start_listener(&self) -> Result<(), sqlx::Error> {
        let Store::Postgres(pool) = &self.inner.store else {
            return Ok(());
        };
        let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let received = listener.recv().await;
                let Some(inner) = weak.upgrade() else { break };
                let service = TokenService { inner };
                match received {
                    Ok(note) => {
                        let payload = note.payload();
                        let mut parts = payload.split(' ');
                        match (parts.next(), parts.next(), parts.next()) {
                            (Some("revoke"), Some(jti), Some(exp)) => match exp.parse::<i64>() {
                                Ok(exp) => service.inner.verifier.revoke(jti, exp),
                                Err(_) => service.resync().await,
                            },
                            (Some("keys"), _, _) => {
                                if let Err(e) = service.inner.keys.reload().await {
                                    tracing::warn!(error = %e, "could not reload token keys");
                                }
                            }
                            (Some("issuers"), _, _) => service.reload_directory().await,
                            _ => service.resync().await,
                        }
                    }
                    Err(e) => {
                        // recv reconnects by itself; reload so nothing sent meanwhile is missed.
                        tracing::warn!(error = %e, "token listener interrupted");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        service.resync().await;
                    }
                }
            }
        });
        Ok(())
    }

    /// Every 15 s: forget expired revocations and cache entries, reload from the database,
    /// retire keys whose tokens have all expired, delete expired revocation rows.
    fn start_sweep(&self) {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(15));
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                TokenService { inner }.sweep().await;
            }
        });
    }

    /// One sweep (see [`Self::start_sweep`]).
    pub async fn sweep(&self) {
        let leeway = self.inner.settings.verify.leeway_secs as i64;
        let cutoff = unix_now() - leeway;
        self.inner.verifier.prune(cutoff);
        self.resync().await;
        match self.inner.keys.retire_expired(leeway).await {
            Ok(retired) => {
                for kid in retired {
                    if let Err(e) = self
                        .record_key_event(EventType::KeyRetired, &kid, "retired", "system")
                        .await
                    {
                        tracing::warn!(error = %e, "could not record a key retirement");
                    }
                    self.notify("keys").await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not retire token keys"),
        }
        let deleted: Result<u64, sqlx::Error> = with_pool!(&self.inner.store, pool => {
            sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
                .bind(cutoff - 60)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        });
        if let Err(e) = deleted {
            tracing::warn!(error = %e, "could not delete expired revocations");
        }
    }
}
