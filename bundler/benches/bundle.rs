//! `make bench`: build + sign of the default policy tree, and read + verify of a bundle whose
//! data.json is 10 MiB. Peak memory is measured separately by scripts/bench-bundle-memory.sh.

use std::collections::BTreeMap;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use sck_bundler::{
    build, BuildOptions, Bundle, Limits, SigningConfig, SigningKey, SourceTree, VerificationConfig,
    VerificationKey,
};

fn es256() -> (SigningConfig, VerificationConfig) {
    let (key, _) = SigningKey::generate_es256().unwrap();
    let public =
        VerificationKey::from_material(key.public_key_pem().unwrap().as_bytes(), None).unwrap();
    let signing = SigningConfig {
        key,
        key_id: Some("bench".into()),
        claims: Default::default(),
    };
    let verification = VerificationConfig {
        keys: [("bench".to_string(), public)].into_iter().collect(),
        ..Default::default()
    };
    (signing, verification)
}

/// A tree with one module and a data.json of about `bytes` bytes.
fn large_tree(bytes: usize) -> SourceTree {
    let mut data = String::from("{\"entries\": {");
    let mut i = 0;
    while data.len() < bytes {
        if i > 0 {
            data.push(',');
        }
        data.push_str(&format!(
            "\"svc{i:07}\": {{\"min_loa\": {}, \"scopes\": [\"svc{i:07}:call\", \"svc{i:07}:*\"], \"owner\": \"team-{}\"}}",
            i % 4 + 1,
            i % 97
        ));
        i += 1;
    }
    data.push_str("}}");
    let mut files = BTreeMap::new();
    files.insert("big/data.json".to_string(), data.into_bytes());
    files.insert(
        "big/p.rego".to_string(),
        b"package big\n\nimport rego.v1\n\nallow if data.big.entries[input.svc]\n".to_vec(),
    );
    SourceTree::from_files(files).unwrap()
}

fn benches(c: &mut Criterion) {
    let (signing, verification) = es256();
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let source = SourceTree::from_dir(&policies).unwrap();
    let options = BuildOptions {
        signing: Some(signing.clone()),
        ..Default::default()
    };
    c.bench_function("build_and_sign_default_policies_es256", |b| {
        b.iter(|| build(&source, &options).unwrap())
    });

    let big = build(&large_tree(10 << 20), &options).unwrap();
    let mut group = c.benchmark_group("verify_10mib_data");
    group.sample_size(10);
    group.bench_function("read_and_verify", |b| {
        b.iter(|| {
            let bundle = Bundle::read(&big.tarball, &Limits::default()).unwrap();
            bundle.verify(&verification).unwrap()
        })
    });
    group.finish();
}

criterion_group!(bundle, benches);
criterion_main!(bundle);
