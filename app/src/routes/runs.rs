//! `/runs`: the monitor — every run, newest first, live. Filters (workflow, status, trigger,
//! time range, labels, a search of inputs, outputs and errors) live in the URL, so a filtered view is a link and works before hydration;
//! older pages follow a cursor. New runs and state changes arrive over `/api/v1/events`.

use engine::records::{RunStatus, RunSummary};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use crate::components::{
    follow_events, format_duration, format_ms, ErrorNote, LocalTime, StatusBadge,
};
use crate::error::AppError;

/// Runs per page.
#[cfg(feature = "ssr")]
const PAGE: i64 = 50;

/// What the filter form sends; empty means "any".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunQuery {
    pub workflow: String,
    pub status: String,
    pub trigger: String,
    /// `1h`, `24h`, `7d`, or empty for all time.
    pub range: String,
    /// The last run id of the previous page.
    pub before: String,
    /// Created in `[from, to)` (unix ms), and run time in `[min_ms, max_ms)`: where a chart's
    /// bar leads.
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub min_ms: String,
    #[serde(default)]
    pub max_ms: String,
    /// Words the runs' inputs, outputs or errors hold.
    #[serde(default)]
    pub q: String,
    /// `key:value` labels the runs carry, all of them (`label=` repeats in the URL).
    #[serde(default)]
    pub labels: Vec<String>,
}

impl RunQuery {
    /// The URL of the monitor with these filters (a new filter starts at the newest page).
    pub fn href(&self) -> String {
        let pairs: Vec<String> = self
            .pairs()
            .into_iter()
            .map(|(k, v)| format!("{k}={}", engine::links::encode_component(&v)))
            .collect();
        match pairs.is_empty() {
            true => "/runs".to_string(),
            false => format!("/runs?{}", pairs.join("&")),
        }
    }

    /// These filters with one more label (`key:value`), if it is not there yet.
    pub fn with_label(&self, label: &str) -> RunQuery {
        let mut q = self.clone();
        q.before.clear();
        if !q.labels.iter().any(|l| l == label) {
            q.labels.push(label.to_string());
        }
        q
    }

    /// The filters as `key=value` pairs (without the page cursor), for links that keep them.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        [
            ("workflow", &self.workflow),
            ("status", &self.status),
            ("trigger", &self.trigger),
            ("range", &self.range),
            ("from", &self.from),
            ("to", &self.to),
            ("min_ms", &self.min_ms),
            ("max_ms", &self.max_ms),
            ("q", &self.q),
        ]
        .into_iter()
        .chain(self.labels.iter().map(|l| ("label", l)))
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| (k, v.trim().to_string()))
        .collect()
    }
}

