//! sck's HTTP gateway: the only crate that knows HTTP. The axum server (`sck serve`), the
//! routes and their OpenAPI document, the extractors that say who is calling (`AdminKey`,
//! `SidecarCredential`, `GatewayToken`, `SignedCaller`), the edge's head and body limits, and
//! the enforcement point (`proxy`: MCP and HTTP routes forwarded to their upstreams after a
//! decision), and the one mapping of a service failure (`sck_enforce::error::EnforceError`) to problem+json.
//! The services themselves are `sck-enforce`'s.

pub mod api_error;
pub mod auth;
pub mod edge;
pub mod examples;
pub mod extract;
pub mod openapi;
pub mod proxy;
pub mod respond;
pub mod routes;
pub mod server;
pub mod signed_caller;
pub mod state;
pub mod upstream;
