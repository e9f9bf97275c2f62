//! Ledger exports (`.tar.gz`) and their offline verification, plus in-place database checks.
//!
//! An export holds, in this order: `manifest.json` (org, origin, seq range, start state),
//! `VERIFY.md` (the algorithm, for humans), `keys.json` (published keys and validity windows —
//! informational: verification trusts only keys the auditor supplies), `checkpoints.txt`
//! (signed notes, each followed by a blank line), `consistency.jsonl` (one proof between each
//! pair of consecutive checkpoints) and `entries.jsonl` (leaf bytes, one entry per line).
//! Verification streams `entries.jsonl`, so a million-entry export needs little memory.

use std::io::{BufRead, BufReader, Read, Seek, Write};
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::checkpoint::NoteVerifier;
use crate::entry::format_timestamp;
use crate::error::{LedgerError, Result};
use crate::log_store::KeyRecord;
use crate::merkle::{leaf_hash, Frontier, Hash};
use crate::reader::LogReader;
use crate::verify::{Failure, LogVerifier, Report, Start};

/// The `format` value of `manifest.json`.
pub const EXPORT_FORMAT: &str = "sck-ledger-export/1";

/// Entries fetched from the database per query while exporting or verifying in place.
const PAGE: u64 = 10_000;

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// The org whose log this is.
    pub org: String,
    /// The log origin.
    pub origin: String,
    /// First seq exported.
    pub from: u64,
    /// One past the last seq exported (the tree size at the end).
    pub to: u64,
    /// Hex `prev` of entry `from` (the genesis hash when `from` is 0).
    pub start_prev: String,
    /// Hex frontier hashes of the first `from` leaves (empty when `from` is 0).
    pub start_frontier: Vec<String>,
    /// When the export was made.
    pub exported_at: String,
}

/// One line of `consistency.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConsistencyRecord {
    /// Older tree size.
    pub from: u64,
    /// Newer tree size.
    pub to: u64,
    /// Base64 proof hashes.
    pub proof: Vec<String>,
}

/// The result of a verification run: a report, or the first failure.
pub type Outcome = std::result::Result<Report, Failure>;

const VERIFY_MD: &str = include_str!("VERIFY.md");

fn decode_hash(s: &str) -> Result<Hash> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| LedgerError::Export(format!("`{s}` is not a hex SHA-256 hash")))
}

fn append_file(
    tar: &mut tar::Builder<impl Write>,
    name: &str,
    len: u64,
    data: impl Read,
    mtime: u64,
) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(len);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, data)?;
    Ok(())
}

/// Writes the export of `org`'s entries `from..to` (default: the whole log) to `out`.
/// Returns the manifest written.
pub async fn write_export(
    reader: &LogReader,
    org: &str,
    from: u64,
    to: Option<u64>,
    out: impl Write,
) -> Result<Manifest> {
    let size = reader.size(org).await?;
    if size == 0 {
        return Err(LedgerError::UnknownLog(org.to_owned()));
    }
    let to = to.unwrap_or(size).min(size);
    if from > to {
        return Err(LedgerError::OutOfRange(format!(
            "--from {from} is past --to {to}"
        )));
    }
    let now = OffsetDateTime::now_utc();
    let (start_prev, start_frontier) = if from == 0 {
        (reader.genesis(org), Vec::new())
    } else {
        let prev = reader.entries(org, from - 1, 1).await?;
        let prev = prev
            .first()
            .map(|r| r.2)
            .ok_or_else(|| LedgerError::OutOfRange(format!("no entry {}", from - 1)))?;
        let f = reader.frontier(org, from).await?;
        (prev, f.hashes().iter().map(hex::encode).collect())
    };
    let manifest = Manifest {
        format: EXPORT_FORMAT.into(),
        org: org.to_owned(),
        origin: reader.origin(org),
        from,
        to,
        start_prev: hex::encode(start_prev),
        start_frontier,
        exported_at: format_timestamp(now),
    };
    let checkpoints = reader.checkpoints(org, from.max(1), to).await?;
    let mut notes = String::new();
    for c in &checkpoints {
        notes.push_str(&c.note);
        notes.push('\n');
    }
    let mut consistency = String::new();
    for pair in checkpoints.windows(2) {
        let p = reader
            .consistency_proof(org, pair[0].size, pair[1].size)
            .await?;
        let rec = ConsistencyRecord {
            from: p.from,
            to: p.to,
            proof: p.proof.iter().map(|h| B64.encode(h)).collect(),
        };
        consistency.push_str(
            &serde_json::to_string(&rec).map_err(|e| LedgerError::Export(e.to_string()))?,
        );
        consistency.push('\n');
    }
    let keys = serde_json::to_vec_pretty(&reader.keys().await?)
        .map_err(|e| LedgerError::Export(e.to_string()))?;
    let manifest_json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| LedgerError::Export(e.to_string()))?;

    // Spool entries to a temporary file: tar needs each member's length up front.
    let mut spool = tempfile::tempfile()?;
    let mut spool_len = 0u64;
    {
        let mut w = std::io::BufWriter::new(&mut spool);
        let mut next = from;
        while next < to {
            let rows = reader.entries(org, next, PAGE.min(to - next)).await?;
            if rows.is_empty() {
                break;
            }
            for (_, leaf, _) in &rows {
                w.write_all(leaf)?;
                w.write_all(b"\n")?;
                spool_len += leaf.len() as u64 + 1;
            }
            next += rows.len() as u64;
        }
        w.flush()?;
    }
    spool.rewind()?;

    let mtime = now.unix_timestamp().max(0) as u64;
    let gz = GzEncoder::new(out, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    append_file(
        &mut tar,
        "manifest.json",
        manifest_json.len() as u64,
        &manifest_json[..],
        mtime,
    )?;
    append_file(
        &mut tar,
        "VERIFY.md",
        VERIFY_MD.len() as u64,
        VERIFY_MD.as_bytes(),
        mtime,
    )?;
    append_file(&mut tar, "keys.json", keys.len() as u64, &keys[..], mtime)?;
    append_file(
        &mut tar,
        "checkpoints.txt",
        notes.len() as u64,
        notes.as_bytes(),
        mtime,
    )?;
    append_file(
        &mut tar,
        "consistency.jsonl",
        consistency.len() as u64,
        consistency.as_bytes(),
        mtime,
    )?;
    append_file(
        &mut tar,
        "entries.jsonl",
        spool_len,
        BufReader::new(spool),
        mtime,
    )?;
    tar.into_inner()?.finish()?.flush()?;
    Ok(manifest)
}

