//! The one verification of gateway tokens, and its cache.
//!
//! [`Verifier::verify`] is the only place a gateway token is accepted. In order, cheapest
//! first: a size bound; the JOSE header (parsed by `jsonwebtoken`, so `alg: none` or any
//! unknown algorithm is malformed); `typ` must be `at+jwt`; the `kid` must name a key we hold;
//! the header's `alg` must be the one pinned to that key (this is what refuses HS256 signed
//! with a public key, or any other confusion); then `jsonwebtoken::decode` checks the
//! signature with exactly that algorithm and `exp`/`nbf` (with a small leeway), `iss` and
//! `aud`; the claims must be complete and consistent (`loa` 1–4, `acr` = `urn:sck:loa:<loa>`);
//! finally the `jti` must not be revoked.
//!
//! A verified token is cached under the SHA-256 of its text until its `exp` (never longer).
//! A cache hit still re-checks expiry, that its key still verifies, and revocation, so the
//! cache never outlives a revocation, an expiry or a key retirement.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use axum::http::StatusCode;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::keys::KeyRing;
use crate::api_error::ApiError;

/// Longest token text accepted (ours are well under 1 KiB).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The RFC 9068 media type in `typ`.
pub const TOKEN_TYPE: &str = "at+jwt";

/// The claims of a gateway token, as signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub jti: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub client_id: String,
    pub org: String,
    pub loa: u8,
    pub acr: String,
    /// RFC 9068: space-separated.
    pub scope: String,
    pub artifact_id: String,
    pub artifact_type: String,
}

/// The `acr` value of a Level of Assurance.
pub fn acr_for(loa: u8) -> String {
    format!("urn:sck:loa:{loa}")
}

/// A token that passed [`Verifier::verify`]: the facts a policy may rely on (`input.token`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifiedToken {
    pub jti: String,
    pub sub: String,
    pub org: String,
    pub loa: u8,
    pub acr: String,
    pub scope: Vec<String>,
    pub artifact_id: String,
    pub artifact_type: String,
    pub iss: String,
    pub exp: i64,
    pub iat: i64,
    /// Not part of the policy input; introspection reports them.
    #[serde(skip)]
    pub nbf: i64,
    #[serde(skip)]
    pub aud: String,
    #[serde(skip)]
    pub client_id: String,
    #[serde(skip)]
    pub kid: String,
}

impl VerifiedToken {
    /// Refuses a token of another organization (`403 org_mismatch`).
    pub fn authorize_org(&self, org: &str) -> Result<(), ApiError> {
        if self.org == org {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "org_mismatch",
                "the token belongs to another organization",
            ))
        }
    }

    /// True if the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.iter().any(|s| s == scope)
    }
}

/// A refusal: `401` with a stable code. Details name the check, never token content.
pub fn reject(code: &'static str, detail: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, detail.to_owned())
}

/// Verification settings.
#[derive(Debug, Clone)]
pub struct VerifySettings {
    pub issuer: String,
    pub audience: String,
    pub leeway_secs: u64,
    pub cache_capacity: usize,
}

type CacheKey = [u8; 32];

/// Revoked `jti`s (with each token's `exp`) and the cache of verified tokens.
#[derive(Debug, Default)]
pub struct Verifier {
    revoked: RwLock<HashMap<String, i64>>,
    cache: Mutex<HashMap<CacheKey, Arc<VerifiedToken>>>,
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn map_jwt_error(kind: &ErrorKind) -> ApiError {
    match kind {
        ErrorKind::InvalidSignature => reject("signature_mismatch", "signature does not verify"),
        ErrorKind::ExpiredSignature => reject("token_expired", "token has expired"),
        ErrorKind::ImmatureSignature => reject("token_not_yet_valid", "token is not valid yet"),
        ErrorKind::InvalidIssuer => reject("invalid_issuer", "token has the wrong issuer"),
        ErrorKind::InvalidAudience => reject("invalid_audience", "token has the wrong audience"),
        ErrorKind::InvalidAlgorithm => {
            reject("algorithm_mismatch", "algorithm not allowed for this key")
        }
        ErrorKind::MissingRequiredClaim(_) => {
            reject("invalid_token", "a required claim is missing")
        }
        _ => reject("invalid_token", "malformed token"),
    }
}

impl Verifier {
    /// Marks `jti` revoked until `exp`.
    pub fn revoke(&self, jti: &str, exp: i64) {
        if let Ok(mut set) = self.revoked.write() {
            set.insert(jti.to_owned(), exp);
        }
    }

