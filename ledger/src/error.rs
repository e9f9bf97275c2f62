//! The one error type of the ledger crate.
//!
//! Messages name what failed and why; they never contain key material, tokens or database
//! passwords (database errors are reported by sqlx without the connection URL).

use crate::merkle::ProofError;

/// Everything that can go wrong in the ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// An event handed to `append` is not acceptable (unknown type, body not an object, ...).
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    /// Leaf bytes that do not decode as a ledger entry.
    #[error("invalid entry: {0}")]
    InvalidEntry(String),
    /// A checkpoint note that does not parse.
    #[error("invalid checkpoint: {0}")]
    InvalidCheckpoint(String),
    /// A signing or verifier key that does not parse.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A note signature that does not verify under any trusted key.
    #[error("signature check failed: {0}")]
    BadSignature(String),
    /// A Merkle proof that could not be built or did not verify.
    #[error("merkle proof: {0}")]
    Proof(#[from] ProofError),
    /// The database refused or failed an operation.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A schema migration failed.
    #[error("migration {component} v{version} ({name}) failed: {source}")]
    Migration {
        component: String,
        version: i64,
        name: String,
        source: sqlx::Error,
    },
    /// The database URL is neither `sqlite:`, a file path nor `postgres://`.
    #[error("unsupported database URL scheme (use a file path, sqlite: or postgres://)")]
    UnsupportedDatabase,
    /// The org log does not exist.
    #[error("no ledger log for org `{0}`")]
    UnknownLog(String),
    /// A request outside the log (seq past the end, size larger than the tree, ...).
    #[error("out of range: {0}")]
    OutOfRange(String),
    /// The stored log contradicts itself (should never happen; refuse to sign on top of it).
    #[error("ledger inconsistency: {0}")]
    Inconsistent(String),
    /// A group commit failed; every append in the batch was rolled back.
    #[error("append failed and was rolled back: {0}")]
    AppendFailed(String),
    /// The appender task has stopped (shut down or failed).
    #[error("the ledger writer has stopped")]
    Closed,
    /// An export archive that cannot be read.
    #[error("export archive: {0}")]
    Export(String),
    /// File-system I/O.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias for the ledger crate.
pub type Result<T, E = LedgerError> = std::result::Result<T, E>;