/// Splits `checkpoints.txt` into signed notes (each note is followed by a blank line).
pub fn split_notes(text: &str) -> Vec<String> {
    let mut notes = Vec::new();
    let mut lines = text.split_inclusive('\n').peekable();
    loop {
        while lines.peek() == Some(&"\n") {
            lines.next();
        }
        let mut body = String::new();
        for line in lines.by_ref() {
            if line == "\n" {
                break;
            }
            body.push_str(line);
        }
        if body.is_empty() {
            break;
        }
        let mut sigs = String::new();
        for line in lines.by_ref() {
            if line == "\n" {
                break;
            }
            sigs.push_str(line);
        }
        notes.push(format!("{body}\n{sigs}"));
    }
    notes
}

/// Verifies an export archive offline against `trusted` keys and any checkpoints the auditor
/// kept (`kept_checkpoints`, signed notes). `progress(done, total)` is called as entries pass.
pub fn verify_export(
    path: &Path,
    trusted: Vec<NoteVerifier>,
    kept_checkpoints: &[String],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Outcome> {
    let file = std::fs::File::open(path)?;
    let mut archive = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    let mut manifest: Option<Manifest> = None;
    let mut notes = String::new();
    let mut consistency = String::new();
    let mut saw_checkpoints = false;
    for member in archive.entries()? {
        let mut member = member?;
        let name = member.path()?.to_string_lossy().into_owned();
        match name.as_str() {
            "manifest.json" => {
                let mut buf = Vec::new();
                member.read_to_end(&mut buf)?;
                let m: Manifest = serde_json::from_slice(&buf)
                    .map_err(|e| LedgerError::Export(format!("manifest.json: {e}")))?;
                if m.format != EXPORT_FORMAT {
                    return Err(LedgerError::Export(format!(
                        "unknown format `{}`",
                        m.format
                    )));
                }
                manifest = Some(m);
            }
            "checkpoints.txt" => {
                member.read_to_string(&mut notes)?;
                saw_checkpoints = true;
            }
            "consistency.jsonl" => {
                member.read_to_string(&mut consistency)?;
            }
            "entries.jsonl" => {
                let m = manifest.clone().ok_or_else(|| {
                    LedgerError::Export("entries.jsonl before manifest.json".into())
                })?;
                if !saw_checkpoints {
                    return Err(LedgerError::Export(
                        "entries.jsonl before checkpoints.txt".into(),
                    ));
                }
                let verifier = prepare(&m, trusted, &notes, &consistency, kept_checkpoints)?;
                let mut verifier = match verifier {
                    Ok(v) => v,
                    Err(f) => return Ok(Err(f)),
                };
                let total = m.to - m.from;
                let mut lines = BufReader::with_capacity(1 << 20, member);
                let mut line = Vec::with_capacity(1024);
                let mut done = 0u64;
                loop {
                    line.clear();
                    if lines.read_until(b'\n', &mut line)? == 0 {
                        break;
                    }
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    if let Err(f) = verifier.push_entry(&line) {
                        return Ok(Err(f));
                    }
                    done += 1;
                    if done.is_multiple_of(4096) {
                        progress(done, total);
                    }
                }
                progress(done, total);
                return Ok(verifier.finish());
            }
            _ => {}
        }
    }
    Err(LedgerError::Export("archive has no entries.jsonl".into()))
}

/// Builds a verifier from the export metadata and checks signatures and consistency proofs.
fn prepare(
    m: &Manifest,
    trusted: Vec<NoteVerifier>,
    notes: &str,
    consistency: &str,
    kept: &[String],
) -> Result<std::result::Result<LogVerifier, Failure>> {
    let frontier_hashes = m
        .start_frontier
        .iter()
        .map(|h| decode_hash(h))
        .collect::<Result<Vec<_>>>()?;
    let start = Start {
        from: m.from,
        prev: decode_hash(&m.start_prev)?,
        frontier: Frontier::from_nodes(m.from, frontier_hashes)?,
    };
    if m.to < m.from {
        return Ok(Err(Failure {
            seq: None,
            reason: format!(
                "manifest range ends ({}) before it starts ({})",
                m.to, m.from
            ),
        }));
    }
    if m.from == 0 && start.prev != crate::entry::genesis_prev(&m.origin) {
        return Ok(Err(Failure {
            seq: Some(0),
            reason: "manifest start_prev is not the genesis hash of the origin".into(),
        }));
    }
    let mut v = LogVerifier::new(&m.org, &m.origin, trusted, start);
    let mut all: Vec<String> = split_notes(notes);
    for k in kept {
        all.extend(split_notes(k));
    }
    // Add in size order so a failure names the first seq a bad checkpoint covers.
    all.sort_by_key(|n| {
        crate::checkpoint::SignedNote::parse(n)
            .ok()
            .and_then(|p| crate::checkpoint::Checkpoint::parse_body(p.body).ok())
            .map_or(0, |c| c.size)
    });
    for note in &all {
        if let Err(f) = v.add_checkpoint(note) {
            return Ok(Err(f));
        }
    }
    for line in consistency.lines().filter(|l| !l.trim().is_empty()) {
        let rec: ConsistencyRecord = serde_json::from_str(line)
            .map_err(|e| LedgerError::Export(format!("consistency.jsonl: {e}")))?;
        let proof = rec
            .proof
            .iter()
            .map(|p| {
                B64.decode(p)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| LedgerError::Export("bad proof hash".into()))
            })
            .collect::<Result<Vec<Hash>>>()?;
        if let Err(f) = v.check_consistency(rec.from, rec.to, &proof) {
            return Ok(Err(f));
        }
    }
    Ok(Ok(v))
}

