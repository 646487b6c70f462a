//! The engine's integration tests, one binary: a module per concern. `telemetry.rs` stays a
//! binary of its own (it installs a global subscriber and tracer provider).

mod calls;
mod executor;
mod flow;
mod harness;
mod items;
mod retention;
mod schedule;
mod search;
mod store;
mod validation;
mod waits;
