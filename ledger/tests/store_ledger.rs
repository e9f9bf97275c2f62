//! Storage and append tests, each run on SQLite and (when `SCK_TEST_DATABASE_URL` is set)
//! PostgreSQL: concurrent appends give one gap-free chain, proofs verify, triggers refuse
//! UPDATE/DELETE, a reopened ledger continues the chain, key rotation keeps old keys.

mod common;

use common::*;
use sck_ledger::checkpoint::{open_checkpoint, Checkpoint};
use sck_ledger::entry::{Entry, EntryHeader};
use sck_ledger::merkle::{leaf_hash, verify_consistency, verify_inclusion};
use sck_ledger::{Event, EventType, LedgerKey, Store};
use serde_json::json;

fn event(i: u64) -> Event {
    Event::new(
        EventType::DecisionAllowed,
        json!({"decision_id": format!("d-{i}"), "input_sha256": "00".repeat(32)}),
    )
    .unwrap()
}

/// Checks chain links and leaf hashes of the whole stored log; returns its size.
async fn check_chain(ledger: &sck_ledger::Ledger, org: &str) -> u64 {
    let reader = ledger.reader();
    let size = reader.size(org).await.unwrap();
    let rows = reader.entries(org, 0, size + 10).await.unwrap();
    assert_eq!(rows.len() as u64, size);
    let mut prev = reader.genesis(org);
    for (i, (seq, leaf, hash)) in rows.iter().enumerate() {
        assert_eq!(*seq, i as u64);
        assert_eq!(leaf_hash(leaf), *hash);
        let h = EntryHeader::parse(leaf).unwrap();
        assert_eq!(h.seq, i as u64);
        assert_eq!(h.prev, hex::encode(prev), "chain broken at {i}");
        prev = *hash;
    }
    size
}

async fn concurrent_appends(url: &str) {
    let org = unique_org("conc");
    let (store, ledger) = open(url, 100).await;
    let mut tasks = Vec::new();
    for t in 0..64u64 {
        let ledger = ledger.clone();
        let org = org.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..20 {
                got.push(ledger.append(&org, event(t * 1000 + i)).await.unwrap());
            }
            got
        }));
    }
    let mut receipts = Vec::new();
    for t in tasks {
        receipts.extend(t.await.unwrap());
    }
    ledger.shutdown().await.unwrap();
    receipts.sort_by_key(|r| r.seq);
    assert_eq!(
        receipts.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (0..1280).collect::<Vec<_>>()
    );
    assert_eq!(check_chain(&ledger, &org).await, 1280);
    let reader = ledger.reader();
    let rows = reader.entries(&org, 0, 2000).await.unwrap();
    for r in &receipts {
        assert_eq!(rows[r.seq as usize].2, r.leaf_hash);
    }
    // checkpoints every 100 entries plus the shutdown one, each signed and consistent
    let cps = reader.checkpoints(&org, 0, u64::MAX).await.unwrap();
    assert!(cps.len() >= 10, "{} checkpoints", cps.len());
    assert_eq!(cps.last().unwrap().size, 1280);
    let v = [test_key().verifier()];
    for pair in cps.windows(2) {
        let (a, _) = open_checkpoint(&pair[0].note, &v).unwrap();
        let (b, _) = open_checkpoint(&pair[1].note, &v).unwrap();
        assert_eq!(a.origin, reader.origin(&org));
        let p = reader
            .consistency_proof(&org, a.size, b.size)
            .await
            .unwrap();
        verify_consistency(a.size, b.size, &p.proof, &a.root, &b.root).unwrap();
    }
    let last: Checkpoint = open_checkpoint(&cps.last().unwrap().note, &v).unwrap().0;
    assert_eq!(reader.root_at(&org, 1280).await.unwrap(), last.root);
    for seq in [0u64, 1, 99, 100, 640, 1023, 1024, 1279] {
        let p = reader.inclusion_proof(&org, seq, 1280).await.unwrap();
        assert_eq!(p.leaf_hash, rows[seq as usize].2);
        verify_inclusion(&p.leaf_hash, seq, 1280, &p.proof, &last.root).unwrap();
    }
    assert!(reader.inclusion_proof(&org, 1280, 1280).await.is_err());
    assert!(reader.inclusion_proof(&org, 0, 1281).await.is_err());
    store.close().await;
}

