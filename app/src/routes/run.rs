//! `/runs/:id`: one run, live — its DAG coloured by step state, a timeline of every attempt
//! (queue wait apart from execution), each step's input, output, error and logs, and the
//! Cancel / Retry actions. Changes arrive over the run's event stream (Server-Sent Events).

use engine::layout::{layout, NODE_H, NODE_W};
use engine::records::{
    AttemptRecord, ItemCounts, ItemRecord, RunDetail, RunStatus, SkipReason, StepRecord, StepStatus,
};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::IfRole;
use crate::components::{
    follow_events, format_duration, format_ms, DagFrame, ErrorNote, LoadError, StatusBadge,
};
use crate::error::AppError;
use engine::access::Role;

/// One step as the workflow version of the run declares it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepInfo {
    pub id: String,
    pub name: String,
    pub agent: String,
    /// Indices of the steps it needs.
    pub needs: Vec<usize>,
    /// Its `if:` expression, when it has one.
    #[serde(default)]
    pub condition: Option<String>,
    /// Whether it may fail without failing the run.
    #[serde(default)]
    pub continue_on_error: bool,
    /// Its `for_each` list, when it loops, and how many items run at once.
    #[serde(default)]
    pub for_each: Option<String>,
    #[serde(default)]
    pub concurrency: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunPageData {
    pub detail: RunDetail,
    pub workflow_name: String,
    /// This run's number among its workflow's runs (1 is the first).
    pub number: i64,
    /// In declaration order.
    pub steps: Vec<StepInfo>,
    /// The server's clock when read: the end of bars still running.
    pub now: i64,
    /// Where "Trace" links point (Grafana Explore, or this page's timeline).
    pub links: engine::links::TraceLinks,
}

/// Bytes of one input or output the page shows; the rest is in the API's JSON.
#[cfg(feature = "ssr")]
const SHOWN_BYTES: usize = 16 * 1024;
/// Bytes of inputs, outputs and logs one page shows in all: a run of 2,000 steps with large
/// outputs stays a page, not a download.
#[cfg(feature = "ssr")]
const PAGE_BYTES: usize = 2 * 1024 * 1024;

