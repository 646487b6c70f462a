//! `/workflows/:id`: one workflow — its charts (run time of recent runs, runs per day), its
//! recent runs, its latest definition, and its versions with a diff between any two.

use engine::records::{RunSummary, VersionInfo, WorkflowStats, WorkflowSummary};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use serde::{Deserialize, Serialize};

use crate::auth::IfRole;
use crate::components::{format_duration, ErrorNote, LoadError, LocalTime, Sparkline, StatusBadge};
use crate::error::AppError;
use engine::access::Role;

/// What the page shows about one workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowPageData {
    pub summary: WorkflowSummary,
    pub versions: Vec<VersionInfo>,
    /// The latest version's text, exactly as saved.
    pub source: String,
    /// Newest first.
    pub runs: Vec<RunSummary>,
    pub stats: WorkflowStats,
    /// Drawn on the server from the last week's runs (at most [`CHART_RUNS`]).
    pub charts: Vec<crate::charts::Chart>,
    /// What may start a run of the latest version, as a person reads it.
    pub triggers: Vec<TriggerView>,
    /// Secrets the latest version reads that are not set: its steps that read them fail.
    #[serde(default)]
    pub missing_secrets: Vec<String>,
    /// The latest version's declared inputs, in order: the Run form's fields.
    #[serde(default)]
    pub inputs: Vec<(String, engine::model::InputDef)>,
}

/// One trigger of the latest version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerView {
    /// manual, cron or webhook.
    pub kind: String,
    /// The schedule and zone, or the hook's method and path.
    pub detail: String,
    /// Next fire times of a schedule, in its zone.
    pub next: Vec<String>,
    pub note: Option<String>,
}

/// Next fire times listed per schedule.
#[cfg(feature = "ssr")]
const NEXT_FIRES: usize = 3;

#[cfg(feature = "ssr")]
fn trigger_views(workflow: &engine::model::Workflow, now: i64) -> Vec<TriggerView> {
    use engine::model::TriggerDef;
    use engine::schedule::{format_in_zone, Schedule};
    workflow
        .def()
        .triggers
        .iter()
        .map(|t| match t {
            TriggerDef::Manual(_) => TriggerView {
                kind: "manual".into(),
                detail: "Run button, API".into(),
                next: Vec::new(),
                note: None,
            },
            TriggerDef::Cron(c) => {
                let (next, note) = match Schedule::new(c) {
                    Ok(s) => (
                        s.upcoming(now, NEXT_FIRES)
                            .into_iter()
                            .map(|t| format_in_zone(t, c.timezone()))
                            .collect(),
                        c.catch_up()
                            .then(|| "catches up on missed runs after downtime".to_string()),
                    ),
                    Err(e) => (Vec::new(), Some(format!("not scheduled: {e}"))),
                };
                TriggerView {
                    kind: "cron".into(),
                    detail: format!("{} ({})", c.schedule(), c.timezone()),
                    next,
                    note,
                }
            }
            TriggerDef::Webhook(h) => TriggerView {
                kind: "webhook".into(),
                detail: format!("POST /hooks/{}", workflow.id()),
                next: Vec::new(),
                note: Some(match &h.secret {
                    Some(name) => format!("bearer token or HMAC signature with secret {name}"),
                    None => "names no secret, so it refuses every call".into(),
                }),
            },
        })
        .collect()
}

/// Runs the charts plot at most: the newest of the last 7 days.
#[cfg(feature = "ssr")]
pub const CHART_RUNS: i64 = 500;

/// The charts of one workflow, or of every workflow.
#[cfg(feature = "ssr")]
pub async fn charts_of(
    workflow: Option<&str>,
    now: i64,
) -> Result<Vec<crate::charts::Chart>, AppError> {
    let store = expect_context::<engine::store::Store>();
    let links = use_context::<engine::links::TraceLinks>().unwrap_or_default();
    use crate::charts::*;
    let data = store
        .chart_data(workflow, now - 7 * 86_400_000, CHART_RUNS)
        .await?;
    Ok([
        both_widths(|| duration_over_time(&data.runs, &links)),
        both_widths(|| duration_histogram(&data.runs, workflow, &links)),
        both_widths(|| success_per_hour(&data.runs, workflow, now)),
        both_widths(|| agent_durations(&data.attempts, &data.runs, &links)),
        both_widths(|| cost_per_day(&data.attempts, now)),
    ]
    .into_iter()
    .flatten()
    .collect())
}

/// Runs shown on the page and charted.
#[cfg(feature = "ssr")]
const RECENT_RUNS: i64 = 30;

