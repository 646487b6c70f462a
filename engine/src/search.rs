//! What a run is found by: its labels (`env: prod`, given when it is triggered) and the text
//! of its inputs, outputs and errors. The rules live here, free of the runtime, so the API,
//! the CLI, the webhook and the monitor in the browser all check them the same way.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// A run's labels, key to value, in key order.
pub type Labels = BTreeMap<String, String>;

/// At most this many labels on a run.
pub const MAX_LABELS: usize = 16;
/// A label key is at most this many characters.
pub const MAX_LABEL_KEY: usize = 63;
/// A label value is at most this many characters.
pub const MAX_LABEL_VALUE: usize = 200;
/// At most this many `label=k:v` filters at once.
pub const MAX_LABEL_FILTERS: usize = 8;

/// Checks a label key: letters, digits and `_ . - /`, starting with a letter or digit.
pub fn check_label_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("a label key is empty".into());
    }
    if key.chars().count() > MAX_LABEL_KEY {
        return Err(format!(
            "label key \"{}…\" is longer than {MAX_LABEL_KEY} characters",
            key.chars().take(20).collect::<String>()
        ));
    }
    let first_ok = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'));
    if !first_ok || !rest_ok {
        return Err(format!(
            "label key \"{key}\" may hold letters, digits and _ . - / only, and starts with a letter or digit"
        ));
    }
    Ok(())
}

/// Checks a label value: 1 to [`MAX_LABEL_VALUE`] characters, no control characters.
pub fn check_label_value(key: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("labels.{key}: the value is empty"));
    }
    if value.chars().count() > MAX_LABEL_VALUE {
        return Err(format!(
            "labels.{key}: the value is longer than {MAX_LABEL_VALUE} characters"
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("labels.{key}: the value holds a control character"));
    }
    Ok(())
}

/// Checks a whole label set.
pub fn check_labels(labels: &Labels) -> Result<(), String> {
    if labels.len() > MAX_LABELS {
        return Err(format!(
            "labels: {} labels given; a run has at most {MAX_LABELS}",
            labels.len()
        ));
    }
    for (key, value) in labels {
        check_label_key(key).map_err(|e| format!("labels: {e}"))?;
        check_label_value(key, value)?;
    }
    Ok(())
}

/// Labels from a JSON object (a trigger's body): string values, or numbers and booleans
/// written as text.
pub fn labels_from_json(object: &Map<String, Value>) -> Result<Labels, String> {
    let mut labels = Labels::new();
    for (key, value) in object {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                return Err(format!(
                    "labels.{key}: a label's value is a string, not {}",
                    kind_of(value)
                ))
            }
        };
        labels.insert(key.clone(), text);
    }
    check_labels(&labels)?;
    Ok(labels)
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
        _ => "a scalar",
    }
}

/// One `label=k:v` filter (the monitor's, the API's), checked.
pub fn parse_label_filter(text: &str) -> Result<(String, String), String> {
    let Some((key, value)) = text.split_once(':') else {
        return Err(format!(
            "label: \"{text}\" is not key:value (for example env:prod)"
        ));
    };
    let (key, value) = (key.trim(), value.trim());
    check_label_key(key).map_err(|e| format!("label: {e}"))?;
    check_label_value(key, value).map_err(|e| e.replacen("labels.", "label ", 1))?;
    Ok((key.to_string(), value.to_string()))
}

/// A request's `label=k:v` filters, checked: blank ones skipped, at most
/// [`MAX_LABEL_FILTERS`], each [`parse_label_filter`]. The API and the monitor read them here.
pub fn parse_label_filters<'a>(
    given: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<(String, String)>, String> {
    let given: Vec<&str> = given.into_iter().filter(|v| !v.trim().is_empty()).collect();
    if given.len() > MAX_LABEL_FILTERS {
        return Err(format!(
            "label: {} filters given; at most {MAX_LABEL_FILTERS} at once",
            given.len()
        ));
    }
    given.into_iter().map(parse_label_filter).collect()
}

/// The shortest word search looks for: both indexes are of three-character pieces.
pub const MIN_WORD: usize = 3;
/// At most this many words in one search.
pub const MAX_WORDS: usize = 8;
/// A search is at most this many characters.
pub const MAX_QUERY: usize = 200;
/// The text of a run that search reads is cut at this many bytes.
pub const MAX_DOCUMENT: usize = 32 * 1024;

/// A search over runs' inputs, outputs and errors: every word must appear, in any case, as
/// part of the text (`ord-17` finds `"order": "ord-1742"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    words: Vec<String>,
}

impl SearchQuery {
    /// Parses what a person typed. `None` for a blank search.
    pub fn parse(text: &str) -> Result<Option<SearchQuery>, String> {
        if text.chars().count() > MAX_QUERY {
            return Err(format!(
                "q: the search is longer than {MAX_QUERY} characters"
            ));
        }
        if text.chars().any(char::is_control) {
            return Err("q: the search holds a control character".into());
        }
        let words: Vec<String> = text
            .split_whitespace()
            .map(|w| w.trim_matches('"').to_lowercase())
            .filter(|w| !w.is_empty())
            .collect();
        if words.is_empty() {
            return Ok(None);
        }
        if words.len() > MAX_WORDS {
            return Err(format!(
                "q: {} words; a search has at most {MAX_WORDS}",
                words.len()
            ));
        }
        if let Some(short) = words.iter().find(|w| w.chars().count() < MIN_WORD) {
            return Err(format!(
                "q: \"{short}\" is shorter than {MIN_WORD} characters; search looks for words of {MIN_WORD} or more"
            ));
        }
        Ok(Some(SearchQuery { words }))
    }

