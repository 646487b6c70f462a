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
            .x_labels(fit(6))
            .y_labels(5)
            .x_label_formatter(&|x| time_label(*x, x1 - x0))
            .y_label_formatter(&|y| seconds_label(*y))
        );
        chart
            .draw_series(points.iter().map(|(r, x, y)| {
                Circle::new((*x, *y), 4, status_color(r.status).mix(0.85).filled())
            }))
            .ok()?;
        let at: Vec<(i32, i32)> = points
            .iter()
            .map(|(_, x, y)| chart.backend_coord(&(*x, *y)))
            .collect();
        let groups = overlapping(&at);
        // Where each link sits: a point, or the middle of points drawn over each other.
        let centres: Vec<(i32, i32)> = groups
            .iter()
            .map(|g| {
                let n = g.len() as i32;
                let (sx, sy) = g
                    .iter()
                    .fold((0, 0), |(sx, sy), i| (sx + at[*i].0, sy + at[*i].1));
                (sx / n, sy / n)
            })
            .collect();
        for (g, &c) in groups.iter().zip(&centres) {
            if let [one] = g[..] {
                let (r, _, y) = points[one];
                marks.push(Mark {
                    href: trace_href(links, r),
                    title: format!(
                        "{} · {} · {} · {}",
                        r.workflow_id,
                        r.status.as_str(),
                        seconds_label(y),
                        crate::components::format_ms(r.created_at)
                    ),
                    kind: "run",
                    shape: Shape::Circle {
                        x: c.0,
                        y: c.1,
                        r: hit_radius(c, centres.iter().copied()),
                    },
                });
                continue;
            }
            // Overlapping points: the link lists exactly these runs in the monitor (their
            // creation times and run times bound them).
            let runs: Vec<&RunSummary> = g.iter().map(|i| points[*i].0).collect();
            let created = (
                runs.iter().map(|r| r.created_at).min().unwrap_or(0),
                runs.iter().map(|r| r.created_at).max().unwrap_or(0),
            );
            let ms: Vec<i64> = runs
                .iter()
                .filter_map(|r| run_time(r).map(|t| t.1.max(0)))
                .collect();
            let (lo, hi) = (
                ms.iter().copied().min().unwrap_or(0),
                ms.iter().copied().max().unwrap_or(0),
            );
            let workflow = runs
                .iter()
                .all(|r| r.workflow_id == runs[0].workflow_id)
                .then(|| runs[0].workflow_id.as_str());
            let failed = runs
                .iter()
                .filter(|r| r.status != RunStatus::Succeeded)
                .count();
            let spread = g
                .iter()
                .map(|i| {
                    let (dx, dy) = ((at[*i].0 - c.0) as f64, (at[*i].1 - c.1) as f64);
                    (dx * dx + dy * dy).sqrt().ceil() as i32
                })
                .max()
                .unwrap_or(0);
            marks.push(Mark {
                href: runs_href(
                    workflow,
                    &[
                        format!("from={}", created.0),
                        format!("to={}", created.1 + 1),
                        format!("min_ms={lo}"),
                        format!("max_ms={}", hi + 1),
                    ],
                ),
                title: format!(
                    "{} runs here ({} not succeeded) · {}–{} · open the list",
                    runs.len(),
                    failed,
                    seconds_label(lo as f64 / 1000.0),
                    seconds_label(hi as f64 / 1000.0)
                ),
                kind: "runs",
                shape: Shape::Circle {
                    x: c.0,
                    y: c.1,
                    r: spread + 6,
                },
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
            "The newest {} finished runs, from {} to {}; {} did not succeed. Click a point to open its trace; where points overlap, the list of their runs.",
            points.len(),
            seconds_label(ymin),
            seconds_label(ymax),
            failed
        ),
        narrow: String::new(),
    })
}
