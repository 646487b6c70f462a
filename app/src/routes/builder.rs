//! `/workflows/new` and `/workflows/:id/edit`: the builder.
//!
//! The YAML text is the one source of truth. The visual side parses it into a
//! [`WorkflowDef`], and every visual edit writes the whole document back as canonical YAML,
//! so the two tabs can never disagree. Validation is the engine's own (compiled into the
//! browser bundle), run on every change: problems are listed with their paths, the steps
//! they name are outlined in the graph, and Save stays disabled until there are none.
//!
//! Form fields commit on `change` (leaving the field, Enter), not on every key, so the form
//! is not rebuilt under the person's cursor; the YAML tab validates on every key.

use engine::catalog::{self, FieldSpec, FieldType};
use engine::layout::{layout, NODE_H, NODE_W};
use engine::model::{parse_def, to_yaml, Problem, RetryDef, StepDef, Workflow, WorkflowDef};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::components::{DagFrame, ErrorNote, LoadError};
use crate::error::AppError;

/// A saved version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    pub id: String,
    pub version: i64,
}

/// Creates the workflow (`original` empty) or saves a new version of `original`.
#[server(endpoint = "save_workflow")]
pub async fn save_workflow(original: String, source: String) -> Result<Saved, AppError> {
    crate::auth::require(engine::access::Action::Edit)?;
    let workflow = Workflow::parse(&source).map_err(AppError::Problems)?;
    if !original.is_empty() && workflow.id() != original {
        return Err(AppError::Invalid(format!(
            "id: this editor saves \"{original}\"; to make a new workflow, use New workflow"
        )));
    }
    let store = expect_context::<engine::store::Store>();
    let info = if original.is_empty() {
        store.create_workflow(&workflow, &source).await?
    } else {
        store.save_version(&workflow, &source).await?
    };
    Ok(Saved {
        id: info.workflow_id,
        version: info.version,
    })
}

/// The latest text of a workflow, for the editor.
#[server(endpoint = "workflow_source")]
pub async fn workflow_source(id: String) -> Result<String, AppError> {
    crate::auth::require(engine::access::Action::Read)?;
    let store = expect_context::<engine::store::Store>();
    Ok(store.version(&id, None).await?.source)
}

const NEW_WORKFLOW: &str = "id: my-workflow\nname: My workflow\nsteps:\n- id: start\n  agent: simulate\n  with:\n    latency: 100ms\n";

#[component]
pub fn NewWorkflowPage() -> impl IntoView {
    view! {
        <Title text="New workflow"/>
        <Builder original=String::new() source=NEW_WORKFLOW.to_string()/>
    }
}

