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
    /// `secrets.<name>` names.
    pub secrets: BTreeSet<String>,
    /// Variables that are none of [`ROOTS`].
    pub unknown: BTreeSet<String>,
}

/// Compiles `source` as a template and lists the variables it reads.
pub fn references(source: &str) -> Result<References, String> {
    check_constants(source)?;
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
            ("secrets", Some(name)) => {
                refs.secrets.insert(name.to_string());
            }
            (root, _) if ROOTS.contains(&root) => {}
            (root, _) => {
                refs.unknown.insert(root.to_string());
            }
        }
    }
    Ok(refs)
}

/// Whether rendering `text` needs at most a constant times the memory of its data: only
/// text and `{{ }}` of lookups, literals, comparisons, `and`/`or`/`not`, conditionals and
/// filters from [`BOUNDED_FILTERS`] with literal arguments. No statements (`{% set %}`,
/// loops, macros), no arithmetic or concatenation (`*` repeats strings, `~` and `+` join
/// them), no calls, no list or map literals (`[x, x, …] | tojson` multiplies `x`). A
/// template that does not parse is bounded: rendering it fails at once.
pub fn is_bounded(text: &str) -> bool {
    use minijinja::machinery::{ast, parse};
    let Ok(ast::Stmt::Template(t)) = parse(text, "<with>", Default::default(), Default::default())
    else {
        return true;
    };
    t.children.iter().all(|c| match c {
        ast::Stmt::EmitRaw(_) => true,
        ast::Stmt::EmitExpr(e) => bounded_expr(&e.expr, &[]),
        _ => false,
    })
}

/// Filters whose result is at most a small constant times their input (escaping at most
/// sixfold), given literal arguments.
pub const BOUNDED_FILTERS: &[&str] = &[
    "abs",
    "bool",
    "capitalize",
    "count",
    "d",
    "default",
    "e",
    "escape",
    "first",
    "float",
    "int",
    "keys",
    "last",
    "length",
    "lower",
    "max",
    "min",
    "reverse",
    "round",
    "safe",
    "sort",
    "string",
    "sum",
    "title",
    "tojson",
    "trim",
    "unique",
    "upper",
    "urlencode",
];

/// `calls`: functions that may be called, without arguments (a condition's status functions).
fn bounded_expr(e: &minijinja::machinery::ast::Expr<'_>, calls: &[&str]) -> bool {
    let b = |e: &minijinja::machinery::ast::Expr<'_>| bounded_expr(e, calls);
    use minijinja::machinery::ast::{BinOpKind, CallArg, Expr};
    let literal_args = |args: &[CallArg<'_>]| {
        args.iter().all(|a| {
            matches!(
                a,
                CallArg::Pos(Expr::Const(_)) | CallArg::Kwarg(_, Expr::Const(_))
            )
        })
    };
    match e {
        Expr::Var(_) | Expr::Const(_) => true,
        Expr::GetAttr(g) => b(&g.expr),
        Expr::GetItem(g) => b(&g.expr) && b(&g.subscript_expr),
        Expr::Slice(s) => {
            b(&s.expr)
                && [&s.start, &s.stop, &s.step]
                    .iter()
                    .all(|x| x.as_ref().is_none_or(b))
        }
        Expr::UnaryOp(u) => b(&u.expr),
        Expr::BinOp(op) => {
            matches!(
                op.op,
                BinOpKind::Eq
                    | BinOpKind::Ne
                    | BinOpKind::Lt
                    | BinOpKind::Lte
                    | BinOpKind::Gt
                    | BinOpKind::Gte
                    | BinOpKind::ScAnd
                    | BinOpKind::ScOr
                    | BinOpKind::In
            ) && b(&op.left)
                && b(&op.right)
        }
        Expr::Compare(c) => b(&c.expr) && c.ops.iter().all(|o| b(&o.expr)),
        Expr::IfExpr(i) => {
            b(&i.test_expr) && b(&i.true_expr) && i.false_expr.as_ref().is_none_or(b)
        }
        Expr::Test(t) => b(&t.expr) && literal_args(&t.args),
        Expr::Filter(f) => {
            BOUNDED_FILTERS.contains(&f.name)
                && f.expr.as_ref().is_none_or(b)
                && literal_args(&f.args)
        }
        Expr::Call(c) => {
            c.args.is_empty() && matches!(&c.expr, Expr::Var(v) if calls.contains(&v.id))
        }
        Expr::List(_) | Expr::Map(_) => false,
    }
}

