//! `make bench` runner for the ledger (a plain `harness = false` bench binary).
//!
//! Measures, on SQLite (a temp file) and on PostgreSQL when `SCK_TEST_DATABASE_URL` is set
//! (`scripts/with-postgres.sh cargo bench -p sck-ledger --bench ledger`):
//! durable appends/s and p50/p99 append latency with 1 and 64 concurrent appenders. How
//! appends, proofs, export and verification scale with the log's size is `benches/cost_curve.rs`.

mod common;

use std::time::{Duration, Instant};

use sck_ledger::Ledger;

use common::{event, open, pct};

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
    });
}
