//! The builder's forms: the workflow's settings (name, tags, limits, inputs, triggers, failure
//! handler, outputs) and the selected step's. Each field commits on `change` and writes the
//! whole document back through [`Doc::edit`].

use engine::catalog::{self, FieldSpec, FieldType};
use engine::model::{CronDef, RetryDef, WorkflowDef};
use leptos::prelude::*;
use serde_json::Value;

use super::edit::*;
use super::Doc;

/// A field's text, read from the definition as it changes.
fn shown(doc: Doc, f: fn(&WorkflowDef) -> String) -> impl Fn() -> String + Copy {
    move || doc.def.with(|d| d.as_ref().map(f).unwrap_or_default())
}

/// The workflow's own settings, above the graph.
#[component]
pub fn WorkflowFields() -> impl IntoView {
    let doc = expect_context::<Doc>();
    let value = move |f| shown(doc, f);
    view! {
        <div class="form-row">
            <label>"Id"<input type="text" prop:value=value(|d| d.id.clone())
                on:change=move |ev| { let v = event_target_value(&ev); doc.edit(|d| d.id = v) }/></label>
            <label>"Name"<input type="text" prop:value=value(|d| d.name.clone().unwrap_or_default())
                on:change=move |ev| { let v = event_target_value(&ev); doc.edit(|d| d.name = (!v.is_empty()).then_some(v)) }/></label>
            <label class="wide">"Description"<input type="text" prop:value=value(|d| d.description.clone().unwrap_or_default())
                on:change=move |ev| { let v = event_target_value(&ev); doc.edit(|d| d.description = (!v.is_empty()).then_some(v)) }/></label>
        </div>
    }
}

/// What happens around a run: the failure handler, and the outputs a caller gets.
#[component]
pub fn HandlerFields() -> impl IntoView {
    let doc = expect_context::<Doc>();
    let outputs_error = RwSignal::new(None::<String>);
    let value = move |f| shown(doc, f);
    view! {
        <div class="form-row">
            <label>"On failure, run"<input type="text" name="on_failure" placeholder="a workflow id, e.g. notify-failure"
                prop:value=value(|d| d.on_failure.as_ref().map(|h| h.workflow.clone()).unwrap_or_default())
                on:change=move |ev| {
                    let v = event_target_value(&ev).trim().to_string();
                    doc.edit(|d| {
                        d.on_failure = match (v.is_empty(), d.on_failure.take()) {
                            (true, _) => None,
                            (false, Some(mut h)) => { h.workflow = v; Some(h) }
                            (false, None) => Some(engine::model::OnFailureDef { workflow: v, inputs: Default::default() }),
                        }
                    })
                }/></label>
            <label class="wide">"Outputs (what a calling workflow step gets)"
                <textarea name="outputs" rows="2" class="mono" placeholder=r#"{"total": "{{ steps.sum.output }}"}"#
                    prop:value=value(|d| d.outputs.as_ref().map(|o| serde_json::to_string(o).unwrap_or_default()).unwrap_or_default())
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        match serde_json::from_str::<serde_json::Map<String, Value>>(&v) {
                            _ if v.trim().is_empty() => { outputs_error.set(None); doc.edit(|d| d.outputs = None) }
                            Ok(map) => { outputs_error.set(None); doc.edit(|d| d.outputs = Some(map)) }
                            Err(e) => outputs_error.set(Some(format!("a JSON object of names to templates: {e}"))),
                        }
                    }></textarea>
                {move || outputs_error.get().map(|e| view! { <span class="error-note" role="alert">{e}</span> })}
            </label>
        </div>
    }
}

/// Tags, the concurrency limit and the whole-run timeout.
#[component]
pub fn LimitsFields() -> impl IntoView {
    let doc = expect_context::<Doc>();
    let value = move |f| shown(doc, f);
    view! {
        <div class="form-row">
            <label class="wide">"Tags (comma-separated)"<input type="text" name="tags" placeholder="nightly, billing"
                prop:value=value(|d| d.tags.join(", "))
                on:change=move |ev| { let v = event_target_value(&ev); doc.edit(|d| d.tags = parse_tags(&v)) }/></label>
            <label>"Runs at once"<input type="number" min="1" name="concurrency" placeholder="no limit"
                prop:value=value(|d| d.concurrency.map(|c| c.to_string()).unwrap_or_default())
                on:change=move |ev| {
                    let n = event_target_value(&ev).trim().parse::<u32>().ok();
                    doc.edit(|d| d.concurrency = n)
                }/></label>
            <label>"Run timeout"<input type="text" name="timeout" placeholder="none, e.g. 10m"
                prop:value=value(|d| d.timeout.clone().unwrap_or_default())
                on:change=move |ev| {
                    let v = event_target_value(&ev).trim().to_string();
                    doc.edit(|d| d.timeout = (!v.is_empty()).then_some(v))
                }/></label>
        </div>
    }
}

