//! Charts (SPEC §5, §6): drawn with plotters as SVG on the server, sent to the page as text.
//!
//! Every mark that stands for runs is a link. The link layer is placed with the coordinate
//! mapping plotters drew with (`ChartContext::backend_coord`), so each link sits exactly on its
//! mark. Axis, grid and label colours are `currentColor`, so the chart follows the theme;
//! status colours are mid-tone and read on light and dark backgrounds alike.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// One rendered chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chart {
    /// `data-chart` attribute: which chart this is (tests and styles find it by this).
    pub kind: String,
    pub title: String,
    /// The SVG element, links included, drawn 600 px wide.
    pub svg: String,
    /// The same, drawn for a phone's width (empty until [`both_widths`] fills it).
    #[serde(default)]
    pub narrow: String,
    /// The text alternative: what the chart shows, in words.
    pub summary: String,
}

/// A chart with its title and text alternative; the SVG is server-rendered text, at two
/// widths, and the figure shows the one drawn for its own width (a container query), so the
/// labels stay readable on a phone. Hovering or focusing a mark shows what it opens.
#[component]
pub fn ChartFigure(chart: Chart) -> impl IntoView {
    let tip = RwSignal::new(None::<(String, f64, f64)>);
    let hover = move |ev: leptos::ev::MouseEvent| tip.set(tip_for(&ev));
    let focus = move |ev: leptos::ev::FocusEvent| tip.set(tip_for(&ev));
    let has_narrow = !chart.narrow.is_empty();
    let narrow = has_narrow.then(|| {
        view! { <div class="chart-svg narrow" inner_html=chart.narrow.clone()
            on:mouseover=hover on:focusin=focus on:mouseleave=move |_| tip.set(None) on:focusout=move |_| tip.set(None)></div> }
    });
    view! {
        <figure class="chart" data-chart=chart.kind.clone() class:has-narrow=has_narrow>
            <figcaption>{chart.title.clone()}</figcaption>
            <div class="chart-svg wide" inner_html=chart.svg.clone()
                on:mouseover=hover on:focusin=focus on:mouseleave=move |_| tip.set(None) on:focusout=move |_| tip.set(None)></div>
            {narrow}
            {move || tip.get().map(|(text, x, y)| view! {
                <div class="chart-tip" role="tooltip" style=format!("left: {x:.0}px; top: {y:.0}px")>{text}</div>
            })}
            <p class="chart-summary muted">{chart.summary.clone()}</p>
        </figure>
    }
}

/// The tooltip for the mark an event is on: its name, placed above it in the figure's
/// coordinates.
fn tip_for(ev: &leptos::web_sys::Event) -> Option<(String, f64, f64)> {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let el = ev.target()?.dyn_into::<leptos::web_sys::Element>().ok()?;
        let link = el.closest("a[data-chart-link]").ok()??;
        let text = link.get_attribute("aria-label")?;
        let figure = link.closest("figure").ok()??;
        let (at, box_) = (
            link.get_bounding_client_rect(),
            figure.get_bounding_client_rect(),
        );
        Some((
            text,
            at.left() + at.width() / 2.0 - box_.left(),
            at.top() - box_.top(),
        ))
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = ev;
        None
    }
}

/// A chart drawn at the wide and the narrow width (`draw` is called for each).
#[cfg(feature = "ssr")]
pub fn both_widths(draw: impl Fn() -> Option<Chart>) -> Option<Chart> {
    let wide = draw()?;
    let narrow = draw::at_width(draw::NARROW, &draw)
        .map(|c| c.svg)
        .unwrap_or_default();
    Some(Chart { narrow, ..wide })
}

#[cfg(feature = "ssr")]
mod agent_durations;
#[cfg(feature = "ssr")]
mod cost_per_day;
#[cfg(feature = "ssr")]
mod draw;
#[cfg(feature = "ssr")]
mod duration_histogram;
#[cfg(feature = "ssr")]
mod duration_over_time;
#[cfg(feature = "ssr")]
mod success_per_hour;
#[cfg(all(test, feature = "ssr"))]
mod tests;

#[cfg(feature = "ssr")]
pub use {
    agent_durations::agent_durations, cost_per_day::cost_per_day,
    duration_histogram::duration_histogram, duration_over_time::duration_over_time,
    success_per_hour::success_per_hour,
};
