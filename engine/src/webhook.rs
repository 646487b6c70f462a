//! A webhook call's proof and payload, as pure functions: the server's `POST /hooks/{id}`
//! and the fuzz targets (`fuzz/`) run exactly this code.
//!
//! The caller proves it knows the trigger's secret in one of two ways, both compared in
//! constant time: `Authorization: Bearer <secret>`, or `X-Hub-Signature-256: sha256=<hex
//! HMAC-SHA256 of the body>` as GitHub signs. With an `X-Flowscope-Timestamp: <unix seconds>`
//! header the signed text is `<timestamp>.<body>`, and a timestamp more than [`MAX_SKEW_S`]
//! from the server's clock is stale.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};

/// How far a signed timestamp may be from the server's clock, in seconds.
pub const MAX_SKEW_S: i64 = 300;

/// The header of a GitHub-style HMAC-SHA256 signature (`sha256=<hex>`).
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// The header of the delivery's unix time, signed with the body.
pub const TIMESTAMP_HEADER: &str = "x-flowscope-timestamp";

/// What the caller proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// The secret itself, as a bearer token.
    Bearer,
    /// A valid signature (hex): to be accepted once, so a replay is refused.
    Signature(String),
}

/// Why a call is refused: the message for the caller (401).
pub type Refusal = String;

/// Checks the caller's proof from its `Authorization`, signature and timestamp headers.
pub fn verify(
    authorization: Option<&str>,
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
    secret: &[u8],
    now_s: i64,
) -> Result<Proof, Refusal> {
    if let Some(auth) = authorization {
        let token = auth
            .strip_prefix("Bearer ")
            .ok_or_else(|| "Authorization must be `Bearer <secret>`".to_string())?;
        return match constant_time_eq(token.trim().as_bytes(), secret) {
            true => Ok(Proof::Bearer),
            false => Err("wrong bearer token".into()),
        };
    }
    let Some(sent) = signature else {
        return Err("send the secret as `Authorization: Bearer <secret>`, or sign the body with it (X-Hub-Signature-256: sha256=<hex HMAC-SHA256>)".into());
    };
    let tag = sent
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h.trim()).ok())
        .ok_or_else(|| "X-Hub-Signature-256 must be `sha256=<hex digest>`".to_string())?;
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret).map_err(|e| format!("HMAC key: {e}"))?;
    if let Some(ts) = timestamp {
        let at: i64 = ts
            .trim()
            .parse()
            .map_err(|_| format!("{TIMESTAMP_HEADER} must be unix seconds, not \"{ts}\""))?;
        // Saturating: a timestamp near i64::MIN must be stale, not an overflow (a panic in a
        // debug build, and a wrapped "fresh" skew in a release one).
        let skew = now_s.saturating_sub(at);
        if skew.saturating_abs() > MAX_SKEW_S {
            return Err(format!(
                "stale signature: its timestamp is {skew}s from the server's clock (at most {MAX_SKEW_S}s)"
            ));
        }
        mac.update(ts.trim().as_bytes());
        mac.update(b".");
    }
    mac.update(body);
    mac.verify_slice(&tag)
        .map_err(|_| "the signature does not match the body".to_string())?;
    Ok(Proof::Signature(hex::encode(tag)))
}

/// The run's inputs from the body: the whole body as the input `body_input` names, if it names
/// one; else the body's keys (empty, or a JSON object).
pub fn inputs_of(body: &[u8], body_input: Option<&str>) -> Result<Map<String, Value>, String> {
    let Some(name) = body_input else {
        return inputs(body);
    };
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not JSON ({e}); it becomes the input \"{name}\""))?;
    Ok(Map::from_iter([(name.to_string(), value)]))
}

/// A run's labels from a webhook call, by the trigger's `labels:` mapping: a JSON Pointer
/// into the body, or `header:NAME`. A label whose place is absent, or holds an object or a
/// list, is left out; a value is cut to [`crate::search::MAX_LABEL_VALUE`] characters, its
/// control characters made spaces: the sender's data must not refuse the delivery.
pub fn labels_of<'a>(
    mapping: &indexmap::IndexMap<String, String>,
    body: &Value,
    header: impl Fn(&str) -> Option<&'a str>,
) -> crate::search::Labels {
    let mut labels = crate::search::Labels::new();
    for (key, from) in mapping {
        let value = match from.strip_prefix("header:") {
            Some(name) => header(name.trim()).map(str::to_string),
            None => match body.pointer(from) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(v @ (Value::Number(_) | Value::Bool(_))) => Some(v.to_string()),
                _ => None,
            },
        };
        let Some(value) = value else { continue };
        let value: String = value
            .chars()
            .take(crate::search::MAX_LABEL_VALUE)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if !value.trim().is_empty() {
            labels.insert(key.clone(), value);
        }
    }
    labels
}

/// The run's inputs from the body: empty, or a JSON object.
pub fn inputs(body: &[u8]) -> Result<Map<String, Value>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("the body must be a JSON object: it becomes the run's inputs".into()),
        Err(e) => Err(format!(
            "the body is not JSON ({e}); it must be a JSON object of the run's inputs"
        )),
    }
}

/// Equality whose time depends on the lengths only, not on where the bytes differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_the_body_and_headers() {
        let mapping: indexmap::IndexMap<String, String> = [
            ("branch", "/ref"),
            ("repo", "/repository/full_name"),
            ("size", "/size"),
            ("event", "header:X-GitHub-Event"),
            ("gone", "/nothing/here"),
            ("obj", "/repository"),
            ("msg", "/message"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let body = serde_json::json!({
            "ref": "refs/heads/main",
            "repository": {"full_name": "acme/app"},
            "size": 3,
            "message": format!("line one\nline two{}", "x".repeat(500)),
        });
        let labels = labels_of(&mapping, &body, |h| {
            (h == "X-GitHub-Event").then_some("push")
        });
        assert_eq!(labels["branch"], "refs/heads/main");
        assert_eq!(labels["repo"], "acme/app");
        assert_eq!(labels["size"], "3");
        assert_eq!(labels["event"], "push");
        assert!(!labels.contains_key("gone") && !labels.contains_key("obj"));
        assert!(labels["msg"].starts_with("line one line two"));
        assert_eq!(
            labels["msg"].chars().count(),
            crate::search::MAX_LABEL_VALUE
        );
        crate::search::check_labels(&labels).unwrap();
    }

    #[test]
    fn extreme_timestamps_are_stale_not_an_overflow() {
        for ts in [
            i64::MIN.to_string(),
            i64::MAX.to_string(),
            "-9223372036854775807".into(),
        ] {
            let refused = verify(
                None,
                Some("sha256=00"),
                Some(&ts),
                b"{}",
                b"k",
                1_800_000_000,
            );
            assert!(
                matches!(&refused, Err(m) if m.contains("stale")),
                "{ts}: {refused:?}"
            );
        }
    }

    #[test]
    fn inputs_are_an_object_or_nothing() {
        assert!(inputs(b"  ").expect("empty").is_empty());
        assert_eq!(inputs(br#"{"a":1}"#).expect("object")["a"], 1);
        assert!(inputs(b"[1]").is_err());
        assert!(inputs(b"{").is_err());
    }
}
