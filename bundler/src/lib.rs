//! sck's bundler: turns a policy source tree into an OPA-compatible bundle, signs it the way
//! OPA verifies it, and reads, verifies, checks and tests bundles from untrusted bytes.
//!
//! Pure functions of bytes and keys throughout: no network, no database. The gateway and the
//! `sck` CLI wire these to storage and HTTP.

pub mod build;
pub mod builtins;
pub mod bundle;
pub mod canonical;
pub mod data;
pub mod decision;
pub mod error;
pub mod keys;
pub mod manifest;
pub mod policy;
pub mod roots;
pub mod signing;
pub mod source;
pub mod tarball;

pub use build::{build, sign_bundle, BuildOptions, Built, SckIdentity};
pub use bundle::Bundle;
pub use error::{BundleError, Result};
pub use keys::{SigningKey, VerificationKey};
pub use signing::{SigningConfig, VerificationConfig, VerifiedSignature};
pub use source::SourceTree;
pub use tarball::{BundleFile, Limits};

/// SHA-256 of a byte string, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
