//! Flowscope's domain, free of HTTP and UI.
//!
//! - [`access`]: roles and principals (who may do what).
//! - [`model`]: the workflow file format, parsing and validation ([`model::Workflow`]).
//! - [`catalog`]: the built-in agents and the schema of their config.
//! - [`examples`]: the example workflows seeded into an empty database.
//! - [`layout`]: the layered drawing of a workflow's DAG (run page, builder).
//! - [`records`]: plain rows the store returns and the UI shows.
//! - [`search`]: run labels and text search: their rules, shared by the server and the UI.
//! - [`links`]: trace links to Grafana Explore (or the run's own timeline).
//! - `telemetry` (feature `runtime`): the metric registry and span helpers (SPEC §6).
//! - `store` (feature `runtime`): persistence on SQLite or PostgreSQL with sqlx.
//! - `executor` (feature `runtime`): the durable engine that runs workflows.
//! - `agents` (feature `runtime`): the built-in agents, one file each.
//! - `render` (feature `runtime`): templates rendered (bounded) and secrets redacted, for the
//!   executor and the agents alike.
//! - `secrets` (feature `runtime`): the secret set steps use, below the executor and agents.
//! - `vault` (feature `runtime`): secrets sealed at rest, password and token hashing.
//! - `webhook` (feature `webhook`, part of `runtime`): a webhook call's proof and payload.
//! - `schedule` (feature `runtime`): cron triggers, fired once across processes.
//!
//! Without the `runtime` feature this crate compiles to wasm, so the builder in the browser
//! validates with exactly the rules the server applies.

// Every public item says what it is: the engine is the API the server, the UI, the benchmarks
// and the fuzz targets are written against.
#![warn(missing_docs)]

pub mod access;
#[cfg(feature = "runtime")]
pub mod agents;
pub mod catalog;
pub mod examples;
#[cfg(feature = "runtime")]
pub mod executor;
pub mod layout;
pub mod links;
pub mod model;
pub mod records;
#[cfg(feature = "runtime")]
pub mod render;
#[cfg(feature = "runtime")]
pub mod schedule;
pub mod search;
#[cfg(feature = "runtime")]
pub(crate) mod secrets;
#[cfg(feature = "runtime")]
pub mod store;
#[cfg(feature = "runtime")]
pub mod telemetry;
#[cfg(feature = "runtime")]
pub mod vault;
#[cfg(feature = "webhook")]
pub mod webhook;
