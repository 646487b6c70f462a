//! Every semantic rule of a workflow document, each reporting with its path.
//!
//! Rules never stop at the first problem: a person fixing a file wants the whole list.
//! The order of checks is the order of the document (top-level fields, then each step),
//! so the list reads top to bottom like the file.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::template::{self, ROOTS};
use super::{
    is_identifier, is_slug, parse_duration, InputType, Problem, StepDef, TriggerDef, WorkflowDef,
};
use crate::catalog::{self, AGENTS};

/// Retry attempts above this are a typo, not a policy.
const MAX_ATTEMPTS: u32 = 100;
const MAX_STEPS: usize = 2_000;

/// Validates `def`; on success returns the step indices in dependency order.
pub(super) fn validate(def: &WorkflowDef) -> Result<Vec<usize>, Vec<Problem>> {
    let mut problems = Vec::new();
    check_header(def, &mut problems);
    let index = check_step_ids(&def.steps, &mut problems);
    check_needs(&def.steps, &index, &mut problems);
    let order = topo_order(&def.steps, &index, &mut problems);
    let ancestors = order.as_ref().map(|o| ancestors(&def.steps, &index, o));
    for (i, step) in def.steps.iter().enumerate() {
        check_step(
            def,
            i,
            step,
            ancestors.as_ref().map(|a| &a[i]),
            &mut problems,
        );
    }
    check_outputs(def, &mut problems);
    match order {
        Some(order) if problems.is_empty() => Ok(order),
        _ => Err(problems),
    }
}

