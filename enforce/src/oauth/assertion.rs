//! `private_key_jwt` client authentication (RFC 7523 §2.2 and §3, OpenID Connect Core §9): a
//! client proves who it is with a JWT it signed with one of its registered keys
//! ([`super::client_keys`]).
//!
//! Invariants:
//! - The algorithm is pinned by the key: `alg` must be one of `EdDSA`, `ES256`, `RS256` and the
//!   one registered with the key chosen (by `kid`, or every key of that algorithm when the
//!   header names none), so `none` and HS256-with-the-public-key are refused before any
//!   signature check. Signature and claims are checked by `jsonwebtoken`.
//! - `iss` = `sub` = the client id; `aud` names the token endpoint URL or the issuer; `exp` is
//!   required, not past and at most [`MAX_LIFETIME_SECS`] ahead; `nbf` and `iat`, when present,
//!   are not in the future; all with the tokens' leeway against the `now` handed in.
//! - `jti` is required and accepted once: it is recorded with the assertion's `exp` in
//!   `oauth_assertion_jtis` (shared by replicas), and that insert is the check — a live row of
//!   the same client and `jti` means a replay. Only an assertion whose signature verified is
//!   recorded; the sweep deletes rows past their `exp`.
//! - Every failure is `invalid_client` with a description of the check that failed; it never
//!   repeats the assertion.

use std::net::IpAddr;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::Validation;
use sck_ledger::store::Store;
use serde::Deserialize;

use super::client_keys::{alg_name, VerifyingKey, SIGNING_ALGS};
use super::clients::AuthenticatedClient;
use super::OAuth;
use crate::clock::unix_now;
use crate::db::with_pool;
use crate::error::{EnforceError, EnforceResult};

/// RFC 7523 §2.2 `client_assertion_type`.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The furthest ahead an assertion's `exp` may be.
pub const MAX_LIFETIME_SECS: i64 = 300;

/// Longest `client_assertion` read.
const MAX_ASSERTION_BYTES: usize = 8 * 1024;

/// Longest `jti` recorded.
const MAX_JTI_LEN: usize = 256;

/// The replay check: a new row, or one whose `exp` has passed taken over; 0 rows: a replay.
const CLAIM_SQL: &str =
    "INSERT INTO oauth_assertion_jtis (client_id, jti, expires_at) VALUES ($1, $2, $3) \
     ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = excluded.expires_at \
     WHERE oauth_assertion_jtis.expires_at <= $4";

fn refused(detail: impl Into<String>) -> EnforceError {
    EnforceError::unauthorized(
        "invalid_client",
        format!("client assertion: {}", detail.into()),
    )
}

/// What an assertion must say of itself.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    pub client_id: &'a str,
    /// The token endpoint URL and the issuer.
    pub audiences: [&'a str; 2],
    pub leeway_secs: i64,
}

/// An assertion that verified: its `jti` and `exp`, to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub jti: String,
    pub exp: i64,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    jti: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    #[serde(default)]
    alg: Option<String>,
}

/// The `alg` of the header as written, read before anything else so that `none` or an
/// algorithm jsonwebtoken does not know is refused by name.
fn header_alg(assertion: &str) -> EnforceResult<String> {
    let malformed = || refused("not a signed JWT (JWS compact serialization)");
    let segment = assertion.split('.').next().ok_or_else(malformed)?;
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| malformed())?;
    let header: RawHeader = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
    header.alg.ok_or_else(|| refused("the header names no alg"))
}

fn claim_refusal(kind: &ErrorKind) -> EnforceError {
    match kind {
        ErrorKind::InvalidIssuer => refused("iss must be the client_id"),
        ErrorKind::InvalidSubject => refused("sub must be the client_id"),
        ErrorKind::InvalidAudience => refused("aud must name the token endpoint URL or the issuer"),
        ErrorKind::MissingRequiredClaim(claim) => refused(format!("the {claim} claim is required")),
        ErrorKind::InvalidClaimFormat(claim) => refused(format!("the {claim} claim is malformed")),
        ErrorKind::InvalidAlgorithm => refused("alg does not fit the key"),
        ErrorKind::InvalidSignature => {
            refused("the signature does not verify with the client's registered keys")
        }
        _ => refused("not a signed JWT (JWS compact serialization)"),
    }
}

