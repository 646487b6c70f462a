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

/// The drawing's width for a wide container; [`NARROW`] for a phone's (each chart is drawn at
/// both, and the page shows the one that fits, so its text stays 12 px either way).
pub(super) const W: u32 = 600;
pub(super) const NARROW: u32 = 340;

std::thread_local! {
    /// The width charts on this thread draw at now (see [`at_width`]).
    static WIDTH: std::cell::Cell<u32> = const { std::cell::Cell::new(W) };
}

/// How many axis labels fit where `wide` fit at the wide width (time labels are ~60 px).
pub(super) fn fit(wide: usize) -> usize {
    let width = WIDTH.with(|w| w.get());
    (wide * width as usize / W as usize).max(2)
}

/// Runs `f` with charts drawn `width` wide.
pub(super) fn at_width<T>(width: u32, f: impl FnOnce() -> T) -> T {
    let was = WIDTH.with(|w| w.replace(width));
    let out = f();
    WIDTH.with(|w| w.set(was));
    out
}

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
        // Named by aria-label, not <title>: the page shows its own tooltip (at once, on
        // focus too), and a <title> would add the browser's, late, on top of it.
        layer.push_str(&format!(
            "<a href=\"{}\" data-chart-link=\"{}\" aria-label=\"{}\">{shape}</a>",
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

/// 12 px as drawn: plotters' SVG backend writes `font-size` as the size over 1.24.
pub(super) fn text_style() -> TextStyle<'static> {
    ("sans-serif", 12.0 * 1.24).into_font().color(&INK)
}

pub(super) fn area(svg: &mut String) -> DrawingArea<SVGBackend<'_>, Shift> {
    SVGBackend::with_string(svg, (WIDTH.with(|w| w.get()), H)).into_drawing_area()
}

/// Labels under categorical bars, centred on pixel positions from the chart's mapping; when
/// they would run into each other, every second (third, …) one is drawn.
pub(super) fn category_labels(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    labels: Vec<((i32, i32), String)>,
) -> Option<()> {
    let style = text_style().pos(Pos::new(HPos::Center, VPos::Top));
    let slot = labels
        .windows(2)
        .map(|w| (w[1].0 .0 - w[0].0 .0).unsigned_abs() as usize)
        .min()
        .unwrap_or(usize::MAX)
        .max(1);
    // 12 px sans-serif: about 7 px a character, and a gap.
    let widest = labels
        .iter()
        .map(|(_, t)| t.chars().count() * 7 + 8)
        .max()
        .unwrap_or(0);
    let every = widest.div_ceil(slot).max(1);
    for ((x, y), text) in labels.into_iter().step_by(every) {
        root.draw(&Text::new(text, (x, y + 6), style.clone()))
            .ok()?;
    }
    Some(())
}

/// Points closer than this (px) are drawn over each other: one link opens them as a list.
pub(super) const OVERLAP: i32 = 8;

/// Groups of points that overlap on screen (single-linkage at [`OVERLAP`]), each a list of
/// indices into `points`, in the order of their first member.
pub(super) fn overlapping(points: &[(i32, i32)]) -> Vec<Vec<usize>> {
    let mut group: Vec<usize> = (0..points.len()).collect();
    fn root(group: &mut [usize], mut i: usize) -> usize {
        while group[i] != i {
            group[i] = group[group[i]];
            i = group[i];
        }
        i
    }
    for i in 0..points.len() {
        for j in i + 1..points.len() {
            let (dx, dy) = (points[i].0 - points[j].0, points[i].1 - points[j].1);
            if dx * dx + dy * dy < OVERLAP * OVERLAP {
                let (a, b) = (root(&mut group, i), root(&mut group, j));
                group[a.max(b)] = a.min(b);
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..points.len() {
        let r = root(&mut group, i);
        groups.entry(r).or_default().push(i);
    }
    groups.into_values().collect()
}

/// A link's radius around a point at `at`: at most 7 px, and no further than half way to the
/// nearest other link, so the point a person clicks is the one that opens.
pub(super) fn hit_radius(at: (i32, i32), others: impl Iterator<Item = (i32, i32)>) -> i32 {
    let nearest = others
        .filter(|o| *o != at)
        .map(|o| {
            let (dx, dy) = ((o.0 - at.0) as f64, (o.1 - at.1) as f64);
            (dx * dx + dy * dy).sqrt()
        })
        .fold(f64::INFINITY, f64::min);
    ((nearest / 2.0).floor() as i32).clamp(4, 7)
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
