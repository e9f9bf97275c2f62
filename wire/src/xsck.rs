//! The X-SCK wire format as pure functions of bytes and keys: header parsing, the string to
//! sign, the timestamp window, the signature check and the [`Rejection`] of each step. No I/O,
//! no clock, no database — the verification pipeline (the gateway's `xsck::pipeline`)
//! supplies `now`, the pinned keys and the nonce store.
//!
//! What is signed: the request the gateway receives — its method, the path and raw query as
//! sent, the body — with the authority taken from the configured `public_url` (never from the
//! `Host` header), so a signature made for one gateway deployment does not verify at another.
//!
//! Invariants:
//! - A header block is accepted only if every required header is present exactly once, is
//!   valid visible ASCII (no control characters, no non-UTF-8, at most [`MAX_VALUE_LEN`]
//!   bytes) and well formed; anything else is a [`Rejection`], never a panic.
//! - A signature is checked only against the keys handed in (the pin's keys); HMAC tags are
//!   compared in constant time (`hmac::Mac::verify_slice`), Ed25519 with `verify_strict`.

use base64::Engine;
use ed25519_dalek::Signer;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Why a signed call was refused. Each kind has a stable `code` (used in the problem answer
/// and in the `upstream.rejected` ledger entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    MissingHeader(&'static str),
    DuplicateHeader(&'static str),
    InvalidHeader(&'static str, String),
    BodyTooLarge(usize),
    TimestampSkew,
    UnknownIdentity,
    OrgMismatch,
    IdentityRevoked,
    SignatureMismatch,
    ReplayedNonce,
}

impl Rejection {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::MissingHeader(_) => "missing_header",
            Rejection::DuplicateHeader(_) => "duplicate_header",
            Rejection::InvalidHeader(..) => "invalid_header",
            Rejection::BodyTooLarge(_) => "body_too_large",
            Rejection::TimestampSkew => "timestamp_skew",
            Rejection::UnknownIdentity => "unknown_identity",
            Rejection::OrgMismatch => "org_mismatch",
            Rejection::IdentityRevoked => "identity_revoked",
            Rejection::SignatureMismatch => "signature_mismatch",
            Rejection::ReplayedNonce => "replayed_nonce",
        }
    }

    /// True for a request that is malformed rather than unauthenticated (a header missing,
    /// repeated or malformed).
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            Rejection::MissingHeader(_)
                | Rejection::DuplicateHeader(_)
                | Rejection::InvalidHeader(..)
        )
    }

    /// A human-readable explanation that reveals no secret.
    pub fn detail(&self) -> String {
        match self {
            Rejection::MissingHeader(h) => format!("missing header {h}"),
            Rejection::DuplicateHeader(h) => format!("header {h} sent more than once"),
            Rejection::InvalidHeader(h, why) => format!("malformed header {h}: {why}"),
            Rejection::BodyTooLarge(max) => {
                format!("signed request bodies are limited to {max} bytes")
            }
            Rejection::TimestampSkew => "X-SCK-Timestamp is outside the accepted window".into(),
            Rejection::UnknownIdentity => "no identity is pinned for this ANS ID".into(),
            Rejection::OrgMismatch => "the ANS ID is not pinned to this organization".into(),
            Rejection::IdentityRevoked => "the identity pin is revoked".into(),
            Rejection::SignatureMismatch => {
                "the signature does not verify under a pinned key".into()
            }
            Rejection::ReplayedNonce => "this nonce was already used".into(),
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.detail(), self.code())
    }
}

/// Header names, lowercase as `http` stores them.
pub const SIGNATURE: &str = "x-sck-signature";
pub const TIMESTAMP: &str = "x-sck-timestamp";
pub const ANS_ID: &str = "x-sck-ans-id";
pub const ORGANIZATION: &str = "x-sck-organization";
pub const NONCE: &str = "x-sck-nonce";
pub const KEY_ID: &str = "x-sck-key-id";

/// The longest accepted value of any X-SCK header.
pub const MAX_VALUE_LEN: usize = 512;

