//! sck's services, with no HTTP in them: gateway tokens, OAuth 2 service accounts and grants, the bundle registry and lifecycle,
//! ANS identities and X-SCK verification, the OPA sidecar fleet and retention, decisions
//! (snapshots, rate limits), the enforcement point's routes and signer (`proxy`), activations, signers, first-start bootstrap, configuration and
//! storage. Every operation fails with one [`error::EnforceError`] (a kind and a stable code);
//! the HTTP gateway (`sck-gateway`) is the only crate that turns one into a status.
//!
//! Invariants: this crate depends on no HTTP crate (`scripts/check-walls.sh`); opening the
//! [`Services`] starts no task of its own — [`Services::spawn_background`] does, so one-shot
//! commands open what they use and nothing runs behind them.

pub mod activations;
pub mod bootstrap;
pub mod budget;
pub mod clock;
pub mod config;
pub mod db;
pub mod decisions;
pub mod error;
pub mod events;
pub mod files;
pub mod fleet;
pub mod identities;
pub mod lifecycle;
pub mod oauth;
pub mod org_names;
pub mod proxy;
pub mod registry;
mod services;
pub mod signers;
pub mod tokens;
pub mod usage;
pub mod xsck;

pub use services::Services;
