//! The server's telemetry tests, a binary of their own: each installs process-wide telemetry
//! (the global tracer provider the engine's spans use, a global subscriber), which would leak
//! into the tests of `it`. Here they take turns through [`GLOBALS`].

#[path = "../common/mod.rs"]
mod common;

mod otlp;
mod prometheus;

/// Held by a test for as long as it has telemetry installed.
static GLOBALS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
