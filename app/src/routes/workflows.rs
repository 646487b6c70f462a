//! `/workflows`: every workflow with its tags and latest version, searchable by name or tag.

use engine::records::{WorkflowStats, WorkflowSummary};
use leptos::prelude::*;
use leptos_meta::Title;
use serde::{Deserialize, Serialize};

use crate::components::{format_duration, ErrorNote, Sparkline, StatusBadge};
use crate::error::AppError;

/// A workflow with how it has been doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRow {
    pub summary: WorkflowSummary,
    pub stats: WorkflowStats,
}

/// The workflows that are not archived, by id, with their run stats.
#[server(endpoint = "list_workflows")]
pub async fn list_workflows() -> Result<Vec<WorkflowRow>, AppError> {
    let store = expect_context::<engine::store::Store>();
    let mut stats = store.workflow_stats(engine::store::now_ms(), None).await?;
    Ok(store
        .list_workflows(false)
        .await?
        .into_iter()
        .map(|summary| WorkflowRow {
            stats: stats.remove(&summary.id).unwrap_or_default(),
            summary,
        })
        .collect())
}

/// Starts a run ("manual" trigger) with inputs given as a JSON object text; missing inputs
/// take their defaults. Returns the new run's id.
#[server(endpoint = "trigger_run")]
pub async fn trigger_run(workflow_id: String, inputs_json: String) -> Result<String, AppError> {
    use engine::executor::{Engine, EngineError, TriggerRequest};
    let inputs = if inputs_json.trim().is_empty() {
        Default::default()
    } else {
        serde_json::from_str(&inputs_json)
            .map_err(|e| AppError::Invalid(format!("inputs must be a JSON object: {e}")))?
    };
    let engine = expect_context::<Engine>();
    let request = TriggerRequest {
        workflow_id,
        inputs,
        trigger: "manual".into(),
        ..Default::default()
    };
    match engine.trigger(request).await {
        Ok(run) => Ok(run.id),
        Err(EngineError::InvalidInputs(problems)) => Err(AppError::Invalid(
            problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )),
        Err(EngineError::Store(e)) => Err(e.into()),
        Err(e) => {
            leptos::logging::error!("trigger failed: {e}");
            Err(AppError::Internal)
        }
    }
}

/// Whether a workflow matches the search box: name, id or a tag contains the text.
pub fn matches(workflow: &WorkflowSummary, query: &str) -> bool {
    let query = query.trim().to_lowercase();
    query.is_empty()
        || workflow.name.to_lowercase().contains(&query)
        || workflow.id.contains(&query)
        || workflow
            .tags
            .iter()
            .any(|t| t.to_lowercase().contains(&query))
}

#[component]
pub fn WorkflowsPage() -> impl IntoView {
    let workflows = Resource::new(|| (), |_| list_workflows());
    let (query, set_query) = signal(String::new());
    view! {
        <Title text="Workflows"/>
        <section class="page">
            <header class="page-header">
                <h1>"Workflows"</h1>
                <label class="search">
                    <span class="visually-hidden">"Search workflows"</span>
                    <input
                        type="search"
                        placeholder="Search by name or tag"
                        aria-label="Search workflows"
                        prop:value=query
                        on:input=move |ev| set_query.set(event_target_value(&ev))
                    />
                </label>
                <a class="button" href="/workflows/new">"New workflow"</a>
            </header>
            <Suspense fallback=|| view! { <p class="muted">"Loading workflows…"</p> }>
                {move || Suspend::new(async move {
                    match workflows.await {
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                        Ok(list) if list.is_empty() => view! {
                            <div class="empty-state">
                                <h2>"No workflows yet"</h2>
                                <p>"Create one with the API or the CLI; examples are seeded into an empty database."</p>
                            </div>
                        }.into_any(),
                        Ok(list) => view! { <WorkflowTable list query/> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn WorkflowTable(list: Vec<WorkflowRow>, query: ReadSignal<String>) -> impl IntoView {
    let total = list.len();
    let list = StoredValue::new(list);
    let visible = move || {
        list.with_value(|l| {
            l.iter()
                .filter(|w| matches(&w.summary, &query.get()))
                .cloned()
                .collect::<Vec<_>>()
        })
    };
    view! {
        <table class="table workflows">
            <caption class="visually-hidden">"Workflows"</caption>
            <thead>
                <tr>
                    <th scope="col">"Name"</th>
                    <th scope="col">"Tags"</th>
                    <th scope="col">"Last run"</th>
                    <th scope="col" class="num">"Success 24 h"</th>
                    <th scope="col" class="num">"p95 24 h"</th>
                    <th scope="col">"Runs, 7 days"</th>
                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                </tr>
            </thead>
            <tbody>
                <For each=visible key=|w| (w.summary.id.clone(), w.summary.latest_version, w.stats.clone()) let:row>
                    {
                        let WorkflowRow { summary: w, stats } = row;
                        let rate = (stats.finished_24h > 0).then(|| stats.succeeded_24h as f64 / stats.finished_24h as f64 * 100.0);
                        view! {
                            <tr data-workflow=w.id.clone()>
                                <td>
                                    <a class="wf-name" href=format!("/workflows/{}", w.id)>{w.name.clone()}</a>
                                    <div class="wf-id mono">{format!("{} · v{}", w.id, w.latest_version)}</div>
                                    {w.description.clone().map(|d| view! { <div class="muted wf-desc">{d}</div> })}
                                </td>
                                <td>
                                    <ul class="tags">
                                        {w.tags.iter().map(|t| view! { <li class="tag">{t.clone()}</li> }).collect_view()}
                                    </ul>
                                </td>
                                <td>{match stats.last_status {
                                    Some(s) => view! { <a href=format!("/runs?workflow={}", w.id)><StatusBadge status=s.as_str()/></a> }.into_any(),
                                    None => view! { <span class="muted">"never run"</span> }.into_any(),
                                }}</td>
                                <td class="num">{rate.map(|r| format!("{r:.0} %")).unwrap_or_else(|| "–".into())}</td>
                                <td class="num">{stats.p95_ms_24h.map(format_duration).unwrap_or_else(|| "–".into())}</td>
                                <td><Sparkline values=stats.runs_per_day.to_vec() label=format!("Runs per day over 7 days: {:?}", stats.runs_per_day)/></td>
                                <td><RunButton workflow_id=w.id.clone()/></td>
                            </tr>
                        }
                    }
                </For>
            </tbody>
        </table>
        <p class="muted count" aria-live="polite">
            {move || {
                let shown = visible().len();
                if shown == total { format!("{total} workflows") } else { format!("{shown} of {total} workflows") }
            }}
        </p>
    }
}

/// Starts a run with the defaults and opens it.
#[component]
fn RunButton(workflow_id: String) -> impl IntoView {
    let run = ServerAction::<TriggerRun>::new();
    let navigate = leptos_router::hooks::use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(id)) = run.value().get() {
            navigate(&format!("/runs/{id}"), Default::default());
        }
    });
    let label = format!("Run {workflow_id}");
    view! {
        <ActionForm action=run>
            <input type="hidden" name="workflow_id" value=workflow_id/>
            <input type="hidden" name="inputs_json" value=""/>
            <button class="button secondary small" type="submit" aria-label=label>"Run"</button>
        </ActionForm>
        {move || match run.value().get() {
            Some(Err(e)) => Some(view! { <ErrorNote error=e/> }),
            _ => None,
        }}
    }
}
