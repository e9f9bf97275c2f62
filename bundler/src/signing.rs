//! `.signatures.json`: signing a bundle's files and verifying them as OPA does.
//!
//! The signature is one compact JWS whose payload lists every file with its hash. Structured
//! files (`data.json`, `data.yaml`, `.manifest`, `.signatures.json` by base name) are hashed over
//! their canonical JSON form, everything else over raw bytes. Verification picks the key by
//! configured id, else the header `kid`, else the payload `keyid`; pins the algorithm to that
//! key; requires the configured scope to equal the signed scope; and requires the signed file
//! set to equal the bundle's file set exactly. It is a pure function of bytes and keys.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::canonical::{self, JsonError, Numbers};
use crate::error::{BundleError, Result};
use crate::keys::{SigningKey, VerificationKey};
use crate::tarball::BundleFile;

/// Name of the signatures file inside a bundle.
pub const SIGNATURES_FILE: &str = ".signatures.json";

/// One signed file: its bundle-relative name, hex digest and digest algorithm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    pub name: String,
    pub hash: String,
    pub algorithm: String,
}

/// The JWS payload of a bundle signature.
#[derive(Debug, Clone, Deserialize)]
pub struct SignaturePayload {
    pub files: Vec<FileInfo>,
    #[serde(default)]
    pub keyid: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub iss: Option<String>,
    #[serde(default)]
    pub iat: Option<serde_json::Number>,
}

/// How to sign: the key, the key id (header `kid`, and payload `keyid` when there are no
/// custom claims, as `opa build` does), and extra claims such as `scope` and `iss`.
#[derive(Debug, Clone)]
pub struct SigningConfig {
    pub key: SigningKey,
    pub key_id: Option<String>,
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// Which keys may verify, and what the signature must say.
#[derive(Debug, Clone, Default)]
pub struct VerificationConfig {
    /// Keys by id.
    pub keys: BTreeMap<String, VerificationKey>,
    /// The key id to use regardless of what the signature names.
    pub key_id: Option<String>,
    /// The scope the signature must carry (none means: the signature must carry no scope).
    pub scope: Option<String>,
    /// Glob patterns (`*` does not cross `/`) of files left out of the comparison.
    pub exclude_files: Vec<String>,
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifiedSignature {
    pub key_id: String,
    pub algorithm: String,
    pub scope: Option<String>,
    pub issuer: Option<String>,
    pub files: usize,
}

/// True for files OPA hashes over their canonical JSON form.
pub fn is_structured(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    matches!(
        base,
        "data.json" | "data.yaml" | "data.yml" | ".manifest" | SIGNATURES_FILE
    )
}

/// The JSON text of a structured file (YAML converted), which OPA hashes in canonical form.
fn structured_text<'a>(name: &str, bytes: &'a [u8]) -> Result<Cow<'a, [u8]>> {
    if name.ends_with(".yaml") || name.ends_with(".yml") {
        crate::data::yaml_to_json(name, bytes).map(Cow::Owned)
    } else {
        Ok(Cow::Borrowed(bytes))
    }
}

fn json_error(name: &str) -> impl FnOnce(JsonError) -> BundleError + '_ {
    move |source| BundleError::Json {
        path: name.to_owned(),
        source,
    }
}

/// The bytes OPA hashes for a file: canonical JSON for structured files, raw bytes otherwise
/// (for inspection and tests; hashing streams them instead of collecting them).
pub fn hashed_form(name: &str, bytes: &[u8]) -> Result<Vec<u8>> {
    if !is_structured(name) {
        return Ok(bytes.to_vec());
    }
    let mut out = Vec::new();
    canonical::write_canonical(&structured_text(name, bytes)?, Numbers::AsWritten, &mut out)
        .map_err(json_error(name))?;
    Ok(out)
}

/// A file hash algorithm sck accepts.
#[derive(Clone, Copy)]
enum FileHash {
    Sha256,
    Sha384,
    Sha512,
}

/// The hash function for a signed file's `algorithm`: only SHA-256/384/512 (OPA also takes
/// MD5 and SHA-1, which sck refuses).
fn hasher(algorithm: &str) -> Result<FileHash> {
    Ok(match algorithm {
        "SHA-256" => FileHash::Sha256,
        "SHA-384" => FileHash::Sha384,
        "SHA-512" => FileHash::Sha512,
        other => {
            return Err(BundleError::signature(format!(
                "file hash algorithm {other:?} is not accepted (use SHA-256, SHA-384 or SHA-512)"
            )))
        }
    })
}

