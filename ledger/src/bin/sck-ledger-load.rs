//! `sck-ledger-load`: a testing and benchmarking aid that appends synthetic events to one org
//! log as fast as it can and prints `receipt <seq> <leaf hash hex>` for every durable commit,
//! flushed line by line. The crash-safety tests SIGKILL it mid-run and then check that every
//! printed receipt is in the log; the multi-process tests run two at once.
//!
//! Usage: `sck-ledger-load --database-url URL --org ORG --key-file FILE [--deployment NAME]
//! [--concurrency N] [--count N] [--checkpoint-every K]`

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sck_ledger::schema::MIGRATIONS;
use sck_ledger::{Event, EventType, Ledger, LedgerError, LedgerKey, Store, WriterConfig};

struct Args {
    database_url: String,
    org: String,
    key_file: String,
    deployment: String,
    concurrency: usize,
    count: u64,
    checkpoint_every: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        database_url: String::new(),
        org: String::new(),
        key_file: String::new(),
        deployment: "test".into(),
        concurrency: 16,
        count: u64::MAX,
        checkpoint_every: 1000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--database-url" => a.database_url = value.clone(),
            "--org" => a.org = value.clone(),
            "--key-file" => a.key_file = value.clone(),
            "--deployment" => a.deployment = value.clone(),
            "--concurrency" => a.concurrency = num()? as usize,
            "--count" => a.count = num()?,
            "--checkpoint-every" => a.checkpoint_every = num()?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.database_url.is_empty() || a.org.is_empty() || a.key_file.is_empty() {
        return Err("--database-url, --org and --key-file are required".into());
    }
    Ok(a)
}

async fn run(a: Args) -> Result<(), LedgerError> {
    let key = LedgerKey::load_file(std::path::Path::new(&a.key_file))?;
    let store = Store::open(&a.database_url, &[MIGRATIONS]).await?;
    let config = WriterConfig {
        deployment: a.deployment.clone(),
        checkpoint_every: a.checkpoint_every,
        ..WriterConfig::default()
    };
    let ledger = Ledger::open(store, key, config).await?;
    let remaining = Arc::new(AtomicU64::new(a.count));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, [u8; 32])>();
    let mut tasks = Vec::new();
    for worker in 0..a.concurrency.max(1) {
        let (ledger, org, tx, remaining) =
            (ledger.clone(), a.org.clone(), tx.clone(), remaining.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                let body = serde_json::json!({
                    "worker": worker, "i": i, "pid": std::process::id(),
                    "input_sha256": "00".repeat(32),
                });
                let r = ledger
                    .append(&org, Event::new(EventType::DecisionAllowed, body)?)
                    .await?;
                let _ = tx.send((r.seq, r.leaf_hash));
                i += 1;
            }
            Ok::<(), LedgerError>(())
        }));
    }
    drop(tx);
    let mut out = std::io::stdout().lock();
    while let Some((seq, hash)) = rx.recv().await {
        let _ = writeln!(out, "receipt {seq} {}", hex::encode(hash));
        let _ = out.flush();
    }
    for t in tasks {
        t.await.map_err(|_| LedgerError::Closed)??;
    }
    ledger.shutdown().await
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sck-ledger-load: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sck-ledger-load: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
