//! The builder's edits of a definition, as plain functions: what the forms and the graph call,
//! tested without a browser. Every edit leaves a definition the validator then judges.

use engine::catalog::{self, FieldType};
use engine::model::{
    parse_def, CronDef, CronFull, Empty, InputDef, InputType, Problem, StepDef, TriggerDef,
    WebhookDef, Workflow, WorkflowDef,
};
use serde_json::{Map, Value};

/// What a new workflow starts as.
pub const NEW_WORKFLOW: &str = "id: my-workflow\nname: My workflow\nsteps:\n- id: start\n  agent: simulate\n  with:\n    latency: 100ms\n";

/// Every problem of a document: its parse error, or what validation found.
pub fn check(source: &str) -> (Option<WorkflowDef>, Vec<Problem>) {
    match parse_def(source) {
        Err(p) => (None, vec![p]),
        Ok(def) => match Workflow::from_def(def.clone()) {
            Ok(_) => (Some(def), Vec::new()),
            Err(problems) => (Some(def), problems),
        },
    }
}

/// The index of the step a problem is about (`steps[3].with.url` → 3).
pub fn problem_step(path: &str) -> Option<usize> {
    path.strip_prefix("steps[")?.split(']').next()?.parse().ok()
}

/// A step id not used yet: `agent`, `agent_2`, `agent_3`, …
pub fn fresh_id(def: &WorkflowDef, agent: &str) -> String {
    let base = agent.replace('-', "_");
    let taken = |id: &str| def.steps.iter().any(|s| s.id == id);
    if !taken(&base) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}_{n}"))
        .find(|id| !taken(id))
        .unwrap_or(base)
}

/// Adds a step running `agent`, needing `after` when given; returns its id.
pub fn add_step(def: &mut WorkflowDef, agent: &str, after: Option<&str>) -> String {
    let id = fresh_id(def, agent);
    let mut with = Map::new();
    // Required fields start empty but present, so the form shows what to fill in.
    for f in catalog::agent(agent)
        .map_or(&[][..], |a| a.fields)
        .iter()
        .filter(|f| f.required)
    {
        with.insert(f.name.to_string(), Value::String(String::new()));
    }
    def.steps.push(StepDef {
        id: id.clone(),
        name: None,
        agent: agent.to_string(),
        needs: after.map(|a| vec![a.to_string()]).unwrap_or_default(),
        condition: None,
        for_each: None,
        concurrency: None,
        with,
        retry: None,
        timeout: None,
        continue_on_error: false,
    });
    id
}

/// Removes a step and every `needs` that pointed at it.
pub fn remove_step(def: &mut WorkflowDef, id: &str) {
    def.steps.retain(|s| s.id != id);
    for s in &mut def.steps {
        s.needs.retain(|n| n != id);
    }
}

/// Renames a step, keeping the edges to it.
pub fn rename_step(def: &mut WorkflowDef, from: &str, to: &str) {
    for s in &mut def.steps {
        if s.id == from {
            s.id = to.to_string();
        }
        for n in &mut s.needs {
            if n == from {
                *n = to.to_string();
            }
        }
    }
}

/// Adds or removes the edge `from → to`.
pub fn set_need(def: &mut WorkflowDef, to: &str, from: &str, on: bool) {
    if let Some(s) = def.steps.iter_mut().find(|s| s.id == to) {
        s.needs.retain(|n| n != from);
        if on {
            s.needs.push(from.to_string());
        }
    }
}

/// What a form field shows for a `with` value.
pub fn field_text(ty: FieldType, value: Option<&Value>) -> String {
    match (ty, value) {
        (_, None) => String::new(),
        (_, Some(Value::String(s))) => s.clone(),
        (FieldType::StringMap | FieldType::StringList | FieldType::Json, Some(v)) => {
            serde_json::to_string_pretty(v).unwrap_or_default()
        }
        (_, Some(v)) => v.to_string(),
    }
}

