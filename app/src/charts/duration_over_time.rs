use super::draw::*;

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
        let ticks = log_ticks(ylo, yhi);
        let mut chart = chart_on!(
            &root,
            58,
            x0..x1,
            (ylo..yhi).log_scale().with_key_points(ticks)
        );
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
