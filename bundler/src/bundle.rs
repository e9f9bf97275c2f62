//! The in-memory bundle, and reading one from untrusted bytes.
//!
//! [`Bundle::read`] is the single entry point for bundles that arrive from outside (uploads,
//! files, OPA-built tarballs): the tar layer refuses unsafe archives, then this module refuses
//! non-UTF-8 Rego, malformed manifests, overlapping roots, data or packages outside the roots,
//! Wasm modules sck cannot evaluate, and a `.signatures.json` without exactly one signature.

use bytes::Bytes;

use crate::data::{is_data_file, Data};
use crate::error::{BundleError, Result};
use crate::manifest::Manifest;
use crate::policy;
use crate::signing::{self, VerificationConfig, VerifiedSignature, SIGNATURES_FILE};
use crate::tarball::{
    read_tarball, read_tarball_metered, write_tarball, BundleFile, Limits, Meter,
};

/// Name of the manifest file inside a bundle.
pub const MANIFEST_FILE: &str = ".manifest";

/// A structurally valid bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The parsed manifest (defaults when the bundle has none).
    pub manifest: Manifest,
    /// Every file except `.signatures.json`, in archive order.
    pub files: Vec<BundleFile>,
    /// The single JWS of `.signatures.json`, if the bundle is signed.
    pub signature: Option<String>,
    /// The raw `.signatures.json`, kept byte for byte.
    signatures_file: Option<Bytes>,
    /// All data documents merged into one object (over the files' own bytes).
    pub data: Data,
}

/// A Rego module of a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleRef<'a> {
    pub path: &'a str,
    pub source: &'a str,
}

impl Bundle {
    /// Reads and validates an untrusted gzip-compressed bundle.
    pub fn read(tarball: &[u8], limits: &Limits) -> Result<Bundle> {
        Bundle::from_files(read_tarball(tarball, limits)?)
    }

    /// [`Bundle::read`], charging the decompressed bytes to `meter`.
    pub fn read_metered(tarball: &[u8], limits: &Limits, meter: &mut dyn Meter) -> Result<Bundle> {
        Bundle::from_files(read_tarball_metered(tarball, limits, meter)?)
    }

    /// Validates a bundle given as its files.
    pub fn from_files(all_files: Vec<BundleFile>) -> Result<Bundle> {
        let mut manifest = None;
        let mut signature = None;
        let mut signatures_file = None;
        let mut data = Data::default();
        let mut files = Vec::with_capacity(all_files.len());
        for file in all_files {
            let name = file.name.as_str();
            if name == SIGNATURES_FILE {
                signature = Some(signing::parse_signatures_file(&file.bytes)?);
                signatures_file = Some(file.bytes);
                continue;
            }
            if name == MANIFEST_FILE {
                manifest = Some(Manifest::parse(name, &file.bytes)?);
            } else if name.ends_with(".rego") {
                if std::str::from_utf8(&file.bytes).is_err() {
                    return Err(BundleError::InvalidUtf8 {
                        path: name.to_owned(),
                    });
                }
            } else if is_data_file(name) {
                data.add(name, file.bytes.clone())?;
            } else if name.ends_with(".wasm") || name == "plan.json" {
                return Err(BundleError::Unsupported(format!(
                    "{name}: Wasm and plan bundles are not supported; sck evaluates Rego modules"
                )));
            }
            files.push(file);
        }
        let manifest = manifest.unwrap_or_default();
        let roots = manifest.roots()?;
        roots.check_data(&data)?;
        let bundle = Bundle {
            manifest,
            files,
            signature,
            signatures_file,
            data,
        };
        policy::check_packages(&bundle, &roots)?;
        Ok(bundle)
    }

    /// The Rego modules, in archive order.
    pub fn modules(&self) -> impl Iterator<Item = ModuleRef<'_>> {
        self.files
            .iter()
            .filter(|f| f.name.ends_with(".rego"))
            .map(|f| ModuleRef {
                path: &f.name,
                // Checked to be UTF-8 when the bundle was read.
                source: std::str::from_utf8(&f.bytes).unwrap_or_default(),
            })
    }

    /// Verifies the bundle's signature against `config`.
    pub fn verify(&self, config: &VerificationConfig) -> Result<VerifiedSignature> {
        let jws = self.signature.as_deref().ok_or(BundleError::Unsigned)?;
        signing::verify(&self.files, jws, config)
    }

    /// All files of the bundle as they go into the tarball, signatures included.
    pub fn all_files(&self) -> Vec<BundleFile> {
        let mut files = self.files.clone();
        if let Some(bytes) = &self.signatures_file {
            // OPA's position: after data and modules, before the manifest.
            let at = files
                .iter()
                .position(|f| f.name == MANIFEST_FILE)
                .unwrap_or(files.len());
            files.insert(at, BundleFile::new(SIGNATURES_FILE, bytes.clone()));
        }
        files
    }

    /// The gzip-compressed tarball of this bundle.
    pub fn to_tarball(&self) -> Result<Vec<u8>> {
        write_tarball(&self.all_files())
    }
}