/// The `with` value a form field's text stands for; `None` clears the key. Text that does
/// not fit the type is kept as text, so validation can say what is wrong with it.
pub fn field_value(ty: FieldType, text: &str) -> Option<Value> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    if t.contains("{{") {
        return Some(Value::String(text.to_string()));
    }
    let parsed = match ty {
        FieldType::Integer => t.parse::<i64>().ok().map(Value::from),
        FieldType::Number => t
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
        FieldType::Boolean => t.parse::<bool>().ok().map(Value::Bool),
        FieldType::StringMap | FieldType::StringList | FieldType::Json => {
            serde_json::from_str(t).ok()
        }
        _ => None,
    };
    Some(parsed.unwrap_or_else(|| Value::String(text.to_string())))
}

/// Adds a step running `agent` beside `beside`: needing what it needs, so the two run in
/// parallel. Returns its id.
pub fn add_parallel_step(def: &mut WorkflowDef, agent: &str, beside: &str) -> String {
    let needs = def
        .steps
        .iter()
        .find(|s| s.id == beside)
        .map(|s| s.needs.clone())
        .unwrap_or_default();
    let id = add_step(def, agent, None);
    if let Some(s) = def.steps.iter_mut().find(|s| s.id == id) {
        s.needs = needs;
    }
    id
}

/// Whether `to` is `from` or already follows it: an edge `from → to` would then close a cycle
/// (refused by the drag gesture before the validator has to say so).
pub fn depends_on(def: &WorkflowDef, from: &str, to: &str) -> bool {
    let mut pending = vec![from.to_string()];
    let mut seen = std::collections::HashSet::new();
    while let Some(id) = pending.pop() {
        if id == to {
            return true;
        }
        if !seen.insert(id.clone()) {
            continue;
        }
        if let Some(s) = def.steps.iter().find(|s| s.id == id) {
            pending.extend(s.needs.iter().cloned());
        }
    }
    false
}

/// `"a, b ,,c"` → `["a", "b", "c"]`, each once.
pub fn parse_tags(text: &str) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for t in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if !tags.iter().any(|x| x == t) {
            tags.push(t.to_string());
        }
    }
    tags
}

/// Adds a string input named `input`, `input_2`, …; returns its name.
pub fn add_input(def: &mut WorkflowDef) -> String {
    let name = (1..)
        .map(|n| {
            if n == 1 {
                "input".to_string()
            } else {
                format!("input_{n}")
            }
        })
        .find(|n| !def.inputs.contains_key(n))
        .unwrap_or_default();
    def.inputs.insert(
        name.clone(),
        InputDef {
            ty: InputType::String,
            default: None,
            description: None,
        },
    );
    name
}

/// Renames an input in place (the Run form keeps its order). False when `to` is taken or empty.
pub fn rename_input(def: &mut WorkflowDef, from: &str, to: &str) -> bool {
    rename_key(&mut def.inputs, from, to)
}

/// Renames `from` to `to` where it stands in `map`; false (and nothing changed) when `to`,
/// trimmed, is empty or another entry's name.
fn rename_key<V>(map: &mut indexmap::IndexMap<String, V>, from: &str, to: &str) -> bool {
    let to = to.trim();
    if to.is_empty() || (to != from && map.contains_key(to)) {
        return false;
    }
    *map = std::mem::take(map)
        .into_iter()
        .map(|(k, v)| {
            if k == from {
                (to.to_string(), v)
            } else {
                (k, v)
            }
        })
        .collect();
    true
}

/// The default a form's text stands for: JSON for the typed inputs (`3`, `true`, `[1]`), the
/// text itself for strings; empty clears it. Text that does not fit is kept as a string, so
/// validation says what is wrong with it.
pub fn input_default(ty: InputType, text: &str) -> Option<Value> {
    if text.trim().is_empty() {
        return None;
    }
    if ty == InputType::String {
        return Some(Value::String(text.to_string()));
    }
    Some(serde_json::from_str(text.trim()).unwrap_or_else(|_| Value::String(text.to_string())))
}

