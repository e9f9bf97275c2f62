//! Fuzz-style properties of the bundler's public parsers, filling the gaps `properties.rs`
//! leaves (that file XORs bytes of the *gzip* stream, which the gzip CRC mostly catches, and
//! round-trips well-formed trees):
//!
//! - `Bundle::read` on arbitrary bytes, on arbitrary bytes inside a valid gzip stream, on the
//!   signed reference bundle with its *tar* bytes mutated (header checksums recomputed so the
//!   mutation reaches the tar parser and the bundle checks), and on member-level mutations
//!   (hostile names, entry types, duplicates, drops, oversized headers, trailing data);
//!   never a panic, and whatever still verifies carries exactly the signed content;
//! - canonical JSON (`Json::parse`) on arbitrary text and on generated JSON: never a panic,
//!   the canonical form is a fixed point (parse → canonical → parse → canonical), and the
//!   streaming writer (`canonical::write_canonical`) accepts and writes exactly the same;
//! - `.manifest` and `data.json`/`data.yaml` parsing on arbitrary bytes: never a panic;
//! - the metered reader under any budget: never charges past it, and reads exactly what the
//!   unmetered reader reads unless the budget is too small, when it says so;
//! - `run_tests` on any mix of passing, failing, erroring, runaway and panicking tests: each
//!   ends with its own status (issue 14's probes), never a panic or a stalled run.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::OnceLock;

use proptest::prelude::*;
use sck_bundler::canonical::{self, Json, Numbers};
use sck_bundler::data::Data;
use sck_bundler::decision::EvalLimits;
use sck_bundler::manifest::Manifest;
use sck_bundler::policy::{self, TestStatus};
use sck_bundler::tarball::{read_tarball, read_tarball_metered};
use sck_bundler::{build, BuildOptions, Built, Bundle, Limits, SourceTree, VerificationConfig};

const SECRET: &[u8] = b"fuzz-test-secret";

fn verification() -> VerificationConfig {
    common::hmac_verification(SECRET)
}

/// One signed bundle with a module, a data document and a manifest.
fn reference() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let files = [
            (".manifest", r#"{"roots": ["app"]}"#),
            ("app/policy.rego", "package app\n\nallow := true\n"),
            ("app/data.json", r#"{"limit": 10, "owner": "team-a"}"#),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.as_bytes().to_vec()))
        .collect();
        build(
            &SourceTree::from_files(files).unwrap(),
            &BuildOptions {
                revision: Some("fuzz".into()),
                signing: Some(common::hmac_signing(SECRET)),
                ..Default::default()
            },
        )
        .unwrap()
    })
}

/// The reference bundle's uncompressed tar stream.
fn reference_tar() -> &'static [u8] {
    static TAR: OnceLock<Vec<u8>> = OnceLock::new();
    TAR.get_or_init(|| {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(reference().tarball.as_slice())
            .read_to_end(&mut out)
            .unwrap();
        out
    })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Small limits, so that size and count refusals are reachable by the generators.
fn limits() -> Limits {
    Limits {
        max_files: 8,
        max_decompressed_bytes: 64 << 10,
    }
}

/// A bundle's signed content: file name → the form its signature hash is computed over.
fn signed_content(bundle: &Bundle) -> BTreeMap<String, Vec<u8>> {
    bundle
        .files
        .iter()
        .map(|f| {
            let form = sck_bundler::signing::hashed_form(&f.name, &f.bytes).unwrap();
            (f.name.clone(), form)
        })
        .collect()
}

/// Reads `tarball` (must not panic); if it also verifies, it must be the signed content.
fn check_never_verifies_changed_content(tarball: &[u8]) -> Result<(), TestCaseError> {
    for limits in [Limits::default(), limits()] {
        if let Ok(bundle) = Bundle::read(tarball, &limits) {
            if bundle.verify(&verification()).is_ok() {
                prop_assert_eq!(signed_content(&bundle), signed_content(&reference().bundle));
            }
        }
    }
    Ok(())
}

/// Recomputes the checksum of every 512-byte block that looks like a ustar/GNU header, so
/// that header mutations are judged by the tar parser and the bundle checks, not the checksum.
fn fix_checksums(tar: &mut [u8]) {
    for block in tar.chunks_exact_mut(512) {
        if &block[257..262] == b"ustar" {
            let header = tar::Header::from_byte_slice(block);
            let mut copy = header.clone();
            copy.set_cksum();
            block.copy_from_slice(copy.as_bytes());
        }
    }
}

