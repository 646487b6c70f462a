//! The `{{ … }}` references of a step's config, found with the real template engine.
//!
//! Validation uses them to check that a step reads only upstream steps' outputs and declared
//! inputs; the engine renders the same strings with the same engine (minijinja) at run time.

use std::collections::BTreeSet;

use minijinja::Environment;

/// The roots a template may read.
pub const ROOTS: &[&str] = &["inputs", "steps", "run", "secrets"];

/// What one template string reads.
#[derive(Debug, Default)]
pub struct References {
    /// `steps.<id>` ids.
    pub steps: BTreeSet<String>,
    /// `inputs.<name>` names.
    pub inputs: BTreeSet<String>,
    /// Variables that are none of [`ROOTS`].
    pub unknown: BTreeSet<String>,
}

/// Compiles `source` as a template and lists the variables it reads.
pub fn references(source: &str) -> Result<References, String> {
    let env = Environment::new();
    let template = env.template_from_str(source).map_err(|e| {
        format!(
            "template does not parse: {}",
            e.detail().unwrap_or(&e.to_string())
        )
    })?;
    let mut refs = References::default();
    for var in template.undeclared_variables(true) {
        let mut parts = var.split('.');
        let root = parts.next().unwrap_or_default();
        let child = parts.next();
        match (root, child) {
            ("steps", Some(id)) => {
                refs.steps.insert(id.to_string());
            }
            ("inputs", Some(name)) => {
                refs.inputs.insert(name.to_string());
            }
            (root, _) if ROOTS.contains(&root) => {}
            (root, _) => {
                refs.unknown.insert(root.to_string());
            }
        }
    }
    Ok(refs)
}
