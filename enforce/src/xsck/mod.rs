//! X-SCK signed upstream calls: a caller with a pinned ANS identity signs each HTTP request;
//! the gateway verifies it before anything else runs.
//!
//! - `sck_wire::xsck`: the wire format as pure functions of bytes and keys (headers, string to
//!   sign, timestamp window, signature check, the `Rejection` of each step), tested against
//!   `tests/vectors/x-sck.md`.
//! - [`nonces`]: the replay store, shared by all replicas through the database.
//! - [`pipeline`]: [`pipeline::XsckVerifier`] runs the spec's order — headers and body size →
//!   skew → pin (exists, same org, not revoked) → signature against only the pinned keys →
//!   nonce — and ledgers every outcome (`upstream.verified` / `upstream.rejected` with the
//!   reason code; never secrets, signatures or bodies).
//! - The HTTP gateway's `signed_caller` module runs the same verification as a tower layer and
//!   a `SignedCaller` extractor, so any route can require a signed caller.

pub mod nonces;
pub mod pipeline;
