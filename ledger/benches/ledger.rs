//! `make bench` runner for the ledger (a plain `harness = false` bench binary).
//!
//! Measures, on SQLite (a temp file) and on PostgreSQL when `SCK_TEST_DATABASE_URL` is set
//! (`scripts/with-postgres.sh cargo bench -p sck-ledger --bench ledger`):
//! durable appends/s and p50/p99 append latency with 1 and 64 concurrent appenders; then, on
//! SQLite, builds a log of `SCK_BENCH_ENTRIES` entries (default 1,000,000) and measures
//! inclusion-proof time at that size, export time, and offline verification of the export.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sck_ledger::export::{verify_export, write_export};
use sck_ledger::merkle::verify_inclusion;
use sck_ledger::schema::MIGRATIONS;
use sck_ledger::{Event, EventType, Ledger, LedgerKey, Store, WriterConfig};

fn key() -> LedgerKey {
    LedgerKey::from_seed("bench.sck.example/k", [7u8; 32]).unwrap()
}

fn event(i: u64) -> Event {
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

async fn open(url: &str) -> (Store, Ledger) {
    let store = Store::open(url, &[MIGRATIONS]).await.unwrap();
    let ledger = Ledger::open(store.clone(), key(), WriterConfig::default())
        .await
        .unwrap();
    (store, ledger)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

/// Appends with `concurrency` tasks for about `secs` seconds; prints rate and latencies.
async fn throughput(label: &str, ledger: &Ledger, org: &str, concurrency: usize, secs: f64) {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let (ledger, org) = (ledger.clone(), org.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                ledger
                    .append(&org, event(t as u64 * 1_000_000 + i))
                    .await
                    .unwrap();
                lat.push(t0.elapsed());
                i += 1;
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    lat.sort_unstable();
    println!(
        "{label:<10} appenders={concurrency:<3} durable appends/s={:>8.0}  p50={:>8.2?}  p99={:>8.2?}  (n={})",
        lat.len() as f64 / elapsed.as_secs_f64(),
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat.len()
    );
}

async fn backend_suite(label: &str, url: &str) {
    let (store, ledger) = open(url).await;
    let org = format!("bench-{}", std::process::id());
    throughput(label, &ledger, &format!("{org}-a"), 1, 3.0).await;
    throughput(label, &ledger, &format!("{org}-b"), 64, 5.0).await;
    ledger.shutdown().await.unwrap();
    store.close().await;
}

async fn million(url: &str, entries: u64, dir: &std::path::Path) {
    let (store, ledger) = open(url).await;
    let org = "big";
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..1024 {
        let (ledger, next) = (ledger.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= entries {
                    return;
                }
                ledger.append(org, event(i)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    ledger.shutdown().await.unwrap();
    let fill = started.elapsed();
    println!(
        "built a {entries}-entry log in {fill:.1?} ({:.0} appends/s with 1024 appenders)",
        entries as f64 / fill.as_secs_f64()
    );
    let reader = ledger.reader();
    let size = reader.size(org).await.unwrap();
    let root = reader.root_at(org, size).await.unwrap();
    let n = 1000u64;
    let started = Instant::now();
    for i in 0..n {
        let seq = (i * 7919 * 104_729) % size;
        let p = reader.inclusion_proof(org, seq, size).await.unwrap();
        verify_inclusion(&p.leaf_hash, seq, size, &p.proof, &root).unwrap();
    }
    println!(
        "inclusion proof at size {size}: {:.2?} per proof (fetch from SQLite + build + verify, mean of {n})",
        started.elapsed() / n as u32
    );
    let path = dir.join("big.tar.gz");
    let started = Instant::now();
    write_export(reader, org, 0, None, std::fs::File::create(&path).unwrap())
        .await
        .unwrap();
    println!(
        "export of {size} entries: {:.1?} ({} MB)",
        started.elapsed(),
        std::fs::metadata(&path).unwrap().len() / 1_000_000
    );
    let started = Instant::now();
    let report = verify_export(&path, vec![key().verifier()], &[], &mut |_, _| {})
        .unwrap()
        .unwrap();
    println!(
        "offline verify of the {}-entry export ({} checkpoints): {:.1?}",
        report.entries,
        report.checkpoints,
        started.elapsed()
    );
    store.close().await;
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is ignored.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let sqlite = dir.path().join("bench.db");
        backend_suite("sqlite", sqlite.to_str().unwrap()).await;
        match std::env::var("SCK_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => backend_suite("postgres", &url).await,
            _ => println!("postgres: skipped: SCK_TEST_DATABASE_URL not set"),
        }
        let entries = std::env::var("SCK_BENCH_ENTRIES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000u64);
        let big = dir.path().join("big.db");
        million(big.to_str().unwrap(), entries, dir.path()).await;
    });
}
