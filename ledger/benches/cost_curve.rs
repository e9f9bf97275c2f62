//! The ledger's cost curve: how appends, proofs, export and offline verification scale with
//! the size of one org log (a plain `harness = false` bench binary).
//!
//! Grows one org log through the public [`Ledger::append`] with `SCK_CURVE_APPENDERS`
//! concurrent appenders (default 64, so the writer group-commits as it does in the server) on
//! SQLite opened as the server opens it (WAL, `synchronous=FULL`), or on the database named by
//! `SCK_CURVE_DATABASE_URL` (`scripts/bench-ledger-curve.sh` passes a throw-away PostgreSQL).
//! At every size 1, 2 and 5 × 10^k from 10^4 up to `SCK_CURVE_MAX` (default 10^6; `1e7` or
//! a plain integer) it stops appending and records:
//! - the append rate over the window since the previous size and its append latencies;
//! - median and p99 time of `SCK_CURVE_PROOFS` (default 1000) inclusion proofs of random leaves
//!   and consistency proofs from random older sizes, through [`sck_ledger::LogReader`] (each
//!   proof is then verified, outside the timing);
//! - [`write_export`] of the whole log and [`verify_export`] of that file (what
//!   `sck ledger verify <export> --key ...` runs), as entries/s, up to `SCK_CURVE_EXPORT_MAX`
//!   entries (default: every size; the export spools its entries uncompressed, ~0.6 kB each,
//!   so a 10^7 export needs ~6 GB of temporary disk on top of the database).
//!
//! Output (under `SCK_CURVE_OUT`, default `<target>/ledger-curve`): one JSON line per size on
//! stdout and in `<label>.jsonl`, and the append rate sampled every half second while the log
//! grows in `<label>-appends.csv`; `<label>` is `SCK_CURVE_LABEL` (default: the backend). The
//! SQLite database and the export are deleted at the end.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sck_ledger::export::{verify_export, write_export};
use sck_ledger::merkle::{verify_consistency, verify_inclusion};
use sck_ledger::{Backend, Ledger};

use common::{event, key, open, pct};

const ORG: &str = "curve";

struct Config {
    max: u64,
    export_max: u64,
    appenders: usize,
    proofs: usize,
    out: PathBuf,
    database_url: Option<String>,
    label: Option<String>,
}

/// `1e7`, `10000000` or `10_000_000`.
fn parse_count(v: &str) -> Option<u64> {
    let v = v.replace('_', "");
    v.parse::<u64>()
        .ok()
        .or_else(|| v.parse::<f64>().ok().map(|f| f as u64))
}

fn env_count(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => parse_count(&v).unwrap_or_else(|| panic!("{name}={v} is not a count")),
        Err(_) => default,
    }
}

/// `<target>/ledger-curve`: this binary is `<target>/<profile>/deps/cost_curve-<hash>`.
fn default_out() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .nth(3)
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
        .join("ledger-curve")
}

impl Config {
    fn from_env() -> Config {
        Config {
            max: env_count("SCK_CURVE_MAX", 1_000_000),
            export_max: env_count("SCK_CURVE_EXPORT_MAX", u64::MAX),
            appenders: env_count("SCK_CURVE_APPENDERS", 64) as usize,
            proofs: env_count("SCK_CURVE_PROOFS", 1000) as usize,
            out: std::env::var_os("SCK_CURVE_OUT").map_or_else(default_out, PathBuf::from),
            database_url: std::env::var("SCK_CURVE_DATABASE_URL")
                .ok()
                .filter(|u| !u.is_empty()),
            label: std::env::var("SCK_CURVE_LABEL")
                .ok()
                .filter(|l| !l.is_empty()),
        }
    }

    /// 1, 2 and 5 × 10^k from 10^4 up to `max`, and `max` itself.
    fn sizes(&self) -> Vec<u64> {
        let mut sizes: Vec<u64> = std::iter::successors(Some(10_000u64), |s| s.checked_mul(10))
            .flat_map(|decade| [decade, 2 * decade, 5 * decade])
            .take_while(|s| *s <= self.max)
            .collect();
        if sizes.last() != Some(&self.max) {
            sizes.push(self.max);
        }
        sizes
    }
}

