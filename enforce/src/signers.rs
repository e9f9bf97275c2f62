//! Bundle signer keys: the private keys `publish` signs with, by signer id.
//!
//! Each signer is a file in `<data_dir>/signers/`: `<id>.pem` (an RSA or EC private key; the
//! algorithm follows the key: ES256 for P-256, RS256 for RSA) or `<id>.secret` (an HMAC secret,
//! HS256). The default signer (`sck-es256` unless configured) is generated as an ES256 key on
//! first start. Private keys never leave this module; public keys are served so sidecars can
//! verify what they download.

use std::collections::BTreeMap;
use std::path::Path;

use sck_bundler::{SigningConfig, SigningKey, VerificationConfig, VerificationKey};
use serde::Serialize;

/// One signer.
#[derive(Debug, Clone)]
pub struct Signer {
    pub id: String,
    key: SigningKey,
    /// Verification key for bundles this signer signed.
    verification: VerificationKey,
}

/// What clients may know about a signer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SignerInfo {
    pub id: String,
    pub algorithm: String,
    /// SPKI PEM; absent for HMAC signers (the secret is never served).
    #[serde(rename = "publicKey", skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    #[serde(rename = "default")]
    pub is_default: bool,
}

impl Signer {
    /// Signing configuration for a bundle: the signer id is the key id.
    pub fn signing_config(&self) -> SigningConfig {
        SigningConfig {
            key: self.key.clone(),
            key_id: Some(self.id.clone()),
            claims: Default::default(),
        }
    }

    /// Verification configuration that accepts exactly this signer's signatures.
    pub fn verification_config(&self) -> VerificationConfig {
        VerificationConfig {
            keys: [(self.id.clone(), self.verification.clone())]
                .into_iter()
                .collect(),
            key_id: Some(self.id.clone()),
            ..Default::default()
        }
    }

    fn info(&self, default: &str) -> SignerInfo {
        SignerInfo {
            id: self.id.clone(),
            algorithm: format!("{:?}", self.key.algorithm()),
            public_key: self.key.public_key_pem().map(str::to_owned),
            is_default: self.id == default,
        }
    }
}

/// All configured signers.
#[derive(Debug, Clone)]
pub struct Signers {
    signers: BTreeMap<String, Signer>,
    default: String,
}

impl Signers {
    /// Loads every signer in `dir`, generating the default one if it is missing.
    pub fn load(dir: &Path, default: &str) -> Result<Signers, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let default_path = dir.join(format!("{default}.pem"));
        if !default_path.exists() && !dir.join(format!("{default}.secret")).exists() {
            let (_, pem) = SigningKey::generate_es256().map_err(|e| e.to_string())?;
            crate::files::write_private(&default_path, pem.as_bytes())?;
            tracing::info!(signer = default, path = %default_path.display(), "generated ES256 bundle signer");
        }
        let mut signers = BTreeMap::new();
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            let (Some(stem), Some(ext)) = (
                path.file_stem().and_then(|s| s.to_str()),
                path.extension().and_then(|s| s.to_str()),
            ) else {
                continue;
            };
            if ext != "pem" && ext != "secret" {
                continue;
            }
            let material = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let key = SigningKey::from_material(&material, None)
                .map_err(|e| format!("signer {}: {e}", path.display()))?;
            let verification = match key.public_key_pem() {
                Some(public) => {
                    VerificationKey::from_material(public.as_bytes(), Some(key.algorithm()))
                }
                None => VerificationKey::from_material(&material, Some(key.algorithm())),
            }
            .map_err(|e| format!("signer {}: {e}", path.display()))?;
            signers.insert(
                stem.to_owned(),
                Signer {
                    id: stem.to_owned(),
                    key,
                    verification,
                },
            );
        }
        if !signers.contains_key(default) {
            return Err(format!(
                "default signer {default:?} not found in {}",
                dir.display()
            ));
        }
        Ok(Signers {
            signers,
            default: default.to_owned(),
        })
    }

    /// The signer `id`, or the default signer when `id` is `None`.
    pub fn get(&self, id: Option<&str>) -> Option<&Signer> {
        self.signers.get(id.unwrap_or(&self.default))
    }

    /// Public descriptions of every signer.
    pub fn infos(&self) -> Vec<SignerInfo> {
        self.signers
            .values()
            .map(|s| s.info(&self.default))
            .collect()
    }
}