/// The functions a step's `if:` may call (GitHub Actions' status functions).
pub const STATUS_FUNCTIONS: &[&str] = &["success", "failure", "always", "cancelled"];
/// The template delimiter an expression contains, if any. minijinja's expression lexer
/// panics on a closing `}}` (its state stack runs empty: found by the `template` fuzz
/// target), so no expression with a delimiter reaches it, at save time or at run time.
pub fn expression_delimiter(source: &str) -> Option<&'static str> {
    ["{{", "}}", "{%", "%}", "{#", "#}"]
        .into_iter()
        .find(|d| source.contains(d))
}

/// Longest `if:` expression, in bytes.
pub const MAX_CONDITION_BYTES: usize = 4096;

/// Checks a step's `if:` expression and lists what it reads. A condition is one bounded
/// expression (see [`is_bounded`]) that may also call the [`STATUS_FUNCTIONS`].
pub fn condition(source: &str) -> Result<References, String> {
    expression(source, Expression::Condition)
}

/// Checks a step's `for_each` expression and lists what it reads: one bounded expression
/// (see [`is_bounded`]) that calls nothing.
pub fn item_list(source: &str) -> Result<References, String> {
    expression(source, Expression::ItemList)
}

#[derive(Clone, Copy, PartialEq)]
enum Expression {
    Condition,
    ItemList,
}

fn expression(source: &str, kind: Expression) -> Result<References, String> {
    let example = match kind {
        Expression::Condition => "steps.check.output == 'ok'",
        Expression::ItemList => "steps.fetch.output.body.items",
    };
    if source.trim().is_empty() {
        return Err(format!(
            "is empty: write an expression such as {example}, or leave it out"
        ));
    }
    if source.len() > MAX_CONDITION_BYTES {
        return Err(format!("is longer than {MAX_CONDITION_BYTES} bytes"));
    }
    if let Some(delimiter) = expression_delimiter(source) {
        return Err(format!(
            "is an expression: write it without {{{{ }}}} or {{% %}} (found \"{delimiter}\"), e.g. {example}"
        ));
    }
    let tree = minijinja::machinery::parse_expr(source)
        .map_err(|e| format!("does not parse: {}", e.detail().unwrap_or(&e.to_string())))?;
    let calls = match kind {
        Expression::Condition => {
            check_calls(&tree)?;
            STATUS_FUNCTIONS
        }
        Expression::ItemList => {
            let mut calls = false;
            visit(&tree, &mut |e| {
                calls |= matches!(e, minijinja::machinery::ast::Expr::Call(_));
            });
            if calls {
                return Err("calls a function: for_each names a list, e.g. inputs.items".into());
            }
            &[]
        }
    };
    if !bounded_expr(&tree, calls) {
        return Err(
            "may only look up values, compare them, combine them with and/or/not and apply \
                    simple filters (length, lower, default…); no arithmetic, concatenation, \
                    list or map literals"
                .into(),
        );
    }
    let env = Environment::new();
    let expr = env
        .compile_expression(source)
        .map_err(|e| format!("does not compile: {}", e.detail().unwrap_or(&e.to_string())))?;
    let mut refs = References::default();
    for var in expr.undeclared_variables(true) {
        let mut parts = var.split('.');
        let root = parts.next().unwrap_or_default();
        match (root, parts.next()) {
            ("steps", Some(id)) => {
                refs.steps.insert(id.to_string());
            }
            ("inputs", Some(name)) => {
                refs.inputs.insert(name.to_string());
            }
            (root, _) if STATUS_FUNCTIONS.contains(&root) => {}
            ("secrets", _) => {
                return Err(match kind {
                    Expression::Condition => "cannot read secrets: a branch must not reveal one",
                    Expression::ItemList => "cannot read secrets: items are stored and shown",
                }
                .into())
            }
            (root, _) if ROOTS.contains(&root) => {}
            (root, _) => {
                refs.unknown.insert(root.to_string());
            }
        }
    }
    Ok(refs)
}

