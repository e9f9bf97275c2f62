//! Appending one service event to an org's ledger: the body checked and canonicalized into
//! an [`Event`], a failure to build it internal, a failure to append it the ledger's.

use sck_ledger::entry::{Event, EventType};
use sck_ledger::Ledger;

use crate::error::{EnforceError, EnforceResult};

/// Appends `kind` with `body` to `org`'s log; returns once it is durable.
pub async fn record(
    ledger: &Ledger,
    org: &str,
    kind: EventType,
    body: serde_json::Value,
) -> EnforceResult<()> {
    let event = Event::new(kind, body).map_err(|e| EnforceError::internal("ledger event", e))?;
    ledger.append(org, event).await?;
    Ok(())
}