/// Cuts large inputs, outputs and logs down to what a page can show, saying where the rest is.
#[cfg(feature = "ssr")]
fn shorten_for_page(detail: &mut engine::records::RunDetail) {
    let run = detail.run.id.clone();
    let whole = format!("/api/v1/runs/{run}");
    let mut budget = PAGE_BYTES;
    let cut = |v: &mut Option<Value>, budget: &mut usize, whole: &str| {
        *budget -= shorten_value(v, SHOWN_BYTES.min(*budget), whole);
    };
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
    let mut detail = store.run_detail(&id).await?;
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
const ITEMS_SHOWN: i64 = 50;

/// The ended items of a `for_each` step, in list order: all, or only `succeeded` or `failed`.
#[server(endpoint = "get_items")]
pub async fn get_items(
    run_id: String,
    step_id: String,
    status: String,
    limit: i64,
) -> Result<Vec<ItemRecord>, AppError> {
    crate::auth::require(engine::access::Action::Read)?;
    let store = expect_context::<engine::store::Store>();
    let status = match status.as_str() {
        "failed" => Some(StepStatus::Failed),
        "succeeded" => Some(StepStatus::Succeeded),
        _ => None,
    };
    let mut items = store
        .step_items(&run_id, &step_id, status, None, limit.clamp(1, 1000))
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
const ITEM_SHOWN_BYTES: usize = 4 * 1024;

/// Cuts one value to `max` bytes of its pretty JSON, saying where the whole is; returns the
/// bytes of it kept. A marker the run's detail left for a value over 64 KiB shows its preview
/// and names the URL it gives.
#[cfg(feature = "ssr")]
fn shorten_value(v: &mut Option<Value>, max: usize, whole: &str) -> usize {
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
    engine.cancel(&id).await.map_err(engine_error)
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
        .map_err(engine_error)
}

#[cfg(feature = "ssr")]
fn engine_error(e: engine::executor::EngineError) -> AppError {
    use engine::executor::EngineError as E;
    match e {
        E::Store(e) => e.into(),
        E::Journal(m) => {
            leptos::logging::error!("run action failed: {m}");
            AppError::Internal
        }
        // The rest are refusals the user can act on, best said in the engine's own words.
        other => AppError::Invalid(other.to_string()),
    }
}

#[component]
pub fn RunPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.with(|p| p.get("id").unwrap_or_default());
    let data = Resource::new(id, get_run);
    live_updates(id, data);
    provide_context(RunUi::new());
    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading run…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <LoadError error=e/> }.into_any(),
                    Ok(d) => view! { <RunView data=d/> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// Follows the run's event stream and reloads the page data on each change (at most every
/// 100 ms), until the run has finished.
fn live_updates(
    id: impl Fn() -> String + Send + Sync + 'static,
    data: Resource<Result<RunPageData, AppError>>,
) {
    // Set only when it flips: the stream is reopened when the run changes or finishes, not on
    // every reload. Effects run only in the browser.
    let finished = RwSignal::new(false);
    Effect::new(move |_| {
        let done = data.with(|d| {
            d.as_ref()
                .and_then(|r| r.as_ref().ok())
                .is_some_and(|d| d.detail.run.status.is_finished())
        });
        if finished.get_untracked() != done {
            finished.set(done);
        }
    });
    follow_events(
        move || (!finished.get()).then(|| format!("/api/v1/runs/{}/events", id())),
        std::time::Duration::from_millis(100),
        move || data.refetch(),
    );
}

#[component]
fn RunView(data: RunPageData) -> impl IntoView {
    let RunPageData {
        detail,
        workflow_name,
        number,
        steps,
        now,
        links,
    } = data;
    let run = detail.run.clone();
    let finished = run.status.is_finished();
    let end = run.finished_at.unwrap_or(now.max(run.created_at));
    let queue_wait = run.started_at.map(|s| s - run.created_at);
    // A live run's clock moves between events: "Running for" and the running bars follow it.
    let clock = ticking(end, !finished);
    let started_at = run.started_at;
    let run_time = move || started_at.map(|s| clock.get() - s);
    let usage = Usage::of_attempts(&detail.attempts);
    let title = format!("{workflow_name} #{number}");
    let trace_href = |span_id: Option<&str>| {
        links.link(
            &run.id,
            run.trace_id.as_deref(),
            span_id,
            run.created_at,
            run.finished_at,
        )
    };
    let trace_label = if links.to_grafana() && run.trace_id.is_some() {
        "Open in Grafana"
    } else {
        "Timeline"
    };
    // Built in pieces, each type-erased: one nested view type this deep overflows rustc.
    let header = view! {
        <header class="page-header">
            <div>
                <p class="crumbs"><a href="/runs">"Runs"</a>" / "<a href=format!("/workflows/{}", run.workflow_id)>{workflow_name.clone()}</a></p>
                <h1 class="run-title">
                    <StatusBadge status=run.status.as_str()/>
                    <span>{format!("{workflow_name} #{number}")}</span>
                </h1>
                <p class="mono run-id">{run.id.clone()}</p>
            </div>
            <RunActions run_id=run.id.clone() status=run.status failed_steps=failed_steps(&detail.steps)/>
        </header>
        {run.error.clone().map(|e| view! { <div class="error-note" role="note"><strong>{ended_because(run.status)}</strong>{e}</div> })}
    }
    .into_any();
    let facts = view! {
        <dl class="facts">
            <div><dt>"Workflow"</dt><dd><a href=format!("/workflows/{}", run.workflow_id)>{run.workflow_id.clone()}</a>{format!(" · v{}", run.workflow_version)}</dd></div>
            <div><dt>"Trigger"</dt><dd>{run.started_by()}</dd></div>
            <div><dt>"Created"</dt><dd><time datetime=run.created_at.to_string()>{format_ms(run.created_at)}</time></dd></div>
            <div><dt>"Queue wait"</dt><dd>{queue_wait.map(format_duration).unwrap_or_else(|| "waiting…".into())}</dd></div>
            <div><dt>{if finished { "Run time" } else { "Running for" }}</dt><dd>{move || run_time().map(format_duration).unwrap_or_else(|| "–".into())}</dd></div>
            {run.parent_run_id.clone().map(|p| view! { <div><dt>"Retry of"</dt><dd><a class="mono" href=format!("/runs/{p}")>{short_id(&p)}</a></dd></div> })}
            {usage.view()}
            <div><dt>"Trace"</dt><dd><a href=trace_href(None) data-trace-link="run">{trace_label}</a></dd></div>
        </dl>
    }
    .into_any();
    let graph = view! {
        <section aria-labelledby="graph-h" class="panel">
            <h2 id="graph-h">"Graph"</h2>
            <Dag steps=steps.clone() records=detail.steps.clone() items=detail.items.clone()/>
        </section>
    }
    .into_any();
    let timeline = view! {
        <section aria-labelledby="timeline-h" class="panel" id="timeline">
            <h2 id="timeline-h">"Timeline"</h2>
            {
                let (detail, steps) = (detail.clone(), steps.clone());
                move || view! { <Timeline detail=detail.clone() steps=steps.clone() end=clock.get()/> }
            }
        </section>
    }
    .into_any();
    let retryable = finished && run.status != RunStatus::Succeeded;
    let step_panels = steps
        .iter()
        .map(|s| {
            let record = detail.steps.iter().find(|r| r.step_id == s.id).cloned();
            let attempts: Vec<AttemptRecord> = detail.attempts.iter().filter(|a| a.step_id == s.id).cloned().collect();
            // The latest attempt's span is the one selected in the trace.
            let href = trace_href(attempts.last().and_then(|a| a.span_id.as_deref()));
            let items = detail.items.iter().find(|c| c.step_id == s.id).cloned();
            view! { <StepPanel info=s.clone() record=record attempts=attempts items=items run_id=run.id.clone() retryable=retryable trace_href=href/> }.into_any()
        })
        .collect::<Vec<_>>();
    view! {
        <Title text=title/>
        <section class="page run-page" data-status=run.status.as_str()>
            {header}
            {facts}
            {graph}
            {timeline}
            <section aria-labelledby="steps-h">
                <h2 id="steps-h">"Steps"</h2>
                {step_panels}
            </section>
        </section>
    }
}

/// The lead of a finished run's error: a cancelled run did not fail.
fn ended_because(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Cancelled => "Run cancelled: ",
        RunStatus::TimedOut => "Run timed out: ",
        _ => "Run failed: ",
    }
}

fn failed_steps(steps: &[StepRecord]) -> bool {
    steps
        .iter()
        .any(|s| matches!(s.status, StepStatus::Failed | StepStatus::Cancelled))
}

fn short_id(id: &str) -> String {
    id.chars()
        .rev()
        .take(12)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}

/// Tokens and cost, where agents report them (the `llm` agent's `usage` and `cost_usd`).
#[derive(Default, Clone, Copy)]
struct Usage {
    tokens: u64,
    cost: f64,
    reported: bool,
}

impl Usage {
    fn of_output(output: Option<&Value>) -> Usage {
        let Some(o) = output else {
            return Usage::default();
        };
        let u = &o["usage"];
        let tokens =
            u["input_tokens"].as_u64().unwrap_or(0) + u["output_tokens"].as_u64().unwrap_or(0);
        let cost = o["cost_usd"].as_f64().unwrap_or(0.0);
        Usage {
            tokens,
            cost,
            reported: u.is_object() || o["cost_usd"].is_number(),
        }
    }

    /// Summed over attempts (of a step, or of the whole run).
    fn of_attempts<'a>(attempts: impl IntoIterator<Item = &'a AttemptRecord>) -> Usage {
        attempts.into_iter().fold(Usage::default(), |acc, a| {
            let u = Usage::of_output(a.output.as_ref());
            Usage {
                tokens: acc.tokens + u.tokens,
                cost: acc.cost + u.cost,
                reported: acc.reported || u.reported,
            }
        })
    }

    fn view(self) -> Option<impl IntoView> {
        self.reported.then(|| {
            view! {
                <div><dt>"Tokens"</dt><dd>{self.tokens.to_string()}</dd></div>
                <div><dt>"Cost"</dt><dd>{format!("${:.4}", self.cost)}</dd></div>
            }
        })
    }
}

