//! A run's place among calls (agent `workflow`): the runs it called, and its outputs — what
//! its caller's step gets.

use engine::records::{ChildRun, MAX_LISTED_CHILDREN};
use leptos::prelude::*;
use serde_json::Value;

use crate::components::StatusBadge;

/// The runs this run's `workflow` steps called, each a link, with its state.
#[component]
pub(super) fn ChildRuns(children: Vec<ChildRun>) -> impl IntoView {
    (!children.is_empty()).then(|| {
        let cut = children.len() as i64 >= MAX_LISTED_CHILDREN;
        let rows = children
            .into_iter()
            .map(|c| {
                let called_by = match c.item {
                    Some(i) => format!("{} · item {i}", c.step_id),
                    None => c.step_id.clone(),
                };
                view! {
                    <tr>
                        <td>{called_by}</td>
                        <td><a href=format!("/workflows/{}", c.workflow_id)>{c.workflow_id.clone()}</a></td>
                        <td><StatusBadge status=c.status.as_str()/></td>
                        <td><a class="mono" href=format!("/runs/{}", c.id) data-child-run=c.id.clone()>{super::short_id(&c.id)}</a></td>
                    </tr>
                }
            })
            .collect::<Vec<_>>();
        view! {
            <section aria-labelledby="children-h" class="panel">
                <h2 id="children-h">"Child runs"</h2>
                <table class="table">
                    <thead><tr><th>"Called by step"</th><th>"Workflow"</th><th>"Status"</th><th>"Run"</th></tr></thead>
                    <tbody>{rows}</tbody>
                </table>
                {cut.then(|| view! { <p class="muted">{format!("The first {MAX_LISTED_CHILDREN}; each step's items list the rest.")}</p> })}
            </section>
        }
    })
}

/// What the run gives back (its `outputs:`, or its last steps' outputs), once it succeeded.
#[component]
pub(super) fn RunOutputs(outputs: Option<Value>) -> impl IntoView {
    outputs.map(|o| {
        let text = serde_json::to_string_pretty(&o).unwrap_or_default();
        view! {
            <section aria-labelledby="outputs-h" class="panel">
                <h2 id="outputs-h">"Outputs"</h2>
                <pre class="code">{text}</pre>
            </section>
        }
    })
}
