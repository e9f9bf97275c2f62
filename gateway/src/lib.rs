//! sck's gateway crate: the axum server (`sck serve`) and the `sck` command-line tool. Library
//! code here wires the `sck-bundler` and `sck-ledger` crates to HTTP and storage; the binary in
//! `main.rs` only calls [`cli::main`].

pub mod activations;
pub mod api_error;
pub mod auth;
pub mod bootstrap;
pub mod budget;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod decisions;
pub mod edge;
pub mod error;
pub mod examples;
pub mod extract;
pub mod files;
pub mod fleet;
pub mod identities;
pub mod lifecycle;
pub mod openapi;
pub mod org_names;
pub mod registry;
pub mod routes;
pub mod server;
pub mod signers;
pub mod state;
pub mod tokens;
pub mod xsck;
