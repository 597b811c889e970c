//! Type-checks and compiles a rule set: SQL text (parsed by `sqlparser`) to
//! typed expressions, plus the state the rules need and the evaluation order
//! of segments and lifecycles.

use std::collections::HashMap;
use std::sync::Arc;

use sqlparser::ast::{
    self as sql, BinaryOperator, FunctionArg, FunctionArgExpr, FunctionArgOperator,
    FunctionArguments, InTarget, ObjectNamePart, Spanned, UnaryOperator,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Span, Token, Tokenizer};

use super::diagnostics::{did_you_mean, parser_location, rule_error};
use super::expr::{ArithOp, Cast, CmpOp, Expr, Field, Ty, Value};
use super::needs::{Accumulator, Measure, Needs, Source, Window};
use super::ruleset::{RuleSetSpec, TraitType};
use crate::error::{EngineError, Result};
use crate::time::{parse_duration_ms, parse_timestamp_ms};

/// Longest accepted rule text; longer input is refused before parsing.
const MAX_RULE_LEN: usize = 64 * 1024;
/// Most tokens in one rule (keeps compiled expressions shallow).
const MAX_RULE_TOKENS: usize = 2_000;

/// What kind of node a segment or lifecycle compiles to.
#[derive(Debug, Clone)]
pub enum NodeKind {
    /// A segment.
    Segment {
        /// Compiled rule.
        rule: Expr,
        /// Holdout percent.
        holdout: f64,
        /// Cooldown in ms.
        cooldown: Option<i64>,
    },
    /// A lifecycle: stage names and rules in order.
    Lifecycle {
        /// `(name, rule)` in priority order.
        stages: Vec<(String, Expr)>,
    },
}

/// A compiled segment or lifecycle.
#[derive(Debug, Clone)]
pub struct Node {
    /// Name as in the rules.
    pub name: String,
    /// What it is.
    pub kind: NodeKind,
    /// Nodes it reads (`in_segment`, `stage`).
    pub deps: Vec<usize>,
    /// True when its value can change with time alone.
    pub time_dependent: bool,
}

impl Node {
    /// True for segments.
    pub fn is_segment(&self) -> bool {
        matches!(self.kind, NodeKind::Segment { .. })
    }
}

/// A compiled rule set.
#[derive(Debug, Clone)]
pub struct CompiledRules {
    /// The source spec.
    pub spec: RuleSetSpec,
    /// Segments first, then lifecycles, in spec order.
    pub nodes: Vec<Node>,
    /// Evaluation order (dependencies first).
    pub order: Vec<usize>,
    /// State the rules need.
    pub needs: Needs,
    /// Declared traits, in a fixed order.
    pub traits: Vec<(String, TraitType)>,
    /// Minor units per currency unit.
    pub scale: i64,
    /// Allowed lateness in ms.
    pub lateness: i64,
    /// Holdout salt.
    pub salt: String,
    /// Fingerprint of the spec.
    pub fingerprint: String,
}

impl CompiledRules {
    /// Node index by name.
    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// True when some rule depends on time.
    pub fn any_time_dependent(&self) -> bool {
        self.nodes.iter().any(|n| n.time_dependent)
    }
}

