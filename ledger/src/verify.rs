//! Streaming verification of one org log: leaf hashes, chain links, checkpoint roots,
//! checkpoint signatures and consistency proofs. Pure: callers feed bytes, no I/O here.
//!
//! Feed signed checkpoints (from the export and any the auditor kept) with
//! [`LogVerifier::add_checkpoint`], consistency proofs with [`LogVerifier::check_consistency`],
//! then every entry in order with [`LogVerifier::push_entry`], then [`LogVerifier::finish`].
//! The first failure is returned as a [`Failure`] naming the entry (seq) it concerns:
//! - a missing, duplicated or reordered entry: the seq expected at that position;
//! - an altered entry: a broken `prev` link singles it out (if the link after the next entry
//!   is intact the earlier entry was altered, else the later one);
//! - an altered tail or rewritten history (all hashes recomputed): the recomputed root
//!   disagrees with a signed checkpoint; the failure names the first seq after the last
//!   checkpoint that still matched, and the seq range in its reason;
//! - a checkpoint not signed by a trusted key: the first seq it alone covers.

use std::collections::BTreeMap;

use crate::checkpoint::{open_checkpoint, Checkpoint, NoteVerifier};
use crate::entry::{EntryHeader, FORMAT_VERSION};
use crate::merkle::{leaf_hash, verify_consistency, Frontier, Hash};

/// The first problem found, and the entry it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The first bad entry, when the problem can be tied to one.
    pub seq: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "first bad entry: seq {seq}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

fn fail(seq: impl Into<Option<u64>>, reason: impl Into<String>) -> Failure {
    Failure {
        seq: seq.into(),
        reason: reason.into(),
    }
}

/// What a successful verification covered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// First seq verified.
    pub first_seq: u64,
    /// Number of entries verified.
    pub entries: u64,
    /// Checkpoints whose signature and root were verified.
    pub checkpoints: u64,
    /// Consistency proofs verified.
    pub consistency_proofs: u64,
    /// Size of the largest verified checkpoint.
    pub signed_size: u64,
    /// Root at the end of the log.
    pub root: Option<Hash>,
}

impl Report {
    /// Entries after the last checkpoint (chain-checked but not covered by a signature).
    pub fn unsigned_tail(&self) -> u64 {
        (self.first_seq + self.entries).saturating_sub(self.signed_size)
    }
}

/// Where verification starts: entry `from`, whose `prev` is `prev`, on top of `frontier`.
#[derive(Debug, Clone)]
pub struct Start {
    /// First seq to verify.
    pub from: u64,
    /// Expected `prev` of entry `from` (the genesis hash when `from` is 0).
    pub prev: Hash,
    /// Compact range of the first `from` leaves (empty when `from` is 0).
    pub frontier: Frontier,
}

impl Start {
    /// Verification from the first entry of a log of `origin`.
    pub fn genesis(origin: &str) -> Self {
        Start {
            from: 0,
            prev: crate::entry::genesis_prev(origin),
            frontier: Frontier::new(),
        }
    }
}

/// Verifies one org log as its entries stream past.
#[derive(Debug)]
pub struct LogVerifier {
    org: String,
    origin: String,
    trusted: Vec<NoteVerifier>,
    from: u64,
    next_seq: u64,
    prev: Hash,
    frontier: Frontier,
    checkpoints: BTreeMap<u64, Checkpoint>,
    last_matched: u64,
    broken_link: Option<u64>,
    report: Report,
}

impl LogVerifier {
    /// A verifier for `org`'s log with origin `origin`, trusting `trusted` checkpoint keys.
    pub fn new(org: &str, origin: &str, trusted: Vec<NoteVerifier>, start: Start) -> Self {
        LogVerifier {
            org: org.to_owned(),
            origin: origin.to_owned(),
            trusted,
            from: start.from,
            next_seq: start.from,
            prev: start.prev,
            last_matched: start.from,
            frontier: start.frontier,
            checkpoints: BTreeMap::new(),
            broken_link: None,
            report: Report {
                first_seq: start.from,
                ..Report::default()
            },
        }
    }