fn check_header(def: &WorkflowDef, problems: &mut Vec<Problem>) {
    if !is_slug(&def.id) {
        problems.push(Problem::new(
            "id",
            format!("\"{}\" is not a slug: use lowercase letters, digits and single hyphens, at most 64 characters (e.g. nightly-report)", def.id),
        ));
    }
    if let Some(name) = &def.name {
        if name.trim().is_empty() {
            problems.push(Problem::new(
                "name",
                "must not be blank (leave it out to use the id)",
            ));
        } else if name.len() > 200 {
            problems.push(Problem::new("name", "is longer than 200 characters"));
        }
    }
    for (i, tag) in def.tags.iter().enumerate() {
        if tag.trim().is_empty() || tag.len() > 40 {
            problems.push(Problem::new(
                format!("tags[{i}]"),
                "a tag is 1 to 40 characters",
            ));
        }
    }
    for (name, input) in &def.inputs {
        let path = format!("inputs.{name}");
        if !is_identifier(name) {
            problems.push(Problem::new(&path, format!("\"{name}\" is not a valid input name: start with a letter or _, then letters, digits or _")));
        }
        if let Some(default) = &input.default {
            if !input.ty.accepts(default) {
                problems.push(Problem::new(
                    format!("{path}.default"),
                    format!(
                        "is {}, but the input's type is {}",
                        catalog::json_kind(default),
                        input.ty.as_str()
                    ),
                ));
            }
        }
    }
    let mut webhooks = 0;
    for (i, trigger) in def.triggers.iter().enumerate() {
        match trigger {
            TriggerDef::Cron(cron) => {
                let path = match cron {
                    super::CronDef::Expr(_) => format!("triggers[{i}].cron"),
                    super::CronDef::Full(_) => format!("triggers[{i}].cron.schedule"),
                };
                if let Err(e) = check_cron(cron.schedule()) {
                    problems.push(Problem::new(path, e));
                }
                if let super::CronDef::Full(super::CronFull {
                    timezone: Some(tz), ..
                }) = cron
                {
                    if let Err(e) = check_timezone(tz) {
                        problems.push(Problem::new(format!("triggers[{i}].cron.timezone"), e));
                    }
                }
            }
            TriggerDef::Webhook(hook) => {
                if let Some(name) = &hook.secret {
                    if !is_identifier(name) {
                        problems.push(Problem::new(
                            format!("triggers[{i}].webhook.secret"),
                            format!("\"{name}\" is not a secret name (letters, digits and _, as in FLOWSCOPE_SECRET_<NAME>)"),
                        ));
                    }
                }
                if let Some(name) = &hook.body_input {
                    let path = format!("triggers[{i}].webhook.body_input");
                    match def.inputs.get(name) {
                        None => problems.push(Problem::new(
                            path,
                            format!("\"{name}\" is not a declared input; declare it under inputs (type object) to receive the body"),
                        )),
                        Some(input)
                            if !matches!(
                                input.ty,
                                super::InputType::Object | super::InputType::Array
                            ) =>
                        {
                            problems.push(Problem::new(
                                path,
                                format!(
                                    "input \"{name}\" is a {}; the body is JSON, so it must be an object or array",
                                    input.ty.as_str()
                                ),
                            ))
                        }
                        Some(_) => {}
                    }
                }
                if hook.labels.len() > crate::search::MAX_LABELS {
                    problems.push(Problem::new(
                        format!("triggers[{i}].webhook.labels"),
                        format!(
                            "{} labels; a run has at most {}",
                            hook.labels.len(),
                            crate::search::MAX_LABELS
                        ),
                    ));
                }
                for (key, from) in &hook.labels {
                    let path = format!("triggers[{i}].webhook.labels.{key}");
                    if let Err(e) = crate::search::check_label_key(key) {
                        problems.push(Problem::new(path.clone(), e));
                    }
                    let header = from.strip_prefix("header:").map(str::trim);
                    if !(from.starts_with('/') || header.is_some_and(|h| !h.is_empty())) {
                        problems.push(Problem::new(
                            path,
                            format!(
                                "\"{from}\" is neither a JSON Pointer into the body (/ref, /repository/name) nor header:NAME"
                            ),
                        ));
                    }
                }
                webhooks += 1;
                if webhooks == 2 {
                    problems.push(Problem::new(
                        format!("triggers[{i}]"),
                        "a workflow has at most one webhook trigger",
                    ));
                }
            }
            TriggerDef::Manual(_) => {}
        }
    }
    if def.concurrency == Some(0) {
        problems.push(Problem::new(
            "concurrency",
            "must be at least 1 (leave it out for no limit)",
        ));
    }
    if let Some(t) = &def.timeout {
        check_duration("timeout", t, problems);
    }
    if let Some(handler) = &def.on_failure {
        if !super::is_slug(&handler.workflow) {
            problems.push(Problem::new(
                "on_failure.workflow",
                format!(
                    "\"{}\" is not a workflow id (lowercase letters, digits and hyphens)",
                    handler.workflow
                ),
            ));
        } else if handler.workflow == def.id {
            problems.push(Problem::new(
                "on_failure.workflow",
                "a workflow cannot handle its own failures (its handler's failure would start it again)",
            ));
        }
    }
    if let Some(r) = &def.retention {
        if let Some(t) = &r.max_age {
            check_duration("retention.max_age", t, problems);
        }
        if let Some(t) = &r.keep_failed {
            check_duration("retention.keep_failed", t, problems);
        }
        if r.max_runs == Some(0) {
            problems.push(Problem::new(
                "retention.max_runs",
                "must be at least 1 (leave it out to keep any number)",
            ));
        }
    }
    if def.steps.is_empty() {
        problems.push(Problem::new("steps", "a workflow needs at least one step"));
    } else if def.steps.len() > MAX_STEPS {
        problems.push(Problem::new(
            "steps",
            format!("{} steps; the limit is {MAX_STEPS}", def.steps.len()),
        ));
    }
}

/// Checks a 5-field (or 6-field, with seconds) cron expression: field by field here, and then
/// with croner, the parser the scheduler uses, where the `runtime` feature brings it. The
/// browser bundle does without croner (it would pull in `regex` and `chrono`, most of the
/// bundle's size), so the builder checks the shape and the server checks the rest on save.
pub(super) fn check_cron(expr: &str) -> Result<(), String> {
    let fail = |why: String| {
        format!(
            "\"{expr}\" is not a cron expression ({why}); e.g. \"0 2 * * *\" is 02:00 every day"
        )
    };
    cron_shape(expr).map_err(fail)?;
    #[cfg(feature = "runtime")]
    croner::Cron::new(expr)
        .with_seconds_optional()
        .parse()
        .map_err(|e| fail(e.to_string()))?;
    Ok(())
}