/// The run inputs: a row each (name, type, default, description), in the Run form's order.
#[component]
pub fn InputsFields() -> impl IntoView {
    let doc = expect_context::<Doc>();
    let refused = RwSignal::new(None::<String>);
    let rows = move || {
        let inputs: Vec<(String, engine::model::InputDef)> = doc.def.with(|d| {
            d.as_ref()
                .map(|d| d.inputs.clone().into_iter().collect())
                .unwrap_or_default()
        });
        if inputs.is_empty() {
            return view! { <p class="muted">"No inputs: runs start without values."</p> }
                .into_any();
        }
        inputs.into_iter().map(|(name, input)| {
            let key = StoredValue::new(name.clone());
            let ty = input.ty;
            view! {
                <div class="form-row input-row" data-input=name.clone()>
                    <label>"Name"<input type="text" name="input-name" class="mono" prop:value=name.clone()
                        on:change=move |ev| {
                            let to = event_target_value(&ev);
                            let from = key.get_value();
                            let mut ok = true;
                            doc.edit(|d| ok = rename_input(d, &from, &to));
                            refused.set((!ok).then(|| format!("Input names are unique and not empty: \"{}\" is not free.", to.trim())));
                        }/></label>
                    <label>"Type"<select name="input-type" on:change=move |ev| {
                            let t = input_type(&event_target_value(&ev));
                            doc.edit_input(&key.get_value(), |i| i.ty = t);
                        }>
                        {INPUT_TYPES.iter().map(|t| view! { <option value=t.as_str() selected=*t == ty>{t.as_str()}</option> }).collect_view()}
                    </select></label>
                    <label>"Default"<input type="text" name="input-default" class="mono" placeholder="required"
                        prop:value=default_text(input.default.as_ref())
                        on:change=move |ev| {
                            let v = event_target_value(&ev);
                            doc.edit_input(&key.get_value(), |i| i.default = input_default(i.ty, &v));
                        }/></label>
                    <label class="wide">"Description"<input type="text" name="input-description"
                        prop:value=input.description.clone().unwrap_or_default()
                        on:change=move |ev| {
                            let v = event_target_value(&ev).trim().to_string();
                            doc.edit_input(&key.get_value(), |i| i.description = (!v.is_empty()).then_some(v));
                        }/></label>
                    <button class="button secondary small" type="button" aria-label=format!("Remove input {name}")
                        on:click=move |_| { let k = key.get_value(); doc.edit(|d| { d.inputs.shift_remove(&k); }) }>"Remove"</button>
                </div>
            }
        }).collect_view().into_any()
    };
    view! {
        <fieldset class="settings-group">
            <legend>"Inputs"</legend>
            {rows}
            {move || refused.get().map(|e| view! { <p class="error-note" role="alert">{e}</p> })}
            <button class="button secondary small" type="button" on:click=move |_| doc.edit(|d| { add_input(d); })>"Add input"</button>
        </fieldset>
    }
}