/// Whether a condition calls a status function; if not, `success()` is implied (as in
/// GitHub Actions): the step is skipped when a step it needs did not succeed.
pub fn condition_uses_status(source: &str) -> bool {
    use minijinja::machinery::ast::Expr;
    if expression_delimiter(source).is_some() {
        return false;
    }
    let Ok(tree) = minijinja::machinery::parse_expr(source) else {
        return false;
    };
    let mut uses = false;
    visit(&tree, &mut |e| {
        if let Expr::Call(c) = e {
            uses |= matches!(&c.expr, Expr::Var(v) if STATUS_FUNCTIONS.contains(&v.id));
        }
    });
    uses
}

fn status_list() -> String {
    STATUS_FUNCTIONS
        .iter()
        .map(|f| format!("{f}()"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Calls in a condition: only the status functions, without arguments.
fn check_calls(e: &minijinja::machinery::ast::Expr<'_>) -> Result<(), String> {
    use minijinja::machinery::ast::Expr;
    let mut found = Ok(());
    // Each status function named must be called: a bare `success` is always truthy.
    let (mut named, mut called) = (0, 0);
    visit(e, &mut |e| {
        if let Expr::Var(v) = e {
            if STATUS_FUNCTIONS.contains(&v.id) {
                named += 1;
            }
        }
        if let Expr::Call(c) = e {
            if matches!(&c.expr, Expr::Var(v) if STATUS_FUNCTIONS.contains(&v.id)) {
                called += 1;
            }
            let name = match &c.expr {
                Expr::Var(v) => v.id,
                _ => "",
            };
            if found.is_ok() {
                found = if !STATUS_FUNCTIONS.contains(&name) {
                    Err(format!(
                        "calls {}: a condition may call only {}",
                        if name.is_empty() { "a function" } else { name },
                        status_list()
                    ))
                } else if !c.args.is_empty() {
                    Err(format!("{name}() takes no arguments"))
                } else {
                    Ok(())
                };
            }
        }
    });
    if found.is_ok() && named > called {
        return Err(format!(
            "names a status function without calling it: write {}",
            status_list()
        ));
    }
    found
}

/// Calls `f` on `e` and every expression in it.
fn visit<'a>(
    e: &minijinja::machinery::ast::Expr<'a>,
    f: &mut dyn FnMut(&minijinja::machinery::ast::Expr<'a>),
) {
    use minijinja::machinery::ast::{CallArg, Expr};
    f(e);
    let arg = |a: &CallArg<'a>, f: &mut dyn FnMut(&Expr<'a>)| match a {
        CallArg::Pos(x) | CallArg::Kwarg(_, x) | CallArg::PosSplat(x) | CallArg::KwargSplat(x) => {
            visit(x, f)
        }
    };
    match e {
        Expr::Var(_) | Expr::Const(_) => {}
        Expr::GetAttr(g) => visit(&g.expr, f),
        Expr::GetItem(g) => {
            visit(&g.expr, f);
            visit(&g.subscript_expr, f);
        }
        Expr::Slice(s) => {
            visit(&s.expr, f);
            for x in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                visit(x, f);
            }
        }
        Expr::UnaryOp(u) => visit(&u.expr, f),
        Expr::BinOp(b) => {
            visit(&b.left, f);
            visit(&b.right, f);
        }
        Expr::Compare(c) => {
            visit(&c.expr, f);
            for o in &c.ops {
                visit(&o.expr, f);
            }
        }
        Expr::IfExpr(i) => {
            visit(&i.test_expr, f);
            visit(&i.true_expr, f);
            if let Some(x) = &i.false_expr {
                visit(x, f);
            }
        }
        Expr::Test(t) => {
            visit(&t.expr, f);
            t.args.iter().for_each(|a| arg(a, f));
        }
        Expr::Filter(x) => {
            if let Some(inner) = &x.expr {
                visit(inner, f);
            }
            x.args.iter().for_each(|a| arg(a, f));
        }
        Expr::Call(c) => {
            visit(&c.expr, f);
            c.args.iter().for_each(|a| arg(a, f));
        }
        Expr::List(l) => l.items.iter().for_each(|x| visit(x, f)),
        Expr::Map(m) => {
            for (k, v) in m.keys.iter().zip(&m.values) {
                visit(k, f);
                visit(v, f);
            }
        }
    }
}

/// The most a constant expression in a template may fold to, in bytes. minijinja folds
/// constant expressions while it compiles, with no fuel: `{{ ('x' * 100000000) ~ … }}` would
/// allocate gigabytes in whichever process compiles it, validation included.
pub const MAX_CONSTANT_BYTES: u128 = 1 << 20;

/// What folding a constant expression gives: its size (an upper bound, in bytes) and kind.
#[derive(Clone, Copy)]
struct Folded {
    bytes: u128,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Int(i128),
    Number,
    Text,
    Seq,
    Other,
}

impl Folded {
    fn scalar(kind: Kind) -> Folded {
        Folded { bytes: 24, kind }
    }
}

/// Refuses a template whose constant expressions would fold to more than
/// [`MAX_CONSTANT_BYTES`]: checked on the syntax tree, before anything is compiled.
pub fn check_constants(source: &str) -> Result<(), String> {
    use minijinja::machinery::parse;
    let Ok(tree) = parse(source, "<template>", Default::default(), Default::default()) else {
        // Compiling it reports the syntax error.
        return Ok(());
    };
    stmt(&tree)
}

fn stmts(body: &[minijinja::machinery::ast::Stmt<'_>]) -> Result<(), String> {
    body.iter().try_for_each(stmt)
}

fn stmt(s: &minijinja::machinery::ast::Stmt<'_>) -> Result<(), String> {
    use minijinja::machinery::ast::Stmt;
    match s {
        Stmt::Template(t) => stmts(&t.children),
        Stmt::EmitExpr(e) => expr(&e.expr).map(drop),
        Stmt::EmitRaw(_) => Ok(()),
        Stmt::ForLoop(f) => {
            expr(&f.target)?;
            expr(&f.iter)?;
            f.filter_expr.as_ref().map_or(Ok(None), expr)?;
            stmts(&f.body)?;
            stmts(&f.else_body)
        }
        Stmt::IfCond(i) => {
            expr(&i.expr)?;
            stmts(&i.true_body)?;
            stmts(&i.false_body)
        }
        Stmt::WithBlock(w) => {
            for (a, b) in &w.assignments {
                expr(a)?;
                expr(b)?;
            }
            stmts(&w.body)
        }
        Stmt::Set(set) => {
            expr(&set.target)?;
            expr(&set.expr).map(drop)
        }
        Stmt::SetBlock(set) => {
            expr(&set.target)?;
            set.filter.as_ref().map_or(Ok(None), expr)?;
            stmts(&set.body)
        }
        Stmt::AutoEscape(a) => {
            expr(&a.enabled)?;
            stmts(&a.body)
        }
        Stmt::FilterBlock(f) => {
            expr(&f.filter)?;
            stmts(&f.body)
        }
        Stmt::Block(b) => stmts(&b.body),
        Stmt::Import(i) => {
            expr(&i.expr)?;
            expr(&i.name).map(drop)
        }
        Stmt::FromImport(i) => {
            expr(&i.expr)?;
            for (a, b) in &i.names {
                expr(a)?;
                b.as_ref().map_or(Ok(None), expr)?;
            }
            Ok(())
        }
        Stmt::Extends(e) => expr(&e.name).map(drop),
        Stmt::Include(i) => expr(&i.name).map(drop),
        Stmt::Macro(m) => {
            for e in m.args.iter().chain(&m.defaults) {
                expr(e)?;
            }
            stmts(&m.body)
        }
        Stmt::CallBlock(c) => {
            call(&c.call)?;
            for e in c.macro_decl.args.iter().chain(&c.macro_decl.defaults) {
                expr(e)?;
            }
            stmts(&c.macro_decl.body)
        }
        Stmt::Do(d) => call(&d.call),
    }
}

fn call(c: &minijinja::machinery::ast::Call<'_>) -> Result<(), String> {
    expr(&c.expr)?;
    args(&c.args)
}

fn args(args: &[minijinja::machinery::ast::CallArg<'_>]) -> Result<(), String> {
    use minijinja::machinery::ast::CallArg;
    for a in args {
        match a {
            CallArg::Pos(e)
            | CallArg::Kwarg(_, e)
            | CallArg::PosSplat(e)
            | CallArg::KwargSplat(e) => {
                expr(e)?;
            }
        }
    }
    Ok(())
}

/// Checks `e` and everything in it; what it folds to, if it is constant.
fn expr(e: &minijinja::machinery::ast::Expr<'_>) -> Result<Option<Folded>, String> {
    use minijinja::machinery::ast::{BinOpKind, Expr, UnaryOpKind};
    let folded = match e {
        Expr::Const(c) => Some(if let Some(s) = c.value.as_str() {
            Folded {
                bytes: s.len() as u128,
                kind: Kind::Text,
            }
        } else if let Some(n) = c.value.as_i64() {
            Folded::scalar(Kind::Int(i128::from(n)))
        } else if c.value.as_usize().is_some() {
            // A u64 past i64: still a number, too large to repeat anything by.
            Folded::scalar(Kind::Number)
        } else {
            Folded::scalar(Kind::Other)
        }),
        Expr::List(l) => {
            let mut all = Some(Folded {
                bytes: 2,
                kind: Kind::Seq,
            });
            for item in &l.items {
                let f = expr(item)?;
                all = all.zip(f).map(|(a, f)| Folded {
                    bytes: a.bytes + f.bytes + 2,
                    kind: Kind::Seq,
                });
            }
            all
        }
        Expr::Map(m) => {
            let mut all = Some(Folded::scalar(Kind::Other));
            for item in m.keys.iter().chain(&m.values) {
                let f = expr(item)?;
                all = all.zip(f).map(|(a, f)| Folded {
                    bytes: a.bytes + f.bytes + 4,
                    kind: Kind::Other,
                });
            }
            all
        }
        Expr::UnaryOp(u) => expr(&u.expr)?.map(|f| match (&u.op, f.kind) {
            (UnaryOpKind::Neg, Kind::Int(n)) => Folded::scalar(Kind::Int(-n)),
            (UnaryOpKind::Neg, _) => Folded::scalar(Kind::Number),
            (UnaryOpKind::Not, _) => Folded::scalar(Kind::Other),
        }),
        Expr::BinOp(b) => {
            let (l, r) = (expr(&b.left)?, expr(&b.right)?);
            l.zip(r).map(|(l, r)| {
                let numeric = |k: Kind| matches!(k, Kind::Int(_) | Kind::Number);
                match b.op {
                    BinOpKind::Mul => match (l.kind, r.kind) {
                        (Kind::Int(a), Kind::Int(b)) => {
                            Folded::scalar(a.checked_mul(b).map_or(Kind::Number, Kind::Int))
                        }
                        (Kind::Int(n), _) => Folded {
                            bytes: r.bytes.saturating_mul(n.max(0) as u128),
                            kind: r.kind,
                        },
                        (_, Kind::Int(n)) => Folded {
                            bytes: l.bytes.saturating_mul(n.max(0) as u128),
                            kind: l.kind,
                        },
                        _ => Folded::scalar(Kind::Number),
                    },
                    BinOpKind::Add => match (l.kind, r.kind) {
                        (Kind::Int(a), Kind::Int(b)) => {
                            Folded::scalar(a.checked_add(b).map_or(Kind::Number, Kind::Int))
                        }
                        (a, b) if numeric(a) && numeric(b) => Folded::scalar(Kind::Number),
                        (kind, _) => Folded {
                            bytes: l.bytes + r.bytes,
                            kind,
                        },
                    },
                    BinOpKind::Sub => match (l.kind, r.kind) {
                        (Kind::Int(a), Kind::Int(b)) => {
                            Folded::scalar(a.checked_sub(b).map_or(Kind::Number, Kind::Int))
                        }
                        _ => Folded::scalar(Kind::Number),
                    },
                    BinOpKind::Pow => match (l.kind, r.kind) {
                        (Kind::Int(a), Kind::Int(b)) => Folded::scalar(
                            u32::try_from(b)
                                .ok()
                                .and_then(|b| a.checked_pow(b))
                                .map_or(Kind::Number, Kind::Int),
                        ),
                        _ => Folded::scalar(Kind::Number),
                    },
                    BinOpKind::Div | BinOpKind::FloorDiv | BinOpKind::Rem => {
                        Folded::scalar(Kind::Number)
                    }
                    BinOpKind::Concat => Folded {
                        bytes: l.bytes + r.bytes,
                        kind: Kind::Text,
                    },
                    BinOpKind::ScAnd | BinOpKind::ScOr => Folded {
                        bytes: l.bytes.max(r.bytes),
                        kind: Kind::Other,
                    },
                    _ => Folded::scalar(Kind::Other),
                }
            })
        }
        Expr::Compare(c) => {
            let mut all = expr(&c.expr)?.is_some();
            for op in &c.ops {
                all &= expr(&op.expr)?.is_some();
            }
            all.then(|| Folded::scalar(Kind::Other))
        }
        Expr::Var(_) => None,
        Expr::Slice(s) => {
            expr(&s.expr)?;
            for part in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                expr(part)?;
            }
            None
        }
        Expr::IfExpr(i) => {
            expr(&i.test_expr)?;
            expr(&i.true_expr)?;
            i.false_expr.as_ref().map_or(Ok(None), expr)?;
            None
        }
        Expr::Filter(f) => {
            f.expr.as_ref().map_or(Ok(None), expr)?;
            args(&f.args)?;
            None
        }
        Expr::Test(t) => {
            expr(&t.expr)?;
            args(&t.args)?;
            None
        }
        Expr::GetAttr(g) => {
            expr(&g.expr)?;
            None
        }
        Expr::GetItem(g) => {
            expr(&g.expr)?;
            expr(&g.subscript_expr)?;
            None
        }
        Expr::Call(c) => {
            call(c)?;
            None
        }
    };
    match folded {
        Some(f) if f.bytes > MAX_CONSTANT_BYTES => Err(format!(
            "a constant expression here would be about {} bytes once computed (at most {MAX_CONSTANT_BYTES})",
            f.bytes
        )),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `template` fuzz target's first find: `parse_expr(" }}t")` panicked in minijinja's
    /// lexer ("empty lexer stack"), in validation (a viewer's `POST /validate`, the builder's
    /// wasm) and at run time. Such expressions are refused with a reason instead.
    #[test]
    fn expressions_with_template_delimiters_are_refused_not_parsed() {
        for e in [
            " }}t\0\0\0\0\0 }}",
            "a }} b",
            "steps.a.output %} x",
            "x #}",
            "{{ a }}",
        ] {
            let c = condition(e).expect_err(e);
            assert!(c.contains("without"), "{e}: {c}");
            assert!(item_list(e).is_err(), "{e}");
            assert!(!condition_uses_status(e));
        }
    }

    #[test]
    fn constants_that_would_fold_past_the_limit_are_refused_before_compiling() {
        for t in [
            "{{ ('x' * 100000000) ~ ('x' * 100000000) }}",
            "{{ 'x' * (10 ** 8) }}",
            "{% set s = [1] * 1000000000 %}{{ s ~ '' }}",
            "{% for i in range(3) %}{{ 'ab' * 600000 }}{% endfor %}",
            "{% if true %}{{ 'x' * 2000000 }}{% endif %}",
            "{{ inputs.x | default('x' * 5000000) }}",
        ] {
            let e = check_constants(t).expect_err(t);
            assert!(e.contains("constant expression"), "{t}: {e}");
            // What validation reports, without having compiled (and so folded) it.
            assert!(references(t).is_err(), "{t}");
        }
        for t in [
            "{{ inputs.n * 100000000 }}",
            "{{ 'ab' * 3 }} {{ 2 ** 10 }} {{ 1.5 * 2.0 }}",
            "{{ [1, 2, 3] | join(',') }}",
            "{{ steps.a.output ~ '!' }}",
            "{{ broken",
        ] {
            assert!(check_constants(t).is_ok(), "{t}");
        }
    }
}
