//! Any text as a template: the checks validation runs at save time never panic, and a template
//! they let the server render in its own process (`render::all_bounded`) renders within the
//! server's bounds: no panic, at most `MAX_RENDERED` bytes, and no runaway time or memory
//! (`scripts/fuzz.sh` runs it with a 5 s timeout and a 1 GiB RSS limit). Templates it does
//! not vouch for render in the sandbox's child, whose limits the hostile tests prove.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

/// A context like a run's: inputs of each type, a step output with nesting, the run.
static CONTEXT: LazyLock<minijinja::Value> = LazyLock::new(|| {
    minijinja::Value::from_serialize(json!({
        "inputs": {
            "n": 3, "text": "x".repeat(1000), "flag": true,
            "items": (0..100).collect::<Vec<i32>>(),
            "deep": {"a": {"b": {"c": [1, {"d": "e"}]}}}
        },
        "steps": {"a": {"output": {"rows": vec!["r"; 50], "count": 50}, "status": "succeeded"}},
        "run": {"id": "01", "workflow": "w", "trigger": "manual"},
        "secrets": {"TOKEN": "s3cret"}
    }))
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = engine::model::template::references(text);
    let _ = engine::model::template::condition(text);
    let _ = engine::model::template::item_list(text);
    if engine::model::template::check_constants(text).is_err() {
        return;
    }
    let value = Value::String(text.to_string());
    if !engine::render::all_bounded(&value) {
        return;
    }
    let mut with = Map::new();
    with.insert("t".into(), value);
    if let Ok(rendered) = engine::render::render(&with, &CONTEXT) {
        let size = serde_json::to_vec(&rendered["t"]).map_or(0, |b| b.len());
        // A string's JSON adds quotes and escapes to at most MAX_RENDERED bytes of text.
        assert!(
            size <= 6 * engine::render::MAX_RENDERED + 2,
            "rendered {size} bytes"
        );
    }
});