/// What starts a run: by hand, on schedules, by webhook.
#[component]
pub fn TriggersFields() -> impl IntoView {
    let doc = expect_context::<Doc>();
    let manual = move || doc.def.with(|d| d.as_ref().is_some_and(has_manual));
    let hook = move || {
        doc.def
            .with(|d| d.as_ref().and_then(|d| webhook(d).cloned()))
    };
    let schedules = move || {
        let crons = doc.def.with(|d| d.as_ref().map(crons).unwrap_or_default());
        crons.into_iter().map(|(at, c)| {
            let current = StoredValue::new(c.clone());
            let set = move |f: &dyn Fn(&CronDef) -> CronDef| {
                let next = f(&current.get_value());
                doc.edit(|d| set_cron(d, at, Some(next)));
            };
            view! {
                <div class="form-row cron-row" data-trigger=at>
                    <label>"Schedule (cron)"<input type="text" name="cron-schedule" class="mono" prop:value=c.schedule().to_string()
                        on:change=move |ev| { let v = event_target_value(&ev); set(&|c| cron(&v, if c.timezone() == "UTC" { "" } else { c.timezone() }, c.catch_up())) }/></label>
                    <label>"Time zone"<input type="text" name="cron-timezone" placeholder="UTC"
                        prop:value=if c.timezone() == "UTC" { String::new() } else { c.timezone().to_string() }
                        on:change=move |ev| { let v = event_target_value(&ev); set(&|c| cron(c.schedule(), &v, c.catch_up())) }/></label>
                    <label class="check"><input type="checkbox" name="cron-catch-up" prop:checked=c.catch_up()
                        on:change=move |ev| { let on = event_target_checked(&ev); set(&|c| cron(c.schedule(), if c.timezone() == "UTC" { "" } else { c.timezone() }, on)) }/>
                        "Catch up on runs missed while down"</label>
                    <button class="button secondary small" type="button" on:click=move |_| doc.edit(|d| set_cron(d, at, None))>"Remove"</button>
                </div>
            }
        }).collect_view()
    };
    view! {
        <fieldset class="settings-group">
            <legend>"Triggers"</legend>
            <label class="check"><input type="checkbox" name="trigger-manual" prop:checked=manual
                on:change=move |ev| { let on = event_target_checked(&ev); doc.edit(|d| set_manual(d, on)) }/>
                "By hand (the Run button and the API)"</label>
            {schedules}
            <button class="button secondary small" type="button" on:click=move |_| doc.edit(add_cron)>"Add schedule"</button>
            <label class="check"><input type="checkbox" name="trigger-webhook" prop:checked=move || hook().is_some()
                on:change=move |ev| { let on = event_target_checked(&ev); doc.edit(|d| set_webhook(d, on)) }/>
                "Webhook (POST /hooks/"{move || doc.def.with(|d| d.as_ref().map(|d| d.id.clone()).unwrap_or_default())}")"</label>
            {move || hook().map(|w| view! {
                <div class="form-row">
                    <label>"Secret name"<input type="text" name="webhook-secret" class="mono" placeholder="HOOK_TOKEN"
                        prop:value=w.secret.clone().unwrap_or_default()
                        on:change=move |ev| { let v = event_target_value(&ev).trim().to_string(); doc.edit(|d| edit_webhook(d, |w| w.secret = (!v.is_empty()).then_some(v))) }/></label>
                    <label>"Body into input"<input type="text" name="webhook-body-input" class="mono" placeholder="the body's keys are the inputs"
                        prop:value=w.body_input.clone().unwrap_or_default()
                        on:change=move |ev| { let v = event_target_value(&ev).trim().to_string(); doc.edit(|d| edit_webhook(d, |w| w.body_input = (!v.is_empty()).then_some(v))) }/></label>
                </div>
                <small class="muted">"Callers send the secret (FLOWSCOPE_SECRET_<NAME> on the server) as a bearer token or sign the body with it."</small>
                <HookLabels labels=w.labels.clone().into_iter().collect()/>
            }
            // Erased: the settings form's view type is otherwise too deep for the compiler.
            .into_any())}
        </fieldset>
    }
}

/// The labels a webhook sets on its runs, each from the call: a JSON Pointer into the body or
/// a header.
#[component]
fn HookLabels(labels: Vec<(String, String)>) -> impl IntoView {
    let doc = expect_context::<Doc>();
    let refused = RwSignal::new(None::<String>);
    let rows = labels
        .into_iter()
        .map(|(name, from)| {
            let key = StoredValue::new(name.clone());
            view! {
                <div class="form-row hook-label-row" data-label=name.clone()>
                    <label>"Label"<input type="text" name="hook-label-name" class="mono" prop:value=name.clone()
                        on:change=move |ev| {
                            let to = event_target_value(&ev);
                            let mut ok = true;
                            doc.edit(|d| ok = rename_hook_label(d, &key.get_value(), &to));
                            refused.set((!ok).then(|| format!("Label names are unique and not empty: \"{}\" is not free.", to.trim())));
                        }/></label>
                    <label class="wide">"From the call"<input type="text" name="hook-label-from" class="mono"
                        placeholder="/ref, /repository/name or header:X-GitHub-Event" prop:value=from
                        on:change=move |ev| {
                            let v = event_target_value(&ev).trim().to_string();
                            doc.edit(|d| edit_webhook(d, |w| {
                                if let Some(from) = w.labels.get_mut(&key.get_value()) {
                                    *from = v;
                                }
                            }));
                        }/></label>
                    <button class="button secondary small" type="button" aria-label=format!("Remove label {name}")
                        on:click=move |_| { let k = key.get_value(); doc.edit(|d| edit_webhook(d, |w| { w.labels.shift_remove(&k); })) }>"Remove"</button>
                </div>
            }
        })
        .collect_view();
    view! {
        <div class="hook-labels">
            <p class="muted">"Labels of each run it starts, from the call (the monitor filters by them):"</p>
            {rows}
            {move || refused.get().map(|e| view! { <p class="error-note" role="alert">{e}</p> })}
            <button class="button secondary small" type="button" on:click=move |_| doc.edit(|d| { add_hook_label(d); })>"Add label"</button>
        </div>
    }
}