/// Verifies `assertion` against the client's live `keys` as of `now`, without recording it.
pub fn check(
    assertion: &str,
    keys: &[VerifyingKey],
    expected: &Expected<'_>,
    now: i64,
) -> EnforceResult<Verified> {
    if assertion.len() > MAX_ASSERTION_BYTES {
        return Err(refused(format!("longer than {MAX_ASSERTION_BYTES} bytes")));
    }
    let alg = header_alg(assertion)?;
    if !SIGNING_ALGS.contains(&alg.as_str()) {
        return Err(refused(format!(
            "alg {alg:?} is not accepted (EdDSA, ES256, RS256)"
        )));
    }
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| refused("not a signed JWT (JWS compact serialization)"))?;
    if header.crit.is_some() {
        return Err(refused("no critical header parameter (crit) is supported"));
    }
    let candidates: Vec<&VerifyingKey> = match &header.kid {
        Some(kid) => {
            let key = keys
                .iter()
                .find(|k| &k.kid == kid)
                .ok_or_else(|| refused(format!("the client has no live key with kid {kid:?}")))?;
            if key.alg != header.alg {
                return Err(refused(format!(
                    "alg {alg} is not the one pinned to key {kid:?} ({})",
                    alg_name(key.alg)
                )));
            }
            vec![key]
        }
        None => keys.iter().filter(|k| k.alg == header.alg).collect(),
    };
    if candidates.is_empty() {
        return Err(refused(format!("the client has no live key for alg {alg}")));
    }
    let mut validation = Validation::new(header.alg);
    // Time is checked below against the `now` handed in, not the system clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.set_issuer(&[expected.client_id]);
    validation.sub = Some(expected.client_id.to_owned());
    validation.set_audience(&expected.audiences);
    let mut outcome = Err(claim_refusal(&ErrorKind::InvalidSignature));
    for key in candidates {
        outcome = jsonwebtoken::decode::<Claims>(assertion, &key.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| claim_refusal(e.kind()));
        if outcome.is_ok() {
            break;
        }
    }
    let claims = outcome?;
    let exp = claims
        .exp
        .ok_or_else(|| claim_refusal(&ErrorKind::MissingRequiredClaim("exp".into())))?;
    let leeway = expected.leeway_secs;
    if exp < now - leeway {
        return Err(refused("it has expired (exp)"));
    }
    if exp > now + MAX_LIFETIME_SECS + leeway {
        return Err(refused(format!(
            "exp is more than {MAX_LIFETIME_SECS} seconds ahead"
        )));
    }
    if claims.nbf.is_some_and(|nbf| nbf > now + leeway) {
        return Err(refused("it is not valid yet (nbf)"));
    }
    if claims.iat.is_some_and(|iat| iat > now + leeway) {
        return Err(refused("iat is in the future"));
    }
    match claims.jti {
        Some(jti) if !jti.is_empty() && jti.len() <= MAX_JTI_LEN => Ok(Verified { jti, exp }),
        _ => Err(refused(format!(
            "a jti of 1-{MAX_JTI_LEN} characters is required"
        ))),
    }
}

/// Records `jti` of `client_id` until `until`: `false` if it is recorded and live at `now` (a
/// replay). One statement, so two replicas cannot both record it.
async fn claim_jti(
    store: &Store,
    client_id: &str,
    jti: &str,
    until: i64,
    now: i64,
) -> EnforceResult<bool> {
    Ok(with_pool!(store, pool => {
        sqlx::query(CLAIM_SQL)
            .bind(client_id)
            .bind(jti)
            .bind(until)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
            == 1
    }))
}

/// Deletes the recorded `jti`s whose assertions had expired by `now`; how many.
async fn sweep_jtis(store: &Store, now: i64) -> Result<u64, sqlx::Error> {
    with_pool!(store, pool => {
        sqlx::query("DELETE FROM oauth_assertion_jtis WHERE expires_at <= $1")
            .bind(now)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
    })
}

/// A `private_key_jwt` request's client authentication parameters.
#[derive(Debug, Clone, Copy)]
pub struct AssertionRequest<'a> {
    /// The form's `client_id`, if sent (else the assertion's `sub` names the client).
    pub client_id: Option<&'a str>,
    pub assertion_type: Option<&'a str>,
    pub assertion: &'a str,
    /// The URL of the token endpoint the request came to.
    pub token_endpoint: &'a str,
    pub peer: Option<IpAddr>,
}

