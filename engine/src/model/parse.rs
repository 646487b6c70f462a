//! Text → [`WorkflowDef`]: format detection, size limit, and shape errors with their path.
//!
//! Documents go through `serde_json::Value` first so YAML and JSON share one code path and a
//! shape error (unknown field, wrong type) is reported with its path, e.g. `steps[1].retry`.

use serde_json::Value;

use super::{Problem, WorkflowDef};

/// Larger documents are refused before parsing: a workflow is a page of text, not a data set.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// The two accepted file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    /// JSON when the first non-blank character opens an object, YAML otherwise.
    pub fn detect(source: &str) -> Format {
        if source.trim_start().starts_with('{') {
            Format::Json
        } else {
            Format::Yaml
        }
    }
}

/// Parses a YAML or JSON document into its definition, or the first shape problem.
pub fn parse_def(source: &str) -> Result<WorkflowDef, Problem> {
    if source.len() > MAX_DOCUMENT_BYTES {
        return Err(Problem::new(
            "",
            format!(
                "document is {} bytes; the limit is {} bytes",
                source.len(),
                MAX_DOCUMENT_BYTES
            ),
        ));
    }
    if source.trim().is_empty() {
        return Err(Problem::new("", "document is empty"));
    }
    let value: Value = match Format::detect(source) {
        Format::Json => serde_json::from_str(source)
            .map_err(|e| Problem::new("", format!("invalid JSON: {e}")))?,
        Format::Yaml => serde_norway::from_str(source)
            .map_err(|e| Problem::new("", format!("invalid YAML: {e}")))?,
    };
    if !value.is_object() {
        return Err(Problem::new(
            "",
            "a workflow must be a map with at least `id` and `steps`",
        ));
    }
    serde_path_to_error::deserialize::<_, WorkflowDef>(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        Problem::new(path, e.into_inner().to_string())
    })
}

/// The canonical YAML text of a definition: what export and the builder's YAML tab show.
pub fn to_yaml(def: &WorkflowDef) -> String {
    // Through a JSON value so enums print as one-key maps (`- manual: {}`), not YAML tags.
    serde_json::to_value(def)
        .map_err(|e| e.to_string())
        .and_then(|v| serde_norway::to_string(&v).map_err(|e| e.to_string()))
        .unwrap_or_else(|e| format!("# could not serialise: {e}\n"))
}

/// The canonical JSON text of a definition.
pub fn to_json(def: &WorkflowDef) -> String {
    serde_json::to_string_pretty(def).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
