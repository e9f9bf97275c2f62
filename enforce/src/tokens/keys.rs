//! The signing keys of gateway tokens: Ed25519 keys that rotate `next → active → retiring →
//! retired`, plus an optional HS256 shared secret from the environment.
//!
//! Invariants:
//! - The algorithm is pinned by the key: each `kid` maps to exactly one algorithm, and a token
//!   whose header names another one is refused before any signature check.
//! - `kid` is the RFC 7638 thumbprint (SHA-256) of the public JWK, so it changes with the key.
//! - Private keys live in `<data_dir>/token-keys/<kid>.pem` (PKCS#8, mode 0600) and never enter
//!   the database, logs, errors or the ledger; the database holds the public halves and states,
//!   which every replica shares. The HS256 secret is never served; its `kid` is a digest.
//! - The JWKS serves `next`, `active` and `retiring` keys, so verifiers learn a key before it
//!   signs anything and keep it while tokens it signed may still be valid.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use sck_wire::token::VerifyKey;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sck_ledger::store::BeginWrite;
use sck_ledger::store::{Backend, Store};
use serde::Serialize;
use sha2::Digest;
use sqlx::Row;

use super::throttle::ReloadThrottle;
use crate::clock::unix_now;
use crate::db::with_pool;

/// Lifecycle state of a signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published, not yet signing.
    Next,
    /// Signs new tokens.
    Active,
    /// No longer signs; verifies tokens it signed until they expire.
    Retiring,
    /// Neither signs nor verifies.
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retiring => "retiring",
            KeyState::Retired => "retired",
        }
    }

    fn parse(s: &str) -> Option<KeyState> {
        [
            KeyState::Next,
            KeyState::Active,
            KeyState::Retiring,
            KeyState::Retired,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// What an admin may see about a key (no key material beyond the public `x`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyRecord {
    pub kid: String,
    pub algorithm: String,
    pub state: KeyState,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    pub retiring_at: Option<i64>,
    pub retired_at: Option<i64>,
}

/// A key that signs tokens.
#[derive(Clone)]
pub(crate) struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
}

/// One consistent snapshot of the keys, swapped whole on reload.
#[derive(Default)]
pub(crate) struct Ring {
    pub verify: HashMap<String, VerifyKey>,
    pub ed25519: Option<SigningKey>,
    pub hs256: Option<SigningKey>,
    pub jwks: JwkSet,
    pub records: Vec<KeyRecord>,
}

/// What a rotation changed (key ids only).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    pub activated: String,
    pub retiring: Option<String>,
    pub next: String,
}

/// The key ring: database-backed states, private keys on disk, an in-memory snapshot.
pub struct KeyRing {
    store: Store,
    dir: PathBuf,
    hs256: Option<(String, Vec<u8>)>,
    ring: RwLock<Arc<Ring>>,
    throttle: ReloadThrottle,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("dir", &self.dir)
            .field("hs256", &self.hs256.as_ref().map(|(kid, _)| kid))
            .finish_non_exhaustive()
    }
}

/// `kid, public_x, state, created_at, activated_at, retiring_at, retired_at`.
type KeyRow = (
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// The public JWK of an Ed25519 key, `kid` set to its RFC 7638 thumbprint.
pub fn ed25519_jwk(public: &[u8; 32]) -> Result<Jwk, String> {
    let mut jwk = Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::EdDSA),
            ..Default::default()
        },
        algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x: URL_SAFE_NO_PAD.encode(public),
        }),
    };
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|e| format!("thumbprint: {e}"))?;
    jwk.common.key_id = Some(kid);
    Ok(jwk)
}

/// The `kid` of the HS256 secret: a digest that reveals nothing usable about the secret.
pub fn hs256_kid(secret: &[u8]) -> String {
    let mut hasher = sha2::Sha256::new();
    hasher.update(b"sck gateway token hs256 kid\0");
    hasher.update(secret);
    format!("hs256-{}", &hex::encode(hasher.finalize())[..16])
}

/// A freshly generated key: its kid, public `x` and PKCS#8 PEM.
struct NewKey {
    kid: String,
    x: String,
    pem: zeroize_string::Secret,
}

