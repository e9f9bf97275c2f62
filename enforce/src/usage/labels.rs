//! The `tool` label of the `sck_usage_*` metrics, bounded: a route's first `cap` distinct plain
//! tool names (`[A-Za-z0-9._/-]`, at most 64 bytes) get their own label, every later or other
//! name is `other`, and calls naming no tool are `""`.
//!
//! Invariant: at most `cap + 2` distinct `tool` values per route, whatever callers send.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use super::UsageKey;

const MAX_LEN: usize = 64;
const OTHER: &str = "other";

/// The tool names each route has labelled so far.
pub struct ToolLabels {
    cap: usize,
    labelled: Mutex<HashMap<(String, String), HashSet<String>>>,
}

impl ToolLabels {
    pub fn new(cap: usize) -> ToolLabels {
        ToolLabels {
            cap,
            labelled: Mutex::default(),
        }
    }

    /// The label of `key`'s tool.
    pub fn label(&self, key: &UsageKey) -> String {
        let plain = key.tool.len() <= MAX_LEN
            && key
                .tool
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b));
        if !plain {
            return OTHER.into();
        }
        if key.tool.is_empty() {
            return String::new();
        }
        let mut labelled = self
            .labelled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tools = labelled
            .entry((key.org.clone(), key.route.clone()))
            .or_default();
        if tools.contains(&key.tool) || tools.len() < self.cap {
            tools.insert(key.tool.clone());
            return key.tool.clone();
        }
        OTHER.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_labels_its_first_plain_tool_names_and_the_rest_are_other() {
        let labels = ToolLabels::new(2);
        let key = |route: &str, tool: &str| UsageKey::new("o", route, "s", tool);
        assert_eq!(labels.label(&key("r", "a")), "a");
        assert_eq!(labels.label(&key("r", "b")), "b");
        assert_eq!(labels.label(&key("r", "c")), "other");
        assert_eq!(labels.label(&key("r", "a")), "a", "a name already labelled");
        assert_eq!(
            labels.label(&key("r2", "c")),
            "c",
            "another route has its own"
        );
        assert_eq!(labels.label(&key("r", "")), "");
        for odd in ["a b", "tool\"}", "é", &"x".repeat(65)] {
            assert_eq!(labels.label(&key("r3", odd)), "other", "{odd:?}");
        }
    }
}
