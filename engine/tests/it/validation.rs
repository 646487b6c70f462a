//! One test per validation rule: each feeds a document with exactly that mistake and checks
//! the problem's path and message. A valid base document guards against false positives.

use engine::examples::EXAMPLES;
use engine::model::{parse_def, Problem, Workflow, MAX_DOCUMENT_BYTES};

const VALID: &str = r#"
id: nightly-report
name: Nightly report
inputs:
  date: { type: string, default: "today" }
triggers:
  - manual: {}
  - cron: "0 2 * * *"
  - webhook: {}
concurrency: 1
timeout: 10m
steps:
  - id: fetch
    agent: http
    with: { method: GET, url: "https://stats.example/api?date={{ inputs.date }}" }
    retry: { max_attempts: 3, backoff: 2s, max_backoff: 30s }
    timeout: 30s
  - id: count
    agent: transform
    needs: [fetch]
    with: { jq: ".steps.fetch.output.body.items | length" }
  - id: notify
    agent: notify
    needs: [count]
    with:
      webhook_url: "{{ secrets.SLACK_WEBHOOK }}"
      text: "{{ steps.count.output }} items on {{ inputs.date }}"
"#;

fn problems(doc: &str) -> Vec<Problem> {
    match Workflow::parse(doc) {
        Ok(_) => panic!("expected problems, the document was accepted:\n{doc}"),
        Err(p) => p,
    }
}