/// An IANA zone name, checked against the zone database where the `runtime` feature brings
/// it (the browser bundle does without the database; the server checks on save).
fn check_timezone(tz: &str) -> Result<(), String> {
    let shape_ok = !tz.is_empty()
        && tz.len() <= 64
        && tz
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-+".contains(&b));
    if !shape_ok {
        return Err(format!(
            "\"{tz}\" is not a time zone name; e.g. \"Europe/Berlin\" or \"UTC\""
        ));
    }
    #[cfg(feature = "runtime")]
    if tz.parse::<chrono_tz::Tz>().is_err() {
        return Err(format!(
            "\"{tz}\" is not a time zone of the IANA database; e.g. \"Europe/Berlin\" or \"UTC\""
        ));
    }
    Ok(())
}

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Field count, and each field's numbers, names, ranges, steps and lists within bounds.
pub fn cron_shape(expr: &str) -> Result<(), String> {
    let expr = expr.trim();
    if let Some(alias) = expr.strip_prefix('@') {
        return match alias.to_ascii_lowercase().as_str() {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "hourly" => Ok(()),
            _ => Err(format!("unknown alias @{alias}")),
        };
    }
    let fields: Vec<&str> = expr.split_whitespace().collect();
    // (name, min, max, names) per field; a sixth leading field is seconds.
    let mut specs: Vec<(&str, u32, u32, &[&str])> = vec![
        ("minute", 0, 59, &[]),
        ("hour", 0, 23, &[]),
        ("day of month", 1, 31, &[]),
        ("month", 1, 12, MONTHS),
        ("day of week", 0, 7, DAYS),
    ];
    match fields.len() {
        5 => {}
        6 => specs.insert(0, ("second", 0, 59, &[])),
        n => return Err(format!("{n} fields; expected 5 (or 6 with seconds)")),
    }
    for (field, (name, min, max, names)) in fields.iter().zip(specs) {
        let value = |v: &str| -> Result<u32, String> {
            if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
                // Months count from 1, days of the week from 0.
                return Ok(i as u32 + u32::from(min == 1));
            }
            let n: u32 = v
                .parse()
                .map_err(|_| format!("{name}: \"{v}\" is not a number"))?;
            if n < min || n > max {
                return Err(format!("{name}: {n} is outside {min}-{max}"));
            }
            Ok(n)
        };
        for item in field.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (item, None),
            };
            if let Some(s) = step {
                match s.parse::<u32>() {
                    Ok(n) if n > 0 => {}
                    _ => return Err(format!("{name}: step \"{s}\" is not a positive number")),
                }
            }
            // Day-of-month and day-of-week extras (L, W, #, ?) are left to croner.
            let extra = |c: char| matches!(c, 'L' | 'W' | '#' | '?');
            if (name == "day of month" || name == "day of week") && range.chars().any(extra) {
                continue;
            }
            if range == "*" {
                continue;
            }
            match range.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (value(a)?, value(b)?);
                    if a > b {
                        return Err(format!("{name}: range {a}-{b} runs backwards"));
                    }
                }
                None => {
                    value(range)?;
                }
            }
        }
    }
    Ok(())
}

fn check_duration(path: &str, text: &str, problems: &mut Vec<Problem>) {
    match parse_duration(text) {
        Ok(d) if d.is_zero() => problems.push(Problem::new(path, "must be longer than zero")),
        Ok(_) => {}
        Err(e) => problems.push(Problem::new(path, e)),
    }
}

/// Checks step ids and returns the index of each first occurrence.
fn check_step_ids<'a>(
    steps: &'a [StepDef],
    problems: &mut Vec<Problem>,
) -> HashMap<&'a str, usize> {
    let mut index = HashMap::new();
    for (i, step) in steps.iter().enumerate() {
        if !is_identifier(&step.id) {
            problems.push(Problem::new(
                format!("steps[{i}].id"),
                format!("\"{}\" is not a valid step id: start with a letter or _, then letters, digits or _ (it is used as steps.<id> in templates)", step.id),
            ));
        }
        if let Some(first) = index.get(step.id.as_str()) {
            problems.push(Problem::new(
                format!("steps[{i}].id"),
                format!(
                    "duplicate step id \"{}\" (first used by steps[{first}])",
                    step.id
                ),
            ));
        } else {
            index.insert(step.id.as_str(), i);
        }
    }
    index
}

