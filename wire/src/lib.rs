//! sck's wire formats as pure functions: bytes, keys and `now` in, a typed verdict out.
//!
//! - [`canonical`]: RFC 8785 canonical JSON (ledger bodies, document hashes); `sck-ledger`
//!   re-exports it.
//! - [`xsck`]: the X-SCK signed-call format: header parsing, the string to sign, the
//!   timestamp window, the signature check, and the [`xsck::Rejection`] of each step.
//! - [`opa_logs`]: OPA decision-log uploads: bounded gzip decoding, whole-batch validation,
//!   input hashing and masking, the `decision.sidecar` ledger body; refusals are
//!   [`opa_logs::UploadError`].
//! - [`oauth_form`]: OAuth 2 token request bodies and Basic client credentials; refusals are
//!   [`oauth_form::FormRefused`].
//! - [`opa_status`]: OPA status reports and drift; refusals are [`opa_status::StatusRefused`].
//! - [`jsonrpc`]: JSON-RPC 2.0 messages and batches as MCP's Streamable HTTP carries them;
//!   [`sse`]: server-sent events cut from a byte stream as they arrive.
//! - [`token`]: the pure core of gateway-token verification (`check(token, keys, settings,
//!   now)`: header, pinned key and algorithm, signature, registered claims, time), refusals are
//!   [`token::TokenRefusal`].
//! - [`delegation`]: RFC 8693 token exchange as a pure narrowing rule; refusals are
//!   [`delegation::ExchangeRefused`].
//! - [`principal`]: who a verified request is for ([`principal::VerifiedToken`],
//!   [`principal::VerifiedCaller`]), as policies see them.
//!
//! Invariants: nothing here does I/O, reads a clock or knows HTTP — no runtime, database or
//! HTTP crate is in this crate's dependency tree (`scripts/check-walls.sh`, run by `make test`
//! and `make lint`, fails otherwise). Every refusal is a typed value whose `code()` is the
//! stable problem code the gateway answers with; the gateway alone maps it to an HTTP status.

pub mod canonical;
pub mod delegation;
pub mod jsonrpc;
pub mod oauth_form;
pub mod opa_logs;
pub mod opa_status;
pub mod principal;
pub mod sse;
pub mod token;
pub mod xsck;