/// A unified diff of two versions' texts.
#[server(endpoint = "diff_versions")]
pub async fn diff_versions(id: String, from: i64, to: i64) -> Result<String, AppError> {
    crate::auth::require(engine::access::Action::Read)?;
    let store = expect_context::<engine::store::Store>();
    let old = store.version(&id, Some(from)).await?;
    let new = store.version(&id, Some(to)).await?;
    Ok(engine::model::diff_text(
        &old.source,
        &new.source,
        &format!("{id} v{from}"),
        &format!("{id} v{to}"),
    ))
}

/// Archives the workflow (`archived`: hidden from the list, its triggers kept, its runs kept)
/// or restores it.
#[server(endpoint = "archive_workflow")]
pub async fn archive_workflow(id: String, archived: bool) -> Result<bool, AppError> {
    crate::auth::require(engine::access::Action::Edit)?;
    let store = expect_context::<engine::store::Store>();
    Ok(store
        .set_archived(&id, archived)
        .await?
        .archived_at
        .is_some())
}

/// Pauses (`paused`) or resumes the workflow's triggers; whether it is paused now.
#[server(endpoint = "pause_workflow")]
pub async fn pause_workflow(id: String, paused: bool) -> Result<bool, AppError> {
    crate::auth::require(engine::access::Action::Operate)?;
    let store = expect_context::<engine::store::Store>();
    Ok(store.set_paused(&id, paused).await?.paused_at.is_some())
}

/// Deletes the workflow with its versions and runs: how many runs went with it.
#[server(endpoint = "delete_workflow")]
pub async fn delete_workflow(id: String) -> Result<i64, AppError> {
    crate::auth::require(engine::access::Action::Edit)?;
    let engine = expect_context::<engine::executor::Engine>();
    Ok(engine.delete_workflow(&id).await?)
}

#[server(endpoint = "get_workflow")]
pub async fn get_workflow(id: String) -> Result<WorkflowPageData, AppError> {
    crate::auth::require(engine::access::Action::Read)?;
    let store = expect_context::<engine::store::Store>();
    let summary = store.workflow(&id).await?;
    let versions = store.list_versions(&id).await?;
    let latest = store.version(&id, None).await?;
    let filter = engine::store::RunFilter {
        workflow_id: Some(id.clone()),
        limit: RECENT_RUNS,
        ..Default::default()
    };
    let runs = store.list_runs(&filter).await?;
    let now = engine::store::now_ms();
    let stats = store
        .workflow_stats(now, Some(&id))
        .await?
        .remove(&id)
        .unwrap_or_default();
    let charts = charts_of(Some(&id), now).await?;
    let missing_secrets =
        expect_context::<engine::executor::Engine>().missing_secrets(&latest.workflow);
    Ok(WorkflowPageData {
        summary,
        versions,
        missing_secrets,
        triggers: trigger_views(&latest.workflow, now),
        inputs: latest
            .workflow
            .def()
            .inputs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        source: latest.source,
        runs,
        stats,
        charts,
    })
}

