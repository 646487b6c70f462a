//! Pieces shared by every page: the top navigation and the error note.

use leptos::prelude::*;
use leptos_router::hooks::use_location;

use crate::error::AppError;

/// The bar at the top of every page, marking the current section.
#[component]
pub fn TopNav() -> impl IntoView {
    let location = use_location();
    let current = move |prefix: &'static str| {
        move || {
            location
                .pathname
                .get()
                .starts_with(prefix)
                .then_some("page")
        }
    };
    view! {
        <header class="topnav">
            <a class="brand" href="/workflows">
                <img src="/favicon.svg" alt="" width="22" height="22"/>
                "Flowscope"
            </a>
            <nav aria-label="Main">
                <a href="/workflows" aria-current=current("/workflows")>"Workflows"</a>
                <a href="/runs" aria-current=current("/runs")>"Runs"</a>
            </nav>
            // The user and sign-out, or "No sign-in" on every page when sign-in is off.
            <crate::auth::UserMenu/>
        </header>
    }
}

/// A readable error message, shown where the failed content would have been.
#[component]
pub fn ErrorNote(
    error: AppError,
    /// What failed, in the person's terms: "Could not start the run".
    #[prop(default = "Could not load this")]
    lead: &'static str,
) -> impl IntoView {
    view! {
        <div class="error-note" role="alert">
            <strong>{format!("{lead}: ")}</strong>
            {error.to_string()}
        </div>
    }
}

/// A run or step state as a pill: an icon and the word, coloured by the state's token, so it
/// reads without colour too.
#[component]
pub fn StatusBadge(status: &'static str) -> impl IntoView {
    let icon = match status {
        "succeeded" => "✓",
        "failed" => "✕",
        "running" => "▶",
        "retrying" => "↻",
        "queued" | "pending" => "○",
        "cancelled" => "⊘",
        // Glyphs a stock font has (DejaVu): ⏱, ⧗ and ⏸ showed as empty boxes here.
        "timed_out" => "◷",
        "waiting" => "◔",
        "paused" => "∥",
        _ => "–",
    };
    view! {
        <span class="badge" data-status=status>
            <span aria-hidden="true">{icon}</span>
            {status.replace('_', " ")}
        </span>
    }
}

/// A page whose data failed to load: the message, and a 404 status during server rendering
/// when the thing asked for does not exist (the route must render async for the status to count).
#[component]
pub fn LoadError(error: AppError) -> impl IntoView {
    #[cfg(feature = "ssr")]
    if matches!(error, AppError::NotFound(_)) {
        if let Some(r) = use_context::<leptos_axum::ResponseOptions>() {
            r.set_status(http::StatusCode::NOT_FOUND);
        }
    }
    view! { <section class="page"><ErrorNote error/></section> }
}

/// Follows a Server-Sent Events stream while `url` gives one, and calls `refetch` after each
/// change, coalesced to one call per `delay`. `open` counts as a change, so whatever happened
/// between rendering and connecting is picked up. Browser only; nothing on the server.
#[allow(unused_variables)]
pub fn follow_events(
    url: impl Fn() -> Option<String> + 'static,
    delay: std::time::Duration,
    refetch: impl Fn() + Clone + 'static,
) {
    #[cfg(feature = "hydrate")]
    {
        use std::cell::Cell;
        use std::rc::Rc;
        use wasm_bindgen::closure::Closure;
        use wasm_bindgen::JsCast;

        // Local storage: an EventSource lives on the browser's one thread.
        let source = StoredValue::new_local(None::<web_sys::EventSource>);
        let close = move || source.update_value(|s| s.take().iter().for_each(|es| es.close()));
        let scheduled = Rc::new(Cell::new(false));
        Effect::new(move |_| {
            close();
            let Some(es) = url().and_then(|u| web_sys::EventSource::new(&u).ok()) else {
                return;
            };
            let (scheduled, refetch) = (scheduled.clone(), refetch.clone());
            let on_change = Closure::<dyn Fn()>::new(move || {
                if scheduled.replace(true) {
                    return;
                }
                let (scheduled, refetch) = (scheduled.clone(), refetch.clone());
                set_timeout(
                    move || {
                        scheduled.set(false);
                        refetch();
                    },
                    delay,
                );
            });
            for name in ["open", "change", "resync"] {
                let _ =
                    es.add_event_listener_with_callback(name, on_change.as_ref().unchecked_ref());
            }
            on_change.forget();
            source.set_value(Some(es));
        });
        on_cleanup(close);
    }
}

