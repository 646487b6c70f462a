//! Text → [`WorkflowDef`]: format detection, size limit, and shape errors with their path.
//!
//! Documents go through `serde_json::Value` first so YAML and JSON share one code path and a
//! shape error (unknown field, wrong type) is reported with its path, e.g. `steps[1].retry`.
//!
//! That value is built under a budget ([`MAX_NODES`], [`MAX_EXPANDED_BYTES`]): YAML aliases
//! let a few kilobytes name millions of nodes (a "billion laughs"), and the budget stops the
//! expansion as it happens, before the memory is spent.

use serde_json::Value;

use super::{Problem, WorkflowDef};

/// Larger documents are refused before parsing: a workflow is a page of text, not a data set.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Values (maps, lists, scalars) a document may expand to.
pub const MAX_NODES: usize = 200_000;
/// Bytes of text (keys and strings) a document may expand to.
pub const MAX_EXPANDED_BYTES: usize = 4 * MAX_DOCUMENT_BYTES;

/// The two accepted file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML (a superset of JSON).
    Yaml,
    /// JSON.
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
    let budget = Budget::default();
    let value: Value = match Format::detect(source) {
        Format::Json => {
            use serde::de::DeserializeSeed;
            let mut de = serde_json::Deserializer::from_str(source);
            Bounded(&budget)
                .deserialize(&mut de)
                .and_then(|v| de.end().map(|()| v))
                .map_err(|e| Problem::new("", format!("invalid JSON: {e}")))?
        }
        Format::Yaml => {
            use serde::de::DeserializeSeed;
            Bounded(&budget)
                .deserialize(serde_norway::Deserializer::from_str(source))
                .map_err(|e| Problem::new("", format!("invalid YAML: {e}")))?
        }
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

/// What is left of a document's expansion budget.
struct Budget {
    nodes: std::cell::Cell<usize>,
    bytes: std::cell::Cell<usize>,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            nodes: std::cell::Cell::new(MAX_NODES),
            bytes: std::cell::Cell::new(MAX_EXPANDED_BYTES),
        }
    }
}

impl Budget {
    fn spend<E: serde::de::Error>(&self, text: usize) -> Result<(), E> {
        let (nodes, bytes) = (self.nodes.get(), self.bytes.get());
        if nodes == 0 || bytes < text {
            return Err(E::custom(format!(
                "the document expands to more than {MAX_NODES} values or {MAX_EXPANDED_BYTES} \
                 bytes of text (YAML aliases repeating a large part?)"
            )));
        }
        self.nodes.set(nodes - 1);
        self.bytes.set(bytes - text);
        Ok(())
    }
}

/// Deserializes a `serde_json::Value`, spending the budget on every value and string.
#[derive(Clone, Copy)]
struct Bounded<'b>(&'b Budget);

impl<'de> serde::de::DeserializeSeed<'de> for Bounded<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Bounded<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        self.0.spend(0)?;
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        self.0.spend(0)?;
        Ok(Value::from(v))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        self.0.spend(0)?;
        Ok(Value::from(v))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        self.0.spend(0)?;
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        self.0.spend(v.len())?;
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        self.0.spend(v.len())?;
        Ok(Value::String(v))
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        self.0.spend(0)?;
        Ok(Value::Null)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        self.0.spend(0)?;
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        serde::de::DeserializeSeed::deserialize(self, d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.0.spend(0)?;
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.0.spend(0)?;
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key_seed(self)? {
            let key = match key {
                Value::String(s) => s,
                // YAML allows any scalar as a key; JSON's keys are text.
                Value::Null => "null".to_string(),
                other => other.to_string(),
            };
            let value = map.next_value_seed(self)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
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
