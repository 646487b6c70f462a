//! `/runs/:id`: one run, live — its DAG coloured by step state, a timeline of every attempt
//! (queue wait apart from execution), each step's input, output, error and logs, and the
//! Cancel / Retry actions. Changes arrive over the run's event stream (Server-Sent Events).

use engine::records::{AttemptRecord, RunDetail, RunStatus, StepRecord, StepStatus};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::components::{follow_events, format_duration, LoadError, LocalTime, StatusBadge};
use crate::error::AppError;

mod actions;
mod api;
mod calls;
mod graph;
mod steps;
mod waits;
use actions::*;
pub use api::*;
use calls::{ChildRuns, RunOutputs};
pub use graph::step_marks;
use graph::*;
use steps::*;
use waits::WaitingPanel;
pub use waits::{decide_step, pause_run};

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
            <RunActions run_id=run.id.clone() status=run.status failed_steps=failed_steps(&detail.steps) inputs=detail.inputs.clone()/>
        </header>
        {run.error.clone().map(|e| view! { <div class="error-note" role="note"><strong>{ended_because(run.status)}</strong>{e}</div> })}
    }
    .into_any();
    let facts = view! {
        <dl class="facts">
            <div><dt>"Workflow"</dt><dd><a href=format!("/workflows/{}", run.workflow_id)>{run.workflow_id.clone()}</a>{format!(" · v{}", run.workflow_version)}</dd></div>
            <div><dt>"Trigger"</dt><dd>{run.started_by()}</dd></div>
            <div><dt>"Created"</dt><dd><LocalTime ms=run.created_at/></dd></div>
            <div><dt>"Queue wait"</dt><dd>{queue_wait.map(format_duration).unwrap_or_else(|| "waiting…".into())}</dd></div>
            <div><dt>{if finished { "Run time" } else { "Running for" }}</dt><dd>{move || run_time().map(format_duration).unwrap_or_else(|| "–".into())}</dd></div>
            {(!run.labels.is_empty()).then(|| view! {
                <div><dt>"Labels"</dt><dd class="labels">{run.labels.iter().map(|(k, v)| {
                    let label = format!("{k}:{v}");
                    let href = format!("/runs?label={}", engine::links::encode_component(&label));
                    view! { <a class="label" href=href title="Runs with this label">{label}</a> }
                }).collect_view()}</dd></div>
            })}
            {run.parent_run_id.clone().map(|p| view! { <div><dt>"Retry of"</dt><dd><a class="mono" href=format!("/runs/{p}")>{short_id(&p)}</a></dd></div> })}
            {detail.caller.clone().map(|c| {
                let step = match c.item {
                    Some(i) => format!(" · step {} · item {i}", c.step_id),
                    None => format!(" · step {}", c.step_id),
                };
                view! { <div><dt>"Called by"</dt><dd><a class="mono" href=format!("/runs/{}", c.run_id) data-caller-run=c.run_id.clone()>{short_id(&c.run_id)}</a>{step}</dd></div> }
            })}
            {usage.view()}
            <div><dt>"Trace"</dt><dd><a href=trace_href(None) data-trace-link="run">{trace_label}</a></dd></div>
        </dl>
    }
    .into_any();
    let waiting = view! { <WaitingPanel run_id=run.id.clone() waits=detail.waits.clone() steps=steps.clone() now=now/> }.into_any();
    let calls = view! { <ChildRuns children=detail.children.clone()/> }.into_any();
    let outputs = view! { <RunOutputs outputs=detail.outputs.clone()/> }.into_any();
    let graph = view! {
        <section aria-labelledby="graph-h" class="panel">
            <h2 id="graph-h">"Graph"</h2>
            <Dag steps=steps.clone() records=detail.steps.clone() items=detail.items.clone() waiting=waiting_steps(&detail)/>
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
    let step_panels = steps
        .iter()
        .map(|s| {
            let record = detail.steps.iter().find(|r| r.step_id == s.id).cloned();
            let attempts: Vec<AttemptRecord> = detail.attempts.iter().filter(|a| a.step_id == s.id).cloned().collect();
            // The latest attempt's span is the one selected in the trace.
            let href = trace_href(attempts.last().and_then(|a| a.span_id.as_deref()));
            let items = detail.items.iter().find(|c| c.step_id == s.id).cloned();
            view! { <StepPanel info=s.clone() record=record attempts=attempts items=items run_id=run.id.clone() retryable=finished trace_href=href/> }.into_any()
        })
        .collect::<Vec<_>>();
    view! {
        <Title text=title/>
        <section class="page run-page" data-status=run.status.as_str()>
            {header}
            {facts}
            {waiting}
            {calls}
            {graph}
            {timeline}
            {outputs}
            <section aria-labelledby="steps-h">
                <h2 id="steps-h">"Steps"</h2>
                {step_panels}
            </section>
        </section>
    }
}

/// Running steps that wait, and for what, as their graph box says it.
fn waiting_steps(detail: &RunDetail) -> Vec<(String, &'static str)> {
    use engine::records::WaitKind;
    let waits = detail
        .waits
        .iter()
        .filter(|w| w.resolved_at.is_none())
        .map(|w| {
            let what = match w.kind {
                WaitKind::Approval => "awaits a decision",
                WaitKind::Event => "awaits an event",
                WaitKind::Delay => "sleeping",
                WaitKind::Workflow => "awaits its child",
            };
            (w.step_id.clone(), what)
        });
    // A call waits for its child run while that one is not over.
    let calls = detail
        .children
        .iter()
        .filter(|c| c.item.is_none() && !c.status.is_finished())
        .map(|c| (c.step_id.clone(), "awaits its child"));
    waits.chain(calls).collect()
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
    /// A whole retry with these inputs (JSON text), on the latest version when true.
    RetryChanged(String, bool),
    /// Pause (true) or resume the run: no confirmation asked.
    Pause(bool),
}

/// A decision as the approval form sends it: run, step, approve, comment, fields (JSON).
type DecisionArgs = (String, String, bool, String, String);

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
    /// An approval form's text as typed, by (step, field; "" for the comment): a refetch that
    /// rebuilds the form while someone types keeps it.
    drafts: RwSignal<std::collections::HashMap<(String, String), String>>,
    /// The decision sent last (run, step, approve, comment, fields) and its answer.
    decide: Action<DecisionArgs, Result<(), AppError>>,
    /// The step the last decision was for.
    decide_for: RwSignal<Option<String>>,
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
                    Pending::RetryChanged(inputs, latest) => {
                        retry_changed_run(id, inputs, latest).await.map(Some)
                    }
                    Pending::Pause(pause) => pause_run(id, pause).await.map(|_| None),
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
                    Some(Pending::Pause(true)) => "Could not pause the run",
                    Some(Pending::Pause(false)) => "Could not resume the run",
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
            drafts: RwSignal::new(Default::default()),
            decide_for: RwSignal::new(None),
            decide: Action::new(
                |(run, step, approved, comment, fields): &(
                    String,
                    String,
                    bool,
                    String,
                    String,
                )| {
                    let args = (
                        run.clone(),
                        step.clone(),
                        *approved,
                        comment.clone(),
                        fields.clone(),
                    );
                    async move { decide_step(args.0, args.1, args.2, args.3, args.4).await }
                },
            ),
        }
    }
}
