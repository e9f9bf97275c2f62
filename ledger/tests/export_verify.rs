//! Export and offline verification, including every tampering case of issue 3: each is
//! detected and the failure names the seq of the first bad entry.

mod common;

use std::io::{Read, Write};

use base64::Engine;
use common::*;
use proptest::prelude::*;
use sck_ledger::checkpoint::{Checkpoint, NoteVerifier};
use sck_ledger::entry::Entry;
use sck_ledger::export::{split_notes, verify_database, verify_export, write_export, Outcome};
use sck_ledger::merkle::{consistency_proof, leaf_hash, root, MemoryTree};
use sck_ledger::{Event, EventType, LedgerKey};
use serde_json::json;

const N: u64 = 55;

type Members = Vec<(String, Vec<u8>)>;

/// Builds a 55-entry log with checkpoints every 10 entries (and 55 at shutdown), exports it.
async fn build_export(url: &str) -> (tempfile::TempDir, std::path::PathBuf, String) {
    let org = unique_org("exp");
    let (store, ledger) = open(url, 10).await;
    for i in 0..N {
        // one by one so checkpoints land exactly on multiples of 10
        let ev = Event::new(
            EventType::TokenIssued,
            json!({"jti": format!("j-{i}"), "sub": "svc"}),
        )
        .unwrap();
        ledger.append(&org, ev).await.unwrap();
    }
    ledger.shutdown().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.tar.gz");
    let file = std::fs::File::create(&path).unwrap();
    let m = write_export(ledger.reader(), &org, 0, None, file)
        .await
        .unwrap();
    assert_eq!((m.from, m.to), (0, N));
    // verify in place as well
    let out = verify_database(
        ledger.reader(),
        &org,
        vec![test_key().verifier()],
        &mut |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(out.unwrap().entries, N);
    store.close().await;
    (dir, path, org)
}

fn read_members(path: &std::path::Path) -> Members {
    let f = std::fs::File::open(path).unwrap();
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(f));
    a.entries()
        .unwrap()
        .map(|m| {
            let mut m = m.unwrap();
            let name = m.path().unwrap().to_string_lossy().into_owned();
            let mut buf = Vec::new();
            m.read_to_end(&mut buf).unwrap();
            (name, buf)
        })
        .collect()
}

fn write_members(path: &std::path::Path, members: &Members) {
    let f = std::fs::File::create(path).unwrap();
    let mut t = tar::Builder::new(flate2::write::GzEncoder::new(
        f,
        flate2::Compression::fast(),
    ));
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        t.append_data(&mut h, name, &data[..]).unwrap();
    }
    t.into_inner().unwrap().finish().unwrap().flush().unwrap();
}

fn member<'a>(m: &'a mut Members, name: &str) -> &'a mut Vec<u8> {
    &mut m.iter_mut().find(|(n, _)| n == name).unwrap().1
}

fn lines(m: &mut Members) -> Vec<Vec<u8>> {
    member(m, "entries.jsonl")
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| l.to_vec())
        .collect()
}

fn set_lines(m: &mut Members, lines: &[Vec<u8>]) {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    *member(m, "entries.jsonl") = out;
}

fn verify_with(path: &std::path::Path, keys: &[LedgerKey], kept: &[String]) -> Outcome {
    let trusted: Vec<NoteVerifier> = keys.iter().map(|k| k.verifier()).collect();
    verify_export(path, trusted, kept, &mut |_, _| {}).unwrap()
}

/// Applies `tamper` to a copy of the export and returns the verification failure.
fn tampered(
    path: &std::path::Path,
    tamper: impl FnOnce(&mut Members),
) -> sck_ledger::verify::Failure {
    let mut m = read_members(path);
    tamper(&mut m);
    let copy = path.with_file_name("tampered.tar.gz");
    write_members(&copy, &m);
    verify_with(&copy, &[test_key()], &[]).expect_err("tampering was not detected")
}

#[tokio::test]
async fn export_verifies_and_every_tampering_names_the_seq() {
    let (_dir, url) = sqlite_url();
    let (_edir, path, _org) = build_export(&url).await;

    let report = verify_with(&path, &[test_key()], &[]).unwrap();
    assert_eq!(report.entries, N);
    assert_eq!(report.checkpoints, 6); // 10, 20, 30, 40, 50, 55
    assert_eq!(report.consistency_proofs, 5);
    assert_eq!(report.unsigned_tail(), 0);

    // wrong key: every checkpoint fails its signature; the first covers seq 0
    let f = verify_with(&path, &[LedgerKey::generate("x/y").unwrap()], &[]).unwrap_err();
    assert_eq!(f.seq, Some(0), "{f}");

    // change one byte in the body of entry 17
    let f = tampered(&path, |m| {
        let mut l = lines(m);
        let pos = l[17].windows(4).position(|w| w == b"j-17").unwrap();
        l[17][pos + 2] = b'9';
        set_lines(m, &l);
    });
    assert_eq!(f.seq, Some(17), "{f}");

    // change one byte of the prev link of entry 33
    let f = tampered(&path, |m| {
        let mut l = lines(m);
        let pos = l[33].windows(7).position(|w| w == b"\"prev\":").unwrap() + 8;
        l[33][pos] = if l[33][pos] == b'a' { b'b' } else { b'a' };
        set_lines(m, &l);
    });
    assert_eq!(f.seq, Some(33), "{f}");

    // change one byte of the last entry: only the final checkpoint can catch it
    let f = tampered(&path, |m| {
        let mut l = lines(m);
        let pos = l[54].windows(4).position(|w| w == b"j-54").unwrap();
        l[54][pos + 2] = b'0';
        set_lines(m, &l);
    });
    assert_eq!(f.seq, Some(50), "{f}");
    assert!(f.reason.contains("50..=54"), "{f}");

    // delete entry 23
    let f = tampered(&path, |m| {
        let mut l = lines(m);
        l.remove(23);
        set_lines(m, &l);
    });
    assert_eq!(f.seq, Some(23), "{f}");

    // swap entries 30 and 31
    let f = tampered(&path, |m| {
        let mut l = lines(m);
        l.swap(30, 31);
        set_lines(m, &l);
    });
    assert_eq!(f.seq, Some(30), "{f}");

    // truncate the tail
    let f = tampered(&path, |m| {
        let mut l = lines(m);
        l.truncate(48);
        set_lines(m, &l);
    });
    assert_eq!(f.seq, Some(48), "{f}");

    // re-sign every checkpoint with another key under the same name
    let f = tampered(&path, |m| {
        let other = LedgerKey::generate("ledger.sck.example/test").unwrap();
        let text = String::from_utf8(member(m, "checkpoints.txt").clone()).unwrap();
        let mut out = String::new();
        for note in split_notes(&text) {
            let body = note.split_once("\n\n").unwrap().0.to_owned() + "\n";
            out.push_str(&other.sign(&Checkpoint::parse_body(&body).unwrap()).unwrap());
            out.push('\n');
        }
        *member(m, "checkpoints.txt") = out.into_bytes();
    });
    assert_eq!(f.seq, Some(0), "{f}");

    // a consistency proof altered by one bit
    let f = tampered(&path, |m| {
        let c = member(m, "consistency.jsonl");
        let pos = c.iter().position(|b| *b == b'[').unwrap() + 3;
        c[pos] = if c[pos] == b'A' { b'B' } else { b'A' };
    });
    assert!(f.reason.contains("consistent"), "{f}");
}