/// Shortest and longest accepted nonce.
pub const NONCE_LEN: std::ops::RangeInclusive<usize> = 8..=128;

/// SHA-256 of the empty body, lowercase hex.
pub const EMPTY_BODY_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

type HmacSha256 = Hmac<Sha256>;

/// The two signature schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    HmacSha256,
    Ed25519,
}

impl Scheme {
    /// The name used in `X-SCK-Signature` and in pins (`hmac-sha256`, `ed25519`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::HmacSha256 => "hmac-sha256",
            Scheme::Ed25519 => "ed25519",
        }
    }

    /// The first line of the string to sign.
    pub fn label(self) -> &'static str {
        match self {
            Scheme::HmacSha256 => "SCK-HMAC-SHA256-V1",
            Scheme::Ed25519 => "SCK-ED25519-V1",
        }
    }

    /// Parses `hmac-sha256` or `ed25519`.
    pub fn parse(name: &str) -> Option<Scheme> {
        match name {
            "hmac-sha256" => Some(Scheme::HmacSha256),
            "ed25519" => Some(Scheme::Ed25519),
            _ => None,
        }
    }
}

/// A decoded `X-SCK-Signature` value.
#[derive(Clone, PartialEq, Eq)]
pub enum Signature {
    Hmac([u8; 32]),
    Ed25519([u8; 64]),
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature({})", self.scheme().as_str())
    }
}

impl Signature {
    pub fn scheme(&self) -> Scheme {
        match self {
            Signature::Hmac(_) => Scheme::HmacSha256,
            Signature::Ed25519(_) => Scheme::Ed25519,
        }
    }

    /// The header value (`hmac-sha256=<hex>` / `ed25519=<base64>`).
    pub fn header_value(&self) -> String {
        match self {
            Signature::Hmac(tag) => format!("hmac-sha256={}", hex::encode(tag)),
            Signature::Ed25519(sig) => format!(
                "ed25519={}",
                base64::engine::general_purpose::STANDARD.encode(sig)
            ),
        }
    }

    /// Parses a header value; the scheme name is case-sensitive, the HMAC tag lowercase hex.
    pub fn parse(value: &str) -> Result<Signature, Rejection> {
        let bad = |why: &str| Rejection::InvalidHeader(SIGNATURE, why.to_owned());
        let (scheme, encoded) = value
            .split_once('=')
            .ok_or_else(|| bad("expected <scheme>=<signature>"))?;
        match Scheme::parse(scheme) {
            Some(Scheme::HmacSha256) => {
                if encoded.len() != 64
                    || !encoded
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                {
                    return Err(bad("hmac-sha256 needs 64 lowercase hex digits"));
                }
                let mut tag = [0u8; 32];
                hex::decode_to_slice(encoded, &mut tag)
                    .map_err(|_| bad("hmac-sha256 needs 64 lowercase hex digits"))?;
                Ok(Signature::Hmac(tag))
            }
            Some(Scheme::Ed25519) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map_err(|_| bad("ed25519 needs standard base64"))?;
                let sig: [u8; 64] = bytes
                    .try_into()
                    .map_err(|_| bad("ed25519 signatures are 64 bytes"))?;
                Ok(Signature::Ed25519(sig))
            }
            None => Err(bad("scheme must be hmac-sha256 or ed25519")),
        }
    }
}

/// The X-SCK headers of one request, parsed and checked for shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XsckHeaders {
    pub signature: Signature,
    pub timestamp: String,
    pub ans_id: String,
    pub organization: String,
    /// `None` only in compat mode (no nonce header sent and none required).
    pub nonce: Option<String>,
    pub key_id: Option<String>,
}

