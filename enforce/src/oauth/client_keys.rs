//! The public keys a service account signs `private_key_jwt` assertions with (RFC 7523 §2.2):
//! parsing a key an admin registers (a public JWK, or a PEM public key), and adding, removing
//! and loading a client's keys.
//!
//! Invariants:
//! - Only public keys of three kinds are registered, each with the one algorithm it may verify:
//!   Ed25519 → `EdDSA`, P-256 → `ES256`, RSA of at least 2048 bits → `RS256`. A JWK carrying
//!   private or symmetric members, another curve, or an `alg`/`use` that disagrees is refused.
//! - A key is stored as the normalised public JWK (only its public members, `kid`, `alg`) and
//!   named by its `kid` (the JWK's own, else its RFC 7638 SHA-256 thumbprint), unique per client;
//!   the ledger sees kids and thumbprints only.
//! - At most [`MAX_LIVE_KEYS`] live keys per client, checked in the transaction that adds one,
//!   which first updates the client row and so serialises with every other change of it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse,
    ThumbprintHash,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::Row;

use super::clients::{lock_live_client, no_live_client};
use super::OAuth;
use crate::clock::unix_now;
use crate::db::with_pool;
use crate::error::{EnforceError, EnforceResult};
use sck_ledger::entry::EventType;

/// Most live keys a client may have (room for a rotation of two).
pub const MAX_LIVE_KEYS: usize = 4;

/// Smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// JWK members that only a private or symmetric key has.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A key as an admin registers it: exactly one of a public JWK or a PEM public key.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientKeySpec {
    /// A public JWK (RFC 7517): `OKP`/`Ed25519`, `EC`/`P-256` or `RSA` (≥ 2048 bits).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub jwk: Option<Value>,
    /// A PEM public key (`-----BEGIN PUBLIC KEY-----`, or `RSA PUBLIC KEY`).
    #[serde(default)]
    pub pem: Option<String>,
}

/// A key ready to be stored: its name, pinned algorithm, thumbprint and normalised JWK.
#[derive(Debug, Clone)]
pub struct ClientKey {
    pub kid: String,
    pub alg: Algorithm,
    pub thumbprint: String,
    pub jwk: Jwk,
}

/// One key of a service account as the API lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientKeyView {
    pub kid: String,
    pub alg: String,
    /// RFC 7638 SHA-256 thumbprint (base64url).
    pub thumbprint: String,
    pub created_at: i64,
}

fn bad_key(detail: impl Into<String>) -> EnforceError {
    EnforceError::invalid("invalid_key", detail)
}

/// The name of an algorithm sck pins client keys to.
pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::EdDSA => "EdDSA",
        Algorithm::ES256 => "ES256",
        _ => "RS256",
    }
}

/// The algorithms client assertions may be signed with (RFC 8414
/// `token_endpoint_auth_signing_alg_values_supported`).
pub const SIGNING_ALGS: &[&str] = &["EdDSA", "ES256", "RS256"];

fn parse_alg(name: &str) -> Option<Algorithm> {
    match name {
        "EdDSA" => Some(Algorithm::EdDSA),
        "ES256" => Some(Algorithm::ES256),
        "RS256" => Some(Algorithm::RS256),
        _ => None,
    }
}

fn decoded(field: &str, text: &str) -> EnforceResult<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| bad_key(format!("jwk member {field} is not base64url")))
}

/// The algorithm a public key's parameters may verify, after checking the key material.
fn pinned_alg(params: &AlgorithmParameters) -> EnforceResult<Algorithm> {
    match params {
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            let x: [u8; 32] = decoded("x", &okp.x)?
                .try_into()
                .map_err(|_| bad_key("an Ed25519 key is 32 bytes"))?;
            ed25519_dalek::VerifyingKey::from_bytes(&x)
                .map_err(|_| bad_key("not an Ed25519 public key"))?;
            Ok(Algorithm::EdDSA)
        }
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            let mut point = vec![0x04];
            point.extend(decoded("x", &ec.x)?);
            point.extend(decoded("y", &ec.y)?);
            p256::PublicKey::from_sec1_bytes(&point)
                .map_err(|_| bad_key("not a point of P-256"))?;
            Ok(Algorithm::ES256)
        }
        AlgorithmParameters::RSA(rsa) => {
            let n = decoded("n", &rsa.n)?;
            let e = decoded("e", &rsa.e)?;
            let n = n.strip_prefix(&[0u8][..]).unwrap_or(&n);
            if n.len() < MIN_RSA_MODULUS_BYTES {
                return Err(bad_key("RSA keys must have at least 2048 bits"));
            }
            if e.is_empty() || e.len() > 8 || e.last().is_some_and(|b| b % 2 == 0) {
                return Err(bad_key("not an RSA public exponent"));
            }
            Ok(Algorithm::RS256)
        }
        _ => Err(bad_key(
            "supported keys: Ed25519 (EdDSA), P-256 (ES256), RSA of 2048 bits or more (RS256)",
        )),
    }
}

