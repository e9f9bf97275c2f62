//! The one error type of the bundler: every refusal names what was wrong, where, and carries a
//! stable machine-readable [`BundleError::code`] that the HTTP layer and the CLI report as is.

use crate::canonical::JsonError;

/// Everything that can make a bundle or a policy tree unacceptable.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The tarball itself is unreadable (bad gzip, truncated or malformed tar).
    #[error("bundle archive is malformed: {0}")]
    Archive(String),
    /// A tar entry that is not a regular file (symlink, hard link, device, ...).
    #[error("bundle entry {path:?} is a {kind}; only regular files are allowed")]
    EntryType { path: String, kind: &'static str },
    /// A path that is absolute, escapes the bundle root, or is otherwise not a clean relative path.
    #[error("bundle entry {path:?} has an unsafe path: {reason}")]
    UnsafePath { path: String, reason: &'static str },
    /// The same file name appears twice.
    #[error("bundle entry {0:?} appears more than once")]
    DuplicateEntry(String),
    /// A configured limit was exceeded (file count, decompressed size).
    #[error("bundle exceeds the limit of {limit} {what}")]
    LimitExceeded { what: &'static str, limit: u64 },
    /// The decompressed bytes were refused by the caller's budget (shared with other work in
    /// flight): a transient refusal, the same input may be read later.
    #[error("the decompression budget is exhausted by other work in flight; retry later")]
    BudgetExhausted,
    /// A Rego module that is not valid UTF-8.
    #[error("{path}: Rego source is not valid UTF-8")]
    InvalidUtf8 { path: String },
    /// A data, manifest or signatures file that is not acceptable JSON or YAML.
    #[error("{path}: {source}")]
    Json { path: String, source: JsonError },
    #[error("{path}: {message}")]
    Yaml { path: String, message: String },
    /// Data that cannot be merged, or a root `data.json` that is not an object.
    #[error("{0}")]
    Data(String),
    /// The manifest is malformed or its roots are inconsistent.
    #[error("manifest: {0}")]
    Manifest(String),
    /// A package or data path outside the manifest roots.
    #[error("{0}")]
    OutsideRoots(String),
    /// Rego that does not parse or compile, or uses a built-in sck cannot evaluate.
    #[error("{}", .0.join("\n"))]
    Policy(Vec<String>),
    /// A bundle feature sck does not evaluate (for example Wasm modules).
    #[error("{0}")]
    Unsupported(String),
    /// A key that cannot be read or does not fit the requested algorithm.
    #[error("key: {0}")]
    Key(String),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Signing(String),
    /// The signature does not verify, or the signed file list does not match the bundle.
    #[error("signature verification failed: {0}")]
    Signature(String),
    /// A bundle that must be signed has no `.signatures.json`.
    #[error("bundle is not signed (no .signatures.json)")]
    Unsigned,
    /// Filesystem trouble while reading a source tree or writing output.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl BundleError {
    /// A stable, machine-readable code for this kind of failure.
    pub fn code(&self) -> &'static str {
        match self {
            BundleError::Archive(_)
            | BundleError::EntryType { .. }
            | BundleError::UnsafePath { .. }
            | BundleError::DuplicateEntry(_)
            | BundleError::InvalidUtf8 { .. }
            | BundleError::Json { .. }
            | BundleError::Yaml { .. }
            | BundleError::Data(_)
            | BundleError::Manifest(_)
            | BundleError::OutsideRoots(_)
            | BundleError::Unsupported(_) => "bundle_invalid",
            BundleError::LimitExceeded { .. } => "bundle_too_large",
            BundleError::BudgetExhausted => "decompression_busy",
            BundleError::Policy(_) => "policy_invalid",
            BundleError::Key(_) => "key_invalid",
            BundleError::Signing(_) => "signing_failed",
            BundleError::Signature(_) | BundleError::Unsigned => "signature_invalid",
            BundleError::Io { .. } => "io_error",
        }
    }

    pub(crate) fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        BundleError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn signature(message: impl Into<String>) -> Self {
        BundleError::Signature(message.into())
    }
}

/// Result alias used throughout the bundler.
pub type Result<T, E = BundleError> = std::result::Result<T, E>;
