//! One module per page (SPEC §5), each holding the server functions it calls.

pub mod builder;
pub mod login;
pub mod not_found;
pub mod run;
pub mod runs;
pub mod settings;
pub mod workflow;
pub mod workflows;