/// Rewrite history: alter entry 25, recompute every hash, link, root, proof and re-sign every
/// checkpoint with the *real* key (a fully compromised gateway). The export alone verifies;
/// a checkpoint the auditor kept from before (size 30) exposes it and names the range.
#[tokio::test]
async fn rewritten_history_is_caught_by_an_earlier_checkpoint() {
    let (_dir, url) = sqlite_url();
    let (_edir, path, org) = build_export(&url).await;
    let mut m = read_members(&path);
    let original_notes = String::from_utf8(member(&mut m, "checkpoints.txt").clone()).unwrap();
    let kept: Vec<String> = split_notes(&original_notes)
        .into_iter()
        .filter(|n| n.contains("\n30\n"))
        .collect();
    assert_eq!(kept.len(), 1);

    let key = test_key();
    let mut entries: Vec<Entry> = lines(&mut m)
        .iter()
        .map(|l| Entry::parse(l).unwrap())
        .collect();
    entries[25].body = json!({"jti": "forged", "sub": "attacker"});
    let origin = format!("test/{org}");
    let mut prev = sck_ledger::entry::genesis_prev(&origin);
    let mut tree = MemoryTree::new();
    let mut new_lines = Vec::new();
    for e in &mut entries {
        e.prev = hex::encode(prev);
        let bytes = e.leaf_bytes().unwrap();
        prev = leaf_hash(&bytes);
        tree.push(prev);
        new_lines.push(bytes);
    }
    set_lines(&mut m, &new_lines);
    let sizes = [10u64, 20, 30, 40, 50, 55];
    let mut notes = String::new();
    let mut cons = String::new();
    for (i, s) in sizes.iter().enumerate() {
        let r = root(&mut tree, *s).unwrap();
        notes.push_str(
            &key.sign(&Checkpoint {
                origin: origin.clone(),
                size: *s,
                root: r,
            })
            .unwrap(),
        );
        notes.push('\n');
        if i > 0 {
            let p = consistency_proof(&mut tree, sizes[i - 1], *s).unwrap();
            let b64: Vec<String> = p
                .iter()
                .map(|h| base64::engine::general_purpose::STANDARD.encode(h))
                .collect();
            cons.push_str(&json!({"from": sizes[i - 1], "to": s, "proof": b64}).to_string());
            cons.push('\n');
        }
    }
    *member(&mut m, "checkpoints.txt") = notes.into_bytes();
    *member(&mut m, "consistency.jsonl") = cons.into_bytes();
    let forged = path.with_file_name("forged.tar.gz");
    write_members(&forged, &m);

    // Self-consistent forgery: passes without outside knowledge...
    verify_with(&forged, std::slice::from_ref(&key), &[]).unwrap();
    // ...but not against the checkpoint the auditor kept.
    let f = verify_with(&forged, &[key], &kept).unwrap_err();
    assert_eq!(f.seq, Some(20), "{f}");
    assert!(f.reason.contains("disagree"), "{f}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any single-byte change anywhere in entries.jsonl is detected and never panics.
    #[test]
    fn any_byte_change_in_entries_is_detected(pos in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (_dir, path) = EXPORT.get_or_init(|| rt.block_on(async {
            let (d, url) = sqlite_url();
            let (ed, path, _) = build_export(&url).await;
            std::mem::forget(d);
            (ed, path)
        }));
        let mut m = read_members(path);
        let e = member(&mut m, "entries.jsonl");
        let i = pos.index(e.len());
        e[i] ^= xor;
        let copy = path.with_file_name(format!("p-{i}-{xor}.tar.gz"));
        write_members(&copy, &m);
        let out = verify_export(&copy, vec![test_key().verifier()], &[], &mut |_, _| {});
        prop_assert!(!matches!(out, Ok(Ok(_))), "byte {} ^ {} not detected", i, xor);
    }
}

static EXPORT: std::sync::OnceLock<(tempfile::TempDir, std::path::PathBuf)> =
    std::sync::OnceLock::new();
