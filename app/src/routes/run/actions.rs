//! Cancel, Retry, Retry from failed step, Retry from this step: each asks first, then opens the new run.

use engine::records::RunStatus;
use leptos::prelude::*;

use super::*;
use crate::auth::IfRole;
use crate::components::ErrorNote;
use engine::access::Role;

/// Cancel / Retry / Retry from failed, each confirmed inline; a retry opens the new run.
#[component]
pub(super) fn RunActions(
    run_id: String,
    status: RunStatus,
    failed_steps: bool,
    inputs: serde_json::Value,
) -> impl IntoView {
    let ui = expect_context::<RunUi>();
    let run_id = StoredValue::new(run_id);
    let finished = status.is_finished();
    // Any finished run, succeeded included, can run again.
    let again = if status == RunStatus::Succeeded {
        "Run again"
    } else {
        "Retry"
    };
    let inputs =
        StoredValue::new(serde_json::to_string_pretty(&inputs).unwrap_or_else(|_| "{}".into()));
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
                    {(!finished).then(|| {
                        // At once: a pause stops nothing in flight, and a resume undoes it.
                        let paused = status == RunStatus::Paused;
                        let label = if paused { "Resume" } else { "Pause" };
                        view! { <button class="button secondary" on:click=move |_| { ui.error.set(None); ui.act.dispatch((run_id.get_value(), Pending::Pause(!paused))); }>{label}</button> }
                    })}
                    {(!finished).then(|| view! { <button class="button danger" on:click=ask(Pending::Cancel)>"Cancel run"</button> })}
                    {finished.then(|| view! { <button class="button secondary" on:click=ask(Pending::RetryWhole)>{again}</button> })}
                    {finished.then(|| view! { <button class="button secondary" on:click=ask(Pending::RetryChanged(inputs.get_value(), false))>"Change inputs…"</button> })}
                    {(finished && failed_steps).then(|| {
                        // The same retry either way: what succeeded is reused.
                        let label = if status == RunStatus::Failed { "Retry from failed step" } else { "Resume where it stopped" };
                        view! { <button class="button" on:click=ask(Pending::RetryFailed)>{label}</button> }
                    })}
                </Show>
            </IfRole>
            {move || ui.confirm.get().filter(|_| whole_run()).map(|p| {
                if let Pending::RetryChanged(text, latest) = p {
                    return view! { <ChangedInputs run_id=run_id.get_value() text=text latest=latest/> }.into_any();
                }
                let question = match p {
                    Pending::Cancel => "Cancel this run? Steps in flight are stopped.",
                    Pending::RetryWhole => "Start a new run with the same inputs and version?",
                    _ => "Start a new run that reuses the steps that succeeded?",
                };
                view! { <Confirm question=question run_id=run_id.get_value() pending=p/> }.into_any()
            })}
            {move || ui.error.get().filter(|_| !matches!(ui.confirm.get(), Some(Pending::RetryFrom(_)))).map(|(lead, e)| view! { <ErrorNote error=e lead=lead/> })}
        </div>
    }
}

/// The time (unix ms) from `start`, one second later every second in the browser while
/// `live`; constant on the server, so hydration sees the markup it rendered.
pub(super) fn ticking(start: i64, live: bool) -> ReadSignal<i64> {
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

/// The run's inputs as JSON to edit, and whether to run the workflow's latest version: a new
/// run, whole. Problems come back with their paths (`inputs.who: …`) under the form.
#[component]
fn ChangedInputs(run_id: String, text: String, latest: bool) -> impl IntoView {
    let ui = expect_context::<RunUi>();
    let (text, set_text) = signal(text);
    let (latest, set_latest) = signal(latest);
    let run_id = StoredValue::new(run_id);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        ui.error.set(None);
        ui.act.dispatch((
            run_id.get_value(),
            Pending::RetryChanged(text.get_untracked(), latest.get_untracked()),
        ));
    };
    view! {
        <form class="changed-inputs" on:submit=submit aria-label="Run again with changed inputs">
            <label for="retry-inputs">"Inputs (JSON)"</label>
            <textarea id="retry-inputs" class="mono" rows="6" spellcheck="false"
                prop:value=move || text.get()
                on:input=move |ev| set_text.set(event_target_value(&ev))></textarea>
            <label class="check">
                <input type="checkbox" prop:checked=move || latest.get()
                    on:change=move |ev| set_latest.set(event_target_checked(&ev))/>
                "Run the workflow's latest version"
            </label>
            <div class="row">
                <button class="button" type="submit" disabled=move || ui.act.pending().get()>"Start run"</button>
                <button class="button secondary" type="button" on:click=move |_| ui.confirm.set(None)>"Cancel"</button>
            </div>
        </form>
    }
}

/// "Question? [Yes] [No]": Yes runs the pending action.
#[component]
pub(super) fn Confirm(question: &'static str, run_id: String, pending: Pending) -> impl IntoView {
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

/// "Retry from this step": reuses the outputs of everything upstream of it.
#[component]
pub(super) fn RetryFromStep(run_id: String, step_id: String) -> impl IntoView {
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
