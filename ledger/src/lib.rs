//! sck-ledger: the verifiable trust ledger.
//!
//! Code map:
//! - [`merkle`]: RFC 9162 hashing, proofs and verifiers. Pure, no I/O.
pub mod merkle;