    /// Adds a signed checkpoint note: its signature must verify under a trusted key and its
    /// origin must be this log's. Its root is compared when the entries reach its size.
    pub fn add_checkpoint(&mut self, note: &str) -> Result<(), Failure> {
        let covered_from = |size: u64, cps: &BTreeMap<u64, Checkpoint>| {
            cps.range(..size).next_back().map_or(0, |(s, _)| *s)
        };
        let (cp, _) = match open_checkpoint(note, &self.trusted) {
            Ok(ok) => ok,
            Err(e) => {
                let size = crate::checkpoint::SignedNote::parse(note)
                    .ok()
                    .and_then(|n| Checkpoint::parse_body(n.body).ok())
                    .map(|c| c.size);
                return Err(match size {
                    Some(size) => fail(
                        covered_from(size, &self.checkpoints).min(size.saturating_sub(1)),
                        format!("checkpoint of size {size}: {e}"),
                    ),
                    None => fail(None, format!("unreadable checkpoint: {e}")),
                });
            }
        };
        if cp.origin != self.origin {
            return Err(fail(
                None,
                format!(
                    "checkpoint of size {} is for origin `{}`, not `{}`",
                    cp.size, cp.origin, self.origin
                ),
            ));
        }
        if cp.size < self.from {
            // Before the exported range: it can only be used through consistency proofs.
            return Ok(());
        }
        if let Some(existing) = self.checkpoints.get(&cp.size) {
            if existing.root != cp.root {
                return Err(fail(
                    covered_from(cp.size, &self.checkpoints),
                    format!(
                        "two signed checkpoints of size {} disagree on the root (the log forked)",
                        cp.size
                    ),
                ));
            }
            return Ok(());
        }
        self.report.checkpoints += 1;
        self.checkpoints.insert(cp.size, cp);
        Ok(())
    }

    /// Verifies a consistency proof between two checkpoints already added.
    pub fn check_consistency(&mut self, from: u64, to: u64, proof: &[Hash]) -> Result<(), Failure> {
        let (Some(a), Some(b)) = (self.checkpoints.get(&from), self.checkpoints.get(&to)) else {
            return Err(fail(
                from,
                format!("consistency proof {from} -> {to} refers to an unknown checkpoint"),
            ));
        };
        verify_consistency(from, to, proof, &a.root, &b.root).map_err(|e| {
            fail(
                from,
                format!(
                    "checkpoint of size {to} is not consistent with checkpoint of size {from}: {e}"
                ),
            )
        })?;
        self.report.consistency_proofs += 1;
        Ok(())
    }

    /// Verifies the next entry's leaf bytes.
    pub fn push_entry(&mut self, leaf: &[u8]) -> Result<(), Failure> {
        let pos = self.next_seq;
        let header = EntryHeader::parse(leaf)
            .map_err(|e| fail(pos, format!("entry does not decode: {e}")))?;
        if header.seq != pos {
            return Err(if header.seq > pos {
                fail(
                    pos,
                    format!("entry is missing (found seq {} in its place)", header.seq),
                )
            } else {
                fail(pos, format!("found seq {} out of order", header.seq))
            });
        }
        if header.v != FORMAT_VERSION {
            return Err(fail(pos, format!("unknown format version {}", header.v)));
        }
        if header.org != self.org {
            return Err(fail(pos, format!("entry belongs to org `{}`", header.org)));
        }
        if let Err(e) = header.kind.parse::<crate::entry::EventType>() {
            return Err(fail(pos, e.to_string()));
        }
        let link_ok = header.prev == hex::encode(self.prev);
        if let Some(bad) = self.broken_link {
            // The link into `bad + 1` was broken. If the link into this entry is broken too,
            // entry `bad + 1` was altered; otherwise entry `bad` was.
            let altered = if link_ok { bad } else { bad + 1 };
            return Err(fail(
                altered,
                format!(
                    "entry was altered: its leaf hash does not match the `prev` link recorded \
                     in the next entry (link {bad} -> {} broken)",
                    bad + 1
                ),
            ));
        }
        if !link_ok {
            if pos == self.from {
                return Err(fail(pos, "`prev` does not match the start of the log"));
            }
            self.broken_link = Some(pos - 1);
        }
        let hash = leaf_hash(leaf);
        self.frontier.push(hash);
        self.prev = hash;
        self.next_seq += 1;
        self.report.entries += 1;
        let size = self.next_seq;
        if let Some(cp) = self.checkpoints.get(&size) {
            if cp.root != self.frontier.root() {
                let first = self.broken_link.unwrap_or(self.last_matched);
                return Err(fail(
                    first,
                    format!(
                        "entries {first}..={} do not reproduce the signed checkpoint of size \
                         {size}: an entry in that range was altered or history was rewritten",
                        size - 1
                    ),
                ));
            }
            self.last_matched = size;
            self.report.signed_size = size;
        }
        Ok(())
    }

    /// Ends the stream: every checkpoint must have been reached.
    pub fn finish(mut self) -> Result<Report, Failure> {
        if let Some(bad) = self.broken_link {
            return Err(fail(
                bad,
                format!(
                    "entry was altered: its leaf hash does not match the `prev` link recorded \
                     in seq {}",
                    bad + 1
                ),
            ));
        }
        if let Some((&size, _)) = self.checkpoints.range(self.next_seq + 1..).next() {
            return Err(fail(
                self.next_seq,
                format!(
                    "entry is missing: the entries end at seq {} but a signed checkpoint \
                     covers {size} entries (the tail was truncated)",
                    self.next_seq as i128 - 1
                ),
            ));
        }
        self.report.root = Some(self.frontier.root());
        Ok(self.report)
    }
}
