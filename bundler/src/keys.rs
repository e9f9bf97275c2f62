//! Bundle signing and verification keys, and the algorithm each one pins.
//!
//! A key is PEM (PKCS#8 / PKCS#1 / SEC1 private keys, SPKI / PKCS#1 public keys) or, when the
//! material is not PEM, an HMAC secret. The algorithm always comes from the key (optionally
//! narrowed by an explicit choice that must fit the key type), never from a token header — so
//! `alg` confusion and `none` cannot reach the verifier. OPA accepts ES/RS/PS/HS algorithms for
//! bundles but not EdDSA; sck signs with ES256 by default.

pub use jsonwebtoken::Algorithm;
use jsonwebtoken::{DecodingKey, EncodingKey};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};

use crate::error::{BundleError, Result};

/// The key families a bundle key can belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Rsa,
    P256,
    P384,
    Hmac,
}

impl Family {
    fn default_alg(self) -> Algorithm {
        match self {
            Family::Rsa => Algorithm::RS256,
            Family::P256 => Algorithm::ES256,
            Family::P384 => Algorithm::ES384,
            Family::Hmac => Algorithm::HS256,
        }
    }

    fn allows(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            Family::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            Family::P256 => alg == ES256,
            Family::P384 => alg == ES384,
            Family::Hmac => matches!(alg, HS256 | HS384 | HS512),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Family::Rsa => "an RSA key",
            Family::P256 => "an EC P-256 key",
            Family::P384 => "an EC P-384 key",
            Family::Hmac => "an HMAC secret",
        }
    }
}

/// Parses an algorithm name OPA accepts for bundle signatures (EdDSA and `none` are refused).
pub fn parse_algorithm(name: &str) -> Result<Algorithm> {
    use Algorithm::*;
    let alg = match name.to_ascii_uppercase().as_str() {
        "RS256" => RS256,
        "RS384" => RS384,
        "RS512" => RS512,
        "PS256" => PS256,
        "PS384" => PS384,
        "PS512" => PS512,
        "ES256" => ES256,
        "ES384" => ES384,
        "HS256" => HS256,
        "HS384" => HS384,
        "HS512" => HS512,
        other => {
            return Err(BundleError::Key(format!(
                "unsupported bundle signing algorithm {other:?} (use ES256, ES384, RS256/384/512, PS256/384/512 or HS256/384/512)"
            )))
        }
    };
    Ok(alg)
}

fn choose_alg(family: Family, requested: Option<Algorithm>) -> Result<Algorithm> {
    match requested {
        None => Ok(family.default_alg()),
        Some(alg) if family.allows(alg) => Ok(alg),
        Some(alg) => Err(BundleError::Key(format!(
            "algorithm {alg:?} does not fit {}",
            family.name()
        ))),
    }
}

fn is_pem(material: &[u8]) -> bool {
    String::from_utf8_lossy(material)
        .trim_start()
        .starts_with("-----BEGIN")
}

fn pem_text(material: &[u8]) -> Result<&str> {
    std::str::from_utf8(material).map_err(|_| BundleError::Key("PEM is not valid UTF-8".into()))
}

/// A private key (or HMAC secret) that signs bundles with one algorithm.
#[derive(Clone)]
pub struct SigningKey {
    alg: Algorithm,
    key: EncodingKey,
    public_pem: Option<String>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads a PEM private key or an HMAC secret; `alg` narrows the algorithm and must fit.
    pub fn from_material(material: &[u8], alg: Option<Algorithm>) -> Result<SigningKey> {
        if !is_pem(material) {
            if material.is_empty() {
                return Err(BundleError::Key("HMAC secret is empty".into()));
            }
            let alg = choose_alg(Family::Hmac, alg)?;
            return Ok(SigningKey {
                alg,
                key: EncodingKey::from_secret(material),
                public_pem: None,
            });
        }
        let text = pem_text(material)?;
        let key_err = |e: &dyn std::fmt::Display| BundleError::Key(format!("{e}"));
        if let Some(secret) = p256::SecretKey::from_pkcs8_pem(text)
            .ok()
            .or_else(|| p256::SecretKey::from_sec1_pem(text).ok())
        {
            let alg = choose_alg(Family::P256, alg)?;
            let der = secret.to_pkcs8_der().map_err(|e| key_err(&e))?;
            let public_pem = secret
                .public_key()
                .to_public_key_pem(LineEnding::LF)
                .map_err(|e| key_err(&e))?;
            return Ok(SigningKey {
                alg,
                key: EncodingKey::from_ec_der(der.as_bytes()),
                public_pem: Some(public_pem),
            });
        }
        if let Some(secret) = p384::SecretKey::from_pkcs8_pem(text)
            .ok()
            .or_else(|| p384::SecretKey::from_sec1_pem(text).ok())
        {
            let alg = choose_alg(Family::P384, alg)?;
            let der = secret.to_pkcs8_der().map_err(|e| key_err(&e))?;
            let public_pem = secret
                .public_key()
                .to_public_key_pem(LineEnding::LF)
                .map_err(|e| key_err(&e))?;
            return Ok(SigningKey {
                alg,
                key: EncodingKey::from_ec_der(der.as_bytes()),
                public_pem: Some(public_pem),
            });
        }
        if let Some(private) = rsa::RsaPrivateKey::from_pkcs8_pem(text)
            .ok()
            .or_else(|| rsa::RsaPrivateKey::from_pkcs1_pem(text).ok())
        {
            let alg = choose_alg(Family::Rsa, alg)?;
            let key = EncodingKey::from_rsa_pem(material).map_err(|e| key_err(&e))?;
            let public_pem = private
                .to_public_key()
                .to_public_key_pem(LineEnding::LF)
                .map_err(|e| key_err(&e))?;
            return Ok(SigningKey {
                alg,
                key,
                public_pem: Some(public_pem),
            });
        }
        Err(BundleError::Key(
            "not a supported private key (expected an RSA or EC P-256/P-384 key in PKCS#8, PKCS#1 or SEC1 PEM)"
                .into(),
        ))
    }

