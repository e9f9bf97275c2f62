//! The one verification of gateway tokens, and its cache.
//!
//! [`Verifier::verify`] is the only place a gateway token is accepted: the pure checks of
//! `sck_wire::token::check` (size, header, `crit`, `typ`, pinned key and algorithm, signature,
//! `iss`/`aud`, `exp`/`nbf` with the leeway, claims, `iat`) against the current key ring
//! (reloaded once if the `kid` is unknown, at most once a second); then that sck could have
//! issued it ([`check_issuable`], against the in-memory [`Directory`]: a key file that leaked
//! still cannot mint other tokens; a delegated token's `act` chain within the maximum depth);
//! finally neither its `jti` nor that of any token it was delegated from (`delegated_from`)
//! may be revoked — so revoking a token refuses every token delegated from it, on every
//! replica the revocation reaches, with no write per descendant.
//!
//! A verified token is cached under the SHA-256 of its text until its `exp` (never longer).
//! A cache hit still re-checks expiry, that its key still verifies, the directory (an org's
//! lowered maximum TTL applies at once) and revocation, so the cache never outlives a
//! revocation, an expiry, a key retirement or a settings change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use sck_wire::principal::VerifiedToken;
use sck_wire::token::{self as wire_token, algorithm_name, CheckSettings, MAX_TOKEN_BYTES};
use sha2::Digest;

use super::directory::{Directory, Snapshot};
use super::keys::KeyRing;
use crate::clock::unix_now;
use crate::error::EnforceError;

/// A refusal: `401` with a stable code. Details name the check, never token content.
pub fn reject(code: &'static str, detail: &str) -> EnforceError {
    EnforceError::unauthorized(code, detail.to_owned())
}

/// Verification settings.
#[derive(Debug, Clone)]
pub struct VerifySettings {
    pub issuer: String,
    pub audience: String,
    pub leeway_secs: u64,
    pub cache_capacity: usize,
    /// The most actors a delegated token's `act` chain may hold.
    pub max_delegation_depth: usize,
}

type CacheKey = [u8; 32];

/// Revoked `jti`s (with each token's `exp`) and the cache of verified tokens.
#[derive(Debug, Default)]
pub struct Verifier {
    revoked: RwLock<HashMap<String, i64>>,
    cache: Mutex<HashMap<CacheKey, Arc<VerifiedToken>>>,
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

    /// True if `token` or any token it was delegated from is revoked.
    fn is_revoked_token(&self, token: &VerifiedToken) -> bool {
        self.is_revoked(&token.jti) || token.delegated_from.iter().any(|j| self.is_revoked(j))
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
        directory: &Directory,
        settings: &VerifySettings,
        token: &str,
    ) -> Result<VerifiedToken, EnforceError> {
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
                check_directory(directory, &hit).await?;
                if self.is_revoked_token(&hit) {
                    return Err(reject("token_revoked", "token has been revoked"));
                }
                return Ok((*hit).clone());
            }
            if let Ok(mut cache) = self.cache.lock() {
                cache.remove(&digest);
            }
        }
        let verified = self
            .verify_uncached(keys, directory, settings, token)
            .await?;
        if self.is_revoked_token(&verified) {
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
        directory: &Directory,
        settings: &VerifySettings,
        token: &str,
    ) -> Result<VerifiedToken, EnforceError> {
        let check = CheckSettings {
            issuer: &settings.issuer,
            audience: &settings.audience,
            leeway_secs: settings.leeway_secs,
        };
        let now = unix_now();
        let verified = match wire_token::check(token, &keys.snapshot().verify, &check, now) {
            Err(refusal) if refusal.code == "unknown_key" && keys.reload_if_stale().await => {
                wire_token::check(token, &keys.snapshot().verify, &check, now)
            }
            result => result,
        }?;
        check_directory(directory, &verified).await?;
        if verified.delegated_from.len() > settings.max_delegation_depth {
            return Err(reject(
                "delegation_too_deep",
                "token's delegation chain is deeper than the maximum",
            ));
        }
        Ok(verified)
    }
}

