//! Fuzz-style properties of the export reader (`verify_export`), beyond the single-byte
//! changes of `entries.jsonl` in `export_verify.rs`: arbitrary files, arbitrary bytes inside a
//! valid gzip stream, and structural mutations of a real export (members dropped, duplicated,
//! reordered or replaced; manifest fields changed; entry, checkpoint and proof lines dropped,
//! duplicated, swapped or replaced). The verifier never panics, and whatever it accepts is the
//! exported content: every entry a signed checkpoint covers is byte-identical to the original
//! (entries past the last checkpoint are only chain-checked and reported as the unsigned tail).

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::*;
use proptest::prelude::*;
use proptest::sample::Index;
use sck_ledger::export::{verify_export, write_export};
use sck_ledger::{Event, EventType};
use serde_json::json;

type Members = Vec<(String, Vec<u8>)>;

/// A 23-entry log with checkpoints every 5 entries (and at 23, at shutdown), exported once.
fn export() -> &'static (tempfile::TempDir, PathBuf) {
    static EXPORT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    EXPORT.get_or_init(|| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let (dir, url) = sqlite_url();
            let org = unique_org("fuzz");
            let (store, ledger) = open(&url, 5).await;
            for i in 0..23 {
                let event =
                    Event::new(EventType::TokenIssued, json!({"jti": format!("j-{i}")})).unwrap();
                ledger.append(&org, event).await.unwrap();
            }
            ledger.shutdown().await.unwrap();
            let path = dir.path().join("export.tar.gz");
            let file = std::fs::File::create(&path).unwrap();
            write_export(ledger.reader(), &org, 0, None, file)
                .await
                .unwrap();
            store.close().await;
            (dir, path)
        })
    })
}

fn read_members(path: &Path) -> Members {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(path).unwrap(),
    ));
    archive
        .entries()
        .unwrap()
        .map(|m| {
            let mut m = m.unwrap();
            let name = m.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            m.read_to_end(&mut bytes).unwrap();
            (name, bytes)
        })
        .collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn archive(members: &Members) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, name, bytes.as_slice())
            .unwrap();
    }
    gzip(&builder.into_inner().unwrap())
}

fn original() -> &'static Members {
    static MEMBERS: OnceLock<Members> = OnceLock::new();
    MEMBERS.get_or_init(|| read_members(&export().1))
}

fn lines_of(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn member_lines(members: &Members, name: &str) -> Vec<Vec<u8>> {
    members
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, b)| lines_of(b))
        .unwrap_or_default()
}