fn check_needs(steps: &[StepDef], index: &HashMap<&str, usize>, problems: &mut Vec<Problem>) {
    for (i, step) in steps.iter().enumerate() {
        let mut seen = HashSet::new();
        for (j, need) in step.needs.iter().enumerate() {
            let path = format!("steps[{i}].needs[{j}]");
            if need == &step.id {
                problems.push(Problem::new(
                    path,
                    format!("step \"{need}\" cannot need itself"),
                ));
            } else if !index.contains_key(need.as_str()) {
                let hint = (problems.len() < MAX_HINTS)
                    .then(|| nearest(need, index.keys().copied()))
                    .flatten()
                    .map(|s| format!("; did you mean \"{s}\"?"))
                    .unwrap_or_default();
                problems.push(Problem::new(path, format!("unknown step \"{need}\"{hint}")));
            } else if !seen.insert(need) {
                problems.push(Problem::new(path, format!("\"{need}\" is listed twice")));
            }
        }
    }
}

/// Kahn's algorithm; on a cycle, reports it (`a → b → a`) and returns `None`.
fn topo_order(
    steps: &[StepDef],
    index: &HashMap<&str, usize>,
    problems: &mut Vec<Problem>,
) -> Option<Vec<usize>> {
    let n = steps.len();
    let mut indegree = vec![0usize; n];
    let mut children = vec![Vec::new(); n];
    for (i, step) in steps.iter().enumerate() {
        let deps: HashSet<usize> = step
            .needs
            .iter()
            .filter_map(|d| index.get(d.as_str()).copied())
            .filter(|&d| d != i)
            .collect();
        indegree[i] = deps.len();
        for d in deps {
            children[d].push(i);
        }
    }
    let mut ready: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).rev().collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop() {
        order.push(i);
        for &c in children[i].iter().rev() {
            indegree[c] -= 1;
            if indegree[c] == 0 {
                ready.push(c);
            }
        }
    }
    if order.len() == n {
        return Some(order);
    }
    let stuck: HashSet<usize> = (0..n).filter(|&i| indegree[i] > 0).collect();
    let cycle = find_cycle(steps, index, &stuck);
    let first = cycle.first().copied().unwrap_or(0);
    let names: Vec<&str> = cycle
        .iter()
        .chain(cycle.first())
        .map(|&i| steps[i].id.as_str())
        .collect();
    problems.push(Problem::new(
        format!("steps[{first}].needs"),
        format!("cycle: {}", names.join(" → ")),
    ));
    None
}

/// Walks `needs` edges inside the stuck set until a step repeats: that loop is a cycle.
fn find_cycle(
    steps: &[StepDef],
    index: &HashMap<&str, usize>,
    stuck: &HashSet<usize>,
) -> Vec<usize> {
    let Some(&start) = stuck.iter().min() else {
        return Vec::new();
    };
    let mut path = vec![start];
    let mut current = start;
    loop {
        let next = steps[current]
            .needs
            .iter()
            .filter_map(|d| index.get(d.as_str()).copied())
            .find(|d| stuck.contains(d) && *d != current);
        let Some(next) = next else { return path };
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut cycle = path.split_off(pos);
            // Report it in the direction of data flow, starting from the earliest step.
            cycle.reverse();
            if let Some(min_pos) = cycle
                .iter()
                .enumerate()
                .min_by_key(|(_, &s)| s)
                .map(|(p, _)| p)
            {
                cycle.rotate_left(min_pos);
            }
            return cycle;
        }
        path.push(next);
        current = next;
    }
}