/// Reads an optional number from the query; the error names the parameter.
#[cfg(feature = "ssr")]
fn number(name: &str, value: &str) -> Result<Option<i64>, AppError> {
    if value.is_empty() {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|_| AppError::Invalid(format!("{name}: \"{value}\" is not a whole number")))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunsPageData {
    pub runs: Vec<RunSummary>,
    /// Workflow ids and names for the filter.
    pub workflows: Vec<(String, String)>,
    /// Whether an older page exists.
    pub more: bool,
    pub now: i64,
}

pub const RANGES: &[(&str, &str, i64)] = &[
    ("1h", "Last hour", 3_600_000),
    ("24h", "Last 24 hours", 86_400_000),
    ("7d", "Last 7 days", 604_800_000),
];

pub const TRIGGERS: &[&str] = &["manual", "api", "cron", "webhook", "retry", "alert"];

/// The store's filter for the monitor's query at `now` (its page cursor included).
#[cfg(feature = "ssr")]
fn filter_of(query: RunQuery, now: i64) -> Result<engine::store::RunFilter, AppError> {
    use engine::store::RunFilter;
    let status = RunStatus::parse_filter(&query.status).map_err(AppError::Invalid)?;
    let since = match query.range.as_str() {
        "" => None,
        r => Some(
            now - RANGES
                .iter()
                .find(|(key, _, _)| *key == r)
                .ok_or_else(|| AppError::Invalid(format!("unknown time range \"{r}\"")))?
                .2,
        ),
    };
    let from = number("from", &query.from)?;
    let since = match (since, from) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let non_empty = |s: String| (!s.is_empty()).then_some(s);
    Ok(RunFilter {
        workflow_id: non_empty(query.workflow),
        status,
        trigger: non_empty(query.trigger),
        since,
        until: number("to", &query.to)?,
        before: non_empty(query.before),
        min_duration_ms: number("min_ms", &query.min_ms)?,
        max_duration_ms: number("max_ms", &query.max_ms)?,
        // One extra tells whether there is an older page.
        limit: PAGE + 1,
        labels: engine::search::parse_label_filters(query.labels.iter().map(String::as_str))
            .map_err(AppError::Invalid)?,
        search: engine::search::SearchQuery::parse(&query.q).map_err(AppError::Invalid)?,
    })
}

#[server(endpoint = "list_runs")]
pub async fn list_runs(query: RunQuery) -> Result<RunsPageData, AppError> {
    crate::auth::require(engine::access::Action::Read)?;
    let store = expect_context::<engine::store::Store>();
    let now = engine::store::now_ms();
    let filter = filter_of(query, now)?;
    let mut runs = store.list_runs(&filter).await?;
    let more = runs.len() as i64 > PAGE;
    runs.truncate(PAGE as usize);
    let workflows = store
        .list_workflows(false)
        .await?
        .into_iter()
        .map(|w| (w.id, w.name))
        .collect();
    Ok(RunsPageData {
        runs,
        workflows,
        more,
        now,
    })
}

/// What a bulk action over the monitor's view would touch, or did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BulkResult {
    /// Runs it applies to (a dry run) or was applied to.
    pub matched: usize,
    /// When they were counted (unix ms): the act that follows takes only runs created before.
    pub as_of: i64,
    /// Runs that could not be acted on.
    pub refused: usize,
}

/// `retry` (from each run's failed steps) or `cancel` every run the monitor's filters select
/// (the page cursor aside), at most 1,000; with `dry_run`, count them. `until` (from a dry
/// run's `as_of`) keeps runs that arrived since out.
#[server(endpoint = "bulk_runs")]
pub async fn bulk_runs(
    query: RunQuery,
    action: String,
    dry_run: bool,
    until: Option<i64>,
) -> Result<BulkResult, AppError> {
    crate::auth::require(engine::access::Action::Operate)?;
    use engine::executor::{BulkAction, Engine};
    // The monitor's retry is from each run's failed steps.
    let from = (action == "retry").then(|| "failed".to_string());
    let action = BulkAction::from_request(&action, from).map_err(AppError::Invalid)?;
    let engine = expect_context::<Engine>();
    let now = engine::store::now_ms();
    let mut filter = filter_of(
        RunQuery {
            before: String::new(),
            ..query
        },
        now,
    )?;
    if let Some(until) = until {
        filter.until = Some(filter.until.map_or(until, |u| u.min(until)));
    }
    if dry_run {
        let matched = engine
            .bulk_targets(&filter, &action)
            .await
            .map_err(AppError::from)?
            .len();
        return Ok(BulkResult {
            matched,
            as_of: now,
            refused: 0,
        });
    }
    let actor = crate::auth::current().and_then(|p| p.actor());
    let outcome = engine
        .bulk(&filter, &action, actor)
        .await
        .map_err(AppError::from)?;
    Ok(BulkResult {
        matched: outcome.done.len() + outcome.refused.len(),
        as_of: now,
        refused: outcome.refused.len(),
    })
}

/// The charts of the monitor: of the filtered workflow, or of all, over the last 7 days.
#[server(endpoint = "runs_charts")]
pub async fn runs_charts(workflow: String) -> Result<Vec<crate::charts::Chart>, AppError> {
    crate::auth::require(engine::access::Action::Read)?;
    let workflow = (!workflow.is_empty()).then_some(workflow);
    super::workflow::charts_of(workflow.as_deref(), engine::store::now_ms()).await
}