/// Visible ASCII (0x21..=0x7E): no spaces, no control characters, nothing non-UTF-8.
fn visible_ascii(value: &[u8]) -> bool {
    value.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// Parses the X-SCK headers from `(lowercase name, raw value)` pairs (other headers are
/// ignored). With `require_nonce` false (compat mode) a missing `X-SCK-Nonce` is allowed.
pub fn parse_headers<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    require_nonce: bool,
) -> Result<XsckHeaders, Rejection> {
    const NAMES: [&str; 6] = [SIGNATURE, TIMESTAMP, ANS_ID, ORGANIZATION, NONCE, KEY_ID];
    let mut values: [Option<&[u8]>; 6] = [None; 6];
    for (name, value) in headers {
        let Some(i) = NAMES.iter().position(|n| name.eq_ignore_ascii_case(n)) else {
            continue;
        };
        if values[i].is_some() {
            return Err(Rejection::DuplicateHeader(NAMES[i]));
        }
        values[i] = Some(value);
    }
    let mut text = |i: usize| -> Result<Option<String>, Rejection> {
        let Some(raw) = values[i].take() else {
            return Ok(None);
        };
        if raw.is_empty() {
            return Err(Rejection::InvalidHeader(NAMES[i], "empty".into()));
        }
        if raw.len() > MAX_VALUE_LEN {
            return Err(Rejection::InvalidHeader(
                NAMES[i],
                format!("longer than {MAX_VALUE_LEN} bytes"),
            ));
        }
        if !visible_ascii(raw) {
            return Err(Rejection::InvalidHeader(
                NAMES[i],
                "only visible ASCII is allowed (no spaces or control characters)".into(),
            ));
        }
        // Visible ASCII is UTF-8.
        Ok(Some(String::from_utf8_lossy(raw).into_owned()))
    };
    let signature = text(0)?;
    let timestamp = text(1)?;
    let ans_id = text(2)?;
    let organization = text(3)?;
    let nonce = text(4)?;
    let key_id = text(5)?;
    let signature = signature.ok_or(Rejection::MissingHeader(SIGNATURE))?;
    let timestamp = timestamp.ok_or(Rejection::MissingHeader(TIMESTAMP))?;
    let ans_id = ans_id.ok_or(Rejection::MissingHeader(ANS_ID))?;
    let organization = organization.ok_or(Rejection::MissingHeader(ORGANIZATION))?;
    if nonce.is_none() && require_nonce {
        return Err(Rejection::MissingHeader(NONCE));
    }
    if let Some(n) = &nonce {
        if !NONCE_LEN.contains(&n.len()) {
            return Err(Rejection::InvalidHeader(
                NONCE,
                format!(
                    "must be {}-{} characters",
                    NONCE_LEN.start(),
                    NONCE_LEN.end()
                ),
            ));
        }
    }
    parse_timestamp(&timestamp)?;
    Ok(XsckHeaders {
        signature: Signature::parse(&signature)?,
        timestamp,
        ans_id,
        organization,
        nonce,
        key_id,
    })
}

/// Unix seconds of an `X-SCK-Timestamp`: decimal unix seconds (at most 12 digits) or RFC 3339
/// with a UTC offset (`Z` or `+00:00`).
pub fn parse_timestamp(value: &str) -> Result<i64, Rejection> {
    let bad = || {
        Rejection::InvalidHeader(
            TIMESTAMP,
            "expected unix seconds or RFC 3339 UTC (e.g. 2025-01-25T10:00:00Z)".into(),
        )
    };
    if !value.is_empty() && value.len() <= 12 && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<i64>().map_err(|_| bad());
    }
    // Strict: a `T` separator (RFC 3339 section 5.6), as the spec's example.
    if value.as_bytes().get(10) != Some(&b'T') {
        return Err(bad());
    }
    let parsed = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map_err(|_| bad())?;
    if !parsed.offset().is_utc() {
        return Err(bad());
    }
    Ok(parsed.unix_timestamp())
}

/// Refuses a timestamp more than `max_skew` seconds away from `now`.
pub fn check_skew(timestamp: &str, now: i64, max_skew: i64) -> Result<(), Rejection> {
    let at = parse_timestamp(timestamp)?;
    if now.abs_diff(at) > max_skew.unsigned_abs() {
        return Err(Rejection::TimestampSkew);
    }
    Ok(())
}