/// For each step, the set of steps upstream of it (transitively).
fn ancestors(
    steps: &[StepDef],
    index: &HashMap<&str, usize>,
    order: &[usize],
) -> Vec<HashSet<usize>> {
    let mut result: Vec<HashSet<usize>> = vec![HashSet::new(); steps.len()];
    for &i in order {
        let mut set = HashSet::new();
        for d in steps[i]
            .needs
            .iter()
            .filter_map(|d| index.get(d.as_str()).copied())
        {
            set.insert(d);
            set.extend(result[d].iter().copied());
        }
        result[i] = set;
    }
    result
}

fn check_step(
    def: &WorkflowDef,
    i: usize,
    step: &StepDef,
    upstream: Option<&HashSet<usize>>,
    problems: &mut Vec<Problem>,
) {
    let path = format!("steps[{i}]");
    if let Some(timeout) = &step.timeout {
        check_duration(&format!("{path}.timeout"), timeout, problems);
    }
    if let Some(retry) = &step.retry {
        if retry.max_attempts == 0 || retry.max_attempts > MAX_ATTEMPTS {
            problems.push(Problem::new(
                format!("{path}.retry.max_attempts"),
                format!("must be between 1 and {MAX_ATTEMPTS}"),
            ));
        }
        if let Some(b) = &retry.backoff {
            check_duration(&format!("{path}.retry.backoff"), b, problems);
        }
        if let Some(b) = &retry.max_backoff {
            check_duration(&format!("{path}.retry.max_backoff"), b, problems);
        }
    }
    match catalog::agent(&step.agent) {
        None => {
            let hint = (problems.len() < MAX_HINTS)
                .then(|| nearest(&step.agent, AGENTS.iter().map(|a| a.kind)))
                .flatten()
                .map(|s| format!("did you mean \"{s}\"? "))
                .unwrap_or_default();
            let known: Vec<&str> = AGENTS.iter().map(|a| a.kind).collect();
            problems.push(Problem::new(
                format!("{path}.agent"),
                format!(
                    "unknown agent \"{}\"; {hint}known agents: {}",
                    step.agent,
                    known.join(", ")
                ),
            ));
        }
        Some(spec) => check_with(&path, step, spec, problems),
    }
    check_call(def, &path, step, problems);
    check_templates(def, &path, step, upstream, problems);
    if let Some(condition) = &step.condition {
        let cpath = format!("{path}.if");
        match template::condition(condition) {
            Ok(refs) => check_refs(def, &cpath, Some(step), upstream, &refs, problems),
            Err(e) => problems.push(Problem::new(cpath, e)),
        }
    }
    if let Some(list) = &step.for_each {
        let lpath = format!("{path}.for_each");
        match template::item_list(list) {
            Ok(refs) => {
                check_refs(def, &lpath, Some(step), upstream, &refs, problems);
                check_list_input(def, &lpath, list, problems);
            }
            Err(e) => problems.push(Problem::new(lpath, e)),
        }
    }
    match (step.concurrency, &step.for_each) {
        (Some(0), _) => problems.push(Problem::new(
            format!("{path}.concurrency"),
            "must be at least 1",
        )),
        (Some(n), _) if n > MAX_ITEM_CONCURRENCY => problems.push(Problem::new(
            format!("{path}.concurrency"),
            format!("must be at most {MAX_ITEM_CONCURRENCY}"),
        )),
        (Some(_), None) => problems.push(Problem::new(
            format!("{path}.concurrency"),
            "limits the items of a for_each at once: add for_each, or leave it out",
        )),
        _ => {}
    }
}

/// A `workflow` step names its callee literally, so calls can be checked on save (a cycle
/// between stored workflows is refused there); calling itself is refused here.
fn check_call(def: &WorkflowDef, path: &str, step: &StepDef, problems: &mut Vec<Problem>) {
    if step.agent != "workflow" {
        return;
    }
    let wpath = format!("{path}.with.workflow");
    match step.with.get("workflow").and_then(Value::as_str) {
        Some(id) if id.contains("{{") || id.contains("{%") => problems.push(Problem::new(
            wpath,
            "names the workflow to run literally, not as a template (calls are checked on save)",
        )),
        Some(id) if !id.trim().is_empty() && !is_slug(id) => problems.push(Problem::new(
            wpath,
            format!("\"{id}\" is not a workflow id (lowercase letters, digits and hyphens)"),
        )),
        Some(id) if id == def.id => problems.push(Problem::new(
            wpath,
            "a workflow cannot call itself (its run would never end)",
        )),
        _ => {}
    }
    if let Some(v) = step.with.get("version").and_then(Value::as_i64) {
        if v < 1 {
            problems.push(Problem::new(
                format!("{path}.with.version"),
                "versions count from 1",
            ));
        }
    }
}