/// One step's form: id, needs, its condition and loop, its agent's fields (from the catalog), retry
/// and timeout.
#[component]
pub fn StepForm(id: String) -> impl IntoView {
    let doc = expect_context::<Doc>();
    let id = StoredValue::new(id);
    move || {
        let def = doc.def.get()?;
        let step = def.steps.iter().find(|s| s.id == id.get_value())?.clone();
        let others: Vec<String> = def
            .steps
            .iter()
            .filter(|s| s.id != step.id)
            .map(|s| s.id.clone())
            .collect();
        let spec = catalog::agent(&step.agent);
        let sid = StoredValue::new(step.id.clone());
        let fields = spec.map(|a| a.fields).unwrap_or(&[]).iter().map(|f| {
            view! { <WithField step=step.id.clone() spec=*f value=step.with.get(f.name).cloned()/> }
        }).collect_view();
        let retry = step.retry.clone();
        Some(view! {
            <form class="step-form" on:submit=|ev| ev.prevent_default() aria-label=format!("Step {}", step.id)>
                <h2>{format!("Step {}", step.id)}</h2>
                <p class="muted">{spec.map(|a| a.summary).unwrap_or("Unknown agent")}</p>
                <label>"Step id"<input type="text" name="step-id" prop:value=step.id.clone()
                    on:change=move |ev| {
                        let to = event_target_value(&ev);
                        let from = sid.get_value();
                        doc.edit(|d| rename_step(d, &from, &to));
                        doc.selected.set(Some(to.clone()));
                        id.set_value(to);
                    }/></label>
                <fieldset>
                    <legend>"Needs"</legend>
                    {if others.is_empty() { Some(view! { <p class="muted">"No other steps yet."</p> }) } else { None }}
                    {others.into_iter().map(|o| {
                        let checked = step.needs.contains(&o);
                        let from = o.clone();
                        view! {
                            <label class="check"><input type="checkbox" prop:checked=checked
                                on:change=move |ev| {
                                    let on = event_target_checked(&ev);
                                    let to = sid.get_value();
                                    doc.edit(|d| set_need(d, &to, &from, on));
                                }/>{o}</label>
                        }
                    }).collect_view()}
                </fieldset>
                <fieldset>
                    <legend>"When it runs"</legend>
                    <label>"Run only if"<input type="text" name="step-if" class="mono"
                        placeholder="success() (every step it needs succeeded)"
                        prop:value=step.condition.clone().unwrap_or_default()
                        on:change=move |ev| {
                            let v = event_target_value(&ev);
                            doc.edit_step(&sid.get_value(), |s| {
                                s.condition = (!v.trim().is_empty()).then(|| v.trim().to_string());
                            });
                        }/></label>
                    <small class="muted">"An expression over inputs, steps.<id>.output/status and run, e.g. "
                        <code>"steps.check.output and inputs.mode == 'full'"</code>
                        ". always() also runs after a failure or a cancel; failure() only after a failure, cancelled() only after a cancel."</small>
                    <label class="check"><input type="checkbox" name="step-continue-on-error" prop:checked=step.continue_on_error
                        on:change=move |ev| {
                            let on = event_target_checked(&ev);
                            doc.edit_step(&sid.get_value(), |s| {
                                s.continue_on_error = on;
                            });
                        }/>"Continue on error: a failure here does not fail the run"</label>
                    <div class="form-row">
                        <label>"For each item of"<input type="text" name="step-for-each" class="mono"
                            placeholder="runs once (no loop)"
                            prop:value=step.for_each.clone().unwrap_or_default()
                            on:change=move |ev| {
                                let v = event_target_value(&ev);
                                doc.edit_step(&sid.get_value(), |s| {
                                    s.for_each = (!v.trim().is_empty()).then(|| v.trim().to_string());
                                    if s.for_each.is_none() {
                                        s.concurrency = None;
                                    }
                                });
                            }/></label>
                        <label>"Items at once"<input type="number" min="1" name="step-concurrency"
                            placeholder="all slots"
                            prop:value=step.concurrency.map(|c| c.to_string()).unwrap_or_default()
                            on:change=move |ev| {
                                let n = event_target_value(&ev).trim().parse::<u32>().ok();
                                doc.edit_step(&sid.get_value(), |s| {
                                    s.concurrency = n;
                                });
                            }/></label>
                    </div>
                    <small class="muted">"A list, e.g. "<code>"inputs.items"</code>" or "
                        <code>"steps.fetch.output.body"</code>": the step runs once per item, reading "
                        <code>"{{ item }}"</code>" and "<code>"{{ index }}"</code>" (in jq "<code>".item"</code>
                        "); its output is the list of the items' outputs."</small>
                </fieldset>
                <fieldset>
                    <legend>{format!("{} settings", step.agent)}</legend>
                    {fields}
                </fieldset>
                <fieldset>
                    <legend>"Retry and timeout"</legend>
                    <div class="form-row">
                        <label>"Max attempts"<input type="number" min="1" prop:value=retry.as_ref().map(|r| r.max_attempts.to_string()).unwrap_or_default()
                            on:change=move |ev| {
                                let n = event_target_value(&ev).trim().parse::<u32>().ok();
                                doc.edit_step(&sid.get_value(), |s| {
                                    s.retry = n.map(|max_attempts| RetryDef {
                                        max_attempts,
                                        backoff: s.retry.as_ref().and_then(|r| r.backoff.clone()),
                                        max_backoff: s.retry.as_ref().and_then(|r| r.max_backoff.clone()),
                                    });
                                });
                            }/></label>
                        <label>"Backoff"<input type="text" placeholder="1s" prop:value=retry.as_ref().and_then(|r| r.backoff.clone()).unwrap_or_default()
                            on:change=move |ev| {
                                let v = event_target_value(&ev);
                                doc.edit_step(&sid.get_value(), |s| if let Some(r) = s.retry.as_mut() {
                                    r.backoff = (!v.trim().is_empty()).then_some(v);
                                });
                            }/></label>
                        <label>"Timeout"<input type="text" placeholder="30s" prop:value=step.timeout.clone().unwrap_or_default()
                            on:change=move |ev| {
                                let v = event_target_value(&ev);
                                doc.edit_step(&sid.get_value(), |s| {
                                    s.timeout = (!v.trim().is_empty()).then_some(v);
                                });
                            }/></label>
                    </div>
                </fieldset>
                <button class="button danger" type="button" on:click=move |_| {
                    let gone = sid.get_value();
                    doc.edit(|d| remove_step(d, &gone));
                    doc.selected.set(None);
                }>"Remove step"</button>
            </form>
        }.into_any())
    }
}

