//! The error every server function returns: typed, so the UI can show a sentence next to
//! what failed instead of a database message or a blank page.

use leptos::prelude::*;
use leptos::server_fn::codec::JsonEncoding;
use serde::{Deserialize, Serialize};

/// What a server function can answer instead of its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// The thing asked for does not exist (unknown workflow, version or run).
    #[error("{0}")]
    NotFound(String),
    /// The request was understood but is not acceptable; the message says why.
    #[error("{0}")]
    Invalid(String),
    /// What is wrong with the request's values (a document, a run's inputs), each at its path
    /// (`inputs.who`): a form can put each under its field.
    #[error("{}", join_problems(.0))]
    Problems(Vec<engine::model::Problem>),
    /// The caller is not signed in, or their role does not allow this.
    #[error("{0}")]
    Denied(String),
    /// Something failed on the server; details are in the server log, not here.
    #[error(
        "something went wrong on the server; try again, and see the server log if it persists"
    )]
    Internal,
    /// The call did not reach the server or its answer could not be read.
    #[error("could not reach the server: {0}")]
    Transport(String),
}

/// The engine's refusals, in its own words (a person can act on them); its failures, logged
/// here and answered as [`AppError::Internal`].
#[cfg(feature = "ssr")]
impl From<engine::executor::EngineError> for AppError {
    fn from(e: engine::executor::EngineError) -> Self {
        use engine::executor::EngineError as E;
        match e {
            E::Store(e) => e.into(),
            E::InvalidInputs(problems) => AppError::Problems(problems),
            E::Journal(m) => {
                leptos::logging::error!("run action failed: {m}");
                AppError::Internal
            }
            other => AppError::Invalid(other.to_string()),
        }
    }
}

/// `inputs.who: expected string; inputs.n: is required`.
fn join_problems(problems: &[engine::model::Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::Transport(value.to_string())
    }
}

#[cfg(feature = "ssr")]
impl From<engine::store::StoreError> for AppError {
    fn from(e: engine::store::StoreError) -> Self {
        use engine::store::StoreError as E;
        match e {
            E::NotFound(_) | E::VersionNotFound { .. } | E::RunNotFound(_) => {
                AppError::NotFound(e.to_string())
            }
            E::AlreadyExists(_) | E::Refused(_) => AppError::Invalid(e.to_string()),
            E::CallCycle(problems) => AppError::Problems(problems),
            other => {
                // Logged once here, where it is turned into a generic answer.
                leptos::logging::error!("server function failed: {other}");
                AppError::Internal
            }
        }
    }
}
