use super::draw::*;

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
        narrow: String::new(),
    })
}