/// Asserts that some problem sits at `path` and mentions `needle`.
fn assert_problem(problems: &[Problem], path: &str, needle: &str) {
    assert!(
        problems
            .iter()
            .any(|p| p.path == path && p.message.contains(needle)),
        "no problem at {path:?} mentioning {needle:?}; got:\n{}",
        problems
            .iter()
            .map(|p| format!("  {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_spec_example_is_valid() {
    let w = Workflow::parse(VALID).expect("valid");
    assert_eq!(w.id(), "nightly-report");
    assert_eq!(w.steps().len(), 3);
    assert_eq!(w.timeout(), Some(std::time::Duration::from_secs(600)));
    let order: Vec<&str> = w
        .topo_order()
        .iter()
        .map(|&i| w.steps()[i].id.as_str())
        .collect();
    assert_eq!(order, ["fetch", "count", "notify"]);
}

#[test]
fn every_seeded_example_is_valid_and_hello_and_always_fails_are_there() {
    for (file, text) in EXAMPLES {
        Workflow::parse(text).unwrap_or_else(|p| panic!("{file}: {p:?}"));
    }
    let ids: Vec<String> = EXAMPLES
        .iter()
        .map(|(_, t)| parse_def(t).expect("parse").id)
        .collect();
    assert!(ids.contains(&"hello".to_string()) && ids.contains(&"always-fails".to_string()));
}

#[test]
fn an_unknown_step_in_needs_is_reported_with_its_path_and_a_hint() {
    let doc = VALID.replace("needs: [fetch]", "needs: [fech]");
    let p = problems(&doc);
    assert_problem(&p, "steps[1].needs[0]", "unknown step \"fech\"");
    assert_problem(&p, "steps[1].needs[0]", "did you mean \"fetch\"");
}

#[test]
fn a_cycle_in_needs_is_rejected_with_its_path() {
    let doc = "id: c\nsteps:\n- {id: a, agent: delay, needs: [c], with: {duration: 1s}}\n- {id: b, agent: delay, needs: [a], with: {duration: 1s}}\n- {id: c, agent: delay, needs: [b], with: {duration: 1s}}\n";
    let p = problems(doc);
    assert!(
        p.iter()
            .any(|p| p.message.starts_with("cycle: ") && p.message.contains("a → b → c → a")),
        "{p:?}"
    );
}

#[test]
fn a_step_needing_itself_is_rejected() {
    let p = problems("id: s\nsteps:\n- {id: a, agent: delay, needs: [a], with: {duration: 1s}}\n");
    assert_problem(&p, "steps[0].needs[0]", "cannot need itself");
}

#[test]
fn duplicate_step_ids_are_rejected() {
    let doc = VALID
        .replace("id: count", "id: fetch")
        .replace("needs: [count]", "needs: [fetch]");
    let p = problems(&doc);
    assert_problem(
        &p,
        "steps[1].id",
        "duplicate step id \"fetch\" (first used by steps[0])",
    );
}

#[test]
fn missing_ids_and_steps_are_shape_errors_with_paths() {
    let p = problems("name: no id\nsteps: []\n");
    assert!(p[0].message.contains("missing field `id`"), "{p:?}");
    let p = problems("id: x\nsteps:\n- agent: delay\n");
    assert_problem(&p, "steps[0]", "missing field `id`");
    let p = problems("id: x\nsteps: []\n");
    assert_problem(&p, "steps", "at least one step");
}

#[test]
fn ids_that_are_not_slugs_or_identifiers_are_rejected() {
    let p = problems(&VALID.replace("id: nightly-report", "id: Nightly Report!"));
    assert_problem(&p, "id", "is not a slug");
    let p = problems(
        &VALID
            .replace("id: count", "id: my-count")
            .replace("needs: [count]", "needs: [my-count]"),
    );
    assert_problem(&p, "steps[1].id", "not a valid step id");
}

#[test]
fn an_unknown_agent_is_rejected_with_the_known_ones_listed() {
    let p = problems(&VALID.replace("agent: transform", "agent: transfrom"));
    assert_problem(
        &p,
        "steps[1].agent",
        "unknown agent \"transfrom\"; did you mean \"transform\"?",
    );
    assert_problem(&p, "steps[1].agent", "http, transform, delay");
}

#[test]
fn agent_config_that_does_not_fit_the_schema_is_rejected_field_by_field() {
    let doc = VALID
        .replace(
            "with: { method: GET,",
            "with: { method: FETCH, verbose: true,",
        )
        .replace(
            "with: { jq: \".steps.fetch.output.body.items | length\" }",
            "with: {}",
        );
    let p = problems(&doc);
    assert_problem(&p, "steps[0].with.method", "expected one of GET, POST");
    assert_problem(
        &p,
        "steps[0].with.verbose",
        "the http agent has no setting \"verbose\"",
    );
    assert_problem(&p, "steps[1].with", "the transform agent needs \"jq\"");
}

#[test]
fn a_wrongly_typed_field_is_rejected_but_a_template_is_accepted_for_any_type() {
    let bad = "id: s\nsteps:\n- {id: a, agent: simulate, with: {failure_rate: high, output_bytes: 1.5}}\n";
    let p = problems(bad);
    assert_problem(
        &p,
        "steps[0].with.failure_rate",
        "expected a number, found a string",
    );
    assert_problem(&p, "steps[0].with.output_bytes", "expected an integer");
    let templated = "id: s\ninputs: {rate: {type: number}}\nsteps:\n- {id: a, agent: simulate, with: {failure_rate: '{{ inputs.rate }}'}}\n";
    Workflow::parse(templated).expect("templates stand for any type");
}

#[test]
fn exactly_one_of_prompt_or_messages_is_required_by_llm() {
    let doc = "id: l\nsteps:\n- {id: a, agent: llm, with: {base_url: 'http://x', model: m}}\n";
    assert_problem(
        &problems(doc),
        "steps[0].with",
        "exactly one of prompt, messages",
    );
}

#[test]
fn a_template_reading_a_step_that_is_not_upstream_is_rejected() {
    let doc = VALID.replace(
        "{{ steps.count.output }}",
        "{{ steps.count.output }} {{ steps.notify.output }}",
    );
    let p = problems(&doc);
    assert_problem(&p, "steps[2].with.text", "cannot read its own output");
    let doc = "id: t\nsteps:\n- {id: a, agent: delay, with: {duration: 1s}}\n- {id: b, agent: notify, with: {webhook_url: 'http://h', text: '{{ steps.a.output }}'}}\n";
    assert_problem(
        &problems(doc),
        "steps[1].with.text",
        "\"a\" is not upstream of \"b\"; add it to needs",
    );
    let doc = "id: t\nsteps:\n- {id: b, agent: notify, with: {webhook_url: 'http://h', text: '{{ steps.zz.output }}'}}\n";
    assert_problem(&problems(doc), "steps[0].with.text", "unknown step \"zz\"");
}

#[test]
fn a_transitive_upstream_step_may_be_read() {
    let doc = "id: t\nsteps:\n- {id: a, agent: delay, with: {duration: 1s}}\n- {id: b, agent: delay, needs: [a], with: {duration: 1s}}\n- {id: c, agent: notify, needs: [b], with: {webhook_url: 'http://h', text: '{{ steps.a.output }}'}}\n";
    Workflow::parse(doc).expect("a is upstream of c through b");
}

#[test]
fn malformed_templates_unknown_inputs_and_unknown_variables_are_rejected() {
    let doc = VALID.replace("{{ secrets.SLACK_WEBHOOK }}", "{{ secrets.SLACK_WEBHOOK");
    assert_problem(
        &problems(&doc),
        "steps[2].with.webhook_url",
        "template does not parse",
    );
    let doc = VALID.replace("items on {{ inputs.date }}", "items on {{ inputs.day }}");
    assert_problem(
        &problems(&doc),
        "steps[2].with.text",
        "input \"day\" is not declared",
    );
    let doc = VALID.replace("items on {{ inputs.date }}", "items on {{ env.HOME }}");
    assert_problem(
        &problems(&doc),
        "steps[2].with.text",
        "unknown variable \"env\"",
    );
}

#[test]
fn bad_durations_are_rejected_wherever_they_appear() {
    let doc = VALID
        .replace("timeout: 10m", "timeout: ten minutes")
        .replace("timeout: 30s", "timeout: 30")
        .replace("backoff: 2s,", "backoff: 0s,");
    let p = problems(&doc);
    assert_problem(&p, "timeout", "is not a duration");
    assert_problem(&p, "steps[0].timeout", "has no unit");
    assert_problem(&p, "steps[0].retry.backoff", "longer than zero");
    let p = problems("id: d\nsteps:\n- {id: a, agent: delay, with: {duration: soon}}\n");
    assert_problem(&p, "steps[0].with.duration", "is not a duration");
}

#[test]
fn bad_cron_expressions_are_rejected() {
    let p = problems(&VALID.replace("cron: \"0 2 * * *\"", "cron: \"0 25 * * *\""));
    assert_problem(&p, "triggers[1].cron", "is not a cron expression");
    let long_form = VALID.replace(
        "cron: \"0 2 * * *\"",
        "cron: { schedule: \"0 2 * * *\", timezone: Europe/Paris }",
    );
    Workflow::parse(&long_form).expect("long form");
}

#[test]
fn time_zones_and_webhook_secret_names_are_checked() {
    let p = problems(&VALID.replace(
        "cron: \"0 2 * * *\"",
        "cron: { schedule: \"0 2 * * *\", timezone: Mars/Olympus }",
    ));
    assert_problem(
        &p,
        "triggers[1].cron.timezone",
        "not a time zone of the IANA database",
    );
    let p = problems(&VALID.replace(
        "cron: \"0 2 * * *\"",
        "cron: { schedule: \"0 2 * * *\", timezone: \"Europe/Paris; rm\" }",
    ));
    assert_problem(&p, "triggers[1].cron.timezone", "is not a time zone name");
    let p = problems(&VALID.replace("- webhook: {}", "- webhook: { secret: \"not a name\" }"));
    assert_problem(&p, "triggers[2].webhook.secret", "is not a secret name");
    let p = problems(&VALID.replace("- webhook: {}", "- webhook: { secrett: X }"));
    assert!(
        !p.is_empty(),
        "an unknown key in the webhook trigger is a problem"
    );
    Workflow::parse(&VALID.replace("- webhook: {}", "- webhook: { secret: GITHUB_HOOK }"))
        .expect("a named secret");
    // The whole body to one input: declared, and able to hold JSON.
    let p = problems(&VALID.replace("- webhook: {}", "- webhook: { body_input: payload }"));
    assert_problem(
        &p,
        "triggers[2].webhook.body_input",
        "\"payload\" is not a declared input",
    );
    let p = problems(&VALID.replace("- webhook: {}", "- webhook: { body_input: date }"));
    assert_problem(
        &p,
        "triggers[2].webhook.body_input",
        "must be an object or array",
    );
    let whole = VALID
        .replace("- webhook: {}", "- webhook: { secret: GITHUB_HOOK, body_input: payload }")
        .replace(
            "  date: { type: string, default: \"today\" }",
            "  date: { type: string, default: \"today\" }\n  payload: { type: object, default: {} }",
        );
    Workflow::parse(&whole).expect("the body into a declared object input");
}

#[test]
fn retry_attempts_concurrency_and_webhook_count_are_bounded() {
    let p = problems(
        &VALID
            .replace("max_attempts: 3", "max_attempts: 0")
            .replace("concurrency: 1", "concurrency: 0")
            .replace("- webhook: {}", "- webhook: {}\n  - webhook: {}"),
    );
    assert_problem(&p, "steps[0].retry.max_attempts", "between 1 and 100");
    assert_problem(&p, "concurrency", "at least 1");
    assert_problem(&p, "triggers[3]", "at most one webhook");
}

#[test]
fn input_defaults_must_fit_their_type() {
    let p = problems(&VALID.replace("default: \"today\"", "default: 7"));
    assert_problem(
        &p,
        "inputs.date.default",
        "is a number, but the input's type is string",
    );
}

#[test]
fn unknown_fields_are_rejected_with_their_path() {
    let p = problems(&VALID.replace("concurrency: 1", "concurency: 1"));
    assert!(p[0].message.contains("unknown field `concurency`"), "{p:?}");
    let p = problems(&VALID.replace("timeout: 30s", "timeout: 30s\n    retries: 2"));
    assert!(
        p[0].path.starts_with("steps[0]") && p[0].message.contains("unknown field `retries`"),
        "{p:?}"
    );
}

#[test]
fn invalid_yaml_and_json_are_reported_with_their_location() {
    let p = problems("id: x\nsteps: [\n");
    assert!(
        p[0].message.starts_with("invalid YAML") && p[0].message.contains("line"),
        "{p:?}"
    );
    let p = problems("{\"id\": \"x\", \"steps\": [}");
    assert!(
        p[0].message.starts_with("invalid JSON") && p[0].message.contains("column"),
        "{p:?}"
    );
    let p = problems("- just\n- a list\n");
    assert!(p[0].message.contains("must be a map"), "{p:?}");
}

#[test]
fn json_documents_are_accepted_like_yaml() {
    let json =
        r#"{"id": "j", "steps": [{"id": "a", "agent": "delay", "with": {"duration": "1s"}}]}"#;
    assert_eq!(Workflow::parse(json).expect("json").id(), "j");
}

#[test]
fn documents_over_the_size_limit_are_refused_before_parsing() {
    let doc = format!("{VALID}\n#{}\n", "x".repeat(MAX_DOCUMENT_BYTES));
    assert!(problems(&doc)[0].message.contains("the limit is"));
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let doc = VALID
        .replace("needs: [fetch]", "needs: [fech]")
        .replace("agent: notify", "agent: notifyy")
        .replace("timeout: 10m", "timeout: forever");
    assert!(problems(&doc).len() >= 3);
}

#[test]
fn canonical_yaml_is_a_fixed_point_of_parse_and_print() {
    for (file, text) in EXAMPLES
        .iter()
        .map(|(f, t)| (*f, *t))
        .chain([("spec", VALID)])
    {
        let once = Workflow::parse(text).expect("valid").to_yaml();
        let twice = Workflow::parse(&once).expect("canonical parses").to_yaml();
        assert_eq!(once, twice, "{file}");
    }
}

#[test]
fn the_examples_are_stored_in_canonical_form() {
    for (file, text) in EXAMPLES {
        assert_eq!(
            Workflow::parse(text).expect("valid").to_yaml(),
            *text,
            "{file} is not canonical"
        );
    }
}

#[test]
fn a_required_setting_left_blank_is_reported_at_its_path() {
    let p = problems("id: w\nsteps:\n- id: a\n  agent: http\n  with:\n    url: '  '\n");
    assert_problem(&p, "steps[0].with.url", "must not be empty");
}

#[test]
fn the_browser_side_cron_check_catches_shape_errors_on_its_own() {
    use engine::model::cron_shape;
    for ok in [
        "0 2 * * *",
        "*/15 * * * *",
        "0 9-17 * * MON-FRI",
        "0 0 1 JAN,JUL *",
        "30 0 2 * * *",
        "@daily",
        "0 0 L * *",
    ] {
        assert_eq!(cron_shape(ok), Ok(()), "{ok}");
    }
    for (bad, why) in [
        ("0 25 * * *", "hour: 25 is outside 0-23"),
        ("* * *", "3 fields"),
        ("0 2 * * FUNDAY", "day of week: \"FUNDAY\" is not a number"),
        ("*/0 * * * *", "step \"0\""),
        ("0 5-2 * * *", "runs backwards"),
        ("@sometimes", "unknown alias"),
    ] {
        let e = cron_shape(bad).expect_err(bad);
        assert!(e.contains(why), "{bad}: {e}");
    }
}

#[test]
fn conditions_are_checked_with_the_path_of_each_mistake() {
    let step = |cond: &str| {
        format!(
            "id: conds\ninputs: {{mode: {{type: string, default: x}}}}\nsteps:\n\
             - {{id: a, agent: transform, with: {{jq: '1'}}}}\n\
             - {{id: b, agent: transform, with: {{jq: '1'}}}}\n\
             - id: c\n  agent: transform\n  needs: [a]\n  if: {}\n  with: {{jq: '1'}}\n",
            serde_json::to_string(cond).expect("json")
        )
    };
    let cases = [
        ("steps.a.output ==", "does not parse"),
        ("{{ steps.a.output }}", "without {{ }}"),
        ("range(1000000) | length > 1", "may call only"),
        ("success(1)", "takes no arguments"),
        ("steps.b.output", "not upstream"),
        ("steps.nope.output", "unknown step \"nope\""),
        ("inputs.mood == 'x'", "input \"mood\" is not declared"),
        ("secrets.TOKEN == 'x'", "cannot read secrets"),
        ("steps.a.output * 1000 > 5", "no arithmetic"),
        ("[steps.a.output] | length > 0", "no arithmetic"),
        ("success", "without calling it"),
        ("  ", "is empty"),
    ];
    for (cond, needle) in cases {
        assert_problem(&problems(&step(cond)), "steps[2].if", needle);
    }
    for good in [
        "steps.a.output and inputs.mode == 'x'",
        "always()",
        "failure() or steps.a.status == 'failed'",
        "not cancelled() and (steps.a.output | length) > 2",
    ] {
        let w = Workflow::parse(&step(good)).unwrap_or_else(|p| panic!("{good}: {p:?}"));
        // The canonical YAML keeps the condition and reads back the same.
        let again = Workflow::parse(&w.to_yaml()).expect("round trip");
        assert_eq!(again.steps()[2].condition.as_deref(), Some(good));
    }
}

#[test]
fn continue_on_error_round_trips_and_is_left_out_when_false() {
    let doc = "id: coe\nsteps:\n- {id: a, agent: transform, continue_on_error: true, with: {jq: '1'}}\n- {id: b, agent: transform, with: {jq: '1'}}\n";
    let w = Workflow::parse(doc).expect("valid");
    assert!(w.steps()[0].continue_on_error);
    let yaml = w.to_yaml();
    assert_eq!(yaml.matches("continue_on_error").count(), 1, "{yaml}");
    assert_problem(
        &problems("id: coe\nsteps:\n- {id: a, agent: transform, continue_on_error: maybe, with: {jq: '1'}}\n"),
        "steps[0].continue_on_error",
        "",
    );
}

#[test]
fn for_each_is_checked_with_the_path_of_each_mistake() {
    let step = |list: &str, extra: &str| {
        format!(
            "id: loops\ninputs: {{items: {{type: array, default: []}}, mode: {{type: string, default: x}}}}\n\
             steps:\n\
             - {{id: a, agent: transform, with: {{jq: '[1]'}}}}\n\
             - {{id: b, agent: transform, with: {{jq: '1'}}}}\n\
             - id: c\n  agent: simulate\n  needs: [a]\n  for_each: {}\n{extra}  with: {{output: '{{{{ item }}}} at {{{{ index }}}}'}}\n",
            serde_json::to_string(list).expect("json")
        )
    };
    let cases = [
        ("steps.a.output[", "does not parse"),
        ("{{ steps.a.output }}", "without {{ }}"),
        ("range(100000000)", "calls a function"),
        ("steps.b.output", "not upstream"),
        ("inputs.nope", "input \"nope\" is not declared"),
        ("inputs.mode", "input \"mode\" is a string, not a list"),
        ("secrets.LIST", "cannot read secrets"),
        ("[1, 2] ", "no arithmetic"),
        ("", "is empty"),
    ];
    for (list, needle) in cases {
        assert_problem(&problems(&step(list, "")), "steps[2].for_each", needle);
    }
    assert_problem(
        &problems(&step("inputs.items", "  concurrency: 0\n")),
        "steps[2].concurrency",
        "at least 1",
    );
    for good in ["inputs.items", "steps.a.output", "steps.a.output | reverse"] {
        let w = Workflow::parse(&step(good, "  concurrency: 5\n"))
            .unwrap_or_else(|p| panic!("{good}: {p:?}"));
        let again = Workflow::parse(&w.to_yaml()).expect("round trip");
        assert_eq!(again.steps()[2].for_each.as_deref(), Some(good));
        assert_eq!(again.steps()[2].concurrency, Some(5));
    }
    // `item` and `index` exist only in a step that loops; concurrency only limits a loop.
    let plain = "id: plain\nsteps:\n- {id: a, agent: simulate, concurrency: 2, with: {output: '{{ item }}'}}\n";
    let found = problems(plain);
    assert_problem(&found, "steps[0].with.output", "unknown variable \"item\"");
    assert_problem(&found, "steps[0].concurrency", "add for_each");
}
