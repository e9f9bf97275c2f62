//! The pure core of gateway-token verification: a token's text, the verification keys by
//! `kid`, the settings and `now` in; a [`VerifiedToken`] or a [`TokenRefusal`] out.
//!
//! In order, cheapest first: a size bound; the JOSE header (parsed by `jsonwebtoken`, so
//! `alg: none` or any unknown algorithm is malformed); no `crit` (RFC 7515 §4.1.11: sck
//! understands no extension header, so any critical one is refused); `typ` must be `at+jwt`;
//! the `kid` must name a key handed in; the header's `alg` must be the one pinned to that key
//! (this is what refuses HS256 signed with a public key, or any other confusion); then
//! `jsonwebtoken::decode` checks the signature with exactly that algorithm, `iss`, `aud` and
//! the presence of the registered claims; `exp`/`nbf` are checked here against `now` with the
//! leeway; the claims must be complete and consistent (`loa` 1–4, `acr` = `urn:sck:loa:<loa>`,
//! `sub`/`artifact_id`/`artifact_type` as issuing requires them, a delegated token's `act`
//! chain one actor per `delegated_from` ancestor, `iat` not in the future).
//!
//! What needs state — whether sck could have issued the token (its issuers), revocation, the
//! cache — is the caller's (`sck-enforce`'s `tokens::verify`). Invariant: a refusal's detail
//! names the check, never token content.

use std::collections::HashMap;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use crate::principal::Actor;
use crate::principal::VerifiedToken;

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
    /// RFC 8693 §4.1 actor chain of a delegated token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// The `jti` of each token it was delegated from, root first: one per actor in `act`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delegated_from: Vec<String>,
}

/// The `acr` value of a Level of Assurance.
pub fn acr_for(loa: u8) -> String {
    format!("urn:sck:loa:{loa}")
}

/// `Algorithm` names as they appear in the API.
pub fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        _ => "EdDSA",
    }
}

/// A text claim as issuing accepts it: 1–256 characters, not blank, no control characters.
pub fn is_valid_text(value: &str) -> bool {
    !value.trim().is_empty() && value.len() <= 256 && !value.chars().any(char::is_control)
}

/// A key that verifies tokens, with its pinned algorithm.
#[derive(Clone)]
pub struct VerifyKey {
    pub alg: Algorithm,
    pub decoding: DecodingKey,
}

/// What a token must say of itself.
#[derive(Debug, Clone)]
pub struct CheckSettings<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub leeway_secs: u64,
}

/// A refused token: a stable code (`invalid_token`, `token_expired`, `unknown_key`, ...) and
/// a detail naming the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRefusal {
    pub code: &'static str,
    pub detail: &'static str,
}

impl TokenRefusal {
    pub const fn new(code: &'static str, detail: &'static str) -> TokenRefusal {
        TokenRefusal { code, detail }
    }

    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl std::fmt::Display for TokenRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.detail, self.code)
    }
}

const MALFORMED: TokenRefusal = TokenRefusal::new("invalid_token", "malformed token");

fn map_jwt_error(kind: &ErrorKind) -> TokenRefusal {
    let (code, detail) = match kind {
        ErrorKind::InvalidSignature => ("signature_mismatch", "signature does not verify"),
        ErrorKind::ExpiredSignature => ("token_expired", "token has expired"),
        ErrorKind::ImmatureSignature => ("token_not_yet_valid", "token is not valid yet"),
        ErrorKind::InvalidIssuer => ("invalid_issuer", "token has the wrong issuer"),
        ErrorKind::InvalidAudience => ("invalid_audience", "token has the wrong audience"),
        ErrorKind::InvalidAlgorithm => ("algorithm_mismatch", "algorithm not allowed for this key"),
        ErrorKind::MissingRequiredClaim(_) => ("invalid_token", "a required claim is missing"),
        _ => return MALFORMED,
    };
    TokenRefusal::new(code, detail)
}

