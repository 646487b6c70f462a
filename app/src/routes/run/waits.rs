//! The run page's waiting steps: what each waits for, since and until when, who can act; an
//! approval's prompt with its fields, comment, Approve and Reject for those who may decide.

use engine::access::Role;
use engine::records::{WaitKind, WaitRecord};
use leptos::prelude::*;
use serde_json::{Map, Value};

use super::*;
use crate::auth::IfRole;
use crate::components::ErrorNote;

/// Decides an approval step as the caller: the approval's `role` says who may.
#[server(endpoint = "decide_step")]
pub async fn decide_step(
    run_id: String,
    step_id: String,
    approved: bool,
    comment: String,
    fields_json: String,
) -> Result<(), AppError> {
    let me = crate::auth::require(engine::access::Action::Read)?;
    let fields: Map<String, Value> = if fields_json.trim().is_empty() {
        Map::new()
    } else {
        serde_json::from_str(&fields_json)
            .map_err(|e| AppError::Invalid(format!("the fields must be a JSON object: {e}")))?
    };
    let decision = engine::executor::Decision {
        approved,
        comment: Some(comment),
        fields,
    };
    let engine = expect_context::<engine::executor::Engine>();
    let by = me.actor().unwrap_or_else(|| me.name.clone());
    engine
        .decide(&run_id, &step_id, decision, &by, me.role)
        .await
        .map(|_| ())
        .map_err(AppError::from)
}

/// Pauses (`pause`) or resumes a run.
#[server(endpoint = "pause_run")]
pub async fn pause_run(id: String, pause: bool) -> Result<(), AppError> {
    crate::auth::require(engine::access::Action::Operate)?;
    let engine = expect_context::<engine::executor::Engine>();
    let done = if pause {
        engine.pause_run(&id).await
    } else {
        engine.resume_run(&id).await
    };
    done.map(|_| ()).map_err(AppError::from)
}

/// One line per waiting step, and an approval's form.
#[component]
pub(super) fn WaitingPanel(
    run_id: String,
    waits: Vec<WaitRecord>,
    steps: Vec<StepInfo>,
    now: i64,
) -> impl IntoView {
    let open: Vec<WaitRecord> = waits
        .into_iter()
        .filter(|w| w.resolved_at.is_none())
        .collect();
    (!open.is_empty()).then(|| {
        let rows = open
            .into_iter()
            .map(|w| {
                let name = steps
                    .iter()
                    .find(|s| s.id == w.step_id)
                    .map_or(w.step_id.clone(), |s| s.name.clone());
                view! { <WaitRow run_id=run_id.clone() wait=w name=name now=now/> }
            })
            .collect::<Vec<_>>();
        view! {
            <section aria-labelledby="waiting-h" class="panel waiting">
                <h2 id="waiting-h">"Waiting"</h2>
                {rows}
            </section>
        }
    })
}