#[component]
pub fn RunsPage() -> impl IntoView {
    let params = use_query_map();
    let query = Memo::new(move |_| {
        params.with(|p| {
            let get = |k: &str| p.get(k).unwrap_or_default();
            RunQuery {
                // Grafana's dashboards link here with their `workflow` variable, which is `.*`
                // when "All" is selected: that means no filter, not a workflow of that name.
                workflow: Some(get("workflow"))
                    .filter(|w| w != ".*")
                    .unwrap_or_default(),
                status: get("status"),
                trigger: get("trigger"),
                range: get("range"),
                before: get("before"),
                from: get("from"),
                to: get("to"),
                min_ms: get("min_ms"),
                max_ms: get("max_ms"),
                q: get("q"),
                labels: p.get_all("label").unwrap_or_default(),
            }
        })
    });
    let data = Resource::new(move || query.get(), list_runs);
    let bulk = BulkUi::new(query);
    // Not live: charts redraw when the workflow filter changes or the page is reloaded.
    let charts = Resource::new(move || query.with(|q| q.workflow.clone()), runs_charts);
    let paused = RwSignal::new(false);
    follow_changes(query, data, paused);
    view! {
        <Title text="Runs"/>
        <section class="page">
            <header class="page-header">
                <h1>"Runs"</h1>
                // Only the newest page follows new runs: an older one says so instead.
                <Show when=move || query.with(|q| q.before.is_empty())
                      fallback=|| view! { <span class="muted live-toggle">"An older page: not live"</span> }>
                    <label class="live-toggle">
                        <input type="checkbox" prop:checked=move || !paused.get()
                               on:change=move |ev| paused.set(!event_target_checked(&ev))/>
                        {move || if paused.get() { " Live updates paused" } else { " Live" }}
                    </label>
                </Show>
            </header>
            // Runs first: they are what a person comes here for; the charts follow.
            <Transition fallback=|| view! { <p class="muted">"Loading runs…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                        Ok(d) => view! { <Filters query=query.get_untracked() workflows=d.workflows.clone()/> <BulkActions ui=bulk/> <RunTable data=d query=query.get_untracked()/> }.into_any(),
                    }
                })}
            </Transition>
            <details class="panel charts" open>
                <summary><h2>"Charts, last 7 days"</h2></summary>
                <Transition fallback=|| view! { <p class="muted">"Drawing charts…"</p> }>
                    {move || Suspend::new(async move {
                        match charts.await {
                            Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                            Ok(c) => view! { <super::workflow::ChartGrid charts=c/> }.into_any(),
                        }
                    })}
                </Transition>
            </details>
        </section>
    }
}

/// Reloads the first page when any run changes (at most every 250 ms), unless paused or
/// looking at an older page.
fn follow_changes(
    query: Memo<RunQuery>,
    data: Resource<Result<RunsPageData, AppError>>,
    paused: RwSignal<bool>,
) {
    follow_events(
        move || {
            let q = query.get();
            (!paused.get() && q.before.is_empty())
                .then(|| format!("/api/v1/events?workflow={}", encode(&q.workflow)))
        },
        std::time::Duration::from_millis(250),
        // Paused since the reload was scheduled: keep the page as it is.
        move || {
            if !paused.get_untracked() {
                data.refetch();
            }
        },
    );
}

