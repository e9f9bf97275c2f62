//! Data documents: `data.json` / `data.yaml` files merged into one `data` tree, without copying
//! them.
//!
//! As in OPA, `dir/data.json` is placed at `data.dir`; the root file must hold a JSON object;
//! objects merge recursively and any other collision is an error naming both files.
//!
//! Invariant: a document is validated once, when it is added, and is then kept as its own text
//! (shared with the bundle file it came from, never copied). The merged tree is only as deep
//! as merging needed — the directories files sit in and the objects two files both write
//! into; below that a node is a slice of one document's text, looked into only when a path is
//! asked for (and remembered). So the merged data of a 100 MiB `data.json` is one node.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use bytes::Bytes;
use jiter::{Jiter, Peek};

use crate::canonical::{self, write_go_string, JsonError, Numbers};
use crate::error::{BundleError, Result};
use crate::roots::segments;

/// True if a bundle-relative file name is a data document.
pub fn is_data_file(name: &str) -> bool {
    matches!(
        name.rsplit('/').next(),
        Some("data.json" | "data.yaml" | "data.yml")
    )
}

/// The JSON text of a YAML document.
pub(crate) fn yaml_to_json(name: &str, bytes: &[u8]) -> Result<Vec<u8>> {
    let yaml_error = |message: String| BundleError::Yaml {
        path: name.to_owned(),
        message,
    };
    let value: serde_json::Value =
        yaml_serde::from_slice(bytes).map_err(|e| yaml_error(e.to_string()))?;
    serde_json::to_vec(&value).map_err(|e| yaml_error(e.to_string()))
}

/// The validated JSON text of one data document (JSON or YAML by extension).
fn parse_data_file(name: &str, bytes: Bytes) -> Result<Bytes> {
    if name.ends_with(".json") {
        canonical::validate(&bytes).map_err(|source| BundleError::Json {
            path: name.to_owned(),
            source,
        })?;
        Ok(bytes)
    } else {
        yaml_to_json(name, &bytes).map(Bytes::from)
    }
}

/// A node of the merged data tree.
#[derive(Debug, Clone)]
pub enum Node {
    /// One JSON value as a document wrote it.
    Text(Text),
    /// An object put together from several documents (or the directories they sit in).
    Object(BTreeMap<String, Node>),
}

/// A JSON value's text, and its members once somebody asked for them.
#[derive(Clone)]
pub struct Text {
    json: Bytes,
    members: OnceLock<Option<BTreeMap<String, Node>>>,
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Text({} bytes)", self.json.len())
    }
}

impl Text {
    fn new(json: Bytes) -> Self {
        Text {
            json,
            members: OnceLock::new(),
        }
    }

    fn is_object(&self) -> bool {
        matches!(Jiter::new(&self.json).peek(), Ok(Peek::Object))
    }

    /// Takes the members out (for merging, which turns this node into an object).
    fn take_members(&mut self) -> std::result::Result<Option<BTreeMap<String, Node>>, JsonError> {
        match self.members.take() {
            Some(members) => Ok(members),
            None => members_of(&self.json),
        }
    }
}

/// The members of a JSON text if it is an object, each as a slice of that text. A key given
/// twice keeps its last value, as Go's decoder does.
fn members_of(json: &Bytes) -> std::result::Result<Option<BTreeMap<String, Node>>, JsonError> {
    let mut jiter = Jiter::new(json);
    let syntax = |e: jiter::JiterError, jiter: &Jiter<'_>| JsonError::Syntax(e.description(jiter));
    match jiter.peek() {
        Ok(Peek::Object) => {}
        Ok(_) => return Ok(None),
        Err(e) => return Err(syntax(e, &jiter)),
    }
    let mut map = BTreeMap::new();
    let mut key = match jiter.known_object() {
        Ok(key) => key.map(str::to_owned),
        Err(e) => return Err(syntax(e, &jiter)),
    };
    while let Some(k) = key {
        let peek = jiter.peek().map_err(|e| syntax(e, &jiter))?;
        let start = jiter.current_index();
        canonical::skip_value(&mut jiter, peek)?;
        let value = json.slice(start..jiter.current_index());
        map.insert(k, Node::Text(Text::new(value)));
        key = match jiter.next_key() {
            Ok(key) => key.map(str::to_owned),
            Err(e) => return Err(syntax(e, &jiter)),
        };
    }
    Ok(Some(map))
}

impl Node {
    fn empty() -> Node {
        Node::Object(BTreeMap::new())
    }

