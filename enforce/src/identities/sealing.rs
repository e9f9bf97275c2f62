//! The master key that seals secrets at rest (HMAC pins, route upstream credentials) (ChaCha20-Poly1305 from the RustCrypto
//! `chacha20poly1305` crate; nothing hand-rolled).
//!
//! The key comes from `SCK_MASTER_KEY` (64 hex digits) or, when unset, from the configured
//! file (`[xsck] master_key_file`, default `<data_dir>/master.key`), generated with mode 0600
//! on first start. Replicas must share it. Sealed form: 12-byte random nonce || ciphertext;
//! the associated data binds a sealed secret to its key id and ANS ID, so a ciphertext copied
//! into another row does not open.

use std::path::Path;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

const NONCE_LEN: usize = 12;

/// The secret-sealing key.
#[derive(Clone)]
pub struct MasterKey {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(redacted)")
    }
}

/// The associated data binding a sealed secret to what it is for: a purpose label and the
/// ids of its row, NUL-separated.
fn associated_data(purpose: &str, binding: &[&str]) -> Vec<u8> {
    let mut aad = purpose.as_bytes().to_vec();
    for part in binding {
        aad.push(0);
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

const IDENTITY_KEY: &str = "sck-identity-key";

impl MasterKey {
    /// A key from 32 raw bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> MasterKey {
        MasterKey {
            cipher: ChaCha20Poly1305::new(&Key::from(*bytes)),
        }
    }

    /// Parses 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<MasterKey, String> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes)
            .map_err(|_| "the master key must be 64 hex digits (32 bytes)".to_owned())?;
        Ok(MasterKey::from_bytes(&bytes))
    }

    /// `SCK_MASTER_KEY`, else `file` (created with a random key if missing).
    pub fn load(file: &Path) -> Result<MasterKey, String> {
        if let Ok(text) = std::env::var("SCK_MASTER_KEY") {
            return MasterKey::from_hex(&text).map_err(|e| format!("SCK_MASTER_KEY: {e}"));
        }
        if file.exists() {
            let text =
                std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
            return MasterKey::from_hex(&text).map_err(|e| format!("{}: {e}", file.display()));
        }
        let key = ChaCha20Poly1305::generate_key(&mut OsRng);
        crate::files::write_private(file, format!("{}\n", hex::encode(key)).as_bytes())?;
        tracing::info!(path = %file.display(), "generated identity master key");
        Ok(MasterKey {
            cipher: ChaCha20Poly1305::new(&key),
        })
    }

    /// Seals `secret` for the key `key_id` of `ans_id`.
    pub fn seal(&self, key_id: &str, ans_id: &str, secret: &[u8]) -> Result<Vec<u8>, String> {
        self.seal_for(IDENTITY_KEY, &[key_id, ans_id], secret)
    }

    /// Opens a sealed secret; fails for a wrong master key, row or tampered bytes.
    pub fn open(&self, key_id: &str, ans_id: &str, sealed: &[u8]) -> Result<Vec<u8>, String> {
        self.open_for(IDENTITY_KEY, &[key_id, ans_id], sealed)
    }

    /// Seals `secret` for `purpose` (a label naming the kind of secret) and the ids in
    /// `binding` (its row): it opens only with the same purpose and ids.
    pub fn seal_for(
        &self,
        purpose: &str,
        binding: &[&str],
        secret: &[u8],
    ) -> Result<Vec<u8>, String> {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = associated_data(purpose, binding);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .map_err(|_| "sealing failed".to_owned())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens what [`Self::seal_for`] sealed for `purpose` and `binding`.
    pub fn open_for(
        &self,
        purpose: &str,
        binding: &[&str],
        sealed: &[u8],
    ) -> Result<Vec<u8>, String> {
        if sealed.len() < NONCE_LEN {
            return Err("sealed secret too short".into());
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| "sealed secret too short".to_owned())?;
        let aad = associated_data(purpose, binding);
        self.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| "sealed secret does not open under the master key".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_for_their_row_and_key() {
        let key = MasterKey::from_bytes(&[1u8; 32]);
        let sealed = key.seal("k1", "ans://a", b"secret").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(key.open("k1", "ans://a", &sealed).unwrap(), b"secret");
        assert!(key.open("k2", "ans://a", &sealed).is_err());
        assert!(key.open("k1", "ans://b", &sealed).is_err());
        assert!(MasterKey::from_bytes(&[2u8; 32])
            .open("k1", "ans://a", &sealed)
            .is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(key.open("k1", "ans://a", &tampered).is_err());
        assert!(key.open("k1", "ans://a", &sealed[..5]).is_err());
        assert!(MasterKey::from_hex("zz").is_err());
        assert!(format!("{key:?}").contains("redacted"));
        // Another purpose with the same ids does not open it either.
        assert!(key
            .open_for("sck-route-credential", &["k1", "ans://a"], &sealed)
            .is_err());
    }
}