/// Verifies `org`'s log in place in the database: stored leaf hashes, chain, checkpoint
/// signatures (under `trusted`, or the keys published in the database when empty), roots and
/// consistency proofs built from the stored tree nodes.
pub async fn verify_database(
    reader: &LogReader,
    org: &str,
    trusted: Vec<NoteVerifier>,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<Outcome> {
    let trusted = if trusted.is_empty() {
        reader
            .keys()
            .await?
            .iter()
            .map(|k| NoteVerifier::parse(&k.verifier))
            .collect::<Result<Vec<_>>>()?
    } else {
        trusted
    };
    let size = reader.size(org).await?;
    if size == 0 {
        return Err(LedgerError::UnknownLog(org.to_owned()));
    }
    let origin = reader.origin(org);
    let mut v = LogVerifier::new(org, &origin, trusted, Start::genesis(&origin));
    let cps = reader.checkpoints(org, 1, size).await?;
    for c in &cps {
        if let Err(f) = v.add_checkpoint(&c.note) {
            return Ok(Err(f));
        }
    }
    for pair in cps.windows(2) {
        let p = reader
            .consistency_proof(org, pair[0].size, pair[1].size)
            .await?;
        if let Err(f) = v.check_consistency(p.from, p.to, &p.proof) {
            return Ok(Err(f));
        }
    }
    let mut next = 0u64;
    while next < size {
        let rows = reader.entries(org, next, PAGE.min(size - next)).await?;
        if rows.is_empty() {
            break;
        }
        for (seq, leaf, stored) in &rows {
            if leaf_hash(leaf) != *stored {
                return Ok(Err(Failure {
                    seq: Some(*seq),
                    reason: "stored leaf hash does not match the leaf bytes".into(),
                }));
            }
            if let Err(f) = v.push_entry(leaf) {
                return Ok(Err(f));
            }
        }
        next += rows.len() as u64;
        progress(next, size);
    }
    Ok(v.finish())
}

/// Reads `keys.json` from an export (informational; never trusted for verification).
pub fn read_export_keys(path: &Path) -> Result<Vec<KeyRecord>> {
    let file = std::fs::File::open(path)?;
    let mut archive = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    for member in archive.entries()? {
        let mut member = member?;
        if member.path()?.to_string_lossy() == "keys.json" {
            let mut buf = Vec::new();
            member.read_to_end(&mut buf)?;
            return serde_json::from_slice(&buf)
                .map_err(|e| LedgerError::Export(format!("keys.json: {e}")));
        }
    }
    Err(LedgerError::Export("archive has no keys.json".into()))
}