/// [`check_issuable`] against the directory's snapshot; a refusal reloads it (at most once a
/// second) and checks again, so an issuer or setting just created on another replica counts.
async fn check_directory(directory: &Directory, token: &VerifiedToken) -> Result<(), EnforceError> {
    match check_issuable(&directory.snapshot(), token) {
        Err(_) if directory.reload_if_stale().await => check_issuable(&directory.snapshot(), token),
        result => result,
    }
}

/// Refuses a token that verified under one of sck's keys but that sck could not have issued
/// (defence in depth against a leaked key file): its `client_id` must be an issuer of its org,
/// signing with that issuer's algorithm, within its LoA ceiling and scopes, and it may not
/// live (`exp - iat`) longer than its org's maximum TTL. What issuing checks, checked again.
fn check_issuable(directory: &Snapshot, token: &VerifiedToken) -> Result<(), EnforceError> {
    let issuer = directory
        .issuer(&token.client_id)
        .filter(|issuer| issuer.organization_id == token.org)
        .ok_or_else(|| {
            reject(
                "unknown_client",
                "token client_id is not an issuer of its organization",
            )
        })?;
    if issuer.algorithm != algorithm_name(token.alg) {
        return Err(reject(
            "algorithm_mismatch",
            "token is not signed with its issuer's algorithm",
        ));
    }
    if token.loa > issuer.loa_ceiling {
        return Err(reject(
            "loa_above_ceiling",
            "token level of assurance is above its issuer's ceiling",
        ));
    }
    if !token
        .scope
        .iter()
        .all(|scope| issuer.scopes.contains(scope))
    {
        return Err(reject(
            "scope_not_allowed",
            "token grants a scope its issuer may not grant",
        ));
    }
    let lifetime = token.exp - token.iat;
    if lifetime < 1 || lifetime > directory.settings(&token.org).max_ttl_seconds {
        return Err(reject(
            "ttl_above_maximum",
            "token lives longer than its organization's maximum TTL",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use crate::error::Kind;
    use sck_wire::token::{acr_for, Claims, TOKEN_TYPE};

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use jsonwebtoken::Header;
    use proptest::prelude::*;
    use sck_ledger::store::Store;

    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        runtime: tokio::runtime::Runtime,
        keys: KeyRing,
        directory: Directory,
        /// The ids of an EdDSA and an HS256 issuer of `default` (LoA ceiling 4).
        issuers: (String, String),
        settings: VerifySettings,
    }

    const MAX_TTL: i64 = 3600;

    fn fixture() -> &'static Fixture {
        static FIXTURE: OnceLock<Fixture> = OnceLock::new();
        FIXTURE.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let (keys, directory, issuers) = runtime.block_on(async {
                let url = dir.path().join("t.db").display().to_string();
                let store = Store::open(&url, &[crate::tokens::schema::MIGRATIONS])
                    .await
                    .unwrap();
                let scopes = ["mcp:invoke".to_owned(), "tools:read".to_owned()];
                let mut ids = Vec::new();
                for alg in ["EdDSA", "HS256"] {
                    let issuer =
                        crate::tokens::issuers::create(&store, "default", alg, 4, &scopes, alg)
                            .await
                            .unwrap();
                    ids.push(issuer.id);
                }
                let defaults = crate::tokens::OrgTokenSettings {
                    default_ttl_seconds: 900,
                    max_ttl_seconds: MAX_TTL,
                };
                let directory = Directory::open(store.clone(), defaults).await.unwrap();
                let keys = KeyRing::open(
                    store,
                    dir.path().join("keys"),
                    Some(b"0123456789abcdef0123456789abcdef".to_vec()),
                )
                .await
                .unwrap()
                .0;
                (keys, directory, (ids[0].clone(), ids[1].clone()))
            });
            Fixture {
                _dir: dir,
                runtime,
                keys,
                directory,
                issuers,
                settings: VerifySettings {
                    issuer: "https://sck.test".into(),
                    audience: "urn:sck:enforcement".into(),
                    leeway_secs: 5,
                    cache_capacity: 100,
                    max_delegation_depth: 2,
                },
            }
        })
    }

    fn claims(jti: &str, exp_in: i64) -> Claims {
        let now = unix_now();
        Claims {
            iss: "https://sck.test".into(),
            sub: "agent".into(),
            aud: "urn:sck:enforcement".into(),
            jti: jti.into(),
            iat: now,
            nbf: now,
            exp: now + exp_in,
            client_id: ISSUER.into(),
            org: "default".into(),
            loa: 3,
            acr: acr_for(3),
            scope: "mcp:invoke tools:read".into(),
            artifact_id: "a".into(),
            artifact_type: "t".into(),
            act: None,
            delegated_from: Vec::new(),
        }
    }

    /// `claims` delegated from each of `ancestors` (root first), one actor per ancestor.
    fn delegated(jti: &str, ancestors: &[&str]) -> Claims {
        let mut act = None;
        for (i, _) in ancestors.iter().enumerate() {
            act = Some(sck_wire::principal::Actor {
                sub: format!("agent-{i}"),
                act: act.map(Box::new),
            });
        }
        Claims {
            act,
            delegated_from: ancestors.iter().map(|a| a.to_string()).collect(),
            ..claims(jti, 600)
        }
    }

    #[test]
    fn revoking_any_ancestor_refuses_a_delegated_token_even_when_cached() {
        let f = fixture();
        let verifier = Verifier::default();
        let child = sign(f, false, &delegated("child", &["root", "parent"]));
        let verified = verify(f, &verifier, &child).unwrap();
        assert_eq!(verified.act.as_ref().map(|a| a.depth()), Some(2));
        let json = serde_json::to_value(&verified).unwrap();
        assert_eq!(json["act"]["sub"], "agent-1");
        assert_eq!(json["act"]["act"]["sub"], "agent-0");
        assert!(json.get("delegated_from").is_none());
        verifier.revoke("root", verified.exp);
        assert_eq!(
            verify(f, &verifier, &child).unwrap_err().code,
            "token_revoked"
        );
        let fresh = Verifier::default();
        fresh.revoke("parent", verified.exp);
        assert_eq!(verify(f, &fresh, &child).unwrap_err().code, "token_revoked");
        let too_deep = sign(f, false, &delegated("deep", &["a", "b", "c"]));
        assert_eq!(
            verify(f, &Verifier::default(), &too_deep).unwrap_err().code,
            "delegation_too_deep"
        );
    }

    /// Signs `claims` with the EdDSA or the HS256 key, as the issuer of that algorithm (unless
    /// `claims` names another client).
    fn sign(f: &Fixture, hs256: bool, claims: &Claims) -> String {
        let ring = f.keys.snapshot();
        let (key, issuer) = if hs256 {
            (ring.hs256.clone().unwrap(), &f.issuers.1)
        } else {
            (ring.ed25519.clone().unwrap(), &f.issuers.0)
        };
        let mut claims = claims.clone();
        if claims.client_id == ISSUER {
            claims.client_id = issuer.clone();
        }
        let mut header = Header::new(key.alg);
        header.typ = Some(TOKEN_TYPE.into());
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap()
    }

    /// The `client_id` [`sign`] replaces by the issuer of the signing algorithm.
    const ISSUER: &str = "the-signing-issuer";

    fn verify(
        f: &Fixture,
        verifier: &Verifier,
        token: &str,
    ) -> Result<VerifiedToken, EnforceError> {
        f.runtime
            .block_on(verifier.verify(&f.keys, &f.directory, &f.settings, token))
    }

    #[test]
    fn valid_tokens_verify_and_the_cache_never_outlives_a_revocation() {
        let f = fixture();
        let verifier = Verifier::default();
        for hs256 in [false, true] {
            let jti = format!("jti-{hs256}");
            let token = sign(f, hs256, &claims(&jti, 600));
            let first = verify(f, &verifier, &token).unwrap();
            assert_eq!(first.loa, 3);
            assert_eq!(first.scope, vec!["mcp:invoke", "tools:read"]);
            // Cached: the same answer.
            assert_eq!(verify(f, &verifier, &token).unwrap(), first);
            verifier.revoke(&jti, first.exp);
            assert_eq!(
                verify(f, &verifier, &token).unwrap_err().code,
                "token_revoked"
            );
        }
        // The serialized policy view is exactly the documented `input.token` shape.
        let token = sign(f, false, &claims("shape", 600));
        let value = serde_json::to_value(verify(f, &verifier, &token).unwrap()).unwrap();
        let mut keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "acr",
                "artifact_id",
                "artifact_type",
                "exp",
                "iat",
                "iss",
                "jti",
                "loa",
                "org",
                "scope",
                "sub"
            ]
        );
    }

    #[test]
    fn expired_tokens_are_refused_even_after_being_cached() {
        let f = fixture();
        let verifier = Verifier::default();
        // Expired beyond the leeway: refused outright.
        let old = sign(f, false, &claims("old", -60));
        assert_eq!(
            verify(f, &verifier, &old).unwrap_err().code,
            "token_expired"
        );
        // A cached entry is only served while now < exp; past that the full check runs again.
        let token = sign(f, false, &claims("edge", 600));
        let verified = verify(f, &verifier, &token).unwrap();
        let digest: CacheKey = sha2::Sha256::digest(token.as_bytes()).into();
        let mut stale = verified.clone();
        stale.exp = unix_now() - 1;
        stale.sub = "from-the-cache".into();
        verifier
            .cache
            .lock()
            .unwrap()
            .insert(digest, Arc::new(stale));
        assert_eq!(verify(f, &verifier, &token).unwrap().sub, "agent");
    }

    #[test]
    fn the_cache_stays_bounded() {
        let f = fixture();
        let verifier = Verifier::default();
        for i in 0..250 {
            let token = sign(f, true, &claims(&format!("bounded-{i}"), 600));
            verify(f, &verifier, &token).unwrap();
        }
        assert!(verifier.cache.lock().unwrap().len() <= f.settings.cache_capacity);
    }

    fn segment() -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| URL_SAFE_NO_PAD.encode(b))
    }

    fn header_json() -> impl Strategy<Value = String> {
        (
            prop_oneof![
                Just("none"),
                Just("None"),
                Just("HS256"),
                Just("EdDSA"),
                Just("RS256"),
                Just("ES256"),
                Just(""),
                Just("HS512")
            ],
            prop_oneof![Just("at+jwt"), Just("JWT"), Just("")],
            proptest::option::of("[a-zA-Z0-9_-]{0,50}"),
        )
            .prop_map(|(alg, typ, kid)| {
                let mut h = serde_json::json!({"alg": alg, "typ": typ});
                if let Some(kid) = kid {
                    h["kid"] = kid.into();
                }
                URL_SAFE_NO_PAD.encode(h.to_string())
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn random_text_never_verifies(text in "\\PC{0,300}") {
            let f = fixture();
            prop_assert!(verify(f, &Verifier::default(), &text).is_err());
        }

        #[test]
        fn random_segments_never_verify(h in segment(), p in segment(), s in segment()) {
            let f = fixture();
            let token = format!("{h}.{p}.{s}");
            prop_assert!(verify(f, &Verifier::default(), &token).is_err());
        }

        #[test]
        fn forged_headers_with_real_claims_never_verify(h in header_json(), s in segment(), real_kid in any::<bool>()) {
            let f = fixture();
            let token = sign(f, false, &claims("forged", 600));
            let parts: Vec<&str> = token.split('.').collect();
            // With a real kid in a random header, the signature still cannot match.
            let header = if real_kid {
                let kid = f.keys.snapshot().ed25519.clone().unwrap().kid;
                let mut value: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&h).unwrap()).unwrap();
                value["kid"] = kid.into();
                URL_SAFE_NO_PAD.encode(value.to_string())
            } else {
                h
            };
            for sig in [s.as_str(), parts[2], ""] {
                let forged = format!("{header}.{}.{sig}", parts[1]);
                prop_assert!(verify(f, &Verifier::default(), &forged).is_err(), "{}", forged);
            }
        }

        #[test]
        fn any_changed_character_breaks_a_real_token(position in any::<prop::sample::Index>(), replacement in "[A-Za-z0-9_.=-]") {
            let f = fixture();
            let token = sign(f, false, &claims("mutated", 600));
            let i = position.index(token.len());
            let replacement = replacement.chars().next().unwrap();
            prop_assume!(token.as_bytes()[i] as char != replacement);
            let mut mutated = token.clone();
            mutated.replace_range(i..i + 1, &replacement.to_string());
            prop_assert!(verify(f, &Verifier::default(), &mutated).is_err());
        }
    }

    /// A claim sck would not have issued, with the code its refusal carries.
    fn unissuable() -> impl Strategy<Value = (&'static str, serde_json::Value, &'static str)> {
        let now = unix_now();
        prop_oneof![
            (MAX_TTL + 1..=i64::from(u32::MAX)).prop_map(move |ttl| (
                "exp",
                serde_json::json!(now + ttl),
                "ttl_above_maximum"
            )),
            (3600i64..=1_000_000_000).prop_map(move |ahead| {
                ("iat", serde_json::json!(now + ahead), "issued_in_future")
            }),
            prop_oneof![
                Just(String::new()),
                Just("iss_unknown".to_owned()),
                "[a-z_0-9]{1,30}"
            ]
            .prop_map(|id| ("client_id", serde_json::json!(id), "unknown_client")),
            prop_oneof![
                Just("admin:*"),
                Just("mcp:invoke admin"),
                Just("tools:write")
            ]
            .prop_map(|scope| ("scope", serde_json::json!(scope), "scope_not_allowed")),
            prop::sample::select(vec!["sub", "artifact_id", "artifact_type"]).prop_flat_map(
                |field| {
                    prop_oneof![
                        Just(String::new()),
                        " {1,5}",
                        "[a-z]{0,3}[\\x00-\\x1f][a-z]{0,3}",
                        Just("x".repeat(257)),
                    ]
                    .prop_map(move |text| (field, serde_json::json!(text), "invalid_claim"))
                }
            ),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        /// Signed with sck's own key but not what sck could have issued: refused with the code
        /// of what is wrong, whichever key signed it.
        #[test]
        fn signed_tokens_sck_could_not_have_issued_never_verify(
            (field, value, code) in unissuable(),
            hs256 in any::<bool>(),
        ) {
            let f = fixture();
            let mut payload = serde_json::to_value(claims("unissuable", 600)).unwrap();
            payload[field] = value;
            let claims: Claims = serde_json::from_value(payload).unwrap();
            let token = sign(f, hs256, &claims);
            let refusal = verify(f, &Verifier::default(), &token).unwrap_err();
            prop_assert_eq!((refusal.kind, refusal.code), (Kind::Unauthorized, code));
        }
    }

    #[test]
    fn critical_headers_and_another_issuers_algorithm_are_refused() {
        let f = fixture();
        let verifier = Verifier::default();
        let ring = f.keys.snapshot();
        let key = ring.ed25519.clone().unwrap();
        let mut header = Header::new(key.alg);
        header.typ = Some(TOKEN_TYPE.into());
        header.kid = Some(key.kid.clone());
        header.crit = Some(vec!["b64".into()]);
        let token = jsonwebtoken::encode(&header, &claims("crit", 600), &key.encoding).unwrap();
        assert_eq!(
            verify(f, &verifier, &token).unwrap_err().code,
            "unsupported_critical_header"
        );
        // The HS256 issuer's claims signed with the Ed25519 key.
        let mut theirs = claims("alg", 600);
        theirs.client_id = f.issuers.1.clone();
        assert_eq!(
            verify(f, &verifier, &sign(f, false, &theirs))
                .unwrap_err()
                .code,
            "algorithm_mismatch"
        );
    }

    /// A refusal of caller input is a 401 with a code, never a server error.
    fn refused(result: Result<VerifiedToken, EnforceError>) -> Result<(), TestCaseError> {
        match result {
            Ok(v) => Err(TestCaseError::fail(format!("verified: {v:?}"))),
            Err(e) => {
                prop_assert_eq!(e.kind, Kind::Unauthorized, "{}", e);
                prop_assert!(!e.code.is_empty());
                Ok(())
            }
        }
    }

    fn claim_value() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            any::<i64>().prop_map(serde_json::Value::from),
            Just(serde_json::json!(i64::MAX)),
            Just(serde_json::json!(1e300)),
            Just(serde_json::json!(4)),
            Just(serde_json::json!("urn:sck:loa:4")),
            Just(serde_json::json!("https://sck.test")),
            Just(serde_json::json!("mcp:invoke admin:*")),
            "\\PC{0,20}".prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
            Just(serde_json::json!([])),
            Just(serde_json::json!({"nested": true})),
        ]
    }

    /// How a real token's text is taken apart and put together again.
    #[derive(Debug, Clone)]
    enum Structure {
        DropSegment(prop::sample::Index),
        DuplicateSegment(prop::sample::Index),
        SwapSegments,
        /// The signature of the same claims signed with the other algorithm's key.
        TransplantSignature,
        /// The header of the other algorithm's token (alg/kid swap) with this signature.
        TransplantHeader,
        Padding(prop::sample::Index),
        StandardAlphabet,
        Repeat,
        Surround(&'static str),
    }

    fn structure() -> impl Strategy<Value = Structure> {
        prop_oneof![
            any::<prop::sample::Index>().prop_map(Structure::DropSegment),
            any::<prop::sample::Index>().prop_map(Structure::DuplicateSegment),
            Just(Structure::SwapSegments),
            Just(Structure::TransplantSignature),
            Just(Structure::TransplantHeader),
            any::<prop::sample::Index>().prop_map(Structure::Padding),
            Just(Structure::StandardAlphabet),
            Just(Structure::Repeat),
            prop::sample::select(vec![" ", "\t", "\n", "Bearer ", ".", "\0"])
                .prop_map(Structure::Surround),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Any claim changed, added or removed (re-encoded, original signature): refused
        /// with a 401, whichever algorithm signed it.
        #[test]
        fn re_encoded_claims_never_verify_under_the_original_signature(
            field in prop::sample::select(vec![
                "iss", "sub", "aud", "jti", "iat", "nbf", "exp", "client_id", "org", "loa",
                "acr", "scope", "artifact_id", "artifact_type", "extra",
            ]),
            value in claim_value(),
            remove in any::<bool>(),
            hs256 in any::<bool>(),
        ) {
            let f = fixture();
            let token = sign(f, hs256, &claims("payload", 600));
            let parts: Vec<&str> = token.split('.').collect();
            let original: serde_json::Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
            let mut payload = original.clone();
            if remove {
                payload.as_object_mut().unwrap().remove(field);
            } else {
                payload[field] = value;
            }
            prop_assume!(payload != original);
            let forged = format!(
                "{}.{}.{}",
                parts[0],
                URL_SAFE_NO_PAD.encode(payload.to_string()),
                parts[2]
            );
            refused(verify(f, &Verifier::default(), &forged))?;
        }

        /// Segments dropped, duplicated, swapped, moved between an EdDSA and an HS256 token of
        /// the same claims, padded, re-encoded, repeated or surrounded: never verifies, 401.
        #[test]
        fn structural_mutations_of_real_tokens_never_verify(
            op in structure(),
            hs256 in any::<bool>(),
        ) {
            let f = fixture();
            let claims = claims("structure", 600);
            let token = sign(f, hs256, &claims);
            let other = sign(f, !hs256, &claims);
            let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
            let theirs: Vec<&str> = other.split('.').collect();
            let mutated = match op {
                Structure::DropSegment(i) => {
                    parts.remove(i.index(3));
                    parts.join(".")
                }
                Structure::DuplicateSegment(i) => {
                    let at = i.index(3);
                    parts.insert(at, parts[at].clone());
                    parts.join(".")
                }
                Structure::SwapSegments => format!("{}.{}.{}", parts[1], parts[0], parts[2]),
                Structure::TransplantSignature => format!("{}.{}.{}", parts[0], parts[1], theirs[2]),
                Structure::TransplantHeader => format!("{}.{}.{}", theirs[0], parts[1], parts[2]),
                Structure::Padding(i) => {
                    parts[i.index(3)].push('=');
                    parts.join(".")
                }
                Structure::StandardAlphabet => token.replace('-', "+").replace('_', "/"),
                Structure::Repeat => format!("{token}{token}"),
                Structure::Surround(s) => format!("{s}{token}{s}"),
            };
            prop_assume!(mutated != token);
            refused(verify(f, &Verifier::default(), &mutated))?;
        }

        /// Arbitrary bytes (as text), including oversized ones: a 401, never anything else.
        #[test]
        fn arbitrary_text_is_refused_with_401(
            text in prop_oneof![
                "\\PC{0,300}",
                "[A-Za-z0-9_.=-]{0,400}",
                Just("a".repeat(MAX_TOKEN_BYTES + 1)),
                Just(format!("{}.{}.{}", "e".repeat(3000), "e".repeat(3000), "e".repeat(3000))),
            ],
        ) {
            refused(verify(fixture(), &Verifier::default(), &text))?;
        }
    }
}
