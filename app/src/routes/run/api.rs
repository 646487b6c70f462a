//! The run page's server functions: its data (values cut to what a page shows), items, cancel, retry.

use engine::records::ItemRecord;
use leptos::prelude::*;

use super::*;
use crate::error::AppError;

/// Cuts large inputs, outputs and logs down to what a page can show, saying where the rest is.
#[cfg(feature = "ssr")]
pub(super) fn shorten_for_page(detail: &mut engine::records::RunDetail) {
    let run = detail.run.id.clone();
    let whole = format!("/api/v1/runs/{run}");
    let mut budget = PAGE_BYTES;
    let cut = |v: &mut Option<Value>, budget: &mut usize, whole: &str| {
        *budget -= shorten_value(v, SHOWN_BYTES.min(*budget), whole);
    };
    cut(&mut detail.outputs, &mut budget, &whole);
    for s in &mut detail.steps {
        let whole = format!("/api/v1/runs/{run}/steps/{}/output", s.step_id);
        cut(&mut s.output, &mut budget, &whole);
    }
    for a in &mut detail.attempts {
        let at = format!(
            "/api/v1/runs/{run}/steps/{}/output?attempt={}",
            a.step_id, a.attempt
        );
        cut(&mut a.input, &mut budget, &format!("{at}&part=input"));
        cut(&mut a.output, &mut budget, &at);
        let lines: usize = a.logs.iter().map(String::len).sum();
        if lines > SHOWN_BYTES.min(budget) {
            let mut kept = 0;
            let shown = a
                .logs
                .iter()
                .take_while(|l| {
                    kept += l.len();
                    kept <= SHOWN_BYTES.min(budget)
                })
                .count();
            let hidden = a.logs.len() - shown;
            a.logs.truncate(shown);
            a.logs
                .push(format!("… {hidden} more lines not shown here: see {whole}"));
        }
        budget = budget.saturating_sub(a.logs.iter().map(String::len).sum());
    }
}

#[server(endpoint = "get_run")]
pub async fn get_run(id: String) -> Result<RunPageData, AppError> {
    crate::auth::require(engine::access::Action::Read)?;
    let store = expect_context::<engine::store::Store>();
    let mut detail = expect_context::<engine::executor::Engine>()
        .run_detail(&id)
        .await?;
    shorten_for_page(&mut detail);
    let version = store
        .version(&detail.run.workflow_id, Some(detail.run.workflow_version))
        .await?;
    let number = store
        .run_number(&detail.run.workflow_id, &detail.run.id)
        .await?;
    let defs = version.workflow.steps();
    let steps = defs
        .iter()
        .enumerate()
        .map(|(i, s)| StepInfo {
            id: s.id.clone(),
            name: s.name.clone().unwrap_or_else(|| s.id.clone()),
            agent: s.agent.clone(),
            needs: version.workflow.deps(i).to_vec(),
            condition: s.condition.clone(),
            continue_on_error: s.continue_on_error,
            for_each: s.for_each.clone(),
            concurrency: s.concurrency,
        })
        .collect();
    Ok(RunPageData {
        workflow_name: version.workflow.name().to_string(),
        number,
        detail,
        steps,
        now: engine::store::now_ms(),
        links: use_context::<engine::links::TraceLinks>().unwrap_or_default(),
    })
}

/// Items a `for_each` step's panel lists at first, and more at each "Show more".
pub(super) const ITEMS_SHOWN: i64 = 50;

/// The ended items of a `for_each` step, in list order: all, or only `succeeded`, `failed` or
/// `retried` ones.
#[server(endpoint = "get_items")]
pub async fn get_items(
    run_id: String,
    step_id: String,
    status: String,
    limit: i64,
) -> Result<Vec<ItemRecord>, AppError> {
    crate::auth::require(engine::access::Action::Read)?;
    let store = expect_context::<engine::store::Store>();
    let filter = engine::store::ItemFilter {
        status: match status.as_str() {
            "failed" => Some(StepStatus::Failed),
            "succeeded" => Some(StepStatus::Succeeded),
            _ => None,
        },
        retried: status == "retried",
    };
    let mut items = store
        .step_items(&run_id, &step_id, filter, None, limit.clamp(1, 1000))
        .await?;
    let whole = format!("/api/v1/runs/{run_id}/steps/{step_id}/items");
    for item in &mut items {
        for v in [&mut item.input, &mut item.output] {
            shorten_value(v, ITEM_SHOWN_BYTES, &whole);
        }
    }
    Ok(items)
}

