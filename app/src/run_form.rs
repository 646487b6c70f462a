//! The Run form every Run button opens: a widget per declared input (text, a number field, a
//! checkbox for a boolean, JSON for an object or a list), defaults filled, each field's
//! problem under it, and where versions are known a choice of which to run.

use engine::model::{InputDef, InputType, Problem};
use leptos::prelude::*;
use leptos_router::hooks::use_navigate;
use serde_json::{Map, Value};

use crate::components::ErrorNote;
use crate::error::AppError;
use crate::routes::workflows::TriggerRun;

/// What a field's text stands for: `None` leaves the input to its default (or to the server,
/// which names a required one); an error says why the text does not fit the type.
pub fn input_value(ty: InputType, text: &str) -> Result<Option<Value>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    match ty {
        InputType::String => Ok(Some(Value::String(text.to_string()))),
        InputType::Boolean => match t {
            "true" => Ok(Some(Value::Bool(true))),
            "false" => Ok(Some(Value::Bool(false))),
            _ => Err("expected true or false".into()),
        },
        InputType::Integer => t
            .parse::<i64>()
            .map(|n| Some(n.into()))
            .map_err(|_| "expected a whole number".into()),
        InputType::Number => t
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(|n| Some(Value::Number(n)))
            .ok_or_else(|| "expected a number".into()),
        InputType::Object | InputType::Array => {
            let v: Value = serde_json::from_str(t).map_err(|e| format!("not JSON: {e}"))?;
            match ty.accepts(&v) {
                true => Ok(Some(v)),
                false if ty == InputType::Object => Err("expected a JSON object".into()),
                false => Err("expected a JSON list".into()),
            }
        }
    }
}

/// A field's starting text: its default, as the widget shows it.
fn initial_text(def: &InputDef) -> String {
    match &def.default {
        None if def.ty == InputType::Boolean => "false".into(),
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v) if matches!(def.ty, InputType::Object | InputType::Array) => {
            serde_json::to_string_pretty(v).unwrap_or_default()
        }
        Some(v) => v.to_string(),
    }
}

/// Sorts the server's problems onto the fields they name (`inputs.who`, `inputs.who[0]`);
/// the ones that name no field are returned together.
fn by_field(names: &[String], problems: Vec<Problem>) -> (Vec<Option<String>>, Vec<Problem>) {
    let mut fields = vec![None::<String>; names.len()];
    let mut rest = Vec::new();
    for problem in problems {
        let at = names.iter().position(|n| {
            problem
                .path
                .strip_prefix("inputs.")
                .and_then(|p| p.strip_prefix(n.as_str()))
                .is_some_and(|p| p.is_empty() || p.starts_with('.') || p.starts_with('['))
        });
        match at {
            Some(i) => fields[i] = Some(problem.message),
            None => rest.push(problem),
        }
    }
    (fields, rest)
}