const FUNCTIONS: &[&str] = &[
    "now",
    "has_category",
    "has_product",
    "purchases",
    "spend",
    "events",
    "last_event_at",
    "first_purchase_at",
    "last_purchase_at",
    "purchased_in_month",
    "month",
    "year",
    "in_segment",
    "stage",
    "coalesce",
];

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

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
    let mut names: HashMap<String, (usize, bool)> = HashMap::new();
    let mut index = 0usize;
    let node_names = spec
        .segments
        .iter()
        .map(|s| (&s.name, "segment"))
        .chain(spec.lifecycles.iter().map(|l| (&l.name, "lifecycle")));
    for (name, what) in node_names {
        // Snapshots and memberships have a column per segment and lifecycle
        // beside these; a clash would give a table with two columns of one name.
        if name == "customer_id" || Field::ALL.iter().any(|(n, _)| *n == name.as_str()) {
            return Err(EngineError::rule_plain(format!(
                "{what} `{name}` has the name of an output column (`customer_id` or an aggregate such as `ltv`); rename it, e.g. `{name}_segment`"
            )));
        }
    }
    for s in &spec.segments {
        check_name(&s.name, "segment")?;
        if names.insert(s.name.clone(), (index, true)).is_some() {
            return Err(EngineError::rule_plain(format!(
                "segment `{}` is defined twice",
                s.name
            )));
        }
        index += 1;
    }
    for l in &spec.lifecycles {
        check_name(&l.name, "lifecycle")?;
        if names.insert(l.name.clone(), (index, false)).is_some() {
            return Err(EngineError::rule_plain(format!(
                "`{}` is defined twice (segments and lifecycles share one namespace)",
                l.name
            )));
        }
        index += 1;
        if l.stages.is_empty() {
            return Err(EngineError::rule_plain(format!(
                "lifecycle `{}` has no stages",
                l.name
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for st in &l.stages {
            check_name(&st.name, "stage")?;
            if !seen.insert(st.name.as_str()) {
                return Err(EngineError::rule_plain(format!(
                    "lifecycle `{}` has stage `{}` twice",
                    l.name, st.name
                )));
            }
        }
    }
    for t in spec.traits.keys() {
        check_name(t, "trait")?;
        if Field::ALL.iter().any(|(n, _)| n == t) || FUNCTIONS.contains(&t.as_str()) {
            return Err(EngineError::rule_plain(format!(
                "trait `{t}` has the name of a built-in field or function; rename it"
            )));
        }
    }
    let traits: Vec<(String, TraitType)> =
        spec.traits.iter().map(|(k, v)| (k.clone(), *v)).collect();
    let stage_names: Vec<Vec<String>> = spec
        .segments
        .iter()
        .map(|_| Vec::new())
        .chain(
            spec.lifecycles
                .iter()
                .map(|l| l.stages.iter().map(|st| st.name.clone()).collect()),
        )
        .collect();
    let mut needs = Needs::default();
    let mut nodes = Vec::new();
    for s in &spec.segments {
        let mut c = Compiler::new(
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
            let mut c = Compiler::new(
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
    let order = topo_order(&nodes)?;
    // Time dependence flows along in_segment / stage references.
    for &i in &order {
        let inherited = nodes[i].deps.iter().any(|&d| nodes[d].time_dependent);
        nodes[i].time_dependent |= inherited;
    }
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

fn check_name(name: &str, what: &str) -> Result<()> {
    if is_identifier(name) && name.len() <= 128 {
        Ok(())
    } else {
        Err(EngineError::rule_plain(format!(
            "{what} name `{name}` must be lowercase letters, digits and underscores, starting with a letter"
        )))
    }
}

fn topo_order(nodes: &[Node]) -> Result<Vec<usize>> {
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut mark = vec![0u8; nodes.len()];
    let mut order = Vec::with_capacity(nodes.len());
    let mut stack: Vec<usize> = Vec::new();
    fn visit(
        i: usize,
        nodes: &[Node],
        mark: &mut [u8],
        order: &mut Vec<usize>,
        stack: &mut Vec<usize>,
    ) -> Result<()> {
        match mark[i] {
            2 => return Ok(()),
            1 => {
                let start = stack.iter().position(|&s| s == i).unwrap_or(0);
                let mut cycle: Vec<&str> = stack[start..]
                    .iter()
                    .map(|&s| nodes[s].name.as_str())
                    .collect();
                cycle.push(&nodes[i].name);
                return Err(EngineError::rule_plain(format!(
                    "segments reference each other in a cycle: {}",
                    cycle.join(" -> ")
                )));
            }
            _ => {}
        }
        mark[i] = 1;
        stack.push(i);
        for &d in &nodes[i].deps {
            visit(d, nodes, mark, order, stack)?;
        }
        stack.pop();
        mark[i] = 2;
        order.push(i);
        Ok(())
    }
    for i in 0..nodes.len() {
        visit(i, nodes, &mut mark, &mut order, &mut stack)?;
    }
    Ok(order)
}

struct Compiler<'a> {
    label: &'a str,
    source: &'a str,
    scale: i64,
    names: &'a HashMap<String, (usize, bool)>,
    /// Stage names by node index (empty for segments).
    stage_names: &'a [Vec<String>],
    traits: &'a [(String, TraitType)],
    needs: &'a mut Needs,
    deps: Vec<usize>,
    uses_time: bool,
}

type Typed = (Expr, Ty);

impl<'a> Compiler<'a> {
    fn new(
        label: &'a str,
        source: &'a str,
        scale: i64,
        names: &'a HashMap<String, (usize, bool)>,
        stage_names: &'a [Vec<String>],
        traits: &'a [(String, TraitType)],
        needs: &'a mut Needs,
    ) -> Result<Self> {
        Ok(Compiler {
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

    fn err(&self, span: Span, message: impl AsRef<str>) -> EngineError {
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
        if self.source.trim().is_empty() {
            return Err(EngineError::rule_plain(format!(
                "rule `{}` is empty",
                self.label
            )));
        }
        if self.source.len() > MAX_RULE_LEN {
            return Err(EngineError::rule_plain(format!(
                "rule `{}` is longer than {MAX_RULE_LEN} bytes",
                self.label
            )));
        }
        let dialect = GenericDialect {};
        // Long operator chains parse fine but nest deeply once compiled; cap the
        // size so that no rule text can exhaust the stack.
        if let Ok(tokens) = Tokenizer::new(&dialect, self.source).tokenize() {
            let n = tokens
                .iter()
                .filter(|t| !matches!(t, Token::Whitespace(_)))
                .count();
            if n > MAX_RULE_TOKENS {
                return Err(EngineError::rule_plain(format!(
                    "rule `{}` has {n} tokens, more than the {MAX_RULE_TOKENS} allowed; split it into segments combined with in_segment()",
                    self.label
                )));
            }
        }
        let parsed = Parser::new(&dialect)
            .with_recursion_limit(64)
            .try_with_sql(self.source)
            .and_then(|mut p| {
                let e = p.parse_expr()?;
                let next = p.peek_token();
                if next.token != Token::EOF {
                    return Err(ParserError::ParserError(format!(
                        "unexpected `{}` after the end of the expression at Line: {}, Column: {}",
                        next.token, next.span.start.line, next.span.start.column
                    )));
                }
                Ok(e)
            });
        let ast = match parsed {
            Ok(e) => e,
            Err(ParserError::RecursionLimitExceeded) => {
                return Err(EngineError::rule_plain(format!(
                    "rule `{}` is nested too deeply",
                    self.label
                )))
            }
            Err(ParserError::TokenizerError(m)) | Err(ParserError::ParserError(m)) => {
                let (line, column) = parser_location(&m);
                let msg = m.split(" at Line:").next().unwrap_or(&m).to_string();
                return Err(rule_error(
                    self.label,
                    self.source,
                    line,
                    column,
                    1,
                    &format!("syntax error: {msg}"),
                ));
            }
        };
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

    fn expr(&mut self, e: &sql::Expr) -> Result<Typed> {
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

    fn expect_bool(&self, t: Ty, span: Span) -> Result<()> {
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
        if matches!(name.as_str(), "current_timestamp" | "now") {
            self.uses_time = true;
            return Ok((Expr::Now, Ty::Ts));
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

    fn coerce_to_money(&self, e: Expr, t: Ty) -> Option<Expr> {
        match (t, e) {
            (Ty::Money, e) => Some(e),
            (Ty::Null, e) => Some(e),
            (Ty::Int, Expr::Lit(Value::Int(n))) => n
                .checked_mul(self.scale)
                .map(|m| Expr::Lit(Value::Money(m))),
            (Ty::Int, e) => Some(Expr::Cast(Cast::IntToMoney, Box::new(e))),
            (Ty::Float, Expr::Lit(Value::Float(f))) => {
                let scaled = f * self.scale as f64;
                let rounded = scaled.round();
                if (scaled - rounded).abs() < 1e-6 && rounded.abs() < 9.0e15 {
                    Some(Expr::Lit(Value::Money(rounded as i64)))
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    fn to_float(e: Expr, t: Ty) -> Expr {
        match t {
            Ty::Int => Expr::Cast(Cast::IntToFloat, Box::new(e)),
            Ty::Money => Expr::Cast(Cast::MoneyToFloat, Box::new(e)),
            _ => e,
        }
    }

    /// Brings two numeric operands to one type.
    fn unify_numeric(&self, l: Typed, r: Typed) -> (Expr, Expr, Ty) {
        let ((le, lt), (re, rt)) = (l, r);
        match (lt, rt) {
            (a, b) if a == b => (le, re, a),
            (Ty::Null, b) => (le, re, b),
            (a, Ty::Null) => (le, re, a),
            (Ty::Money, _) | (_, Ty::Money) => {
                let (lc, rc) = (lt, rt);
                let l2 = self.coerce_to_money(le.clone(), lc);
                let r2 = self.coerce_to_money(re.clone(), rc);
                match (l2, r2) {
                    (Some(a), Some(b)) => (a, b, Ty::Money),
                    _ => (Self::to_float(le, lc), Self::to_float(re, rc), Ty::Float),
                }
            }
            _ => (Self::to_float(le, lt), Self::to_float(re, rt), Ty::Float),
        }
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
        if matches!(l.0, Expr::Lit(Value::Null)) || matches!(r.0, Expr::Lit(Value::Null)) {
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
                    let hint = did_you_mean(s, stages.iter().map(|st| st.as_str()));
                    return Err(self.err(
                        span,
                        format!(
                            "lifecycle has no stage `{s}` (its stages: {}){hint}",
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

    fn arith(&mut self, op: ArithOp, l: Typed, r: Typed, span: Span) -> Result<Typed> {
        use ArithOp::*;
        let (lt, rt) = (l.1, r.1);
        let mk = |a: Expr, b: Expr, t: Ty| (Expr::Arith(op, Box::new(a), Box::new(b), t), t);
        let bad = || {
            self.err(
                span,
                format!(
                    "cannot apply `{}` to {} and {}",
                    op_symbol(op),
                    lt.name(),
                    rt.name()
                ),
            )
        };
        Ok(match (lt, rt) {
            (Ty::Null, _) | (_, Ty::Null) => {
                (Expr::Lit(Value::Null), if lt == Ty::Null { rt } else { lt })
            }
            (Ty::Int, Ty::Int) if op == Div => {
                mk(Self::to_float(l.0, lt), Self::to_float(r.0, rt), Ty::Float)
            }
            (Ty::Int, Ty::Int) => mk(l.0, r.0, Ty::Int),
            (Ty::Money, Ty::Money) if matches!(op, Add | Sub) => mk(l.0, r.0, Ty::Money),
            (Ty::Money, Ty::Money) if op == Div => {
                mk(Self::to_float(l.0, lt), Self::to_float(r.0, rt), Ty::Float)
            }
            (Ty::Money, Ty::Int | Ty::Float) | (Ty::Int | Ty::Float, Ty::Money)
                if matches!(op, Add | Sub) =>
            {
                let (a, b, t) = self.unify_numeric(l, r);
                mk(a, b, t)
            }
            (Ty::Money, Ty::Int) if matches!(op, Mul | Div) => mk(l.0, r.0, Ty::Money),
            (Ty::Int, Ty::Money) if op == Mul => mk(r.0, l.0, Ty::Money),
            (Ty::Money, Ty::Float) if matches!(op, Mul | Div) => mk(l.0, r.0, Ty::Money),
            (Ty::Float, Ty::Money) if op == Mul => mk(r.0, l.0, Ty::Money),
            (a, b) if a.is_numeric() && b.is_numeric() => {
                mk(Self::to_float(l.0, a), Self::to_float(r.0, b), Ty::Float)
            }
            (Ty::Ts, Ty::Interval) if matches!(op, Add | Sub) => mk(l.0, r.0, Ty::Ts),
            (Ty::Interval, Ty::Ts) if op == Add => mk(r.0, l.0, Ty::Ts),
            (Ty::Ts, Ty::Ts) if op == Sub => mk(l.0, r.0, Ty::Interval),
            (Ty::Interval, Ty::Interval) if matches!(op, Add | Sub) => mk(l.0, r.0, Ty::Interval),
            (Ty::Interval, Ty::Int) if matches!(op, Mul | Div) => mk(l.0, r.0, Ty::Interval),
            (Ty::Int, Ty::Interval) if op == Mul => mk(r.0, l.0, Ty::Interval),
            _ => return Err(bad()),
        })
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
        let arity = |n: usize, this: &Self| -> Result<()> {
            if positional.len() != n || !named.is_empty() {
                Err(this.err(
                    span,
                    format!(
                        "`{name}` takes {n} argument{}",
                        if n == 1 { "" } else { "s" }
                    ),
                ))
            } else {
                Ok(())
            }
        };
        match name.as_str() {
            "now" | "current_timestamp" => {
                arity(0, self)?;
                self.uses_time = true;
                Ok((Expr::Now, Ty::Ts))
            }
            "has_category" | "has_product" => {
                arity(1, self)?;
                let v = self.string_arg(positional[0])?;
                let source = if name == "has_category" {
                    Source::Purchase {
                        product: None,
                        category: Some(v),
                        flag: None,
                    }
                } else {
                    Source::Purchase {
                        product: Some(v),
                        category: None,
                        flag: None,
                    }
                };
                let i = self.needs.accumulator(Accumulator {
                    source,
                    window: Window::All,
                    measure: Measure::First,
                });
                Ok((Expr::IsNull(Box::new(Expr::Acc(i, Ty::Ts)), true), Ty::Bool))
            }
            "purchases" | "spend" => {
                if let Some(x) = positional.first() {
                    return Err(self.err(x.span(), format!("`{name}` takes named arguments only: product =>, category =>, flag =>, within =>, since =>, between =>")));
                }
                let (source, window, within) = self.filters(&named, true, None)?;
                let measure = if name == "purchases" {
                    Measure::Count
                } else {
                    Measure::Spend
                };
                let ty = if name == "purchases" {
                    Ty::Int
                } else {
                    Ty::Money
                };
                Ok(self.windowed(source, window, within, measure, ty))
            }
            "events" => {
                if positional.len() != 1 {
                    return Err(self.err(span, "`events` takes the signal name first: events('page_view', within => INTERVAL '30 days')"));
                }
                let sig = self.string_arg(positional[0])?;
                let (source, window, within) = self.filters(&named, false, Some(sig))?;
                Ok(self.windowed(source, window, within, Measure::Count, Ty::Int))
            }
            "last_event_at" => {
                arity(1, self)?;
                let sig = self.string_arg(positional[0])?;
                let i = self.needs.accumulator(Accumulator {
                    source: Source::Signal(sig),
                    window: Window::All,
                    measure: Measure::Last,
                });
                Ok((Expr::Acc(i, Ty::Ts), Ty::Ts))
            }
            "first_purchase_at" | "last_purchase_at" => {
                if let Some(x) = positional.first() {
                    return Err(self.err(
                        x.span(),
                        format!(
                            "`{name}` takes named filters only: product =>, category =>, flag =>"
                        ),
                    ));
                }
                let (source, window, within) = self.filters(&named, true, None)?;
                if within.is_some() || window != Window::All {
                    return Err(self.err(span, format!("`{name}` takes no time window")));
                }
                let measure = if name == "first_purchase_at" {
                    Measure::First
                } else {
                    Measure::Last
                };
                let i = self.needs.accumulator(Accumulator {
                    source,
                    window,
                    measure,
                });
                Ok((Expr::Acc(i, Ty::Ts), Ty::Ts))
            }
            "purchased_in_month" => {
                if positional.is_empty() || positional.len() > 2 || !named.is_empty() {
                    return Err(self.err(
                        span,
                        "`purchased_in_month` takes a month (1-12) and optionally a year",
                    ));
                }
                self.needs.months = true;
                let m = self.int_arg(positional[0])?;
                let y = match positional.get(1) {
                    Some(x) => Some(Box::new(self.int_arg(x)?)),
                    None => None,
                };
                Ok((Expr::PurchasedInMonth(Box::new(m), y), Ty::Bool))
            }
            "month" | "year" => {
                arity(1, self)?;
                let (x, t) = self.expr(positional[0])?;
                if !matches!(t, Ty::Ts | Ty::Null) {
                    return Err(self.err(
                        positional[0].span(),
                        format!("`{name}` needs a timestamp, found {}", t.name()),
                    ));
                }
                let e = if name == "month" {
                    Expr::Month(Box::new(x))
                } else {
                    Expr::Year(Box::new(x))
                };
                Ok((e, Ty::Int))
            }
            "in_segment" | "stage" => {
                arity(1, self)?;
                let target = self.string_arg(positional[0])?;
                let want_segment = name == "in_segment";
                match self.names.get(&target) {
                    Some(&(idx, is_seg)) if is_seg == want_segment => {
                        self.deps.push(idx);
                        if want_segment {
                            Ok((Expr::InSegment(idx), Ty::Bool))
                        } else {
                            Ok((Expr::Stage(idx), Ty::Str))
                        }
                    }
                    Some(_) => Err(self.err(
                        positional[0].span(),
                        if want_segment {
                            format!(
                                "`{target}` is a lifecycle; use stage('{target}') = 'stage_name'"
                            )
                        } else {
                            format!("`{target}` is a segment; use in_segment('{target}')")
                        },
                    )),
                    None => {
                        let known: Vec<&str> = self
                            .names
                            .iter()
                            .filter(|(_, (_, s))| *s == want_segment)
                            .map(|(k, _)| k.as_str())
                            .collect();
                        let hint = did_you_mean(&target, known.iter().copied());
                        Err(self.err(
                            positional[0].span(),
                            format!(
                                "unknown {} `{target}`{hint}",
                                if want_segment { "segment" } else { "lifecycle" }
                            ),
                        ))
                    }
                }
            }
            "coalesce" => {
                if positional.is_empty() || !named.is_empty() {
                    return Err(self.err(span, "`coalesce` takes one or more arguments"));
                }
                let mut items = Vec::new();
                let mut ty = Ty::Null;
                for x in positional {
                    let (e, t) = self.expr(x)?;
                    if ty == Ty::Null {
                        ty = t;
                    } else if t != ty && t != Ty::Null {
                        let (e2, ok) = match (ty, t) {
                            (Ty::Money, Ty::Int) | (Ty::Money, Ty::Float) => {
                                match self.coerce_to_money(e.clone(), t) {
                                    Some(m) => (m, true),
                                    None => (e.clone(), false),
                                }
                            }
                            (Ty::Float, Ty::Int | Ty::Money) => {
                                (Self::to_float(e.clone(), t), true)
                            }
                            _ => (e.clone(), false),
                        };
                        if !ok {
                            return Err(self.err(
                                x.span(),
                                format!("coalesce mixes {} and {}", ty.name(), t.name()),
                            ));
                        }
                        items.push(e2);
                        continue;
                    }
                    items.push(e);
                }
                Ok((Expr::Coalesce(items), ty))
            }
            _ => {
                let hint = did_you_mean(&name, FUNCTIONS.iter().copied());
                let field_hint = if Field::ALL.iter().any(|(n, _)| *n == name) {
                    format!("; `{name}` is a field, write it without parentheses")
                } else {
                    hint
                };
                Err(self.err(span, format!("unknown function `{name}`{field_hint}")))
            }
        }
    }

    fn windowed(
        &mut self,
        source: Source,
        window: Window,
        within: Option<i64>,
        measure: Measure,
        ty: Ty,
    ) -> Typed {
        if let Some(d) = within {
            self.uses_time = true;
            let h = self.needs.history(source, d);
            let e = if measure == Measure::Count {
                Expr::WindowCount(h, d)
            } else {
                Expr::WindowSpend(h, d)
            };
            (e, ty)
        } else {
            let i = self.needs.accumulator(Accumulator {
                source,
                window,
                measure,
            });
            (Expr::Acc(i, ty), ty)
        }
    }

    /// Reads filter and window arguments.
    fn filters(
        &mut self,
        named: &[(String, &sql::Expr, Span)],
        purchase: bool,
        signal: Option<String>,
    ) -> Result<(Source, Window, Option<i64>)> {
        let (mut product, mut category, mut flag) = (None, None, None);
        let mut window = Window::All;
        let mut within = None;
        let mut time_args = 0;
        for (key, x, kspan) in named {
            match key.as_str() {
                "product" if purchase => product = Some(self.string_arg(x)?),
                "category" if purchase => category = Some(self.string_arg(x)?),
                "flag" if purchase => flag = Some(self.string_arg(x)?),
                "within" => {
                    time_args += 1;
                    let (e, t) = self.expr(x)?;
                    match (t, e) {
                        (Ty::Interval, Expr::Lit(Value::Interval(ms))) if ms > 0 => {
                            within = Some(ms)
                        }
                        _ => return Err(self.err(
                            x.span(),
                            "`within` needs a positive constant interval, e.g. INTERVAL '30 days'",
                        )),
                    }
                }
                "since" => {
                    time_args += 1;
                    window = Window::Since(self.ts_arg(x)?);
                }
                "between" => {
                    time_args += 1;
                    let sql::Expr::Tuple(items) = x else {
                        return Err(self.err(x.span(), "`between` needs two timestamps: between => (DATE '2024-11-01', DATE '2024-12-01')"));
                    };
                    if items.len() != 2 {
                        return Err(self.err(x.span(), "`between` needs exactly two timestamps"));
                    }
                    let (a, b) = (self.ts_arg(&items[0])?, self.ts_arg(&items[1])?);
                    if a >= b {
                        return Err(
                            self.err(x.span(), "`between`: the start must come before the end")
                        );
                    }
                    window = Window::Between(a, b);
                }
                other => {
                    let allowed: &[&str] = if purchase {
                        &["product", "category", "flag", "within", "since", "between"]
                    } else {
                        &["within", "since", "between"]
                    };
                    let hint = did_you_mean(other, allowed.iter().copied());
                    return Err(self.err(
                        *kspan,
                        format!(
                            "unknown argument `{other}`{hint} (allowed: {})",
                            allowed.join(", ")
                        ),
                    ));
                }
            }
        }
        if time_args > 1 {
            return Err(self.err(
                named[0].2,
                "give at most one of `within`, `since`, `between`",
            ));
        }
        let source = match signal {
            Some(s) => Source::Signal(s),
            None => Source::Purchase {
                product,
                category,
                flag,
            },
        };
        Ok((source, window, within))
    }

    fn string_arg(&mut self, x: &sql::Expr) -> Result<String> {
        match x {
            sql::Expr::Value(v) => match &v.value {
                sql::Value::SingleQuotedString(s) | sql::Value::DoubleQuotedString(s) => {
                    Ok(s.clone())
                }
                _ => Err(self.err(x.span(), "expected a quoted string such as 'kitchen'")),
            },
            _ => Err(self.err(x.span(), "expected a quoted string such as 'kitchen'")),
        }
    }

    fn ts_arg(&mut self, x: &sql::Expr) -> Result<i64> {
        let (e, t) = self.expr(x)?;
        match (t, e) {
            (Ty::Ts, Expr::Lit(Value::Ts(ms))) => Ok(ms),
            (Ty::Str, Expr::Lit(Value::Str(s))) => {
                parse_timestamp_ms(&s).map_err(|m| self.err(x.span(), m))
            }
            _ => Err(self.err(
                x.span(),
                "expected a constant timestamp such as DATE '2024-01-01'",
            )),
        }
    }

    fn int_arg(&mut self, x: &sql::Expr) -> Result<Expr> {
        let (e, t) = self.expr(x)?;
        if matches!(t, Ty::Int | Ty::Null) {
            Ok(e)
        } else {
            Err(self.err(x.span(), format!("expected an integer, found {}", t.name())))
        }
    }
}

fn op_symbol(op: ArithOp) -> &'static str {
    match op {
        ArithOp::Add => "+",
        ArithOp::Sub => "-",
        ArithOp::Mul => "*",
        ArithOp::Div => "/",
        ArithOp::Mod => "%",
    }
}
