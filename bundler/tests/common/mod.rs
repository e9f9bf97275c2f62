//! Shared by the bundler's integration tests: an HMAC key pair for signing and verifying
//! bundles under key id `k1`.

use sck_bundler::{SigningConfig, SigningKey, VerificationConfig, VerificationKey};

/// Signs with `secret` (HS256) as key `k1`.
pub fn hmac_signing(secret: &[u8]) -> SigningConfig {
    SigningConfig {
        key: SigningKey::from_material(secret, None).unwrap(),
        key_id: Some("k1".into()),
        claims: Default::default(),
    }
}

/// Trusts `secret` as key `k1`.
pub fn hmac_verification(secret: &[u8]) -> VerificationConfig {
    VerificationConfig {
        keys: [(
            "k1".to_string(),
            VerificationKey::from_material(secret, None).unwrap(),
        )]
        .into_iter()
        .collect(),
        ..Default::default()
    }
}