    /// Replaces the revoked set (e.g. after loading it from the database).
    pub fn replace_revoked(&self, all: HashMap<String, i64>) {
        if let Ok(mut set) = self.revoked.write() {
            *set = all;
        }
    }

    /// True if `jti` is revoked. Fails closed if the lock is poisoned.
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.revoked
            .read()
            .map(|set| set.contains_key(jti))
            .unwrap_or(true)
    }

    /// Number of revoked ids held in memory.
    pub fn revoked_count(&self) -> usize {
        self.revoked.read().map(|s| s.len()).unwrap_or(0)
    }

    /// Drops revocations and cache entries of tokens expired before `cutoff`.
    pub fn prune(&self, cutoff: i64) {
        if let Ok(mut set) = self.revoked.write() {
            set.retain(|_, exp| *exp >= cutoff);
        }
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|_, t| t.exp >= cutoff);
        }
    }

    /// Empties the cache (benchmarks use it to measure the uncached path).
    pub fn clear_cache(&self) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.clear();
        }
    }

    /// The one verification function; see the module docs for the order of checks.
    pub async fn verify(
        &self,
        keys: &KeyRing,
        settings: &VerifySettings,
        token: &str,
    ) -> Result<VerifiedToken, ApiError> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(reject("invalid_token", "malformed token"));
        }
        let digest: CacheKey = sha2::Sha256::digest(token.as_bytes()).into();
        let now = unix_now();
        let cached = self
            .cache
            .lock()
            .ok()
            .and_then(|cache| cache.get(&digest).cloned());
        if let Some(hit) = cached {
            if now < hit.exp && keys.snapshot().verify.contains_key(&hit.kid) {
                if self.is_revoked(&hit.jti) {
                    return Err(reject("token_revoked", "token has been revoked"));
                }
                return Ok((*hit).clone());
            }
            if let Ok(mut cache) = self.cache.lock() {
                cache.remove(&digest);
            }
        }
        let verified = self.verify_uncached(keys, settings, token).await?;
        if self.is_revoked(&verified.jti) {
            return Err(reject("token_revoked", "token has been revoked"));
        }
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= settings.cache_capacity {
                cache.retain(|_, t| t.exp > now);
                if cache.len() >= settings.cache_capacity {
                    cache.clear();
                }
            }
            cache.insert(digest, Arc::new(verified.clone()));
        }
        Ok(verified)
    }

    /// Everything but the cache and revocation.
    pub async fn verify_uncached(
        &self,
        keys: &KeyRing,
        settings: &VerifySettings,
        token: &str,
    ) -> Result<VerifiedToken, ApiError> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(reject("invalid_token", "malformed token"));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| reject("invalid_token", "malformed token header"))?;
        match header.typ.as_deref() {
            Some(t)
                if t.eq_ignore_ascii_case(TOKEN_TYPE)
                    || t.eq_ignore_ascii_case("application/at+jwt") => {}
            _ => return Err(reject("invalid_token_type", "token typ must be at+jwt")),
        }
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| reject("unknown_key", "token names no key"))?;
        let mut ring = keys.snapshot();
        if !ring.verify.contains_key(kid) && keys.reload_if_stale().await {
            ring = keys.snapshot();
        }
        let key = ring
            .verify
            .get(kid)
            .ok_or_else(|| reject("unknown_key", "token names an unknown key"))?;
        if header.alg != key.alg {
            return Err(reject(
                "algorithm_mismatch",
                "token algorithm is not the one pinned to its key",
            ));
        }
        let mut validation = Validation::new(key.alg);
        validation.leeway = settings.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
            .map_err(|e| map_jwt_error(e.kind()))?;
        let claims = data.claims;
        if !(1..=4).contains(&claims.loa) || claims.acr != acr_for(claims.loa) {
            return Err(reject("invalid_token", "inconsistent level of assurance"));
        }
        if claims.jti.is_empty() || claims.org.is_empty() {
            return Err(reject("invalid_token", "a required claim is missing"));
        }
        Ok(VerifiedToken {
            jti: claims.jti,
            sub: claims.sub,
            org: claims.org,
            loa: claims.loa,
            acr: claims.acr,
            scope: claims.scope.split_whitespace().map(str::to_owned).collect(),
            artifact_id: claims.artifact_id,
            artifact_type: claims.artifact_type,
            iss: claims.iss,
            exp: claims.exp,
            iat: claims.iat,
            nbf: claims.nbf,
            aud: claims.aud,
            client_id: claims.client_id,
            kid: kid.to_owned(),
        })
    }
}

/// `Algorithm` names as they appear in the API.
pub fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        _ => "EdDSA",
    }
}