/// The authority line for a public URL: `host[:port]` as written, lowercase, without scheme,
/// userinfo, path, query or fragment (`https://GW.example.com/x` → `gw.example.com`).
pub fn authority_of(public_url: &str) -> String {
    let rest = public_url
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(public_url);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let authority = authority
        .rsplit_once('@')
        .map(|(_, a)| a)
        .unwrap_or(authority);
    authority.to_ascii_lowercase()
}

/// The parts of the HTTP request that are signed.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// The method (uppercased when signing).
    pub method: &'a str,
    /// The gateway's configured public authority (see [`authority_of`]).
    pub authority: &'a str,
    /// The path exactly as sent (`/` if empty).
    pub path: &'a str,
    /// The raw query exactly as sent, without `?` (empty if none).
    pub query: &'a str,
    pub body: &'a [u8],
}

/// Lowercase hex SHA-256 of a body.
pub fn body_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// The string to sign (ten `\n`-joined lines, no trailing newline). In compat mode the nonce
/// line is empty.
#[allow(clippy::too_many_arguments)]
pub fn string_to_sign(
    scheme: Scheme,
    request: &SignedRequest<'_>,
    timestamp: &str,
    nonce: Option<&str>,
    ans_id: &str,
    organization: &str,
) -> String {
    let path = if request.path.is_empty() {
        "/"
    } else {
        request.path
    };
    [
        scheme.label(),
        &request.method.to_ascii_uppercase(),
        &request.authority.to_ascii_lowercase(),
        path,
        request.query,
        timestamp,
        nonce.unwrap_or(""),
        ans_id,
        organization,
        &body_sha256(request.body),
    ]
    .join("\n")
}

/// The string to sign for parsed headers.
pub fn string_to_sign_for(request: &SignedRequest<'_>, headers: &XsckHeaders) -> String {
    string_to_sign(
        headers.signature.scheme(),
        request,
        &headers.timestamp,
        headers.nonce.as_deref(),
        &headers.ans_id,
        &headers.organization,
    )
}

/// Key material of one pinned key.
#[derive(Clone)]
pub enum KeyMaterial {
    /// The shared secret (its bytes are the HMAC key).
    HmacSecret(Vec<u8>),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl KeyMaterial {
    pub fn scheme(&self) -> Scheme {
        match self {
            KeyMaterial::HmacSecret(_) => Scheme::HmacSha256,
            KeyMaterial::Ed25519(_) => Scheme::Ed25519,
        }
    }
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyMaterial({}, redacted)", self.scheme().as_str())
    }
}

/// One live key of a pin.
#[derive(Debug, Clone)]
pub struct PinnedKey {
    pub key_id: String,
    pub material: KeyMaterial,
}