/// The frame of a DAG drawing: the SVG sized to the layout, its edges with arrowheads, and
/// the step boxes the page draws (`children`, positioned from the same layout).
#[component]
pub fn DagFrame(
    layout: engine::layout::Layout,
    class: &'static str,
    label: String,
    children: Children,
) -> impl IntoView {
    let edges = layout
        .edges
        .iter()
        .map(|e| view! { <path d=e.svg_path() class="edge" marker-end="url(#dag-arrow)"/> })
        .collect_view();
    view! {
        <div class="dag-scroll">
            <svg class=class width=layout.width height=layout.height viewBox=format!("0 0 {} {}", layout.width, layout.height)
                 role="group" aria-label=label>
                <defs>
                    <marker id="dag-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
                        <path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead"/>
                    </marker>
                </defs>
                <g>{edges}</g>
                <g>{children()}</g>
            </svg>
        </div>
    }
}

/// A tiny bar chart (runs per day): one bar per value, scaled to the largest.
#[component]
pub fn Sparkline(values: Vec<i64>, label: String) -> impl IntoView {
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let (w, h, gap) = (8.0, 24.0, 2.0);
    let width = values.len() as f64 * (w + gap);
    let bars = values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            // Empty days keep a 1px stub, so the week's shape reads even when sparse.
            let bh = if v == 0 { 1.0 } else { (v as f64 / max * h).max(2.0) };
            view! { <rect x=i as f64 * (w + gap) y=h - bh width=w height=bh><title>{v.to_string()}</title></rect> }
        })
        .collect_view();
    view! {
        <svg class="sparkline" width=width height=h viewBox=format!("0 0 {width} {h}") role="img" aria-label=label>{bars}</svg>
    }
}

pub use engine::records::format_duration;

/// A moment as people read it: the server renders it in UTC (it cannot know the reader's
/// zone, and hydration must see the same text); once in the browser it becomes the reader's
/// local time with how long ago (`2026-12-05 10:46 · 3 min ago`), the UTC time in its tooltip.
#[component]
pub fn LocalTime(ms: i64) -> impl IntoView {
    let text = RwSignal::new(format_ms(ms));
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| text.set(local_text(ms, js_sys::Date::now() as i64)));
    view! { <time datetime=iso_ms(ms) title=format_ms(ms) data-local-time="">{move || text.get()}</time> }
}

/// `2026-12-05 10:46 · 3 min ago` in the browser's time zone.
#[cfg(feature = "hydrate")]
fn local_text(ms: i64, now: i64) -> String {
    let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} · {}",
        d.get_full_year(),
        d.get_month() + 1,
        d.get_date(),
        d.get_hours(),
        d.get_minutes(),
        relative(ms, now)
    )
}

/// How long ago (or from now) `ms` is, at `now`: `just now`, `3 min ago`, `in 2 h`, `5 d ago`.
pub fn relative(ms: i64, now: i64) -> String {
    let delta = (now - ms) / 1000;
    let size = delta.abs();
    let amount = match size {
        0..=44 => return "just now".into(),
        45..=5_399 => format!("{} min", (size + 30) / 60),
        5_400..=129_599 => format!("{} h", (size + 1_800) / 3_600),
        _ => format!("{} d", (size + 43_200) / 86_400),
    };
    match delta >= 0 {
        true => format!("{amount} ago"),
        false => format!("in {amount}"),
    }
}

/// `2026-11-29T21:15:04Z`: a `<time>`'s machine-readable value.
pub fn iso_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (year, month, day) = civil(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `2026-11-29 21:15 UTC` from unix milliseconds, without a date library in the wasm bundle.
pub fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (year, month, day) = civil(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Hinnant's algorithm).
pub fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod time_tests {
    use super::*;

    #[test]
    fn relative_times_round_to_what_people_say() {
        let now = 1_800_000_000_000;
        assert_eq!(relative(now - 10_000, now), "just now");
        assert_eq!(relative(now - 3 * 60_000, now), "3 min ago");
        assert_eq!(relative(now - 89 * 60_000, now), "89 min ago");
        assert_eq!(relative(now - 2 * 3_600_000, now), "2 h ago");
        assert_eq!(relative(now - 3 * 86_400_000, now), "3 d ago");
        assert_eq!(relative(now + 5 * 60_000, now), "in 5 min");
        assert_eq!(iso_ms(1_764_450_904_000), "2025-11-29T21:15:04Z");
    }
}

#[cfg(test)]
mod tests {
    use super::{format_duration, format_ms};

    #[test]
    fn times_are_shown_as_utc_dates() {
        assert_eq!(format_ms(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_ms(1_795_987_500_000), "2026-11-29 21:25 UTC");
        assert_eq!(format_ms(951_782_400_000), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(-3), "0 ms");
        assert_eq!(format_duration(5), "5 ms");
        assert_eq!(format_duration(1_250), "1.25 s");
        assert_eq!(format_duration(185_000), "3 m 05 s");
        assert_eq!(format_duration(7_800_000), "2 h 10 m");
        assert_eq!(format_duration(90 * 86_400_000 + 3_600_000), "90 d 01 h");
    }
}
