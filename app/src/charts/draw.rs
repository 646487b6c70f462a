//! What every chart shares: sizes, colours, the link layer over marks, labels and links.
//! Each chart's own file `use`s all of it.

pub(super) use std::collections::BTreeMap;

pub(super) use engine::links::TraceLinks;
pub(super) use engine::records::{RunStatus, RunSummary};
pub(super) use engine::store::AttemptPoint;
pub(super) use plotters::coord::Shift;
pub(super) use plotters::prelude::*;
pub(super) use plotters::style::text_anchor::{HPos, Pos, VPos};

pub(super) use super::Chart;
pub(super) use crate::components::{civil, format_duration};

pub(super) const W: u32 = 600;
/// Points on the duration scatter, newest first.
pub(super) const MAX_POINTS: usize = 200;
pub(super) const H: u32 = 230;
pub(super) const HOUR_MS: i64 = 3_600_000;
pub(super) const DAY_MS: i64 = 86_400_000;
/// Replaced by `currentColor` after drawing: plotters only knows RGB.
pub(super) const INK: RGBColor = RGBColor(1, 1, 1);

pub(super) fn status_color(status: RunStatus) -> RGBColor {
    match status {
        RunStatus::Succeeded => RGBColor(46, 157, 91),
        RunStatus::Failed => RGBColor(214, 69, 69),
        RunStatus::TimedOut => RGBColor(224, 138, 30),
        RunStatus::Cancelled => RGBColor(138, 143, 152),
        RunStatus::Running | RunStatus::Queued => RGBColor(59, 130, 246),
        RunStatus::Waiting | RunStatus::Paused => RGBColor(168, 85, 247),
    }
}

/// Series colours for workflows (cost chart), chosen to differ on both themes.
pub(super) const PALETTE: [RGBColor; 6] = [
    RGBColor(59, 130, 246),
    RGBColor(224, 138, 30),
    RGBColor(46, 157, 91),
    RGBColor(168, 85, 247),
    RGBColor(214, 69, 69),
    RGBColor(20, 160, 170),
];

/// A link drawn over a mark.
pub(super) struct Mark {
    pub(super) href: String,
    pub(super) title: String,
    pub(super) kind: &'static str,
    pub(super) shape: Shape,
}

pub(super) enum Shape {
    Circle { x: i32, y: i32, r: i32 },
    Rect { x0: i32, y0: i32, x1: i32, y1: i32 },
}

pub(super) fn esc(text: &str) -> String {
    crate::escape_html(text)
}

/// The SVG plotters wrote, themed, labelled and with the link layer on top.
pub(super) fn finish(svg: String, label: &str, marks: &[Mark]) -> String {
    let mut svg = svg.replace("#010101", "currentColor").replacen(
        "<svg ",
        &format!("<svg role=\"group\" aria-label=\"{}\" ", esc(label)),
        1,
    );
    let mut layer = String::from("<g class=\"chart-links\">");
    for m in marks {
        let shape = match m.shape {
            Shape::Circle { x, y, r } => format!("<circle cx=\"{x}\" cy=\"{y}\" r=\"{r}\"/>"),
            Shape::Rect { x0, y0, x1, y1 } => format!(
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
                x0.min(x1),
                y0.min(y1),
                (x1 - x0).abs().max(2),
                (y1 - y0).abs().max(2)
            ),
        };
        layer.push_str(&format!(
            "<a href=\"{}\" data-chart-link=\"{}\"><title>{}</title>{shape}</a>",
            esc(&m.href),
            m.kind,
            esc(&m.title)
        ));
    }
    layer.push_str("</g></svg>");
    if let Some(end) = svg.rfind("</svg>") {
        svg.truncate(end);
    }
    svg.push_str(&layer);
    svg
}

/// A chart on `root` with the house margins, `y_area` pixels for the value labels.
macro_rules! chart_on {
    ($root:expr, $y_area:expr, $x:expr, $y:expr) => {
        ChartBuilder::on($root)
            .margin(10)
            .x_label_area_size(26)
            .y_label_area_size($y_area)
            .build_cartesian_2d($x, $y)
            .ok()?
    };
}

