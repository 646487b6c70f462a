//! Acting on many runs at once: the runs a monitor filter selects, cancelled or retried. The
//! API's `POST /api/v1/runs/bulk` and the monitor's buttons both come here, so a dry run (how
//! many) and the act itself select the same runs the same way.

use super::{Engine, EngineError, RetryChanges, RetryMode};
use crate::records::{RunStatus, RunSummary};
use crate::store::RunFilter;

/// Most runs one bulk action touches: past it the filter must be narrowed (a mistaken filter
/// then costs at most this many new runs, and one request stays bounded in time).
pub const MAX_BULK: usize = 1000;

/// What to do with each selected run.
#[derive(Debug, Clone, PartialEq)]
pub enum BulkAction {
    /// Cancel the runs not finished yet (queued, running, waiting, paused).
    Cancel,
    /// Retry the finished runs, each as [`Engine::retry_as`] would.
    Retry(RetryMode),
}

impl BulkAction {
    /// The action a request names: `cancel`, or `retry` with `from` as a single retry takes it
    /// (`failed`, a step id, or nothing for whole). The error says what is wrong.
    pub fn from_request(action: &str, from: Option<String>) -> Result<BulkAction, String> {
        match action {
            "cancel" if from.is_none() => Ok(BulkAction::Cancel),
            "cancel" => Err("from: only a retry starts from a step".into()),
            "retry" => Ok(BulkAction::Retry(RetryMode::from_request(from))),
            other => Err(format!("action: \"{other}\" is not one of cancel, retry")),
        }
    }

    /// Whether the action applies to a run in `status`.
    fn applies(&self, status: RunStatus) -> bool {
        match self {
            BulkAction::Cancel => !status.is_finished(),
            BulkAction::Retry(RetryMode::FromFailed) => {
                status.is_finished() && status != RunStatus::Succeeded
            }
            BulkAction::Retry(_) => status.is_finished(),
        }
    }
}

/// What a bulk action did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BulkOutcome {
    /// Each run acted on, with the new run a retry started.
    pub done: Vec<(String, Option<String>)>,
    /// Runs it could not act on (finished meanwhile, say), with why.
    pub refused: Vec<(String, String)>,
}

impl Engine {
    /// The runs `filter` selects that `action` applies to, newest first; an error past
    /// [`MAX_BULK`]. The filter's own `limit` and cursor are ignored.
    pub async fn bulk_targets(
        &self,
        filter: &RunFilter,
        action: &BulkAction,
    ) -> Result<Vec<RunSummary>, EngineError> {
        // Each pass reads only statuses the action applies to: a scan that skipped runs it
        // cannot act on (a million succeeded runs, for a retry of failures) would be unbounded.
        let statuses: Vec<Option<RunStatus>> = match (action, filter.status) {
            (_, Some(s)) if !action.applies(s) => return Ok(Vec::new()),
            (_, Some(s)) => vec![Some(s)],
            (BulkAction::Cancel, None) => vec![
                Some(RunStatus::Queued),
                Some(RunStatus::Running),
                Some(RunStatus::Waiting),
                Some(RunStatus::Paused),
            ],
            (BulkAction::Retry(RetryMode::FromFailed), None) => vec![
                Some(RunStatus::Failed),
                Some(RunStatus::Cancelled),
                Some(RunStatus::TimedOut),
            ],
            // Every finished status: only the few runs still going are read and skipped.
            (BulkAction::Retry(_), None) => vec![None],
        };
        let mut out = Vec::new();
        for status in statuses {
            let mut page = RunFilter {
                status,
                before: None,
                limit: 500,
                ..filter.clone()
            };
            loop {
                let runs = self.store().list_runs(&page).await?;
                let last = runs.last().map(|r| r.id.clone());
                out.extend(runs.into_iter().filter(|r| action.applies(r.status)));
                if out.len() > MAX_BULK {
                    return Err(EngineError::Refused(format!(
                        "the filter selects more than {MAX_BULK} runs; narrow it (a workflow, a \
                         status, a time range) and act on them in parts"
                    )));
                }
                match last {
                    Some(id) => page.before = Some(id),
                    None => break,
                }
            }
        }
        out.sort_by(|a, b| b.id.cmp(&a.id));
        Ok(out)
    }

    /// Applies `action` to every run [`Engine::bulk_targets`] selects; each retry records
    /// `actor` as who asked. A run that cannot be acted on is reported, not fatal.
    pub async fn bulk(
        &self,
        filter: &RunFilter,
        action: &BulkAction,
        actor: Option<String>,
    ) -> Result<BulkOutcome, EngineError> {
        let mut outcome = BulkOutcome::default();
        for run in self.bulk_targets(filter, action).await? {
            let result = match action {
                BulkAction::Cancel => self.cancel(&run.id).await.map(|()| None),
                BulkAction::Retry(mode) => self
                    .retry_changed(
                        &run.id,
                        mode.clone(),
                        RetryChanges::default(),
                        actor.clone(),
                    )
                    .await
                    .map(|new| Some(new.id)),
            };
            match result {
                Ok(new) => outcome.done.push((run.id, new)),
                Err(EngineError::Store(e)) => return Err(EngineError::Store(e)),
                Err(e) => outcome.refused.push((run.id, e.to_string())),
            }
        }
        Ok(outcome)
    }
}
