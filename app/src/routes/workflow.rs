//! `/workflows/:id`: one workflow — its latest definition, its version history, and a Run
//! button (the full page with runs and charts comes with the UI issue).

use engine::records::{VersionInfo, WorkflowSummary};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use serde::{Deserialize, Serialize};

use crate::components::{format_ms, ErrorNote};
use crate::error::AppError;

/// What the page shows about one workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowPageData {
    pub summary: WorkflowSummary,
    pub versions: Vec<VersionInfo>,
    /// The latest version's text, exactly as saved.
    pub source: String,
}

#[server(endpoint = "get_workflow")]
pub async fn get_workflow(id: String) -> Result<WorkflowPageData, AppError> {
    let store = expect_context::<engine::store::Store>();
    let summary = store.workflow(&id).await?;
    let versions = store.list_versions(&id).await?;
    let source = store.version(&id, None).await?.source;
    Ok(WorkflowPageData {
        summary,
        versions,
        source,
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
                    Err(e) => {
                        #[cfg(feature = "ssr")]
                        if matches!(e, AppError::NotFound(_)) {
                            if let Some(r) = use_context::<leptos_axum::ResponseOptions>() {
                                r.set_status(http::StatusCode::NOT_FOUND);
                            }
                        }
                        view! { <section class="page"><ErrorNote error=e/></section> }.into_any()
                    }
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
    } = data;
    let run = ServerAction::<super::workflows::TriggerRun>::new();
    let workflow_id = summary.id.clone();
    view! {
        <Title text=summary.name.clone()/>
        <section class="page">
            <header class="page-header">
                <div>
                    <h1>{summary.name.clone()}</h1>
                    <div class="wf-id mono">{format!("{} · v{}", summary.id, summary.latest_version)}</div>
                </div>
                <div class="actions">
                    <a class="button secondary" href=format!("/workflows/{workflow_id}/edit")>"Edit"</a>
                    <a class="button secondary" href=format!("/runs?workflow={workflow_id}")>"Runs"</a>
                    <ActionForm action=run>
                        <input type="hidden" name="workflow_id" value=workflow_id.clone()/>
                        <input type="hidden" name="inputs_json" value=""/>
                        <button class="button" type="submit">"Run with defaults"</button>
                    </ActionForm>
                </div>
            </header>
            {summary.description.clone().map(|d| view! { <p class="muted">{d}</p> })}
            <p role="status" aria-live="polite">
                {move || match run.value().get() {
                    None => None,
                    Some(Ok(run_id)) => Some(view! {
                        <span>"Run queued: "
                            <a class="mono" href=format!("/runs/{run_id}")>{run_id.clone()}</a>
                        </span>
                    }.into_any()),
                    Some(Err(e)) => Some(view! { <ErrorNote error=e/> }.into_any()),
                }}
            </p>
            <div class="columns">
                <section aria-labelledby="definition">
                    <h2 id="definition">"Definition"</h2>
                    <pre class="code" aria-label="Workflow YAML">{source}</pre>
                </section>
                <section aria-labelledby="versions">
                    <h2 id="versions">"Versions"</h2>
                    <table class="table">
                        <caption class="visually-hidden">"Versions"</caption>
                        <thead><tr><th scope="col">"Version"</th><th scope="col">"Saved"</th></tr></thead>
                        <tbody>
                            {versions.into_iter().map(|v| view! {
                                <tr>
                                    <td class="mono">{format!("v{}", v.version)}</td>
                                    <td><time datetime=v.created_at.to_string()>{format_ms(v.created_at)}</time></td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </section>
            </div>
        </section>
    }
}