/// Percent-encodes a query value (workflow ids are plain, but be exact).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A bulk action's answer, with which action it was (`retry`, `cancel`).
type BulkAnswer = (&'static str, Result<BulkResult, AppError>);

/// A bulk action's state on the monitor. It lives above the data, because the runs (and the
/// view around them) are rebuilt on every live change: a count awaiting its yes survives that.
#[derive(Clone, Copy)]
struct BulkUi {
    /// The counted action awaiting a yes: (action, runs, counted at).
    pending: RwSignal<Option<(&'static str, usize, i64)>>,
    note: RwSignal<Option<String>>,
    error: RwSignal<Option<(&'static str, AppError)>>,
    count: Action<&'static str, BulkAnswer>,
    act: Action<(&'static str, i64), BulkAnswer>,
}

impl BulkUi {
    fn new(query: Memo<RunQuery>) -> BulkUi {
        let pending = RwSignal::new(None::<(&'static str, usize, i64)>);
        let note = RwSignal::new(None::<String>);
        let error = RwSignal::new(None::<(&'static str, AppError)>);
        let count = Action::new(move |action: &&'static str| {
            let (action, query) = (*action, query.get_untracked());
            async move { (action, bulk_runs(query, action.into(), true, None).await) }
        });
        let act = Action::new(move |(action, as_of): &(&'static str, i64)| {
            let (action, as_of, query) = (*action, *as_of, query.get_untracked());
            async move {
                (
                    action,
                    bulk_runs(query, action.into(), false, Some(as_of)).await,
                )
            }
        });
        let failed_to = |action: &str| match action {
            "retry" => "Could not retry the runs",
            _ => "Could not cancel the runs",
        };
        // Other filters, another view: what was counted no longer applies.
        Effect::new(move |_| {
            query.track();
            pending.set(None);
            note.set(None);
            error.set(None);
        });
        Effect::new(move |_| match count.value().get() {
            Some((action, Ok(r))) if r.matched == 0 => note.set(Some(match action {
                "retry" => "No failed runs in this view to retry.".into(),
                _ => "No running runs in this view to cancel.".into(),
            })),
            Some((action, Ok(r))) => pending.set(Some((action, r.matched, r.as_of))),
            Some((action, Err(e))) => error.set(Some((failed_to(action), e))),
            None => {}
        });
        Effect::new(move |_| match act.value().get() {
            Some((action, Ok(r))) => {
                pending.set(None);
                let done = r.matched - r.refused;
                let plural = if done == 1 { "" } else { "s" };
                let mut said = match action {
                    "retry" => format!("Started {done} new run{plural}."),
                    _ => format!("Cancelling {done} run{plural}."),
                };
                if r.refused > 0 {
                    said.push_str(&format!(
                        " {} could not be (they changed meanwhile).",
                        r.refused
                    ));
                }
                note.set(Some(said));
            }
            Some((action, Err(e))) => {
                pending.set(None);
                error.set(Some((failed_to(action), e)));
            }
            None => {}
        });
        BulkUi {
            pending,
            note,
            error,
            count,
            act,
        }
    }
}

/// Retry the failed runs of this view, or cancel its running ones: counted first, then
/// confirmed with the count, then done for exactly the runs counted (none that came after).
#[component]
fn BulkActions(ui: BulkUi) -> impl IntoView {
    let BulkUi {
        pending,
        note,
        error,
        count,
        act,
    } = ui;
    let ask = move |action: &'static str| {
        move |_| {
            note.set(None);
            error.set(None);
            pending.set(None);
            count.dispatch(action);
        }
    };
    view! {
        <crate::auth::IfRole role=engine::access::Role::Operator>
            <div class="actions bulk">
                <button class="button secondary" on:click=ask("retry") disabled=move || count.pending().get()>"Retry failed runs in this view…"</button>
                <button class="button secondary" on:click=ask("cancel") disabled=move || count.pending().get()>"Cancel running runs in this view…"</button>
                {move || pending.get().map(|(action, n, as_of)| {
                    let plural = if n == 1 { "" } else { "s" };
                    let question = match action {
                        "retry" => format!("Retry {n} run{plural} from their failed steps? Each starts a new run."),
                        _ => format!("Cancel {n} run{plural}? Steps in flight are stopped."),
                    };
                    view! {
                        <div class="confirm" role="group" aria-label="Confirm">
                            <span>{question}</span>
                            <button class="button" on:click=move |_| { act.dispatch((action, as_of)); } disabled=move || act.pending().get()>"Yes"</button>
                            <button class="button secondary" on:click=move |_| pending.set(None)>"No"</button>
                        </div>
                    }
                })}
                {move || note.get().map(|n| view! { <p class="muted" role="status">{n}</p> })}
                {move || error.get().map(|(lead, e)| view! { <ErrorNote error=e lead=lead/> })}
            </div>
        </crate::auth::IfRole>
    }
}

/// The filter form: a GET form, so it works without JavaScript and the URL is shareable.
#[component]
fn Filters(query: RunQuery, workflows: Vec<(String, String)>) -> impl IntoView {
    // A choice applies at once (in the browser), to a URL of the filters that are set: no
    // `workflow=&` left over, and a new filter starts again at the newest page. Without
    // script, the form's Apply does the same job.
    let navigate = leptos_router::hooks::use_navigate();
    let current = StoredValue::new(query.clone());
    // The text fields apply at Enter or Apply: to the same clean URL, with what they hold.
    let typed_q = RwSignal::new(query.q.clone());
    let typed_label = RwSignal::new(String::new());
    let submit = {
        let navigate = navigate.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            let mut q = current.get_value();
            q.q = typed_q.get_untracked();
            let label = typed_label.get_untracked();
            if !label.trim().is_empty() {
                q = q.with_label(label.trim());
            }
            q.before.clear();
            navigate(&q.href(), Default::default());
        }
    };
    let apply = move |field: &'static str| {
        let navigate = navigate.clone();
        move |ev: leptos::ev::Event| {
            let mut q = current.get_value();
            let value = event_target_value(&ev);
            match field {
                "workflow" => q.workflow = value,
                "status" => q.status = value,
                "trigger" => q.trigger = value,
                _ => q.range = value,
            }
            q.before.clear();
            navigate(&q.href(), Default::default());
        }
    };
    let option = |value: String, label: String, selected: bool| {
        view! { <option value=value selected=selected>{label}</option> }
    };
    let statuses: Vec<_> = RunStatus::ALL
        .iter()
        .map(|s| {
            option(
                s.as_str().into(),
                s.as_str().replace('_', " "),
                query.status == s.as_str(),
            )
        })
        .collect();
    let wfs: Vec<_> = workflows
        .into_iter()
        .map(|(id, name)| {
            let selected = query.workflow == id;
            option(id, name, selected)
        })
        .collect();
    let triggers: Vec<_> = TRIGGERS
        .iter()
        .map(|t| option(t.to_string(), t.to_string(), query.trigger == *t))
        .collect();
    let ranges: Vec<_> = RANGES
        .iter()
        .map(|(k, label, _)| option(k.to_string(), label.to_string(), query.range == *k))
        .collect();
    // A chart's bar narrows to a time window or a duration bucket: kept, and said in words.
    let narrowed: Vec<(&'static str, String)> = query
        .pairs()
        .into_iter()
        .filter(|(k, _)| matches!(*k, "from" | "to" | "min_ms" | "max_ms"))
        .collect();
    let ms = |v: &str| v.parse::<i64>().ok();
    let mut said = Vec::new();
    if let (Some(f), Some(t)) = (ms(&query.from), ms(&query.to)) {
        said.push(format!("created {} – {}", format_ms(f), format_ms(t)));
    }
    match (ms(&query.min_ms), ms(&query.max_ms)) {
        (Some(lo), Some(hi)) => said.push(format!(
            "run time {} – {}",
            format_duration(lo),
            format_duration(hi)
        )),
        (Some(lo), None) => said.push(format!("run time at least {}", format_duration(lo))),
        (None, Some(hi)) => said.push(format!("run time under {}", format_duration(hi))),
        _ => {}
    }
    let chip = (!said.is_empty()).then(|| {
        let keep: Vec<String> = query
            .pairs()
            .into_iter()
            .filter(|(k, _)| !matches!(*k, "from" | "to" | "min_ms" | "max_ms"))
            .map(|(k, v)| format!("{k}={}", encode(&v)))
            .collect();
        (
            format!("Only runs {}.", said.join(", ")),
            format!("/runs?{}", keep.join("&")),
        )
    });
    // The labels filtered on: each a chip that removes it (and kept by the form as hidden
    // fields, so a new label adds to them).
    let label_chips: Vec<_> = query
        .labels
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut without = query.clone();
            without.before.clear();
            without.labels.retain(|x| x != l);
            view! {
                <input type="hidden" name="label" value=l.clone()/>
                <a class="label-chip" href=without.href() data-label-filter=l.clone()
                   title="Remove this label filter">{l.clone()}" ×"</a>
            }
        })
        .collect();
    view! {
        <form method="GET" action="/runs" class="filters" aria-label="Filter runs" on:submit=submit>
            <label class="search">"Search"<input type="search" name="q" value=query.q.clone() maxlength="200"
                placeholder="inputs, outputs, errors" on:input=move |ev| typed_q.set(event_target_value(&ev))/></label>
            <label>"Workflow"<select name="workflow" on:change=apply("workflow")><option value="">"Any"</option>{wfs}</select></label>
            <label>"Status"<select name="status" on:change=apply("status")><option value="">"Any"</option>{statuses}</select></label>
            <label>"Trigger"<select name="trigger" on:change=apply("trigger")><option value="">"Any"</option>{triggers}</select></label>
            <label>"Time"<select name="range" on:change=apply("range")><option value="">"All time"</option>{ranges}</select></label>
            <label>"Label"<input type="text" name="label" placeholder="key:value" maxlength="264"
                on:input=move |ev| typed_label.set(event_target_value(&ev))/></label>
            {narrowed.iter().map(|(k, v)| view! { <input type="hidden" name=*k value=v.clone()/> }).collect_view()}
            {label_chips}
            <button class="button" type="submit">"Apply"</button>
            <a class="button secondary" href="/runs">"Clear"</a>
        </form>
        {chip.map(|(text, href)| view! {
            <p class="filter-chip" role="status">{text}" "<a href=href>"Show all times and durations"</a></p>
        })}
    }
}

#[component]
fn RunTable(data: RunsPageData, query: RunQuery) -> impl IntoView {
    let RunsPageData {
        runs,
        workflows,
        more,
        now,
    } = data;
    if runs.is_empty() {
        return view! {
            <div class="empty-state"><p>"No runs match these filters."</p></div>
        }
        .into_any();
    }
    let name_of = move |id: &str| {
        workflows
            .iter()
            .find(|(w, _)| w == id)
            .map_or_else(|| id.to_string(), |(_, n)| n.clone())
    };
    // Both pager links keep the filters, their values encoded.
    let link = |pairs: Vec<(&str, String)>| {
        let q = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", engine::links::encode_component(v)))
            .collect::<Vec<_>>()
            .join("&");
        if q.is_empty() {
            "/runs".to_string()
        } else {
            format!("/runs?{q}")
        }
    };
    let older = more.then(|| {
        let last = runs.last().map(|r| r.id.clone()).unwrap_or_default();
        let mut q = vec![("before", last)];
        q.extend(query.pairs());
        let href = link(q);
        view! { <a class="button secondary" rel="next" href=href>"Older runs →"</a> }
    });
    let newest = (!query.before.is_empty()).then(|| {
        let href = link(query.pairs());
        view! { <a class="button secondary" href=href>"← Newest"</a> }
    });
    let rows = runs
        .into_iter()
        .map(|r| {
            let wait = r.started_at.map(|s| s - r.created_at);
            let ran = r.started_at.map(|s| r.finished_at.unwrap_or(now) - s);
            view! {
                <tr data-run=r.id.clone() data-status=r.status.as_str()>
                    <td><StatusBadge status=r.status.as_str()/></td>
                    <td>
                        <a class="wf-name" href=format!("/runs/{}", r.id)>{name_of(&r.workflow_id)}</a>
                        <div class="wf-id mono">{format!("{} · v{}", r.workflow_id, r.workflow_version)}</div>
                        {(!r.labels.is_empty()).then(|| view! {
                            <div class="labels">{r.labels.iter().map(|(k, v)| {
                                let label = format!("{k}:{v}");
                                let href = query.with_label(&label).href();
                                view! { <a class="label" href=href title="Show only runs with this label">{label}</a> }
                            }).collect_view()}</div>
                        })}
                    </td>
                    <td data-label="Trigger">{r.started_by()}</td>
                    <td data-label="Created"><LocalTime ms=r.created_at/></td>
                    <td class="num" data-label="Queue wait">{wait.map(format_duration).unwrap_or_else(|| "–".into())}</td>
                    <td class="num" data-label="Run time">{ran.map(format_duration).unwrap_or_else(|| "–".into())}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="table runs-table">
            <caption class="visually-hidden">"Runs, newest first"</caption>
            <thead><tr>
                <th scope="col">"Status"</th><th scope="col">"Workflow"</th><th scope="col">"Trigger"</th>
                <th scope="col">"Created"</th><th scope="col" class="num">"Queue wait"</th><th scope="col" class="num">"Run time"</th>
            </tr></thead>
            <tbody>{rows}</tbody>
        </table>
        <nav class="pager" aria-label="Pages">{newest}{older}</nav>
    }
    .into_any()
}