/// Holds private PEM text and wipes nothing fancy; kept out of `Debug`.
mod zeroize_string {
    pub struct Secret(pub String);
    impl std::fmt::Debug for Secret {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Secret(..)")
        }
    }
}

fn generate() -> Result<NewKey, String> {
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let public = key.verifying_key().to_bytes();
    let jwk = ed25519_jwk(&public)?;
    let pem = key
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map_err(|e| format!("encode key: {e}"))?;
    Ok(NewKey {
        kid: jwk.common.key_id.clone().unwrap_or_default(),
        x: URL_SAFE_NO_PAD.encode(public),
        pem: zeroize_string::Secret(pem.to_string()),
    })
}
/// The JWK and verifying key of a stored Ed25519 public key (`x`, base64url), checking that
/// `kid` is its RFC 7638 thumbprint.
fn ed25519_verifying_key(kid: &str, x: &str) -> Result<(Jwk, VerifyKey), String> {
    let public: [u8; 32] = URL_SAFE_NO_PAD
        .decode(x)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("key {kid}: bad public key"))?;
    let jwk = ed25519_jwk(&public)?;
    if jwk.common.key_id.as_deref() != Some(kid) {
        return Err(format!("key {kid}: kid is not the key's thumbprint"));
    }
    let decoding = DecodingKey::from_ed_components(x).map_err(|e| format!("key {kid}: {e}"))?;
    Ok((
        jwk,
        VerifyKey {
            alg: Algorithm::EdDSA,
            decoding,
        },
    ))
}

fn key_path(dir: &Path, kid: &str) -> PathBuf {
    dir.join(format!("{kid}.pem"))
}

impl KeyRing {
    /// Opens the ring: makes sure an `active` and a `next` key exist (creating them on first
    /// start), then loads the snapshot. Returns the ring and the keys it created.
    pub async fn open(
        store: Store,
        dir: PathBuf,
        hs256_secret: Option<Vec<u8>>,
    ) -> Result<(KeyRing, Vec<(String, KeyState)>), String> {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let ring = KeyRing {
            store,
            dir,
            hs256: hs256_secret.map(|s| (hs256_kid(&s), s)),
            ring: RwLock::new(Arc::new(Ring::default())),
            throttle: ReloadThrottle::new(),
        };
        let mut created = Vec::new();
        for state in [KeyState::Active, KeyState::Next] {
            if let Some(kid) = ring.create_if_missing(state).await? {
                created.push((kid, state));
            }
        }
        ring.reload().await?;
        Ok((ring, created))
    }

