//! HTTP routes, one module per area. Handlers stay small: extract, call a service, answer.

pub mod bundle_service;
pub mod bundles;
pub mod credentials;
pub mod decide;
pub mod fleet;
pub mod identities;
pub mod ledger;
pub mod ops;
pub mod tokens;
pub mod verify;
