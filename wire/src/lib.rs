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
//! - [`principal`]: who a verified request is for ([`principal::VerifiedToken`],
//!   [`principal::VerifiedCaller`]), as policies see them.
//!
//! Invariants: nothing here does I/O, reads a clock or knows HTTP — no runtime, database or
//! HTTP crate is in this crate's dependency tree (`scripts/check-walls.sh`, run by `make test`
//! and `make lint`, fails otherwise). Every refusal is a typed value whose `code()` is the
//! stable problem code the gateway answers with; the gateway alone maps it to an HTTP status.

pub mod canonical;
pub mod oauth_form;
pub mod opa_logs;
pub mod opa_status;
pub mod principal;
pub mod xsck;
