//! `/workflows`: the workflows with their tags, latest version and run stats, searchable by
//! name, id or tag, 50 to a page. The search and page live in the URL (`?q=&page=`), so a
//! filtered list is a link and works before hydration; the server filters, then reads the stats
//! of the page's workflows only.

use engine::records::{WorkflowStats, WorkflowSummary};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_query_map};
use leptos_router::NavigateOptions;
use serde::{Deserialize, Serialize};

use crate::auth::IfRole;
use crate::components::{format_duration, ErrorNote, Sparkline, StatusBadge};
use crate::error::AppError;
use engine::access::Role;

/// Workflows on one page of the list.
pub const PER_PAGE: usize = 50;

/// A workflow with how it has been doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRow {
    pub summary: WorkflowSummary,
    pub stats: WorkflowStats,
}

/// One page of the list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowList {
    pub rows: Vec<WorkflowRow>,
    /// Workflows that match the search, and all that are not archived.
    pub matching: usize,
    pub total: usize,
    /// The page shown (1-based, within range) and how many there are.
    pub page: usize,
    pub pages: usize,
}

/// The workflows matching `query` on `page` (1-based; out of range shows the nearest page),
/// with how many match, the page shown and the number of pages.
pub fn select_page(
    list: Vec<WorkflowSummary>,
    query: &str,
    page: usize,
) -> (Vec<WorkflowSummary>, usize, usize, usize) {
    let matching: Vec<WorkflowSummary> = list.into_iter().filter(|w| matches(w, query)).collect();
    let pages = matching.len().div_ceil(PER_PAGE).max(1);
    let page = page.clamp(1, pages);
    let count = matching.len();
    let shown = matching
        .into_iter()
        .skip((page - 1) * PER_PAGE)
        .take(PER_PAGE)
        .collect();
    (shown, count, page, pages)
}

/// One page of the workflows that are not archived and match `query`, with their run stats.
/// (`archived`: the archived ones instead.)
#[server(endpoint = "list_workflows")]
pub async fn list_workflows(
    query: String,
    page: usize,
    #[server(default)] archived: bool,
) -> Result<WorkflowList, AppError> {
    crate::auth::require(engine::access::Action::Read)?;
    let store = expect_context::<engine::store::Store>();
    let mut all = store.list_workflows(archived).await?;
    if archived {
        all.retain(|w| w.archived_at.is_some());
    }
    let total = all.len();
    let (shown, matching, page, pages) = select_page(all, &query, page);
    let ids: Vec<&str> = shown.iter().map(|w| w.id.as_str()).collect();
    let mut stats = store
        .workflow_stats_of(engine::store::now_ms(), &ids)
        .await?;
    let rows = shown
        .into_iter()
        .map(|summary| WorkflowRow {
            stats: stats.remove(&summary.id).unwrap_or_default(),
            summary,
        })
        .collect();
    Ok(WorkflowList {
        rows,
        matching,
        total,
        page,
        pages,
    })
}

/// The list's URL for a search and page (of the archived workflows with `archived=1`).
fn list_href(query: &str, page: usize, archived: bool) -> String {
    let mut params = Vec::new();
    if archived {
        params.push("archived=1".to_string());
    }
    if !query.is_empty() {
        params.push(format!("q={}", engine::links::encode_component(query)));
    }
    if page > 1 {
        params.push(format!("page={page}"));
    }
    if params.is_empty() {
        "/workflows".into()
    } else {
        format!("/workflows?{}", params.join("&"))
    }
}

