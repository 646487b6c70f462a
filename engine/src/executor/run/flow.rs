//! Which step runs next. A pending step is decided once the steps it needs allow it:
//!
//! - without `if:` (that is, `success()`): it runs when every step it needs succeeded (or
//!   failed with `continue_on_error`), and is skipped, reason `upstream`, as soon as one did
//!   not;
//! - with an `if:` that calls no status function: the same, and then the expression must hold
//!   (else skipped, reason `condition`);
//! - with one that does (`always()`, `failure()`…): it waits for every step it needs to end,
//!   whatever their outcome, and runs if the expression holds.
//!
//! A skip is decided when it is known and reaches everything below it in the same commit.
//!
//! After a cancel (`cancelling`), only steps whose `if:` calls a status function may still
//! run (`cancelled()` and `always()` are then true, `success()` false); every other step
//! not yet started is cancelled.

use std::collections::VecDeque;

use serde_json::Value;

use super::{step_view, RunDriver};
use crate::records::{SkipReason, StepStatus};
use crate::render::{self, StatusFunctions};

/// What to do with a pending step.
enum Decision {
    /// A step it needs has not ended yet.
    Wait,
    Run,
    Skip(SkipReason),
    /// The run was cancelled and this step does not run on a cancel.
    Cancel,
}

/// Steps skipped by one decision round, by reason: recorded in one op each.
#[derive(Default)]
struct Skips {
    upstream: Vec<usize>,
    condition: Vec<usize>,
    cancelled: Vec<usize>,
}

impl RunDriver {
    /// The steps to start when the driver begins: resumed ones, and pending ones whose needs
    /// allow. Steps that can never run are skipped now, in dependency order, so a skip
    /// reaches everything below it.
    pub(super) fn first_ready(&mut self, now: i64) -> VecDeque<usize> {
        let workflow = self.workflow.clone();
        let mut ready = VecDeque::new();
        let mut skips = Skips::default();
        for &i in workflow.topo_order() {
            match self.steps[i].status {
                // A step that was running or retrying when the process stopped runs again;
                // one that waits (see `wait`) waits on.
                StepStatus::Running | StepStatus::Retrying if self.steps[i].parked.is_none() => {
                    ready.push_back(i)
                }
                StepStatus::Pending => match self.decide(i) {
                    Decision::Wait => {}
                    Decision::Run => ready.push_back(i),
                    Decision::Skip(reason) => self.mark_skipped(i, Some(reason), &mut skips),
                    Decision::Cancel => self.mark_skipped(i, None, &mut skips),
                },
                _ => {}
            }
        }
        for &i in &ready {
            self.steps[i].ready_at = now;
        }
        self.record_skips(skips, now);
        ready
    }

    /// Decides the steps below `from`, which has just ended: those that can start join
    /// `ready`; those that never will are skipped, and so on down.
    pub(super) fn settle(&mut self, from: usize, at: i64, ready: &mut VecDeque<usize>) {
        let workflow = self.workflow.clone();
        let mut skips = Skips::default();
        let mut below: Vec<usize> = Vec::new();
        for &c in workflow.children(from) {
            self.settle_one(c, at, ready, &mut below, &mut skips);
        }
        while let Some(c) = below.pop() {
            self.settle_one(c, at, ready, &mut below, &mut skips);
        }
        self.record_skips(skips, at);
    }

    fn settle_one(
        &mut self,
        c: usize,
        at: i64,
        ready: &mut VecDeque<usize>,
        below: &mut Vec<usize>,
        skips: &mut Skips,
    ) {
        if self.steps[c].status != StepStatus::Pending || ready.contains(&c) {
            return;
        }
        match self.decide(c) {
            Decision::Wait => {}
            Decision::Run => {
                self.steps[c].ready_at = at;
                ready.push_back(c);
            }
            Decision::Skip(reason) => {
                self.mark_skipped(c, Some(reason), skips);
                below.extend_from_slice(self.workflow.children(c));
            }
            Decision::Cancel => {
                self.mark_skipped(c, None, skips);
                below.extend_from_slice(self.workflow.children(c));
            }
        }
    }

    fn decide(&mut self, i: usize) -> Decision {
        let (mut ended, mut succeeded) = (true, true);
        for &d in self.workflow.deps(i) {
            match self.steps[d].status {
                StepStatus::Succeeded => {}
                StepStatus::Failed if self.workflow.steps()[d].continue_on_error => {}
                s if s.is_finished() => succeeded = false,
                _ => ended = false,
            }
        }
        let workflow = self.workflow.clone();
        if self.cancelling && !workflow.checks_status(i) {
            return Decision::Cancel;
        }
        let Some(condition) = workflow.steps()[i].condition.as_deref() else {
            return match (succeeded, ended) {
                (false, _) => Decision::Skip(SkipReason::Upstream),
                (true, true) => Decision::Run,
                (true, false) => Decision::Wait,
            };
        };
        if !workflow.checks_status(i) && !succeeded {
            return Decision::Skip(SkipReason::Upstream);
        }
        if !ended {
            return Decision::Wait;
        }
        let status = StatusFunctions {
            success: succeeded && !self.cancelling,
            failure: self.ancestor_failed(i),
            cancelled: self.cancelling,
        };
        let context = minijinja::Value::from_serialize(self.context(false));
        match render::condition(condition, &context, status) {
            Ok(true) => Decision::Run,
            Ok(false) => Decision::Skip(SkipReason::Condition),
            // The step fails as it starts, with the reason (`condition` error kind).
            Err(e) => {
                self.steps[i].doomed = Some(e);
                Decision::Run
            }
        }
    }

    /// Whether a step above `i` failed the run (`failure()`).
    fn ancestor_failed(&self, i: usize) -> bool {
        let mut seen = vec![false; self.steps.len()];
        let mut stack: Vec<usize> = self.workflow.deps(i).to_vec();
        while let Some(d) = stack.pop() {
            if std::mem::replace(&mut seen[d], true) {
                continue;
            }
            if self.steps[d].status == StepStatus::Failed
                && !self.workflow.steps()[d].continue_on_error
            {
                return true;
            }
            stack.extend_from_slice(self.workflow.deps(d));
        }
        false
    }

    /// A step that will not run: skipped for `reason`, or cancelled (no reason).
    fn mark_skipped(&mut self, i: usize, reason: Option<SkipReason>, skips: &mut Skips) {
        let status = match reason {
            Some(_) => StepStatus::Skipped,
            None => StepStatus::Cancelled,
        };
        // Set now: the steps below are decided on it in the same round.
        self.steps[i].status = status;
        self.outputs.insert(
            self.workflow.steps()[i].id.clone(),
            step_view(status, Value::Null, None),
        );
        match reason {
            Some(SkipReason::Upstream) => skips.upstream.push(i),
            Some(SkipReason::Condition) => skips.condition.push(i),
            None => skips.cancelled.push(i),
        }
    }

    fn record_skips(&mut self, skips: Skips, at: i64) {
        for (steps, reason) in [
            (skips.upstream, SkipReason::Upstream),
            (skips.condition, SkipReason::Condition),
        ] {
            self.end_steps(&steps, StepStatus::Skipped, Some(reason), at);
        }
        self.end_steps(&skips.cancelled, StepStatus::Cancelled, None, at);
    }
}
