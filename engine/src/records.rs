//! Plain records the store returns and the UI shows; no database types, so they also
//! cross into the browser.

use serde::{Deserialize, Serialize};

/// One row of the workflow list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowSummary {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub latest_version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// When it was archived; archived workflows are hidden from the default list.
    pub archived_at: Option<i64>,
}

/// A version's identity and time, without its text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "runtime", derive(sqlx::FromRow))]
pub struct VersionInfo {
    pub workflow_id: String,
    pub version: i64,
    pub created_at: i64,
}
