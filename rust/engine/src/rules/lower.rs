//! Lowers a rule set to compiled nodes: each rule's SQL tree becomes a typed
//! expression, recording the state it needs and the nodes it reads. Type
//! rules live in `types`, built-in functions in `functions`.

use std::sync::Arc;

use sqlparser::ast::{
    self as sql, BinaryOperator, FunctionArg, FunctionArgExpr, FunctionArgOperator,
    FunctionArguments, InTarget, ObjectNamePart, Spanned, UnaryOperator,
};
use sqlparser::tokenizer::Span;

use super::compiled::{CompiledRules, Node, NodeKind};
use super::diagnostics::{did_you_mean, rule_error};
use super::expr::{ArithOp, CmpOp, Expr, Field, Ty, Value};
use super::functions::{self, Call};
use super::graph::{evaluation_order, propagate_time_dependence};
use super::needs::Needs;
use super::parse::parse_rule;
use super::ruleset::{RuleSetSpec, TraitType};
use super::validate::check_names;
use crate::error::{EngineError, Result};
use crate::time::{parse_duration_ms, parse_timestamp_ms};
use std::collections::HashMap;

/// Compiles a whole rule set.
pub fn compile_ruleset(spec: &RuleSetSpec) -> Result<CompiledRules> {
    if spec.currency_scale > 9 {
        return Err(EngineError::rule_plain(format!(
            "currency_scale: {} is too large (0 to 9 digits)",
            spec.currency_scale
        )));
    }
    let scale = 10i64.pow(spec.currency_scale);
    let lateness = match &spec.allowed_lateness {
        Some(d) => d.to_ms("allowed_lateness")?,
        None => 0,
    };
    let checked = check_names(spec, |n| functions::lookup(n).is_some())?;
    let (names, stage_names) = (checked.nodes, checked.stages);
    let traits: Vec<(String, TraitType)> =
        spec.traits.iter().map(|(k, v)| (k.clone(), *v)).collect();
    let mut needs = Needs::default();
    let mut nodes = Vec::new();
    for s in &spec.segments {
        let mut c = Lowerer::new(
            &s.name,
            &s.rule,
            scale,
            &names,
            &stage_names,
            &traits,
            &mut needs,
        )?;
        let rule = c.compile_rule()?;
        let (deps, uses_time) = (c.deps.clone(), c.uses_time);
        let holdout = s.holdout.unwrap_or(0.0);
        if !(0.0..=100.0).contains(&holdout) || holdout.is_nan() {
            return Err(EngineError::rule_plain(format!(
                "segment `{}`: holdout must be a percent between 0 and 100 (got {holdout})",
                s.name
            )));
        }
        let cooldown = match &s.cooldown {
            Some(d) => Some(d.to_ms(&format!("segment `{}`: cooldown", s.name))?),
            None => None,
        };
        nodes.push(Node {
            name: s.name.clone(),
            kind: NodeKind::Segment {
                rule,
                holdout,
                cooldown,
            },
            deps,
            time_dependent: uses_time || cooldown.is_some(),
        });
    }
    for l in &spec.lifecycles {
        let mut stages = Vec::new();
        let mut deps = Vec::new();
        let mut uses_time = false;
        for st in &l.stages {
            let label = format!("{}.{}", l.name, st.name);
            let mut c = Lowerer::new(
                &label,
                &st.rule,
                scale,
                &names,
                &stage_names,
                &traits,
                &mut needs,
            )?;
            let rule = c.compile_rule()?;
            deps.extend(c.deps.iter().copied());
            uses_time |= c.uses_time;
            stages.push((st.name.clone(), rule));
        }
        deps.sort_unstable();
        deps.dedup();
        nodes.push(Node {
            name: l.name.clone(),
            kind: NodeKind::Lifecycle { stages },
            deps,
            time_dependent: uses_time,
        });
    }
    let order = evaluation_order(&nodes)?;
    propagate_time_dependence(&mut nodes, &order);
    Ok(CompiledRules {
        fingerprint: spec.fingerprint(),
        spec: spec.clone(),
        nodes,
        order,
        needs,
        traits,
        scale,
        lateness,
        salt: spec.holdout_salt.clone().unwrap_or_default(),
    })
}

