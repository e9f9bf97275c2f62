//! The TLS side of `https://` upstreams: the rustls client configuration every upstream
//! connection uses (ring provider, TLS 1.2 and 1.3, HTTP/1.1 without ALPN), and what a failed
//! handshake is called in an answer.
//!
//! Trust roots: the platform's CA store (`rustls-native-certs`: the certificates the
//! operating system keeps, updated with it, including CAs an operator added there) plus every
//! certificate of `[proxy] upstream_ca_file`, a PEM bundle for private upstreams, read once
//! here at start.
//!
//! Invariants: certificates and host names are always verified (rustls' WebPKI verifier; no
//! setting turns it off); the name sent as SNI and verified is the upstream URL's host
//! (hyper-rustls' default resolver); a CA file that cannot be read, or holds no certificate a
//! trust anchor can be made of, fails the start ([`TrustError`]); a handshake failure is told
//! apart from every other connection failure ([`handshake_failure`]) and described without
//! the peer's certificates or anything sck holds ([`describe`]).

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{CertificateError, ClientConfig, RootCertStore};

/// Why the upstream TLS client could not be set up (the start fails).
#[derive(Debug)]
pub enum TrustError {
    /// `[proxy] upstream_ca_file` could not be read.
    CaFileUnreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    /// It is not a PEM bundle of CA certificates.
    CaFileInvalid { path: PathBuf, reason: String },
    /// rustls refused the configuration (no protocol version the provider supports).
    Config(rustls::Error),
}

impl std::fmt::Display for TrustError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrustError::CaFileUnreadable { path, error } => write!(
                f,
                "[proxy] upstream_ca_file {}: cannot be read: {error}",
                path.display()
            ),
            TrustError::CaFileInvalid { path, reason } => {
                write!(f, "[proxy] upstream_ca_file {}: {reason}", path.display())
            }
            TrustError::Config(error) => write!(f, "upstream TLS client: {error}"),
        }
    }
}

impl Error for TrustError {}

/// The client configuration of upstream connections: the platform's roots, plus those of
/// `ca_file` if given.
pub fn client_config(ca_file: Option<&Path>) -> Result<ClientConfig, TrustError> {
    let mut roots = RootCertStore::empty();
    let platform = rustls_native_certs::load_native_certs();
    for error in &platform.errors {
        tracing::warn!(%error, "a platform CA certificate could not be loaded");
    }
    let (platform_roots, ignored) = roots.add_parsable_certificates(platform.certs);
    if ignored > 0 {
        tracing::warn!(
            ignored,
            "platform CA certificates rustls cannot use were skipped"
        );
    }
    let operator_roots = match ca_file {
        Some(path) => add_ca_file(&mut roots, path)?,
        None => 0,
    };
    if roots.is_empty() {
        tracing::warn!("no trust roots: every https upstream will be refused (upstream_tls)");
    }
    tracing::info!(
        platform_roots,
        operator_roots,
        "upstream TLS trust roots loaded"
    );
    // rustls 0.23.48 deprecates the ring provider because it has no post-quantum key exchange
    // (X25519MLKEM768 is aws-lc-rs's, which needs cmake to build): upstream connections use
    // X25519, P-256 or P-384 (docs/gateway.md).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TrustError::Config)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Adds every certificate of the PEM file at `path` to `roots`; how many there were.
fn add_ca_file(roots: &mut RootCertStore, path: &Path) -> Result<usize, TrustError> {
    let invalid = |reason: String| TrustError::CaFileInvalid {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|error| TrustError::CaFileUnreadable {
        path: path.to_owned(),
        error,
    })?;
    let mut added = 0;
    for (n, certificate) in CertificateDer::pem_slice_iter(&pem).enumerate() {
        let certificate =
            certificate.map_err(|e| invalid(format!("certificate {}: {e}", n + 1)))?;
        roots
            .add(certificate)
            .map_err(|e| invalid(format!("certificate {}: {e}", n + 1)))?;
        added += 1;
    }
    if added == 0 {
        return Err(invalid("holds no PEM certificate".into()));
    }
    Ok(added)
}

/// The TLS error among `error`'s causes, if the failure was the TLS handshake (looking inside
/// the `io::Error`s hyper-rustls and tokio-rustls wrap it in, whose `source` skips it).
pub fn handshake_failure<'e>(error: &'e (dyn Error + 'static)) -> Option<&'e rustls::Error> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        next = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// What failed in a handshake, in words fit for an answer: the reason, never the peer's
/// certificate, the names in it, or anything sck holds.
pub fn describe(error: &rustls::Error) -> &'static str {
    match error {
        rustls::Error::InvalidCertificate(certificate) => match certificate {
            CertificateError::UnknownIssuer => {
                "its certificate is not issued by a CA sck trusts (add the CA to [proxy] upstream_ca_file)"
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "its certificate is not valid for the upstream's host name"
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "its certificate has expired"
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "its certificate is not valid yet"
            }
            CertificateError::Revoked => "its certificate is revoked",
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                "its certificate is not for TLS servers"
            }
            _ => "its certificate was refused",
        },
        rustls::Error::AlertReceived(_) => "it ended the TLS handshake with an alert",
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "it does not speak TLS as sck does (a plain HTTP server at an https URL?)"
        }
        rustls::Error::PeerIncompatible(_) => "it supports no TLS version or cipher sck accepts",
        _ => "the TLS handshake failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_must_be_readable_and_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = client_config(Some(&missing)).unwrap_err();
        assert!(matches!(err, TrustError::CaFileUnreadable { .. }), "{err}");
        assert!(err.to_string().contains("missing.pem"), "{err}");

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = client_config(Some(&empty)).unwrap_err();
        assert!(
            err.to_string().contains("holds no PEM certificate"),
            "{err}"
        );

        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = client_config(Some(&broken)).unwrap_err();
        assert!(err.to_string().contains("certificate 1"), "{err}");
    }

    #[test]
    fn without_a_ca_file_the_client_is_built_on_the_platform_roots() {
        assert!(client_config(None).is_ok());
    }

    #[test]
    fn handshake_failures_are_found_inside_wrapping_io_errors() {
        let tls = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        let wrapped: Box<dyn Error + Send + Sync> = Box::new(std::io::Error::other(inner));
        let found = handshake_failure(wrapped.as_ref()).expect("the TLS error");
        assert!(describe(found).contains("not issued by a CA sck trusts"));

        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(handshake_failure(&refused).is_none());
    }

    #[test]
    fn descriptions_name_the_failure_not_the_certificate() {
        let wrong_name =
            rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                expected: rustls::pki_types::ServerName::try_from("api.example.com").unwrap(),
                presented: vec!["internal.corp".into()],
            });
        let text = describe(&wrong_name);
        assert!(text.contains("host name"), "{text}");
        assert!(!text.contains("internal.corp"), "{text}");
        assert!(describe(&rustls::Error::InvalidCertificate(
            CertificateError::Expired
        ))
        .contains("expired"));
    }
}