/// `outputs:` templates read declared inputs, any step and `run`.
fn check_outputs(def: &WorkflowDef, problems: &mut Vec<Problem>) {
    let Some(outputs) = &def.outputs else {
        return;
    };
    if outputs.is_empty() {
        problems.push(Problem::new(
            "outputs",
            "names at least one output (leave it out for the outputs of the last steps)",
        ));
    }
    for (name, value) in outputs {
        if !is_identifier(name) {
            problems.push(Problem::new(
                format!("outputs.{name}"),
                format!("\"{name}\" is not a valid output name: start with a letter or _, then letters, digits or _"),
            ));
        }
        let mut strings = Vec::new();
        collect_strings(&format!("outputs.{name}"), value, &mut strings);
        for (spath, text) in strings {
            if !text.contains("{{") && !text.contains("{%") {
                continue;
            }
            match template::references(text) {
                Ok(refs) => check_refs(def, &spath, None, None, &refs, problems),
                Err(e) => problems.push(Problem::new(spath, e)),
            }
        }
    }
}

/// What the templates of a `for_each` step read besides the [`ROOTS`].
pub const ITEM_VARIABLES: &[&str] = &["item", "index"];

/// Items of one `for_each` step running at once, at most.
pub const MAX_ITEM_CONCURRENCY: u32 = 1000;

/// A `for_each` of a plain `inputs.<name>` declared as something other than a list cannot
/// work: said now, not at run time. (Through a filter anything may become a list.)
fn check_list_input(def: &WorkflowDef, path: &str, source: &str, problems: &mut Vec<Problem>) {
    let Some(name) = source.trim().strip_prefix("inputs.") else {
        return;
    };
    if let Some(input) = def.inputs.get(name) {
        if input.ty != InputType::Array {
            problems.push(Problem::new(
                path,
                format!(
                    "input \"{name}\" is a {}, not a list: declare it with type: array",
                    input.ty.as_str()
                ),
            ));
        }
    }
}

/// `with` against the agent's schema: unknown keys, missing required keys, wrong types.
fn check_with(path: &str, step: &StepDef, spec: &catalog::AgentSpec, problems: &mut Vec<Problem>) {
    for (key, value) in &step.with {
        match spec.fields.iter().find(|f| f.name == key) {
            None => {
                let names: Vec<&str> = spec.fields.iter().map(|f| f.name).collect();
                problems.push(Problem::new(
                    format!("{path}.with.{key}"),
                    format!(
                        "the {} agent has no setting \"{key}\"; it takes {}",
                        spec.kind,
                        names.join(", ")
                    ),
                ));
            }
            Some(field) => {
                if let Err(e) = catalog::check_value(field.ty, value) {
                    problems.push(Problem::new(format!("{path}.with.{key}"), e));
                }
            }
        }
    }
    for field in spec.fields.iter().filter(|f| f.required) {
        // Present but blank is as good as missing (the builder adds required keys empty).
        if step
            .with
            .get(field.name)
            .and_then(|v| v.as_str())
            .is_some_and(|s| s.trim().is_empty())
        {
            problems.push(Problem::new(
                format!("{path}.with.{}", field.name),
                format!(
                    "must not be empty: the {} agent needs it ({})",
                    spec.kind, field.help
                ),
            ));
        }
        if !step.with.contains_key(field.name) {
            problems.push(Problem::new(
                format!("{path}.with"),
                format!(
                    "the {} agent needs \"{}\" ({})",
                    spec.kind, field.name, field.help
                ),
            ));
        }
    }
    for group in spec.one_of {
        let set = group.iter().filter(|k| step.with.contains_key(**k)).count();
        if set != 1 {
            problems.push(Problem::new(
                format!("{path}.with"),
                format!(
                    "the {} agent needs exactly one of {}",
                    spec.kind,
                    group.join(", ")
                ),
            ));
        }
    }
}

