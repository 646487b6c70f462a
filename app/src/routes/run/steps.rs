//! A step's panel: status, input, output, error, logs, attempts, and a `for_each` step's items.

use engine::records::{AttemptRecord, ItemCounts, ItemRecord, StepRecord, StepStatus};
use leptos::prelude::*;
use serde_json::Value;

use super::*;
use crate::components::{format_duration, ErrorNote, StatusBadge};

/// One step: state, timing and every attempt's input, output, error and logs.
#[component]
pub(super) fn StepPanel(
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
pub(super) fn ItemList(run_id: String, step_id: String, counts: ItemCounts) -> impl IntoView {
    let ui = expect_context::<RunUi>();
    let ItemCounts {
        total,
        succeeded,
        failed,
        retried,
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
    let choices = [("", "All", total), ("failed", "Failed", failed), ("succeeded", "Succeeded", succeeded), ("retried", "Retried", retried)]
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
                <span>{format!("{ended} of {total} items ended · {succeeded} succeeded · {failed} failed{}", if retried > 0 { format!(" · {retried} retried") } else { String::new() })}</span>
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
pub(super) fn ItemView(item: ItemRecord) -> impl IntoView {
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
            <ItemAttempts item=item.clone()/>
            <JsonBlock label="Input" value=item.input.clone() open=false/>
            <JsonBlock label="Output" value=item.output.clone() open=true/>
        </details>
    }
}

/// An item's attempts, when it had more than one: each earlier one's error and time, then
/// how the last ended.
#[component]
fn ItemAttempts(item: ItemRecord) -> impl IntoView {
    let ItemRecord {
        attempts,
        status,
        earlier_attempts,
        ..
    } = item;
    (attempts > 1).then(|| {
        let dropped = attempts - 1 - earlier_attempts.len() as i64;
        let rows = earlier_attempts
            .into_iter()
            .map(|a| {
                view! {
                    <li data-attempt=a.attempt data-status="failed">
                        <span class="mono">{format!("Attempt {}", a.attempt)}</span>
                        <span class="state-text" data-status="failed">{status_icon(StepStatus::Failed)}" failed"</span>
                        <span class="muted">{format_duration(a.finished_at - a.started_at)}</span>
                        <span class="attempt-error"><strong>{a.error_kind}</strong>": "{a.error_message}</span>
                    </li>
                }
            })
            .collect_view();
        view! {
            <ol class="item-attempts" aria-label="Attempts">
                {(dropped > 0).then(|| view! {
                    <li class="muted">{format!("{dropped} earlier attempt{} not kept", if dropped == 1 { "" } else { "s" })}</li>
                })}
                {rows}
                <li data-attempt=attempts data-status=status.as_str()>
                    <span class="mono">{format!("Attempt {attempts}")}</span>
                    <span class="state-text" data-status=status.as_str()>{status_icon(status)}" "{status.as_str()}</span>
                    <span class="muted">"the last"</span>
                </li>
            </ol>
        }
        // Erased: the item list's view type is otherwise too deep for the compiler.
        .into_any()
    })
}

#[component]
pub(super) fn AttemptView(attempt: AttemptRecord) -> impl IntoView {
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
pub(super) fn JsonBlock(label: &'static str, value: Option<Value>, open: bool) -> impl IntoView {
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