/// The client an assertion claims to be: the form's `client_id`, else its unverified `sub`,
/// which must equal its `iss` (both are checked against the verified claims afterwards).
fn claimed_client(request: &AssertionRequest<'_>) -> EnforceResult<String> {
    if let Some(id) = request.client_id {
        return Ok(id.to_owned());
    }
    #[derive(Deserialize)]
    struct Names {
        iss: Option<String>,
        sub: Option<String>,
    }
    let names = jsonwebtoken::dangerous::insecure_decode_claims::<Names>(request.assertion)
        .map_err(|_| refused("not a signed JWT (JWS compact serialization)"))?;
    match (names.iss, names.sub) {
        (Some(iss), Some(sub)) if iss == sub => Ok(sub),
        (_, None) => Err(refused("no client_id, and the assertion names no sub")),
        _ => Err(refused("iss and sub must both be the client_id")),
    }
}

impl OAuth {
    /// Authenticates a client by `private_key_jwt`: its live client, the assertion verified
    /// against its keys, then its `jti` recorded (a replay refused).
    pub async fn authenticate_assertion(
        &self,
        request: &AssertionRequest<'_>,
    ) -> EnforceResult<AuthenticatedClient> {
        if request.assertion_type != Some(JWT_BEARER) {
            return Err(EnforceError::unauthorized(
                "invalid_client",
                format!("client_assertion_type must be {JWT_BEARER}"),
            ));
        }
        let client_id = claimed_client(request)?;
        if client_id.is_empty() || client_id.len() > 128 {
            return Err(refused("client_id must be 1-128 characters"));
        }
        let client = self
            .live_client(&client_id, request.peer)
            .await
            .map_err(|e| match e.code {
                "invalid_client" => refused(
                    "the client (sub) is unknown, revoked, expired, or not allowed from this address",
                ),
                _ => e,
            })?;
        let keys = self.verifying_keys(&client_id).await?;
        if keys.is_empty() {
            return Err(refused("the client has no registered keys"));
        }
        let settings = &self.tokens.settings().verify;
        let now = unix_now();
        let leeway = settings.leeway_secs as i64;
        let verified = check(
            request.assertion,
            &keys,
            &Expected {
                client_id: &client_id,
                audiences: [request.token_endpoint, &settings.issuer],
                leeway_secs: leeway,
            },
            now,
        )?;
        let until = verified.exp.saturating_add(leeway);
        if !claim_jti(&self.store, &client_id, &verified.jti, until, now).await? {
            return Err(refused("its jti was already used (replay)"));
        }
        Ok(client)
    }

    /// Starts the sweep that deletes recorded assertion `jti`s past their `exp`, every minute.
    pub fn spawn_background(&self) {
        let store = self.store.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                if let Err(e) = sweep_jtis(&store, unix_now()).await {
                    tracing::warn!(error = %e, "sweeping expired client assertion jtis");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
    use serde_json::{json, Value};

    const NOW: i64 = 1_800_000_000;
    const ENDPOINT: &str = "https://sck.example/oauth2/token";

    fn signing_key() -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[9u8; 32])
    }

    fn keys() -> Vec<VerifyingKey> {
        vec![VerifyingKey {
            kid: "k1".into(),
            alg: Algorithm::EdDSA,
            decoding: DecodingKey::from_ed_components(
                &URL_SAFE_NO_PAD.encode(signing_key().verifying_key().as_bytes()),
            )
            .unwrap(),
        }]
    }

