//! The builder's graph: click (or Enter on) a step to select it; drag from a step's port (the
//! dot on its right edge) onto another step to make the second need the first. Steps with
//! problems are outlined. The keyboard's way to connect is the step form's Needs checkboxes.

use engine::layout::{layout, NODE_H, NODE_W};
use leptos::prelude::*;

use super::edit::{depends_on, problem_step, set_need};
use super::Doc;
use crate::components::DagFrame;

/// A connection being dragged, in the drawing's units.
#[derive(Debug, Clone, PartialEq)]
struct Drag {
    from: String,
    start: (f64, f64),
    end: (f64, f64),
}

#[component]
pub fn Graph() -> impl IntoView {
    let doc = expect_context::<Doc>();
    let drag = RwSignal::new(None::<Drag>);
    // What the last drop did, read out to screen readers and shown under the graph.
    let said = RwSignal::new(String::new());
    let drop_on = move |to: Option<String>| {
        let Some(d) = drag.get_untracked() else {
            return;
        };
        drag.set(None);
        let Some(to) = to.filter(|t| *t != d.from) else {
            return;
        };
        let Some(def) = doc.def.get_untracked() else {
            return;
        };
        let already = def
            .steps
            .iter()
            .any(|s| s.id == to && s.needs.contains(&d.from));
        if already {
            said.set(format!("{to} already needs {}.", d.from));
        } else if depends_on(&def, &d.from, &to) {
            said.set(format!(
                "Not connected: {to} runs before {}, so this would make a loop.",
                d.from
            ));
        } else {
            doc.edit(|def| set_need(def, &to, &d.from, true));
            doc.selected.set(Some(to.clone()));
            said.set(format!("Connected: {to} now needs {}.", d.from));
        }
    };
    let graph = move || {
        let Some(def) = doc.def.get() else {
            return view! { <p class="muted">"The YAML does not parse yet."</p> }.into_any();
        };
        let bad: Vec<usize> = doc
            .problems
            .with(|ps| ps.iter().filter_map(|p| problem_step(&p.path)).collect());
        let deps = def.need_indices();
        let l = layout(&deps);
        let width = l.width;
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
            let port = (x + NODE_W, y + NODE_H / 2.0);
            let from = id.clone();
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
                        {crate::routes::run::step_marks(s.condition.is_some(), s.for_each.is_some())}
                    </text>
                </g>
                <circle class="port" data-port=id.clone() cx=port.0 cy=port.1 r="7">
                    <title>{format!("Drag to the step that needs {id}")}</title>
                </circle>
                // Wide and invisible: the port is easy to hit with a finger.
                <circle class="port-hit" data-port-hit=id.clone() cx=port.0 cy=port.1 r="14"
                    on:click=|ev| ev.stop_propagation()
                    on:pointerdown=move |ev| {
                        ev.prevent_default();
                        ev.stop_propagation();
                        capture(&ev);
                        drag.set(Some(Drag { from: from.clone(), start: port, end: port }));
                    }
                    on:pointermove=move |ev| {
                        if drag.with_untracked(Option::is_some) {
                            if let Some(end) = in_drawing(&ev, width) {
                                drag.update(|d| if let Some(d) = d { d.end = end });
                            }
                        }
                    }
                    on:pointerup=move |ev| drop_on(step_at(&ev))
                    on:pointercancel=move |_| drag.set(None)/>
            }
        }).collect_view();
        let line = move || {
            drag.get().map(|d| {
                view! {
                    <line class="drag-edge" x1=d.start.0 y1=d.start.1 x2=d.end.0 y2=d.end.1/>
                }
            })
        };
        view! {
            <DagFrame layout=l class="dag builder-dag" label=format!("Graph of {} steps", def.steps.len())>
                {nodes}{line}
            </DagFrame>
        }
        .into_any()
    };
    view! {
        {graph}
        <p class="muted graph-hint" aria-live="polite">
            {move || {
                let s = said.get();
                if s.is_empty() {
                    "Drag from a step's dot onto another step to connect them.".to_string()
                } else {
                    s
                }
            }}
        </p>
    }
}

/// Keeps the pointer's events on the port until it is released, wherever it goes.
fn capture(ev: &leptos::ev::PointerEvent) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        if let Some(el) = ev
            .target()
            .and_then(|t| t.dyn_into::<leptos::web_sys::Element>().ok())
        {
            let _ = el.set_pointer_capture(ev.pointer_id());
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = ev;
}

/// The pointer's place in the drawing's units (the SVG may be drawn scaled).
fn in_drawing(ev: &leptos::ev::PointerEvent, width: f64) -> Option<(f64, f64)> {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let svg = ev
            .target()
            .and_then(|t| t.dyn_into::<leptos::web_sys::Element>().ok())?
            .closest("svg")
            .ok()??;
        let rect = svg.get_bounding_client_rect();
        if rect.width() <= 0.0 {
            return None;
        }
        let scale = width / rect.width();
        Some((
            (f64::from(ev.client_x()) - rect.left()) * scale,
            (f64::from(ev.client_y()) - rect.top()) * scale,
        ))
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (ev, width);
        None
    }
}

/// The step under the pointer (the capture keeps events on the port, so it is looked up).
fn step_at(ev: &leptos::ev::PointerEvent) -> Option<String> {
    #[cfg(feature = "hydrate")]
    {
        let el = document()
            .element_from_point(ev.client_x() as f32, ev.client_y() as f32)?
            .closest("[data-step], [data-port-hit]")
            .ok()??;
        el.get_attribute("data-step")
            .or_else(|| el.get_attribute("data-port-hit"))
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = ev;
        None
    }
}