pub struct Lowerer<'a> {
    pub(super) label: &'a str,
    pub(super) source: &'a str,
    pub(super) scale: i64,
    pub(super) names: &'a HashMap<String, (usize, bool)>,
    /// Stage names by node index (empty for segments).
    pub(super) stage_names: &'a [Vec<String>],
    pub(super) traits: &'a [(String, TraitType)],
    pub(super) needs: &'a mut Needs,
    pub(super) deps: Vec<usize>,
    pub(super) uses_time: bool,
}

/// A lowered expression and its type.
pub(super) type Typed = (Expr, Ty);

impl<'a> Lowerer<'a> {
    fn new(
        label: &'a str,
        source: &'a str,
        scale: i64,
        names: &'a HashMap<String, (usize, bool)>,
        stage_names: &'a [Vec<String>],
        traits: &'a [(String, TraitType)],
        needs: &'a mut Needs,
    ) -> Result<Self> {
        Ok(Lowerer {
            label,
            source,
            scale,
            names,
            stage_names,
            traits,
            needs,
            deps: Vec::new(),
            uses_time: false,
        })
    }

    pub(super) fn err(&self, span: Span, message: impl AsRef<str>) -> EngineError {
        let width = if span.start.line == span.end.line && span.end.column > span.start.column {
            (span.end.column - span.start.column) as usize
        } else {
            1
        };
        rule_error(
            self.label,
            self.source,
            span.start.line,
            span.start.column,
            width,
            message.as_ref(),
        )
    }

    fn compile_rule(&mut self) -> Result<Expr> {
        let ast = parse_rule(self.label, self.source)?;
        let (expr, ty) = self.expr(&ast)?;
        match ty {
            Ty::Bool | Ty::Null => Ok(expr),
            other => Err(self.err(
                ast.span(),
                format!(
                    "a rule must be a boolean condition, but this is {}",
                    other.name()
                ),
            )),
        }
    }