    /// Inserts a new key in `state` unless one exists (another replica may win the race).
    async fn create_if_missing(&self, state: KeyState) -> Result<Option<String>, String> {
        let exists = with_pool!(&self.store, pool => {
            sqlx::query("SELECT kid FROM token_keys WHERE state = $1")
                .bind(state.as_str())
                .fetch_optional(pool)
                .await
                .map_err(|e| e.to_string())?
                .is_some()
        });
        if exists {
            return Ok(None);
        }
        let key = generate()?;
        let path = key_path(&self.dir, &key.kid);
        crate::files::write_private(&path, key.pem.0.as_bytes())?;
        let now = unix_now();
        let activated = (state == KeyState::Active).then_some(now);
        let inserted = with_pool!(&self.store, pool => {
            sqlx::query(
                "INSERT INTO token_keys (kid, algorithm, public_x, state, created_at, activated_at) \
                 VALUES ($1, 'EdDSA', $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(&key.kid)
            .bind(&key.x)
            .bind(state.as_str())
            .bind(now)
            .bind(activated)
            .execute(pool)
            .await
            .map_err(|e| e.to_string())?
            .rows_affected()
        });
        if inserted == 0 {
            let _ = std::fs::remove_file(&path);
            return Ok(None);
        }
        tracing::info!(kid = %key.kid, state = state.as_str(), "created token signing key");
        Ok(Some(key.kid))
    }

    /// The current snapshot.
    pub(crate) fn snapshot(&self) -> Arc<Ring> {
        self.ring
            .read()
            .map(|r| r.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Every key's record, newest first.
    pub fn records(&self) -> Vec<KeyRecord> {
        self.snapshot().records.clone()
    }

    /// The public JWK set (next, active, retiring Ed25519 keys).
    pub fn jwks(&self) -> JwkSet {
        self.snapshot().jwks.clone()
    }

    /// The signing key of the active `kid` from its private key file; `None` (with a warning)
    /// when the file is not on this replica, which then cannot issue EdDSA tokens.
    fn active_signing_key(&self, kid: &str) -> Result<Option<SigningKey>, String> {
        let path = key_path(&self.dir, kid);
        match std::fs::read(&path) {
            Ok(pem) => {
                let encoding = EncodingKey::from_ed_pem(&pem)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                Ok(Some(SigningKey {
                    kid: kid.to_owned(),
                    alg: Algorithm::EdDSA,
                    encoding,
                }))
            }
            Err(e) => {
                tracing::warn!(
                    kid = %kid,
                    path = %path.display(),
                    error = %e,
                    "private key of the active token key is not on this replica; issuing EdDSA tokens is unavailable here"
                );
                Ok(None)
            }
        }
    }

    /// Re-reads the key states from the database and swaps the snapshot.
    pub async fn reload(&self) -> Result<(), String> {
        let rows: Vec<KeyRow> = with_pool!(&self.store, pool => {
            let rows = sqlx::query(
                "SELECT kid, public_x, state, created_at, activated_at, retiring_at, retired_at \
                 FROM token_keys ORDER BY created_at DESC, kid",
            )
            .fetch_all(pool)
            .await
            .map_err(|e| e.to_string())?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push((
                    row.try_get("kid").map_err(|e| e.to_string())?,
                    row.try_get("public_x").map_err(|e| e.to_string())?,
                    row.try_get("state").map_err(|e| e.to_string())?,
                    row.try_get("created_at").map_err(|e| e.to_string())?,
                    row.try_get("activated_at").map_err(|e| e.to_string())?,
                    row.try_get("retiring_at").map_err(|e| e.to_string())?,
                    row.try_get("retired_at").map_err(|e| e.to_string())?,
                ));
            }
            out
        });
        let mut ring = Ring::default();
        for (kid, x, state, created_at, activated_at, retiring_at, retired_at) in rows {
            let state = KeyState::parse(&state).ok_or_else(|| format!("key {kid}: bad state"))?;
            ring.records.push(KeyRecord {
                kid: kid.clone(),
                algorithm: "EdDSA".into(),
                state,
                created_at,
                activated_at,
                retiring_at,
                retired_at,
            });
            if state == KeyState::Retired {
                continue;
            }
            let (jwk, key) = ed25519_verifying_key(&kid, &x)?;
            ring.verify.insert(kid.clone(), key);
            ring.jwks.keys.push(jwk);
            if state == KeyState::Active {
                ring.ed25519 = self.active_signing_key(&kid)?;
            }
        }
        if let Some((kid, secret)) = &self.hs256 {
            ring.verify.insert(
                kid.clone(),
                VerifyKey {
                    alg: Algorithm::HS256,
                    decoding: DecodingKey::from_secret(secret),
                },
            );
            ring.hs256 = Some(SigningKey {
                kid: kid.clone(),
                alg: Algorithm::HS256,
                encoding: EncodingKey::from_secret(secret),
            });
        }
        let fresh = Arc::new(ring);
        match self.ring.write() {
            Ok(mut guard) => *guard = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        self.throttle.reloaded();
        Ok(())
    }

    /// Reloads unless the last reload was less than a second ago (an unknown `kid` may be a key
    /// another replica just rotated in; see [`ReloadThrottle`]).
    pub async fn reload_if_stale(&self) -> bool {
        self.throttle
            .reload_if_stale("token key", self.reload())
            .await
    }

    /// Rotates: `active → retiring`, `next → active`, and a new `next`. One transaction; two
    /// replicas rotating at once serialise on the database.
    pub async fn rotate(&self) -> Result<Rotation, String> {
        let key = generate()?;
        let path = key_path(&self.dir, &key.kid);
        crate::files::write_private(&path, key.pem.0.as_bytes())?;
        let now = unix_now();
        let result: Result<Rotation, sqlx::Error> = with_pool!(&self.store, pool => async {
            let mut tx = pool.begin_write().await?;
            if self.store.backend() == Backend::Postgres {
                sqlx::query("LOCK TABLE token_keys IN SHARE ROW EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await?;
            }
            let active: Option<String> = sqlx::query("SELECT kid FROM token_keys WHERE state = 'active'")
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("kid"))
                .transpose()?;
            let next: Option<String> = sqlx::query("SELECT kid FROM token_keys WHERE state = 'next'")
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("kid"))
                .transpose()?;
            sqlx::query("UPDATE token_keys SET state = 'retiring', retiring_at = $1 WHERE state = 'active'")
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let (activated, new_next) = match next {
                Some(next) => {
                    sqlx::query("UPDATE token_keys SET state = 'active', activated_at = $1 WHERE kid = $2")
                        .bind(now)
                        .bind(&next)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(
                        "INSERT INTO token_keys (kid, algorithm, public_x, state, created_at) \
                         VALUES ($1, 'EdDSA', $2, 'next', $3)",
                    )
                    .bind(&key.kid)
                    .bind(&key.x)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    (next, key.kid.clone())
                }
                None => {
                    // No published next key (should not happen): the new key becomes active.
                    sqlx::query(
                        "INSERT INTO token_keys (kid, algorithm, public_x, state, created_at, activated_at) \
                         VALUES ($1, 'EdDSA', $2, 'active', $3, $3)",
                    )
                    .bind(&key.kid)
                    .bind(&key.x)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    (key.kid.clone(), key.kid.clone())
                }
            };
            tx.commit().await?;
            Ok(Rotation { activated, retiring: active, next: new_next })
        }.await);
        match result {
            Ok(rotation) => {
                self.reload().await?;
                Ok(rotation)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(format!("rotate token keys: {e}"))
            }
        }
    }

    /// Retires `retiring` keys whose tokens have all expired (past `leeway`). Returns their ids.
    pub async fn retire_expired(&self, leeway: i64) -> Result<Vec<String>, String> {
        let now = unix_now();
        let cutoff = now - leeway;
        let retired: Vec<String> = with_pool!(&self.store, pool => {
            let rows = sqlx::query(
                "SELECT k.kid AS kid FROM token_keys k WHERE k.state = 'retiring' AND NOT EXISTS \
                 (SELECT 1 FROM issued_tokens t WHERE t.kid = k.kid AND t.expires_at >= $1)",
            )
            .bind(cutoff)
            .fetch_all(pool)
            .await
            .map_err(|e| e.to_string())?;
            let mut retired = Vec::new();
            for row in rows {
                let kid: String = row.try_get("kid").map_err(|e| e.to_string())?;
                let changed = sqlx::query(
                    "UPDATE token_keys SET state = 'retired', retired_at = $1 WHERE kid = $2 AND state = 'retiring'",
                )
                .bind(now)
                .bind(&kid)
                .execute(pool)
                .await
                .map_err(|e| e.to_string())?
                .rows_affected();
                if changed > 0 {
                    retired.push(kid);
                }
            }
            retired
        });
        if !retired.is_empty() {
            self.reload().await?;
        }
        Ok(retired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kid_is_the_rfc7638_thumbprint() {
        // RFC 8037 appendix A.3: the thumbprint of its Ed25519 example key.
        let x = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        let jwk = ed25519_jwk(&x.try_into().unwrap()).unwrap();
        assert_eq!(
            jwk.common.key_id.as_deref(),
            Some("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k")
        );
    }

    #[test]
    fn hs256_kid_does_not_contain_the_secret() {
        let kid = hs256_kid(b"a-very-secret-shared-secret-of-32-bytes");
        assert!(kid.starts_with("hs256-"));
        assert!(!kid.contains("secret"));
    }
}
