//! Property tests: arbitrary small trees round-trip build → read → verify, and no corruption of
//! a signed bundle ever verifies as something other than what was signed, or panics.

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use proptest::prelude::*;
use sck_bundler::{
    build, policy, BuildOptions, Built, Bundle, BundleFile, Limits, SigningConfig, SourceTree,
    VerificationConfig,
};

const SECRET: &[u8] = b"property-test-secret";

fn signing() -> SigningConfig {
    common::hmac_signing(SECRET)
}

fn verification() -> VerificationConfig {
    common::hmac_verification(SECRET)
}

/// A small policy tree: modules `app.m<i>` each defining `value`, and data documents under
/// `app/d<j>` with arbitrary keys and scalar values.
#[derive(Debug, Clone)]
struct Tree {
    modules: Vec<i64>,
    data: Vec<BTreeMap<String, serde_json::Value>>,
}

fn scalar() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        any::<i64>().prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        "[ -~]{0,12}".prop_map(serde_json::Value::from),
        "\\PC{0,6}".prop_map(serde_json::Value::from),
    ]
}

fn tree() -> impl Strategy<Value = Tree> {
    (
        prop::collection::vec(any::<i64>(), 1..4),
        prop::collection::vec(
            prop::collection::btree_map("[a-z_]{1,8}", scalar(), 0..5),
            0..3,
        ),
    )
        .prop_map(|(modules, data)| Tree { modules, data })
}

fn source(tree: &Tree) -> SourceTree {
    let mut files = BTreeMap::new();
    files.insert(".manifest".into(), br#"{"roots": ["app"]}"#.to_vec());
    for (i, value) in tree.modules.iter().enumerate() {
        files.insert(
            format!("app/m{i}/policy.rego"),
            format!("package app.m{i}\n\nvalue := {value}\n").into_bytes(),
        );
    }
    for (j, doc) in tree.data.iter().enumerate() {
        files.insert(
            format!("app/d{j}/data.json"),
            serde_json::to_vec_pretty(doc).unwrap(),
        );
    }
    SourceTree::from_files(files).unwrap()
}

fn signed_build(tree: &Tree) -> Built {
    build(
        &source(tree),
        &BuildOptions {
            revision: Some("prop".into()),
            signing: Some(signing()),
            ..Default::default()
        },
    )
    .unwrap()
}

/// One fixed signed bundle to corrupt.
fn reference() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut doc = BTreeMap::new();
        doc.insert("limit".to_string(), serde_json::json!(10));
        doc.insert("owner".to_string(), serde_json::json!("team-a"));
        signed_build(&Tree {
            modules: vec![1, 2],
            data: vec![doc],
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn build_read_verify_round_trips(tree in tree()) {
        let built = signed_build(&tree);
        prop_assert_eq!(&built.tarball, &signed_build(&tree).tarball, "build is not reproducible");
        let read = Bundle::read(&built.tarball, &Limits::default()).unwrap();
        let verified = read.verify(&verification()).unwrap();
        prop_assert_eq!(verified.files, read.files.len());
        prop_assert_eq!(read.all_files(), built.bundle.all_files());

        let engine = policy::load(&read).unwrap();
        for (i, value) in tree.modules.iter().enumerate() {
            let got = policy::evaluate(&engine, &format!("data.app.m{i}.value"), &serde_json::json!({}))
                .unwrap();
            prop_assert_eq!(got, Some(serde_json::json!(value)));
        }
        let data: serde_json::Value = serde_json::from_slice(&read.data.json_text().unwrap()).unwrap();
        for (j, doc) in tree.data.iter().enumerate() {
            prop_assert_eq!(&data["app"][format!("d{j}")], &serde_json::to_value(doc).unwrap());
        }
    }

    #[test]
    fn raw_corruption_never_verifies_as_different_content(
        edits in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        truncate in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let original = reference();
        let mut bytes = original.tarball.clone();
        for (at, xor) in edits {
            let i = at.index(bytes.len());
            bytes[i] ^= xor;
        }
        if let Some(at) = truncate {
            bytes.truncate(at.index(bytes.len()));
        }
        // Must not panic; if it still verifies, the signed content is untouched.
        if let Ok(bundle) = Bundle::read(&bytes, &Limits::default()) {
            if bundle.verify(&verification()).is_ok() {
                prop_assert_eq!(bundle.all_files(), original.bundle.all_files());
            }
        }
    }

    #[test]
    fn any_change_to_signed_content_fails_verification(
        file in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let mut files: Vec<BundleFile> = reference().bundle.all_files();
        let target = file.index(files.len());
        let mut bytes = files[target].bytes.to_vec();
        let i = at.index(bytes.len());
        bytes[i] ^= xor;
        files[target].bytes = bytes.into();
        let tarball = sck_bundler::tarball::write_tarball(&files).unwrap();
        let outcome = Bundle::read(&tarball, &Limits::default()).and_then(|b| b.verify(&verification()));
        // A change that leaves a structured file's canonical form intact (e.g. whitespace in
        // JSON) is not a change to signed content; everything else must fail.
        if let Ok(verified) = outcome {
            let read = Bundle::read(&tarball, &Limits::default()).unwrap();
            let original = &reference().bundle;
            prop_assert!(read.files.len() == original.files.len() && verified.files > 0);
            for (a, b) in read.files.iter().zip(&original.files) {
                prop_assert_eq!(
                    sck_bundler::signing::hashed_form(&a.name, &a.bytes).unwrap(),
                    sck_bundler::signing::hashed_form(&b.name, &b.bytes).unwrap()
                );
            }
        }
    }
}
