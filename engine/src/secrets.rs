//! The secrets in use, shared by the executor (templates, redaction) and the agents
//! (`{{ secrets.X }}` and their own redaction): below both, so neither imports the other.

use std::collections::HashMap;

/// The secrets in use: by name for templates, and values longest first for redaction (so a
/// secret containing another is redacted whole). Replaced whole when secrets change.
#[derive(Debug, Default)]
pub(crate) struct SecretSet {
    pub(crate) map: HashMap<String, String>,
    pub(crate) values: Vec<String>,
}

impl SecretSet {
    pub(crate) fn new(map: HashMap<String, String>) -> SecretSet {
        // Each value in the forms agents and libraries write it in (a URL, JSON, base64).
        let mut values: Vec<String> = map
            .values()
            .filter(|v| !v.is_empty())
            .flat_map(|v| crate::render::secret_forms(v))
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        SecretSet { map, values }
    }

    /// Of `names`, those not set: one rule for a run's step and for the workflow page.
    pub(crate) fn missing<'a>(&self, names: impl IntoIterator<Item = &'a String>) -> Vec<&'a str> {
        names
            .into_iter()
            .filter(|name| !self.map.contains_key(*name))
            .map(String::as_str)
            .collect()
    }
}
