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

mod edit;
mod forms;
mod graph;
mod yaml;

use engine::catalog;
use engine::model::{to_yaml, InputDef, Problem, StepDef, WorkflowDef};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use serde::{Deserialize, Serialize};

use crate::components::{ErrorNote, LoadError};
use crate::error::AppError;
use edit::*;
use forms::*;

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
    let workflow = engine::model::Workflow::parse(&source).map_err(AppError::Problems)?;
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

#[derive(Clone, Copy, PartialEq)]
enum Tab {
    Visual,
    Yaml,
}

/// How many edits Undo can take back.
const HISTORY: usize = 200;

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
    /// The line of each problem in the text, where it can be told.
    lines: Memo<Vec<Option<usize>>>,
    selected: RwSignal<Option<String>>,
    /// Earlier documents (Undo) and undone ones (Redo), newest last.
    past: RwSignal<Vec<String>>,
    future: RwSignal<Vec<String>>,
    /// Whether the YAML is being typed: a run of keys is one step of history, not one a key.
    typing: StoredValue<bool>,
}

impl Doc {
    /// A visual edit: change the definition, write it back as YAML.
    fn edit(self, f: impl FnOnce(&mut WorkflowDef)) {
        if let Some(mut def) = self.def.get_untracked() {
            f(&mut def);
            let yaml = to_yaml(&def);
            if self.source.with_untracked(|s| *s == yaml) {
                return;
            }
            self.remember();
            self.typing.set_value(false);
            self.show(yaml);
        }
    }

    /// A visual edit of one step, by id (nothing, if it is gone).
    fn edit_step(self, id: &str, f: impl FnOnce(&mut StepDef)) {
        self.edit(|d| {
            if let Some(s) = d.steps.iter_mut().find(|s| s.id == id) {
                f(s);
            }
        });
    }

    /// A visual edit of one input, by name (nothing, if it is gone).
    fn edit_input(self, name: &str, f: impl FnOnce(&mut InputDef)) {
        self.edit(|d| {
            if let Some(i) = d.inputs.get_mut(name) {
                f(i);
            }
        });
    }

    /// Text typed in the YAML tab.
    fn type_text(self, text: String) {
        if !self.typing.get_value() {
            self.remember();
            self.typing.set_value(true);
        }
        self.source.set(text);
    }

    /// The YAML tab lost focus: the next key starts a new step of history.
    fn end_typing(self) {
        self.typing.set_value(false);
    }

    fn remember(self) {
        let now = self.source.get_untracked();
        self.past.update(|p| {
            p.push(now);
            if p.len() > HISTORY {
                p.remove(0);
            }
        });
        self.future.update(Vec::clear);
    }

    fn show(self, text: String) {
        self.shown.set(text.clone());
        self.source.set(text);
    }

    fn undo(self) {
        let Some(before) = self.past.try_update(Vec::pop).flatten() else {
            return;
        };
        let now = self.source.get_untracked();
        self.future.update(|f| f.push(now));
        self.typing.set_value(false);
        self.show(before);
    }

    fn redo(self) {
        let Some(after) = self.future.try_update(Vec::pop).flatten() else {
            return;
        };
        let now = self.source.get_untracked();
        self.past.update(|p| p.push(now));
        self.typing.set_value(false);
        self.show(after);
    }
}

