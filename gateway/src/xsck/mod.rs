//! X-SCK signed upstream calls: a caller with a pinned ANS identity signs each HTTP request;
//! the gateway verifies it before anything else runs.
//!
//! - [`canonical`]: the wire format as pure functions of bytes and keys (headers, string to
//!   sign, timestamp window, signature check), tested against `tests/vectors/x-sck.md`.
//! - [`nonces`]: the replay store, shared by all replicas through the database.
//! - [`pipeline`]: [`pipeline::XsckVerifier`] runs the spec's order — headers and body size →
//!   skew → pin (exists, same org, not revoked) → signature against only the pinned keys →
//!   nonce — and ledgers every outcome (`upstream.verified` / `upstream.rejected` with the
//!   reason code; never secrets, signatures or bodies).
//! - [`layer`]: the same verification as a tower layer ([`layer::require_signed_caller`]) and
//!   the [`layer::SignedCaller`] extractor, so any route can require a signed caller.
//!
//! What is signed: the request the gateway receives — its method, the path and raw query as
//! sent, the body — with the authority taken from the configured `public_url` (never from the
//! `Host` header), so a signature made for one gateway deployment does not verify at another.

pub mod canonical;
pub mod layer;
pub mod nonces;
pub mod pipeline;

use axum::http::StatusCode;

use crate::api_error::ApiError;

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

    /// The HTTP status: 400 for malformed requests, 413 for oversize bodies, 401 otherwise.
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::MissingHeader(_)
            | Rejection::DuplicateHeader(_)
            | Rejection::InvalidHeader(..) => StatusCode::BAD_REQUEST,
            Rejection::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::UNAUTHORIZED,
        }
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

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        ApiError::new(r.status(), r.code(), r.detail())
    }
}
