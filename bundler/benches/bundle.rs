//! `make bench`: build + sign of the default policy tree, read + verify of a bundle whose
//! data.json is 10 MiB, and one decision on the RVM and on the interpreter (default policy and
//! a 1,000-entry policy). Peak memory is measured by scripts/bench-bundle-memory.sh.

use std::collections::BTreeMap;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use sck_bundler::decision::{EvalLimits, Evaluator, Mode};
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

/// The OPA vector policy with 1,000 action entries in its data.
fn thousand_entry_bundle() -> Bundle {
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/opa-bundles/src");
    let mut files = BTreeMap::new();
    files.insert(
        "sck/authz/authz.rego".to_string(),
        std::fs::read(vectors.join("sck/authz/authz.rego")).unwrap(),
    );
    files.insert(".manifest".to_string(), br#"{"roots": ["sck"]}"#.to_vec());
    let mut actions = serde_json::Map::new();
    for i in 0..1000 {
        actions.insert(
            format!("svc{i:03}.call"),
            serde_json::json!({"min_loa": i % 4 + 1, "scopes": [format!("svc{i:03}:call"), format!("svc{i:03}:*")]}),
        );
    }
    actions.insert(
        "tools.invoke".into(),
        serde_json::json!({"min_loa": 3, "scopes": ["mcp:invoke", "mcp:*"]}),
    );
    let data = serde_json::json!({"actions": actions, "blocked_subjects": {"agent:mallory": true}});
    files.insert(
        "sck/requirements/data.json".to_string(),
        serde_json::to_vec(&data).unwrap(),
    );
    build(
        &SourceTree::from_files(files).unwrap(),
        &BuildOptions::default(),
    )
    .unwrap()
    .bundle
}

fn decisions(c: &mut Criterion) {
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let default = build(
        &SourceTree::from_dir(&policies).unwrap(),
        &BuildOptions::default(),
    )
    .unwrap()
    .bundle;
    let token = serde_json::json!({"sub": "agent:a", "org": "org-1", "loa": 3, "scope": ["mcp:invoke"], "exp": 4102444800u64});
    let cases = [
        (
            "default_policy",
            default,
            None,
            serde_json::json!({"action": "tools.invoke", "resource": {"org": "org-1", "tool": "search.web"}, "token": token, "now": 1767225600}),
        ),
        (
            "1000_entries",
            thousand_entry_bundle(),
            Some("data.sck.authz.decision"),
            serde_json::json!({"action": "svc517.call", "resource": {"org": "org-1"}, "token": {"sub": "agent:a", "org": "org-1", "loa": 3, "scope": ["svc517:call"]}}),
        ),
    ];
    let mut group = c.benchmark_group("decision");
    for (name, bundle, entrypoint, input) in &cases {
        for mode in [Mode::Fastest, Mode::Interpreter] {
            let evaluator =
                Evaluator::new(bundle, *entrypoint, EvalLimits::default(), mode).unwrap();
            assert!(evaluator.decide(input.clone()).allow, "{name} must allow");
            group.bench_function(format!("{name}/{}", evaluator.mode()), |b| {
                b.iter(|| evaluator.decide(input.clone()))
            });
        }
    }
    group.finish();
}

criterion_group!(bundle, benches, decisions);
criterion_main!(bundle);
