//! sck's gateway crate: the `sck` command-line tool (and, as the server lands, the axum
//! gateway). Library code here wires the `sck-bundler` and `sck-ledger` crates to the outside
//! world; the binary in `main.rs` only calls [`cli::main`].

pub mod cli;
