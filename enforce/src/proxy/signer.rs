//! The gateway's own X-SCK identity: every request sck forwards to an upstream is signed
//! (`SCK-ED25519-V1`) as this ANS ID, so the upstream can verify the call came through the
//! gateway with the public key alone (`GET /api/v1/enforcement/routes/signer`, or pin it).
//!
//! The Ed25519 key is `[proxy] signing_key_file` (default `<data_dir>/gateway-signing.key`,
//! 64 hex digits of the seed, generated with mode 0600 on first start; replicas share it).
//! Signing is `sck_wire::xsck`'s: the string to sign, the signature and the header names.

use std::path::Path;

use base64::Engine;
use rand::RngCore;
use sck_wire::xsck::{self, Scheme, SignedRequest};
use serde::Serialize;
use sha2::Digest;

/// The gateway's signing identity.
pub struct GatewaySigner {
    ans_id: String,
    key_id: String,
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for GatewaySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewaySigner")
            .field("ans_id", &self.ans_id)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// What an upstream needs to verify the gateway's signatures.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignerView {
    pub ans_id: String,
    pub key_id: String,
    /// `ed25519`
    pub scheme: String,
    /// Base64 of the 32-byte Ed25519 public key.
    pub public_key: String,
}

impl GatewaySigner {
    /// Loads (or first generates) the key in `file` for `ans_id`.
    pub fn load(file: &Path, ans_id: String) -> Result<GatewaySigner, String> {
        let seed = if file.exists() {
            let text =
                std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
            let mut seed = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut seed)
                .map_err(|_| format!("{}: expected 64 hex digits", file.display()))?;
            seed
        } else {
            let mut seed = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut seed);
            crate::files::write_private(file, format!("{}\n", hex::encode(seed)).as_bytes())?;
            tracing::info!(path = %file.display(), "generated the gateway's X-SCK signing key");
            seed
        };
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let digest = sha2::Sha256::digest(key.verifying_key().as_bytes());
        Ok(GatewaySigner {
            key_id: format!("xk_gw_{}", hex::encode(&digest[..8])),
            ans_id,
            key,
        })
    }

    pub fn view(&self) -> SignerView {
        SignerView {
            ans_id: self.ans_id.clone(),
            key_id: self.key_id.clone(),
            scheme: Scheme::Ed25519.as_str().into(),
            public_key: base64::engine::general_purpose::STANDARD
                .encode(self.key.verifying_key().as_bytes()),
        }
    }

    /// The X-SCK headers (lowercase names) signing `request` for `org` at `now`.
    pub fn headers(
        &self,
        request: &SignedRequest<'_>,
        org: &str,
        now: i64,
    ) -> [(&'static str, String); 6] {
        let mut nonce = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let nonce = hex::encode(nonce);
        let timestamp = now.to_string();
        let message = xsck::string_to_sign(
            Scheme::Ed25519,
            request,
            &timestamp,
            Some(&nonce),
            &self.ans_id,
            org,
        );
        [
            (
                xsck::SIGNATURE,
                xsck::sign_ed25519(&self.key, &message).header_value(),
            ),
            (xsck::TIMESTAMP, timestamp),
            (xsck::NONCE, nonce),
            (xsck::ANS_ID, self.ans_id.clone()),
            (xsck::ORGANIZATION, org.to_owned()),
            (xsck::KEY_ID, self.key_id.clone()),
        ]
    }
}