#[component]
fn WaitRow(run_id: String, wait: WaitRecord, name: String, now: i64) -> impl IntoView {
    let what = match wait.kind {
        WaitKind::Approval => "waits for a decision".to_string(),
        WaitKind::Event => format!(
            "waits for event \"{}\"",
            wait.key.clone().unwrap_or_default()
        ),
        WaitKind::Delay => "sleeps".to_string(),
        WaitKind::Workflow => "waits for its child run".to_string(),
    };
    let since = view! {
        " since "<LocalTime ms=wait.since/>
        {format!(" ({} ago)", format_duration((now - wait.since).max(0)))}
    };
    let until = wait.until.map(|u| {
        let left = (u - now).max(0);
        let lead = if wait.kind == WaitKind::Delay {
            " · until "
        } else {
            " · gives up at "
        };
        view! { {lead}<LocalTime ms=u/>{format!(" (in {})", format_duration(left))} }
    });
    let body = match wait.kind {
        WaitKind::Approval => {
            let role = wait.detail["role"]
                .as_str()
                .and_then(Role::parse)
                .unwrap_or(Role::Operator);
            let prompt = wait.detail["prompt"].as_str().unwrap_or("").to_string();
            let on_timeout = wait.detail["on_timeout"]
                .as_str()
                .unwrap_or("reject")
                .to_string();
            let fields: Vec<(String, String, Option<Value>)> = wait.detail["fields"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, d)| {
                            (
                                k.clone(),
                                d["type"].as_str().unwrap_or("string").to_string(),
                                d.get("default").cloned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let who = if role == Role::Admin {
                "admins".to_string()
            } else {
                format!("{role}s and above")
            };
            let timeout_note = wait
                .until
                .map(|_| format!(" Without a decision in time: {on_timeout}."));
            let (run_id, step_id) = (run_id.clone(), wait.step_id.clone());
            view! {
                <blockquote class="prompt">{prompt}</blockquote>
                <p class="muted">{format!("Who can decide: {who}.")}{timeout_note}</p>
                <IfRole role=role>
                    <ApprovalForm run_id=run_id.clone() step_id=step_id.clone() fields=fields.clone()/>
                </IfRole>
            }
            .into_any()
        }
        WaitKind::Event => {
            let key = wait.key.clone().unwrap_or_default();
            view! {
                <p class="muted">"Send it with "<code>{format!("POST /api/v1/events/{key}")}</code>" and a JSON body: the body is this step's output."</p>
            }
            .into_any()
        }
        _ => ().into_any(),
    };
    view! {
        <div class="wait" data-kind=wait.kind.as_str() data-step=wait.step_id.clone()>
            <p><strong>{name}</strong>{format!(" {what}")}{since}{until}</p>
            {body}
        </div>
    }
}

/// The approval's fields, a comment, Approve and Reject.
#[component]
fn ApprovalForm(
    run_id: String,
    step_id: String,
    fields: Vec<(String, String, Option<Value>)>,
) -> impl IntoView {
    // Kept above the data (see `RunUi`): a refetch rebuilds this form, not what was typed
    // or the answer to the last decision.
    let ui = expect_context::<super::RunUi>();
    let defaults: Vec<String> = fields
        .iter()
        .map(|(_, ty, default)| match default {
            None => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(v) if ty == "boolean" => v.to_string(),
            Some(v) => v.to_string(),
        })
        .collect();
    let draft = move |step: &str, name: &str, default: &str| {
        ui.drafts
            .with(|d| d.get(&(step.to_string(), name.to_string())).cloned())
            .unwrap_or_else(|| default.to_string())
    };
    let set_draft = move |step: &str, name: &str, text: String| {
        ui.drafts.update(|d| {
            d.insert((step.to_string(), name.to_string()), text);
        })
    };
    let fields = StoredValue::new(fields);
    let defaults = StoredValue::new(defaults);
    let ids = StoredValue::new((run_id, step_id.clone()));
    let send = move |approved: bool| {
        let (run, step) = ids.get_value();
        let mut out = Map::new();
        fields.with_value(|fields| {
            defaults.with_value(|defaults| {
                for ((name, ty, _), default) in fields.iter().zip(defaults) {
                    let text = ui
                        .drafts
                        .with_untracked(|d| d.get(&(step.clone(), name.clone())).cloned())
                        .unwrap_or_else(|| default.clone());
                    if text.trim().is_empty() {
                        continue;
                    }
                    // Typed as declared; what does not parse goes as text, and the server
                    // names the field it does not fit.
                    let value = match ty.as_str() {
                        "string" => Value::String(text),
                        _ => serde_json::from_str(text.trim()).unwrap_or(Value::String(text)),
                    };
                    out.insert(name.clone(), value);
                }
            })
        });
        let comment = ui
            .drafts
            .with_untracked(|d| d.get(&(step.clone(), String::new())).cloned())
            .unwrap_or_default();
        ui.decide_for.set(Some(step.clone()));
        ui.decide
            .dispatch((run, step, approved, comment, Value::Object(out).to_string()));
    };
    let inputs = fields.with_value(|fields| {
        fields
            .iter()
            .enumerate()
            .map(|(i, (name, ty, _))| {
                let default = defaults.with_value(|d| d[i].clone());
                let id = format!("field-{}-{name}", step_id);
                let (step, field) = (step_id.clone(), name.clone());
                let value = {
                    let (step, field) = (step.clone(), field.clone());
                    move || draft(&step, &field, &default)
                };
                let set = move |text: String| set_draft(&step, &field, text);
                if ty == "boolean" {
                    view! {
                        <label class="check">
                            <input type="checkbox" id=id.clone() prop:checked=move || value() == "true"
                                on:change=move |ev| set(event_target_checked(&ev).to_string())/>
                            {name.clone()}
                        </label>
                    }
                    .into_any()
                } else {
                    view! {
                        <label for=id.clone()>{format!("{name} ({ty})")}</label>
                        <input id=id type="text" prop:value=value on:input=move |ev| set(event_target_value(&ev))/>
                    }
                    .into_any()
                }
            })
            .collect::<Vec<_>>()
    });
    let comment_id = format!("comment-{step_id}");
    let comment = {
        let step = step_id.clone();
        move || draft(&step, "", "")
    };
    let set_comment = {
        let step = step_id.clone();
        move |text: String| set_draft(&step, "", text)
    };
    // The answer shown is this step's: the last decision sent from this page was for it.
    let this_step = step_id.clone();
    let answer = move || {
        ui.decide_for
            .with(|s| s.as_deref() == Some(this_step.as_str()))
            .then(|| ui.decide.value().get())
            .flatten()
    };
    view! {
        <form class="approval" aria-label="Decide" on:submit=move |ev| { ev.prevent_default(); send(true); }>
            {inputs}
            <label for=comment_id.clone()>"Comment"</label>
            <textarea id=comment_id rows="2" prop:value=comment on:input=move |ev| set_comment(event_target_value(&ev))></textarea>
            <div class="row">
                <button class="button" type="submit" disabled=move || ui.decide.pending().get()>"Approve"</button>
                <button class="button secondary danger-text" type="button" disabled=move || ui.decide.pending().get() on:click=move |_| send(false)>"Reject"</button>
            </div>
            {move || match answer() {
                Some(Err(e)) => Some(view! { <ErrorNote error=e lead="Could not record the decision"/> }.into_any()),
                Some(Ok(())) => Some(view! { <p class="note" role="status">"Decision recorded."</p> }.into_any()),
                None => None,
            }}
        </form>
    }
}
