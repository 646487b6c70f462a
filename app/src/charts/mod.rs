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
    /// The SVG element, links included.
    pub svg: String,
    /// The text alternative: what the chart shows, in words.
    pub summary: String,
}

/// A chart with its title and text alternative; the SVG is server-rendered text.
#[component]
pub fn ChartFigure(chart: Chart) -> impl IntoView {
    view! {
        <figure class="chart" data-chart=chart.kind.clone()>
            <figcaption>{chart.title.clone()}</figcaption>
            <div class="chart-svg" inner_html=chart.svg.clone()></div>
            <p class="chart-summary muted">{chart.summary.clone()}</p>
        </figure>
    }
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
