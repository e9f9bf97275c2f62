//! C2SP `tlog-checkpoint` signed notes with Ed25519 note signatures.
//!
//! Pure, no I/O. A checkpoint body is three lines — origin, tree size, base64 root — each ending
//! in `\n`. A signed note is the body, a blank line, and one or more signature lines
//! `— <key name> <base64(4-byte key id || 64-byte signature)>\n`; the Ed25519 signature covers
//! the body bytes. The key id is the first 4 bytes of SHA-256(name || "\n" || 0x01 || pubkey).
//! Verifier keys use the note format `<name>+<hex key id>+<base64(0x01 || pubkey)>`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::error::{LedgerError, Result};
use crate::merkle::Hash;

/// The Ed25519 algorithm byte of the note key format.
const ALG_ED25519: u8 = 0x01;
/// The signature line prefix: an em dash and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// A tree head: which log, how many leaves, which root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Log origin `<deployment>/<org>`.
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// Merkle root of the first `size` leaves.
    pub root: Hash,
}

impl Checkpoint {
    /// The note body: `origin\nsize\nbase64(root)\n`.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Parses a note body (exactly three lines, each ending in `\n`).
    pub fn parse_body(body: &str) -> Result<Self> {
        let bad = |m: &str| LedgerError::InvalidCheckpoint(m.to_owned());
        let rest = body
            .strip_suffix('\n')
            .ok_or_else(|| bad("body must end in a newline"))?;
        let lines: Vec<&str> = rest.split('\n').collect();
        if lines.len() != 3 {
            return Err(bad("body must have exactly three lines"));
        }
        if lines[0].is_empty() {
            return Err(bad("empty origin"));
        }
        let size: u64 = lines[1]
            .parse()
            .ok()
            .filter(|_| lines[1] == "0" || !lines[1].starts_with('0'))
            .ok_or_else(|| bad("tree size is not a decimal number"))?;
        let root: Hash = B64
            .decode(lines[2])
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad("root is not a base64 SHA-256 hash"))?;
        Ok(Checkpoint {
            origin: lines[0].to_owned(),
            size,
            root,
        })
    }
}

/// The note key id: first 4 bytes of SHA-256(name || "\n" || 0x01 || public key).
pub fn key_id(name: &str, public_key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public_key.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// Checks a key name: non-empty, no whitespace, no `+`.
pub fn validate_key_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(LedgerError::InvalidKey(
            "key name must be non-empty without spaces or '+'".into(),
        ));
    }
    Ok(())
}

/// A public note-verification key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    /// Key name (e.g. `ledger.sck.example/gw-prod-1`).
    pub name: String,
    /// 4-byte key id.
    pub id: [u8; 4],
    /// Ed25519 public key.
    pub key: VerifyingKey,
}

impl NoteVerifier {
    /// The verifier of `name` with public key `key`.
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self> {
        validate_key_name(name)?;
        Ok(NoteVerifier {
            name: name.to_owned(),
            id: key_id(name, &key),
            key,
        })
    }

    /// Parses `<name>+<hex id>+<base64(0x01 || pubkey)>`, checking the id matches.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |m: &str| LedgerError::InvalidKey(m.to_owned());
        let text = text.trim();
        // Names cannot contain '+', but base64 can: split from the left.
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("verifier key must be <name>+<hex id>+<base64 key>"));
        };
        let raw = B64
            .decode(key_b64)
            .map_err(|_| bad("verifier key is not base64"))?;
        if raw.len() != 33 || raw[0] != ALG_ED25519 {
            return Err(bad("verifier key is not an Ed25519 note key"));
        }
        let pk: [u8; 32] = raw[1..].try_into().map_err(|_| bad("bad key length"))?;
        let key = VerifyingKey::from_bytes(&pk).map_err(|_| bad("invalid Ed25519 public key"))?;
        let v = NoteVerifier::new(name, key)?;
        if id_hex.len() != 8 || hex::encode(v.id) != id_hex.to_ascii_lowercase() {
            return Err(bad("key id does not match name and key"));
        }
        Ok(v)
    }

    /// Verifies `signature` over `msg` (strict Ed25519).
    fn verify(&self, msg: &[u8], signature: &[u8; 64]) -> bool {
        self.key
            .verify_strict(msg, &Signature::from_bytes(signature))
            .is_ok()
    }
}

impl std::fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        write!(
            f,
            "{}+{}+{}",
            self.name,
            hex::encode(self.id),
            B64.encode(raw)
        )
    }
}

/// Signs a checkpoint with `key` under `name`, returning the complete signed note.
pub fn sign_checkpoint(checkpoint: &Checkpoint, name: &str, key: &SigningKey) -> Result<String> {
    validate_key_name(name)?;
    if checkpoint.origin.contains('\n') || checkpoint.origin.is_empty() {
        return Err(LedgerError::InvalidCheckpoint("bad origin".into()));
    }
    let body = checkpoint.body();
    let sig = key.sign(body.as_bytes());
    let mut blob = key_id(name, &key.verifying_key()).to_vec();
    blob.extend_from_slice(&sig.to_bytes());
    Ok(format!("{body}\n{SIG_PREFIX}{name} {}\n", B64.encode(blob)))
}

/// A parsed signed note: the body text and its signature lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote<'a> {
    /// The signed body, including its final newline.
    pub body: &'a str,
    /// `(key name, key id, signature)` for every signature line.
    pub signatures: Vec<(&'a str, [u8; 4], [u8; 64])>,
}

