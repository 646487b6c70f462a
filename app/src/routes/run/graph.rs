//! The run's DAG coloured by step state, and the timeline of every attempt.

use engine::layout::{layout, NODE_H, NODE_W};
use engine::records::{AttemptRecord, ItemCounts, RunDetail, SkipReason, StepRecord, StepStatus};
use leptos::prelude::*;

use super::*;
use crate::components::{format_duration, DagFrame};

/// The DAG, every step coloured by its state; pending steps are drawn before they start.
/// Each box links to the step's details below, so it works before hydration too.
#[component]
pub(super) fn Dag(
    steps: Vec<StepInfo>,
    records: Vec<StepRecord>,
    items: Vec<ItemCounts>,
    /// Running steps that wait (a decision, an event, a sleep, a child run), and for what.
    #[prop(optional)]
    waiting: Vec<(String, &'static str)>,
) -> impl IntoView {
    let ui = expect_context::<RunUi>();
    let deps: Vec<Vec<usize>> = steps.iter().map(|s| s.needs.clone()).collect();
    let l = layout(&deps);
    let state_of = |id: &str| {
        records
            .iter()
            .find(|r| r.step_id == id)
            .map_or((StepStatus::Pending, None), |r| (r.status, r.skip_reason))
    };
    let nodes = steps
        .iter()
        .zip(&l.nodes)
        .map(|(s, &(x, y))| {
            let (status, skip) = state_of(&s.id);
            let waits_for = waiting
                .iter()
                .find(|(id, _)| *id == s.id && status == StepStatus::Running)
                .map(|(_, what)| *what);
            let marks = step_marks(s.condition.is_some(), s.for_each.is_some());
            // Shorter beside the marks, so the two never overlap.
            let room = if marks.is_empty() { 20 } else { 20 - (marks.len() + 3).min(10) };
            let label = truncate(&s.name, room);
            // What the box's second line says: the agent, the state, and why it was skipped.
            let progress = items.iter().find(|c| c.step_id == s.id);
            let state_text = match (skip, progress) {
                (Some(SkipReason::Condition), _) => "skipped: if false".to_string(),
                // A loop says how far it has got while it runs.
                (None, Some(c)) if status == StepStatus::Running => {
                    format!("{}/{}", c.succeeded + c.failed, c.total)
                }
                // The box has room for one word; the label and tooltip say what for.
                _ => match waits_for {
                    Some("sleeping") => "sleeping".to_string(),
                    Some(_) => "waiting".to_string(),
                    None => status.as_str().to_string(),
                },
            };
            let said = match (skip, waits_for) {
                (Some(reason), _) => format!("{}: skipped, {}", s.name, reason.describe()),
                (None, Some(what)) => format!("{}: {what}", s.name),
                (None, None) => format!("{}: {}", s.name, status.as_str()),
            };
            // A step that waits is drawn as waiting: nothing runs, someone or something acts.
            let shown = if waits_for.is_some() { "waiting" } else { status.as_str() };
            let icon = if waits_for.is_some() { "◔" } else { status_icon(status) };
            let agent_line = format!("{} · {}", s.agent, state_text);
            let tip = [
                waits_for.map(|w| format!("{}: {w}", s.name)),
                s.condition.as_ref().map(|c| format!("if: {c}")),
                s.for_each.as_ref().map(|l| format!("for each: {l}")),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("\n");
            // The `<g>` puts the `<a>` in the SVG namespace: alone in a `view!`, the macro
            // cannot tell and makes an HTML `<a>`, whose shapes the browser draws at 0×0 when
            // the view is built client-side (in-app navigation), not hydrated.
            // Following the link also opens the step's panel.
            let opens = s.id.clone();
            let open_step = move |_| {
                ui.open.update(|o| {
                    o.insert(opens.clone(), true);
                })
            };
            view! {
                <g><a href=format!("#step-{}", s.id) on:click=open_step class="node" data-step=s.id.clone() data-status=shown
                   data-skip=skip.map(SkipReason::as_str) data-conditional=s.condition.is_some().then_some("true")
                   data-loop=s.for_each.is_some().then_some("true") aria-label=said>
                    <title>{(!tip.is_empty()).then_some(tip)}</title>
                    <rect x=x y=y width=NODE_W height=NODE_H rx="8"/>
                    <text x=x + 28.0 y=y + 19.0 class="node-name">{label}</text>
                    <text x=x + 28.0 y=y + 35.0 class="node-agent">{agent_line}</text>
                    <text x=x + NODE_W - 8.0 y=y + 19.0 class="node-marks" text-anchor="end">{marks}</text>
                    <text x=x + 10.0 y=y + 27.0 class="node-icon" aria-hidden="true">{icon}</text>
                </a></g>
            }
        })
        .collect_view();
    view! { <DagFrame layout=l class="dag" label=format!("Graph of {} steps", steps.len())>{nodes}</DagFrame> }
}

/// What a step's box says of its control flow, top right: `if` (a condition), `each` (a loop).
pub fn step_marks(condition: bool, for_each: bool) -> String {
    [condition.then_some("if"), for_each.then_some("each")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A glyph per state, so state reads without colour.
pub fn status_icon(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Pending => "○",
        StepStatus::Running => "▶",
        StepStatus::Retrying => "↻",
        StepStatus::Succeeded => "✓",
        StepStatus::Failed => "✕",
        StepStatus::Skipped => "–",
        StepStatus::Cancelled => "⊘",
    }
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    }
}

/// A Gantt of every attempt: the wait before it (queue or retry backoff) drawn apart from its
/// execution; bars keep a minimum width so 5 ms steps stay visible.
/// Offsets (ms) of the timeline's ticks over `span`: a 1, 2 or 5 times a power of ten step that
/// gives 3 to 8 of them, from 0.
pub(super) fn axis_ticks(span: i64) -> Vec<i64> {
    let span = span.max(1);
    let mut step = 1i64;
    'find: loop {
        for m in [1, 2, 5] {
            if span / (step * m) <= 7 {
                step *= m;
                break 'find;
            }
        }
        step *= 10;
    }
    (0..=span / step).map(|i| i * step).collect()
}

#[component]
pub(super) fn Timeline(detail: RunDetail, steps: Vec<StepInfo>, end: i64) -> impl IntoView {
    let start = detail.run.created_at;
    let span = (end - start).max(1) as f64;
    let pct = move |t: i64| ((t - start) as f64 / span * 100.0).clamp(0.0, 100.0);
    let mut rows = Vec::new();
    for s in &steps {
        let record = detail.steps.iter().find(|r| r.step_id == s.id);
        let attempts: Vec<&AttemptRecord> = detail
            .attempts
            .iter()
            .filter(|a| a.step_id == s.id)
            .collect();
        if attempts.is_empty() {
            let status = record.map_or(StepStatus::Pending, |r| r.status);
            rows.push(view! {
                <div class="gantt-row" data-step=s.id.clone()>
                    <span class="gantt-label mono">{s.id.clone()}</span>
                    <span class="gantt-track"><span class="gantt-note muted">{status.as_str()}</span></span>
                    <span class="gantt-dur muted">"–"</span>
                </div>
            }.into_any());
            continue;
        }
        let mut previous_end = record.and_then(|r| r.ready_at);
        for a in attempts {
            let stop = a.finished_at.unwrap_or(end);
            let wait_from = previous_end.unwrap_or(a.started_at).min(a.started_at);
            let waited = a.started_at - wait_from;
            let ran = stop - a.started_at;
            let hover = format!(
                "{} attempt {}: {} ({}), waited {}",
                s.id,
                a.attempt,
                format_duration(ran),
                a.status.as_str(),
                format_duration(waited)
            );
            rows.push(view! {
                <div class="gantt-row" data-step=s.id.clone() data-attempt=a.attempt title=hover.clone()>
                    <span class="gantt-label mono">{format!("{} #{}", s.id, a.attempt)}</span>
                    <span class="gantt-track">
                        <span class="gantt-wait" style=format!("left:{:.3}%;width:{:.3}%", pct(wait_from), pct(a.started_at) - pct(wait_from))></span>
                        <span class="gantt-bar" data-status=a.status.as_str()
                              style=format!("left:{:.3}%;width:{:.3}%", pct(a.started_at), pct(stop) - pct(a.started_at))>
                        </span>
                    </span>
                    <span class="gantt-dur mono">{format_duration(ran)}</span>
                </div>
            }.into_any());
            previous_end = Some(stop);
        }
    }
    // A time axis: round steps from the run's creation, 3 to 8 of them across.
    let ticks = axis_ticks(end - start)
        .into_iter()
        .map(|t| {
            view! { <span class="gantt-tick" style=format!("left:{:.3}%", pct(start + t))>{format!("+{}", format_duration(t))}</span> }
        })
        .collect_view();
    view! {
        <div class="gantt" role="table" aria-label="Timeline of step attempts">
            <div class="gantt-legend muted">
                <span><span class="swatch gantt-wait"></span>" waiting (queue or retry backoff)"</span>
                <span><span class="swatch gantt-bar"></span>" running"</span>
                <span>{format!("0 – {}", format_duration(end - start))}</span>
            </div>
            <div class="gantt-row gantt-axis" aria-hidden="true">
                <span class="gantt-label"></span>
                <span class="gantt-track">{ticks}</span>
                <span class="gantt-dur"></span>
            </div>
            {rows}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::axis_ticks;

    #[test]
    fn the_axis_has_a_few_round_ticks() {
        assert_eq!(axis_ticks(1_000), [0, 200, 400, 600, 800, 1000]);
        assert_eq!(axis_ticks(461), [0, 100, 200, 300, 400]);
        assert_eq!(axis_ticks(7), [0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(axis_ticks(90_000), [0, 20_000, 40_000, 60_000, 80_000]);
        for span in [1, 3, 99, 1_234, 86_400_000] {
            let n = axis_ticks(span).len();
            assert!((1..=8).contains(&n), "{span}: {n} ticks");
        }
    }
}
