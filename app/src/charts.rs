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
pub use render::*;

#[cfg(feature = "ssr")]
mod render {
    use std::collections::BTreeMap;

    use engine::links::TraceLinks;
    use engine::records::{RunStatus, RunSummary};
    use engine::store::AttemptPoint;
    use plotters::coord::Shift;
    use plotters::prelude::*;
    use plotters::style::text_anchor::{HPos, Pos, VPos};

    use super::Chart;
    use crate::components::format_duration;

    const W: u32 = 600;
    /// Points on the duration scatter, newest first.
    const MAX_POINTS: usize = 200;
    const H: u32 = 230;
    const HOUR_MS: i64 = 3_600_000;
    const DAY_MS: i64 = 86_400_000;
    /// Replaced by `currentColor` after drawing: plotters only knows RGB.
    const INK: RGBColor = RGBColor(1, 1, 1);

    fn status_color(status: RunStatus) -> RGBColor {
        match status {
            RunStatus::Succeeded => RGBColor(46, 157, 91),
            RunStatus::Failed => RGBColor(214, 69, 69),
            RunStatus::TimedOut => RGBColor(224, 138, 30),
            RunStatus::Cancelled => RGBColor(138, 143, 152),
            RunStatus::Running | RunStatus::Queued => RGBColor(59, 130, 246),
        }
    }

    /// Series colours for workflows (cost chart), chosen to differ on both themes.
    const PALETTE: [RGBColor; 6] = [
        RGBColor(59, 130, 246),
        RGBColor(224, 138, 30),
        RGBColor(46, 157, 91),
        RGBColor(168, 85, 247),
        RGBColor(214, 69, 69),
        RGBColor(20, 160, 170),
    ];

    /// A link drawn over a mark.
    struct Mark {
        href: String,
        title: String,
        kind: &'static str,
        shape: Shape,
    }

    enum Shape {
        Circle { x: i32, y: i32, r: i32 },
        Rect { x0: i32, y0: i32, x1: i32, y1: i32 },
    }

    fn esc(text: &str) -> String {
        crate::escape_html(text)
    }

    /// The SVG plotters wrote, themed, labelled and with the link layer on top.
    fn finish(svg: String, label: &str, marks: &[Mark]) -> String {
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

    fn text_style() -> TextStyle<'static> {
        ("sans-serif", 12).into_font().color(&INK)
    }

