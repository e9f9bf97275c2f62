//! Compatibility with real OPA 0.60: bundles built and signed by `opa build` verify and
//! evaluate in sck exactly as in OPA, and sck builds the same files and signatures from the
//! same source. Vectors: tests/vectors/opa-bundles (copied from shared/vectors).

use std::path::PathBuf;

use sck_bundler::keys::Algorithm;
use sck_bundler::signing::{decode_unverified, SIGNATURES_FILE};
use sck_bundler::{
    build, policy, BuildOptions, Bundle, BundleError, BundleFile, Limits, SigningConfig,
    SigningKey, SourceTree, VerificationConfig, VerificationKey,
};

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/opa-bundles")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(vectors().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn bundle(variant: &str) -> Bundle {
    Bundle::read(
        &read(&format!("bundle-{variant}.tar.gz")),
        &Limits::default(),
    )
    .unwrap()
}

/// The key each signed variant was signed with, as a verifier holds it.
fn verification_key(variant: &str) -> VerificationKey {
    let material = match variant {
        "hs256" => read("keys/hs256.secret"),
        "es256" => read("keys/es256.pub.pem"),
        _ => read("keys/rs256.pub.pem"),
    };
    VerificationKey::from_material(&material, None).unwrap()
}

fn config(key: VerificationKey, scope: Option<&str>) -> VerificationConfig {
    VerificationConfig {
        keys: [("default".to_string(), key)].into_iter().collect(),
        key_id: Some("default".into()),
        scope: scope.map(str::to_owned),
        exclude_files: vec![],
    }
}

const SIGNED: [(&str, Option<&str>); 4] = [
    ("rs256", None),
    ("es256", None),
    ("hs256", None),
    ("rs256-scoped", Some("sck-prod")),
];

fn signature_error(result: Result<impl std::fmt::Debug, BundleError>) -> String {
    match result {
        Err(BundleError::Signature(message)) => message,
        other => panic!("expected a signature error, got {other:?}"),
    }
}

#[test]
fn every_opa_signed_variant_verifies_with_its_key() {
    for (variant, scope) in SIGNED {
        let verified = bundle(variant)
            .verify(&config(verification_key(variant), scope))
            .unwrap_or_else(|e| panic!("{variant}: {e}"));
        assert_eq!(verified.files, 4, "{variant}");
        assert_eq!(verified.scope.as_deref(), scope, "{variant}");
    }
}

#[test]
fn wrong_keys_are_refused() {
    let other_p256 = SigningKey::generate_es256().unwrap().0;
    let other_p256 =
        VerificationKey::from_material(other_p256.public_key_pem().unwrap().as_bytes(), None)
            .unwrap();
    let cases = [
        ("rs256", verification_key("es256"), "pinned to ES256"),
        ("es256", other_p256, "does not verify"),
        ("es256", verification_key("rs256"), "pinned to RS256"),
        (
            "hs256",
            VerificationKey::from_material(b"not-the-secret", None).unwrap(),
            "does not verify",
        ),
        ("hs256", verification_key("rs256"), "pinned to RS256"),
    ];
    for (variant, key, expected) in cases {
        let message = signature_error(bundle(variant).verify(&config(key, None)));
        assert!(message.contains(expected), "{variant}: {message}");
    }
}

#[test]
fn unsigned_bundle_is_refused_by_verify() {
    assert!(matches!(
        bundle("unsigned").verify(&config(verification_key("rs256"), None)),
        Err(BundleError::Unsigned)
    ));
}

/// Re-reads a signed vector with its files changed by `edit`.
fn tampered(variant: &str, edit: impl FnOnce(&mut Vec<BundleFile>)) -> Bundle {
    let mut files = bundle(variant).all_files();
    edit(&mut files);
    Bundle::from_files(files).unwrap()
}