/// Bytes of one item's input or output the list shows.
#[cfg(feature = "ssr")]
pub(super) const ITEM_SHOWN_BYTES: usize = 4 * 1024;

/// Cuts one value to `max` bytes of its pretty JSON, saying where the whole is; returns the
/// bytes of it kept. A marker the run's detail left for a value over 64 KiB shows its preview
/// and names the URL it gives.
#[cfg(feature = "ssr")]
pub(super) fn shorten_value(v: &mut Option<Value>, max: usize, whole: &str) -> usize {
    let Some(value) = v.as_ref() else { return 0 };
    let marker = value
        .get("truncated")
        .and_then(Value::as_bool)
        .filter(|t| *t)
        .and(value.get("whole").and_then(Value::as_str))
        .zip(value.get("bytes").and_then(Value::as_u64));
    let (text, bytes, whole) = match marker {
        Some((at, bytes)) => {
            let preview = value.get("preview").and_then(Value::as_str).unwrap_or("");
            (preview.to_string(), bytes as usize, at.to_string())
        }
        None => {
            let text = serde_json::to_string_pretty(value).unwrap_or_default();
            if text.len() <= max {
                return text.len();
            }
            let bytes = text.len();
            (text, bytes, whole.to_string())
        }
    };
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    *v = Some(Value::String(format!(
        "{}\n… {} more bytes not shown here: the whole value is in {whole}",
        &text[..end],
        bytes.saturating_sub(end)
    )));
    end
}

#[server(endpoint = "cancel_run")]
pub async fn cancel_run(id: String) -> Result<(), AppError> {
    crate::auth::require(engine::access::Action::Operate)?;
    let engine = expect_context::<engine::executor::Engine>();
    engine.cancel(&id).await.map_err(AppError::from)
}

/// Starts a new run from this one: `mode` is `whole`, `failed` (reuse what succeeded) or
/// `step` (from `step` on). Returns the new run's id.
#[server(endpoint = "retry_run")]
pub async fn retry_run(id: String, mode: String, step: Option<String>) -> Result<String, AppError> {
    crate::auth::require(engine::access::Action::Operate)?;
    use engine::executor::RetryMode;
    let mode = RetryMode::from_request(match (mode.as_str(), step) {
        ("whole", _) => None,
        ("failed", _) => Some("failed".to_string()),
        ("step", Some(step)) => Some(step),
        (other, _) => return Err(AppError::Invalid(format!("unknown retry mode \"{other}\""))),
    });
    let engine = expect_context::<engine::executor::Engine>();
    engine
        .retry_as(&id, mode, crate::auth::current().and_then(|p| p.actor()))
        .await
        .map(|r| r.id)
        .map_err(AppError::from)
}

/// Starts a new run of this one's workflow, whole, with `inputs_json` (a JSON object; declared
/// defaults fill the rest) on the run's version or, with `latest`, the workflow's latest.
#[server(endpoint = "retry_changed_run")]
pub async fn retry_changed_run(
    id: String,
    inputs_json: String,
    latest: bool,
) -> Result<String, AppError> {
    crate::auth::require(engine::access::Action::Operate)?;
    use engine::executor::{RetryChanges, RetryMode, RetryVersion};
    let inputs = serde_json::from_str(&inputs_json)
        .map_err(|e| AppError::Invalid(format!("the inputs must be a JSON object: {e}")))?;
    let changes = RetryChanges {
        inputs: Some(inputs),
        version: latest.then_some(RetryVersion::Latest),
    };
    let engine = expect_context::<engine::executor::Engine>();
    engine
        .retry_changed(
            &id,
            RetryMode::Whole,
            changes,
            crate::auth::current().and_then(|p| p.actor()),
        )
        .await
        .map(|r| r.id)
        .map_err(AppError::from)
}