    /// The members if this is an object (a document's object is looked into once, then
    /// remembered).
    pub fn members(&self) -> Result<Option<&BTreeMap<String, Node>>> {
        match self {
            Node::Object(map) => Ok(Some(map)),
            Node::Text(text) => {
                if let Some(members) = text.members.get() {
                    return Ok(members.as_ref());
                }
                let members = members_of(&text.json).map_err(internal)?;
                Ok(text.members.get_or_init(|| members).as_ref())
            }
        }
    }

    /// This node as an object to merge into, or `None` if it is not an object.
    fn object_mut(
        &mut self,
    ) -> std::result::Result<Option<&mut BTreeMap<String, Node>>, JsonError> {
        if let Node::Text(text) = self {
            match text.take_members()? {
                Some(map) => *self = Node::Object(map),
                None => return Ok(None),
            }
        }
        Ok(match self {
            Node::Object(map) => Some(map),
            Node::Text(_) => None,
        })
    }

    /// The length of the documents' text under this node (keys of merged objects included).
    fn text_len(&self) -> usize {
        match self {
            Node::Text(text) => text.json.len(),
            Node::Object(map) => map
                .iter()
                .map(|(key, value)| key.len() + 4 + value.text_len())
                .sum(),
        }
    }

    fn write_canonical(
        &self,
        numbers: Numbers,
        out: &mut Vec<u8>,
    ) -> std::result::Result<(), JsonError> {
        match self {
            Node::Text(text) => canonical::write_canonical(&text.json, numbers, out),
            Node::Object(map) => {
                out.push(b'{');
                for (i, (key, value)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_go_string(key, out);
                    out.push(b':');
                    value.write_canonical(numbers, out)?;
                }
                out.push(b'}');
                Ok(())
            }
        }
    }
}

/// A document that was validated when it was added failed to parse again: a bug, refused.
fn internal(e: JsonError) -> BundleError {
    BundleError::Data(format!("data: {e}"))
}

/// The merged data documents of a bundle or a source tree.
#[derive(Debug, Clone)]
pub struct Data {
    root: Node,
    /// Which file put a value at each merge point, for error messages.
    origins: Vec<(Vec<String>, String)>,
}

impl Default for Data {
    fn default() -> Self {
        Data {
            root: Node::empty(),
            origins: Vec::new(),
        }
    }
}

/// Why a merge stopped.
enum MergeError {
    /// Two documents put different values at this path (relative to the merge point).
    Conflict(Vec<String>),
    Json(JsonError),
}

impl From<JsonError> for MergeError {
    fn from(e: JsonError) -> Self {
        MergeError::Json(e)
    }
}