    fn expected() -> Expected<'static> {
        Expected {
            client_id: "iss_1",
            audiences: [ENDPOINT, "https://sck.example"],
            leeway_secs: 5,
        }
    }

    fn claims() -> Value {
        json!({"iss": "iss_1", "sub": "iss_1", "aud": ENDPOINT, "exp": NOW + 60,
               "iat": NOW, "jti": "j1"})
    }

    fn signed(kid: Option<&str>, claims: &Value) -> String {
        let der = signing_key().to_pkcs8_der().unwrap();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(der.as_bytes())).unwrap()
    }

    fn refusal(assertion: &str) -> String {
        let e = check(assertion, &keys(), &expected(), NOW).unwrap_err();
        assert_eq!(e.code, "invalid_client");
        assert!(!e.detail.contains(assertion));
        e.detail
    }

    fn with(claim: &str, value: Value) -> Value {
        let mut c = claims();
        c[claim] = value;
        c
    }

    #[test]
    fn a_valid_assertion_verifies_with_or_without_a_kid() {
        let ok = Verified {
            jti: "j1".into(),
            exp: NOW + 60,
        };
        assert_eq!(
            check(&signed(Some("k1"), &claims()), &keys(), &expected(), NOW).unwrap(),
            ok
        );
        assert_eq!(
            check(&signed(None, &claims()), &keys(), &expected(), NOW).unwrap(),
            ok
        );
        let to_issuer = with("aud", json!(["https://sck.example"]));
        assert!(check(&signed(None, &to_issuer), &keys(), &expected(), NOW).is_ok());
    }

    #[test]
    fn every_failed_check_is_named() {
        assert!(refusal(&signed(None, &with("exp", json!(NOW - 10)))).contains("expired"));
        assert!(refusal(&signed(None, &with("exp", json!(NOW + 3600)))).contains("ahead"));
        assert!(refusal(&signed(None, &with("nbf", json!(NOW + 60)))).contains("nbf"));
        assert!(refusal(&signed(None, &with("iat", json!(NOW + 60)))).contains("iat"));
        assert!(refusal(&signed(None, &with("aud", json!("https://other")))).contains("aud"));
        assert!(refusal(&signed(None, &with("iss", json!("iss_2")))).contains("iss"));
        assert!(refusal(&signed(None, &with("sub", json!("iss_2")))).contains("sub"));
        let mut no_jti = claims();
        no_jti.as_object_mut().unwrap().remove("jti");
        assert!(refusal(&signed(None, &no_jti)).contains("jti"));
        let mut no_exp = claims();
        no_exp.as_object_mut().unwrap().remove("exp");
        assert!(refusal(&signed(None, &no_exp)).contains("exp"));
        assert!(refusal(&signed(Some("k2"), &claims())).contains("k2"));
        assert!(refusal("not a jwt").contains("JWS"));
    }

    #[test]
    fn a_jti_is_recorded_once_until_its_expiry_and_then_swept() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let url = dir.path().join("t.db").display().to_string();
            let store = Store::open(&url, &[crate::oauth::schema::MIGRATIONS])
                .await
                .unwrap();
            assert!(claim_jti(&store, "iss_1", "j", NOW + 60, NOW)
                .await
                .unwrap());
            assert!(!claim_jti(&store, "iss_1", "j", NOW + 60, NOW + 59)
                .await
                .unwrap());
            assert!(claim_jti(&store, "iss_2", "j", NOW + 60, NOW)
                .await
                .unwrap());
            // Once its assertion has expired, the row no longer refuses (and is swept).
            assert!(claim_jti(&store, "iss_1", "j", NOW + 200, NOW + 60)
                .await
                .unwrap());
            assert_eq!(sweep_jtis(&store, NOW + 100).await.unwrap(), 1);
            assert!(!claim_jti(&store, "iss_1", "j", NOW + 200, NOW + 100)
                .await
                .unwrap());
            assert_eq!(sweep_jtis(&store, NOW + 200).await.unwrap(), 1);
            assert!(claim_jti(&store, "iss_1", "j", NOW + 300, NOW + 200)
                .await
                .unwrap());
        });
    }

    #[test]
    fn another_key_none_and_the_public_key_as_an_hmac_secret_are_refused() {
        let other = ed25519_dalek::SigningKey::from_bytes(&[8u8; 32]);
        let forged = jsonwebtoken::encode(
            &Header::new(Algorithm::EdDSA),
            &claims(),
            &EncodingKey::from_ed_der(other.to_pkcs8_der().unwrap().as_bytes()),
        )
        .unwrap();
        assert!(refusal(&forged).contains("signature"));

        let body = URL_SAFE_NO_PAD.encode(claims().to_string());
        let none = format!("{}.{body}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#));
        assert!(refusal(&none).contains("\"none\""));

        let public = signing_key().verifying_key().to_bytes();
        let hs256 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(),
            &EncodingKey::from_secret(&public),
        )
        .unwrap();
        assert!(refusal(&hs256).contains("HS256"));
    }
}