/// What one growth window measured.
struct Window {
    entries: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

/// Appends entries `from..to` with `appenders` tasks; samples the rate into `samples`.
async fn grow(
    ledger: &Ledger,
    from: u64,
    to: u64,
    appenders: usize,
    samples: &mut Vec<(u64, f64)>,
) -> Window {
    let next = Arc::new(AtomicU64::new(from));
    let done = Arc::new(AtomicU64::new(from));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..appenders {
        let (ledger, next, done) = (ledger.clone(), next.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= to {
                    return lat;
                }
                let t0 = Instant::now();
                ledger.append(ORG, event(i)).await.unwrap();
                lat.push(t0.elapsed());
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let sampler = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut out = Vec::new();
            let (mut last_n, mut last_t) = (from, Instant::now());
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            tick.tick().await;
            loop {
                tick.tick().await;
                let (n, t) = (done.load(Ordering::Relaxed), Instant::now());
                if n > last_n {
                    out.push((n, (n - last_n) as f64 / (t - last_t).as_secs_f64()));
                }
                if n >= to {
                    return out;
                }
                (last_n, last_t) = (n, t);
            }
        })
    };
    let mut latencies = Vec::with_capacity((to - from) as usize);
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    samples.extend(sampler.await.unwrap());
    latencies.sort_unstable();
    Window {
        entries: to - from,
        elapsed,
        latencies,
    }
}

/// Median and p99 in microseconds, and the mean proof length.
struct ProofTimes {
    p50_us: f64,
    p99_us: f64,
    mean_hashes: f64,
}

fn summarize(mut times: Vec<Duration>, hashes: usize) -> ProofTimes {
    times.sort_unstable();
    let n = times.len();
    ProofTimes {
        p50_us: pct(&times, 0.5).as_secs_f64() * 1e6,
        p99_us: pct(&times, 0.99).as_secs_f64() * 1e6,
        mean_hashes: hashes as f64 / n as f64,
    }
}

async fn inclusion_proofs(ledger: &Ledger, size: u64, n: usize, rng: &mut StdRng) -> ProofTimes {
    let reader = ledger.reader();
    let root = reader.root_at(ORG, size).await.unwrap();
    let (mut times, mut hashes) = (Vec::with_capacity(n), 0);
    for _ in 0..n {
        let seq = rng.gen_range(0..size);
        let t0 = Instant::now();
        let p = reader.inclusion_proof(ORG, seq, size).await.unwrap();
        times.push(t0.elapsed());
        verify_inclusion(&p.leaf_hash, seq, size, &p.proof, &root).unwrap();
        hashes += p.proof.len();
    }
    summarize(times, hashes)
}

async fn consistency_proofs(ledger: &Ledger, size: u64, n: usize, rng: &mut StdRng) -> ProofTimes {
    let reader = ledger.reader();
    let root = reader.root_at(ORG, size).await.unwrap();
    let (mut times, mut hashes) = (Vec::with_capacity(n), 0);
    for _ in 0..n {
        let from = rng.gen_range(1..size);
        let t0 = Instant::now();
        let p = reader.consistency_proof(ORG, from, size).await.unwrap();
        times.push(t0.elapsed());
        assert_eq!(p.to_root, root);
        verify_consistency(from, size, &p.proof, &p.from_root, &p.to_root).unwrap();
        hashes += p.proof.len();
    }
    summarize(times, hashes)
}

/// What exporting the whole log and verifying that export cost.
struct Exported {
    export_seconds: f64,
    bytes: u64,
    verify_seconds: f64,
}

/// [`write_export`] of the whole log to `path`, then [`verify_export`] of it; deletes it.
async fn export_and_verify(ledger: &Ledger, size: u64, path: &Path) -> Exported {
    let t0 = Instant::now();
    let file = std::fs::File::create(path).unwrap();
    write_export(ledger.reader(), ORG, 0, None, file)
        .await
        .unwrap();
    let export_seconds = t0.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(path).unwrap().len();
    let t0 = Instant::now();
    let report = verify_export(path, vec![key().verifier()], &[], &mut |_, _| {})
        .unwrap()
        .unwrap_or_else(|f| panic!("export of size {size} does not verify: {f}"));
    let verify_seconds = t0.elapsed().as_secs_f64();
    assert_eq!((report.entries, report.signed_size), (size, size));
    std::fs::remove_file(path).unwrap();
    Exported {
        export_seconds,
        bytes,
        verify_seconds,
    }
}

