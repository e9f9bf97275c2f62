//! Building a bundle from a source tree: merged data, manifest, modules, optional signature.
//!
//! The output is a function of the source files and the options alone — no timestamps, no
//! file-system order, no randomness for RS256/HS256 — so the same input gives byte-identical
//! tarballs, and a plain build of the same tree gives the same file hashes as `opa build`.

use crate::bundle::{Bundle, MANIFEST_FILE};
use crate::canonical::{Json, Numbers};
use crate::data::{is_data_file, Data};
use crate::error::{BundleError, Result};
use crate::manifest::{write_manifest, SckMetadata};
use crate::signing::{self, SigningConfig, SIGNATURES_FILE};
use crate::source::SourceTree;
use crate::tarball::{write_tarball, BundleFile};

/// Which org, bundle name and version an sck-managed bundle carries in `metadata.sck`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SckIdentity {
    pub org: String,
    pub name: String,
    pub version: String,
}

/// How to build.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The manifest revision; defaults to the source manifest's, else empty.
    pub revision: Option<String>,
    /// When set, the manifest gets `rego_version: 1` and `metadata.sck`.
    pub identity: Option<SckIdentity>,
    /// `metadata.sck.built_at` (RFC 3339); left out when not given, keeping builds reproducible.
    pub built_at: Option<String>,
    /// Sign with this key when set.
    pub signing: Option<SigningConfig>,
}

/// A built bundle with its tarball and the tarball's SHA-256 (the bundle's identity).
#[derive(Debug, Clone)]
pub struct Built {
    pub bundle: Bundle,
    pub tarball: Vec<u8>,
    pub sha256: String,
}

/// Builds (and optionally signs) a bundle from `source`.
pub fn build(source: &SourceTree, options: &BuildOptions) -> Result<Built> {
    let mut source_manifest = None;
    let mut data = Data::default();
    let mut modules = Vec::new();
    for (name, bytes) in source.files() {
        if name == MANIFEST_FILE {
            source_manifest = Some(Json::parse(bytes).map_err(|source| BundleError::Json {
                path: name.clone(),
                source,
            })?);
        } else if is_data_file(name) {
            data.add(name, bytes.clone())?;
        } else if name.ends_with(".rego") {
            modules.push(BundleFile::new(name.clone(), bytes.clone()));
        }
    }

    // The one data.json, written straight from the source documents' text.
    let mut data_bytes = Vec::new();
    data.write_canonical(Numbers::Plain, &mut data_bytes)?;
    data_bytes.push(b'\n');
    drop(data);

    let metadata = options.identity.as_ref().map(|id| SckMetadata {
        org: id.org.clone(),
        name: id.name.clone(),
        version: id.version.clone(),
        built_at: options.built_at.clone(),
        source_sha256: source.sha256(),
        entrypoint: None,
    });
    let manifest_bytes = write_manifest(
        source_manifest.as_ref(),
        options.revision.as_deref(),
        metadata.as_ref(),
    )?;

    // Archive order as OPA writes it: data, modules, (signatures,) manifest.
    let mut files = vec![BundleFile::new("data.json", data_bytes)];
    files.extend(modules);
    files.push(BundleFile::new(MANIFEST_FILE, manifest_bytes));
    let bundle = Bundle::from_files(files)?;
    match &options.signing {
        Some(config) => sign_bundle(&bundle, config),
        None => finish(bundle),
    }
}

/// Signs an existing bundle (replacing any signature it had) and writes its tarball.
pub fn sign_bundle(bundle: &Bundle, config: &SigningConfig) -> Result<Built> {
    // Signed order as OPA lists it: modules, data, manifest, anything else.
    let rank = |f: &BundleFile| match f.name.as_str() {
        n if n.ends_with(".rego") => 0,
        n if is_data_file(n) => 1,
        MANIFEST_FILE => 2,
        _ => 3,
    };
    let mut signed = bundle.files.clone();
    signed.sort_by_key(rank);
    let signatures = BundleFile::new(SIGNATURES_FILE, signing::sign(&signed, config)?);
    let mut files = bundle.files.clone();
    let at = files
        .iter()
        .position(|f| f.name == MANIFEST_FILE)
        .unwrap_or(files.len());
    files.insert(at, signatures);
    finish(Bundle::from_files(files)?)
}

fn finish(bundle: Bundle) -> Result<Built> {
    let tarball = write_tarball(&bundle.all_files())?;
    let sha256 = crate::sha256_hex(&tarball);
    Ok(Built {
        bundle,
        tarball,
        sha256,
    })
}
