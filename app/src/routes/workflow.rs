//! `/workflows/:id`: one workflow — its latest definition, its version history, and a Run
//! button (the full page with runs and charts comes with the UI issue).

use engine::records::{VersionInfo, WorkflowSummary};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use serde::{Deserialize, Serialize};

use crate::components::ErrorNote;
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
                <ActionForm action=run>
                    <input type="hidden" name="workflow_id" value=workflow_id/>
                    <input type="hidden" name="inputs_json" value=""/>
                    <button class="button" type="submit">"Run with defaults"</button>
                </ActionForm>
            </header>
            {summary.description.clone().map(|d| view! { <p class="muted">{d}</p> })}
            <p role="status" aria-live="polite">
                {move || match run.value().get() {
                    None => None,
                    Some(Ok(run_id)) => Some(view! {
                        <span>"Run queued: "
                            <a class="mono" href=format!("/api/v1/runs/{run_id}")>{run_id.clone()}</a>
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

/// `2026-11-29 21:15 UTC` from unix milliseconds, without a date library in the wasm bundle.
pub fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::format_ms;

    #[test]
    fn times_are_shown_as_utc_dates() {
        assert_eq!(format_ms(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_ms(1_795_987_500_000), "2026-11-29 21:25 UTC");
        assert_eq!(format_ms(951_782_400_000), "2000-02-29 00:00 UTC");
    }
}
