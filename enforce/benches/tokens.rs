//! Gateway token costs in-process (criterion): verification per request from the cache and
//! uncached (EdDSA and HS256), and issuing (sign + `issued_tokens` insert + durable ledger
//! append) on SQLite. HTTP throughput (tokens issued/s, introspections/s) is measured by
//! `scripts/bench-tokens.sh` with wrk.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use sck_enforce::config::Config;
use sck_enforce::tokens::{IssueRequest, TokenService};
use sck_ledger::{Ledger, LedgerKey, Store, WriterConfig};

struct Bench {
    _dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    service: TokenService,
    ed_issuer: String,
    hs_issuer: String,
}

fn setup() -> Bench {
    // SAFETY of set_var: single-threaded at this point (before the runtime starts).
    std::env::set_var(
        "SCK_TOKENS_HS256_SECRET",
        "bench-shared-secret-of-at-least-32-bytes!",
    );
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (service, ed_issuer, hs_issuer) = runtime.block_on(async {
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            database_url: dir.path().join("sck.db").display().to_string(),
            ..Config::default()
        };
        let store = Store::open(
            &config.database_url,
            &[
                sck_ledger::schema::MIGRATIONS,
                sck_enforce::tokens::schema::MIGRATIONS,
            ],
        )
        .await
        .unwrap();
        let ledger = Ledger::open(
            store.clone(),
            LedgerKey::generate("bench-ledger").unwrap(),
            WriterConfig::default(),
        )
        .await
        .unwrap();
        let service = TokenService::open(store, ledger, &config).await.unwrap();
        let scopes = vec!["mcp:invoke".to_owned()];
        let ed = service
            .create_issuer("default", "ed", 4, &scopes, None)
            .await
            .unwrap();
        let hs = service
            .create_issuer("default", "hs", 4, &scopes, Some("HS256"))
            .await
            .unwrap();
        (service, ed.id, hs.id)
    });
    Bench {
        _dir: dir,
        runtime,
        service,
        ed_issuer,
        hs_issuer,
    }
}

fn request(issuer: &str) -> IssueRequest {
    IssueRequest {
        organization_id: "default".into(),
        artifact_id: "agent-7".into(),
        artifact_type: "mcp-client".into(),
        loa_level: 3,
        scope: vec!["mcp:invoke".into()],
        issuer_id: issuer.into(),
        subject: None,
        ttl_seconds: None,
    }
}

fn tokens(c: &mut Criterion) {
    let b = setup();
    let rt = &b.runtime;
    let service = &b.service;
    for (name, issuer) in [("EdDSA", &b.ed_issuer), ("HS256", &b.hs_issuer)] {
        let token = rt
            .block_on(service.issue(&request(issuer), "bench"))
            .unwrap()
            .token;
        rt.block_on(service.verify(&token)).unwrap();
        c.bench_function(&format!("verify {name} cached"), |bench| {
            bench.iter(|| black_box(rt.block_on(service.verify(black_box(&token))).unwrap()))
        });
        c.bench_function(&format!("verify {name} uncached"), |bench| {
            bench.iter(|| {
                service.clear_cache();
                black_box(rt.block_on(service.verify(black_box(&token))).unwrap())
            })
        });
    }
    let mut group = c.benchmark_group("issue");
    group.measurement_time(Duration::from_secs(8));
    for (name, issuer) in [("EdDSA", &b.ed_issuer), ("HS256", &b.hs_issuer)] {
        group.bench_function(
            format!("issue {name} (sign + insert + durable ledger append)"),
            |bench| {
                bench.iter(|| {
                    black_box(
                        rt.block_on(service.issue(&request(issuer), "bench"))
                            .unwrap(),
                    )
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, tokens);
criterion_main!(benches);