/// Verifies `token` against `keys` (by `kid`) as of `now` (Unix seconds); see the module docs
/// for the order of checks.
pub fn check(
    token: &str,
    keys: &HashMap<String, VerifyKey>,
    settings: &CheckSettings<'_>,
    now: i64,
) -> Result<VerifiedToken, TokenRefusal> {
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Err(MALFORMED);
    }
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| TokenRefusal::new("invalid_token", "malformed token header"))?;
    if header.crit.is_some() {
        return Err(TokenRefusal::new(
            "unsupported_critical_header",
            "token marks header parameters critical (crit); none is supported",
        ));
    }
    match header.typ.as_deref() {
        Some(t)
            if t.eq_ignore_ascii_case(TOKEN_TYPE)
                || t.eq_ignore_ascii_case("application/at+jwt") => {}
        _ => {
            return Err(TokenRefusal::new(
                "invalid_token_type",
                "token typ must be at+jwt",
            ))
        }
    }
    let kid = header
        .kid
        .as_deref()
        .ok_or(TokenRefusal::new("unknown_key", "token names no key"))?;
    let key = keys.get(kid).ok_or(TokenRefusal::new(
        "unknown_key",
        "token names an unknown key",
    ))?;
    if header.alg != key.alg {
        return Err(TokenRefusal::new(
            "algorithm_mismatch",
            "token algorithm is not the one pinned to its key",
        ));
    }
    let mut validation = Validation::new(key.alg);
    // Time is checked below against the `now` handed in, not the system clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = true;
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    validation.set_issuer(&[settings.issuer]);
    validation.set_audience(&[settings.audience]);
    let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
        .map_err(|e| map_jwt_error(e.kind()))?
        .claims;
    let leeway = settings.leeway_secs as i64;
    if claims.exp < now - leeway {
        return Err(map_jwt_error(&ErrorKind::ExpiredSignature));
    }
    if claims.nbf > now + leeway {
        return Err(map_jwt_error(&ErrorKind::ImmatureSignature));
    }
    if !(1..=4).contains(&claims.loa) || claims.acr != acr_for(claims.loa) {
        return Err(TokenRefusal::new(
            "invalid_token",
            "inconsistent level of assurance",
        ));
    }
    if claims.jti.is_empty() || claims.org.is_empty() {
        return Err(TokenRefusal::new(
            "invalid_token",
            "a required claim is missing",
        ));
    }
    if ![&claims.sub, &claims.artifact_id, &claims.artifact_type]
        .into_iter()
        .all(|text| is_valid_text(text))
    {
        return Err(TokenRefusal::new(
            "invalid_claim",
            "sub, artifact_id and artifact_type must be 1-256 characters without control characters",
        ));
    }
    let depth = claims.act.as_ref().map_or(0, Actor::depth);
    if depth != claims.delegated_from.len() || claims.delegated_from.iter().any(|j| j.is_empty()) {
        return Err(TokenRefusal::new(
            "invalid_token",
            "inconsistent delegation chain (act and delegated_from)",
        ));
    }
    if claims.iat > now + leeway {
        return Err(TokenRefusal::new(
            "issued_in_future",
            "token iat is in the future",
        ));
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
        alg: key.alg,
        act: claims.act,
        delegated_from: claims.delegated_from,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    const SECRET: &[u8] = b"a test secret of at least thirty-two bytes";
    const SETTINGS: CheckSettings<'static> = CheckSettings {
        issuer: "https://sck.test",
        audience: "urn:sck:enforcement",
        leeway_secs: 5,
    };

    fn keys() -> HashMap<String, VerifyKey> {
        HashMap::from([(
            "k1".to_owned(),
            VerifyKey {
                alg: Algorithm::HS256,
                decoding: DecodingKey::from_secret(SECRET),
            },
        )])
    }

    fn claims(iat: i64, exp: i64) -> Claims {
        Claims {
            iss: SETTINGS.issuer.into(),
            sub: "agent".into(),
            aud: SETTINGS.audience.into(),
            jti: "j1".into(),
            iat,
            nbf: iat,
            exp,
            client_id: "iss_1".into(),
            org: "default".into(),
            loa: 2,
            acr: acr_for(2),
            scope: "tools:call read".into(),
            artifact_id: "a".into(),
            artifact_type: "t".into(),
            act: None,
            delegated_from: Vec::new(),
        }
    }

    fn sign(claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(TOKEN_TYPE.into());
        header.kid = Some("k1".into());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(SECRET)).unwrap()
    }

    #[test]
    fn time_is_the_now_handed_in_with_the_leeway() {
        let token = sign(&claims(1_000, 1_100));
        let verified = check(&token, &keys(), &SETTINGS, 1_050).unwrap();
        assert_eq!((verified.sub.as_str(), verified.scope.len()), ("agent", 2));
        assert!(check(&token, &keys(), &SETTINGS, 1_105).is_ok());
        assert_eq!(
            check(&token, &keys(), &SETTINGS, 1_106).unwrap_err().code,
            "token_expired"
        );
        assert_eq!(
            check(&token, &keys(), &SETTINGS, 994).unwrap_err().code,
            "token_not_yet_valid"
        );
        let mut future = claims(2_000, 3_000);
        future.nbf = 1_000;
        assert_eq!(
            check(&sign(&future), &keys(), &SETTINGS, 1_050)
                .unwrap_err()
                .code,
            "issued_in_future"
        );
    }

    #[test]
    fn only_the_keys_handed_in_verify() {
        let token = sign(&claims(1_000, 1_100));
        assert_eq!(
            check(&token, &HashMap::new(), &SETTINGS, 1_050)
                .unwrap_err()
                .code,
            "unknown_key"
        );
        let other = HashMap::from([(
            "k1".to_owned(),
            VerifyKey {
                alg: Algorithm::HS256,
                decoding: DecodingKey::from_secret(b"another secret of thirty-two bytes!!"),
            },
        )]);
        assert_eq!(
            check(&token, &other, &SETTINGS, 1_050).unwrap_err().code,
            "signature_mismatch"
        );
    }

    #[test]
    fn a_delegation_chain_must_name_one_ancestor_per_actor() {
        let mut delegated = claims(1_000, 1_100);
        delegated.act = Some(Actor {
            sub: "agent-b".into(),
            act: None,
        });
        assert_eq!(
            check(&sign(&delegated), &keys(), &SETTINGS, 1_050)
                .unwrap_err()
                .detail,
            "inconsistent delegation chain (act and delegated_from)"
        );
        delegated.delegated_from = vec!["root".into()];
        let verified = check(&sign(&delegated), &keys(), &SETTINGS, 1_050).unwrap();
        assert_eq!(verified.delegated_from, ["root"]);
        assert_eq!(verified.act.map(|a| a.sub).as_deref(), Some("agent-b"));
        let mut orphan = claims(1_000, 1_100);
        orphan.delegated_from = vec!["root".into()];
        assert!(check(&sign(&orphan), &keys(), &SETTINGS, 1_050).is_err());
    }
}
