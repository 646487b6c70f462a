//! The `flowscope` server: configuration, the HTTP surface and start-up.
//!
//! - [`config`]: settings from the environment and `flowscope.toml`.
//! - [`startup`]: connect, migrate, seed, build the router, bind, serve until shutdown.
//! - `api`: the REST API (`/api/v1`), one router per area.
//! - [`auth`]: sign-in, sessions, API tokens, and the role each route needs.
//! - [`health`]: liveness and readiness.
//! - [`error`]: the API's error type and JSON shape.
//! - [`telemetry`]: logs, spans and OTLP export; [`observe`]: HTTP server spans and `/metrics`.
//! - [`cli`]: the command line (`main.rs` only calls [`cli::main`]).
//!
//! The benchmarks (`bench`) and the OTLP encoder and receiver (`otlp`) are crates of their own.

pub mod api;
pub mod assets;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod guard;
pub mod health;
pub mod hooks;
pub mod observe;
pub mod startup;
pub mod telemetry;