/// Every string in `with` is a template: it must parse and read only upstream steps and declared inputs.
fn check_templates(
    def: &WorkflowDef,
    path: &str,
    step: &StepDef,
    upstream: Option<&HashSet<usize>>,
    problems: &mut Vec<Problem>,
) {
    let mut strings = Vec::new();
    for (key, value) in &step.with {
        collect_strings(&format!("{path}.with.{key}"), value, &mut strings);
    }
    for (spath, text) in strings {
        if !text.contains("{{") && !text.contains("{%") {
            continue;
        }
        let mut refs = match template::references(text) {
            Ok(r) => r,
            Err(e) => {
                problems.push(Problem::new(spath, e));
                continue;
            }
        };
        if step.for_each.is_some() {
            refs.unknown
                .retain(|v| !ITEM_VARIABLES.contains(&v.as_str()));
        }
        check_refs(def, &spath, Some(step), upstream, &refs, problems);
    }
}

/// What a template or condition reads: declared inputs, and only steps upstream of `step`
/// (any step for the run's `outputs:`, which has none).
fn check_refs(
    def: &WorkflowDef,
    spath: &str,
    step: Option<&StepDef>,
    upstream: Option<&HashSet<usize>>,
    refs: &template::References,
    problems: &mut Vec<Problem>,
) {
    let spath = spath.to_string();
    for var in &refs.unknown {
        problems.push(Problem::new(
            &spath,
            format!(
                "unknown variable \"{var}\"; templates can read {}",
                ROOTS.join(", ")
            ),
        ));
    }
    for name in &refs.inputs {
        if !def.inputs.contains_key(name) {
            problems.push(Problem::new(
                &spath,
                format!("input \"{name}\" is not declared under inputs"),
            ));
        }
    }
    for id in &refs.steps {
        let target = def.steps.iter().position(|s| &s.id == id);
        match (target, upstream) {
            (None, _) => problems.push(Problem::new(
                &spath,
                format!("refers to unknown step \"{id}\""),
            )),
            (Some(t), _) if step.is_some_and(|s| def.steps[t].id == s.id) => {
                problems.push(Problem::new(&spath, "a step cannot read its own output"))
            }
            (Some(t), Some(up)) if !up.contains(&t) => problems.push(Problem::new(
                &spath,
                format!(
                    "reads steps.{id} but \"{id}\" is not upstream of \"{}\"; add it to needs",
                    step.map_or("", |s| s.id.as_str())
                ),
            )),
            _ => {}
        }
    }
}

fn collect_strings<'a>(path: &str, value: &'a Value, out: &mut Vec<(String, &'a str)>) {
    match value {
        Value::String(s) => out.push((path.to_string(), s)),
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                collect_strings(&format!("{path}[{i}]"), v, out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                collect_strings(&format!("{path}.{k}"), v, out);
            }
        }
        _ => {}
    }
}

/// Problems that get a "did you mean" hint; past them, none: a hostile document with
/// thousands of unknown names must not cost names × candidates edit distances.
const MAX_HINTS: usize = 50;
/// Longest word, and most candidates, a hint looks at.
const HINT_WORD: usize = 64;
const HINT_CANDIDATES: usize = 500;

/// The closest candidate within two edits, for "did you mean" hints.
fn nearest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    if word.len() > HINT_WORD {
        return None;
    }
    candidates
        .filter(|c| c.len() <= HINT_WORD && c.len().abs_diff(word.len()) <= 2)
        .take(HINT_CANDIDATES)
        .filter_map(|c| edit_distance(word, c).map(|d| (d, c)))
        .min()
        .map(|(_, c)| c)
}

/// The edit distance between `a` and `b` when it is at most 2.
fn edit_distance(a: &str, b: &str) -> Option<usize> {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
        // Every path runs through this row: past 2 here, past 2 at the end.
        if row.iter().min().is_some_and(|m| *m > 2) {
            return None;
        }
    }
    Some(row[b.len()]).filter(|d| *d <= 2)
}