    fn area(svg: &mut String) -> DrawingArea<SVGBackend<'_>, Shift> {
        SVGBackend::with_string(svg, (W, H)).into_drawing_area()
    }

    /// Labels under categorical bars, centred on pixel positions from the chart's mapping.
    fn category_labels(
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
    fn count_labels(max: usize) -> usize {
        (max + 1).min(5)
    }

    fn time_label(ms: i64, span: i64) -> String {
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

    /// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Hinnant's algorithm).
    fn civil(days: i64) -> (i64, i64, i64) {
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

    fn seconds_label(s: f64) -> String {
        format_duration((s * 1000.0).round() as i64)
    }

    /// `/runs` with the given extra filters (already `key=value`).
    fn runs_href(workflow: Option<&str>, filters: &[String]) -> String {
        let mut parts: Vec<String> = workflow
            .map(|w| format!("workflow={}", engine::links::encode_component(w)))
            .into_iter()
            .collect();
        parts.extend(filters.iter().cloned());
        format!("/runs?{}", parts.join("&"))
    }

    fn trace_href(links: &TraceLinks, r: &RunSummary) -> String {
        links.link(
            &r.id,
            r.trace_id.as_deref(),
            None,
            r.created_at,
            r.finished_at,
        )
    }

    fn run_time(r: &RunSummary) -> Option<(i64, i64)> {
        Some((r.started_at?, r.finished_at? - r.started_at?))
    }

    /// Run duration over time: one point per finished run, coloured by status, each opening its
    /// trace.
    pub fn duration_over_time(runs: &[RunSummary], links: &TraceLinks) -> Option<Chart> {
        let points: Vec<(&RunSummary, i64, f64)> = runs
            .iter()
            // The newest runs only: every point is a link, and the page carries each twice.
            .take(MAX_POINTS)
            .filter_map(|r| {
                let (start, ms) = run_time(r)?;
                Some((r, start, (ms.max(0) as f64 / 1000.0).max(0.001)))
            })
            .collect();
        let first = points.iter().map(|p| p.1).min()?;
        let last = points.iter().map(|p| p.1).max()?;
        // At least a minute wide, the points centred in it; a little room at both ends.
        let slack = (60_000 - (last - first)).max(0) / 2;
        let pad = (last - first + 2 * slack) / 40;
        let (x0, x1) = (first - slack - pad, last + slack + pad);
        let ymax = points.iter().map(|p| p.2).fold(0.001, f64::max);
        let ymin = points.iter().map(|p| p.2).fold(ymax, f64::min);
        let (ylo, yhi) = (ymin / 2.0, ymax * 2.0);
        let mut svg = String::new();
        let mut marks = Vec::new();
        {
            let root = area(&mut svg);
            let mut chart = chart_on!(&root, 58, x0..x1, (ylo..yhi).log_scale());
            draw_mesh!(
                chart,
                .x_labels(6)
                .y_labels(5)
                .x_label_formatter(&|x| time_label(*x, x1 - x0))
                .y_label_formatter(&|y| seconds_label(*y))
            );
            chart
                .draw_series(points.iter().map(|(r, x, y)| {
                    Circle::new((*x, *y), 4, status_color(r.status).mix(0.85).filled())
                }))
                .ok()?;
            for (r, x, y) in &points {
                let (px, py) = chart.backend_coord(&(*x, *y));
                marks.push(Mark {
                    href: trace_href(links, r),
                    title: format!(
                        "{} · {} · {}",
                        r.status.as_str(),
                        seconds_label(*y),
                        crate::components::format_ms(r.created_at)
                    ),
                    kind: "run",
                    shape: Shape::Circle { x: px, y: py, r: 7 },
                });
            }
            root.present().ok()?;
        }
        let failed = points
            .iter()
            .filter(|p| p.0.status != RunStatus::Succeeded)
            .count();
        let label = format!("Run duration of {} runs over time", points.len());
        Some(Chart {
            kind: "duration".into(),
            title: "Run duration over time".into(),
            svg: finish(svg, &label, &marks),
            summary: format!(
                "The newest {} finished runs, from {} to {}; {} did not succeed. Click a point to open its trace.",
                points.len(),
                seconds_label(ymin),
                seconds_label(ymax),
                failed
            ),
        })
    }

    /// Histogram bucket edges in milliseconds.
    const EDGES_MS: &[i64] = &[
        0, 10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000, 1_800_000,
    ];

    /// How run durations spread: a bar per bucket opens the runs in it; a dot on top opens the
    /// trace of its newest run (the exemplar).
    pub fn duration_histogram(
        runs: &[RunSummary],
        workflow: Option<&str>,
        links: &TraceLinks,
    ) -> Option<Chart> {
        let timed: Vec<(&RunSummary, i64)> = runs
            .iter()
            .filter_map(|r| Some((r, run_time(r)?.1.max(0))))
            .collect();
        if timed.is_empty() {
            return None;
        }
        let bucket_of = |ms: i64| EDGES_MS.iter().rposition(|e| ms >= *e).unwrap_or(0);
        let mut counts = vec![0usize; EDGES_MS.len()];
        // Runs come newest first: the first traced run seen in a bucket is its exemplar.
        let mut exemplar: Vec<Option<&RunSummary>> = vec![None; EDGES_MS.len()];
        for (r, ms) in &timed {
            let b = bucket_of(*ms);
            counts[b] += 1;
            if r.trace_id.is_some() {
                exemplar[b].get_or_insert(r);
            }
        }
        let first = counts.iter().position(|c| *c > 0)?;
        let last = counts.iter().rposition(|c| *c > 0)?;
        let n = (last - first + 1) as i32;
        let top = *counts.iter().max()?;
        let ymax = top as f64 * 1.15;
        let label_of = |b: usize| match EDGES_MS.get(b + 1) {
            Some(hi) => format!("<{}", format_duration(*hi)),
            None => format!("≥{}", format_duration(EDGES_MS[b])),
        };
        let mut svg = String::new();
        let mut marks = Vec::new();
        {
            let root = area(&mut svg);
            let mut chart = chart_on!(&root, 44, 0f64..n as f64, 0f64..ymax);
            draw_mesh!(
                chart,
                .disable_x_mesh()
                .x_labels(0)
                .y_labels(count_labels(top))
                .y_label_formatter(&|y| format!("{y:.0}"))
            );
            let bars = (first..=last).map(|b| {
                let x = (b - first) as f64;
                Rectangle::new(
                    [(x + 0.12, 0.0), (x + 0.88, counts[b] as f64)],
                    RGBColor(59, 130, 246).mix(0.8).filled(),
                )
            });
            chart.draw_series(bars).ok()?;
            category_labels(
                &root,
                (first..=last)
                    .map(|b| {
                        (
                            chart.backend_coord(&((b - first) as f64 + 0.5, 0.0)),
                            label_of(b),
                        )
                    })
                    .collect(),
            )?;
            for b in first..=last {
                if counts[b] == 0 {
                    continue;
                }
                let x = (b - first) as f64;
                let (x0, y0) = chart.backend_coord(&(x + 0.12, counts[b] as f64));
                let (x1, y1) = chart.backend_coord(&(x + 0.88, 0.0));
                let lo = EDGES_MS[b];
                let mut filters = vec![format!("min_ms={lo}")];
                if let Some(hi) = EDGES_MS.get(b + 1) {
                    filters.push(format!("max_ms={hi}"));
                }
                marks.push(Mark {
                    href: runs_href(workflow, &filters),
                    title: format!("{} runs {}", counts[b], label_of(b)),
                    kind: "bucket",
                    shape: Shape::Rect { x0, y0, x1, y1 },
                });
                if let Some(r) = exemplar[b] {
                    let (cx, cy) = chart.backend_coord(&(x + 0.5, counts[b] as f64));
                    marks.push(Mark {
                        href: trace_href(links, r),
                        title: format!("Trace of the newest run {}", label_of(b)),
                        kind: "exemplar",
                        shape: Shape::Circle {
                            x: cx,
                            y: cy - 7,
                            r: 5,
                        },
                    });
                }
            }
            root.present().ok()?;
        }
        // The exemplar dots are drawn by the link layer itself: give them a visible fill.
        let svg = finish(svg, "Histogram of run durations", &marks);
        Some(Chart {
            kind: "histogram".into(),
            title: "Run duration histogram".into(),
            svg,
            summary: (first..=last)
                .filter(|b| counts[*b] > 0)
                .map(|b| format!("{} {}", counts[b], label_of(b)))
                .collect::<Vec<_>>()
                .join(", ")
                + ". Click a bar for its runs, its dot for a trace.",
        })
    }

    /// Success rate per hour over the last 24 hours; a bar opens that hour's runs.
    pub fn success_per_hour(
        runs: &[RunSummary],
        workflow: Option<&str>,
        now: i64,
    ) -> Option<Chart> {
        let start = (now.div_euclid(HOUR_MS) - 23) * HOUR_MS;
        let mut hours = [(0usize, 0usize); 24];
        for r in runs.iter().filter(|r| r.status.is_finished()) {
            let at = r.finished_at.unwrap_or(r.created_at);
            if at < start {
                continue;
            }
            let h = ((at - start) / HOUR_MS).clamp(0, 23) as usize;
            hours[h].0 += 1;
            if r.status == RunStatus::Succeeded {
                hours[h].1 += 1;
            }
        }
        if hours.iter().all(|h| h.0 == 0) {
            return None;
        }
        let mut svg = String::new();
        let mut marks = Vec::new();
        {
            let root = area(&mut svg);
            let mut chart = chart_on!(&root, 44, 0f64..24f64, 0f64..100f64);
            draw_mesh!(
                chart,
                .disable_x_mesh()
                .x_labels(7)
                .x_label_formatter(&|x| { time_label(start + (*x * HOUR_MS as f64) as i64, HOUR_MS * 24) })
                .y_labels(5)
                .y_label_formatter(&|y| format!("{y:.0} %"))
            );
            let rate = |h: &(usize, usize)| h.1 as f64 / h.0 as f64 * 100.0;
            chart
                .draw_series(
                    hours
                        .iter()
                        .enumerate()
                        .filter(|(_, h)| h.0 > 0)
                        .map(|(i, h)| {
                            let color = if h.1 == h.0 {
                                status_color(RunStatus::Succeeded)
                            } else if h.1 * 2 >= h.0 {
                                status_color(RunStatus::TimedOut)
                            } else {
                                status_color(RunStatus::Failed)
                            };
                            Rectangle::new(
                                [(i as f64 + 0.1, 0.0), (i as f64 + 0.9, rate(h).max(1.5))],
                                color.mix(0.85).filled(),
                            )
                        }),
                )
                .ok()?;
            for (i, h) in hours.iter().enumerate().filter(|(_, h)| h.0 > 0) {
                let (x0, y0) = chart.backend_coord(&(i as f64 + 0.1, 100.0));
                let (x1, y1) = chart.backend_coord(&(i as f64 + 0.9, 0.0));
                let from = start + i as i64 * HOUR_MS;
                marks.push(Mark {
                    href: runs_href(
                        workflow,
                        &[format!("from={from}"), format!("to={}", from + HOUR_MS)],
                    ),
                    title: format!(
                        "{}: {} of {} succeeded ({:.0} %)",
                        time_label(from, HOUR_MS),
                        h.1,
                        h.0,
                        rate(h)
                    ),
                    kind: "hour",
                    shape: Shape::Rect { x0, y0, x1, y1 },
                });
            }
            root.present().ok()?;
        }
        let (total, ok) = hours.iter().fold((0, 0), |a, h| (a.0 + h.0, a.1 + h.1));
        Some(Chart {
            kind: "success".into(),
            title: "Success rate per hour, last 24 hours".into(),
            svg: finish(svg, "Success rate per hour", &marks),
            summary: format!(
                "{ok} of {total} finished runs succeeded in the last 24 hours. Click an hour for its runs."
            ),
        })
    }

    /// Attempt duration by agent: the median as a bar, the 95th percentile as a tick; a bar
    /// opens the trace of the slowest attempt, with its span selected.
    pub fn agent_durations(
        attempts: &[AttemptPoint],
        runs: &[RunSummary],
        links: &TraceLinks,
    ) -> Option<Chart> {
        let mut by_agent: BTreeMap<&str, Vec<(i64, &AttemptPoint)>> = BTreeMap::new();
        for a in attempts {
            if let Some(end) = a.finished_at {
                by_agent
                    .entry(a.agent.as_str())
                    .or_default()
                    .push(((end - a.started_at).max(0), a));
            }
        }
        if by_agent.is_empty() {
            return None;
        }
        let stats: Vec<(&str, f64, f64, &AttemptPoint, usize)> = by_agent
            .iter_mut()
            .map(|(agent, v)| {
                v.sort_by_key(|(ms, _)| *ms);
                let pick =
                    |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1].0;
                let slowest = v[v.len() - 1].1;
                (
                    *agent,
                    pick(0.5) as f64 / 1000.0,
                    pick(0.95) as f64 / 1000.0,
                    slowest,
                    v.len(),
                )
            })
            .collect();
        let n = stats.len() as f64;
        let ymax = stats.iter().map(|s| s.2).fold(0.001, f64::max) * 1.15;
        let mut svg = String::new();
        let mut marks = Vec::new();
        {
            let root = area(&mut svg);
            let mut chart = chart_on!(&root, 58, 0f64..n, 0f64..ymax);
            draw_mesh!(
                chart,
                .disable_x_mesh()
                .x_labels(0)
                .y_labels(5)
                .y_label_formatter(&|y| seconds_label(*y))
            );
            chart
                .draw_series(stats.iter().enumerate().map(|(i, s)| {
                    Rectangle::new(
                        [
                            (i as f64 + 0.2, 0.0),
                            (i as f64 + 0.8, s.1.max(ymax / 200.0)),
                        ],
                        RGBColor(59, 130, 246).mix(0.8).filled(),
                    )
                }))
                .ok()?;
            chart
                .draw_series(stats.iter().enumerate().map(|(i, s)| {
                    PathElement::new(
                        vec![(i as f64 + 0.2, s.2), (i as f64 + 0.8, s.2)],
                        RGBColor(224, 138, 30).stroke_width(3),
                    )
                }))
                .ok()?;
            category_labels(
                &root,
                stats
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (chart.backend_coord(&(i as f64 + 0.5, 0.0)), s.0.to_string()))
                    .collect(),
            )?;
            for (i, (agent, p50, p95, slowest, count)) in stats.iter().enumerate() {
                let (x0, y0) = chart.backend_coord(&(i as f64 + 0.2, *p95));
                let (x1, y1) = chart.backend_coord(&(i as f64 + 0.8, 0.0));
                let run = runs.iter().find(|r| r.id == slowest.run_id);
                let href = match run {
                    Some(r) => links.link(
                        &r.id,
                        r.trace_id.as_deref(),
                        slowest.span_id.as_deref(),
                        r.created_at,
                        r.finished_at,
                    ),
                    None => format!("/runs/{}", slowest.run_id),
                };
                marks.push(Mark {
                    href,
                    title: format!(
                        "{agent}: {count} attempts, median {}, p95 {}; open the slowest",
                        seconds_label(*p50),
                        seconds_label(*p95)
                    ),
                    kind: "agent",
                    shape: Shape::Rect { x0, y0, x1, y1 },
                });
            }
            root.present().ok()?;
        }
        Some(Chart {
            kind: "agents".into(),
            title: "Attempt duration by agent (bar: median, tick: p95)".into(),
            svg: finish(svg, "Attempt duration by agent", &marks),
            summary: stats
                .iter()
                .map(|s| {
                    format!(
                        "{}: median {}, p95 {}",
                        s.0,
                        seconds_label(s.1),
                        seconds_label(s.2)
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
                + ". Click a bar for the slowest attempt's trace.",
        })
    }

    /// Model spend per day over the last 7 days, stacked by workflow; a segment opens that
    /// workflow's runs of that day.
    pub fn cost_per_day(attempts: &[AttemptPoint], now: i64) -> Option<Chart> {
        let day0 = now.div_euclid(DAY_MS) - 6;
        let mut cost: BTreeMap<&str, [f64; 7]> = BTreeMap::new();
        for a in attempts {
            let (Some(usd), day) = (a.cost_usd, a.started_at.div_euclid(DAY_MS) - day0) else {
                continue;
            };
            if (0..7).contains(&day) && usd > 0.0 {
                cost.entry(a.workflow_id.as_str()).or_insert([0.0; 7])[day as usize] += usd;
            }
        }
        if cost.is_empty() {
            return None;
        }
        let totals: Vec<f64> = (0..7).map(|d| cost.values().map(|c| c[d]).sum()).collect();
        let ymax = totals.iter().copied().fold(0.0001, f64::max) * 1.15;
        let mut svg = String::new();
        let mut marks = Vec::new();
        {
            let root = area(&mut svg);
            let mut chart = chart_on!(&root, 58, 0f64..7f64, 0f64..ymax);
            draw_mesh!(
                chart,
                .disable_x_mesh()
                .x_labels(0)
                .y_labels(5)
                .y_label_formatter(&|y| format!("${y:.2}"))
            );
            category_labels(
                &root,
                (0..7)
                    .map(|d| {
                        let at = chart.backend_coord(&(d as f64 + 0.5, 0.0));
                        (at, time_label((day0 + d as i64) * DAY_MS, 7 * DAY_MS))
                    })
                    .collect(),
            )?;
            let mut base = [0.0f64; 7];
            for (i, (workflow, days)) in cost.iter().enumerate() {
                let color = PALETTE[i % PALETTE.len()];
                let segments: Vec<(usize, f64, f64)> = (0..7)
                    .filter(|d| days[*d] > 0.0)
                    .map(|d| {
                        let seg = (d, base[d], base[d] + days[d]);
                        base[d] += days[d];
                        seg
                    })
                    .collect();
                chart
                    .draw_series(segments.iter().map(|(d, lo, hi)| {
                        Rectangle::new(
                            [(*d as f64 + 0.15, *lo), (*d as f64 + 0.85, *hi)],
                            color.mix(0.85).filled(),
                        )
                    }))
                    .ok()?
                    .label(workflow.to_string())
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                    });
                for (d, lo, hi) in segments {
                    let (x0, y0) = chart.backend_coord(&(d as f64 + 0.15, hi));
                    let (x1, y1) = chart.backend_coord(&(d as f64 + 0.85, lo));
                    let from = (day0 + d as i64) * DAY_MS;
                    marks.push(Mark {
                        href: runs_href(
                            Some(workflow),
                            &[format!("from={from}"), format!("to={}", from + DAY_MS)],
                        ),
                        title: format!(
                            "{workflow}, {}: ${:.4}",
                            time_label(from, 7 * DAY_MS),
                            hi - lo
                        ),
                        kind: "cost",
                        shape: Shape::Rect { x0, y0, x1, y1 },
                    });
                }
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .label_font(text_style())
                .border_style(INK.mix(0.2))
                .background_style(INK.mix(0.0))
                .draw()
                .ok()?;
            root.present().ok()?;
        }
        let total: f64 = totals.iter().sum();
        Some(Chart {
            kind: "cost".into(),
            title: "Model spend per day, last 7 days".into(),
            svg: finish(svg, "Model spend per day by workflow", &marks),
            summary: format!(
                "${total:.4} over 7 days across {} workflow{}. Click a segment for that day's runs.",
                cost.len(),
                if cost.len() == 1 { "" } else { "s" }
            ),
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn run(
            id: &str,
            status: RunStatus,
            start: i64,
            ms: i64,
            trace: Option<&str>,
        ) -> RunSummary {
            RunSummary {
                id: id.into(),
                workflow_id: "w".into(),
                workflow_version: 1,
                status,
                trigger: "api".into(),
                actor: None,
                parent_run_id: None,
                error: None,
                created_at: start,
                started_at: Some(start),
                finished_at: Some(start + ms),
                trace_id: trace.map(str::to_string),
                span_id: None,
            }
        }

        /// (href, first number pair of the shape) for each link in the layer.
        fn links_of(svg: &str) -> Vec<(String, f64, f64)> {
            svg.split("<a href=\"")
                .skip(1)
                .map(|part| {
                    let href = part
                        .split('"')
                        .next()
                        .unwrap_or_default()
                        .replace("&amp;", "&");
                    let num = |key: &str| {
                        part.split(&format!("{key}=\""))
                            .nth(1)
                            .and_then(|t| t.split('"').next())
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(f64::NAN)
                    };
                    let (x, y) = if part.contains("<circle") {
                        (num("cx"), num("cy"))
                    } else {
                        (num("x"), num("y"))
                    };
                    (href, x, y)
                })
                .collect()
        }

        #[test]
        fn points_link_to_traces_and_sit_on_the_plotted_circles() {
            let links = TraceLinks {
                grafana_url: Some("http://g".into()),
                tempo_uid: "tempo".into(),
            };
            let t0 = 1_700_000_000_000;
            let runs = vec![
                run(
                    "r3",
                    RunStatus::Failed,
                    t0 + 120_000,
                    4_000,
                    Some("cccccccccccccccccccccccccccccccc"),
                ),
                run(
                    "r2",
                    RunStatus::Succeeded,
                    t0 + 60_000,
                    200,
                    Some("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
                ),
                run("r1", RunStatus::Succeeded, t0, 50, None),
            ];
            let chart = duration_over_time(&runs, &links).expect("a chart");
            let found = links_of(&chart.svg);
            assert_eq!(found.len(), 3);
            // Grafana for runs with a trace, the run's own timeline otherwise.
            assert!(found[0]
                .0
                .starts_with("http://g/explore?schemaVersion=1&panes="));
            assert!(found[0].0.contains("cccccccccccccccccccccccccccccccc"));
            assert_eq!(found[2].0, "/runs/r1#timeline");
            // Each link's centre is a circle plotters drew (same mapping, same pixel).
            for (_, x, y) in &found {
                let drawn = format!("cx=\"{}\" cy=\"{}\"", *x as i32, *y as i32);
                assert!(
                    chart.svg.matches(&drawn).count() >= 2,
                    "no plotted circle at {drawn}"
                );
            }
            // Later runs are further right; the slower one higher (smaller y).
            assert!(found[0].1 > found[1].1 && found[1].1 > found[2].1);
            assert!(found[0].2 < found[1].2);
            assert!(chart.svg.contains("currentColor") && !chart.svg.contains("#010101"));
            assert!(chart.svg.starts_with("<svg role=\"group\" aria-label="));
        }

        #[test]
        fn histogram_bars_open_their_runs_and_dots_their_newest_trace() {
            let t0 = 1_700_000_000_000;
            let runs = vec![
                run(
                    "r3",
                    RunStatus::Succeeded,
                    t0 + 2,
                    3_000,
                    Some("dddddddddddddddddddddddddddddddd"),
                ),
                run("r2", RunStatus::Succeeded, t0 + 1, 40, None),
                run(
                    "r1",
                    RunStatus::Succeeded,
                    t0,
                    45,
                    Some("eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"),
                ),
            ];
            let chart =
                duration_histogram(&runs, Some("w"), &TraceLinks::default()).expect("a chart");
            let hrefs: Vec<String> = links_of(&chart.svg).into_iter().map(|l| l.0).collect();
            assert_eq!(
                hrefs,
                vec![
                    "/runs?workflow=w&min_ms=10&max_ms=50".to_string(),
                    // r2 is newer in that bucket but has no trace: r1 is the exemplar.
                    "/runs/r1#timeline".to_string(),
                    "/runs?workflow=w&min_ms=2500&max_ms=5000".to_string(),
                    "/runs/r3#timeline".to_string(),
                ]
            );
            assert!(
                chart.summary.starts_with("2 <50 ms, 1 <5.00 s"),
                "{}",
                chart.summary
            );
        }

        #[test]
        fn cost_is_stacked_per_day_and_workflow() {
            let now = 1_700_000_000_000;
            let attempt = |wf: &str, at: i64, usd: f64| AttemptPoint {
                run_id: "r".into(),
                workflow_id: wf.into(),
                agent: "llm".into(),
                started_at: at,
                finished_at: Some(at + 10),
                span_id: None,
                cost_usd: Some(usd),
            };
            let chart = cost_per_day(
                &[
                    attempt("a", now, 0.5),
                    attempt("b", now, 0.25),
                    attempt("a", now - DAY_MS, 1.0),
                ],
                now,
            )
            .expect("a chart");
            let hrefs: Vec<String> = links_of(&chart.svg).into_iter().map(|l| l.0).collect();
            let today = now.div_euclid(DAY_MS) * DAY_MS;
            assert!(hrefs.contains(&format!(
                "/runs?workflow=a&from={today}&to={}",
                today + DAY_MS
            )));
            assert!(hrefs.contains(&format!(
                "/runs?workflow=b&from={today}&to={}",
                today + DAY_MS
            )));
            assert_eq!(hrefs.len(), 3);
            assert!(
                chart
                    .summary
                    .starts_with("$1.7500 over 7 days across 2 workflows"),
                "{}",
                chart.summary
            );
            assert!(cost_per_day(&[], now).is_none());
        }
    }
}
