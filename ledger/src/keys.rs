//! Ledger signing keys: generate, load from a file or an environment variable, and print.
//!
//! A private key is stored in the Go `note` format
//! `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || 32-byte seed)>`. The seed never appears in
//! `Debug` output or error messages.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::SigningKey;

use crate::checkpoint::{key_id, sign_checkpoint, validate_key_name, Checkpoint, NoteVerifier};
use crate::error::{LedgerError, Result};

/// Environment variable that may hold the private key text.
pub const SIGNING_KEY_ENV: &str = "SCK_LEDGER_SIGNING_KEY";

/// A named Ed25519 key that signs checkpoints.
#[derive(Clone)]
pub struct LedgerKey {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for LedgerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerKey")
            .field("name", &self.name)
            .field("verifier", &self.verifier().to_string())
            .finish_non_exhaustive()
    }
}

impl LedgerKey {
    /// A fresh random key named `name`.
    pub fn generate(name: &str) -> Result<Self> {
        validate_key_name(name)?;
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        Ok(LedgerKey {
            name: name.to_owned(),
            key,
        })
    }

    /// A key from a known 32-byte seed (tests and vectors only).
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self> {
        validate_key_name(name)?;
        Ok(LedgerKey {
            name: name.to_owned(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Parses the private key text format.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || LedgerError::InvalidKey("not a PRIVATE+KEY+<name>+<id>+<key> text".into());
        let rest = text.trim().strip_prefix("PRIVATE+KEY+").ok_or_else(bad)?;
        // Names cannot contain '+', but base64 can: split from the left.
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let raw = B64.decode(b64).map_err(|_| bad())?;
        if raw.len() != 33 || raw[0] != 0x01 {
            return Err(bad());
        }
        let seed: [u8; 32] = raw[1..].try_into().map_err(|_| bad())?;
        let key = LedgerKey::from_seed(name, seed)?;
        if hex::encode(key.id()) != id.to_ascii_lowercase() {
            return Err(LedgerError::InvalidKey(
                "private key id does not match its name and key".into(),
            ));
        }
        Ok(key)
    }

    /// Loads the private key text from a file.
    pub fn load_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)?;
        LedgerKey::parse(&text)
    }

    /// Loads the private key text from [`SIGNING_KEY_ENV`], if set.
    pub fn from_env() -> Result<Option<Self>> {
        match std::env::var(SIGNING_KEY_ENV) {
            Ok(text) => LedgerKey::parse(&text).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// The private key text (handle as a secret).
    pub fn to_private_text(&self) -> String {
        let mut raw = vec![0x01];
        raw.extend_from_slice(&self.key.to_bytes());
        format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex::encode(self.id()),
            B64.encode(raw)
        )
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte note key id.
    pub fn id(&self) -> [u8; 4] {
        key_id(&self.name, &self.key.verifying_key())
    }

    /// The public verifier key.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            id: self.id(),
            key: self.key.verifying_key(),
        }
    }

    /// Signs a checkpoint, returning the signed note text.
    pub fn sign(&self, checkpoint: &Checkpoint) -> Result<String> {
        sign_checkpoint(checkpoint, &self.name, &self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_text_round_trips_and_hides_seed() {
        let k = LedgerKey::generate("test/key").unwrap();
        let text = k.to_private_text();
        let back = LedgerKey::parse(&text).unwrap();
        assert_eq!(back.verifier(), k.verifier());
        let dbg = format!("{k:?}");
        assert!(!dbg.contains(text.splitn(5, '+').last().unwrap()));
        assert!(LedgerKey::parse("PRIVATE+KEY+x+00000000+AQ==").is_err());
        let wrong_id = text.replace(&hex::encode(k.id()), "00000000");
        assert!(LedgerKey::parse(&wrong_id).is_err());
    }
}