/// Bytes of the SQLite database with its WAL (0 on PostgreSQL).
fn sqlite_bytes(db: Option<&Path>) -> u64 {
    let Some(db) = db else { return 0 };
    ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", db.display())).ok())
        .map(|m| m.len())
        .sum()
}

fn remove_sqlite(db: &Path) {
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{s}", db.display()));
    }
}

fn main() {
    let cfg = Config::from_env();
    std::fs::create_dir_all(&cfg.out).unwrap();
    let sqlite_db = cfg.database_url.is_none().then(|| cfg.out.join("curve.db"));
    if let Some(db) = &sqlite_db {
        remove_sqlite(db);
    }
    let url = cfg
        .database_url
        .clone()
        .unwrap_or_else(|| sqlite_db.as_ref().unwrap().to_str().unwrap().to_owned());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (store, ledger) = open(&url).await;
        let backend = match store.backend() {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        let label = cfg.label.clone().unwrap_or_else(|| backend.to_owned());
        assert_eq!(
            ledger.reader().size(ORG).await.unwrap(),
            0,
            "the curve starts from an empty `{ORG}` log: use a fresh database"
        );
        let jsonl_path = cfg.out.join(format!("{label}.jsonl"));
        let csv_path = cfg.out.join(format!("{label}-appends.csv"));
        let mut jsonl = String::new();
        let mut samples = Vec::new();
        let mut rng = StdRng::seed_from_u64(9162);
        let export = cfg.out.join(format!("{label}-export.tar.gz"));
        let mut size = 0u64;
        eprintln!(
            "cost curve on {backend} ({url}), {} appenders, sizes {:?}",
            cfg.appenders,
            cfg.sizes()
        );
        for target in cfg.sizes() {
            let w = grow(&ledger, size, target, cfg.appenders, &mut samples).await;
            size = target;
            // Sign a checkpoint at exactly this size so the export ends on one.
            ledger.checkpoint(ORG).await.unwrap();
            let inclusion = inclusion_proofs(&ledger, size, cfg.proofs, &mut rng).await;
            let consistency = consistency_proofs(&ledger, size, cfg.proofs, &mut rng).await;

            let exported = if size <= cfg.export_max {
                Some(export_and_verify(&ledger, size, &export).await)
            } else {
                None
            };
            let field = |f: &dyn Fn(&Exported) -> f64| exported.as_ref().map(f);

            let line = serde_json::json!({
                "backend": backend,
                "size": size,
                "appenders": cfg.appenders,
                "window_entries": w.entries,
                "window_seconds": w.elapsed.as_secs_f64(),
                "append_per_s": w.entries as f64 / w.elapsed.as_secs_f64(),
                "append_p50_ms": pct(&w.latencies, 0.5).as_secs_f64() * 1e3,
                "append_p99_ms": pct(&w.latencies, 0.99).as_secs_f64() * 1e3,
                "proofs": cfg.proofs,
                "inclusion_p50_us": inclusion.p50_us,
                "inclusion_p99_us": inclusion.p99_us,
                "inclusion_hashes": inclusion.mean_hashes,
                "consistency_p50_us": consistency.p50_us,
                "consistency_p99_us": consistency.p99_us,
                "consistency_hashes": consistency.mean_hashes,
                "export_seconds": field(&|e| e.export_seconds),
                "export_per_s": field(&|e| size as f64 / e.export_seconds),
                "export_bytes": field(&|e| e.bytes as f64),
                "verify_seconds": field(&|e| e.verify_seconds),
                "verify_per_s": field(&|e| size as f64 / e.verify_seconds),
                "db_bytes": sqlite_bytes(sqlite_db.as_deref()),
            })
            .to_string();
            println!("{line}");
            jsonl.push_str(&line);
            jsonl.push('\n');
            std::fs::write(&jsonl_path, &jsonl).unwrap();
            let mut csv = String::from("size,append_per_s\n");
            for (n, rate) in &samples {
                csv.push_str(&format!("{n},{rate:.1}\n"));
            }
            std::fs::write(&csv_path, csv).unwrap();
        }
        ledger.shutdown().await.unwrap();
        store.close().await;
        eprintln!("wrote {} and {}", jsonl_path.display(), csv_path.display());
    });
    if let Some(db) = &sqlite_db {
        remove_sqlite(db);
    }
}