/// An action waiting for its confirmation.
#[derive(Clone, PartialEq)]
enum Pending {
    Cancel,
    RetryWhole,
    RetryFailed,
    RetryFrom(String),
}

/// What the person is doing on the page. It lives above the data, because the view is
/// rebuilt whenever the run changes: a half-confirmed action or an opened panel survives that.
#[derive(Clone, Copy)]
struct RunUi {
    confirm: RwSignal<Option<Pending>>,
    /// The last action's failure, with what it was ("Could not cancel the run").
    error: RwSignal<Option<(&'static str, AppError)>>,
    /// Step panels the person opened or closed, overriding the default (open when failing).
    open: RwSignal<std::collections::HashMap<String, bool>>,
    /// Per `for_each` step: which items its list shows (`""`, `failed`, `succeeded`) and how many.
    item_filter: RwSignal<std::collections::HashMap<String, &'static str>>,
    item_limit: RwSignal<std::collections::HashMap<String, i64>>,
    act: Action<(String, Pending), Result<Option<String>, AppError>>,
}

impl RunUi {
    fn new() -> RunUi {
        let confirm = RwSignal::new(None::<Pending>);
        let error = RwSignal::new(None::<(&'static str, AppError)>);
        let act = Action::new(|(id, p): &(String, Pending)| {
            let (id, p) = (id.clone(), p.clone());
            async move {
                match p {
                    Pending::Cancel => cancel_run(id).await.map(|_| None),
                    Pending::RetryWhole => retry_run(id, "whole".into(), None).await.map(Some),
                    Pending::RetryFailed => retry_run(id, "failed".into(), None).await.map(Some),
                    Pending::RetryFrom(step) => {
                        retry_run(id, "step".into(), Some(step)).await.map(Some)
                    }
                }
            }
        });
        let navigate = use_navigate();
        Effect::new(move |_| match act.value().get() {
            Some(Ok(Some(new_run))) => {
                confirm.set(None);
                navigate(&format!("/runs/{new_run}"), Default::default());
            }
            Some(Ok(None)) => confirm.set(None),
            Some(Err(e)) => {
                let lead = match act
                    .input()
                    .get_untracked()
                    .map(|(_, p)| p)
                    .or_else(|| confirm.get_untracked())
                {
                    Some(Pending::Cancel) => "Could not cancel the run",
                    _ => "Could not start the new run",
                };
                error.set(Some((lead, e)));
            }
            None => {}
        });
        RunUi {
            confirm,
            error,
            open: RwSignal::new(Default::default()),
            item_filter: RwSignal::new(Default::default()),
            item_limit: RwSignal::new(Default::default()),
            act,
        }
    }
}

/// Cancel / Retry / Retry from failed, each confirmed inline; a retry opens the new run.
#[component]
fn RunActions(run_id: String, status: RunStatus, failed_steps: bool) -> impl IntoView {
    let ui = expect_context::<RunUi>();
    let run_id = StoredValue::new(run_id);
    let finished = status.is_finished();
    let retryable = matches!(
        status,
        RunStatus::Failed | RunStatus::Cancelled | RunStatus::TimedOut
    );
    let ask = move |p: Pending| {
        move |_| {
            ui.error.set(None);
            ui.confirm.set(Some(p.clone()));
        }
    };
    let whole_run = move || !matches!(ui.confirm.get(), None | Some(Pending::RetryFrom(_)));
    view! {
        <div class="actions">
            <IfRole role=Role::Operator>
                <Show when=move || !whole_run()>
                    {(!finished).then(|| view! { <button class="button danger" on:click=ask(Pending::Cancel)>"Cancel run"</button> })}
                    {retryable.then(|| view! { <button class="button secondary" on:click=ask(Pending::RetryWhole)>"Retry"</button> })}
                    {(retryable && failed_steps).then(|| {
                        // The same retry either way: what succeeded is reused.
                        let label = if status == RunStatus::Failed { "Retry from failed step" } else { "Resume where it stopped" };
                        view! { <button class="button" on:click=ask(Pending::RetryFailed)>{label}</button> }
                    })}
                </Show>
            </IfRole>
            {move || ui.confirm.get().filter(|_| whole_run()).map(|p| {
                let question = match p {
                    Pending::Cancel => "Cancel this run? Steps in flight are stopped.",
                    Pending::RetryWhole => "Start a new run with the same inputs and version?",
                    _ => "Start a new run that reuses the steps that succeeded?",
                };
                view! { <Confirm question=question run_id=run_id.get_value() pending=p/> }
            })}
            {move || ui.error.get().filter(|_| !matches!(ui.confirm.get(), Some(Pending::RetryFrom(_)))).map(|(lead, e)| view! { <ErrorNote error=e lead=lead/> })}
        </div>
    }
}

/// The time (unix ms) from `start`, one second later every second in the browser while
/// `live`; constant on the server, so hydration sees the markup it rendered.
fn ticking(start: i64, live: bool) -> ReadSignal<i64> {
    let (clock, set_clock) = signal(start);
    if live {
        // Effects run only in the browser.
        Effect::new(move |_| {
            let tick = set_interval_with_handle(
                move || set_clock.update(|t| *t += 1000),
                std::time::Duration::from_secs(1),
            );
            if let Ok(handle) = tick {
                on_cleanup(move || handle.clear());
            }
        });
    }
    clock
}

/// "Question? [Yes] [No]": Yes runs the pending action.
#[component]
fn Confirm(question: &'static str, run_id: String, pending: Pending) -> impl IntoView {
    let ui = expect_context::<RunUi>();
    let job = StoredValue::new((run_id, pending));
    view! {
        <div class="confirm" role="group" aria-label="Confirm">
            <span>{question}</span>
            <button class="button" on:click=move |_| { ui.act.dispatch(job.get_value()); } disabled=move || ui.act.pending().get()>"Yes"</button>
            <button class="button secondary" on:click=move |_| ui.confirm.set(None)>"No"</button>
        </div>
    }
}

/// The DAG, every step coloured by its state; pending steps are drawn before they start.
/// Each box links to the step's details below, so it works before hydration too.
#[component]
fn Dag(steps: Vec<StepInfo>, records: Vec<StepRecord>, items: Vec<ItemCounts>) -> impl IntoView {
    let ui = expect_context::<RunUi>();
    let deps: Vec<Vec<usize>> = steps.iter().map(|s| s.needs.clone()).collect();
    let l = layout(&deps);
    let state_of = |id: &str| {
        records
            .iter()
            .find(|r| r.step_id == id)
            .map_or((StepStatus::Pending, None), |r| (r.status, r.skip_reason))
    };
    let nodes = steps
        .iter()
        .zip(&l.nodes)
        .map(|(s, &(x, y))| {
            let (status, skip) = state_of(&s.id);
            let marks = step_marks(s.condition.is_some(), s.for_each.is_some());
            // Shorter beside the marks, so the two never overlap.
            let room = if marks.is_empty() { 20 } else { 20 - (marks.len() + 3).min(10) };
            let label = truncate(&s.name, room);
            // What the box's second line says: the agent, the state, and why it was skipped.
            let progress = items.iter().find(|c| c.step_id == s.id);
            let state_text = match (skip, progress) {
                (Some(SkipReason::Condition), _) => "skipped: if false".to_string(),
                // A loop says how far it has got while it runs.
                (None, Some(c)) if status == StepStatus::Running => {
                    format!("{}/{}", c.succeeded + c.failed, c.total)
                }
                _ => status.as_str().to_string(),
            };
            let said = match skip {
                Some(reason) => format!("{}: skipped, {}", s.name, reason.describe()),
                None => format!("{}: {}", s.name, status.as_str()),
            };
            let agent_line = format!("{} · {}", s.agent, state_text);
            let tip = [
                s.condition.as_ref().map(|c| format!("if: {c}")),
                s.for_each.as_ref().map(|l| format!("for each: {l}")),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("\n");
            // The `<g>` puts the `<a>` in the SVG namespace: alone in a `view!`, the macro
            // cannot tell and makes an HTML `<a>`, whose shapes the browser draws at 0×0 when
            // the view is built client-side (in-app navigation), not hydrated.
            // Following the link also opens the step's panel.
            let opens = s.id.clone();
            let open_step = move |_| {
                ui.open.update(|o| {
                    o.insert(opens.clone(), true);
                })
            };
            view! {
                <g><a href=format!("#step-{}", s.id) on:click=open_step class="node" data-step=s.id.clone() data-status=status.as_str()
                   data-skip=skip.map(SkipReason::as_str) data-conditional=s.condition.is_some().then_some("true")
                   data-loop=s.for_each.is_some().then_some("true") aria-label=said>
                    <title>{(!tip.is_empty()).then_some(tip)}</title>
                    <rect x=x y=y width=NODE_W height=NODE_H rx="8"/>
                    <text x=x + 28.0 y=y + 19.0 class="node-name">{label}</text>
                    <text x=x + 28.0 y=y + 35.0 class="node-agent">{agent_line}</text>
                    <text x=x + NODE_W - 8.0 y=y + 19.0 class="node-marks" text-anchor="end">{marks}</text>
                    <text x=x + 10.0 y=y + 27.0 class="node-icon" aria-hidden="true">{status_icon(status)}</text>
                </a></g>
            }
        })
        .collect_view();
    view! { <DagFrame layout=l class="dag" label=format!("Graph of {} steps", steps.len())>{nodes}</DagFrame> }
}

/// What a step's box says of its control flow, top right: `if` (a condition), `each` (a loop).
pub fn step_marks(condition: bool, for_each: bool) -> String {
    [condition.then_some("if"), for_each.then_some("each")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A glyph per state, so state reads without colour.
pub fn status_icon(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Pending => "○",
        StepStatus::Running => "▶",
        StepStatus::Retrying => "↻",
        StepStatus::Succeeded => "✓",
        StepStatus::Failed => "✕",
        StepStatus::Skipped => "–",
        StepStatus::Cancelled => "⊘",
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    }
}

/// A Gantt of every attempt: the wait before it (queue or retry backoff) drawn apart from its
/// execution; bars keep a minimum width so 5 ms steps stay visible.
#[component]
fn Timeline(detail: RunDetail, steps: Vec<StepInfo>, end: i64) -> impl IntoView {
    let start = detail.run.created_at;
    let span = (end - start).max(1) as f64;
    let pct = move |t: i64| ((t - start) as f64 / span * 100.0).clamp(0.0, 100.0);
    let mut rows = Vec::new();
    for s in &steps {
        let record = detail.steps.iter().find(|r| r.step_id == s.id);
        let attempts: Vec<&AttemptRecord> = detail
            .attempts
            .iter()
            .filter(|a| a.step_id == s.id)
            .collect();
        if attempts.is_empty() {
            let status = record.map_or(StepStatus::Pending, |r| r.status);
            rows.push(view! {
                <div class="gantt-row" data-step=s.id.clone()>
                    <span class="gantt-label mono">{s.id.clone()}</span>
                    <span class="gantt-track"><span class="gantt-note muted">{status.as_str()}</span></span>
                    <span class="gantt-dur muted">"–"</span>
                </div>
            }.into_any());
            continue;
        }
        let mut previous_end = record.and_then(|r| r.ready_at);
        for a in attempts {
            let stop = a.finished_at.unwrap_or(end);
            let wait_from = previous_end.unwrap_or(a.started_at).min(a.started_at);
            let waited = a.started_at - wait_from;
            let ran = stop - a.started_at;
            let hover = format!(
                "{} attempt {}: {} ({}), waited {}",
                s.id,
                a.attempt,
                format_duration(ran),
                a.status.as_str(),
                format_duration(waited)
            );
            rows.push(view! {
                <div class="gantt-row" data-step=s.id.clone() data-attempt=a.attempt title=hover.clone()>
                    <span class="gantt-label mono">{format!("{} #{}", s.id, a.attempt)}</span>
                    <span class="gantt-track">
                        <span class="gantt-wait" style=format!("left:{:.3}%;width:{:.3}%", pct(wait_from), pct(a.started_at) - pct(wait_from))></span>
                        <span class="gantt-bar" data-status=a.status.as_str()
                              style=format!("left:{:.3}%;width:{:.3}%", pct(a.started_at), pct(stop) - pct(a.started_at))>
                        </span>
                    </span>
                    <span class="gantt-dur mono">{format_duration(ran)}</span>
                </div>
            }.into_any());
            previous_end = Some(stop);
        }
    }
    view! {
        <div class="gantt" role="table" aria-label="Timeline of step attempts">
            <div class="gantt-legend muted">
                <span><span class="swatch gantt-wait"></span>" waiting (queue or retry backoff)"</span>
                <span><span class="swatch gantt-bar"></span>" running"</span>
                <span>{format!("0 – {}", format_duration(end - start))}</span>
            </div>
            {rows}
        </div>
    }
}

/// One step: state, timing and every attempt's input, output, error and logs.
#[component]
fn StepPanel(
    info: StepInfo,
    record: Option<StepRecord>,
    attempts: Vec<AttemptRecord>,
    items: Option<ItemCounts>,
    run_id: String,
    retryable: bool,
    trace_href: String,
) -> impl IntoView {
    let status = record.as_ref().map_or(StepStatus::Pending, |r| r.status);
    let duration = record
        .as_ref()
        .and_then(|r| Some(r.finished_at? - r.started_at?));
    let wait = record
        .as_ref()
        .and_then(|r| Some(r.started_at? - r.ready_at?));
    let usage = Usage::of_attempts(&attempts);
    let ui = expect_context::<RunUi>();
    // Open as the person left it (or a graph node asked), else when it needs attention.
    let attention = matches!(
        status,
        StepStatus::Failed | StepStatus::Running | StepStatus::Retrying
    );
    let open_id = info.id.clone();
    let open = move || {
        ui.open
            .with(|o| o.get(&open_id).copied())
            .unwrap_or(attention)
    };
    let toggled_id = info.id.clone();
    let on_toggle = move |ev: leptos::ev::Event| {
        let open = event_target::<leptos::web_sys::Element>(&ev).has_attribute("open");
        // `toggle` also fires when the page opens a running step or closes it once it succeeds:
        // only a toggle that departs from what the page wants is the person's, and kept.
        let wanted = ui
            .open
            .with_untracked(|o| o.get(&toggled_id).copied())
            .unwrap_or(attention);
        if open != wanted {
            ui.open.update(|o| {
                o.insert(toggled_id.clone(), open);
            });
        }
    };
    let step_id = info.id.clone();
    let item_list = items.map(|counts| {
        view! { <ItemList run_id=run_id.clone() step_id=step_id.clone() counts=counts/> }.into_any()
    });
    let retry =
        retryable.then(|| view! { <RetryFromStep run_id=run_id step_id=step_id/> }.into_any());
    view! {
        <details class="step" id=format!("step-{}", info.id) data-status=status.as_str() open=open on:toggle=on_toggle>
            <summary>
                <StatusBadge status=status.as_str()/>
                <span class="step-name">{info.name.clone()}</span>
                <span class="muted mono">{info.agent.clone()}</span>
                <span class="step-meta muted">
                    {format!("{} attempt{}", attempts.len(), if attempts.len() == 1 { "" } else { "s" })}
                    {duration.map(|d| format!(" · {}", format_duration(d)))}
                    {wait.filter(|w| *w > 0).map(|w| format!(" · waited {}", format_duration(w)))}
                    {usage.reported.then(|| format!(" · {} tokens · ${:.4}", usage.tokens, usage.cost))}
                </span>
                <a class="trace-link" href=trace_href data-trace-link="step">"Trace"</a>
            </summary>
            <div class="step-body">
                {info.condition.clone().map(|c| view! {
                    <p class="step-if">"Runs if "<code class="mono">{c}</code></p>
                })}
                {info.for_each.clone().map(|l| view! {
                    <p class="step-if">"For each item of "<code class="mono">{l}</code>
                        {info.concurrency.map(|c| format!(", {c} at once"))}</p>
                })}
                {record.as_ref().and_then(|r| r.skip_reason).map(|reason| view! {
                    <p class="skip-note" data-skip=reason.as_str()>{format!("Skipped: {}.", reason.describe())}</p>
                })}
                {(info.continue_on_error && status == StepStatus::Failed).then(|| view! {
                    <p class="skip-note">"Allowed to fail (continue_on_error): the run went on."</p>
                })}
                {record.as_ref().and_then(|r| r.error_message.clone().map(|m| view! {
                    <div class="error-note"><strong>{r.error_kind.clone().unwrap_or_default()}": "</strong>{m}</div>
                }))}
                {item_list}
                {attempts.into_iter().map(|a| view! { <AttemptView attempt=a/> }.into_any()).collect_view()}
                {retry}
            </div>
        </details>
    }
}

/// A `for_each` step's items: progress, a filter by outcome, and each ended item's
/// attempts, input, output and error.
#[component]
fn ItemList(run_id: String, step_id: String, counts: ItemCounts) -> impl IntoView {
    let ui = expect_context::<RunUi>();
    let ItemCounts {
        total,
        succeeded,
        failed,
        ..
    } = counts;
    let ended = succeeded + failed;
    // Copy, so the closures below are too.
    let key = StoredValue::new(step_id.clone());
    let filter = move || {
        ui.item_filter
            .with(|f| key.with_value(|k| f.get(k).copied()))
            .unwrap_or("")
    };
    let limit = move || {
        ui.item_limit
            .with(|l| key.with_value(|k| l.get(k).copied()))
            .unwrap_or(ITEMS_SHOWN)
    };
    let list = {
        let (run_id, step_id) = (run_id.clone(), step_id.clone());
        Resource::new(
            move || (filter(), limit()),
            move |(f, l)| get_items(run_id.clone(), step_id.clone(), f.to_string(), l),
        )
    };
    let choices = [("", "All", total), ("failed", "Failed", failed), ("succeeded", "Succeeded", succeeded)]
        .into_iter()
        .map(|(value, label, n)| {
            let key = step_id.clone();
            let pick = move |_| {
                ui.item_filter.update(|f| {
                    f.insert(key.clone(), value);
                });
            };
            view! {
                <button class="chip" aria-pressed=move || (filter() == value).to_string() data-filter=value on:click=pick>
                    {format!("{label} {n}")}
                </button>
            }
        })
        .collect_view();
    let key = step_id.clone();
    let more = move |_| {
        ui.item_limit.update(|l| {
            *l.entry(key.clone()).or_insert(ITEMS_SHOWN) += ITEMS_SHOWN;
        });
    };
    view! {
        <div class="items" data-items-step=step_id.clone()>
            <p class="items-progress">
                <progress max=total.max(1) value=ended></progress>
                <span>{format!("{ended} of {total} items ended · {succeeded} succeeded · {failed} failed")}</span>
            </p>
            <div class="items-filter" role="group" aria-label="Show items">{choices}</div>
            <Suspense fallback=|| view! { <p class="muted">"Loading items…"</p> }>
                {move || {
                    let more = more.clone();
                    Suspend::new(async move {
                    match list.await {
                        Err(e) => view! { <ErrorNote error=e lead="Could not load the items"/> }.into_any(),
                        Ok(items) if items.is_empty() => view! { <p class="muted">"No item here yet."</p> }.into_any(),
                        Ok(items) => {
                            let full = items.len() as i64 >= limit();
                            // Keyed by index: an item opened under one filter does not leave
                            // its row open for whichever item takes its place under the next.
                            view! {
                                <div class="item-list">
                                    <For each=move || items.clone() key=|i| i.index let:item>
                                        <ItemView item=item/>
                                    </For>
                                </div>
                                {full.then(|| view! { <button class="button secondary" on:click=more.clone()>"Show more"</button> })}
                            }.into_any()
                        }
                    }
                })}}
            </Suspense>
        </div>
    }
}

#[component]
fn ItemView(item: ItemRecord) -> impl IntoView {
    let took = item.finished_at - item.started_at;
    view! {
        <details class="item" data-item=item.index data-status=item.status.as_str()>
            <summary>
                <span class="state-text" data-status=item.status.as_str()>{status_icon(item.status)}" "{item.status.as_str()}</span>
                <span class="mono">{format!("item {}", item.index)}</span>
                <span class="muted">{format!(
                    "{} attempt{} · {}",
                    item.attempts,
                    if item.attempts == 1 { "" } else { "s" },
                    format_duration(took)
                )}</span>
            </summary>
            {item.error_message.clone().map(|m| view! {
                <p class="attempt-error"><strong>{item.error_kind.clone().unwrap_or_default()}</strong>": "{m}</p>
            })}
            <JsonBlock label="Input" value=item.input.clone() open=false/>
            <JsonBlock label="Output" value=item.output.clone() open=true/>
        </details>
    }
}

#[component]
fn AttemptView(attempt: AttemptRecord) -> impl IntoView {
    let ran = attempt.finished_at.map(|f| f - attempt.started_at);
    view! {
        <div class="attempt" data-attempt=attempt.attempt>
            <h3>
                {format!("Attempt {} · ", attempt.attempt)}
                <span data-status=attempt.status.as_str() class="state-text">{attempt.status.as_str()}</span>
                {ran.map(|r| format!(" · {}", format_duration(r)))}
                {attempt.worker.clone().map(|w| view! {
                    " · on "<span class="attempt-worker" title="The worker that ran this attempt">{w}</span>
                })}
            </h3>
            {attempt.error_message.clone().map(|m| view! {
                <p class="attempt-error"><strong>{attempt.error_kind.clone().unwrap_or_default()}</strong>": "{m}</p>
            })}
            <JsonBlock label="Input" value=attempt.input.clone() open=false/>
            <JsonBlock label="Output" value=attempt.output.clone() open=true/>
            {(!attempt.logs.is_empty()).then(|| view! {
                <details class="json"><summary>{format!("Logs ({} line{})", attempt.logs.len(), if attempt.logs.len() == 1 { "" } else { "s" })}</summary>
                    <pre class="code">{attempt.logs.join("\n")}</pre>
                </details>
            })}
        </div>
    }
}

#[component]
fn JsonBlock(label: &'static str, value: Option<Value>, open: bool) -> impl IntoView {
    value.map(|v| {
        // A text of several lines (a cut value, a command's output) reads better as lines.
        let text = match &v {
            Value::String(s) if s.contains('\n') => s.clone(),
            v => serde_json::to_string_pretty(v).unwrap_or_default(),
        };
        view! {
            <details class="json" open=open>
                <summary>{label}</summary>
                <pre class="code">{text}</pre>
            </details>
        }
    })
}

/// "Retry from this step": reuses the outputs of everything upstream of it.
#[component]
fn RetryFromStep(run_id: String, step_id: String) -> impl IntoView {
    let ui = expect_context::<RunUi>();
    let mine = Pending::RetryFrom(step_id);
    let asking = {
        let mine = mine.clone();
        move || ui.confirm.get().as_ref() == Some(&mine)
    };
    let ask = {
        let mine = mine.clone();
        move |_| {
            ui.error.set(None);
            ui.confirm.set(Some(mine.clone()));
        }
    };
    let show_error = asking.clone();
    // Copied into the role check's children, which may render more than once.
    let (run_id, mine) = (StoredValue::new(run_id), StoredValue::new(mine));
    view! {
        <div class="actions">
            <IfRole role=Role::Operator>
                <Show when=asking.clone() fallback={
                    let ask = ask.clone();
                    move || view! {
                        <button class="button secondary" on:click=ask.clone()>"Retry from this step"</button>
                    }
                }>
                    <Confirm question="Run this step and everything after it again?" run_id=run_id.get_value() pending=mine.get_value()/>
                </Show>
            </IfRole>
            {move || ui.error.get().filter(|_| show_error()).map(|(lead, e)| view! { <ErrorNote error=e lead=lead/> })}
        </div>
    }
}
