//! Status reports at the gateway's edge: `sck_wire::opa_status::parse_status` with its
//! refusal as a problem answer (400 `invalid_status`, `From<StatusRefused> for EnforceError`).
//!
//! Invariant: nothing but the code and detail `sck_wire` gives a refusal reaches the client.

use sck_wire::opa_status::{self, StatusReport};
use serde_json::Value;

use crate::error::EnforceError;

/// Validates a status report body (already parsed JSON).
pub fn parse_status(value: &Value) -> Result<StatusReport, EnforceError> {
    Ok(opa_status::parse_status(value)?)
}