#[component]
pub fn EditWorkflowPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.with(|p| p.get("id").unwrap_or_default());
    let source = Resource::new(id, workflow_source);
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading workflow…"</p> }>
            {move || Suspend::new(async move {
                match source.await {
                    Ok(text) => view! {
                        <Title text=format!("Edit {}", id())/>
                        <Builder original=id() source=text/>
                    }.into_any(),
                    Err(e) => view! { <LoadError error=e/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// Every problem of a document: its parse error, or what validation found.
pub fn check(source: &str) -> (Option<WorkflowDef>, Vec<Problem>) {
    match parse_def(source) {
        Err(p) => (None, vec![p]),
        Ok(def) => match Workflow::from_def(def.clone()) {
            Ok(_) => (Some(def), Vec::new()),
            Err(problems) => (Some(def), problems),
        },
    }
}

/// The index of the step a problem is about (`steps[3].with.url` → 3).
pub fn problem_step(path: &str) -> Option<usize> {
    path.strip_prefix("steps[")?.split(']').next()?.parse().ok()
}

/// A step id not used yet: `agent`, `agent_2`, `agent_3`, …
pub fn fresh_id(def: &WorkflowDef, agent: &str) -> String {
    let base = agent.replace('-', "_");
    let taken = |id: &str| def.steps.iter().any(|s| s.id == id);
    if !taken(&base) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}_{n}"))
        .find(|id| !taken(id))
        .unwrap_or(base)
}

/// Adds a step running `agent`, needing `after` when given; returns its id.
pub fn add_step(def: &mut WorkflowDef, agent: &str, after: Option<&str>) -> String {
    let id = fresh_id(def, agent);
    let mut with = Map::new();
    // Required fields start empty but present, so the form shows what to fill in.
    for f in catalog::agent(agent)
        .map_or(&[][..], |a| a.fields)
        .iter()
        .filter(|f| f.required)
    {
        with.insert(f.name.to_string(), Value::String(String::new()));
    }
    def.steps.push(StepDef {
        id: id.clone(),
        name: None,
        agent: agent.to_string(),
        needs: after.map(|a| vec![a.to_string()]).unwrap_or_default(),
        condition: None,
        for_each: None,
        concurrency: None,
        with,
        retry: None,
        timeout: None,
        continue_on_error: false,
    });
    id
}

/// Removes a step and every `needs` that pointed at it.
pub fn remove_step(def: &mut WorkflowDef, id: &str) {
    def.steps.retain(|s| s.id != id);
    for s in &mut def.steps {
        s.needs.retain(|n| n != id);
    }
}

/// Renames a step, keeping the edges to it.
pub fn rename_step(def: &mut WorkflowDef, from: &str, to: &str) {
    for s in &mut def.steps {
        if s.id == from {
            s.id = to.to_string();
        }
        for n in &mut s.needs {
            if n == from {
                *n = to.to_string();
            }
        }
    }
}

/// Adds or removes the edge `from → to`.
pub fn set_need(def: &mut WorkflowDef, to: &str, from: &str, on: bool) {
    if let Some(s) = def.steps.iter_mut().find(|s| s.id == to) {
        s.needs.retain(|n| n != from);
        if on {
            s.needs.push(from.to_string());
        }
    }
}

/// What a form field shows for a `with` value.
pub fn field_text(ty: FieldType, value: Option<&Value>) -> String {
    match (ty, value) {
        (_, None) => String::new(),
        (_, Some(Value::String(s))) => s.clone(),
        (FieldType::StringMap | FieldType::StringList | FieldType::Json, Some(v)) => {
            serde_json::to_string_pretty(v).unwrap_or_default()
        }
        (_, Some(v)) => v.to_string(),
    }
}

/// The `with` value a form field's text stands for; `None` clears the key. Text that does
/// not fit the type is kept as text, so validation can say what is wrong with it.
pub fn field_value(ty: FieldType, text: &str) -> Option<Value> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    if t.contains("{{") {
        return Some(Value::String(text.to_string()));
    }
    let parsed = match ty {
        FieldType::Integer => t.parse::<i64>().ok().map(Value::from),
        FieldType::Number => t
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
        FieldType::Boolean => t.parse::<bool>().ok().map(Value::Bool),
        FieldType::StringMap | FieldType::StringList | FieldType::Json => {
            serde_json::from_str(t).ok()
        }
        _ => None,
    };
    Some(parsed.unwrap_or_else(|| Value::String(text.to_string())))
}

#[derive(Clone, Copy, PartialEq)]
enum Tab {
    Visual,
    Yaml,
}

/// Shared by the builder's parts.
#[derive(Clone, Copy)]
struct Doc {
    /// The document: the one source of truth.
    source: RwSignal<String>,
    /// What the YAML tab is given; set only by visual edits, so typing there keeps its caret.
    shown: RwSignal<String>,
    /// The last document that parsed, for the visual side while the YAML is mid-edit.
    def: Memo<Option<WorkflowDef>>,
    problems: Memo<Vec<Problem>>,
    selected: RwSignal<Option<String>>,
}

impl Doc {
    /// A visual edit: change the definition, write it back as YAML.
    fn edit(self, f: impl FnOnce(&mut WorkflowDef)) {
        if let Some(mut def) = self.def.get_untracked() {
            f(&mut def);
            let yaml = to_yaml(&def);
            self.shown.set(yaml.clone());
            self.source.set(yaml);
        }
    }
}

#[component]
fn Builder(original: String, source: String) -> impl IntoView {
    let source_sig = RwSignal::new(source.clone());
    let checked = Memo::new(move |_| source_sig.with(|s| check(s)));
    let last_good = StoredValue::new(check(&source).0);
    let def = Memo::new(move |_| {
        let (def, _) = checked.get();
        if def.is_some() {
            last_good.set_value(def.clone());
        }
        def.or_else(|| last_good.get_value())
    });
    let doc = Doc {
        source: source_sig,
        shown: RwSignal::new(source),
        def,
        problems: Memo::new(move |_| checked.with(|(_, p)| p.clone())),
        selected: RwSignal::new(None),
    };
    provide_context(doc);
    let tab = RwSignal::new(Tab::Visual);
    let save = ServerAction::<SaveWorkflow>::new();
    // What was last saved (or loaded): edits beyond it are lost if the page is left.
    let clean = RwSignal::new(doc.source.get_untracked());
    let dispatched = StoredValue::new(String::new());
    Effect::new(move |_| {
        if let Some(Ok(_)) = save.value().get() {
            clean.set(dispatched.get_value());
        }
    });
    warn_before_leaving(Signal::derive(move || {
        doc.source.with(|s| clean.with(|c| s != c))
    }));
    // The workflow being edited: empty until a new one is first saved.
    let original = RwSignal::new(original);
    let saved = move || save.value().get().and_then(|r| r.ok());
    // Once a new workflow is saved, later saves are new versions of it, not a second create.
    Effect::new(move |_| {
        if let Some(s) = saved() {
            // It has an edit page now: the address and the title say so. Not a navigation:
            // the saved note and the Run form stay.
            #[cfg(feature = "hydrate")]
            if original.get_untracked().is_empty() {
                let url = format!("/workflows/{}/edit", s.id);
                if let Ok(history) = window().history() {
                    let _ = history.replace_state_with_url(
                        &wasm_bindgen::JsValue::NULL,
                        "",
                        Some(&url),
                    );
                }
                document().set_title(&crate::page_title(format!("Edit {}", s.id)));
            }
            original.set(s.id);
        }
    });
    let heading = move || {
        let id = original.get();
        if id.is_empty() {
            "New workflow".to_string()
        } else {
            format!("Edit {id}")
        }
    };
    view! {
        <section class="page builder">
            <header class="page-header">
                <div>
                    <p class="crumbs"><a href="/workflows">"Workflows"</a></p>
                    <h1>{heading}</h1>
                </div>
                <div class="actions">
                    <button class="button" type="button"
                        disabled=move || !doc.problems.with(Vec::is_empty) || save.pending().get()
                        on:click=move |_| {
                            let source = doc.source.get_untracked();
                            dispatched.set_value(source.clone());
                            save.dispatch(SaveWorkflow { original: original.get_untracked(), source });
                        }>
                        "Save"
                    </button>
                </div>
            </header>
            <p role="status" aria-live="polite" class="save-status">
                {move || match save.value().get() {
                    Some(Ok(s)) => Some(view! {
                        <span>{format!("Saved {} v{}. ", s.id, s.version)}
                            <a href=format!("/workflows/{}", s.id)>"Open workflow"</a></span>
                    }.into_any()),
                    Some(Err(e)) => Some(view! { <ErrorNote error=e lead="Could not save the workflow"/> }.into_any()),
                    None => None,
                }}
            </p>
            {move || saved().map(|s| view! { <RunForm workflow_id=s.id/> })}
            {view! { <Problems/> }.into_any()}
            <div role="tablist" aria-label="Editor" class="tabs">
                <button role="tab" type="button" aria-selected=move || (tab.get() == Tab::Visual).to_string()
                    on:click=move |_| tab.set(Tab::Visual)>"Visual"</button>
                <button role="tab" type="button" aria-selected=move || (tab.get() == Tab::Yaml).to_string()
                    on:click=move |_| tab.set(Tab::Yaml)>"YAML"</button>
            </div>
            <div role="tabpanel" aria-label="Visual" hidden=move || tab.get() != Tab::Visual>
                {view! { <Visual/> }.into_any()}
            </div>
            <div role="tabpanel" aria-label="YAML" hidden=move || tab.get() != Tab::Yaml>
                <label class="visually-hidden" for="yaml">"Workflow YAML"</label>
                <textarea id="yaml" class="code yaml-editor" spellcheck="false" rows="24"
                    aria-describedby="yaml-keys"
                    prop:value=move || doc.shown.get()
                    on:keydown=move |ev| indent_on_tab(&ev, doc)
                    on:input=move |ev| doc.source.set(event_target_value(&ev))></textarea>
                <p id="yaml-keys" class="muted">"Tab indents two spaces; Esc, then Tab, moves on."</p>
            </div>
        </section>
    }
    .into_any()
}

/// While `dirty`, leaving the builder asks first: closing or reloading the tab (the browser's
/// own prompt) and following a link inside the app (a confirm, before the router acts).
fn warn_before_leaving(dirty: Signal<bool>) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::{closure::Closure, JsCast};
        let unload = window_event_listener(leptos::ev::beforeunload, move |ev| {
            if dirty.try_get_untracked().unwrap_or(false) {
                ev.prevent_default();
                ev.set_return_value("unsaved");
            }
        });
        let click = Closure::<dyn Fn(leptos::web_sys::MouseEvent)>::new(
            move |ev: leptos::web_sys::MouseEvent| {
                if !dirty.try_get_untracked().unwrap_or(false) {
                    return;
                }
                let link = ev
                    .target()
                    .and_then(|t| t.dyn_into::<leptos::web_sys::Element>().ok())
                    .and_then(|el| el.closest("a[href]").ok().flatten());
                // A link to another tab loses nothing.
                if link.is_none_or(|a| a.get_attribute("target").is_some()) {
                    return;
                }
                let leave = window()
                    .confirm_with_message(
                        "Leave without saving? Your edits to this workflow are lost.",
                    )
                    .unwrap_or(true);
                if !leave {
                    ev.prevent_default();
                    ev.stop_immediate_propagation();
                }
            },
        )
        .into_js_value();
        // Capturing, on the document: before the router's own click handler.
        let _ = document().add_event_listener_with_callback_and_bool(
            "click",
            click.unchecked_ref(),
            true,
        );
        let click = send_wrapper::SendWrapper::new(click);
        on_cleanup(move || {
            unload.remove();
            let _ = document().remove_event_listener_with_callback_and_bool(
                "click",
                click.unchecked_ref(),
                true,
            );
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = dirty;
}

/// Tab in the YAML editor indents (two spaces, as YAML wants) instead of leaving it; after
/// Esc the next Tab leaves, so the keyboard is never trapped.
fn indent_on_tab(ev: &leptos::ev::KeyboardEvent, doc: Doc) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        thread_local! {
            static RELEASED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        }
        if ev.key() == "Escape" {
            RELEASED.with(|r| r.set(true));
            return;
        }
        let released = RELEASED.with(|r| r.replace(false));
        if ev.key() != "Tab"
            || released
            || ev.shift_key()
            || ev.ctrl_key()
            || ev.alt_key()
            || ev.meta_key()
        {
            return;
        }
        let Some(area) = ev
            .target()
            .and_then(|t| t.dyn_into::<leptos::web_sys::HtmlTextAreaElement>().ok())
        else {
            return;
        };
        ev.prevent_default();
        let (start, end) = (
            area.selection_start().ok().flatten().unwrap_or(0),
            area.selection_end().ok().flatten().unwrap_or(0),
        );
        let _ = area.set_range_text_with_start_and_end_and_mode("  ", start, end, "end");
        doc.source.set(area.value());
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (ev, doc);
}

#[component]
fn Problems() -> impl IntoView {
    let doc = expect_context::<Doc>();
    view! {
        <div class="problems" aria-live="polite">
            {move || {
                let problems = doc.problems.get();
                if problems.is_empty() {
                    view! { <p class="ok-note"><span aria-hidden="true">"✓ "</span>"Valid — ready to save"</p> }.into_any()
                } else {
                    view! {
                        <div class="error-note" role="alert">
                            <strong>{format!("{} problem{} to fix before saving", problems.len(), if problems.len() == 1 { "" } else { "s" })}</strong>
                            <ul>
                                {problems.into_iter().map(|p| view! {
                                    <li><code>{if p.path.is_empty() { "document".to_string() } else { p.path.clone() }}</code>" "{p.message}</li>
                                }).collect_view()}
                            </ul>
                        </div>
                    }.into_any()
                }
            }}
        </div>
    }
}

#[component]
fn Visual() -> impl IntoView {
    let doc = expect_context::<Doc>();
    let new_agent = RwSignal::new("simulate".to_string());
    let add = move |_| {
        let after = doc.selected.get_untracked();
        let agent = new_agent.get_untracked();
        let mut added = None;
        doc.edit(|d| added = Some(add_step(d, &agent, after.as_deref())));
        doc.selected.set(added);
    };
    view! {
        <div class="builder-grid">
            <div class="panel">
                <WorkflowFields/>
                <div class="add-step">
                    <label>"Agent"
                        <select prop:value=move || new_agent.get() on:change=move |ev| new_agent.set(event_target_value(&ev))>
                            {catalog::AGENTS.iter().map(|a| view! { <option value=a.kind title=a.summary>{a.kind}</option> }).collect_view()}
                        </select>
                    </label>
                    <button class="button" type="button" on:click=add>"Add step"</button>
                    <span class="muted">{move || doc.selected.get().map(|s| format!("after {s}"))}</span>
                </div>
                <Graph/>
            </div>
            <div class="panel">
                {move || match doc.selected.get() {
                    Some(id) => view! { <StepForm id=id/> }.into_any(),
                    None => view! { <p class="muted">"Select a step in the graph to edit it, or add one."</p> }.into_any(),
                }}
            </div>
        </div>
    }
    .into_any()
}

#[component]
fn WorkflowFields() -> impl IntoView {
    let doc = expect_context::<Doc>();
    let outputs_error = RwSignal::new(None::<String>);
    let value = move |f: fn(&WorkflowDef) -> String| {
        move || doc.def.with(|d| d.as_ref().map(f).unwrap_or_default())
    };
    view! {
        <div class="form-row">
            <label>"Id"<input type="text" prop:value=value(|d| d.id.clone())
                on:change=move |ev| { let v = event_target_value(&ev); doc.edit(|d| d.id = v) }/></label>
            <label>"Name"<input type="text" prop:value=value(|d| d.name.clone().unwrap_or_default())
                on:change=move |ev| { let v = event_target_value(&ev); doc.edit(|d| d.name = (!v.is_empty()).then_some(v)) }/></label>
            <label class="wide">"Description"<input type="text" prop:value=value(|d| d.description.clone().unwrap_or_default())
                on:change=move |ev| { let v = event_target_value(&ev); doc.edit(|d| d.description = (!v.is_empty()).then_some(v)) }/></label>
        </div>
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

/// The DAG: click (or Enter on) a step to select it; steps with problems are outlined.
#[component]
fn Graph() -> impl IntoView {
    let doc = expect_context::<Doc>();
    move || {
        let Some(def) = doc.def.get() else {
            return view! { <p class="muted">"The YAML does not parse yet."</p> }.into_any();
        };
        let bad: Vec<usize> = doc
            .problems
            .with(|ps| ps.iter().filter_map(|p| problem_step(&p.path)).collect());
        let deps = def.need_indices();
        let l = layout(&deps);
        let selected = doc.selected.get();
        let nodes = def.steps.iter().zip(&l.nodes).enumerate().map(|(i, (s, &(x, y)))| {
            let id = s.id.clone();
            let select = {
                let id = id.clone();
                move || doc.selected.set(Some(id.clone()))
            };
            let on_key = {
                let select = select.clone();
                move |ev: leptos::ev::KeyboardEvent| {
                    if ev.key() == "Enter" || ev.key() == " " {
                        ev.prevent_default();
                        select();
                    }
                }
            };
            view! {
                <g class="node" data-step=id.clone() tabindex="0" role="button"
                   aria-label=format!("Step {}", s.id) aria-pressed=(selected.as_deref() == Some(s.id.as_str())).to_string()
                   data-invalid=bad.contains(&i).to_string()
                   data-conditional=s.condition.is_some().then_some("true")
                   data-loop=s.for_each.is_some().then_some("true")
                   on:click=move |_| select() on:keydown=on_key>
                    <rect x=x y=y width=NODE_W height=NODE_H rx="8"/>
                    <text x=x + 12.0 y=y + 19.0 class="node-name">{s.id.clone()}</text>
                    <text x=x + 12.0 y=y + 35.0 class="node-agent">{s.agent.clone()}</text>
                    <text x=x + NODE_W - 8.0 y=y + 19.0 class="node-marks" text-anchor="end">
                        {super::run::step_marks(s.condition.is_some(), s.for_each.is_some())}
                    </text>
                </g>
            }
        }).collect_view();
        view! {
            <DagFrame layout=l class="dag builder-dag" label=format!("Graph of {} steps", def.steps.len())>{nodes}</DagFrame>
        }
        .into_any()
    }
}

/// One step's form: id, needs, its condition and loop, its agent's fields (from the catalog), retry
/// and timeout.
#[component]
fn StepForm(id: String) -> impl IntoView {
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
                            let to = sid.get_value();
                            doc.edit(|d| if let Some(s) = d.steps.iter_mut().find(|s| s.id == to) {
                                s.condition = (!v.trim().is_empty()).then(|| v.trim().to_string());
                            });
                        }/></label>
                    <small class="muted">"An expression over inputs, steps.<id>.output/status and run, e.g. "
                        <code>"steps.check.output and inputs.mode == 'full'"</code>
                        ". always() also runs after a failure or a cancel; failure() only after a failure, cancelled() only after a cancel."</small>
                    <label class="check"><input type="checkbox" name="step-continue-on-error" prop:checked=step.continue_on_error
                        on:change=move |ev| {
                            let on = event_target_checked(&ev);
                            let to = sid.get_value();
                            doc.edit(|d| if let Some(s) = d.steps.iter_mut().find(|s| s.id == to) {
                                s.continue_on_error = on;
                            });
                        }/>"Continue on error: a failure here does not fail the run"</label>
                    <div class="form-row">
                        <label>"For each item of"<input type="text" name="step-for-each" class="mono"
                            placeholder="runs once (no loop)"
                            prop:value=step.for_each.clone().unwrap_or_default()
                            on:change=move |ev| {
                                let v = event_target_value(&ev);
                                let to = sid.get_value();
                                doc.edit(|d| if let Some(s) = d.steps.iter_mut().find(|s| s.id == to) {
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
                                let to = sid.get_value();
                                doc.edit(|d| if let Some(s) = d.steps.iter_mut().find(|s| s.id == to) {
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
                                let to = sid.get_value();
                                doc.edit(|d| if let Some(s) = d.steps.iter_mut().find(|s| s.id == to) {
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
                                let to = sid.get_value();
                                doc.edit(|d| if let Some(r) = d.steps.iter_mut().find(|s| s.id == to).and_then(|s| s.retry.as_mut()) {
                                    r.backoff = (!v.trim().is_empty()).then_some(v);
                                });
                            }/></label>
                        <label>"Timeout"<input type="text" placeholder="30s" prop:value=step.timeout.clone().unwrap_or_default()
                            on:change=move |ev| {
                                let v = event_target_value(&ev);
                                let to = sid.get_value();
                                doc.edit(|d| if let Some(s) = d.steps.iter_mut().find(|s| s.id == to) {
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
        doc.edit(move |d| {
            if let Some(s) = d.steps.iter_mut().find(|s| s.id == step) {
                match field_value(spec.ty, &text) {
                    Some(v) => {
                        s.with.insert(spec.name.to_string(), v);
                    }
                    None => {
                        s.with.remove(spec.name);
                    }
                }
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

/// The Run form of the saved workflow, with the inputs the document declares.
#[component]
fn RunForm(workflow_id: String) -> impl IntoView {
    let doc = expect_context::<Doc>();
    let inputs = doc
        .def
        .get_untracked()
        .map(|d| d.inputs.into_iter().collect())
        .unwrap_or_default();
    view! { <crate::run_form::RunForm workflow_id=workflow_id inputs=inputs/> }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(yaml: &str) -> WorkflowDef {
        parse_def(yaml).expect("parses")
    }

    #[test]
    fn visual_edits_round_trip_through_yaml_and_validate() {
        let mut d = def(NEW_WORKFLOW);
        let http = add_step(&mut d, "http", Some("start"));
        assert_eq!(http, "http");
        // Added with its required field empty: the validator names it.
        let (_, problems) = check(&to_yaml(&d));
        assert!(
            problems.iter().any(|p| p.path == "steps[1].with.url"),
            "{problems:?}"
        );
        assert_eq!(
            problems
                .iter()
                .filter_map(|p| problem_step(&p.path))
                .collect::<Vec<_>>(),
            vec![1]
        );
        d.steps[1].with.insert(
            "url".into(),
            field_value(FieldType::String, "http://x/y").unwrap(),
        );
        let yaml = to_yaml(&d);
        let (back, problems) = check(&yaml);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(back.unwrap(), d, "YAML → definition → YAML is lossless");
    }

    #[test]
    fn renaming_and_removing_keep_edges_consistent() {
        let mut d = def(NEW_WORKFLOW);
        add_step(&mut d, "simulate", Some("start"));
        assert_eq!(d.steps[1].id, "simulate");
        add_step(&mut d, "simulate", Some("simulate"));
        assert_eq!(d.steps[2].id, "simulate_2");
        rename_step(&mut d, "simulate", "middle");
        assert_eq!(d.steps[2].needs, vec!["middle"]);
        set_need(&mut d, "simulate_2", "start", true);
        assert_eq!(d.steps[2].needs, vec!["middle", "start"]);
        remove_step(&mut d, "middle");
        assert_eq!(d.steps[1].needs, vec!["start"]);
        assert!(check(&to_yaml(&d)).1.is_empty());
    }

    #[test]
    fn field_text_and_values_follow_the_field_type() {
        assert_eq!(field_value(FieldType::Integer, "42"), Some(Value::from(42)));
        assert_eq!(
            field_value(FieldType::Integer, "4x"),
            Some(Value::from("4x")),
            "kept for the validator"
        );
        assert_eq!(
            field_value(FieldType::Number, "{{ inputs.n }}"),
            Some(Value::from("{{ inputs.n }}"))
        );
        assert_eq!(
            field_value(FieldType::Json, r#"{"a": 1}"#),
            Some(serde_json::json!({"a": 1}))
        );
        assert_eq!(field_value(FieldType::String, "  "), None);
        assert_eq!(
            field_text(FieldType::Json, Some(&serde_json::json!([1]))),
            "[\n  1\n]"
        );
        assert_eq!(problem_step("steps[12].needs[0]"), Some(12));
        assert_eq!(problem_step("inputs.x"), None);
    }
}