#[test]
fn changed_added_and_removed_files_are_refused() {
    for (variant, scope) in SIGNED {
        let key = || config(verification_key(variant), scope);

        let changed = tampered(variant, |files| {
            let rego = files
                .iter_mut()
                .find(|f| f.name == "sck/authz/authz.rego")
                .unwrap();
            rego.bytes = [&rego.bytes[..], b"\nextra := true\n"].concat().into();
        });
        let message = signature_error(changed.verify(&key()));
        assert!(
            message.contains("\"sck/authz/authz.rego\" does not match its signed digest"),
            "{message}"
        );

        let data_changed = tampered(variant, |files| {
            let data = files.iter_mut().find(|f| f.name == "data.json").unwrap();
            data.bytes = br#"{"sck":{"requirements":{"actions":{}}}}"#[..].into();
        });
        assert!(signature_error(data_changed.verify(&key())).contains("\"data.json\""));

        let added = tampered(variant, |files| {
            files.push(BundleFile::new(
                "sck/authz/extra.rego",
                b"package sck.authz\nx := 1\n".to_vec(),
            ));
        });
        let message = signature_error(added.verify(&key()));
        assert!(
            message.contains("\"sck/authz/extra.rego\" is not covered"),
            "{message}"
        );

        let removed = tampered(variant, |files| {
            files.retain(|f| f.name != "sck/authz/authz_test.rego");
        });
        let message = signature_error(removed.verify(&key()));
        assert!(
            message.contains("[\"sck/authz/authz_test.rego\"]"),
            "{message}"
        );
        assert!(message.contains("missing from the bundle"), "{message}");

        // Excluding a file removes it from the comparison on both sides.
        let mut excluding = key();
        excluding.exclude_files = vec!["sck/authz/*_test.rego".into()];
        removed.verify(&excluding).unwrap();
    }
}

#[test]
fn formatting_changes_to_structured_files_keep_the_signature_valid() {
    // OPA hashes data.json over its canonical form: whitespace and key order do not matter.
    let reformatted = tampered("rs256", |files| {
        let data = files.iter_mut().find(|f| f.name == "data.json").unwrap();
        let value: serde_json::Value = serde_json::from_slice(&data.bytes).unwrap();
        data.bytes = serde_json::to_vec_pretty(&value).unwrap().into();
    });
    reformatted
        .verify(&config(verification_key("rs256"), None))
        .unwrap();
}

#[test]
fn scopes_must_match_exactly() {
    let scoped = bundle("rs256-scoped");
    for wrong in [None, Some("sck-dev")] {
        let message = signature_error(scoped.verify(&config(verification_key("rs256"), wrong)));
        assert!(message.starts_with("scope mismatch"), "{message}");
    }
    let message = signature_error(
        bundle("rs256").verify(&config(verification_key("rs256"), Some("sck-prod"))),
    );
    assert!(message.starts_with("scope mismatch"), "{message}");
}

#[test]
fn key_is_chosen_by_configured_id_then_kid_then_keyid() {
    let key = verification_key("rs256");
    // No configured id: the header kid ("default") selects the key.
    let mut by_kid = config(key.clone(), None);
    by_kid.key_id = None;
    bundle("rs256").verify(&by_kid).unwrap();
    // The configured id wins over the kid; an unknown configured id is refused.
    let mut unknown = config(key.clone(), None);
    unknown.key_id = Some("other".into());
    let message = signature_error(bundle("rs256").verify(&unknown));
    assert_eq!(message, "no verification key with id \"other\"");
    // A signature naming no key, with no configured id, cannot choose one.
    let mut none = config(key, Some("sck-prod"));
    none.key_id = None;
    let message = signature_error(bundle("rs256-scoped").verify(&none));
    assert!(message.starts_with("no key id"), "{message}");
}

fn vector_source() -> SourceTree {
    SourceTree::from_dir(&vectors().join("src")).unwrap()
}

fn sck_build(key: &[u8], key_id: Option<&str>, claims: serde_json::Value) -> Bundle {
    let options = BuildOptions {
        revision: Some("sck-vector-1".into()),
        signing: Some(SigningConfig {
            key: SigningKey::from_material(key, None).unwrap(),
            key_id: key_id.map(str::to_owned),
            claims: claims.as_object().unwrap().clone(),
        }),
        ..Default::default()
    };
    build(&vector_source(), &options).unwrap().bundle
}

