//! Data documents: parsing `data.json` / `data.yaml` and merging them into one `data` tree.
//!
//! As in OPA, `dir/data.json` is placed at `data.dir`; the root file must hold a JSON object;
//! objects merge recursively and any other collision is an error naming both files.

use crate::canonical::Json;
use crate::error::{BundleError, Result};
use crate::roots::segments;

/// True if a bundle-relative file name is a data document.
pub fn is_data_file(name: &str) -> bool {
    matches!(
        name.rsplit('/').next(),
        Some("data.json" | "data.yaml" | "data.yml")
    )
}

/// Parses a YAML data document into JSON.
pub fn parse_yaml(name: &str, bytes: &[u8]) -> Result<Json> {
    let value: serde_json::Value =
        yaml_serde::from_slice(bytes).map_err(|e| BundleError::Yaml {
            path: name.to_owned(),
            message: e.to_string(),
        })?;
    Ok(Json::from_serde(&value))
}

/// Parses one data document (JSON or YAML by extension).
pub fn parse_data_file(name: &str, bytes: &[u8]) -> Result<Json> {
    if name.ends_with(".json") {
        Json::parse(bytes).map_err(|source| BundleError::Json {
            path: name.to_owned(),
            source,
        })
    } else {
        parse_yaml(name, bytes)
    }
}

/// Merges data documents, each at the directory of its file, into one object.
pub struct DataMerger {
    root: Json,
    /// Which file put a value at each top-level merge point, for error messages.
    origins: Vec<(Vec<String>, String)>,
}

impl Default for DataMerger {
    fn default() -> Self {
        DataMerger {
            root: Json::empty_object(),
            origins: Vec::new(),
        }
    }
}

impl DataMerger {
    /// Adds the document of file `name` (e.g. `a/b/data.json` goes to `data.a.b`).
    pub fn add(&mut self, name: &str, document: Json) -> Result<()> {
        let dir = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let path = segments(dir);
        if path.is_empty() && !matches!(document, Json::Object(_)) {
            return Err(BundleError::Data(format!(
                "{name}: the root data document must be a JSON object"
            )));
        }
        let mut node = &mut self.root;
        for (depth, segment) in path.iter().enumerate() {
            let Json::Object(map) = node else {
                return Err(self.conflict(name, &path[..depth]));
            };
            node = map
                .entry(segment.clone())
                .or_insert_with(Json::empty_object);
        }
        merge(node, document).map_err(|at| {
            let mut full = path.clone();
            full.extend(at);
            self.conflict(name, &full)
        })?;
        self.origins.push((path, name.to_owned()));
        Ok(())
    }

    fn conflict(&self, name: &str, at: &[String]) -> BundleError {
        let other = self
            .origins
            .iter()
            .filter(|(p, _)| at.starts_with(p))
            .map(|(_, n)| n.as_str())
            .next_back()
            .unwrap_or("another data file");
        BundleError::Data(format!(
            "{name}: data at /{} conflicts with {other}",
            at.join("/")
        ))
    }

    /// The merged data document.
    pub fn finish(self) -> Json {
        self.root
    }
}

/// Merges `incoming` into `target`; on a collision returns the path (relative to `target`).
fn merge(target: &mut Json, incoming: Json) -> std::result::Result<(), Vec<String>> {
    let Json::Object(existing) = target else {
        return Err(Vec::new());
    };
    match incoming {
        Json::Object(new) => {
            for (key, value) in new {
                match existing.get_mut(&key) {
                    Some(slot) => merge(slot, value).map_err(|mut at| {
                        at.insert(0, key.clone());
                        at
                    })?,
                    None => {
                        existing.insert(key, value);
                    }
                }
            }
            Ok(())
        }
        // A non-object document may only land where nothing is yet.
        value if existing.is_empty() => {
            *target = value;
            Ok(())
        }
        _ => Err(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> Json {
        Json::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn nested_files_land_at_their_directory() {
        let mut m = DataMerger::default();
        m.add("data.json", json(r#"{"a":{"x":1}}"#)).unwrap();
        m.add("a/b/data.json", json(r#"{"y":2}"#)).unwrap();
        m.add(
            "c/data.yaml",
            parse_yaml("c/data.yaml", b"list: [1, two]\n").unwrap(),
        )
        .unwrap();
        assert_eq!(
            m.finish().to_canonical_bytes(),
            br#"{"a":{"b":{"y":2},"x":1},"c":{"list":[1,"two"]}}"#
        );
    }

    #[test]
    fn root_document_must_be_an_object() {
        let err = DataMerger::default()
            .add("data.json", json("[1]"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "data.json: the root data document must be a JSON object"
        );
    }

    #[test]
    fn collisions_name_the_path() {
        let mut m = DataMerger::default();
        m.add("data.json", json(r#"{"a":{"b":1}}"#)).unwrap();
        let err = m.add("a/data.json", json(r#"{"b":2}"#)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a/data.json: data at /a/b conflicts with data.json"
        );
    }

    #[test]
    fn non_object_documents_may_sit_below_the_root() {
        let mut m = DataMerger::default();
        m.add("list/data.json", json("[1,2]")).unwrap();
        assert_eq!(m.finish().to_canonical_bytes(), br#"{"list":[1,2]}"#);
    }
}
