//! Workflow definitions: the file format, its parser and the validated [`Workflow`] type.
//!
//! - `def`: the serde shape of a document ([`WorkflowDef`] and friends).
//! - `parse`: text (YAML or JSON) → [`WorkflowDef`], with the path of a shape error.
//! - `validate`: every semantic rule, collecting *all* problems with their paths.
//! - `template`: the `{{ … }}` references a step makes, checked against the DAG.
//!
//! A [`Workflow`] can only be made by validation, so code holding one may assume an acyclic
//! graph with no dangling `needs`, known agents and well-formed durations, cron and templates.

mod def;
mod parse;
pub mod template;
mod validate;

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;

pub use def::*;
pub use parse::{parse_def, to_json, to_yaml, Format, MAX_DOCUMENT_BYTES};
pub use template::{condition_uses_status, is_bounded, BOUNDED_FILTERS, STATUS_FUNCTIONS};
pub use validate::cron_shape;

/// One thing wrong with a document: where (`steps[2].needs[0]`) and what, in plain English.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// Where (`steps[2].with.url`).
    pub path: String,
    /// What is wrong, for people.
    pub message: String,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A validated workflow. Built only by [`Workflow::parse`] or [`Workflow::from_def`].
#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    def: WorkflowDef,
    /// Step indices in an order where every step comes after everything it needs.
    topo_order: Vec<usize>,
    timeout: Option<Duration>,
    /// By step index: the steps it needs, the steps that need it, and whether its `if:`
    /// calls a status function. Computed once here, not for every run.
    deps: Vec<Vec<usize>>,
    children: Vec<Vec<usize>>,
    checks_status: Vec<bool>,
    /// By step index: the secrets its `with` reads (`{{ secrets.NAME }}`), so a run can say
    /// one is missing before the step starts instead of failing each attempt.
    step_secrets: Vec<BTreeSet<String>>,
}

impl Workflow {
    /// Parses and validates a YAML or JSON document.
    pub fn parse(source: &str) -> Result<Workflow, Vec<Problem>> {
        let def = parse_def(source).map_err(|p| vec![p])?;
        Workflow::from_def(def)
    }

    /// Validates a definition (e.g. one the builder assembled), reporting every problem.
    pub fn from_def(def: WorkflowDef) -> Result<Workflow, Vec<Problem>> {
        let topo_order = validate::validate(&def)?;
        let timeout = def
            .timeout
            .as_deref()
            .map(parse_duration)
            .transpose()
            .ok()
            .flatten();
        let deps = def.need_indices();
        let mut children = vec![Vec::new(); def.steps.len()];
        for (i, d) in deps.iter().enumerate() {
            for &p in d {
                children[p].push(i);
            }
        }
        let checks_status = def
            .steps
            .iter()
            .map(|s| s.condition.as_deref().is_some_and(condition_uses_status))
            .collect();
        let step_secrets = def
            .steps
            .iter()
            .map(|s| {
                let mut names = BTreeSet::new();
                for v in s.with.values() {
                    secrets_in(v, &mut names);
                }
                names
            })
            .collect();
        Ok(Workflow {
            def,
            topo_order,
            timeout,
            deps,
            children,
            checks_status,
            step_secrets,
        })
    }

    /// The secrets step `i` reads.
    pub fn step_secrets(&self, i: usize) -> &BTreeSet<String> {
        &self.step_secrets[i]
    }

    /// Every secret its steps read.
    pub fn secrets_used(&self) -> BTreeSet<String> {
        self.step_secrets.iter().flatten().cloned().collect()
    }

    /// The definition as written.
    pub fn def(&self) -> &WorkflowDef {
        &self.def
    }
    /// Its id.
    pub fn id(&self) -> &str {
        &self.def.id
    }
    /// The display name: `name`, or the id when there is none.
    pub fn name(&self) -> &str {
        self.def.name.as_deref().unwrap_or(&self.def.id)
    }
    /// Its steps, in the file's order.
    pub fn steps(&self) -> &[StepDef] {
        &self.def.steps
    }
    /// Step indices, dependencies first.
    pub fn topo_order(&self) -> &[usize] {
        &self.topo_order
    }
    /// Its whole-run time limit.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
    /// The steps step `i` needs, by index.
    pub fn deps(&self, i: usize) -> &[usize] {
        &self.deps[i]
    }
    /// The steps that need step `i`, by index.
    pub fn children(&self, i: usize) -> &[usize] {
        &self.children[i]
    }
    /// Whether step `i`'s `if:` calls a status function (else `success()` is implied).
    pub fn checks_status(&self, i: usize) -> bool {
        self.checks_status[i]
    }
    /// Whether any step's `if:` calls a status function: only then can a step run after a
    /// cancel.
    pub fn any_checks_status(&self) -> bool {
        self.checks_status.iter().any(|&c| c)
    }

    /// Steps nothing depends on: a run's outputs are theirs when `outputs:` is absent.
    pub fn leaves(&self) -> impl Iterator<Item = &StepDef> {
        (0..self.steps().len())
            .filter(|&i| self.children(i).is_empty())
            .map(|i| &self.steps()[i])
    }

    /// The canonical YAML text of this workflow.
    pub fn to_yaml(&self) -> String {
        to_yaml(&self.def)
    }
}

/// Parses a duration such as `250ms`, `2s`, `10m`, `1h30m`; the error is a sentence.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("empty duration; write e.g. 500ms, 2s or 1h30m".into());
    }
    if trimmed.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "\"{text}\" has no unit; write e.g. {trimmed}s or {trimmed}ms"
        ));
    }
    humantime::parse_duration(trimmed)
        .map_err(|e| format!("\"{text}\" is not a duration ({e}); write e.g. 500ms, 2s or 1h30m"))
}

/// Whether `id` is a workflow slug: lowercase letters, digits and single hyphens, ≤ 64 chars.
pub fn is_slug(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-')
        && !id.contains("--")
}

/// Whether `id` is a step or input name usable in templates (`steps.fetch.output`).
pub fn is_identifier(id: &str) -> bool {
    let mut bytes = id.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && id.len() <= 64
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A unified diff between two versions' texts, for the versions view and the API.
pub fn diff_text(old: &str, new: &str, old_label: &str, new_label: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_label, new_label)
        .to_string()
}

/// The `secrets.NAME` a `with` value's templates read (only strings that mention `secrets`
/// are compiled: validation compiled them all once already).
fn secrets_in(value: &serde_json::Value, out: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::String(s)
            if s.contains("secrets") && (s.contains("{{") || s.contains("{%")) =>
        {
            if let Ok(refs) = template::references(s) {
                out.extend(refs.secrets);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| secrets_in(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| secrets_in(v, out)),
        _ => {}
    }
}