/// HMAC-SHA256 tag of `message` under `secret`.
pub fn hmac_tag(secret: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Signs a string to sign with an HMAC secret.
pub fn sign_hmac(secret: &[u8], string_to_sign: &str) -> Signature {
    Signature::Hmac(hmac_tag(secret, string_to_sign.as_bytes()))
}

/// Signs a string to sign with an Ed25519 key.
pub fn sign_ed25519(key: &ed25519_dalek::SigningKey, string_to_sign: &str) -> Signature {
    Signature::Ed25519(key.sign(string_to_sign.as_bytes()).to_bytes())
}

/// Checks `signature` over `message` against the pin's keys only (the one named by `key_id`
/// when given) and returns the key that verified. Every candidate of the right scheme is
/// tried, so timing does not reveal which key id exists.
pub fn verify_signature<'k>(
    message: &[u8],
    signature: &Signature,
    keys: &'k [PinnedKey],
    key_id: Option<&str>,
) -> Result<&'k PinnedKey, Rejection> {
    let mut verified = None;
    for key in keys {
        if key_id.is_some_and(|id| id != key.key_id) {
            continue;
        }
        let ok = match (&key.material, signature) {
            (KeyMaterial::HmacSecret(secret), Signature::Hmac(tag)) => {
                let mut mac =
                    HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
                mac.update(message);
                mac.verify_slice(tag).is_ok()
            }
            (KeyMaterial::Ed25519(public), Signature::Ed25519(sig)) => public
                .verify_strict(message, &ed25519_dalek::Signature::from_bytes(sig))
                .is_ok(),
            _ => false,
        };
        if ok && verified.is_none() {
            verified = Some(key);
        }
    }
    verified.ok_or(Rejection::SignatureMismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"sck_test_secret_0123456789abcdef";
    const BODY: &[u8] = br#"{"bundle_id":"b-42","action":"evaluate"}"#;
    const EXPECTED: &str =
        "hmac-sha256=085188b465165722a90ac2739ed5e695d18d87d10097f2678b84c9e4e1a10fab";
    const EXPECTED_STRING: &str = "SCK-HMAC-SHA256-V1\nPOST\ngateway.example.com\n/v1/bundles/b-42/evaluate\ndry_run=true&region=eu\n1767225600\nn3q27wX9kLmPzR1aB4cD\nans://v1.0.0.agent.example.com\norg-acme\ne8e60aeafc1afc0c4da25ea092f79c51dcf72ea2a6d0c8a272867f6bfbfd203d";

    fn vector_request() -> SignedRequest<'static> {
        SignedRequest {
            method: "POST",
            authority: "gateway.example.com",
            path: "/v1/bundles/b-42/evaluate",
            query: "dry_run=true&region=eu",
            body: BODY,
        }
    }

    fn vector_headers(signature: &str) -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("x-sck-timestamp", b"1767225600".to_vec()),
            ("x-sck-nonce", b"n3q27wX9kLmPzR1aB4cD".to_vec()),
            ("x-sck-ans-id", b"ans://v1.0.0.agent.example.com".to_vec()),
            ("x-sck-organization", b"org-acme".to_vec()),
            ("x-sck-signature", signature.as_bytes().to_vec()),
        ]
    }

    fn parse(headers: &[(&'static str, Vec<u8>)]) -> Result<XsckHeaders, Rejection> {
        parse_headers(headers.iter().map(|(n, v)| (*n, v.as_slice())), true)
    }

    fn keys() -> Vec<PinnedKey> {
        vec![PinnedKey {
            key_id: "k1".into(),
            material: KeyMaterial::HmacSecret(SECRET.to_vec()),
        }]
    }

    /// Full pure check of the vector with optional mutations of the request.
    fn check(
        request: &SignedRequest<'_>,
        headers: &[(&'static str, Vec<u8>)],
    ) -> Result<(), Rejection> {
        let parsed = parse(headers)?;
        let message = string_to_sign_for(request, &parsed);
        verify_signature(message.as_bytes(), &parsed.signature, &keys(), None).map(|_| ())
    }

    #[test]
    fn hmac_vector_is_reproduced_exactly() {
        assert_eq!(
            body_sha256(BODY),
            "e8e60aeafc1afc0c4da25ea092f79c51dcf72ea2a6d0c8a272867f6bfbfd203d"
        );
        let message = string_to_sign(
            Scheme::HmacSha256,
            &vector_request(),
            "1767225600",
            Some("n3q27wX9kLmPzR1aB4cD"),
            "ans://v1.0.0.agent.example.com",
            "org-acme",
        );
        assert_eq!(message, EXPECTED_STRING);
        assert_eq!(message.lines().count(), 10);
        assert_eq!(sign_hmac(SECRET, &message).header_value(), EXPECTED);
        check(&vector_request(), &vector_headers(EXPECTED)).unwrap();
        check_skew("1767225600", 1767225600, 300).unwrap();
    }

    #[test]
    fn one_changed_byte_anywhere_fails_with_signature_mismatch() {
        let base = vector_request();
        let changed_body = br#"{"bundle_id":"b-43","action":"evaluate"}"#;
        let requests = [
            SignedRequest {
                body: changed_body,
                ..base
            },
            SignedRequest {
                path: "/v1/bundles/b-43/evaluate",
                ..base
            },
            SignedRequest {
                query: "dry_run=true&region=eU",
                ..base
            },
            SignedRequest {
                method: "PUT",
                ..base
            },
            SignedRequest {
                authority: "gateway.example.org",
                ..base
            },
            SignedRequest { path: "", ..base },
        ];
        for request in &requests {
            assert_eq!(
                check(request, &vector_headers(EXPECTED)),
                Err(Rejection::SignatureMismatch),
                "{request:?}"
            );
        }
        for (name, value) in [
            ("x-sck-timestamp", "1767225601"),
            ("x-sck-nonce", "n3q27wX9kLmPzR1aB4cE"),
            ("x-sck-ans-id", "ans://v1.0.0.agent.example.con"),
            ("x-sck-organization", "org-acmf"),
        ] {
            let mut headers = vector_headers(EXPECTED);
            for h in &mut headers {
                if h.0 == name {
                    h.1 = value.as_bytes().to_vec();
                }
            }
            assert_eq!(
                check(&base, &headers),
                Err(Rejection::SignatureMismatch),
                "{name}"
            );
        }
        // A changed signature byte.
        let mut sig = EXPECTED.to_owned();
        sig.replace_range(sig.len() - 1.., "c");
        assert_eq!(
            check(&base, &vector_headers(&sig)),
            Err(Rejection::SignatureMismatch)
        );
    }

    #[test]
    fn lowercase_method_and_uppercase_authority_are_normalised() {
        let request = SignedRequest {
            method: "post",
            authority: "Gateway.Example.COM",
            ..vector_request()
        };
        check(&request, &vector_headers(EXPECTED)).unwrap();
    }

    #[test]
    fn a_key_of_another_identity_or_scheme_never_verifies() {
        let parsed = parse(&vector_headers(EXPECTED)).unwrap();
        let message = string_to_sign_for(&vector_request(), &parsed);
        let other = vec![PinnedKey {
            key_id: "other".into(),
            material: KeyMaterial::HmacSecret(b"another secret entirely".to_vec()),
        }];
        assert_eq!(
            verify_signature(message.as_bytes(), &parsed.signature, &other, None).err(),
            Some(Rejection::SignatureMismatch)
        );
        // The right key under the wrong id is not tried.
        assert_eq!(
            verify_signature(message.as_bytes(), &parsed.signature, &keys(), Some("k2")).err(),
            Some(Rejection::SignatureMismatch)
        );
        // An Ed25519 key never accepts an HMAC tag.
        let ed = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let pinned = vec![PinnedKey {
            key_id: "e".into(),
            material: KeyMaterial::Ed25519(ed.verifying_key()),
        }];
        assert!(verify_signature(message.as_bytes(), &parsed.signature, &pinned, None).is_err());
        assert!(verify_signature(message.as_bytes(), &parsed.signature, &[], None).is_err());
    }

    #[test]
    fn ed25519_round_trip() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[42u8; 32]);
        let request = vector_request();
        let message = string_to_sign(
            Scheme::Ed25519,
            &request,
            "2026-01-01T00:00:00Z",
            Some("n3q27wX9kLmPzR1aB4cD"),
            "ans://v1.0.0.agent.example.com",
            "org-acme",
        );
        assert!(message.starts_with("SCK-ED25519-V1\n"));
        let header = sign_ed25519(&key, &message).header_value();
        let mut headers = vector_headers(&header);
        headers[0].1 = b"2026-01-01T00:00:00Z".to_vec();
        let parsed = parse(&headers).unwrap();
        let pinned = vec![
            PinnedKey {
                key_id: "old".into(),
                material: KeyMaterial::HmacSecret(SECRET.to_vec()),
            },
            PinnedKey {
                key_id: "new".into(),
                material: KeyMaterial::Ed25519(key.verifying_key()),
            },
        ];
        let used = verify_signature(
            string_to_sign_for(&request, &parsed).as_bytes(),
            &parsed.signature,
            &pinned,
            None,
        )
        .unwrap();
        assert_eq!(used.key_id, "new");
        // Another Ed25519 key does not verify; neither does a changed body.
        let stranger = ed25519_dalek::SigningKey::from_bytes(&[43u8; 32]);
        let wrong = vec![PinnedKey {
            key_id: "x".into(),
            material: KeyMaterial::Ed25519(stranger.verifying_key()),
        }];
        assert!(verify_signature(
            string_to_sign_for(&request, &parsed).as_bytes(),
            &parsed.signature,
            &wrong,
            None
        )
        .is_err());
        let changed = SignedRequest {
            body: b"{}",
            ..request
        };
        assert!(verify_signature(
            string_to_sign_for(&changed, &parsed).as_bytes(),
            &parsed.signature,
            &pinned,
            None
        )
        .is_err());
    }

    #[test]
    fn timestamps_in_both_forms_and_the_skew_window() {
        assert_eq!(parse_timestamp("1767225600").unwrap(), 1767225600);
        assert_eq!(parse_timestamp("2026-01-01T00:00:00Z").unwrap(), 1767225600);
        assert_eq!(
            parse_timestamp("2026-01-01T00:00:00+00:00").unwrap(),
            1767225600
        );
        for bad in [
            "",
            "-5",
            "1767225600.5",
            "2026-01-01T01:00:00+01:00",
            "2026-01-01 00:00:00Z",
            "9999999999999",
            "now",
        ] {
            assert!(
                matches!(
                    parse_timestamp(bad),
                    Err(Rejection::InvalidHeader(TIMESTAMP, _))
                ),
                "{bad}"
            );
        }
        check_skew("1767225600", 1767225900, 300).unwrap();
        check_skew("1767225600", 1767225300, 300).unwrap();
        assert_eq!(
            check_skew("1767225600", 1767225901, 300),
            Err(Rejection::TimestampSkew)
        );
        assert_eq!(
            check_skew("1767225600", 1767225299, 300),
            Err(Rejection::TimestampSkew)
        );
        assert_eq!(
            check_skew("2026-01-01T00:05:01Z", 1767225600, 300),
            Err(Rejection::TimestampSkew)
        );
    }

    #[test]
    fn header_errors_have_their_codes() {
        // Missing, each one.
        for name in [SIGNATURE, TIMESTAMP, ANS_ID, ORGANIZATION, NONCE] {
            let headers: Vec<_> = vector_headers(EXPECTED)
                .into_iter()
                .filter(|h| h.0 != name)
                .collect();
            let err = parse(&headers).unwrap_err();
            assert_eq!(err, Rejection::MissingHeader(name));
            assert_eq!(err.code(), "missing_header");
        }
        // Duplicate, each one (also with different case).
        for name in [SIGNATURE, TIMESTAMP, ANS_ID, ORGANIZATION, NONCE] {
            let mut headers = vector_headers(EXPECTED);
            let copy = headers.iter().find(|h| h.0 == name).unwrap().clone();
            headers.push(copy);
            let err = parse(&headers).unwrap_err();
            assert_eq!(err.code(), "duplicate_header", "{name}");
        }
        // CR, LF, NUL, tab, DEL, space, non-UTF-8 inside a value.
        for bad in [
            &b"org\r-acme"[..],
            b"org\n-acme",
            b"org-acme\r\n",
            b"org\0",
            b"org\tacme",
            b"org\x7f",
            b"org acme",
            b"org-\xff\xfe",
        ] {
            let mut headers = vector_headers(EXPECTED);
            headers[3].1 = bad.to_vec();
            let err = parse(&headers).unwrap_err();
            assert_eq!(err.code(), "invalid_header", "{bad:?}");
        }
        // Too long, empty, short nonce, bad signatures.
        let mut headers = vector_headers(EXPECTED);
        headers[2].1 = vec![b'a'; MAX_VALUE_LEN + 1];
        assert_eq!(parse(&headers).unwrap_err().code(), "invalid_header");
        headers[2].1 = Vec::new();
        assert_eq!(parse(&headers).unwrap_err().code(), "invalid_header");
        let mut headers = vector_headers(EXPECTED);
        headers[1].1 = b"short".to_vec();
        assert_eq!(parse(&headers).unwrap_err().code(), "invalid_header");
        for sig in [
            "hmac-sha256",
            "HMAC-SHA256=085188b465165722a90ac2739ed5e695d18d87d10097f2678b84c9e4e1a10fab",
            "hmac-sha256=085188B465165722A90AC2739ED5E695D18D87D10097F2678B84C9E4E1A10FAB",
            "hmac-sha256=085188b465",
            "ed25519=AAAA",
            "ed25519=!!!!",
            "rsa=abc",
        ] {
            assert_eq!(
                parse(&vector_headers(sig)).unwrap_err().code(),
                "invalid_header",
                "{sig}"
            );
        }
    }

    #[test]
    fn compat_mode_allows_a_missing_nonce_only_when_configured() {
        let headers: Vec<_> = vector_headers(EXPECTED)
            .into_iter()
            .filter(|h| h.0 != NONCE)
            .collect();
        assert!(parse(&headers).is_err());
        let parsed = parse_headers(headers.iter().map(|(n, v)| (*n, v.as_slice())), false).unwrap();
        assert_eq!(parsed.nonce, None);
        let message = string_to_sign_for(&vector_request(), &parsed);
        assert_eq!(message.lines().nth(6), Some(""));
    }

    #[test]
    fn authority_comes_from_the_public_url() {
        assert_eq!(
            authority_of("https://Gateway.Example.com"),
            "gateway.example.com"
        );
        assert_eq!(authority_of("http://127.0.0.1:8080/"), "127.0.0.1:8080");
        assert_eq!(
            authority_of("https://u:p@gw.example.com:8443/base?x#y"),
            "gw.example.com:8443"
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn any_value() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..64),
                proptest::collection::vec(any::<u8>(), 0..4096),
                "[ -~]{0,80}".prop_map(String::into_bytes),
                proptest::collection::vec(
                    prop_oneof![
                        Just(b'\r'),
                        Just(b'\n'),
                        Just(0u8),
                        Just(b'a'),
                        Just(0xffu8)
                    ],
                    0..32
                ),
            ]
        }

        fn any_name() -> impl Strategy<Value = &'static str> {
            prop_oneof![
                Just(SIGNATURE),
                Just(TIMESTAMP),
                Just(ANS_ID),
                Just(ORGANIZATION),
                Just(NONCE),
                Just(KEY_ID),
                Just("x-other"),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

            /// Random replacements, duplicates and additions never panic and never verify.
            #[test]
            fn random_header_values_never_verify(
                edits in proptest::collection::vec((any_name(), any_value(), any::<bool>()), 1..6),
            ) {
                let mut headers = vector_headers(EXPECTED);
                let mut changed = false;
                for (name, value, duplicate) in edits {
                    if duplicate || name == "x-other" || name == KEY_ID {
                        if name != "x-other" && name != KEY_ID {
                            changed = true;
                        }
                        headers.push((name, value));
                    } else if let Some(h) = headers.iter_mut().find(|h| h.0 == name) {
                        if h.1 != value {
                            changed = true;
                        }
                        h.1 = value;
                    }
                }
                let result = check(&vector_request(), &headers);
                if changed {
                    prop_assert!(result.is_err());
                }
            }

            /// Valid-looking but random signed fields never verify under the pinned secret.
            #[test]
            fn random_well_formed_values_never_verify(
                nonce in "[A-Za-z0-9]{8,40}",
                org in "[a-z-]{1,20}",
                tag in "[0-9a-f]{64}",
            ) {
                let sig = format!("hmac-sha256={tag}");
                prop_assume!(sig != EXPECTED);
                let mut headers = vector_headers(&sig);
                headers[1].1 = nonce.into_bytes();
                headers[3].1 = org.into_bytes();
                prop_assert!(check(&vector_request(), &headers).is_err());
            }
        }
    }
}