/// The hex digest of a file's hashed form, computed while it is produced.
fn file_digest(algorithm: &str, name: &str, bytes: &[u8]) -> Result<String> {
    fn hash<D: Digest>(name: &str, bytes: &[u8]) -> Result<String> {
        if !is_structured(name) {
            return Ok(hex::encode(D::digest(bytes)));
        }
        let digest = canonical::canonical_digest::<D>(&structured_text(name, bytes)?)
            .map_err(json_error(name))?;
        Ok(hex::encode(digest))
    }
    match hasher(algorithm)? {
        FileHash::Sha256 => hash::<sha2::Sha256>(name, bytes),
        FileHash::Sha384 => hash::<sha2::Sha384>(name, bytes),
        FileHash::Sha512 => hash::<sha2::Sha512>(name, bytes),
    }
}

/// Hashes one file the way the signature lists it.
pub fn file_info(file: &BundleFile) -> Result<FileInfo> {
    Ok(FileInfo {
        name: file.name.clone(),
        hash: file_digest("SHA-256", &file.name, &file.bytes)?,
        algorithm: "SHA-256".into(),
    })
}

/// Signs `files` (every file of the bundle except `.signatures.json`, in bundle order) and
/// returns the `.signatures.json` content, formatted as `opa build` formats it.
pub fn sign(files: &[BundleFile], config: &SigningConfig) -> Result<Vec<u8>> {
    if config.claims.contains_key("files") {
        return Err(BundleError::Signing(
            "custom claims may not contain \"files\"".into(),
        ));
    }
    let infos = files.iter().map(file_info).collect::<Result<Vec<_>>>()?;
    // A sorted map, so the payload's keys are in the order Go's encoder writes them; the file
    // entries keep their field order (name, hash, algorithm) as OPA writes them.
    #[derive(Serialize)]
    #[serde(untagged)]
    enum Claim<'a> {
        Files(&'a [FileInfo]),
        Value(&'a serde_json::Value),
    }
    let key_id = config.key_id.clone().map(serde_json::Value::String);
    let mut payload: BTreeMap<&str, Claim<'_>> = config
        .claims
        .iter()
        .map(|(k, v)| (k.as_str(), Claim::Value(v)))
        .collect();
    payload.insert("files", Claim::Files(&infos));
    if config.claims.is_empty() {
        if let Some(key_id) = &key_id {
            payload.insert("keyid", Claim::Value(key_id));
        }
    }
    let mut header = Header::new(config.key.algorithm());
    header.typ = None;
    header.kid = config.key_id.clone();
    let jws = jsonwebtoken::encode(&header, &payload, config.key.encoding_key())
        .map_err(|e| BundleError::Signing(e.to_string()))?;
    Ok(signatures_file(&jws))
}

/// `.signatures.json` content for one JWS, byte-for-byte as OPA writes it.
fn signatures_file(jws: &str) -> Vec<u8> {
    format!("{{\n \"signatures\": [\n  \"{jws}\"\n ],\n \"plugin\": \"_default\"\n}}").into_bytes()
}

/// Extracts the single JWS of a `.signatures.json`; zero or several signatures are refused.
pub fn parse_signatures_file(bytes: &[u8]) -> Result<String> {
    #[derive(Deserialize)]
    struct SignaturesFile {
        #[serde(default)]
        signatures: Vec<String>,
    }
    let parsed: SignaturesFile = serde_json::from_slice(bytes)
        .map_err(|e| BundleError::signature(format!("{SIGNATURES_FILE} is not valid: {e}")))?;
    match parsed.signatures.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(BundleError::signature(format!(
            "{SIGNATURES_FILE} contains no signature"
        ))),
        many => Err(BundleError::signature(format!(
            "{SIGNATURES_FILE} contains {} signatures; exactly one is supported",
            many.len()
        ))),
    }
}

/// Checks a `.signatures.json` that is not verified here (an uploaded bundle sck re-signs):
/// everything [`verify`] refuses whatever the key — not exactly one JWS, a malformed header or
/// payload, a file digest algorithm sck does not accept — is refused with the same error.
pub fn check_unverified(bytes: &[u8]) -> Result<()> {
    let (_, payload) = decode_unverified(&parse_signatures_file(bytes)?)?;
    for info in &payload.files {
        hasher(&info.algorithm)?;
    }
    Ok(())
}

/// Decodes a JWS payload without verifying it (for inspection and key selection only).
pub fn decode_unverified(jws: &str) -> Result<(Header, SignaturePayload)> {
    let header = jsonwebtoken::decode_header(jws)
        .map_err(|e| BundleError::signature(format!("malformed JWS header: {e}")))?;
    let payload_b64 = jws
        .split('.')
        .nth(1)
        .ok_or_else(|| BundleError::signature("malformed JWS: no payload"))?;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|e| BundleError::signature(format!("malformed JWS payload: {e}")))?;
    let payload: SignaturePayload = serde_json::from_slice(&payload)
        .map_err(|e| BundleError::signature(format!("malformed JWS payload: {e}")))?;
    Ok((header, payload))
}