#[component]
pub fn WorkflowPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.with(|p| p.get("id").unwrap_or_default());
    let data = Resource::new(id, get_workflow);
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading workflow…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <LoadError error=e/> }.into_any(),
                    Ok(d) => view! { <WorkflowView data=d/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn WorkflowView(data: WorkflowPageData) -> impl IntoView {
    let WorkflowPageData {
        summary,
        versions,
        source,
        runs,
        stats,
        charts,
        triggers,
        missing_secrets,
        inputs,
    } = data;
    // `?run` (the list's Run button) opens the Run form.
    let asked = leptos_router::hooks::use_query_map().with_untracked(|q| q.get("run").is_some());
    let running = RwSignal::new(asked);
    let form = {
        let (id, versions) = (
            summary.id.clone(),
            versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        );
        view! { <crate::run_form::RunForm workflow_id=id inputs=inputs versions=versions/> }
            .into_any()
    };
    // Erased views keep the page's type shallow enough for the compiler's depth limit.
    let triggers = view! { <Triggers triggers=triggers/> }.into_any();
    let charts = view! { <Charts stats=stats charts=charts/> }.into_any();
    let recent = view! { <RecentRuns runs=runs workflow_id=summary.id.clone()/> }.into_any();
    let diff = view! { <VersionDiff workflow_id=summary.id.clone() versions=versions.iter().map(|v| v.version).collect()/> }.into_any();
    let workflow_id = StoredValue::new(summary.id.clone());
    let lifecycle = Lifecycle::new(
        summary.id.clone(),
        summary.archived_at.is_some(),
        summary.paused_at.is_some(),
    );
    let lifecycle_buttons = view! { <LifecycleButtons ui=lifecycle/> }.into_any();
    let lifecycle_panel =
        view! { <LifecyclePanel ui=lifecycle name=summary.name.clone()/> }.into_any();
    view! {
        <Title text=summary.name.clone()/>
        <section class="page">
            <header class="page-header">
                <div>
                    <h1>{summary.name.clone()}</h1>
                    <div class="wf-id mono">{format!("{} · v{}", summary.id, summary.latest_version)}</div>
                </div>
                <div class="actions">
                    <IfRole role=Role::Editor>
                        <a class="button secondary" href=format!("/workflows/{}/edit", workflow_id.get_value())>"Edit"</a>
                    </IfRole>
                    <a class="button secondary" href=format!("/runs?workflow={}", workflow_id.get_value())>"Runs"</a>
                    {lifecycle_buttons}
                    <IfRole role=Role::Operator>
                        <button class="button" aria-expanded=move || running.get().to_string()
                            disabled=move || lifecycle.paused.get()
                            title=move || lifecycle.paused.get().then_some("Paused: resume it to run")
                            on:click=move |_| running.update(|r| *r = !*r)>"Run…"</button>
                    </IfRole>
                </div>
            </header>
            <div class="run-form-slot" hidden=move || !running.get() || lifecycle.paused.get()>{form}</div>
            {lifecycle_panel}
            {summary.description.clone().map(|d| view! { <p class="muted">{d}</p> })}
            {(!missing_secrets.is_empty()).then(|| view! { <MissingSecrets names=missing_secrets/> })}
            {triggers}
            {charts}
            {recent}
            <div class="columns">
                <section aria-labelledby="definition">
                    <h2 id="definition">"Definition"</h2>
                    <pre class="code" aria-label="Workflow YAML">{source}</pre>
                </section>
                <section aria-labelledby="versions">
                    <h2 id="versions">"Versions"</h2>
                    <table class="table">
                        <caption class="visually-hidden">"Versions"</caption>
                        <thead><tr><th scope="col">"Version"</th><th scope="col">"Saved"</th><th scope="col"><span class="visually-hidden">"Export"</span></th></tr></thead>
                        <tbody>
                            {versions.into_iter().map(|v| view! {
                                <tr>
                                    <td class="mono">{format!("v{}", v.version)}</td>
                                    <td><LocalTime ms=v.created_at/></td>
                                    <td><a href=format!("/api/v1/workflows/{}/export?version={}", workflow_id.get_value(), v.version)
                                        download="" aria-label=format!("Export v{}", v.version)>"Export"</a></td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                    {diff}
                </section>
            </div>
        </section>
    }
}

/// Archive or restore, and delete (confirmed, with its runs): an editor's actions on the
/// workflow itself, shared by the header's buttons and the panel below it.
#[derive(Clone, Copy)]
struct Lifecycle {
    id: StoredValue<String>,
    archived: RwSignal<bool>,
    paused: RwSignal<bool>,
    pause: Action<bool, Result<bool, AppError>>,
    confirming: RwSignal<bool>,
    toggle: Action<bool, Result<bool, AppError>>,
    delete: Action<(), Result<i64, AppError>>,
}

impl Lifecycle {
    fn new(workflow_id: String, archived: bool, paused: bool) -> Lifecycle {
        let id = StoredValue::new(workflow_id);
        let archived = RwSignal::new(archived);
        let paused = RwSignal::new(paused);
        let pause = Action::new(move |to: &bool| pause_workflow(id.get_value(), *to));
        Effect::new(move |_| {
            if let Some(Ok(now)) = pause.value().get() {
                paused.set(now);
            }
        });
        let toggle = Action::new(move |to: &bool| archive_workflow(id.get_value(), *to));
        Effect::new(move |_| {
            if let Some(Ok(now)) = toggle.value().get() {
                archived.set(now);
            }
        });
        let delete = Action::new(move |_: &()| delete_workflow(id.get_value()));
        let navigate = leptos_router::hooks::use_navigate();
        Effect::new(move |_| {
            if let Some(Ok(_)) = delete.value().get() {
                navigate("/workflows", Default::default());
            }
        });
        Lifecycle {
            id,
            archived,
            paused,
            pause,
            confirming: RwSignal::new(false),
            toggle,
            delete,
        }
    }
}

/// Export, Archive or Restore, Delete…: in the page's header.
#[component]
fn LifecycleButtons(ui: Lifecycle) -> impl IntoView {
    view! {
        <a class="button secondary" href=move || format!("/api/v1/workflows/{}/export", ui.id.get_value()) download="">"Export"</a>
        <IfRole role=Role::Operator>
            <button class="button secondary" disabled=move || ui.pause.pending().get()
                on:click=move |_| { ui.pause.dispatch(!ui.paused.get_untracked()); }>
                {move || if ui.paused.get() { "Resume" } else { "Pause" }}
            </button>
        </IfRole>
        <IfRole role=Role::Editor>
            <button class="button secondary" disabled=move || ui.toggle.pending().get()
                on:click=move |_| { ui.toggle.dispatch(!ui.archived.get_untracked()); }>
                {move || if ui.archived.get() { "Restore" } else { "Archive" }}
            </button>
            <button class="button secondary danger-text" aria-expanded=move || ui.confirming.get().to_string()
                on:click=move |_| ui.confirming.set(true)>"Delete…"</button>
        </IfRole>
    }
}

/// Below the header: that the workflow is archived, the delete question, what went wrong.
#[component]
fn LifecyclePanel(ui: Lifecycle, name: String) -> impl IntoView {
    let question =
        format!("Delete “{name}” with all its versions and runs? This cannot be undone.");
    view! {
        <div class="note paused-note" role="status" hidden=move || !ui.paused.get()>
            <strong>"Paused."</strong>
            " No run starts: its schedules pass, its webhook answers 409 and Run is off. Resume to start runs again."
        </div>
        <div class="note archived-note" role="status" hidden=move || !ui.archived.get()>
            <strong>"Archived."</strong>
            " Hidden from the workflow list; its runs are kept. Restore it to list it again."
        </div>
        {move || ui.confirming.get().then(|| view! {
            <div class="confirm" role="group" aria-label="Confirm">
                <span>{question.clone()}</span>
                <button class="button danger" disabled=move || ui.delete.pending().get()
                    on:click=move |_| { ui.delete.dispatch(()); }>"Delete"</button>
                <button class="button secondary" on:click=move |_| ui.confirming.set(false)>"Keep it"</button>
            </div>
        })}
        {move || ui.pause.value().get().and_then(Result::err).map(|e| view! { <ErrorNote error=e lead="Could not pause or resume the workflow"/> })}
        {move || ui.toggle.value().get().and_then(Result::err).map(|e| view! { <ErrorNote error=e lead="Could not change the workflow"/> })}
        {move || ui.delete.value().get().and_then(Result::err).map(|e| view! { <ErrorNote error=e lead="Could not delete the workflow"/> })}
    }
}

/// What starts this workflow: schedules with their next fire times, the webhook's address.
#[component]
fn Triggers(triggers: Vec<TriggerView>) -> impl IntoView {
    (!triggers.is_empty()).then(|| {
        view! {
            <section class="triggers" aria-labelledby="triggers">
                <h2 id="triggers">"Triggers"</h2>
                <ul class="trigger-list">
                    {triggers.into_iter().map(|t| view! {
                        <li class="trigger">
                            <span class="badge">{t.kind.clone()}</span>
                            <span class="mono">{t.detail}</span>
                            {(!t.next.is_empty()).then(|| view! {
                                <span class="next-fires"><span class="muted">"next"</span>
                                    {t.next.iter().map(|n| view! { <time>{n.clone()}</time> }).collect_view()}
                                </span>
                            })}
                            {t.note.map(|n| view! { <span class="muted">{n}</span> })}
                        </li>
                    }).collect_view()}
                </ul>
            </section>
        }
    })
}

/// Health figures and the charts; every point or bar in them is a link.
#[component]
fn Charts(stats: WorkflowStats, charts: Vec<crate::charts::Chart>) -> impl IntoView {
    let rate = if stats.finished_24h > 0 {
        format!(
            "{:.0} %",
            stats.succeeded_24h as f64 / stats.finished_24h as f64 * 100.0
        )
    } else {
        "–".into()
    };
    view! {
        <section class="panel charts" aria-labelledby="charts-h">
            <h2 id="charts-h">"Health"</h2>
            <dl class="facts">
                <div><dt>"Success, 24 h"</dt><dd>{rate}</dd></div>
                <div><dt>"p95 run time, 24 h"</dt><dd>{stats.p95_ms_24h.map(format_duration).unwrap_or_else(|| "–".into())}</dd></div>
                <div><dt>"Runs per day, 7 days"</dt><dd><Sparkline values=stats.runs_per_day.to_vec() label=format!("Runs per day: {:?}", stats.runs_per_day)/></dd></div>
            </dl>
            <ChartGrid charts=charts/>
        </section>
    }
}

/// The charts side by side, or a sentence when there is nothing to draw yet.
#[component]
pub fn ChartGrid(charts: Vec<crate::charts::Chart>) -> impl IntoView {
    if charts.is_empty() {
        return view! { <p class="muted">"No finished runs in the last 7 days."</p> }.into_any();
    }
    view! {
        <div class="chart-grid">
            {charts.into_iter().map(|c| view! { <crate::charts::ChartFigure chart=c/> }).collect_view()}
        </div>
    }
    .into_any()
}

#[component]
fn RecentRuns(runs: Vec<RunSummary>, workflow_id: String) -> impl IntoView {
    let rows = runs
        .into_iter()
        .take(10)
        .map(|r| {
            let ran = r.started_at.zip(r.finished_at).map(|(s, f)| format_duration(f - s));
            view! {
                <tr data-run=r.id.clone()>
                    <td><a href=format!("/runs/{}", r.id)><StatusBadge status=r.status.as_str()/></a></td>
                    <td data-label="Created"><LocalTime ms=r.created_at/></td>
                    <td data-label="Trigger">{r.started_by()}</td>
                    <td class="num" data-label="Run time">{ran.unwrap_or_else(|| "–".into())}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section aria-labelledby="runs-h" class="recent-runs">
            <h2 id="runs-h">"Recent runs"</h2>
            <table class="table">
                <caption class="visually-hidden">"Recent runs"</caption>
                <thead><tr><th scope="col">"Status"</th><th scope="col">"Created"</th><th scope="col">"Trigger"</th><th scope="col" class="num">"Run time"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
            <p><a href=format!("/runs?workflow={workflow_id}")>"All runs of this workflow →"</a></p>
        </section>
    }
}

/// Pick two versions, see what changed between them.
#[component]
fn VersionDiff(workflow_id: String, versions: Vec<i64>) -> impl IntoView {
    let latest = versions.iter().copied().max().unwrap_or(1);
    let from = RwSignal::new((latest - 1).max(1));
    let to = RwSignal::new(latest);
    let diff =
        Action::new(move |(id, a, b): &(String, i64, i64)| diff_versions(id.clone(), *a, *b));
    let id = StoredValue::new(workflow_id);
    let options = move |selected: RwSignal<i64>| {
        versions
            .iter()
            .map(|&v| view! { <option value=v.to_string() selected=move || selected.get() == v>{format!("v{v}")}</option> })
            .collect_view()
    };
    let from_options = options(from);
    let to_options = options(to);
    view! {
        <form class="diff-form" aria-label="Compare versions" on:submit=move |ev| {
            ev.prevent_default();
            diff.dispatch((id.get_value(), from.get_untracked(), to.get_untracked()));
        }>
            <label>"From"<select on:change=move |ev| from.set(event_target_value(&ev).parse().unwrap_or(1))>{from_options}</select></label>
            <label>"To"<select on:change=move |ev| to.set(event_target_value(&ev).parse().unwrap_or(1))>{to_options}</select></label>
            <button class="button secondary" type="submit">"Compare"</button>
        </form>
        {move || diff.value().get().map(|r| match r {
            Ok(text) if text.trim().is_empty() => view! { <p class="muted">"No differences."</p> }.into_any(),
            Ok(text) => view! {
                <pre class="code diff" aria-label="Diff">
                    {text.lines().map(|l| {
                        let class = if l.starts_with("+++") || l.starts_with("---") { "meta" }
                            else if l.starts_with('+') { "add" } else if l.starts_with('-') { "del" } else if l.starts_with("@@") { "meta" } else { "" };
                        view! { <span class=class>{l.to_string()}"\n"</span> }
                    }).collect_view()}
                </pre>
            }.into_any(),
            Err(e) => view! { <ErrorNote error=e/> }.into_any(),
        })}
    }
}

/// Before a run fails on it: the secrets this workflow reads that are not set, and where to
/// set them.
#[component]
fn MissingSecrets(names: Vec<String>) -> impl IntoView {
    let one = names.len() == 1;
    let (what, them) = if one {
        (format!("secret {}, which is", names[0]), "it")
    } else {
        (format!("secrets {}, which are", names.join(", ")), "them")
    };
    let env = if one {
        format!("FLOWSCOPE_SECRET_{}", names[0])
    } else {
        "FLOWSCOPE_SECRET_<NAME>".to_string()
    };
    view! {
        <div class="error-note missing-secrets" role="note">
            <strong>{format!("Needs {what} not set.")}</strong>
            {format!(" Steps that read {them} fail until then. Set {env} on the server, or ")}
            <a href="/settings#secrets">{format!("add {them} in Settings → Secrets")}</a>
            "."
        </div>
    }
}