/// Starts a run ("manual" trigger) of `version` (latest when absent) with inputs given as a
/// JSON object text; missing inputs take their defaults. Returns the new run's id.
#[server(endpoint = "trigger_run")]
pub async fn trigger_run(
    workflow_id: String,
    inputs_json: String,
    #[server(default)] version: Option<i64>,
) -> Result<String, AppError> {
    crate::auth::require(engine::access::Action::Operate)?;
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
        version,
        inputs,
        trigger: "manual".into(),
        actor: crate::auth::current().and_then(|p| p.actor()),
        ..Default::default()
    };
    match engine.trigger(request).await {
        Ok(run) => Ok(run.id),
        Err(EngineError::InvalidInputs(problems)) => Err(AppError::Problems(problems)),
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
    let params = use_query_map();
    let search = Memo::new(move |_| {
        params.with(|p| {
            (
                p.get("q").unwrap_or_default(),
                p.get("page")
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(1),
            )
        })
    });
    let archived = Memo::new(move |_| params.with(|p| p.get("archived").is_some()));
    let workflows = Resource::new(
        move || (search.get(), archived.get()),
        |((q, page), archived)| list_workflows(q, page, archived),
    );
    let navigate = use_navigate();
    // Each keystroke replaces the URL (no history entry per letter) and refetches the page.
    let on_input = move |ev| {
        let q = event_target_value(&ev);
        navigate(
            &list_href(q.trim(), 1, archived.get_untracked()),
            NavigateOptions {
                replace: true,
                scroll: false,
                ..Default::default()
            },
        );
    };
    view! {
        <Title text="Workflows"/>
        <section class="page">
            <header class="page-header">
                <h1>{move || if archived.get() { "Archived workflows" } else { "Workflows" }}</h1>
                // Without JavaScript, Enter submits the search as a plain GET.
                <form class="search" role="search" method="get" action="/workflows"
                      on:submit=|ev| ev.prevent_default()>
                    {move || archived.get().then(|| view! { <input type="hidden" name="archived" value="1"/> })}
                    <label>
                        <span class="visually-hidden">"Search workflows"</span>
                        <input
                            type="search"
                            name="q"
                            placeholder="Search by name or tag"
                            aria-label="Search workflows"
                            prop:value=move || search.with(|s| s.0.clone())
                            on:input=on_input
                        />
                    </label>
                </form>
                <div class="actions">
                    <a class="button secondary" href=move || list_href("", 1, !archived.get())>
                        {move || if archived.get() { "Active workflows" } else { "Archived" }}
                    </a>
                    <IfRole role=Role::Editor>
                        <Import/>
                        <a class="button" href="/workflows/new">"New workflow"</a>
                    </IfRole>
                </div>
            </header>
            <Transition fallback=|| view! { <p class="muted">"Loading workflows…"</p> }>
                {move || Suspend::new(async move {
                    match workflows.await {
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                        Ok(list) if list.total == 0 => view! {
                            <div class="empty-state">
                                <h2>"No workflows yet"</h2>
                                <p>"Create one with the API or the CLI; examples are seeded into an empty database."</p>
                            </div>
                        }.into_any(),
                        Ok(list) => {
                            let query = search.with_untracked(|s| s.0.clone());
                            let archived = archived.get_untracked();
                            view! { <WorkflowTable list query archived/> }.into_any()
                        }
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn WorkflowTable(list: WorkflowList, query: String, archived: bool) -> impl IntoView {
    let WorkflowList {
        rows,
        matching,
        total,
        page,
        pages,
    } = list;
    let count = {
        let noun = if total == 1 { "workflow" } else { "workflows" };
        let shown = if matching == total {
            format!("{total} {noun}")
        } else {
            format!("{matching} of {total} {noun}")
        };
        if pages > 1 {
            format!("{shown} · page {page} of {pages}")
        } else {
            shown
        }
    };
    let previous = (page > 1).then(|| {
        view! { <a class="button secondary" rel="prev" href=list_href(&query, page - 1, archived)>"← Previous"</a> }
    });
    let next = (page < pages).then(|| {
        view! { <a class="button secondary" rel="next" href=list_href(&query, page + 1, archived)>"Next →"</a> }
    });
    if rows.is_empty() {
        return view! {
            <div class="empty-state"><p>{format!("No workflows match “{query}”.")}</p></div>
            <p class="muted count" aria-live="polite">{count}</p>
        }
        .into_any();
    }
    let rows = rows
        .into_iter()
        .map(|WorkflowRow { summary: w, stats }| {
            let rate = (stats.finished_24h > 0)
                .then(|| stats.succeeded_24h as f64 / stats.finished_24h as f64 * 100.0);
            view! {
                <tr data-workflow=w.id.clone()>
                    <td>
                        <a class="wf-name" href=format!("/workflows/{}", w.id)>{w.name.clone()}</a>
                        <div class="wf-id mono">{format!("{} · v{}", w.id, w.latest_version)}</div>
                        {w.paused_at.is_some().then(|| view! { <span class="badge paused">"Paused"</span> })}
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
                    <td>{if w.paused_at.is_some() {
                        view! { <span class="muted small">"paused"</span> }.into_any()
                    } else {
                        view! { <RunButton workflow_id=w.id.clone()/> }.into_any()
                    }}</td>
                </tr>
            }
        })
        .collect_view();
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
            <tbody>{rows}</tbody>
        </table>
        <p class="muted count" aria-live="polite">{count}</p>
        {(pages > 1).then(|| view! { <nav class="pager" aria-label="Pages">{previous}{next}</nav> })}
    }
    .into_any()
}

/// Opens the workflow's Run form (its inputs, defaults filled).
#[component]
fn RunButton(workflow_id: String) -> impl IntoView {
    let label = format!("Run {workflow_id}");
    let href = format!("/workflows/{workflow_id}?run");
    // Copied into the role check's children, which may render more than once.
    let (href, label) = (StoredValue::new(href), StoredValue::new(label));
    view! {
        <IfRole role=Role::Operator>
            <a class="button secondary small" href=href.get_value() aria-label=label.get_value()>"Run…"</a>
        </IfRole>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workflow(i: usize, tag: &str) -> WorkflowSummary {
        WorkflowSummary {
            id: format!("wf-{i:04}"),
            name: format!("Workflow {i}"),
            description: None,
            tags: vec![tag.to_string()],
            latest_version: 1,
            created_at: 0,
            updated_at: 0,
            archived_at: None,
            paused_at: None,
        }
    }

    fn ids(list: &[WorkflowSummary]) -> Vec<String> {
        list.iter().map(|w| w.id.clone()).collect()
    }

    #[test]
    fn pages_hold_fifty_and_out_of_range_pages_show_the_nearest() {
        let all: Vec<WorkflowSummary> = (0..120).map(|i| workflow(i, "t")).collect();
        let (first, matching, page, pages) = select_page(all.clone(), "", 1);
        assert_eq!((first.len(), matching, page, pages), (PER_PAGE, 120, 1, 3));
        assert_eq!(first[0].id, "wf-0000");
        let (last, _, page, _) = select_page(all.clone(), "", 3);
        assert_eq!((last.len(), page), (20, 3));
        assert_eq!(last[19].id, "wf-0119");
        let (beyond, _, page, _) = select_page(all.clone(), "", 99);
        assert_eq!((ids(&beyond), page), (ids(&last), 3));
        let (zero, _, page, _) = select_page(all, "", 0);
        assert_eq!((ids(&zero), page), (ids(&first), 1));
    }

    #[test]
    fn the_search_filters_before_paging() {
        let all: Vec<WorkflowSummary> = (0..120)
            .map(|i| workflow(i, if i % 3 == 0 { "billing" } else { "ops" }))
            .collect();
        let (shown, matching, page, pages) = select_page(all.clone(), " Billing ", 1);
        assert_eq!((matching, page, pages), (40, 1, 1));
        assert!(shown.iter().all(|w| w.tags == ["billing"]));
        let (none, matching, page, pages) = select_page(all, "nothing", 2);
        assert_eq!((none.len(), matching, page, pages), (0, 0, 1, 1));
    }

    #[test]
    fn list_links_carry_the_search_and_page() {
        assert_eq!(list_href("", 1, false), "/workflows");
        assert_eq!(list_href("", 2, false), "/workflows?page=2");
        assert_eq!(
            list_href("a b&c", 3, false),
            "/workflows?q=a%20b%26c&page=3"
        );
        assert_eq!(list_href("x", 2, true), "/workflows?archived=1&q=x&page=2");
    }
}

/// "Import…": a workflow file (YAML or JSON) from this computer, saved as a new workflow, then
/// opened; its problems are listed where the button is.
#[component]
fn Import() -> impl IntoView {
    let save = Action::new(|source: &String| {
        crate::routes::builder::save_workflow(String::new(), source.clone())
    });
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(saved)) = save.value().get() {
            navigate(&format!("/workflows/{}", saved.id), Default::default());
        }
    });
    let too_big = RwSignal::new(None::<String>);
    let on_change = move |ev: leptos::ev::Event| {
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            let Some(input) = ev
                .target()
                .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
            else {
                return;
            };
            let Some(file) = input.files().and_then(|f| f.get(0)) else {
                return;
            };
            input.set_value("");
            // Not read at all past what the server would take: a huge file would sit in the
            // tab's memory only to be refused.
            let limit = engine::model::MAX_DOCUMENT_BYTES;
            if file.size() > limit as f64 {
                too_big.set(Some(format!(
                    "{} is {:.0} KB; a workflow file is at most {} KB",
                    file.name(),
                    file.size() / 1024.0,
                    limit / 1024
                )));
                return;
            }
            too_big.set(None);
            leptos::task::spawn_local(async move {
                let text = wasm_bindgen_futures::JsFuture::from(file.text()).await;
                if let Some(text) = text.ok().and_then(|t| t.as_string()) {
                    save.dispatch(text);
                }
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (ev, save, too_big);
    };
    view! {
        <label class="button secondary file-button">
            "Import…"
            <input type="file" class="visually-hidden" accept=".yaml,.yml,.json,application/yaml,application/json"
                aria-label="Import a workflow file" on:change=on_change/>
        </label>
        {move || too_big.get().map(|m| view! {
            <div class="import-error"><ErrorNote error=AppError::Invalid(m) lead="Could not import the file"/></div>
        })}
        {move || save.value().get().and_then(Result::err).map(|e| view! {
            <div class="import-error"><ErrorNote error=e lead="Could not import the file"/></div>
        })}
    }
}
