//! Ledger events written by the services: an [`Event`] built from a JSON body and appended to
//! an org's log. Invariant: bodies carry ids, hashes and outcomes, never secrets or token
//! text; a body the ledger refuses is a bug of sck (internal), never the client's fault.

use sck_ledger::entry::{Event, EventType};
use sck_ledger::{Ledger, Receipt};
use serde_json::Value;

use crate::error::{EnforceError, EnforceResult};

/// The event of `kind` with `body`.
pub fn event(kind: EventType, body: Value) -> EnforceResult<Event> {
    Event::new(kind, body).map_err(|e| EnforceError::internal("ledger event", e))
}

/// Appends the event of `kind` with `body` to `org`'s log; returns once it is durable.
pub async fn record(
    ledger: &Ledger,
    org: &str,
    kind: EventType,
    body: Value,
) -> EnforceResult<Receipt> {
    Ok(ledger.append(org, event(kind, body)?).await?)
}