/// The key a JWK describes, refusing private members and disagreeing `alg`/`use`.
fn from_jwk(value: &Value) -> EnforceResult<ClientKey> {
    let members = value
        .as_object()
        .ok_or_else(|| bad_key("jwk must be a JSON object"))?;
    if let Some(private) = PRIVATE_MEMBERS.iter().find(|m| members.contains_key(**m)) {
        return Err(bad_key(format!(
            "jwk has the private or symmetric member {private:?}: register the public key only"
        )));
    }
    let jwk: Jwk =
        serde_json::from_value(value.clone()).map_err(|e| bad_key(format!("not a JWK: {e}")))?;
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return Err(bad_key("jwk use must be sig"));
    }
    let alg = pinned_alg(&jwk.algorithm)?;
    if let Some(stated) = jwk.common.key_algorithm {
        if stated.to_string() != alg_name(alg) {
            return Err(bad_key(format!(
                "jwk alg {stated} does not fit the key (it verifies {})",
                alg_name(alg)
            )));
        }
    }
    normalised(jwk.algorithm, jwk.common.key_id, alg)
}

/// The key a PEM public key holds.
fn from_pem(pem: &str) -> EnforceResult<ClientKey> {
    let bytes = pem.trim().as_bytes();
    let (key, alg) = DecodingKey::from_ed_pem(bytes)
        .map(|k| (k, Algorithm::EdDSA))
        .or_else(|_| DecodingKey::from_ec_pem(bytes).map(|k| (k, Algorithm::ES256)))
        .or_else(|_| DecodingKey::from_rsa_pem(bytes).map(|k| (k, Algorithm::RS256)))
        .map_err(|_| bad_key("pem is not an Ed25519, EC or RSA public key"))?;
    let jwk = Jwk::from_decoding_key(&key, Some(alg))
        .map_err(|_| bad_key("pem is not an Ed25519, P-256 or RSA public key"))?;
    if pinned_alg(&jwk.algorithm)? != alg {
        return Err(bad_key("pem key does not fit its algorithm"));
    }
    normalised(jwk.algorithm, None, alg)
}

fn normalised(
    params: AlgorithmParameters,
    kid: Option<String>,
    alg: Algorithm,
) -> EnforceResult<ClientKey> {
    let mut jwk = Jwk {
        common: CommonParameters::default(),
        algorithm: params,
    };
    let thumbprint = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|_| bad_key("no RFC 7638 thumbprint for this key"))?;
    let kid = kid.unwrap_or_else(|| thumbprint.clone());
    if kid.is_empty() || kid.len() > 128 || !kid.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad_key("kid must be 1-128 visible ASCII characters"));
    }
    jwk.common.key_id = Some(kid.clone());
    jwk.common.key_algorithm = Some(match alg {
        Algorithm::EdDSA => KeyAlgorithm::EdDSA,
        Algorithm::ES256 => KeyAlgorithm::ES256,
        _ => KeyAlgorithm::RS256,
    });
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Ok(ClientKey {
        kid,
        alg,
        thumbprint,
        jwk,
    })
}

/// Parses a registered key: exactly one of `jwk` or `pem`.
pub fn parse_key(spec: &ClientKeySpec) -> EnforceResult<ClientKey> {
    match (&spec.jwk, &spec.pem) {
        (Some(jwk), None) => from_jwk(jwk),
        (None, Some(pem)) if pem.len() <= 16 * 1024 => from_pem(pem),
        (None, Some(_)) => Err(bad_key("pem is at most 16 KiB")),
        _ => Err(bad_key("a key is exactly one of jwk or pem")),
    }
}

/// A stored key of a client, as assertion verification uses it.
#[derive(Clone)]
pub struct VerifyingKey {
    pub kid: String,
    pub alg: Algorithm,
    pub decoding: DecodingKey,
}

pub(crate) fn microseconds() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64
}