/// Verifies `bytes` as an export file: never a panic; an accepted export's signed entries are
/// the original ones.
fn check(bytes: &[u8], mutated: Option<&Members>) -> Result<(), TestCaseError> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = export().0.path().join(format!("case-{n}.tar.gz"));
    std::fs::write(&path, bytes).unwrap();
    let outcome = verify_export(&path, vec![test_key().verifier()], &[], &mut |_, _| {});
    std::fs::remove_file(&path).unwrap();
    let Ok(Ok(report)) = outcome else {
        return Ok(());
    };
    let Some(mutated) = mutated else {
        return Err(TestCaseError::fail("arbitrary bytes verified as an export"));
    };
    let got = member_lines(mutated, "entries.jsonl");
    let want = member_lines(original(), "entries.jsonl");
    let first = report.first_seq as usize;
    let signed = (report.signed_size as usize).saturating_sub(first);
    prop_assert!(first + signed <= want.len(), "{report:?}");
    prop_assert!(signed <= got.len(), "{report:?}");
    for i in 0..signed {
        prop_assert_eq!(
            &got[i],
            &want[first + i],
            "signed entry {} changed",
            first + i
        );
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Edit {
    DropMember(Index),
    DuplicateMember(Index),
    SwapMembers(Index, Index),
    ReplaceMember(Index, Vec<u8>),
    Manifest(&'static str, serde_json::Value),
    /// `from`/`to` with a well-formed start frontier for `from` (so the range itself is judged).
    Range(u64, u64),
    DropLine(&'static str, Index),
    DuplicateLine(&'static str, Index),
    SwapLines(&'static str, Index, Index),
    ReplaceLine(&'static str, Index, Vec<u8>),
    TruncateMember(Index, Index),
}

fn text_member() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("entries.jsonl"),
        Just("checkpoints.txt"),
        Just("consistency.jsonl"),
    ]
}

fn manifest_value() -> impl Strategy<Value = (&'static str, serde_json::Value)> {
    let number = prop_oneof![
        (0u64..40).prop_map(serde_json::Value::from),
        Just(json!(u64::MAX)),
        Just(json!(-1)),
        Just(json!("5")),
    ];
    let hash = prop_oneof![
        Just(json!("00".repeat(32))),
        Just(json!("zz")),
        Just(json!(null)),
    ];
    prop_oneof![
        number.clone().prop_map(|v| ("from", v)),
        number.prop_map(|v| ("to", v)),
        hash.clone().prop_map(|v| ("start_prev", v)),
        proptest::collection::vec(hash, 0..4).prop_map(|v| ("start_frontier", json!(v))),
        prop_oneof![Just(json!("other")), Just(json!("")), Just(json!(7))].prop_map(|v| ("org", v)),
        prop_oneof![Just(json!("test/other")), Just(json!(""))].prop_map(|v| ("origin", v)),
        prop_oneof![Just(json!("sck-ledger-export/2")), Just(json!(null))]
            .prop_map(|v| ("format", v)),
    ]
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        Just(Vec::new()),
        Just(b"{}".to_vec()),
        Just(br#"{"from": 0, "to": 99, "proof": ["AAAA"]}"#.to_vec()),
        Just(b"\n\n\n".to_vec()),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    let i = any::<Index>;
    prop_oneof![
        i().prop_map(Edit::DropMember),
        i().prop_map(Edit::DuplicateMember),
        (i(), i()).prop_map(|(a, b)| Edit::SwapMembers(a, b)),
        (i(), bytes()).prop_map(|(a, b)| Edit::ReplaceMember(a, b)),
        manifest_value().prop_map(|(k, v)| Edit::Manifest(k, v)),
        (0u64..30, 0u64..30).prop_map(|(from, to)| Edit::Range(from, to)),
        (text_member(), i()).prop_map(|(m, a)| Edit::DropLine(m, a)),
        (text_member(), i()).prop_map(|(m, a)| Edit::DuplicateLine(m, a)),
        (text_member(), i(), i()).prop_map(|(m, a, b)| Edit::SwapLines(m, a, b)),
        (text_member(), i(), bytes()).prop_map(|(m, a, b)| Edit::ReplaceLine(m, a, b)),
        (i(), i()).prop_map(|(a, b)| Edit::TruncateMember(a, b)),
    ]
}

/// Edits the lines of member `name` (split on `\n`, kept with their terminators).
fn edit_lines(members: &mut Members, name: &str, f: impl FnOnce(&mut Vec<Vec<u8>>)) {
    if let Some((_, bytes)) = members.iter_mut().find(|(n, _)| n == name) {
        let mut lines: Vec<Vec<u8>> = bytes
            .split_inclusive(|b| *b == b'\n')
            .map(<[u8]>::to_vec)
            .collect();
        if !lines.is_empty() {
            f(&mut lines);
        }
        *bytes = lines.concat();
    }
}

/// Edits `manifest.json`. A range that ends before it starts is kept out (`to` is raised to
/// `from`): that case is the ignored regression test at the end of this file.
fn edit_manifest(members: &mut Members, f: impl FnOnce(&mut serde_json::Value)) {
    if let Some((_, bytes)) = members.iter_mut().find(|(n, _)| n == "manifest.json") {
        if let Ok(mut manifest) = serde_json::from_slice::<serde_json::Value>(bytes) {
            f(&mut manifest);
            if let (Some(from), Some(to)) = (manifest["from"].as_u64(), manifest["to"].as_u64()) {
                manifest["to"] = json!(from.max(to));
            }
            *bytes = serde_json::to_vec(&manifest).unwrap();
        }
    }
}

fn apply(members: &mut Members, edit: Edit) {
    let n = members.len();
    if n == 0 {
        return;
    }
    match edit {
        Edit::DropMember(i) => {
            members.remove(i.index(n));
        }
        Edit::DuplicateMember(i) => {
            let m = members[i.index(n)].clone();
            members.push(m);
        }
        Edit::SwapMembers(a, b) => members.swap(a.index(n), b.index(n)),
        Edit::ReplaceMember(i, bytes) => members[i.index(n)].1 = bytes,
        Edit::TruncateMember(i, at) => {
            let bytes = &mut members[i.index(n)].1;
            let len = at.index(bytes.len() + 1);
            bytes.truncate(len);
        }
        Edit::Manifest(key, value) => edit_manifest(members, |m| m[key] = value),
        Edit::Range(from, to) => edit_manifest(members, |m| {
            m["from"] = json!(from);
            m["to"] = json!(to);
            m["start_frontier"] = json!(vec!["11".repeat(32); from.count_ones() as usize]);
        }),
        Edit::DropLine(name, i) => edit_lines(members, name, |l| {
            l.remove(i.index(l.len()));
        }),
        Edit::DuplicateLine(name, i) => edit_lines(members, name, |l| {
            let at = i.index(l.len());
            l.insert(at, l[at].clone());
        }),
        Edit::SwapLines(name, a, b) => edit_lines(members, name, |l| {
            let n = l.len();
            l.swap(a.index(n), b.index(n));
        }),
        Edit::ReplaceLine(name, i, mut bytes) => edit_lines(members, name, |l| {
            bytes.push(b'\n');
            let at = i.index(l.len());
            l[at] = bytes;
        }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_files_never_verify(raw in proptest::collection::vec(any::<u8>(), 0..4096)) {
        check(&raw, None)?;
        // Inside a valid gzip stream the bytes reach the tar reader.
        check(&gzip(&raw), None)?;
    }

    #[test]
    fn structural_mutations_never_verify_changed_content(edits in proptest::collection::vec(edit(), 1..4)) {
        let mut members = original().clone();
        for e in edits {
            apply(&mut members, e);
        }
        check(&archive(&members), Some(&members))?;
    }
}

#[test]
fn the_unmutated_export_verifies() {
    // The property above is only meaningful if the untouched archive passes the same check.
    let members = original().clone();
    let path = export().0.path().join("unmutated.tar.gz");
    std::fs::write(&path, archive(&members)).unwrap();
    let report = verify_export(&path, vec![test_key().verifier()], &[], &mut |_, _| {})
        .unwrap()
        .unwrap();
    assert_eq!((report.entries, report.signed_size), (23, 23));
}

/// Found by this suite: a manifest whose `from` is past its `to` (with a well-formed start
/// frontier and no checkpoints to contradict it) must be refused, not underflow.
#[test]
fn a_manifest_range_that_ends_before_it_starts_is_refused() {
    let mut members = original().clone();
    let (_, manifest) = members
        .iter_mut()
        .find(|(n, _)| n == "manifest.json")
        .unwrap();
    let mut value: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    value["from"] = json!(1);
    value["to"] = json!(0);
    value["start_frontier"] = json!(["11".repeat(32)]);
    *manifest = serde_json::to_vec(&value).unwrap();
    let path = export().0.path().join("backwards.tar.gz");
    std::fs::write(&path, archive(&members)).unwrap();
    let outcome = verify_export(&path, vec![test_key().verifier()], &[], &mut |_, _| {});
    assert!(!matches!(outcome, Ok(Ok(_))), "{outcome:?}");
}