impl Data {
    /// Adds the document of file `name` (e.g. `a/b/data.json` goes to `data.a.b`), validating it.
    pub fn add(&mut self, name: &str, bytes: Bytes) -> Result<()> {
        let text = Text::new(parse_data_file(name, bytes)?);
        let dir = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let path = segments(dir);
        if path.is_empty() && !text.is_object() {
            return Err(BundleError::Data(format!(
                "{name}: the root data document must be a JSON object"
            )));
        }
        let mut node = &mut self.root;
        for (depth, segment) in path.iter().enumerate() {
            let Some(map) = node.object_mut().map_err(internal)? else {
                return Err(self.conflict(name, &path[..depth]));
            };
            node = map.entry(segment.clone()).or_insert_with(Node::empty);
        }
        match merge(node, Node::Text(text)) {
            Ok(()) => {}
            Err(MergeError::Json(e)) => return Err(internal(e)),
            Err(MergeError::Conflict(at)) => {
                let mut full = path.clone();
                full.extend(at);
                return Err(self.conflict(name, &full));
            }
        }
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

    /// The root of the merged tree.
    pub fn root(&self) -> &Node {
        &self.root
    }

    /// True if the merged data has a value at `path`.
    pub fn contains(&self, path: &[String]) -> Result<bool> {
        let mut node = &self.root;
        for segment in path {
            match node.members()?.and_then(|members| members.get(segment)) {
                Some(child) => node = child,
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Appends the canonical form of the merged data to `out`.
    pub fn write_canonical(&self, numbers: Numbers, out: &mut Vec<u8>) -> Result<()> {
        // Room for about the documents' size up front (canonical text is rarely longer), so a
        // large data.json is not grown by doubling and copying.
        out.reserve_exact(self.root.text_len());
        self.root
            .write_canonical(numbers, out)
            .map_err(|e| BundleError::Data(format!("data: {e}")))
    }

    /// The merged data as one JSON text: the document itself when a single document holds
    /// all of it, else the canonical form of the merge.
    pub fn json_text(&self) -> Result<Cow<'_, [u8]>> {
        if let Node::Text(text) = &self.root {
            return Ok(Cow::Borrowed(&text.json));
        }
        let mut out = Vec::new();
        self.write_canonical(Numbers::AsWritten, &mut out)?;
        Ok(Cow::Owned(out))
    }
}

/// Merges `incoming` into `target`.
fn merge(target: &mut Node, incoming: Node) -> std::result::Result<(), MergeError> {
    let Some(existing) = target.object_mut()? else {
        return Err(MergeError::Conflict(Vec::new()));
    };
    if existing.is_empty() {
        // Nothing here yet: the document goes in as it is, whatever it holds.
        *target = incoming;
        return Ok(());
    }
    let new = match incoming {
        Node::Object(map) => map,
        Node::Text(mut text) => match text.take_members()? {
            Some(map) => map,
            // A non-object document may only land where nothing is yet.
            None => return Err(MergeError::Conflict(Vec::new())),
        },
    };
    for (key, value) in new {
        match existing.get_mut(&key) {
            Some(slot) => merge(slot, value).map_err(|e| match e {
                MergeError::Conflict(mut at) => {
                    at.insert(0, key.clone());
                    MergeError::Conflict(at)
                }
                other => other,
            })?,
            None => {
                existing.insert(key, value);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(files: &[(&str, &str)]) -> Result<Vec<u8>> {
        let mut data = Data::default();
        for (name, text) in files {
            data.add(name, Bytes::copy_from_slice(text.as_bytes()))?;
        }
        let mut out = Vec::new();
        data.write_canonical(Numbers::AsWritten, &mut out)?;
        Ok(out)
    }

    #[test]
    fn nested_files_land_at_their_directory() {
        assert_eq!(
            merged(&[
                ("data.json", r#"{"a":{"x":1}}"#),
                ("a/b/data.json", r#"{"y":2}"#),
                ("c/data.yaml", "list: [1, two]\n"),
            ])
            .unwrap(),
            br#"{"a":{"b":{"y":2},"x":1},"c":{"list":[1,"two"]}}"#
        );
    }

    #[test]
    fn root_document_must_be_an_object() {
        let err = merged(&[("data.json", "[1]")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "data.json: the root data document must be a JSON object"
        );
    }

    #[test]
    fn collisions_name_the_path() {
        let err = merged(&[
            ("data.json", r#"{"a":{"b":1}}"#),
            ("a/data.json", r#"{"b":2}"#),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "a/data.json: data at /a/b conflicts with data.json"
        );
        let err = merged(&[("a/data.json", "[1]"), ("data.json", r#"{"a":{"b":1}}"#)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "data.json: data at /a conflicts with a/data.json"
        );
    }

    #[test]
    fn non_object_documents_may_sit_below_the_root() {
        assert_eq!(
            merged(&[("list/data.json", "[1,2]")]).unwrap(),
            br#"{"list":[1,2]}"#
        );
        // An empty object is "nothing yet".
        assert_eq!(
            merged(&[("a/data.json", "{}"), ("a/b/data.json", "true")]).unwrap(),
            br#"{"a":{"b":true}}"#
        );
    }

    #[test]
    fn objects_merge_deep_inside_documents_and_the_last_duplicate_wins() {
        assert_eq!(
            merged(&[
                (
                    "data.json",
                    r#"{"a":{"b":{"c":1},"b":{"c":2,"d":{"e":1}}}}"#
                ),
                ("a/b/d/data.json", r#"{"f":2}"#),
            ])
            .unwrap(),
            br#"{"a":{"b":{"c":2,"d":{"e":1,"f":2}}}}"#
        );
    }

    #[test]
    fn one_document_is_served_as_written_and_looked_into_on_demand() {
        let mut data = Data::default();
        let text = Bytes::from_static(br#"{ "b": {"c": [1]}, "a": 1.50 }"#);
        data.add("data.json", text.clone()).unwrap();
        assert_eq!(&*data.json_text().unwrap(), &text[..]);
        let path = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(data.contains(&path(&["b", "c"])).unwrap());
        assert!(!data.contains(&path(&["b", "c", "d"])).unwrap());
        assert!(!data.contains(&path(&["x"])).unwrap());
        let mut out = Vec::new();
        data.write_canonical(Numbers::Plain, &mut out).unwrap();
        assert_eq!(out, br#"{"a":1.5,"b":{"c":[1]}}"#);
    }

    #[test]
    fn invalid_documents_are_refused_when_added() {
        let mut data = Data::default();
        let err = data
            .add("a/data.json", Bytes::from_static(b"{\"x\": [1,]}"))
            .unwrap_err();
        assert!(
            err.to_string().starts_with("a/data.json: invalid JSON"),
            "{err}"
        );
        let err = data
            .add("b/data.yaml", Bytes::from_static(b"a: [1"))
            .unwrap_err();
        assert!(matches!(err, BundleError::Yaml { .. }), "{err}");
    }
}