/// Verifies `jws` over `files` (the bundle's files, `.signatures.json` excluded or not).
pub fn verify(
    files: &[BundleFile],
    jws: &str,
    config: &VerificationConfig,
) -> Result<VerifiedSignature> {
    let (header, payload) = decode_unverified(jws)?;
    let key_id = config
        .key_id
        .clone()
        .or_else(|| header.kid.clone())
        .or_else(|| payload.keyid.clone())
        .ok_or_else(|| {
            BundleError::signature(
                "no key id: the signature names none and no verification key id is configured",
            )
        })?;
    let key = config
        .keys
        .get(&key_id)
        .ok_or_else(|| BundleError::signature(format!("no verification key with id {key_id:?}")))?;
    if header.alg != key.algorithm() {
        return Err(BundleError::signature(format!(
            "signature uses {:?} but key {key_id:?} is pinned to {:?}",
            header.alg,
            key.algorithm()
        )));
    }
    jsonwebtoken::decode::<serde_json::Value>(
        jws,
        key.decoding_key(),
        &validation(key.algorithm()),
    )
    .map_err(|e| {
        BundleError::signature(format!(
            "signature does not verify with key {key_id:?}: {e}"
        ))
    })?;
    if payload.scope != config.scope {
        return Err(BundleError::signature(format!(
            "scope mismatch: signed for {}, expected {}",
            describe_scope(&payload.scope),
            describe_scope(&config.scope)
        )));
    }
    let matched = check_file_list(files, &payload.files, &config.exclude_files)?;
    Ok(VerifiedSignature {
        key_id,
        algorithm: format!("{:?}", key.algorithm()),
        scope: payload.scope,
        issuer: payload.iss,
        files: matched,
    })
}

fn describe_scope(scope: &Option<String>) -> String {
    match scope {
        Some(s) => format!("scope {s:?}"),
        None => "no scope".into(),
    }
}

/// A validation that checks only the signature and the pinned algorithm: bundle signatures
/// carry no `exp`, `nbf` or `aud`.
fn validation(alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation
}

/// Requires the signed files to equal the bundle's files (minus excludes), hash for hash.
fn check_file_list(files: &[BundleFile], signed: &[FileInfo], exclude: &[String]) -> Result<usize> {
    let excluded = exclusion_set(exclude)?;
    let mut expected: BTreeMap<&str, &FileInfo> = BTreeMap::new();
    for info in signed {
        if expected.insert(info.name.as_str(), info).is_some() {
            return Err(BundleError::signature(format!(
                "file {:?} is listed twice in the signature",
                info.name
            )));
        }
    }
    let mut seen = BTreeSet::new();
    for file in files {
        if file.name == SIGNATURES_FILE || excluded.is_match(&file.name) {
            continue;
        }
        let info = expected.get(file.name.as_str()).ok_or_else(|| {
            BundleError::signature(format!(
                "file {:?} is not covered by the signature",
                file.name
            ))
        })?;
        let actual = file_digest(&info.algorithm, &file.name, &file.bytes)?;
        if !actual.eq_ignore_ascii_case(&info.hash) {
            return Err(BundleError::signature(format!(
                "file {:?} does not match its signed digest (signed {}, actual {actual})",
                file.name, info.hash
            )));
        }
        seen.insert(file.name.as_str());
    }
    let missing: Vec<&str> = expected
        .keys()
        .filter(|name| !seen.contains(*name) && !excluded.is_match(*name))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(BundleError::signature(format!(
            "file(s) {missing:?} are listed in the signature but missing from the bundle"
        )));
    }
    Ok(seen.len())
}

fn exclusion_set(patterns: &[String]) -> Result<globset::GlobSet> {
    let mut builder = globset::GlobSetBuilder::new();
    for pattern in patterns {
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| BundleError::signature(format!("bad exclude pattern {pattern:?}: {e}")))?;
        builder.add(glob);
    }
    builder
        .build()
        .map_err(|e| BundleError::signature(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signatures_file(algorithm: &str) -> Vec<u8> {
        let payload = serde_json::json!({
            "files": [{"name": "data.json", "hash": "00", "algorithm": algorithm}],
        });
        let jws = jsonwebtoken::encode(
            &Header::new(jsonwebtoken::Algorithm::HS256),
            &payload,
            &jsonwebtoken::EncodingKey::from_secret(b"any key"),
        )
        .unwrap();
        serde_json::to_vec(&serde_json::json!({"signatures": [jws]})).unwrap()
    }

    #[test]
    fn unverified_signatures_are_refused_for_what_no_key_could_accept() {
        check_unverified(&signatures_file("SHA-256")).unwrap();
        for algorithm in ["MD5", "SHA-1"] {
            let err = check_unverified(&signatures_file(algorithm)).unwrap_err();
            assert_eq!(err.code(), "signature_invalid");
            assert!(err.to_string().contains(algorithm), "{err}");
        }
        let err = check_unverified(br#"{"signatures": ["not.a.jws"]}"#).unwrap_err();
        assert_eq!(err.code(), "signature_invalid");
    }
}
