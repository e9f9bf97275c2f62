//! Proofs, roots and frontiers read their Merkle nodes in one statement, on both backends.
//!
//! A proof needs O(log n) stored nodes; reading them one statement each made every proof
//! ~30 round trips to the database (the cost curve in `docs/benchmarks.md`). This counts the
//! statements sqlx reports (tracing target `sqlx::query`) that read `ledger_nodes` while the
//! reader serves each request, with no writer running. One test in this binary, so the global
//! statement counter sees nothing else.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sck_ledger::merkle::{verify_consistency, verify_inclusion};
use sck_ledger::{Event, EventType, LogReader};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

use common::{open, postgres_url, sqlite_url, unique_org};

/// Counts sqlx statements whose text names `ledger_nodes`.
#[derive(Clone, Default)]
struct NodeReads(Arc<AtomicUsize>);

impl NodeReads {
    fn take(&self) -> usize {
        self.0.swap(0, Ordering::SeqCst)
    }
}

#[derive(Default)]
struct Text(String);

impl tracing::field::Visit for Text {
    fn record_debug(&mut self, _: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{value:?} "));
    }
}

impl<S: tracing::Subscriber> Layer<S> for NodeReads {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        if text.0.contains("ledger_nodes") {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

const SIZE: u64 = 1000;

async fn reads_per_request(url: &str, counter: &NodeReads) {
    let org = unique_org("node-reads");
    let (store, ledger) = open(url, 100).await;
    let tasks: Vec<_> = (0..SIZE)
        .map(|i| {
            let (ledger, org) = (ledger.clone(), org.clone());
            tokio::spawn(async move {
                let body = serde_json::json!({ "jti": i });
                let event = Event::new(EventType::TokenIssued, body).unwrap();
                ledger.append(&org, event).await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    ledger.shutdown().await.unwrap();
    let reader = LogReader::new(store.clone(), "test");
    let root = reader.root_at(&org, SIZE).await.unwrap();
    counter.take();

    reader.root_at(&org, SIZE - 3).await.unwrap();
    assert_eq!(counter.take(), 1, "root_at");

    let p = reader.inclusion_proof(&org, 517, SIZE).await.unwrap();
    assert_eq!(counter.take(), 1, "inclusion_proof");
    verify_inclusion(&p.leaf_hash, 517, SIZE, &p.proof, &root).unwrap();

    let c = reader.consistency_proof(&org, 301, SIZE).await.unwrap();
    assert_eq!(counter.take(), 1, "consistency_proof");
    assert_eq!(c.to_root, root);
    verify_consistency(301, SIZE, &c.proof, &c.from_root, &c.to_root).unwrap();

    let f = reader.frontier(&org, SIZE).await.unwrap();
    assert_eq!(counter.take(), 1, "frontier");
    assert_eq!(f.root(), root);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_read_their_nodes_in_one_statement() {
    let counter = NodeReads::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(counter.clone()))
        .unwrap();
    let (_dir, url) = sqlite_url();
    reads_per_request(&url, &counter).await;
    if let Some(url) = postgres_url("proofs_read_their_nodes_in_one_statement") {
        reads_per_request(&url, &counter).await;
    }
}