impl<'a> SignedNote<'a> {
    /// Splits a note into body and signature lines.
    pub fn parse(note: &'a str) -> Result<Self> {
        let bad = |m: &str| LedgerError::InvalidCheckpoint(m.to_owned());
        let split = note
            .find("\n\n")
            .ok_or_else(|| bad("no blank line before signatures"))?;
        let body = &note[..split + 1];
        let sigs = &note[split + 2..];
        let sigs = sigs
            .strip_suffix('\n')
            .ok_or_else(|| bad("signature block must end in a newline"))?;
        let mut signatures = Vec::new();
        for line in sigs.split('\n') {
            let rest = line
                .strip_prefix(SIG_PREFIX)
                .ok_or_else(|| bad("signature line must start with an em dash"))?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or_else(|| bad("signature line needs a key name and a signature"))?;
            let raw = B64
                .decode(b64)
                .map_err(|_| bad("signature is not base64"))?;
            if raw.len() < 5 {
                return Err(bad("signature too short"));
            }
            let id: [u8; 4] = raw[..4].try_into().map_err(|_| bad("bad key id"))?;
            // Signatures of other algorithms or lengths are skipped, as C2SP allows.
            if let Ok(sig) = <[u8; 64]>::try_from(&raw[4..]) {
                signatures.push((name, id, sig));
            }
        }
        Ok(SignedNote { body, signatures })
    }
}

/// Verifies a signed checkpoint note against trusted keys; returns the checkpoint and the key
/// that signed it. Fails unless at least one signature verifies under a trusted key.
pub fn open_checkpoint<'k>(
    note: &str,
    trusted: &'k [NoteVerifier],
) -> Result<(Checkpoint, &'k NoteVerifier)> {
    let parsed = SignedNote::parse(note)?;
    let checkpoint = Checkpoint::parse_body(parsed.body)?;
    for (name, id, sig) in &parsed.signatures {
        for v in trusted {
            if v.name == *name && v.id == *id && v.verify(parsed.body.as_bytes(), sig) {
                return Ok((checkpoint, v));
            }
        }
    }
    Err(LedgerError::BadSignature(format!(
        "checkpoint of size {} has no valid signature by a trusted key",
        checkpoint.size
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "ledger.sck.example/gw-prod-1";
    const VKEY: &str =
        "ledger.sck.example/gw-prod-1+b3b00cef+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4";
    const NOTE: &str = "ledger.sck.example/gw-prod-1\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\n\u{2014} ledger.sck.example/gw-prod-1 s7AM71pR78tem+U4yLBZTWw4Ju5DGlUNOKi5pLXdIiRVAYTmzMrpsY0MMx1Mtz76N7fUtBQjr9079dFNdryrsfAaSw8=\n";

    fn test_key() -> SigningKey {
        let seed: [u8; 32] = core::array::from_fn(|i| i as u8);
        SigningKey::from_bytes(&seed)
    }

    fn size8() -> Checkpoint {
        Checkpoint {
            origin: NAME.into(),
            size: 8,
            root: B64
                .decode("XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=")
                .unwrap()
                .try_into()
                .unwrap(),
        }
    }

    #[test]
    fn reproduces_vector_byte_for_byte() {
        let key = test_key();
        assert_eq!(hex::encode(key_id(NAME, &key.verifying_key())), "b3b00cef");
        let v = NoteVerifier::new(NAME, key.verifying_key()).unwrap();
        assert_eq!(v.to_string(), VKEY);
        assert_eq!(NoteVerifier::parse(VKEY).unwrap(), v);
        assert_eq!(sign_checkpoint(&size8(), NAME, &key).unwrap(), NOTE);
        let (cp, by) = open_checkpoint(NOTE, std::slice::from_ref(&v)).unwrap();
        assert_eq!(cp, size8());
        assert_eq!(by.name, NAME);
    }

    #[test]
    fn tampered_notes_fail() {
        let v = [NoteVerifier::parse(VKEY).unwrap()];
        for i in 0..NOTE.len() {
            if !NOTE.is_char_boundary(i) || !NOTE.is_char_boundary(i + 1) {
                continue;
            }
            let mut b = NOTE.as_bytes().to_vec();
            b[i] ^= 0x01;
            if let Ok(s) = String::from_utf8(b) {
                assert!(open_checkpoint(&s, &v).is_err(), "flip at {i} accepted");
            }
        }
        let other = SigningKey::from_bytes(&[7u8; 32]);
        let forged = sign_checkpoint(&size8(), NAME, &other).unwrap();
        assert!(open_checkpoint(&forged, &v).is_err());
    }

    #[test]
    fn bad_verifier_keys_are_rejected() {
        for bad in [
            "",
            "name",
            "ledger.sck.example/gw-prod-1+b3b00cee+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4",
            "ledger.sck.example/gw-prod-1+b3b00cef+AgOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4",
            "x+b3b00cef+!!",
        ] {
            assert!(NoteVerifier::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn body_parsing_is_strict() {
        assert!(
            Checkpoint::parse_body("o\n08\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n")
                .is_err()
        );
        assert!(Checkpoint::parse_body("o\n8\nXcna\n").is_err());
        assert!(Checkpoint::parse_body("o\n8\n").is_err());
        assert_eq!(Checkpoint::parse_body(&size8().body()).unwrap(), size8());
    }
}