/// A tar member as an attacker may write it.
#[derive(Debug, Clone)]
struct Member {
    name: Vec<u8>,
    kind: u8,
    bytes: Vec<u8>,
    /// Declared size, when it lies about the content.
    declared: Option<u64>,
}

fn hostile_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"/.manifest".to_vec()),
        Just(b"/app/policy.rego".to_vec()),
        Just(b"/app/data.json".to_vec()),
        Just(b"/.signatures.json".to_vec()),
        Just(b"/data.json".to_vec()),
        Just(b"/data.yaml".to_vec()),
        Just(b"../etc/passwd".to_vec()),
        Just(b"//abs/x.rego".to_vec()),
        Just(b"app/./x.rego".to_vec()),
        Just(b"app//x.rego".to_vec()),
        Just(b"app\\x.rego".to_vec()),
        Just(b"app/x\0.rego".to_vec()),
        Just(b"app/\xff.rego".to_vec()),
        Just(b"/app/policy.wasm".to_vec()),
        Just(Vec::new()),
        proptest::collection::vec(any::<u8>(), 1..99),
    ]
}

fn member() -> impl Strategy<Value = Member> {
    (
        hostile_name(),
        prop_oneof![
            4 => Just(b'0'),
            1 => prop::sample::select(b"1234567gxLK".to_vec()),
            1 => any::<u8>(),
        ],
        prop_oneof![
            Just(b"package app\n\nallow := false\n".to_vec()),
            Just(br#"{"roots": [""]}"#.to_vec()),
            Just(br#"{"a": 1e999999, "b": [[[[[]]]]]}"#.to_vec()),
            Just(b"{\"signatures\": []}".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..600),
        ],
        prop_oneof![
            4 => Just(None),
            1 => Just(Some(u64::MAX >> 4)),
            1 => (0u64..2048).prop_map(Some),
        ],
    )
        .prop_map(|(name, kind, bytes, declared)| Member {
            name,
            kind,
            bytes,
            declared,
        })
}

/// Writes members with raw headers (the `tar` crate's builder refuses hostile names).
fn raw_tar(members: &[Member]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in members {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(m.declared.unwrap_or(m.bytes.len() as u64));
        header.as_mut_bytes()[156] = m.kind;
        let name = &mut header.as_old_mut().name;
        let len = m.name.len().min(name.len());
        name[..len].copy_from_slice(&m.name[..len]);
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&m.bytes);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// The reference bundle's members (name, content), in archive order.
fn reference_members() -> Vec<Member> {
    let mut archive = tar::Archive::new(reference_tar());
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            Member {
                name: entry.path_bytes().into_owned(),
                kind: b'0',
                bytes,
                declared: None,
            }
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Edit {
    Drop(prop::sample::Index),
    Duplicate(prop::sample::Index),
    Rename(prop::sample::Index, Vec<u8>),
    Replace(prop::sample::Index, Member),
    Insert(prop::sample::Index, Member),
    Swap(prop::sample::Index, prop::sample::Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    let i = any::<prop::sample::Index>;
    prop_oneof![
        i().prop_map(Edit::Drop),
        i().prop_map(Edit::Duplicate),
        (i(), hostile_name()).prop_map(|(a, n)| Edit::Rename(a, n)),
        (i(), member()).prop_map(|(a, m)| Edit::Replace(a, m)),
        (i(), member()).prop_map(|(a, m)| Edit::Insert(a, m)),
        (i(), i()).prop_map(|(a, b)| Edit::Swap(a, b)),
    ]
}

fn apply(members: &mut Vec<Member>, edit: Edit) {
    if members.is_empty() {
        if let Edit::Insert(_, m) = edit {
            members.push(m);
        }
        return;
    }
    let n = members.len();
    match edit {
        Edit::Drop(i) => {
            members.remove(i.index(n));
        }
        Edit::Duplicate(i) => {
            let m = members[i.index(n)].clone();
            members.push(m);
        }
        Edit::Rename(i, name) => members[i.index(n)].name = name,
        Edit::Replace(i, m) => members[i.index(n)] = m,
        Edit::Insert(i, m) => members.insert(i.index(n + 1), m),
        Edit::Swap(a, b) => members.swap(a.index(n), b.index(n)),
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        "\\PC{0,8}".prop_map(serde_json::Value::from),
        "[\u{0}-\u{1f}\"\\\\\u{2028}\u{2029}<>&]{0,4}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::from),
            proptest::collection::btree_map("\\PC{0,6}", inner, 0..5)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON-ish text: fragments of JSON syntax glued together, so parsers see near-misses.
fn json_ish() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("{".to_owned()),
            Just("}".to_owned()),
            Just("[".to_owned()),
            Just("]".to_owned()),
            Just(",".to_owned()),
            Just(":".to_owned()),
            Just("\"k\"".to_owned()),
            Just("\"\\u".to_owned()),
            Just("\"\\ud800\"".to_owned()),
            Just("1e999999999".to_owned()),
            Just("-0.0e-0".to_owned()),
            Just("123456789012345678901234567890".to_owned()),
            Just("true".to_owned()),
            Just("nul".to_owned()),
            Just(" \t\n".to_owned()),
            "\\PC{0,3}",
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

fn canonical_is_a_fixed_point(json: &Json) -> Result<(), TestCaseError> {
    let once = json.to_canonical_bytes();
    let reparsed = Json::parse(&once).expect("canonical output parses");
    prop_assert_eq!(&reparsed, json);
    prop_assert_eq!(reparsed.to_canonical_bytes(), once);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_are_refused_without_panicking(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        gzipped in any::<bool>(),
    ) {
        // Inside a valid gzip stream the bytes reach the tar parser.
        let input = if gzipped { gzip(&bytes) } else { bytes };
        check_never_verifies_changed_content(&input)?;
    }

    #[test]
    fn tar_level_mutations_never_verify_changed_content(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        truncate in prop::option::of(any::<prop::sample::Index>()),
        trailer in prop::option::of(proptest::collection::vec(any::<u8>(), 1..64)),
    ) {
        let mut tar = reference_tar().to_vec();
        for (at, value) in edits {
            let i = at.index(tar.len());
            tar[i] = value;
        }
        fix_checksums(&mut tar);
        if let Some(at) = truncate {
            tar.truncate(at.index(tar.len()));
        }
        if let Some(trailer) = trailer {
            tar.extend_from_slice(&trailer);
        }
        check_never_verifies_changed_content(&gzip(&tar))?;
    }

    #[test]
    fn member_level_mutations_never_verify_changed_content(
        edits in proptest::collection::vec(edit(), 1..5),
        second_gzip_member in any::<bool>(),
    ) {
        let mut members = reference_members();
        for e in edits {
            apply(&mut members, e);
        }
        let mut tarball = gzip(&raw_tar(&members));
        if second_gzip_member {
            tarball.extend_from_slice(&gzip(b"trailing"));
        }
        check_never_verifies_changed_content(&tarball)?;
    }

    #[test]
    fn canonical_json_of_arbitrary_text_never_panics(text in json_ish(), raw in proptest::collection::vec(any::<u8>(), 0..64)) {
        for bytes in [text.as_bytes(), raw.as_slice()] {
            // The streaming writer accepts and writes exactly what the tree does.
            let mut streamed = Vec::new();
            let written = canonical::write_canonical(bytes, Numbers::AsWritten, &mut streamed);
            prop_assert_eq!(canonical::validate(bytes).is_ok(), written.is_ok());
            prop_assert_eq!(written.map(|()| streamed), Json::parse(bytes).map(|j| j.to_canonical_bytes()));
            if let Ok(mut json) = Json::parse(bytes) {
                canonical_is_a_fixed_point(&json)?;
                if json.normalize_numbers().is_ok() {
                    canonical_is_a_fixed_point(&json)?;
                }
            }
        }
    }

    #[test]
    fn canonical_json_is_idempotent(value in json_value(), pretty in any::<bool>()) {
        let text = if pretty {
            serde_json::to_vec_pretty(&value).unwrap()
        } else {
            serde_json::to_vec(&value).unwrap()
        };
        let json = Json::parse(&text).unwrap();
        canonical_is_a_fixed_point(&json)?;
        // Keys sorted by bytes, no whitespace outside strings: equal to serde_json's own
        // compact, key-sorted form up to string escaping and number spelling.
        prop_assert_eq!(Json::from_serde(&value).to_canonical_bytes(), json.to_canonical_bytes());
    }

    #[test]
    fn the_metered_reader_never_passes_its_budget(
        edits in proptest::collection::vec(edit(), 0..4),
        budget in 0u64..8192,
    ) {
        let mut members = reference_members();
        for e in edits {
            apply(&mut members, e);
        }
        let tarball = gzip(&raw_tar(&members));
        let (mut needed, mut given) = (0, 0);
        let unmetered = read_tarball(&tarball, &limits());
        let metered_ample = read_tarball_metered(&tarball, &limits(), &mut meter(u64::MAX, &mut needed));
        prop_assert_eq!(format!("{unmetered:?}"), format!("{metered_ample:?}"));

        let metered = read_tarball_metered(&tarball, &limits(), &mut meter(budget, &mut given));
        prop_assert!(given <= budget);
        if needed <= budget {
            prop_assert_eq!(format!("{unmetered:?}"), format!("{metered:?}"));
        } else if let Err(e) = &metered {
            // Refused by the budget, or by the archive itself before the budget ran out.
            prop_assert!(
                e.code() == "decompression_busy" || unmetered.is_err(),
                "{:?}", e
            );
        } else {
            prop_assert!(false, "read {} bytes on a budget of {}", needed, budget);
        }
    }

    #[test]
    fn manifest_and_data_parsers_never_panic(
        text in json_ish(),
        raw in proptest::collection::vec(any::<u8>(), 0..128),
        name in prop_oneof![
            Just("data.json"),
            Just("data.yaml"),
            Just("a/b/data.json"),
            Just("a/data.yml"),
        ],
    ) {
        for bytes in [text.as_bytes(), raw.as_slice()] {
            let _ = Manifest::parse(".manifest", bytes);
            let _ = Data::default().add(name, bytes::Bytes::copy_from_slice(bytes));
        }
        let yaml = format!("a: {text}\nb:\n  - {text}\n");
        let _ = Data::default().add("data.yaml", yaml.into());
    }
}

/// A meter handing out at most `capacity` bytes; what it gave is in `given`.
fn meter(capacity: u64, given: &mut u64) -> impl FnMut(u64) -> bool + '_ {
    move |bytes| {
        let fits = given.saturating_add(bytes) <= capacity;
        if fits {
            *given += bytes;
        }
        fits
    }
}

/// The kinds of Rego test `run_tests` must tell apart (a panicking one is `policy`'s unit test:
/// no built-in sck leaves to regorus is known to panic).
#[derive(Debug, Clone, Copy)]
enum TestKind {
    Passes,
    Fails,
    Errors,
    RunsAway,
}

impl TestKind {
    fn body(self) -> &'static str {
        match self {
            TestKind::Passes => "1 == 1",
            TestKind::Fails => "1 == 2",
            TestKind::Errors => "1 / 0",
            // The range is built once, so the time limit, not the built-ins' memory budget,
            // stops it however fast the machine.
            TestKind::RunsAway => {
                "xs := numbers.range(1, 100000); \
                 count([1 | some x in xs; some y in xs; x == y]) > 0"
            }
        }
    }

    fn matches(self, status: &TestStatus) -> bool {
        match (self, status) {
            (TestKind::Passes, TestStatus::Pass)
            | (TestKind::Fails, TestStatus::Fail)
            | (TestKind::RunsAway, TestStatus::Timeout(_)) => true,
            (TestKind::Errors, TestStatus::Error(e)) => !e.contains("panicked"),
            _ => false,
        }
    }
}

fn test_kind() -> impl Strategy<Value = TestKind> {
    prop_oneof![
        Just(TestKind::Passes),
        Just(TestKind::Fails),
        Just(TestKind::Errors),
        Just(TestKind::RunsAway),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 12,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_test_ends_with_its_own_status(kinds in proptest::collection::vec(test_kind(), 1..6)) {
        let module: String = kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| format!("test_{i} if {{ {} }}\n", kind.body()))
            .collect();
        let files = [("t/t_test.rego".to_owned(), format!("package t\n\n{module}").into_bytes())]
            .into_iter()
            .collect();
        let bundle = build(&SourceTree::from_files(files).unwrap(), &BuildOptions::default())
            .unwrap()
            .bundle;
        let limits = EvalLimits {
            time: std::time::Duration::from_millis(50),
            ..EvalLimits::default()
        };
        let outcomes = policy::run_tests(&bundle, &limits, &|| false).unwrap();
        prop_assert_eq!(outcomes.len(), kinds.len());
        for (kind, outcome) in kinds.iter().zip(&outcomes) {
            prop_assert!(kind.matches(&outcome.status), "{:?}: {:?}", kind, outcome);
        }
    }
}
