//! A webhook call's headers and body, as an attacker sends them: the proof check and the
//! payload parsing refuse or accept, never panic; and nothing but the right secret passes.
#![no_main]

use engine::webhook::{inputs, verify, Proof};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzz-secret";
const NOW: i64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    // Fields split on NUL: authorization, signature, timestamp, then the body.
    let mut parts = data.splitn(4, |b| *b == 0);
    fn field(p: Option<&[u8]>) -> Option<&str> {
        p.and_then(|b| std::str::from_utf8(b).ok())
            .filter(|s| !s.is_empty())
    }
    let authorization = field(parts.next());
    let signature = field(parts.next());
    let timestamp = field(parts.next());
    let body = parts.next().unwrap_or_default();
    match verify(authorization, signature, timestamp, body, SECRET, NOW) {
        // Accepted by bearer only with the exact secret.
        Ok(Proof::Bearer) => {
            assert_eq!(authorization.and_then(|a| a.strip_prefix("Bearer ")).map(|t| t.trim().as_bytes()), Some(SECRET))
        }
        Ok(Proof::Signature(_)) | Err(_) => {}
    }
    if let Ok(map) = inputs(body) {
        // What is accepted is an object that serialises back.
        let _ = serde_json::to_string(&map).expect("inputs serialise");
    }
});
