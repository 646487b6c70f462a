use super::draw::*;

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
            let pick = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1].0;
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
        narrow: String::new(),
    })
}