/// Draws the mesh in theme colours (labels and axis in `currentColor`, faint major lines
/// only), with the chart's own label settings as a method chain after the chart.
macro_rules! draw_mesh {
    ($chart:expr, $($settings:tt)*) => {
        $chart
            .configure_mesh()
            .label_style(text_style())
            .axis_style(INK.mix(0.5))
            .bold_line_style(INK.mix(0.12))
            .light_line_style(INK.mix(0.0))
            $($settings)*
            .draw()
            .ok()?
    };
}

// Path-scoped, so each chart file gets them with `use super::draw::*`.
pub(super) use {chart_on, draw_mesh};

pub(super) fn text_style() -> TextStyle<'static> {
    ("sans-serif", 12).into_font().color(&INK)
}

pub(super) fn area(svg: &mut String) -> DrawingArea<SVGBackend<'_>, Shift> {
    SVGBackend::with_string(svg, (W, H)).into_drawing_area()
}

/// Labels under categorical bars, centred on pixel positions from the chart's mapping.
pub(super) fn category_labels(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    labels: Vec<((i32, i32), String)>,
) -> Option<()> {
    let style = text_style().pos(Pos::new(HPos::Center, VPos::Top));
    for ((x, y), text) in labels {
        root.draw(&Text::new(text, (x, y + 6), style.clone()))
            .ok()?;
    }
    Some(())
}

/// Axis tick count for a count axis up to `max`: whole numbers only.
pub(super) fn count_labels(max: usize) -> usize {
    (max + 1).min(5)
}

pub(super) fn time_label(ms: i64, span: i64) -> String {
    let secs = ms.div_euclid(1000);
    let day = secs.div_euclid(86_400);
    let (h, m) = (secs.rem_euclid(86_400) / 3600, secs.rem_euclid(3600) / 60);
    if span <= 10 * 60_000 {
        format!("{h:02}:{m:02}:{:02}", secs.rem_euclid(60))
    } else if span <= 2 * DAY_MS {
        format!("{h:02}:{m:02}")
    } else {
        let (_, mo, d) = civil(day);
        format!("{mo:02}-{d:02}")
    }
}

/// Ticks for a log axis over `[lo, hi]`: 1-2-5 in each decade, or 1-2-3-5-7 when that gives
/// fewer than three (a narrow range of similar runs would get one tick, or none, from
/// plotters' powers of ten).
pub(super) fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let within = |mantissas: &[f64]| -> Vec<f64> {
        if !(lo > 0.0 && hi > lo && hi.is_finite()) {
            return Vec::new();
        }
        let (first, last) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
        (first..=last)
            .flat_map(|e| mantissas.iter().map(move |m| m * 10f64.powi(e)))
            .filter(|v| *v >= lo && *v <= hi)
            .collect()
    };
    let ticks = within(&[1.0, 2.0, 5.0]);
    if ticks.len() >= 3 {
        ticks
    } else {
        within(&[1.0, 2.0, 3.0, 5.0, 7.0])
    }
}

pub(super) fn seconds_label(s: f64) -> String {
    format_duration((s * 1000.0).round() as i64)
}

/// `/runs` with the given extra filters (already `key=value`).
pub(super) fn runs_href(workflow: Option<&str>, filters: &[String]) -> String {
    let mut parts: Vec<String> = workflow
        .map(|w| format!("workflow={}", engine::links::encode_component(w)))
        .into_iter()
        .collect();
    parts.extend(filters.iter().cloned());
    format!("/runs?{}", parts.join("&"))
}

pub(super) fn trace_href(links: &TraceLinks, r: &RunSummary) -> String {
    links.link(
        &r.id,
        r.trace_id.as_deref(),
        None,
        r.created_at,
        r.finished_at,
    )
}

pub(super) fn run_time(r: &RunSummary) -> Option<(i64, i64)> {
    Some((r.started_at?, r.finished_at? - r.started_at?))
}