/// What a default shows in the form (the inverse of [`input_default`]).
pub fn default_text(value: Option<&Value>) -> String {
    match value {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// The input types, in the order the form offers them.
pub const INPUT_TYPES: [InputType; 6] = [
    InputType::String,
    InputType::Number,
    InputType::Integer,
    InputType::Boolean,
    InputType::Object,
    InputType::Array,
];

pub fn input_type(name: &str) -> InputType {
    INPUT_TYPES
        .into_iter()
        .find(|t| t.as_str() == name)
        .unwrap_or(InputType::String)
}

/// Whether the workflow may be run by hand (a `manual` trigger, or no triggers at all).
pub fn has_manual(def: &WorkflowDef) -> bool {
    def.triggers
        .iter()
        .any(|t| matches!(t, TriggerDef::Manual(_)))
}

/// Adds or removes the `manual` trigger.
pub fn set_manual(def: &mut WorkflowDef, on: bool) {
    def.triggers.retain(|t| !matches!(t, TriggerDef::Manual(_)));
    if on {
        def.triggers.insert(0, TriggerDef::Manual(Empty {}));
    }
}

/// The schedules, with their places in `triggers`.
pub fn crons(def: &WorkflowDef) -> Vec<(usize, CronDef)> {
    def.triggers
        .iter()
        .enumerate()
        .filter_map(|(i, t)| match t {
            TriggerDef::Cron(c) => Some((i, c.clone())),
            _ => None,
        })
        .collect()
}

/// A schedule in its shortest form: the bare expression unless a zone or catch-up is set.
pub fn cron(schedule: &str, timezone: &str, catch_up: bool) -> CronDef {
    let timezone = timezone.trim();
    if timezone.is_empty() && !catch_up {
        CronDef::Expr(schedule.trim().to_string())
    } else {
        CronDef::Full(CronFull {
            schedule: schedule.trim().to_string(),
            timezone: (!timezone.is_empty()).then(|| timezone.to_string()),
            catch_up,
        })
    }
}

/// Replaces the trigger at `index` with `cron`, or removes it (`None`).
pub fn set_cron(def: &mut WorkflowDef, index: usize, cron: Option<CronDef>) {
    if !matches!(def.triggers.get(index), Some(TriggerDef::Cron(_))) {
        return;
    }
    match cron {
        Some(c) => def.triggers[index] = TriggerDef::Cron(c),
        None => {
            def.triggers.remove(index);
        }
    }
}

/// Adds a daily schedule (02:00 UTC), a starting point to edit.
pub fn add_cron(def: &mut WorkflowDef) {
    def.triggers
        .push(TriggerDef::Cron(CronDef::Expr("0 2 * * *".to_string())));
}

/// The webhook trigger, if there is one.
pub fn webhook(def: &WorkflowDef) -> Option<&WebhookDef> {
    def.triggers.iter().find_map(|t| match t {
        TriggerDef::Webhook(w) => Some(w),
        _ => None,
    })
}

/// Adds (empty) or removes the webhook trigger.
pub fn set_webhook(def: &mut WorkflowDef, on: bool) {
    let had = webhook(def).cloned();
    def.triggers
        .retain(|t| !matches!(t, TriggerDef::Webhook(_)));
    if on {
        def.triggers
            .push(TriggerDef::Webhook(had.unwrap_or_default()));
    }
}

/// Changes the webhook trigger's settings in place.
pub fn edit_webhook(def: &mut WorkflowDef, f: impl FnOnce(&mut WebhookDef)) {
    if let Some(w) = def.triggers.iter_mut().find_map(|t| match t {
        TriggerDef::Webhook(w) => Some(w),
        _ => None,
    }) {
        f(w);
    }
}

/// Adds a label to the webhook's runs, named `label` (or `label_2`, …), its source still to
/// be filled in; returns its name.
pub fn add_hook_label(def: &mut WorkflowDef) -> String {
    let mut added = String::new();
    edit_webhook(def, |w| {
        added = (1..)
            .map(|n| match n {
                1 => "label".to_string(),
                n => format!("label_{n}"),
            })
            .find(|k| !w.labels.contains_key(k))
            .unwrap_or_default();
        w.labels.insert(added.clone(), String::new());
    });
    added
}

/// Renames a webhook label where it stands; false (and nothing changed) when `to` is empty
/// or another label's name.
pub fn rename_hook_label(def: &mut WorkflowDef, from: &str, to: &str) -> bool {
    let mut ok = false;
    edit_webhook(def, |w| ok = rename_key(&mut w.labels, from, to));
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::model::to_yaml;

    fn def(yaml: &str) -> WorkflowDef {
        parse_def(yaml).expect("parses")
    }

    #[test]
    fn visual_edits_round_trip_through_yaml_and_validate() {
        let mut d = def(NEW_WORKFLOW);
        let http = add_step(&mut d, "http", Some("start"));
        assert_eq!(http, "http");
        // Added with its required field empty: the validator names it.
        let (_, problems) = check(&to_yaml(&d));
        assert!(
            problems.iter().any(|p| p.path == "steps[1].with.url"),
            "{problems:?}"
        );
        assert_eq!(
            problems
                .iter()
                .filter_map(|p| problem_step(&p.path))
                .collect::<Vec<_>>(),
            vec![1]
        );
        d.steps[1].with.insert(
            "url".into(),
            field_value(FieldType::String, "http://x/y").unwrap(),
        );
        let yaml = to_yaml(&d);
        let (back, problems) = check(&yaml);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(back.unwrap(), d, "YAML → definition → YAML is lossless");
    }

    #[test]
    fn renaming_and_removing_keep_edges_consistent() {
        let mut d = def(NEW_WORKFLOW);
        add_step(&mut d, "simulate", Some("start"));
        assert_eq!(d.steps[1].id, "simulate");
        add_step(&mut d, "simulate", Some("simulate"));
        assert_eq!(d.steps[2].id, "simulate_2");
        rename_step(&mut d, "simulate", "middle");
        assert_eq!(d.steps[2].needs, vec!["middle"]);
        set_need(&mut d, "simulate_2", "start", true);
        assert_eq!(d.steps[2].needs, vec!["middle", "start"]);
        remove_step(&mut d, "middle");
        assert_eq!(d.steps[1].needs, vec!["start"]);
        assert!(check(&to_yaml(&d)).1.is_empty());
    }

    #[test]
    fn field_text_and_values_follow_the_field_type() {
        assert_eq!(field_value(FieldType::Integer, "42"), Some(Value::from(42)));
        assert_eq!(
            field_value(FieldType::Integer, "4x"),
            Some(Value::from("4x")),
            "kept for the validator"
        );
        assert_eq!(
            field_value(FieldType::Number, "{{ inputs.n }}"),
            Some(Value::from("{{ inputs.n }}"))
        );
        assert_eq!(
            field_value(FieldType::Json, r#"{"a": 1}"#),
            Some(serde_json::json!({"a": 1}))
        );
        assert_eq!(field_value(FieldType::String, "  "), None);
        assert_eq!(
            field_text(FieldType::Json, Some(&serde_json::json!([1]))),
            "[\n  1\n]"
        );
        assert_eq!(problem_step("steps[12].needs[0]"), Some(12));
        assert_eq!(problem_step("inputs.x"), None);
    }

    #[test]
    fn parallel_steps_share_needs_and_cycles_are_seen() {
        let mut d = def(NEW_WORKFLOW);
        let b = add_step(&mut d, "simulate", Some("start"));
        let c = add_parallel_step(&mut d, "simulate", &b);
        assert_eq!(d.steps[2].needs, vec!["start"], "beside {b}, not after it");
        assert!(depends_on(&d, &c, "start"));
        assert!(!depends_on(&d, &c, &b), "siblings");
        assert!(depends_on(&d, "start", "start"));
        assert!(check(&to_yaml(&d)).1.is_empty());
    }

    #[test]
    fn workflow_settings_round_trip_through_yaml() {
        let mut d = def(NEW_WORKFLOW);
        d.tags = parse_tags(" nightly, billing,, nightly ");
        assert_eq!(d.tags, vec!["nightly", "billing"]);
        d.concurrency = Some(3);
        d.timeout = Some("10m".into());
        let first = add_input(&mut d);
        let second = add_input(&mut d);
        assert_eq!((first.as_str(), second.as_str()), ("input", "input_2"));
        assert!(rename_input(&mut d, "input", "order"));
        assert!(!rename_input(&mut d, "order", "input_2"), "taken");
        assert_eq!(
            d.inputs.keys().collect::<Vec<_>>(),
            ["order", "input_2"],
            "order kept"
        );
        d.inputs["input_2"].ty = input_type("integer");
        d.inputs["input_2"].default = input_default(InputType::Integer, "3");
        assert_eq!(d.inputs["input_2"].default, Some(Value::from(3)));
        assert_eq!(default_text(d.inputs["input_2"].default.as_ref()), "3");
        set_manual(&mut d, true);
        add_cron(&mut d);
        let (i, _) = crons(&d)[0];
        set_cron(&mut d, i, Some(cron("*/5 * * * *", "Europe/Paris", false)));
        set_webhook(&mut d, true);
        edit_webhook(&mut d, |w| w.secret = Some("HOOK".into()));
        let yaml = to_yaml(&d);
        assert!(
            yaml.contains("Europe/Paris") && yaml.contains("HOOK"),
            "{yaml}"
        );
        let (back, problems) = check(&yaml);
        assert!(problems.is_empty(), "{problems:?}\n{yaml}");
        let back = back.expect("parses");
        assert_eq!(back, d, "lossless");
        assert!(has_manual(&back));
        assert_eq!(
            webhook(&back).and_then(|w| w.secret.as_deref()),
            Some("HOOK")
        );
        // A wrong default is kept for the validator, which names the input.
        d.inputs["input_2"].default = input_default(InputType::Integer, "three");
        let (_, problems) = check(&to_yaml(&d));
        assert!(
            problems
                .iter()
                .any(|p| p.path.starts_with("inputs.input_2")),
            "{problems:?}"
        );
        set_cron(&mut d, i, None);
        set_manual(&mut d, false);
        set_webhook(&mut d, false);
        assert!(d.triggers.is_empty());
    }

    #[test]
    fn webhook_labels_are_added_renamed_in_place_and_written_to_the_yaml() {
        let mut d = def("id: hook\ntriggers:\n  - webhook: { secret: HOOK }\nsteps:\n  - { id: a, agent: transform, with: { jq: '.' } }\n");
        assert_eq!(add_hook_label(&mut d), "label");
        assert_eq!(add_hook_label(&mut d), "label_2");
        // A new label has no source yet: validation says what it needs, with its path.
        let (_, problems) = check(&to_yaml(&d));
        assert!(
            problems
                .iter()
                .any(|p| p.path == "triggers[0].webhook.labels.label"
                    && p.message.contains("header:NAME")),
            "{problems:?}"
        );
        edit_webhook(&mut d, |w| {
            w.labels.insert("label".into(), "/ref".into());
            w.labels
                .insert("label_2".into(), "header:X-GitHub-Event".into());
        });
        assert!(rename_hook_label(&mut d, "label", "branch"));
        assert!(!rename_hook_label(&mut d, "label_2", "branch"), "taken");
        assert!(!rename_hook_label(&mut d, "label_2", "  "), "empty");
        assert!(rename_hook_label(&mut d, "label_2", "event"));
        let yaml = to_yaml(&d);
        let (back, problems) = check(&yaml);
        assert!(problems.is_empty(), "{problems:?}");
        let labels: Vec<(String, String)> = webhook(&back.expect("parses"))
            .expect("a webhook")
            .labels
            .clone()
            .into_iter()
            .collect();
        assert_eq!(
            labels,
            vec![
                ("branch".to_string(), "/ref".to_string()),
                ("event".to_string(), "header:X-GitHub-Event".to_string()),
            ],
            "renamed where they stood, through the YAML"
        );
    }
}