fn signatures_file(bundle: &Bundle) -> Vec<u8> {
    bundle
        .all_files()
        .into_iter()
        .find(|f| f.name == SIGNATURES_FILE)
        .unwrap()
        .bytes
        .to_vec()
}

#[test]
fn sck_builds_the_same_files_and_hashes_as_opa() {
    let ours = build(
        &vector_source(),
        &BuildOptions {
            revision: Some("sck-vector-1".into()),
            ..Default::default()
        },
    )
    .unwrap()
    .bundle;
    let opa = bundle("unsigned");
    let names = |b: &Bundle| {
        let mut n: Vec<String> = b.files.iter().map(|f| f.name.clone()).collect();
        n.sort();
        n
    };
    assert_eq!(names(&ours), names(&opa));
    for file in &opa.files {
        let mine = ours.files.iter().find(|f| f.name == file.name).unwrap();
        assert_eq!(mine.bytes, file.bytes, "{} differs from OPA's", file.name);
    }
    let (_, payload) = decode_unverified(bundle("rs256").signature.as_deref().unwrap()).unwrap();
    for info in payload.files {
        let mine = ours.files.iter().find(|f| f.name == info.name).unwrap();
        assert_eq!(sck_bundler::signing::file_info(mine).unwrap(), info);
    }
}

#[test]
fn sck_signs_exactly_as_opa_for_rs256_and_hs256() {
    let rs256 = sck_build(
        &read("keys/rs256.pem"),
        Some("default"),
        serde_json::json!({}),
    );
    assert_eq!(signatures_file(&rs256), signatures_file(&bundle("rs256")));
    let hs256 = sck_build(
        &read("keys/hs256.secret"),
        Some("default"),
        serde_json::json!({}),
    );
    assert_eq!(signatures_file(&hs256), signatures_file(&bundle("hs256")));
    let scoped = sck_build(
        &read("keys/rs256.pem"),
        None,
        serde_json::json!({"scope": "sck-prod", "iss": "sck-test"}),
    );
    assert_eq!(
        signatures_file(&scoped),
        signatures_file(&bundle("rs256-scoped"))
    );
}

#[test]
fn sck_es256_signatures_verify_with_the_opa_public_key() {
    // ECDSA signatures are randomized in OPA, so only verification can be compared.
    let es256 = sck_build(
        &read("keys/es256.pem"),
        Some("default"),
        serde_json::json!({}),
    );
    assert_eq!(
        VerificationKey::from_material(&read("keys/es256.pub.pem"), None)
            .unwrap()
            .algorithm(),
        Algorithm::ES256
    );
    es256
        .verify(&config(verification_key("es256"), None))
        .unwrap();
}

#[test]
fn evaluation_matches_opa_on_every_recorded_decision() {
    let decisions: Vec<serde_json::Value> =
        serde_json::from_slice(&read("decisions.json")).unwrap();
    assert!(!decisions.is_empty());
    for variant in ["unsigned", "rs256", "es256", "hs256", "rs256-scoped"] {
        let engine = policy::load(&bundle(variant)).unwrap();
        for case in &decisions {
            let result = policy::evaluate(&engine, "data.sck.authz.decision", &case["input"])
                .unwrap()
                .expect("decision is defined");
            assert_eq!(
                result, case["expected"],
                "{variant}: input {}",
                case["input"]
            );
        }
    }
}

#[test]
fn vector_rego_tests_pass() {
    let outcomes = policy::run_tests(
        &bundle("rs256"),
        &sck_bundler::decision::EvalLimits {
            time: policy::DEFAULT_TEST_TIMEOUT,
            ..Default::default()
        },
        &|| false,
    )
    .unwrap();
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes
        .iter()
        .all(|o| o.status == policy::TestStatus::Pass));
}