    /// The words, lower-cased.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// The words as one SQLite FTS5 query: each a quoted phrase (so `-`, `:` or `*` typed in
    /// it are text, not operators), all of them required.
    pub fn fts5(&self) -> String {
        self.words
            .iter()
            .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// Each word as a `LIKE`/`ILIKE` pattern (`%word%`, with `%`, `_` and `\` escaped for
    /// `ESCAPE '\'`).
    pub fn like_patterns(&self) -> Vec<String> {
        self.words
            .iter()
            .map(|w| {
                let escaped = w
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                format!("%{escaped}%")
            })
            .collect()
    }
}

/// The text search reads of a run: its inputs, its outputs and its errors, as JSON text, cut
/// at [`MAX_DOCUMENT`] bytes (a large output is not written out whole to be cut).
pub fn document<'a>(
    inputs: &Value,
    outputs: impl IntoIterator<Item = &'a Value>,
    errors: &[&str],
) -> String {
    let mut doc = Capped(Vec::with_capacity(256));
    let _ = serde_json::to_writer(&mut doc, inputs);
    for output in outputs {
        let _ = std::io::Write::write_all(&mut doc, b"\n");
        let _ = serde_json::to_writer(&mut doc, output);
    }
    for error in errors {
        let _ = std::io::Write::write_all(&mut doc, b"\n");
        let _ = std::io::Write::write_all(&mut doc, error.as_bytes());
    }
    let mut bytes = doc.0;
    // Cut on a character.
    if let Err(e) = std::str::from_utf8(&bytes) {
        bytes.truncate(e.valid_up_to());
    }
    String::from_utf8(bytes).unwrap_or_default()
}

/// A buffer that takes [`MAX_DOCUMENT`] bytes and refuses the rest.
struct Capped(Vec<u8>);

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = MAX_DOCUMENT - self.0.len();
        if room == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let n = buf.len().min(room);
        self.0.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_are_checked_with_their_key() {
        let ok = labels_from_json(
            json!({"env": "prod", "build": 42, "ok": true})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(ok["build"], "42");
        assert_eq!(ok["ok"], "true");
        let e = labels_from_json(json!({"env": {"a": 1}}).as_object().unwrap()).unwrap_err();
        assert_eq!(e, "labels.env: a label's value is a string, not an object");
        let e = labels_from_json(json!({"bad key": "x"}).as_object().unwrap()).unwrap_err();
        assert!(e.contains("\"bad key\" may hold letters"), "{e}");
        let e = labels_from_json(json!({"env": ""}).as_object().unwrap()).unwrap_err();
        assert_eq!(e, "labels.env: the value is empty");
        let many: Map<String, Value> = (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert!(labels_from_json(&many).unwrap_err().contains("17 labels"));
    }

    #[test]
    fn label_filters_split_at_the_first_colon() {
        assert_eq!(
            parse_label_filter("url:https://x").unwrap(),
            ("url".to_string(), "https://x".to_string())
        );
        assert!(parse_label_filter("env")
            .unwrap_err()
            .contains("not key:value"));
        assert!(parse_label_filter("env:").unwrap_err().contains("empty"));
        assert_eq!(parse_label_filters(["a:1", " ", "b:2"]).unwrap().len(), 2);
        let nine: Vec<String> = (0..9).map(|i| format!("k{i}:v")).collect();
        assert!(parse_label_filters(nine.iter().map(String::as_str))
            .unwrap_err()
            .contains("at most 8"));
    }

    #[test]
    fn a_search_quotes_every_word() {
        let q = SearchQuery::parse("  ORD-17 \"x*y\" 50%_off ")
            .unwrap()
            .unwrap();
        assert_eq!(q.words(), ["ord-17", "x*y", "50%_off"]);
        assert_eq!(q.fts5(), "\"ord-17\" AND \"x*y\" AND \"50%_off\"");
        assert_eq!(q.like_patterns()[2], "%50\\%\\_off%");
        assert_eq!(SearchQuery::parse("   ").unwrap(), None);
        assert!(SearchQuery::parse("ab cde")
            .unwrap_err()
            .contains("\"ab\" is shorter"));
        assert!(SearchQuery::parse(&"a".repeat(201)).is_err());
    }

    #[test]
    fn a_document_is_cut_on_a_character() {
        let big = json!({"s": "é".repeat(MAX_DOCUMENT)});
        let doc = document(&big, [], &["boom"]);
        assert!(doc.len() <= MAX_DOCUMENT && doc.len() > MAX_DOCUMENT - 4);
        let doc = document(&json!({"a": 1}), [&json!({"b": 2})], &["it broke"]);
        assert_eq!(doc, "{\"a\":1}\n{\"b\":2}\nit broke");
    }
}