/// Asks for the workflow's inputs, starts a run (of `versions`' choice, latest by default)
/// and opens it.
#[component]
pub fn RunForm(
    workflow_id: String,
    inputs: Vec<(String, InputDef)>,
    /// The versions to choose from, newest first; none or one: no choice shown.
    #[prop(optional)]
    versions: Vec<i64>,
) -> impl IntoView {
    let names: Vec<String> = inputs.iter().map(|(n, _)| n.clone()).collect();
    let types: Vec<InputType> = inputs.iter().map(|(_, d)| d.ty).collect();
    let texts = RwSignal::new(
        inputs
            .iter()
            .map(|(_, d)| initial_text(d))
            .collect::<Vec<_>>(),
    );
    let errors = RwSignal::new(vec![None::<String>; inputs.len()]);
    let general = RwSignal::new(None::<AppError>);
    let version = RwSignal::new(String::new());
    let run = ServerAction::<TriggerRun>::new();
    let navigate = use_navigate();
    let field_names = StoredValue::new(names.clone());
    Effect::new(move |_| match run.value().get() {
        Some(Ok(run_id)) => navigate(&format!("/runs/{run_id}"), Default::default()),
        Some(Err(AppError::Problems(problems))) => {
            let (fields, rest) = by_field(&field_names.get_value(), problems);
            errors.set(fields);
            general.set((!rest.is_empty()).then_some(AppError::Problems(rest)));
        }
        Some(Err(e)) => general.set(Some(e)),
        None => {}
    });
    let wf = StoredValue::new(workflow_id);
    let types = StoredValue::new(types);
    let start = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        general.set(None);
        let mut object = Map::new();
        let mut problems = vec![None; field_names.with_value(Vec::len)];
        for (i, text) in texts.get_untracked().into_iter().enumerate() {
            let name = field_names.with_value(|n| n[i].clone());
            match input_value(types.with_value(|t| t[i]), &text) {
                Ok(Some(v)) => {
                    object.insert(name, v);
                }
                Ok(None) => {}
                Err(e) => problems[i] = Some(e),
            }
        }
        let wrong = problems.iter().any(Option::is_some);
        errors.set(problems);
        if !wrong {
            run.dispatch(TriggerRun {
                workflow_id: wf.get_value(),
                inputs_json: Value::Object(object).to_string(),
                version: version.get_untracked().parse().ok(),
            });
        }
    };
    let fields = inputs
        .into_iter()
        .enumerate()
        .map(|(i, (name, def))| {
            let id = format!("run-input-{name}");
            let error_id = format!("{id}-error");
            let text = move || texts.with(|t| t[i].clone());
            let set = move |value: String| texts.update(|t| t[i] = value);
            let widget = match def.ty {
                InputType::Boolean => view! {
                    <input type="checkbox" id=id.clone() prop:checked=move || text() == "true"
                        on:change=move |ev| set(event_target_checked(&ev).to_string())/>
                }
                .into_any(),
                InputType::Object | InputType::Array => view! {
                    <textarea id=id.clone() class="mono" rows="4" spellcheck="false"
                        aria-describedby=error_id.clone()
                        prop:value=text on:input=move |ev| set(event_target_value(&ev))></textarea>
                }
                .into_any(),
                ty => view! {
                    <input id=id.clone() aria-describedby=error_id.clone()
                        type=if ty == InputType::String { "text" } else { "number" }
                        step=match ty { InputType::Integer => Some("1"), InputType::Number => Some("any"), _ => None }
                        prop:value=text on:input=move |ev| set(event_target_value(&ev))/>
                }
                .into_any(),
            };
            view! {
                <div class="field">
                    <label for=id>{format!("{name} ({})", def.ty.as_str())}</label>
                    {widget}
                    {def.description.clone().map(|d| view! { <small class="muted">{d}</small> })}
                    <small class="field-error" id=error_id role="alert">
                        {move || errors.with(|e| e.get(i).cloned().flatten())}
                    </small>
                </div>
            }
        })
        .collect_view();
    let choice = (versions.len() > 1).then(|| {
        let options = versions
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let (value, label) = match i {
                    0 => (String::new(), format!("v{v} (latest)")),
                    _ => (v.to_string(), format!("v{v}")),
                };
                view! { <option value=value>{label}</option> }
            })
            .collect_view();
        view! {
            <div class="field">
                <label for="run-version">"Version"</label>
                <select id="run-version" on:change=move |ev| version.set(event_target_value(&ev))>{options}</select>
            </div>
        }
    });
    view! {
        // novalidate: the browser's own number checks would stop the submit without a word;
        // the form says what is wrong under each field instead.
        <form class="panel run-form" on:submit=start aria-label="Run inputs" novalidate>
            <h2>"Run it"</h2>
            {fields}
            {choice}
            <button class="button" type="submit" disabled=move || run.pending().get()>"Run"</button>
            {move || general.get().map(|e| view! { <ErrorNote error=e lead="Could not start the run"/> })}
        </form>
    }
    // Erased: the builder's page nests this form, and its full type is past rustc's depth limit.
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fields_text_becomes_a_value_of_its_type_or_says_why_not() {
        assert_eq!(input_value(InputType::Integer, " 42 "), Ok(Some(42.into())));
        assert!(input_value(InputType::Integer, "4.2").is_err());
        assert_eq!(input_value(InputType::Number, "4.5"), Ok(Some(4.5.into())));
        assert!(input_value(InputType::Number, "four").is_err());
        assert_eq!(
            input_value(InputType::Boolean, "true"),
            Ok(Some(true.into()))
        );
        assert_eq!(
            input_value(InputType::Array, "[1, 2]"),
            Ok(Some(serde_json::json!([1, 2])))
        );
        assert_eq!(
            input_value(InputType::Object, "[1]"),
            Err("expected a JSON object".to_string())
        );
        assert_eq!(
            input_value(InputType::String, "  "),
            Ok(None),
            "blank: the default"
        );
        assert_eq!(
            input_value(InputType::String, " hi "),
            Ok(Some(" hi ".into()))
        );
    }

    #[test]
    fn the_servers_refusal_lands_on_the_fields_it_names() {
        let names = vec!["who".to_string(), "whom".to_string()];
        let (fields, rest) = by_field(
            &names,
            vec![
                Problem::new("inputs.whom", "expected string, found a number"),
                Problem::new("inputs", "unknown input \"x\""),
            ],
        );
        assert_eq!(
            fields,
            vec![None, Some("expected string, found a number".to_string())]
        );
        assert_eq!(rest, vec![Problem::new("inputs", "unknown input \"x\"")]);
    }
}
