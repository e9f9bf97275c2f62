//! The bundle `.manifest`: revision, roots, Rego version and sck's own metadata.
//!
//! A plain build writes exactly what `opa build` writes (`revision` and `roots`), so its file
//! hashes equal OPA's. An sck-managed build (org, name and version given) adds
//! `rego_version: 1` and `metadata.sck` — fields OPA ignores — which carry the identity that
//! sck's anti-downgrade and revocation checks rely on.

use serde::{Deserialize, Serialize};

use crate::canonical::Json;
use crate::error::{BundleError, Result};
use crate::roots::Roots;

/// The parts of a manifest sck acts on.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Manifest {
    #[serde(default)]
    pub revision: String,
    #[serde(default = "default_roots", deserialize_with = "roots_or_default")]
    pub roots: Vec<String>,
    #[serde(default)]
    pub rego_version: Option<i64>,
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `metadata.sck`: who built this bundle, for which org and bundle name, at which version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SckMetadata {
    pub org: String,
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_at: Option<String>,
    pub source_sha256: String,
    /// The decision rule, e.g. `sck/gateway/decision`; defaults to `<first root>/decision`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<String>,
}

fn default_roots() -> Vec<String> {
    vec![String::new()]
}

fn roots_or_default<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_else(default_roots))
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            revision: String::new(),
            roots: default_roots(),
            rego_version: None,
            metadata: None,
        }
    }
}

impl Manifest {
    /// Parses manifest bytes; unknown fields are ignored, as OPA does.
    pub fn parse(path: &str, bytes: &[u8]) -> Result<Manifest> {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| BundleError::Manifest(format!("{path}: {e}")))?;
        if !value.is_object() {
            return Err(BundleError::Manifest(format!(
                "{path}: must be a JSON object"
            )));
        }
        let manifest: Manifest = serde_json::from_value(value)
            .map_err(|e| BundleError::Manifest(format!("{path}: {e}")))?;
        if let Some(v) = manifest.rego_version {
            if v != 0 && v != 1 {
                return Err(BundleError::Manifest(format!(
                    "rego_version must be 0 or 1, not {v}"
                )));
            }
        }
        Ok(manifest)
    }

    /// The validated roots.
    pub fn roots(&self) -> Result<Roots> {
        Roots::new(&self.roots)
    }

    /// `metadata.sck`, when present and well-formed.
    pub fn sck(&self) -> Option<SckMetadata> {
        let value = self.metadata.as_ref()?.get("sck")?;
        serde_json::from_value(value.clone()).ok()
    }

    /// True when modules must be parsed as Rego v0 (`rego_version: 0`); absent means v1.
    pub fn is_rego_v0(&self) -> bool {
        self.rego_version == Some(0)
    }

    /// The decision rule as a `data.`-rooted rule path: `metadata.sck.entrypoint`, else
    /// `<first root>/decision`.
    pub fn entrypoint(&self) -> String {
        let configured = self
            .metadata
            .as_ref()
            .and_then(|m| m.get("sck"))
            .and_then(|sck| sck.get("entrypoint"))
            .and_then(|e| e.as_str())
            .map(str::to_owned);
        let path = configured.unwrap_or_else(|| {
            let root = self.roots.first().map(String::as_str).unwrap_or("");
            format!("{}/decision", root.trim_matches('/'))
        });
        let dotted = path.trim_matches('/').replace('/', ".");
        format!("data.{dotted}")
    }
}

/// Writes the manifest for a build: the source manifest's fields, the revision (the source's
/// when none is given, always present), and — for an
/// sck-managed build — `rego_version: 1` and `metadata.sck`. Returns canonical JSON plus a
/// newline, the way OPA writes it.
pub fn write_manifest(
    source: Option<&Json>,
    revision: Option<&str>,
    sck: Option<&SckMetadata>,
) -> Result<Vec<u8>> {
    let mut fields = match source {
        Some(Json::Object(map)) => map.clone(),
        Some(_) => return Err(BundleError::Manifest(".manifest must be an object".into())),
        None => Default::default(),
    };
    match revision {
        Some(r) => {
            fields.insert("revision".into(), Json::String(r.to_owned()));
        }
        None => {
            fields
                .entry("revision".into())
                .or_insert_with(|| Json::String(String::new()));
        }
    }
    fields
        .entry("roots".into())
        .or_insert_with(|| Json::Array(vec![Json::String(String::new())]));
    if let Some(sck) = sck {
        fields.insert("rego_version".into(), Json::Number("1".into()));
        let mut metadata = match fields.remove("metadata") {
            Some(Json::Object(map)) => map,
            Some(Json::Null) | None => Default::default(),
            Some(_) => {
                return Err(BundleError::Manifest("metadata must be an object".into()));
            }
        };
        let mut merged = match metadata.remove("sck") {
            Some(Json::Object(map)) => map,
            _ => Default::default(),
        };
        let ours = serde_json::to_value(sck).expect("metadata serialises");
        if let Json::Object(ours) = Json::from_serde(&ours) {
            merged.extend(ours);
        }
        metadata.insert("sck".into(), Json::Object(merged));
        fields.insert("metadata".into(), Json::Object(metadata));
    }
    let mut manifest = Json::Object(fields);
    manifest
        .normalize_numbers()
        .map_err(|e| BundleError::Manifest(e.to_string()))?;
    let mut bytes = manifest.to_canonical_bytes();
    bytes.push(b'\n');
    // Validate what we wrote with the same parser readers use.
    Manifest::parse(".manifest", &bytes)?.roots()?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_build_writes_what_opa_writes() {
        let source = Json::parse(br#"{"roots":["sck"]}"#).unwrap();
        let bytes = write_manifest(Some(&source), Some("sck-vector-1"), None).unwrap();
        assert_eq!(
            bytes,
            b"{\"revision\":\"sck-vector-1\",\"roots\":[\"sck\"]}\n"
        );
    }

    #[test]
    fn sck_build_adds_rego_version_and_metadata() {
        let source =
            Json::parse(br#"{"roots":["a"],"metadata":{"sck":{"entrypoint":"a/allow"}}}"#).unwrap();
        let meta = SckMetadata {
            org: "org-1".into(),
            name: "authz".into(),
            version: "3".into(),
            built_at: None,
            source_sha256: "00".into(),
            entrypoint: None,
        };
        let bytes = write_manifest(Some(&source), Some("r1"), Some(&meta)).unwrap();
        let m = Manifest::parse(".manifest", &bytes).unwrap();
        assert_eq!(m.rego_version, Some(1));
        let sck = m.sck().unwrap();
        assert_eq!((sck.org.as_str(), sck.version.as_str()), ("org-1", "3"));
        assert_eq!(sck.entrypoint.as_deref(), Some("a/allow"));
        assert_eq!(m.entrypoint(), "data.a.allow");
    }

    #[test]
    fn defaults_and_refusals() {
        let m = Manifest::parse(".manifest", br#"{"revision":"x"}"#).unwrap();
        assert_eq!(m.roots, vec![String::new()]);
        assert_eq!(m.entrypoint(), "data.decision");
        assert!(Manifest::parse(".manifest", b"[]").is_err());
        assert!(Manifest::parse(".manifest", br#"{"rego_version":7}"#).is_err());
        let overlapping = Json::parse(br#"{"roots":["a","a/b"]}"#).unwrap();
        assert!(write_manifest(Some(&overlapping), None, None).is_err());
    }
}
