//! Crash safety and multi-process appends, on SQLite and (with `SCK_TEST_DATABASE_URL`)
//! PostgreSQL, using the `sck-ledger-load` helper binary as the appending child process.
//!
//! - crash: the child appends under load (32 concurrent appenders) and is SIGKILLed mid-run;
//!   after a restart, every receipt it printed is in the log with the same leaf hash, new
//!   appends continue the chain, and the whole log verifies.
//! - two processes: two children append to the same org log at once; the result is one
//!   gap-free chain holding every receipt of both, and it verifies.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sck_ledger::export::verify_database;
use sck_ledger::{Event, EventType};

fn key_file(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("ledger.key");
    std::fs::write(&p, test_key().to_private_text()).unwrap();
    p
}

fn spawn_load(url: &str, org: &str, key: &std::path::Path, count: Option<u64>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sck-ledger-load"));
    cmd.args(["--database-url", url, "--org", org, "--deployment", "test"])
        .arg("--key-file")
        .arg(key)
        .args(["--concurrency", "32", "--checkpoint-every", "500"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(n) = count {
        cmd.args(["--count", &n.to_string()]);
    }
    cmd.spawn().unwrap()
}

fn parse_receipt(line: &str) -> (u64, String) {
    let mut parts = line.split(' ');
    assert_eq!(parts.next(), Some("receipt"), "{line}");
    let seq = parts.next().unwrap().parse().unwrap();
    (seq, parts.next().unwrap().to_owned())
}

/// Checks every receipt against the stored log and verifies the whole log.
async fn check_log(url: &str, org: &str, receipts: &HashMap<u64, String>) -> u64 {
    let (store, ledger) = open(url, 500).await;
    // restart appends continue the chain
    for i in 0..3 {
        let ev = Event::new(
            EventType::KeyCreated,
            serde_json::json!({"after_restart": i}),
        )
        .unwrap();
        ledger.append(org, ev).await.unwrap();
    }
    ledger.shutdown().await.unwrap();
    let reader = ledger.reader();
    let size = reader.size(org).await.unwrap();
    let rows = reader.entries(org, 0, size).await.unwrap();
    assert_eq!(rows.len() as u64, size);
    for (seq, hash) in receipts {
        let row = rows
            .get(*seq as usize)
            .unwrap_or_else(|| panic!("acknowledged seq {seq} lost"));
        assert_eq!(&hex::encode(row.2), hash, "seq {seq} changed");
    }
    let out = verify_database(reader, org, vec![test_key().verifier()], &mut |_, _| {})
        .await
        .unwrap();
    let report = out.unwrap_or_else(|f| panic!("log does not verify: {f}"));
    assert_eq!(report.entries, size);
    assert_eq!(report.unsigned_tail(), 0);
    store.close().await;
    size
}

async fn sigkill_under_load(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let org = unique_org("crash");
    let mut receipts = HashMap::new();
    for round in 0..2 {
        let mut child = spawn_load(url, &org, &key, None);
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        });
        // let it run under load for a while, then kill it without warning
        std::thread::sleep(Duration::from_millis(1200 + 500 * round));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        assert!(
            lines.len() > 50,
            "child only acknowledged {} entries",
            lines.len()
        );
        for l in lines {
            let (seq, hash) = parse_receipt(&l);
            assert!(
                receipts.insert(seq, hash).is_none(),
                "seq {seq} acknowledged twice"
            );
        }
        let size = check_log(url, &org, &receipts).await;
        // entries appended after the restart are not in `receipts`; fine
        assert!(size as usize >= receipts.len());
    }
}

async fn two_processes_one_log(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let org = unique_org("twoproc");
    let started = Instant::now();
    let children: Vec<Child> = (0..2)
        .map(|_| spawn_load(url, &org, &key, Some(1500)))
        .collect();
    let mut receipts = HashMap::new();
    for mut child in children {
        let out = child.stdout.take().unwrap();
        let lines: Vec<String> = BufReader::new(out).lines().map_while(Result::ok).collect();
        assert!(child.wait().unwrap().success());
        assert_eq!(lines.len(), 1500);
        for l in lines {
            let (seq, hash) = parse_receipt(&l);
            assert!(
                receipts.insert(seq, hash).is_none(),
                "seq {seq} given to two appends"
            );
        }
    }
    println!(
        "two processes appended 3000 entries in {:?}",
        started.elapsed()
    );
    assert_eq!(receipts.len(), 3000);
    assert!(
        (0..3000).all(|s| receipts.contains_key(&s)),
        "gap in the chain"
    );
    assert_eq!(check_log(url, &org, &receipts).await, 3003);
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

on_both_backends!(sigkill_under_load, two_processes_one_log);
