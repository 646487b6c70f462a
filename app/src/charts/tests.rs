use super::draw::*;
use super::*;

fn run(id: &str, status: RunStatus, start: i64, ms: i64, trace: Option<&str>) -> RunSummary {
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
        labels: Default::default(),
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
    let chart = duration_histogram(&runs, Some("w"), &TraceLinks::default()).expect("a chart");
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

/// Runs of similar length still get a readable y axis: at least three labelled ticks (a log
/// axis of powers of ten gave a 1.3–7 s range none).
#[test]
fn a_narrow_duration_range_gets_several_y_ticks() {
    let links = TraceLinks {
        grafana_url: None,
        tempo_uid: "tempo".into(),
    };
    let t0 = 1_700_000_000_000;
    let runs: Vec<RunSummary> = [2_500, 3_000, 3_500]
        .iter()
        .enumerate()
        .map(|(i, ms)| {
            run(
                &format!("r{i}"),
                RunStatus::Succeeded,
                t0 + i as i64 * 1000,
                *ms,
                None,
            )
        })
        .collect();
    let chart = duration_over_time(&runs, &links).expect("a chart");
    let labelled: Vec<i64> = [1_000, 2_000, 3_000, 5_000, 7_000, 10_000]
        .into_iter()
        .filter(|ms| {
            chart
                .svg
                .contains(&format!(">\n{}\n</text>", format_duration(*ms)))
        })
        .collect();
    assert!(labelled.len() >= 3, "y ticks {labelled:?} in {}", chart.svg);
    assert_eq!(log_ticks(1.25, 7.0), vec![2.0, 3.0, 5.0, 7.0]);
    assert_eq!(log_ticks(0.05, 0.2).len(), 3);
    assert!(log_ticks(0.0, 1.0).is_empty());
}

/// Runs drawn over each other share one link, to the monitor listing exactly them; a run
/// apart keeps its own link to its trace, small enough not to cover its neighbours.
#[test]
fn overlapping_points_open_a_list_of_their_runs() {
    let links = TraceLinks {
        grafana_url: Some("http://g".into()),
        tempo_uid: "tempo".into(),
    };
    let t0 = 1_700_000_000_000;
    // Three runs a second apart over ten minutes, of almost the same length: one spot.
    let mut runs: Vec<RunSummary> = (0..3)
        .map(|i| {
            run(
                &format!("r{i}"),
                RunStatus::Succeeded,
                t0 + i * 1000,
                1000 + i * 5,
                Some("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            )
        })
        .collect();
    runs.push(run(
        "far",
        RunStatus::Failed,
        t0 + 600_000,
        9_000,
        Some("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
    ));
    let chart = duration_over_time(&runs, &links).expect("a chart");
    let found = links_of(&chart.svg);
    assert_eq!(found.len(), 2, "{found:?}");
    let list = found
        .iter()
        .find(|l| l.0.starts_with("/runs?"))
        .expect("a list link");
    for part in [
        "workflow=w",
        &format!("from={t0}"),
        &format!("to={}", t0 + 2001),
        "min_ms=1000",
        "max_ms=1011",
    ] {
        assert!(list.0.contains(part), "{part} in {}", list.0);
    }
    assert!(
        chart
            .svg
            .contains("data-chart-link=\"runs\" aria-label=\"3 runs here (0 not succeeded)"),
        "{}",
        chart.svg
    );
    assert!(
        found.iter().any(|l| l.0.starts_with("http://g")),
        "the lone run opens its trace"
    );
    assert!(
        !chart.svg.contains("<title>"),
        "no native tooltip under the page's own"
    );

    // Points 10 px apart stay separate links, each within 5 px of its own point.
    assert_eq!(
        overlapping(&[(0, 0), (10, 0), (3, 4), (100, 100)]),
        vec![vec![0, 2], vec![1], vec![3]]
    );
    assert_eq!(hit_radius((0, 0), [(10, 0), (0, 0)].into_iter()), 5);
    assert_eq!(hit_radius((0, 0), std::iter::empty()), 7);
}

/// Every chart is drawn a second time for a phone's width, at the same text size.
#[test]
fn charts_are_drawn_for_a_narrow_width_too() {
    let t0 = 1_700_000_000_000;
    let runs: Vec<RunSummary> = (0..20)
        .map(|i| {
            run(
                &format!("r{i}"),
                RunStatus::Succeeded,
                t0 + i * 60_000,
                100 * (i + 1),
                None,
            )
        })
        .collect();
    let chart = both_widths(|| duration_histogram(&runs, Some("w"), &TraceLinks::default()))
        .expect("a chart");
    assert!(chart.svg.contains("width=\"600\""), "{}", &chart.svg[..200]);
    assert!(
        chart.narrow.contains("width=\"340\""),
        "{}",
        &chart.narrow[..200]
    );
    let sizes = |svg: &str| -> Vec<f64> {
        svg.split("font-size=\"")
            .skip(1)
            .filter_map(|t| t.split('"').next()?.parse().ok())
            .collect()
    };
    for svg in [&chart.svg, &chart.narrow] {
        let s = sizes(svg);
        assert!(
            !s.is_empty() && s.iter().all(|px| (11.5..=12.5).contains(px)),
            "{s:?}"
        );
    }
    // The narrow drawing leaves out labels that would collide, never shrinks them.
    let labels = |svg: &str| svg.matches("text-anchor=\"middle\"").count();
    assert!(
        labels(&chart.narrow) <= labels(&chart.svg),
        "{} vs {}",
        labels(&chart.narrow),
        labels(&chart.svg)
    );
    assert_eq!(
        links_of(&chart.narrow).len(),
        links_of(&chart.svg).len(),
        "every bar is a link at both widths"
    );
    // One bar has one label, with nothing beside it to collide with.
    let one = both_widths(|| duration_histogram(&runs[..1], Some("w"), &TraceLinks::default()))
        .expect("a chart of one run");
    assert_eq!(labels(&one.narrow), labels(&one.svg));
}