    /// Generates a fresh ES256 (P-256) key, returned with its PKCS#8 PEM.
    pub fn generate_es256() -> Result<(SigningKey, String)> {
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let pem = secret
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| BundleError::Key(e.to_string()))?;
        let key = SigningKey::from_material(pem.as_bytes(), Some(Algorithm::ES256))?;
        Ok((key, pem.to_string()))
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.key
    }

    /// The matching public key as SPKI PEM (none for HMAC secrets).
    pub fn public_key_pem(&self) -> Option<&str> {
        self.public_pem.as_deref()
    }
}

/// A public key (or HMAC secret) that verifies bundle signatures with one pinned algorithm.
#[derive(Clone)]
pub struct VerificationKey {
    alg: Algorithm,
    key: DecodingKey,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerificationKey {
    /// Reads a PEM public key or an HMAC secret; `alg` narrows the algorithm and must fit.
    pub fn from_material(material: &[u8], alg: Option<Algorithm>) -> Result<VerificationKey> {
        if !is_pem(material) {
            if material.is_empty() {
                return Err(BundleError::Key("HMAC secret is empty".into()));
            }
            return Ok(VerificationKey {
                alg: choose_alg(Family::Hmac, alg)?,
                key: DecodingKey::from_secret(material),
            });
        }
        let text = pem_text(material)?;
        let key_err = |e: jsonwebtoken::errors::Error| BundleError::Key(e.to_string());
        if p256::PublicKey::from_public_key_pem(text).is_ok() {
            return Ok(VerificationKey {
                alg: choose_alg(Family::P256, alg)?,
                key: DecodingKey::from_ec_pem(material).map_err(key_err)?,
            });
        }
        if p384::PublicKey::from_public_key_pem(text).is_ok() {
            return Ok(VerificationKey {
                alg: choose_alg(Family::P384, alg)?,
                key: DecodingKey::from_ec_pem(material).map_err(key_err)?,
            });
        }
        if rsa::RsaPublicKey::from_public_key_pem(text).is_ok()
            || rsa::RsaPublicKey::from_pkcs1_pem(text).is_ok()
        {
            return Ok(VerificationKey {
                alg: choose_alg(Family::Rsa, alg)?,
                key: DecodingKey::from_rsa_pem(material).map_err(key_err)?,
            });
        }
        if text.contains("PRIVATE KEY") {
            return Err(BundleError::Key(
                "expected a public key, got a private key".into(),
            ));
        }
        Err(BundleError::Key(
            "not a supported public key (expected an RSA or EC P-256/P-384 key in SPKI or PKCS#1 PEM)"
                .into(),
        ))
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_comes_from_the_key() {
        let (signing, _) = SigningKey::generate_es256().unwrap();
        assert_eq!(signing.algorithm(), Algorithm::ES256);
        let public = signing.public_key_pem().unwrap();
        let verify = VerificationKey::from_material(public.as_bytes(), None).unwrap();
        assert_eq!(verify.algorithm(), Algorithm::ES256);
        assert!(VerificationKey::from_material(public.as_bytes(), Some(Algorithm::RS256)).is_err());
        let hmac = VerificationKey::from_material(b"secret", None).unwrap();
        assert_eq!(hmac.algorithm(), Algorithm::HS256);
        assert!(VerificationKey::from_material(b"secret", Some(Algorithm::ES256)).is_err());
    }

    #[test]
    fn refuses_eddsa_none_and_garbage() {
        assert!(parse_algorithm("none").is_err());
        assert!(parse_algorithm("EdDSA").is_err());
        assert!(SigningKey::from_material(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            None
        )
        .is_err());
        assert!(SigningKey::from_material(b"", None).is_err());
    }
}
