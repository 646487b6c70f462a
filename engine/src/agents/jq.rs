//! jq programs, evaluated with jaq (a real jq implementation): compiled once per program and
//! cached by the `transform` agent, run over `{inputs, steps}`.

use jaq_core::load::{self, Arena, File, Loader};
use jaq_core::{compile::Undefined, data::JustLut, Ctx, Vars};
use jaq_json::{Num, Val};
use serde_json::{Number, Value};

use super::AgentError;

type D = JustLut<Val>;

/// A compiled jq program; `Send + Sync`, shared behind an `Arc`.
pub struct Compiled(jaq_core::Filter<D>);

const _: fn() = || {
    fn ok<T: Send + Sync>() {}
    ok::<Compiled>();
};

/// Compiles a jq program; the error names the line and column.
pub fn compile(program: &str) -> Result<Compiled, String> {
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    // `env` would expose the server's environment variables to workflow authors.
    let funs = jaq_core::funs::<D>()
        .chain(jaq_std::funs::<D>().filter(|f| f.0 != "env"))
        .chain(jaq_json::funs::<D>());
    let arena = Arena::default();
    let modules = Loader::new(defs)
        .load(
            &arena,
            File {
                code: program,
                path: (),
            },
        )
        .map_err(load_errors)?;
    load::import(&modules, |_| Err("data imports are not supported".into()))
        .map_err(load_errors)?;
    let filter = jaq_core::Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(compile_errors)?;
    Ok(Compiled(filter))
}

/// Runs a program over `input`; a jq program may yield several values (more than `limit`
/// is an error, as is a value nested deeper than `depth`). Runs in the sandbox's child
/// process (see [`super::sandbox`]): nothing here bounds the evaluation's own time or stack.
pub fn run(
    compiled: &Compiled,
    input: Value,
    limit: usize,
    depth: usize,
) -> Result<Vec<Value>, AgentError> {
    let runtime = |m: String| AgentError::new("jq_runtime", m);
    let input: Val =
        serde_json::from_value(input).map_err(|e| runtime(format!("invalid input: {e}")))?;
    let f = &compiled.0;
    let ctx = Ctx::<D>::new(&f.lut, Vars::new([]));
    let mut out = Vec::new();
    for y in f.id.run((ctx, input)) {
        match y {
            Ok(v) => {
                if out.len() == limit {
                    return Err(AgentError::new(
                        "limit_outputs",
                        format!("the jq program yields more than {limit} values"),
                    ));
                }
                out.push(to_json(&v, depth).ok_or_else(|| {
                    AgentError::new(
                        "limit_depth",
                        format!("the jq program's output is nested deeper than {depth} levels"),
                    )
                })?)
            }
            Err(e) => {
                return match e.get_err() {
                    Ok(err) => Err(runtime(format!(
                        "jq error: {}",
                        match err.into_val() {
                            Val::TStr(s) | Val::BStr(s) => String::from_utf8_lossy(&s).into_owned(),
                            v => v.to_string(),
                        }
                    ))),
                    Err(e) => match e.get_halt() {
                        Ok(0) => Ok(out),
                        Ok(c) => Err(runtime(format!("jq program halted with exit code {c}"))),
                        Err(_) => Err(runtime("unexpected jq control-flow exception".into())),
                    },
                }
            }
        }
    }
    Ok(out)
}

fn at(code: &str, part: &str) -> String {
    let (b, p) = (code.as_ptr() as usize, part.as_ptr() as usize);
    match (p >= b).then(|| code.get(..p - b)).flatten() {
        Some(pre) => format!(
            "line {}, column {}",
            pre.matches('\n').count() + 1,
            pre.chars().rev().take_while(|c| *c != '\n').count() + 1
        ),
        None => "unknown position".into(),
    }
}

fn found(s: &str, n: usize) -> String {
    if s.is_empty() {
        "end of input".into()
    } else {
        format!("`{}`", s.chars().take(n).collect::<String>())
    }
}

fn load_errors(errs: load::Errors<&str, ()>) -> String {
    let mut m = Vec::new();
    for (file, err) in errs {
        let c = file.code;
        match err {
            load::Error::Io(es) => es
                .into_iter()
                .for_each(|(p, e)| m.push(format!("{}: cannot load {p}: {e}", at(c, p)))),
            load::Error::Lex(es) => es.into_iter().for_each(|(x, f)| {
                m.push(format!(
                    "syntax error at {}: expected {}, found {}",
                    at(c, f),
                    x.as_str(),
                    found(f, 1)
                ))
            }),
            load::Error::Parse(es) => es.into_iter().for_each(|(x, f)| {
                m.push(format!(
                    "syntax error at {}: expected {}, found {}",
                    at(c, f),
                    x.as_str(),
                    found(f, 20)
                ))
            }),
        }
    }
    m.join("; ")
}

fn compile_errors(errs: jaq_core::compile::Errors<&str, ()>) -> String {
    let mut m = Vec::new();
    for (file, es) in errs {
        for (name, u) in es {
            let what = match u {
                Undefined::Filter(n) => format!("filter `{name}/{n}`"),
                u => format!("{} `{name}`", u.as_str()),
            };
            m.push(format!(
                "error at {}: undefined {what}",
                at(file.code, name)
            ));
        }
    }
    m.join("; ")
}

fn str_of(v: &Val) -> Option<String> {
    match v {
        Val::TStr(s) | Val::BStr(s) => Some(String::from_utf8_lossy(s).into_owned()),
        _ => None,
    }
}

/// NaN → null, ±inf → ±f64::MAX, as jq does.
fn float(f: f64) -> Value {
    if f.is_nan() {
        Value::Null
    } else {
        Number::from_f64(f.clamp(f64::MIN, f64::MAX)).map_or(Value::Null, Value::Number)
    }
}

/// `v` as JSON; `None` when it is nested deeper than `depth`.
fn to_json(v: &Val, depth: usize) -> Option<Value> {
    Some(match v {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(Num::Int(i)) => Value::from(*i),
        Val::Num(Num::Float(f)) => float(*f),
        Val::Num(n) => {
            let s = n.to_string();
            s.parse::<Number>()
                .map(Value::Number)
                .unwrap_or_else(|_| float(s.parse().unwrap_or(f64::NAN)))
        }
        Val::TStr(_) | Val::BStr(_) => Value::String(str_of(v).unwrap_or_default()),
        Val::Arr(a) => Value::Array(
            a.iter()
                .map(|x| to_json(x, depth.checked_sub(1)?))
                .collect::<Option<_>>()?,
        ),
        Val::Obj(o) => Value::Object(
            o.iter()
                .map(|(k, x)| {
                    Some((
                        str_of(k).unwrap_or_else(|| k.to_string()),
                        to_json(x, depth.checked_sub(1)?)?,
                    ))
                })
                .collect::<Option<_>>()?,
        ),
    })
}