/// Inserts a key row inside a transaction of either backend (in `with_pool!` bodies).
macro_rules! insert_key {
    ($tx:expr, $client_id:expr, $key:expr, $now:expr) => {{
        let jwk = serde_json::to_string(&$key.jwk)
            .map_err(|e| EnforceError::internal("client key", e))?;
        sqlx::query(
            "INSERT INTO oauth_client_keys (client_id, kid, alg, thumbprint, jwk, created_at, created_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind($client_id)
        .bind(&$key.kid)
        .bind($crate::oauth::client_keys::alg_name($key.alg))
        .bind(&$key.thumbprint)
        .bind(jwk)
        .bind($now)
        .bind($crate::oauth::client_keys::microseconds())
        .execute(&mut *$tx)
        .await
    }};
}
pub(crate) use insert_key;

/// What a key's insert failing on the primary key means to the admin.
pub(crate) fn key_exists(kid: &str) -> EnforceError {
    EnforceError::conflict(
        "key_exists",
        format!("this client already has a key with kid {kid:?}"),
    )
}

/// The ledger body of a key: its kid, algorithm and thumbprint, never the key.
pub(crate) fn key_event(key: &ClientKey) -> Value {
    json!({"kid": key.kid, "alg": alg_name(key.alg), "thumbprint": key.thumbprint})
}

/// Refuses two keys of one request with the same kid.
pub(crate) fn check_distinct(keys: &[ClientKey]) -> EnforceResult<()> {
    if keys.len() > MAX_LIVE_KEYS {
        return Err(bad_key(format!(
            "a client has at most {MAX_LIVE_KEYS} keys"
        )));
    }
    for (i, key) in keys.iter().enumerate() {
        if keys[..i].iter().any(|k| k.kid == key.kid) {
            return Err(key_exists(&key.kid));
        }
    }
    Ok(())
}

impl OAuth {
    /// Adds `key` to a live client of `org` (at most [`MAX_LIVE_KEYS`] live).
    pub async fn add_key(
        &self,
        org: &str,
        client_id: &str,
        spec: &ClientKeySpec,
        actor: &str,
    ) -> EnforceResult<ClientKeyView> {
        let key = parse_key(spec)?;
        let now = unix_now();
        let outcome: EnforceResult<()> = with_pool!(&self.store, pool => {
            let mut tx = pool.begin().await?;
            if !lock_live_client!(tx, client_id, org, now) {
                Err(no_live_client())
            } else {
                let live: i64 = sqlx::query(
                    "SELECT COUNT(*) FROM oauth_client_keys WHERE client_id = $1 AND removed_at IS NULL",
                )
                .bind(client_id)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
                if live as usize >= MAX_LIVE_KEYS {
                    Err(EnforceError::conflict(
                        "too_many_keys",
                        format!("a client has at most {MAX_LIVE_KEYS} live keys: remove one first"),
                    ))
                } else {
                    match insert_key!(tx, client_id, key, now) {
                        Ok(_) => {
                            tx.commit().await?;
                            Ok(())
                        }
                        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(key_exists(&key.kid)),
                        Err(e) => Err(e.into()),
                    }
                }
            }
        });
        outcome?;
        let mut body = key_event(&key);
        body["client_id"] = json!(client_id);
        body["actor"] = json!(actor);
        self.record(org, EventType::ClientKeyAdded, body).await?;
        Ok(ClientKeyView {
            kid: key.kid,
            alg: alg_name(key.alg).to_owned(),
            thumbprint: key.thumbprint,
            created_at: now,
        })
    }

    /// Removes the live key `kid` of a client of `org`; assertions it signed fail from now on.
    pub async fn remove_key(
        &self,
        org: &str,
        client_id: &str,
        kid: &str,
        actor: &str,
    ) -> EnforceResult<()> {
        let now = unix_now();
        let thumbprint: Option<String> = with_pool!(&self.store, pool => {
            sqlx::query(
                "UPDATE oauth_client_keys SET removed_at = $1 WHERE client_id = $2 AND kid = $3 AND removed_at IS NULL \
                 AND client_id IN (SELECT client_id FROM oauth_clients WHERE org_id = $4) RETURNING thumbprint",
            )
            .bind(now)
            .bind(client_id)
            .bind(kid)
            .bind(org)
            .fetch_optional(pool)
            .await?
            .map(|r| r.get::<String, _>(0))
        });
        let thumbprint = thumbprint.ok_or_else(|| {
            EnforceError::not_found("no live key with this kid of this client in this organization")
        })?;
        self.record(
            org,
            EventType::ClientKeyRemoved,
            json!({"client_id": client_id, "kid": kid, "thumbprint": thumbprint, "actor": actor}),
        )
        .await
    }

    /// The live keys of `client_id`, for verifying its assertions.
    pub(crate) async fn verifying_keys(&self, client_id: &str) -> EnforceResult<Vec<VerifyingKey>> {
        let rows: Vec<(String, String, String)> = with_pool!(&self.store, pool => {
            sqlx::query(
                "SELECT kid, alg, jwk FROM oauth_client_keys WHERE client_id = $1 AND removed_at IS NULL ORDER BY created_us",
            )
            .bind(client_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1), r.get::<String, _>(2)))
            .collect()
        });
        rows.into_iter()
            .map(|(kid, alg, jwk)| {
                let jwk: Jwk = serde_json::from_str(&jwk)
                    .map_err(|e| EnforceError::internal("stored client key", e))?;
                let decoding = DecodingKey::from_jwk(&jwk)
                    .map_err(|e| EnforceError::internal("stored client key", e))?;
                let alg = parse_alg(&alg).ok_or_else(|| {
                    EnforceError::internal("stored client key", format!("algorithm {alg}"))
                })?;
                Ok(VerifyingKey { kid, alg, decoding })
            })
            .collect()
    }

    /// The live keys of the clients of `org` (every org when `None`), by client.
    pub(crate) async fn key_views(
        &self,
        org: Option<&str>,
        client_id: Option<&str>,
    ) -> EnforceResult<Vec<(String, ClientKeyView)>> {
        Ok(with_pool!(&self.store, pool => {
            let rows = sqlx::query(
                "SELECT k.client_id, k.kid, k.alg, k.thumbprint, k.created_at FROM oauth_client_keys k \
                 JOIN oauth_clients c ON c.client_id = k.client_id \
                 WHERE k.removed_at IS NULL AND (CAST($1 AS TEXT) IS NULL OR c.org_id = $1) \
                 AND (CAST($2 AS TEXT) IS NULL OR c.client_id = $2) ORDER BY k.created_us, k.kid",
            )
            .bind(org)
            .bind(client_id)
            .fetch_all(pool)
            .await?;
            let mut views = Vec::with_capacity(rows.len());
            for row in rows {
                views.push((
                    row.try_get::<String, _>("client_id")?,
                    ClientKeyView {
                        kid: row.try_get("kid")?,
                        alg: row.try_get("alg")?,
                        thumbprint: row.try_get("thumbprint")?,
                        created_at: row.try_get("created_at")?,
                    },
                ));
            }
            views
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::EncodePublicKey;

    fn ed25519_jwk() -> Value {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        json!({"kty": "OKP", "crv": "Ed25519",
               "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes())})
    }

    #[test]
    fn a_jwk_is_named_by_its_thumbprint_and_pinned_to_its_algorithm() {
        let key = parse_key(&ClientKeySpec {
            jwk: Some(ed25519_jwk()),
            pem: None,
        })
        .unwrap();
        assert_eq!(key.alg, Algorithm::EdDSA);
        assert_eq!(key.kid, key.thumbprint);
        let mut named = ed25519_jwk();
        named["kid"] = json!("k1");
        named["alg"] = json!("EdDSA");
        assert_eq!(
            parse_key(&ClientKeySpec {
                jwk: Some(named),
                pem: None
            })
            .unwrap()
            .kid,
            "k1"
        );
    }

    #[test]
    fn a_pem_key_gives_the_same_key_as_its_jwk() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let pem = key
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        let from_pem = parse_key(&ClientKeySpec {
            jwk: None,
            pem: Some(pem),
        })
        .unwrap();
        let from_jwk = parse_key(&ClientKeySpec {
            jwk: Some(ed25519_jwk()),
            pem: None,
        })
        .unwrap();
        assert_eq!(from_pem.thumbprint, from_jwk.thumbprint);
    }

    #[test]
    fn private_symmetric_wrong_and_weak_keys_are_refused() {
        let refused = |jwk: Value| {
            parse_key(&ClientKeySpec {
                jwk: Some(jwk),
                pem: None,
            })
            .unwrap_err()
            .code
        };
        let mut private = ed25519_jwk();
        private["d"] = json!(URL_SAFE_NO_PAD.encode([7u8; 32]));
        assert_eq!(refused(private), "invalid_key");
        assert_eq!(
            refused(json!({"kty": "oct", "k": "c2VjcmV0"})),
            "invalid_key"
        );
        let mut wrong_alg = ed25519_jwk();
        wrong_alg["alg"] = json!("RS256");
        assert_eq!(refused(wrong_alg), "invalid_key");
        let mut encryption = ed25519_jwk();
        encryption["use"] = json!("enc");
        assert_eq!(refused(encryption), "invalid_key");
        let weak = json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xc5u8; 128]), "e": "AQAB"});
        assert_eq!(refused(weak), "invalid_key");
        let off_curve = json!({"kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode([1u8; 32]), "y": URL_SAFE_NO_PAD.encode([2u8; 32])});
        assert_eq!(refused(off_curve), "invalid_key");
        assert_eq!(
            parse_key(&ClientKeySpec::default()).unwrap_err().code,
            "invalid_key"
        );
        assert_eq!(
            parse_key(&ClientKeySpec {
                jwk: None,
                pem: Some("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----".into())
            })
            .unwrap_err()
            .code,
            "invalid_key"
        );
    }
}