async fn append_only_triggers(url: &str) {
    let org = unique_org("trig");
    let (store, ledger) = open(url, 1000).await;
    ledger.append(&org, event(1)).await.unwrap();
    ledger.shutdown().await.unwrap();
    let attempts = [
        "UPDATE ledger_entries SET leaf = leaf",
        "DELETE FROM ledger_entries",
        "UPDATE ledger_nodes SET hash = hash",
        "DELETE FROM ledger_nodes",
        "DELETE FROM ledger_checkpoints",
        "UPDATE ledger_checkpoints SET note = note",
    ];
    for sql in attempts {
        let err = match &store {
            Store::Sqlite(p) => sqlx::query(sql).execute(p).await.err(),
            Store::Postgres(p) => sqlx::query(sql).execute(p).await.err(),
        };
        let err = err.unwrap_or_else(|| panic!("`{sql}` was allowed"));
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    if let Store::Postgres(p) = &store {
        assert!(sqlx::query("TRUNCATE ledger_entries")
            .execute(p)
            .await
            .is_err());
    }
    store.close().await;
}

async fn reopen_continues(url: &str) {
    let org = unique_org("reopen");
    let (store, ledger) = open(url, 1000).await;
    for i in 0..5 {
        ledger.append(&org, event(i)).await.unwrap();
    }
    ledger.shutdown().await.unwrap();
    assert!(ledger.append(&org, event(9)).await.is_err());
    store.close().await;
    let (store, ledger) = open(url, 1000).await;
    let r = ledger.append(&org, event(5)).await.unwrap();
    assert_eq!(r.seq, 5);
    // rotate: later checkpoints use the new key; both keys stay published
    let new_key = LedgerKey::generate("ledger.sck.example/test-2").unwrap();
    ledger.rotate_key(new_key.clone()).await.unwrap();
    ledger.append(&org, event(6)).await.unwrap();
    ledger.shutdown().await.unwrap();
    assert_eq!(check_chain(&ledger, &org).await, 7);
    let cps = ledger.reader().checkpoints(&org, 0, 100).await.unwrap();
    assert_eq!(cps.iter().map(|c| c.size).collect::<Vec<_>>(), vec![5, 7]);
    assert_eq!(cps[1].key_name, "ledger.sck.example/test-2");
    open_checkpoint(&cps[1].note, &[new_key.verifier()]).unwrap();
    let keys = ledger.reader().keys().await.unwrap();
    let old = keys
        .iter()
        .find(|k| k.verifier == test_key().verifier().to_string())
        .unwrap();
    assert!(old.valid_until.is_some());
    let new = keys
        .iter()
        .find(|k| k.verifier == new_key.verifier().to_string())
        .unwrap();
    assert!(new.valid_until.is_none());
    let first = ledger.reader().entries(&org, 0, 1).await.unwrap();
    let e = Entry::parse(&first[0].1).unwrap();
    assert_eq!(e.org, org);
    assert_eq!(e.v, 1);
    store.close().await;
}

async fn bad_input_is_refused(url: &str) {
    let (store, ledger) = open(url, 1000).await;
    assert!(ledger.append("bad org/x", event(0)).await.is_err());
    assert!(ledger
        .reader()
        .inclusion_proof("nope-none", 0, 1)
        .await
        .is_err());
    ledger.shutdown().await.unwrap();
    store.close().await;
}

/// A companion row commits with its entry, one batch shares one transaction, and a row that
/// cannot be inserted commits neither the entry nor its batch.
async fn companion_rows_commit_with_their_entries(url: &str) {
    use sck_ledger::companion::{Row, Value};
    let org = unique_org("companion");
    let table: &'static str = Box::leak(format!("side_{}", &org[10..]).into_boxed_str());
    let (store, ledger) = open(url, 1000).await;
    let create =
        format!("CREATE TABLE {table} (id TEXT PRIMARY KEY, n BIGINT NOT NULL, note TEXT)");
    match &store {
        Store::Sqlite(pool) => {
            sqlx::query(sqlx::AssertSqlSafe(create))
                .execute(pool)
                .await
                .unwrap();
        }
        Store::Postgres(pool) => {
            sqlx::query(sqlx::AssertSqlSafe(create))
                .execute(pool)
                .await
                .unwrap();
        }
    }
    let row = |id: &str, n: Option<i64>| {
        let n = n.map_or(Value::Null, Value::Int);
        Row::new(
            table,
            &["id", "n", "note"],
            vec![id.into(), n, None::<String>.into()],
        )
        .unwrap()
    };
    let mut tasks = Vec::new();
    for i in 0..16i64 {
        let ledger = ledger.clone();
        let org = org.clone();
        let row = row(&format!("r{i}"), Some(i));
        tasks.push(tokio::spawn(async move {
            ledger.append(&org, event(i as u64).with_row(row)).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    // NOT NULL violated: the append fails and leaves no entry behind.
    assert!(ledger
        .append(&org, event(99).with_row(row("bad", None)))
        .await
        .is_err());
    let count = format!("SELECT COUNT(*) FROM {table}");
    let rows: i64 = match &store {
        Store::Sqlite(pool) => sqlx::query_scalar(sqlx::AssertSqlSafe(count.clone()))
            .fetch_one(pool)
            .await
            .unwrap(),
        Store::Postgres(pool) => sqlx::query_scalar(sqlx::AssertSqlSafe(count))
            .fetch_one(pool)
            .await
            .unwrap(),
    };
    assert_eq!(rows, 16);
    assert_eq!(check_chain(&ledger, &org).await, 16);
    // The failed transaction cost the writer its connection; the next batch takes another.
    ledger
        .append(&org, event(17).with_row(row("after", Some(17))))
        .await
        .unwrap();
    assert_eq!(check_chain(&ledger, &org).await, 17);
    ledger.shutdown().await.unwrap();
    store.close().await;
}

macro_rules! on_both_backends {
    ($($name:ident),*) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (_dir, url) = super::sqlite_url();
                    super::$name(&url).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(url) = super::postgres_url(stringify!($name)) else { return };
                    super::$name(&url).await;
                }
            )*
        }
    };
}

on_both_backends!(
    concurrent_appends,
    append_only_triggers,
    reopen_continues,
    bad_input_is_refused,
    companion_rows_commit_with_their_entries
);

/// The value of `PRAGMA <name>` on a connection of a freshly opened SQLite store.
async fn sqlite_pragma(name: &str) -> i64 {
    let (_dir, url) = sqlite_url();
    let store = Store::open(&url, &[]).await.unwrap();
    let value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("PRAGMA {name}")))
        .fetch_one(store.sqlite().unwrap())
        .await
        .unwrap();
    store.close().await;
    value
}

/// A multi-row insert's statement journal stays in memory: with SQLite's default file store
/// the writer created and unlinked a temp file every other batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_connections_keep_temp_files_in_memory() {
    // 2 = MEMORY (https://sqlite.org/pragma.html#pragma_temp_store)
    assert_eq!(sqlite_pragma("temp_store").await, 2);
}

/// Commits checkpoint the WAL at half SQLite's default size, so the checkpoint a commit runs
/// stays short (it is what the slowest decisions wait for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_connections_checkpoint_a_small_wal() {
    assert_eq!(sqlite_pragma("wal_autocheckpoint").await, 500);
}
