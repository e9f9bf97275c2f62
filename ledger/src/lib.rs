//! sck-ledger: the verifiable trust ledger.
//!
//! Code map:
//! - [`merkle`]: RFC 9162 hashing, proofs and verifiers. Pure, no I/O.
//! - [`entry`]: entry fields, event types, RFC 8785 leaf bytes, genesis link. Pure.
//! - [`checkpoint`]: C2SP signed checkpoint notes and verifier keys. Pure.
//! - [`keys`]: checkpoint signing keys (generate, load from file/env).
//! - [`error`]: the crate's error enum.

pub mod checkpoint;
pub mod entry;
pub mod error;
pub mod keys;
pub mod merkle;

pub use error::{LedgerError, Result};
