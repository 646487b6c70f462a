use super::draw::*;

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
        narrow: String::new(),
    })
}
