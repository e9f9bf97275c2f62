//! Policy source trees: the Rego modules, data documents and optional `.manifest` a bundle is
//! built from, read from a directory or given as a file map (the compile API).
//!
//! Only bundle files are taken (`*.rego`, `data.json`, `data.yaml`, `data.yml`, the root
//! `.manifest`); hidden files and directories such as `.git` are skipped, and symbolic links
//! are refused rather than followed out of the tree.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use sha2::Digest;

use crate::data::is_data_file;
use crate::error::{BundleError, Result};
use crate::tarball::normalize_path;

/// The files of a policy source tree, by bundle-relative path (contents shared, not copied,
/// with the bundle built from them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceTree {
    files: BTreeMap<String, Bytes>,
}

/// True for files that belong in a bundle built from a source tree.
fn is_source_file(name: &str) -> bool {
    name == ".manifest" || name.ends_with(".rego") || is_data_file(name)
}

impl SourceTree {
    /// Reads every bundle file below `dir`.
    pub fn from_dir(dir: &Path) -> Result<SourceTree> {
        let mut tree = SourceTree::default();
        let meta =
            std::fs::metadata(dir).map_err(|e| BundleError::io(dir.display().to_string(), e))?;
        if !meta.is_dir() {
            return Err(BundleError::io(
                dir.display().to_string(),
                std::io::Error::other("not a directory"),
            ));
        }
        tree.walk(dir, "")?;
        Ok(tree)
    }

    fn walk(&mut self, dir: &Path, prefix: &str) -> Result<()> {
        let io_err = |e| BundleError::io(dir.display().to_string(), e);
        let mut entries = std::fs::read_dir(dir)
            .map_err(io_err)?
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(io_err)?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = format!("{prefix}{name}");
            let kind = entry.file_type().map_err(io_err)?;
            if name.starts_with('.') && !(prefix.is_empty() && name == ".manifest") {
                continue;
            }
            if kind.is_symlink() {
                return Err(BundleError::EntryType {
                    path: rel,
                    kind: "symbolic link",
                });
            }
            if kind.is_dir() {
                self.walk(&entry.path(), &format!("{rel}/"))?;
            } else if kind.is_file() && is_source_file(&rel) {
                let bytes = std::fs::read(entry.path())
                    .map_err(|e| BundleError::io(entry.path().display().to_string(), e))?;
                self.files.insert(rel, Bytes::from(bytes));
            }
        }
        Ok(())
    }

    /// Builds a tree from a file map (paths relative to the tree root). Paths are checked like
    /// tarball entries; files that are not bundle files are refused, so nothing is silently lost.
    pub fn from_files<B: Into<Bytes>>(files: BTreeMap<String, B>) -> Result<SourceTree> {
        let mut tree = SourceTree::default();
        for (path, bytes) in files {
            let name = normalize_path(path.as_bytes())?;
            if !is_source_file(&name) {
                return Err(BundleError::Unsupported(format!(
                    "{name}: not a bundle source file (expected *.rego, data.json, data.yaml or .manifest)"
                )));
            }
            if tree.files.insert(name.clone(), bytes.into()).is_some() {
                return Err(BundleError::DuplicateEntry(name));
            }
        }
        Ok(tree)
    }

    /// The files, sorted by path.
    pub fn files(&self) -> &BTreeMap<String, Bytes> {
        &self.files
    }

    /// SHA-256 over the sorted list of `<sha256 of content>  <path>` lines (the format of
    /// `sha256sum`), identifying the exact source a bundle was built from.
    pub fn sha256(&self) -> String {
        let mut listing = String::new();
        for (path, bytes) in &self.files {
            listing.push_str(&hex::encode(sha2::Sha256::digest(bytes)));
            listing.push_str("  ");
            listing.push_str(path);
            listing.push('\n');
        }
        hex::encode(sha2::Sha256::digest(listing.as_bytes()))
    }
}
