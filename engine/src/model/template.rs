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
            (root, _) if ROOTS.contains(&root) => {}
            (root, _) => {
                refs.unknown.insert(root.to_string());
            }
        }
    }
    Ok(refs)
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