/// Ctrl+Z (⌘Z) undoes and Ctrl+Shift+Z or Ctrl+Y redoes — outside text fields, which keep
/// their own undo of what is typed in them.
fn undo_keys(ev: &leptos::ev::KeyboardEvent, doc: Doc) {
    if !(ev.ctrl_key() || ev.meta_key()) || ev.alt_key() {
        return;
    }
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let in_text = ev
            .target()
            .and_then(|t| t.dyn_into::<leptos::web_sys::Element>().ok())
            .is_some_and(|el| matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT"));
        if in_text {
            return;
        }
    }
    match ev.key().to_lowercase().as_str() {
        "z" if ev.shift_key() => doc.redo(),
        "z" => doc.undo(),
        "y" => doc.redo(),
        _ => return,
    }
    ev.prevent_default();
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
        lines: Memo::new(move |_| {
            source_sig.with(|s| checked.with(|(_, p)| yaml::problem_lines(s, p)))
        }),
        selected: RwSignal::new(None),
        past: RwSignal::new(Vec::new()),
        future: RwSignal::new(Vec::new()),
        typing: StoredValue::new(false),
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
        <section class="page builder" on:keydown=move |ev| undo_keys(&ev, doc)>
            <header class="page-header">
                <div>
                    <p class="crumbs"><a href="/workflows">"Workflows"</a></p>
                    <h1>{heading}</h1>
                </div>
                <div class="actions">
                    <button class="button secondary" type="button" aria-keyshortcuts="Control+Z"
                        title="Undo (Ctrl+Z)" disabled=move || doc.past.with(Vec::is_empty)
                        on:click=move |_| doc.undo()>"Undo"</button>
                    <button class="button secondary" type="button" aria-keyshortcuts="Control+Shift+Z Control+Y"
                        title="Redo (Ctrl+Shift+Z)" disabled=move || doc.future.with(Vec::is_empty)
                        on:click=move |_| doc.redo()>"Redo"</button>
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
                {view! { <yaml::YamlEditor/> }.into_any()}
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
        doc.type_text(area.value());
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
                let lines = doc.lines.get();
                if problems.is_empty() {
                    view! { <p class="ok-note"><span aria-hidden="true">"✓ "</span>"Valid — ready to save"</p> }.into_any()
                } else {
                    view! {
                        <div class="error-note" role="alert">
                            <strong>{format!("{} problem{} to fix before saving", problems.len(), if problems.len() == 1 { "" } else { "s" })}</strong>
                            <ul>
                                {problems.into_iter().zip(lines).map(|(p, line)| {
                                    view! {
                                        <li><code>{if p.path.is_empty() { "document".to_string() } else { p.path.clone() }}</code>
                                            {line.map(|l| view! { <span class="muted">{format!(" (line {})", l + 1)}</span> })}
                                            " "{p.message}</li>
                                    }
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
    let add = move |parallel: bool| {
        let at = doc.selected.get_untracked();
        let agent = new_agent.get_untracked();
        let mut added = None;
        doc.edit(|d| {
            added = Some(match (&at, parallel) {
                (Some(beside), true) => add_parallel_step(d, &agent, beside),
                _ => add_step(d, &agent, at.as_deref()),
            })
        });
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
                    <button class="button" type="button" on:click=move |_| add(false)>"Add step"</button>
                    {move || doc.selected.get().map(|s| view! {
                        <span class="muted">{format!("after {s}, or")}</span>
                        <button class="button secondary" type="button" title="A step needing what this one needs: the two run at the same time"
                            on:click=move |_| add(true)>{format!("Add beside {s}")}</button>
                    })}
                </div>
                {view! { <graph::Graph/> }.into_any()}
            </div>
            <div class="panel">
                {move || match doc.selected.get() {
                    Some(id) => view! {
                        <button class="button secondary small back" type="button" on:click=move |_| doc.selected.set(None)>"← Workflow settings"</button>
                        <StepForm id=id/>
                    }.into_any(),
                    None => view! { <Settings/> }.into_any(),
                }}
            </div>
        </div>
    }
    .into_any()
}

/// The workflow's settings, shown while no step is selected.
#[component]
fn Settings() -> impl IntoView {
    view! {
        <form class="step-form" aria-label="Workflow settings" on:submit=|ev| ev.prevent_default()>
            <h2>"Workflow settings"</h2>
            <p class="muted">"Select a step in the graph to edit it."</p>
            <LimitsFields/>
            <InputsFields/>
            <TriggersFields/>
            <fieldset class="settings-group">
                <legend>"Failure and outputs"</legend>
                <HandlerFields/>
            </fieldset>
        </form>
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
