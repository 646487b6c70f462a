use super::draw::*;

/// Success rate per hour over the last 24 hours; a bar opens that hour's runs.
pub fn success_per_hour(runs: &[RunSummary], workflow: Option<&str>, now: i64) -> Option<Chart> {
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
            .x_labels(fit(7))
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
        narrow: String::new(),
    })
}