/// One `with` field, its input chosen by the catalog's type.
#[component]
fn WithField(step: String, spec: FieldSpec, value: Option<Value>) -> impl IntoView {
    let doc = expect_context::<Doc>();
    let text = field_text(spec.ty, value.as_ref());
    let set = move |text: String| {
        let step = step.clone();
        doc.edit_step(&step, move |s| match field_value(spec.ty, &text) {
            Some(v) => {
                s.with.insert(spec.name.to_string(), v);
            }
            None => {
                s.with.remove(spec.name);
            }
        });
    };
    let label = format!("{}{}", spec.name, if spec.required { " *" } else { "" });
    let input = match spec.ty {
        FieldType::Enum(options) => view! {
            <select name=spec.name on:change=move |ev| set(event_target_value(&ev))>
                <option value="" selected=text.is_empty()>"(default)"</option>
                {options.iter().map(|o| view! { <option value=*o selected=text == *o>{*o}</option> }).collect_view()}
            </select>
        }.into_any(),
        FieldType::Boolean => view! {
            <input type="checkbox" name=spec.name prop:checked=text == "true"
                on:change=move |ev| set(event_target_checked(&ev).to_string())/>
        }.into_any(),
        FieldType::Text | FieldType::Json | FieldType::StringMap | FieldType::StringList => view! {
            <textarea name=spec.name rows="3" class="mono" prop:value=text on:change=move |ev| set(event_target_value(&ev))></textarea>
        }.into_any(),
        _ => view! {
            <input type="text" name=spec.name prop:value=text on:change=move |ev| set(event_target_value(&ev))/>
        }.into_any(),
    };
    view! {
        <label class="field">
            <span>{label}</span>
            {input}
            <small class="muted">{format!("{} — {}", spec.help, spec.ty.describe())}</small>
        </label>
    }
}
