//! The server's integration tests, one binary (each test binary links the whole server, so
//! one of them instead of twelve saves most of the link time). Every module is one concern;
//! `common` is what they share. `otlp.rs` and `prometheus.rs` stay binaries of their own:
//! they install process-wide telemetry (a global subscriber, the global tracer provider).

#[path = "../common/mod.rs"]
mod common;

mod access;
mod alert_pipeline;
mod alerts;
mod api;
mod calls;
mod cli;
mod cluster;
mod durability;
mod gate;
mod hooks;
mod hostile;
mod pg_restart;
mod stack_files;
mod waits;
