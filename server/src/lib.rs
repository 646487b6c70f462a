//! The `flowscope` server: configuration, the HTTP surface and start-up.
//!
//! - [`config`]: settings from the environment and `flowscope.toml`.
//! - [`startup`]: connect, migrate, seed, build the router, bind, serve until shutdown.
//! - `api`: the REST API (`/api/v1`), one router per area.
//! - [`auth`]: sign-in, sessions, API tokens, and the role each route needs.
//! - [`health`]: liveness and readiness.
//! - [`error`]: the API's error type and JSON shape.
//! - [`telemetry`]: logs, spans and OTLP export; [`observe`]: HTTP server spans and `/metrics`.

pub mod api;
pub mod assets;
pub mod auth;
pub mod bench;
pub mod bench_ui;
pub mod cli;
pub mod config;
pub mod error;
pub mod guard;
pub mod health;
pub mod hooks;
pub mod observe;
pub mod otlp_sink;
pub mod otlp_wire;
pub mod startup;
pub mod telemetry;