    pub(super) fn expr(&mut self, e: &sql::Expr) -> Result<Typed> {
        use sql::Expr as E;
        match e {
            E::Nested(inner) => self.expr(inner),
            E::Identifier(id) => self.identifier(id),
            E::CompoundIdentifier(parts) => Err(self.err(
                e.span(),
                format!(
                    "`{}` is not a field; fields have one-part names",
                    parts
                        .iter()
                        .map(|p| p.value.as_str())
                        .collect::<Vec<_>>()
                        .join(".")
                ),
            )),
            E::Value(v) => self.literal(&v.value, e.span()),
            E::TypedString(ts) => {
                let text = ts.value.clone().into_string().unwrap_or_default();
                match ts.data_type {
                    sql::DataType::Date
                    | sql::DataType::Timestamp(..)
                    | sql::DataType::Datetime(..)
                    | sql::DataType::TimestampNtz(..) => {
                        let ms = parse_timestamp_ms(&text).map_err(|m| self.err(e.span(), m))?;
                        Ok((Expr::Lit(Value::Ts(ms)), Ty::Ts))
                    }
                    ref other => Err(self.err(
                        e.span(),
                        format!(
                            "`{other}` literals are not supported; use DATE, TIMESTAMP or INTERVAL"
                        ),
                    )),
                }
            }
            E::Interval(iv) => {
                let ms = self.interval(iv, e.span())?;
                Ok((Expr::Lit(Value::Interval(ms)), Ty::Interval))
            }
            E::UnaryOp { op, expr } => {
                let (x, t) = self.expr(expr)?;
                match op {
                    UnaryOperator::Not => {
                        self.expect_bool(t, expr.span())?;
                        Ok((Expr::Not(Box::new(x)), Ty::Bool))
                    }
                    UnaryOperator::Minus => {
                        if matches!(t, Ty::Int | Ty::Money | Ty::Float | Ty::Interval | Ty::Null) {
                            Ok((Expr::Neg(Box::new(x)), t))
                        } else {
                            Err(self.err(e.span(), format!("cannot negate a {}", t.name())))
                        }
                    }
                    UnaryOperator::Plus => Ok((x, t)),
                    other => {
                        Err(self.err(e.span(), format!("operator `{other}` is not supported")))
                    }
                }
            }
            E::BinaryOp { left, op, right } => self.binary(left, op, right, e.span()),
            E::IsNull(x) | E::IsNotNull(x) => {
                let (x2, _) = self.expr(x)?;
                Ok((
                    Expr::IsNull(Box::new(x2), matches!(e, E::IsNotNull(_))),
                    Ty::Bool,
                ))
            }
            E::IsTrue(x) | E::IsFalse(x) | E::IsNotTrue(x) | E::IsNotFalse(x) => {
                let (x2, t) = self.expr(x)?;
                self.expect_bool(t, x.span())?;
                let want = matches!(e, E::IsTrue(_) | E::IsNotTrue(_));
                let negated = matches!(e, E::IsNotTrue(_) | E::IsNotFalse(_));
                Ok((Expr::IsBool(Box::new(x2), want, negated), Ty::Bool))
            }
            E::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let ge = self.comparison(expr, &BinaryOperator::GtEq, low, e.span())?;
                let le = self.comparison(expr, &BinaryOperator::LtEq, high, e.span())?;
                let both = Expr::And(Box::new(ge), Box::new(le));
                Ok((
                    if *negated {
                        Expr::Not(Box::new(both))
                    } else {
                        both
                    },
                    Ty::Bool,
                ))
            }
            E::In {
                expr,
                target,
                negated,
                ..
            } => {
                let InTarget::List(list) = target else {
                    return Err(self.err(
                        e.span(),
                        "only `x IN (a, b, ...)` with a list of values is supported",
                    ));
                };
                if list.is_empty() {
                    return Err(self.err(e.span(), "`IN ()` needs at least one value"));
                }
                let mut acc: Option<Expr> = None;
                for item in list {
                    let eq = self.comparison(expr, &BinaryOperator::Eq, item, item.span())?;
                    acc = Some(match acc {
                        None => eq,
                        Some(prev) => Expr::Or(Box::new(prev), Box::new(eq)),
                    });
                }
                let any = acc.expect("non-empty list");
                Ok((
                    if *negated {
                        Expr::Not(Box::new(any))
                    } else {
                        any
                    },
                    Ty::Bool,
                ))
            }
            E::Function(f) => self.function(f, e.span()),
            _ => Err(self.err(
                e.span(),
                format!("`{e}` is not supported in a segment rule"),
            )),
        }
    }

    pub(super) fn expect_bool(&self, t: Ty, span: Span) -> Result<()> {
        if matches!(t, Ty::Bool | Ty::Null) {
            Ok(())
        } else {
            Err(self.err(
                span,
                format!("expected a boolean condition, found {}", t.name()),
            ))
        }
    }

    fn identifier(&mut self, id: &sql::Ident) -> Result<Typed> {
        let name = if id.quote_style.is_some() {
            id.value.clone()
        } else {
            id.value.to_ascii_lowercase()
        };
        if let Some((_, f)) = Field::ALL.iter().find(|(n, _)| *n == name) {
            match f {
                Field::DistinctCategories => self.needs.category_set = true,
                Field::DistinctProducts => self.needs.product_set = true,
                _ => {}
            }
            return Ok((Expr::Field(*f), f.ty()));
        }
        if let Some(i) = self.traits.iter().position(|(n, _)| *n == name) {
            let ty = match self.traits[i].1 {
                TraitType::String => Ty::Str,
                TraitType::Int => Ty::Int,
                TraitType::Float => Ty::Float,
                TraitType::Bool => Ty::Bool,
                TraitType::Timestamp => Ty::Ts,
            };
            return Ok((Expr::Trait(i), ty));
        }
        // SQL writes some functions without parentheses (`CURRENT_TIMESTAMP`).
        if let Some(f) = functions::lookup(&name).filter(|f| f.bare) {
            let call = Call {
                name: &name,
                positional: Vec::new(),
                named: Vec::new(),
                span: id.span,
            };
            return (f.lower)(self, &call);
        }
        let candidates: Vec<&str> = Field::ALL
            .iter()
            .map(|(n, _)| *n)
            .chain(self.traits.iter().map(|(n, _)| n.as_str()))
            .collect();
        let hint = did_you_mean(&name, candidates.iter().copied());
        let extra = if hint.is_empty() {
            format!(
                "; profile traits must be declared under `traits:` with a type \
                 (string, int, float, bool or timestamp), e.g. `traits: {{{name}: string}}`"
            )
        } else {
            hint
        };
        Err(self.err(id.span, format!("unknown field `{name}`{extra}")))
    }

    fn literal(&mut self, v: &sql::Value, span: Span) -> Result<Typed> {
        match v {
            sql::Value::Number(text, _) => {
                if let Ok(i) = text.parse::<i64>() {
                    Ok((Expr::Lit(Value::Int(i)), Ty::Int))
                } else if let Ok(f) = text.parse::<f64>() {
                    if f.is_finite() {
                        Ok((Expr::Lit(Value::Float(f)), Ty::Float))
                    } else {
                        Err(self.err(span, format!("number `{text}` is out of range")))
                    }
                } else {
                    Err(self.err(span, format!("`{text}` is not a number")))
                }
            }
            sql::Value::SingleQuotedString(s) | sql::Value::DoubleQuotedString(s) => {
                Ok((Expr::Lit(Value::Str(Arc::from(s.as_str()))), Ty::Str))
            }
            sql::Value::Boolean(b) => Ok((Expr::Lit(Value::Bool(*b)), Ty::Bool)),
            sql::Value::Null => Ok((Expr::Lit(Value::Null), Ty::Null)),
            other => Err(self.err(span, format!("literal `{other}` is not supported"))),
        }
    }

    fn interval(&self, iv: &sql::Interval, span: Span) -> Result<i64> {
        let text = match iv.value.as_ref() {
            sql::Expr::Value(v) => match &v.value {
                sql::Value::SingleQuotedString(s) => s.clone(),
                sql::Value::Number(n, _) => n.clone(),
                _ => {
                    return Err(self.err(
                        span,
                        "INTERVAL needs a quoted value such as INTERVAL '30 days'",
                    ))
                }
            },
            _ => return Err(self.err(span, "INTERVAL needs a constant such as INTERVAL '30 days'")),
        };
        let full = match &iv.leading_field {
            Some(unit) => format!("{text} {unit}"),
            None => text,
        };
        parse_duration_ms(&full).map_err(|m| self.err(span, m))
    }

    fn comparison(
        &mut self,
        left: &sql::Expr,
        op: &BinaryOperator,
        right: &sql::Expr,
        span: Span,
    ) -> Result<Expr> {
        let l = self.expr(left)?;
        let r = self.expr(right)?;
        let cmp = match op {
            BinaryOperator::Eq => CmpOp::Eq,
            BinaryOperator::NotEq => CmpOp::Ne,
            BinaryOperator::Lt => CmpOp::Lt,
            BinaryOperator::LtEq => CmpOp::Le,
            BinaryOperator::Gt => CmpOp::Gt,
            BinaryOperator::GtEq => CmpOp::Ge,
            _ => unreachable!("only comparison operators reach here"),
        };
        let (lt, rt) = (l.1, r.1);
        if l.0.always_null() || r.0.always_null() {
            let hint = match cmp {
                CmpOp::Eq => "write `IS NULL`",
                CmpOp::Ne => "write `IS NOT NULL`",
                _ => "test for a missing value with `IS NULL` / `IS NOT NULL`",
            };
            return Err(self.err(
                span,
                format!("a comparison with NULL is never true (it is NULL); {hint}"),
            ));
        }
        for (a, b) in [(&l.0, &r.0), (&r.0, &l.0)] {
            if let (Expr::Stage(n), Expr::Lit(Value::Str(s))) = (a, b) {
                let stages = &self.stage_names[*n];
                if !stages.iter().any(|st| **st == **s) {
                    let lifecycle = self
                        .names
                        .iter()
                        .find(|(_, &(i, _))| i == *n)
                        .map_or("", |(name, _)| name.as_str());
                    let hint = did_you_mean(s, stages.iter().map(|st| st.as_str()));
                    return Err(self.err(
                        span,
                        format!(
                            "lifecycle `{lifecycle}` has no stage `{s}`, so this is never true (its stages: {}){hint}",
                            stages.join(", ")
                        ),
                    ));
                }
            }
        }
        let (le, re) = if lt.is_numeric() && rt.is_numeric() {
            let (a, b, _) = self.unify_numeric(l, r);
            (a, b)
        } else if lt == rt || lt == Ty::Null || rt == Ty::Null {
            (l.0, r.0)
        } else if let (Ty::Ts, Ty::Str, _, Expr::Lit(Value::Str(s)))
        | (Ty::Str, Ty::Ts, Expr::Lit(Value::Str(s)), _) = (lt, rt, &l.0, &r.0)
        {
            // A string literal compared with a timestamp reads as a timestamp.
            let ms = parse_timestamp_ms(s).map_err(|m| self.err(span, m))?;
            if lt == Ty::Ts {
                (l.0, Expr::Lit(Value::Ts(ms)))
            } else {
                (Expr::Lit(Value::Ts(ms)), r.0)
            }
        } else {
            return Err(self.err(
                span,
                format!("cannot compare {} with {}", lt.name(), rt.name()),
            ));
        };
        Ok(Expr::Cmp(cmp, Box::new(le), Box::new(re)))
    }

    fn binary(
        &mut self,
        left: &sql::Expr,
        op: &BinaryOperator,
        right: &sql::Expr,
        span: Span,
    ) -> Result<Typed> {
        match op {
            BinaryOperator::And | BinaryOperator::Or => {
                let (l, lt) = self.expr(left)?;
                self.expect_bool(lt, left.span())?;
                let (r, rt) = self.expr(right)?;
                self.expect_bool(rt, right.span())?;
                let e = if matches!(op, BinaryOperator::And) {
                    Expr::And(Box::new(l), Box::new(r))
                } else {
                    Expr::Or(Box::new(l), Box::new(r))
                };
                Ok((e, Ty::Bool))
            }
            BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq => Ok((self.comparison(left, op, right, span)?, Ty::Bool)),
            BinaryOperator::Plus
            | BinaryOperator::Minus
            | BinaryOperator::Multiply
            | BinaryOperator::Divide
            | BinaryOperator::Modulo => {
                let aop = match op {
                    BinaryOperator::Plus => ArithOp::Add,
                    BinaryOperator::Minus => ArithOp::Sub,
                    BinaryOperator::Multiply => ArithOp::Mul,
                    BinaryOperator::Divide => ArithOp::Div,
                    _ => ArithOp::Mod,
                };
                let l = self.expr(left)?;
                let r = self.expr(right)?;
                self.arith(aop, l, r, span)
            }
            other => Err(self.err(span, format!("operator `{other}` is not supported"))),
        }
    }

    fn function(&mut self, f: &sql::Function, span: Span) -> Result<Typed> {
        let name = match f.name.0.as_slice() {
            [ObjectNamePart::Identifier(id)] => id.value.to_ascii_lowercase(),
            _ => return Err(self.err(span, format!("unknown function `{}`", f.name))),
        };
        let mut positional: Vec<&sql::Expr> = Vec::new();
        let mut named: Vec<(String, &sql::Expr, Span)> = Vec::new();
        match &f.args {
            FunctionArguments::None => {}
            FunctionArguments::List(list) => {
                if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
                    return Err(self.err(span, format!("`{name}` takes plain arguments")));
                }
                for a in &list.args {
                    match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => {
                            if !named.is_empty() {
                                return Err(self.err(
                                    x.span(),
                                    "positional arguments must come before named ones",
                                ));
                            }
                            positional.push(x)
                        }
                        FunctionArg::Named {
                            name: n,
                            arg: FunctionArgExpr::Expr(x),
                            operator,
                        } => {
                            if !matches!(
                                operator,
                                FunctionArgOperator::RightArrow
                                    | FunctionArgOperator::Assignment
                                    | FunctionArgOperator::Equals
                            ) {
                                return Err(
                                    self.err(n.span, "write named arguments as `name => value`")
                                );
                            }
                            let key = n.value.to_ascii_lowercase();
                            if named.iter().any(|(k, _, _)| *k == key) {
                                return Err(
                                    self.err(n.span, format!("argument `{key}` is given twice"))
                                );
                            }
                            named.push((key, x, n.span));
                        }
                        _ => {
                            return Err(self.err(span, format!("unsupported argument in `{name}`")))
                        }
                    }
                }
            }
            FunctionArguments::Subquery(_) => {
                return Err(self.err(span, "subqueries are not supported"))
            }
        }
        if f.filter.is_some() || f.over.is_some() || !f.within_group.is_empty() {
            return Err(self.err(
                span,
                format!("`{name}` does not take FILTER, OVER or WITHIN GROUP"),
            ));
        }
        let call = Call {
            name: &name,
            positional,
            named,
            span,
        };
        match functions::lookup(&name) {
            Some(f) => (f.lower)(self, &call),
            None => {
                let hint = did_you_mean(&name, functions::names());
                let field_hint = if Field::ALL.iter().any(|(n, _)| *n == name) {
                    format!("; `{name}` is a field, write it without parentheses")
                } else {
                    hint
                };
                Err(self.err(span, format!("unknown function `{name}`{field_hint}")))
            }
        }
    }
}
