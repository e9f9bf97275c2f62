//! What the ledger's bench binaries share: the signing key, a realistic decision event, and
//! opening a store and a ledger the way the server does (`Store::open`: WAL and
//! `synchronous=FULL` on SQLite; default writer configuration).

use std::time::Duration;

use sck_ledger::schema::MIGRATIONS;
use sck_ledger::{Event, EventType, Ledger, LedgerKey, Store, WriterConfig};

/// The checkpoint key every bench signs with.
pub fn key() -> LedgerKey {
    LedgerKey::from_seed("bench.sck.example/k", [7u8; 32]).unwrap()
}

/// A `decision.allowed` event shaped like the gateway's (ids and hashes only, ~0.5 kB leaf).
pub fn event(i: u64) -> Event {
    Event::new(
        EventType::DecisionAllowed,
        serde_json::json!({
            "decision_id": format!("d-{i}"),
            "bundle": {"org": "acme", "name": "authz", "version": "1.2.3", "sha256": "ab".repeat(32)},
            "entrypoint": "authz/allow", "result": true, "reasons": [],
            "token": {"jti": format!("j-{i}"), "sub": "svc-a", "loa": 2},
            "request": {"method": "GET", "path": "/v1/things"},
            "input_sha256": "cd".repeat(32),
        }),
    )
    .unwrap()
}

/// Opens `url` (running the ledger migrations) and starts a ledger on it.
pub async fn open(url: &str) -> (Store, Ledger) {
    let store = Store::open(url, &[MIGRATIONS]).await.unwrap();
    let ledger = Ledger::open(store.clone(), key(), WriterConfig::default())
        .await
        .unwrap();
    (store, ledger)
}

/// The `p`-quantile (0..=1) of an ascending slice (nearest rank below).
pub fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}
