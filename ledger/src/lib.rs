//! sck-ledger: the verifiable trust ledger and the storage layer sck shares.
//!
//! Bird's-eye view: callers hand [`Event`]s to [`Ledger::append`]; a single writer task
//! group-commits them as hash-chained, RFC 8785-encoded entries of a per-org log, extends that
//! log's RFC 9162 Merkle tree, and signs C2SP checkpoints. Auditors export a log and verify
//! it offline with only public keys.
//!
//! Code map:
//! - [`merkle`]: RFC 9162 hashing, proofs and verifiers. Pure, no I/O.
//! - [`entry`]: entry fields, event types, RFC 8785 leaf bytes, genesis link. Pure.
//! - [`companion`]: a row of the caller's table committed in the same transaction as its entry.
//! - [`checkpoint`]: C2SP signed checkpoint notes and verifier keys. Pure.
//! - [`keys`]: checkpoint signing keys (generate, load from file/env).
//! - [`verify`]: streaming verification of a log (export or database). Pure.
//! - [`export`]: writes and reads `.tar.gz` exports; offline verification of an export.
//! - [`store`]: SQLite/PostgreSQL pools and the migration runner every component uses.
//! - [`schema`]: the ledger's tables and append-only triggers.
//! - `log_store`: the ledger's SQL for both backends (crate-private).
//! - `writer`: the group-committing writer task (crate-private).
//! - [`ledger`]: the [`Ledger`] handle — append returns only after durable commit.
//! - [`reader`]: entries, checkpoints, keys and proofs from the store.
//! - [`error`]: the crate's error enum.

pub mod checkpoint;
pub mod companion;
pub mod entry;
pub mod error;
pub mod export;
pub mod keys;
pub mod ledger;
mod log_store;
pub mod merkle;
pub mod reader;
pub mod schema;
pub mod store;
pub mod verify;
mod writer;

/// RFC 8785 canonical JSON, shared with the gateway's pure wire code (it lives in `sck-wire`).
pub use sck_wire::canonical;

pub use entry::{Event, EventType};
pub use error::{LedgerError, Result};
pub use keys::LedgerKey;
pub use ledger::Ledger;
pub use log_store::{KeyRecord, StoredCheckpoint};
pub use reader::{ConsistencyProof, InclusionProof, LogReader};
pub use store::{Backend, Store};
pub use writer::{Receipt, WriterConfig};
