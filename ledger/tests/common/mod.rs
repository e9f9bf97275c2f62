//! Shared helpers for the ledger integration tests: backends, keys, unique org names.
#![allow(dead_code)]

use sck_ledger::{Ledger, LedgerKey, Store, WriterConfig};

/// The PostgreSQL URL from `SCK_TEST_DATABASE_URL`, or `None` after printing a skip line.
pub fn postgres_url(test: &str) -> Option<String> {
    match std::env::var("SCK_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("{test}: skipped: SCK_TEST_DATABASE_URL not set");
            None
        }
    }
}

/// A fresh SQLite database file in a temporary directory (kept alive by the returned guard).
pub fn sqlite_url() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("sck.db").to_str().unwrap().to_owned();
    (dir, url)
}

/// An org name no other test (or test run) uses, so PostgreSQL tests can share one database.
pub fn unique_org(prefix: &str) -> String {
    use rand::Rng;
    format!("{prefix}-{:016x}", rand::thread_rng().gen::<u64>())
}

/// The deterministic test key of the shared vectors.
pub fn test_key() -> LedgerKey {
    LedgerKey::from_seed("ledger.sck.example/test", core::array::from_fn(|i| i as u8)).unwrap()
}

/// Writer settings with a small checkpoint interval K.
pub fn config(every: u64) -> WriterConfig {
    WriterConfig {
        deployment: "test".into(),
        checkpoint_every: every,
        ..WriterConfig::default()
    }
}

/// Opens a store with the ledger schema and a ledger on it.
pub async fn open(url: &str, every: u64) -> (Store, Ledger) {
    let store = Store::open(url, &[sck_ledger::schema::MIGRATIONS])
        .await
        .unwrap();
    let ledger = Ledger::open(store.clone(), test_key(), config(every))
        .await
        .unwrap();
    (store, ledger)
}
