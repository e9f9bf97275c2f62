//! Manifest roots: which parts of `data` a bundle owns.
//!
//! Roots are compared segment by segment (`a/b` contains `a/b/c` but not `a/bc`), must not
//! overlap one another, and every package and every data path of the bundle must sit under one
//! of them — the rules OPA applies when it activates a bundle.

use crate::data::{Data, Node};
use crate::error::{BundleError, Result};

/// The validated roots of one bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    roots: Vec<Vec<String>>,
}

impl Roots {
    /// Validates manifest roots: each is a `/`-separated path (an empty root owns everything),
    /// and no root contains another.
    pub fn new(roots: &[String]) -> Result<Roots> {
        let parsed: Vec<Vec<String>> = roots.iter().map(|r| segments(r)).collect();
        for (i, a) in parsed.iter().enumerate() {
            if a.iter().any(String::is_empty) {
                return Err(BundleError::Manifest(format!(
                    "root {:?} has an empty path segment",
                    roots[i]
                )));
            }
            for (j, b) in parsed.iter().enumerate().skip(i + 1) {
                if is_prefix(a, b) || is_prefix(b, a) {
                    return Err(BundleError::Manifest(format!(
                        "roots {:?} and {:?} overlap",
                        roots[i], roots[j]
                    )));
                }
            }
        }
        Ok(Roots { roots: parsed })
    }

    /// True if `path` (data path segments) lies under one of the roots.
    pub fn contains(&self, path: &[String]) -> bool {
        self.roots.iter().any(|root| is_prefix(root, path))
    }

    /// True if some root lies strictly below `path`.
    fn has_root_below(&self, path: &[String]) -> bool {
        self.roots
            .iter()
            .any(|root| root.len() > path.len() && is_prefix(path, root))
    }

    /// Checks that a module's package (`["sck", "authz"]` for `package sck.authz`) is under a root.
    pub fn check_package(&self, module: &str, package: &[String]) -> Result<()> {
        if self.contains(package) {
            return Ok(());
        }
        Err(BundleError::OutsideRoots(format!(
            "{module}: package {} is outside the manifest roots {}",
            package.join("."),
            self.describe()
        )))
    }

    /// Checks that every value of the merged data document lies under a root.
    pub fn check_data(&self, data: &Data) -> Result<()> {
        let mut path = Vec::new();
        self.check_data_at(data.root(), &mut path)
    }

    fn check_data_at(&self, node: &Node, path: &mut Vec<String>) -> Result<()> {
        if self.contains(path) {
            return Ok(());
        }
        let children = if self.has_root_below(path) {
            node.members()?
        } else {
            None
        };
        match children {
            Some(children) => {
                for (key, child) in children {
                    path.push(key.clone());
                    self.check_data_at(child, path)?;
                    path.pop();
                }
                Ok(())
            }
            _ => Err(BundleError::OutsideRoots(format!(
                "data at /{} is outside the manifest roots {}",
                path.join("/"),
                self.describe()
            ))),
        }
    }

    fn describe(&self) -> String {
        let names: Vec<String> = self
            .roots
            .iter()
            .map(|r| format!("{:?}", r.join("/")))
            .collect();
        format!("[{}]", names.join(", "))
    }
}

/// Splits a root or data path into segments; `""` and `"/"` give no segments.
pub fn segments(path: &str) -> Vec<String> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return Vec::new();
    }
    trimmed.split('/').map(str::to_owned).collect()
}

fn is_prefix(prefix: &[String], path: &[String]) -> bool {
    prefix.len() <= path.len() && prefix.iter().zip(path).all(|(a, b)| a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots(list: &[&str]) -> Result<Roots> {
        Roots::new(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn path(p: &str) -> Vec<String> {
        segments(p)
    }

    #[test]
    fn segments_compare_whole_names() {
        let r = roots(&["a/b"]).unwrap();
        assert!(r.contains(&path("a/b")));
        assert!(r.contains(&path("a/b/c")));
        assert!(!r.contains(&path("a/bc")));
        assert!(!r.contains(&path("a")));
    }

    #[test]
    fn empty_root_owns_everything() {
        let r = roots(&[""]).unwrap();
        assert!(r.contains(&path("anything/at/all")));
    }

    #[test]
    fn overlapping_roots_are_refused() {
        let err = roots(&["a", "a/b"]).unwrap_err();
        assert_eq!(err.to_string(), r#"manifest: roots "a" and "a/b" overlap"#);
        assert!(roots(&["", "x"]).is_err());
        assert!(roots(&["a/b", "a/bc"]).is_ok());
    }

    #[test]
    fn data_must_sit_under_a_root() {
        let data = |text: &'static [u8]| {
            let mut data = Data::default();
            data.add("data.json", text.into()).unwrap();
            data
        };
        let r = roots(&["sck/authz"]).unwrap();
        let ok = data(br#"{"sck":{"authz":{"x":1}}}"#);
        r.check_data(&ok).unwrap();
        let bad = data(br#"{"sck":{"authz":{},"other":1}}"#);
        assert_eq!(
            r.check_data(&bad).unwrap_err().to_string(),
            r#"data at /sck/other is outside the manifest roots ["sck/authz"]"#
        );
    }

    #[test]
    fn packages_must_sit_under_a_root() {
        let r = roots(&["sck"]).unwrap();
        r.check_package("a.rego", &path("sck/authz")).unwrap();
        let err = r.check_package("b.rego", &path("other/x")).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"b.rego: package other.x is outside the manifest roots ["sck"]"#
        );
    }
}
