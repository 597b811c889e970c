//! Lowers a compiled rule (`Expr`) into a flat program of typed column
//! operations, which the kernel runs over a chunk of customers at once.
//!
//! Every value lives in a register: a column of `i64` (integers, money,
//! timestamps, intervals), `f64`, or three-valued booleans. Each step runs
//! for the positions of one selection vector; `AND`, `OR` and `COALESCE`
//! narrow the selection for their later operands, so a right-hand side is
//! neither computed nor asked for breakpoints where the left side decided.
//! How fast a value moves with the clock (its slope) is known statically, so
//! a comparison knows at compile time whether it has a crossing to find.
//! The rare shapes without a columnar form (string traits, calendar
//! functions, slopes that depend on data) run through the scalar interpreter
//! for the positions that reach them.

use crate::rules::compiled::{CompiledRules, NodeKind};
use crate::rules::expr::{ArithOp, Cast, CmpOp, Expr, Field, Ty, Value};
use crate::rules::needs::Measure;
use crate::rules::ruleset::TraitType;

/// A register index.
pub type Reg = u16;
/// A selection-vector index; 0 is the program's input selection.
pub type SelId = u16;

/// What a register holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `i64` with a null flag: integers, money, timestamps, intervals.
    Int,
    /// `f64` with a null flag.
    Float,
    /// 0 = FALSE, 1 = TRUE, 2 = NULL.
    Bool,
}

/// Three-valued boolean codes in `Kind::Bool` registers.
pub const FALSE: u8 = 0;
/// TRUE.
pub const TRUE: u8 = 1;
/// NULL.
pub const NULL: u8 = 2;

/// A constant, already in register form.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Const {
    /// An integer-kind value (None = NULL).
    Int(Option<i64>),
    /// A float (None = NULL).
    Float(Option<f64>),
    /// A boolean code.
    Bool(u8),
}

/// One typed operation. `dst` registers are written for the step's selection only.
#[derive(Debug, Clone)]
pub enum Op {
    /// Fill with a constant.
    Const { dst: Reg, v: Const },
    /// The evaluation instant of each position.
    Now { dst: Reg },
    /// `now() + offset` (overflow is NULL), the usual `now() - INTERVAL '…'`.
    NowPlus { dst: Reg, offset: i64 },
    /// A base aggregate.
    Field { dst: Reg, f: Field },
    /// A scalar accumulator.
    Acc {
        dst: Reg,
        i: usize,
        measure: Measure,
    },
    /// A numeric, boolean or timestamp trait.
    Trait { dst: Reg, i: usize, kind: Kind },
    /// Windowed count or spend; breakpoint when the oldest live entry leaves.
    Window {
        dst: Reg,
        h: usize,
        d: i64,
        count: bool,
    },
    /// `window <op> k`: the breakpoint is the instant the comparison flips.
    WindowCmp {
        dst: Reg,
        h: usize,
        d: i64,
        count: bool,
        op: CmpOp,
        k: i64,
    },
    /// `in_segment(n)`.
    InSegment { dst: Reg, n: usize },
    /// `stage(n) = 'name'` (`eq`) or `<>`; `stage` is `None` for an unknown name.
    StageIs {
        dst: Reg,
        n: usize,
        stage: Option<u8>,
        eq: bool,
    },
    /// The scalar interpreter, for shapes without a columnar form.
    Scalar {
        dst: Reg,
        expr: Box<Expr>,
        kind: Kind,
    },
    /// Keep the positions of `from` whose boolean is not `drop`.
    NarrowBool {
        from: SelId,
        reg: Reg,
        drop: u8,
        to: SelId,
    },
    /// Keep the positions of `from` whose value is NULL.
    NarrowNull {
        from: SelId,
        reg: Reg,
        kind: Kind,
        to: SelId,
    },
    /// Boolean NOT.
    Not { dst: Reg, a: Reg },
    /// Boolean AND (`b` was computed where `a` is not FALSE).
    And { dst: Reg, a: Reg, b: Reg },
    /// Boolean OR (`b` was computed where `a` is not TRUE).
    Or { dst: Reg, a: Reg, b: Reg },
    /// IS [NOT] NULL.
    IsNull {
        dst: Reg,
        a: Reg,
        kind: Kind,
        negated: bool,
    },
    /// IS [NOT] TRUE / FALSE.
    IsBool {
        dst: Reg,
        a: Reg,
        want: bool,
        negated: bool,
    },
    /// Integer-kind comparison; `slope` (d(a-b)/d now) is non-zero for times that move.
    CmpInt {
        dst: Reg,
        op: CmpOp,
        a: Reg,
        b: Reg,
        slope: i64,
    },
    /// Integer-kind comparison with a constant that does not move with time.
    CmpIntLit { dst: Reg, op: CmpOp, a: Reg, k: i64 },
    /// Float comparison (NaN compares as NULL).
    CmpFloat { dst: Reg, op: CmpOp, a: Reg, b: Reg },
    /// Boolean comparison (FALSE < TRUE).
    CmpBool { dst: Reg, op: CmpOp, a: Reg, b: Reg },
    /// Checked integer arithmetic (overflow and division by zero are NULL).
    ArithInt {
        dst: Reg,
        op: ArithOp,
        a: Reg,
        b: Reg,
    },
    /// Money with a float, rounded back to minor units.
    ArithMoneyFloat {
        dst: Reg,
        op: ArithOp,
        a: Reg,
        b: Reg,
    },
    /// Float arithmetic (non-finite results are NULL).
    ArithFloat {
        dst: Reg,
        op: ArithOp,
        a: Reg,
        b: Reg,
    },
    /// Unary minus on an integer kind.
    NegInt { dst: Reg, a: Reg },
    /// Unary minus on a float.
    NegFloat { dst: Reg, a: Reg },
    /// Integer currency units to minor units.
    IntToMoney { dst: Reg, a: Reg, scale: i64 },
    /// Integer to float.
    IntToFloat { dst: Reg, a: Reg },
    /// Minor units to float currency units.
    MoneyToFloat { dst: Reg, a: Reg, scale: i64 },
    /// First non-null of `items` (item k was computed where items before it are NULL).
    Coalesce {
        dst: Reg,
        kind: Kind,
        items: Vec<Reg>,
    },
}

/// A step: an operation and the selection it runs for.
#[derive(Debug, Clone)]
pub struct Step {
    /// Positions to compute.
    pub sel: SelId,
    /// What to compute.
    pub op: Op,
}

/// One rule as a flat program; `out` is a boolean register.
#[derive(Debug, Clone)]
pub struct Program {
    /// Steps in order.
    pub steps: Vec<Step>,
    /// Kind of each register.
    pub kinds: Vec<Kind>,
    /// Number of selection vectors (including the input, 0).
    pub sels: u16,
    /// The rule's truth.
    pub out: Reg,
    /// Steps that run the scalar interpreter (0 for the common rule shapes).
    pub scalar_steps: usize,
}

/// The programs of a whole rule set, by node.
#[derive(Debug, Clone, Default)]
pub struct Programs {
    /// For a segment, one program; for a lifecycle, one per stage.
    pub nodes: Vec<Vec<Program>>,
}

impl Programs {
    /// Lowers every rule of the rule set.
    pub fn lower(rules: &CompiledRules) -> Programs {
        let nodes = rules
            .nodes
            .iter()
            .map(|node| match &node.kind {
                NodeKind::Segment { rule, .. } => vec![lower_rule(rules, rule)],
                NodeKind::Lifecycle { stages } => {
                    stages.iter().map(|(_, r)| lower_rule(rules, r)).collect()
                }
            })
            .collect();
        Programs { nodes }
    }

    /// The most registers and selections any program uses.
    pub fn max_shape(&self) -> (usize, usize) {
        let mut regs = 0;
        let mut sels = 0;
        for p in self.nodes.iter().flatten() {
            regs = regs.max(p.kinds.len());
            sels = sels.max(p.sels as usize);
        }
        (regs, sels)
    }
}

/// Lowers one rule to a program.
pub fn lower_rule(rules: &CompiledRules, rule: &Expr) -> Program {
    let mut b = Builder {
        rules,
        steps: Vec::new(),
        kinds: Vec::new(),
        sels: 1,
        scalar_steps: 0,
    };
    let out = b.lower_bool(rule, 0);
    Program {
        steps: b.steps,
        kinds: b.kinds,
        sels: b.sels,
        out,
        scalar_steps: b.scalar_steps,
    }
}

struct Builder<'a> {
    rules: &'a CompiledRules,
    steps: Vec<Step>,
    kinds: Vec<Kind>,
    sels: u16,
    scalar_steps: usize,
}

/// The register kind of a static type (`None` for strings and bare NULL).
fn kind_of(t: Ty) -> Option<Kind> {
    match t {
        Ty::Bool => Some(Kind::Bool),
        Ty::Int | Ty::Money | Ty::Ts | Ty::Interval => Some(Kind::Int),
        Ty::Float => Some(Kind::Float),
        Ty::Str | Ty::Null => None,
    }
}

fn is_time(t: Ty) -> bool {
    matches!(t, Ty::Ts | Ty::Interval)
}

impl<'a> Builder<'a> {
    fn reg(&mut self, kind: Kind) -> Reg {
        self.kinds.push(kind);
        (self.kinds.len() - 1) as Reg
    }

    fn sel(&mut self) -> SelId {
        self.sels += 1;
        self.sels - 1
    }

    fn push(&mut self, sel: SelId, op: Op) {
        self.steps.push(Step { sel, op });
    }

    /// Static type of a compiled expression (the compiler has checked it).
    fn ty(&self, e: &Expr) -> Ty {
        match e {
            Expr::Lit(v) => match v {
                Value::Null => Ty::Null,
                Value::Bool(_) => Ty::Bool,
                Value::Int(_) => Ty::Int,
                Value::Money(_) => Ty::Money,
                Value::Float(_) => Ty::Float,
                Value::Str(_) => Ty::Str,
                Value::Ts(_) => Ty::Ts,
                Value::Interval(_) => Ty::Interval,
            },
            Expr::Field(f) => f.ty(),
            Expr::Now => Ty::Ts,
            Expr::Trait(i) => match self.rules.traits[*i].1 {
                TraitType::String => Ty::Str,
                TraitType::Int => Ty::Int,
                TraitType::Float => Ty::Float,
                TraitType::Bool => Ty::Bool,
                TraitType::Timestamp => Ty::Ts,
            },
            Expr::Acc(_, t) => *t,
            Expr::WindowCount(..) => Ty::Int,
            Expr::WindowSpend(..) => Ty::Money,
            Expr::Month(_) | Expr::Year(_) => Ty::Int,
            Expr::Stage(_) => Ty::Str,
            Expr::Coalesce(items) => items
                .iter()
                .map(|x| self.ty(x))
                .find(|t| *t != Ty::Null)
                .unwrap_or(Ty::Null),
            Expr::Arith(_, _, _, t) => *t,
            Expr::Neg(x) => self.ty(x),
            Expr::Cast(Cast::IntToMoney, _) => Ty::Money,
            Expr::Cast(_, _) => Ty::Float,
            Expr::PurchasedInMonth(..)
            | Expr::InSegment(_)
            | Expr::Not(_)
            | Expr::And(..)
            | Expr::Or(..)
            | Expr::Cmp(..)
            | Expr::IsNull(..)
            | Expr::IsBool(..) => Ty::Bool,
        }
    }

    /// How fast the value moves with the clock, when that does not depend on data.
    fn slope(&self, e: &Expr) -> Option<i64> {
        Some(match e {
            Expr::Now => 1,
            Expr::Arith(op, a, b, _) => {
                let (sa, sb) = (self.slope(a)?, self.slope(b)?);
                if self.ty(a) == Ty::Interval && self.ty(b) == Ty::Int {
                    // interval × integer scales the slope by the integer; the
                    // other interval-integer operations leave none.
                    return match (op, &**b) {
                        (ArithOp::Mul, _) if sa == 0 => Some(0),
                        (ArithOp::Mul, Expr::Lit(Value::Int(k))) => Some(sa.saturating_mul(*k)),
                        (ArithOp::Mul, _) => None,
                        _ => Some(0),
                    };
                }
                match op {
                    ArithOp::Add => sa.saturating_add(sb),
                    ArithOp::Sub => sa.saturating_sub(sb),
                    _ => 0,
                }
            }
            Expr::Neg(x) => self.slope(x)?.saturating_neg(),
            Expr::Cast(_, x) => self.slope(x)?,
            Expr::Coalesce(items) => {
                let mut s = None;
                for it in items {
                    let si = self.slope(it)?;
                    if matches!(it, Expr::Lit(Value::Null)) {
                        continue;
                    }
                    match s {
                        None => s = Some(si),
                        Some(prev) if prev == si => {}
                        Some(_) => return None,
                    }
                }
                s.unwrap_or(0)
            }
            _ => 0,
        })
    }

    /// A boolean expression; falls back to the scalar interpreter, which is
    /// always possible for a boolean.
    fn lower_bool(&mut self, e: &Expr, sel: SelId) -> Reg {
        let mark = (
            self.steps.len(),
            self.kinds.len(),
            self.sels,
            self.scalar_steps,
        );
        match self.lower(e, sel) {
            Some(r) if self.kinds[r as usize] == Kind::Bool => r,
            _ => {
                self.steps.truncate(mark.0);
                self.kinds.truncate(mark.1);
                self.sels = mark.2;
                self.scalar_steps = mark.3;
                self.scalar(e, Kind::Bool, sel)
            }
        }
    }

    fn scalar(&mut self, e: &Expr, kind: Kind, sel: SelId) -> Reg {
        let dst = self.reg(kind);
        self.scalar_steps += 1;
        self.push(
            sel,
            Op::Scalar {
                dst,
                expr: Box::new(e.clone()),
                kind,
            },
        );
        dst
    }

    fn constant(&mut self, v: Const, sel: SelId) -> Reg {
        let kind = match v {
            Const::Int(_) => Kind::Int,
            Const::Float(_) => Kind::Float,
            Const::Bool(_) => Kind::Bool,
        };
        let dst = self.reg(kind);
        self.push(sel, Op::Const { dst, v });
        dst
    }

    /// A constant of the given kind, from a literal.
    fn literal(&mut self, v: &Value, kind: Kind, sel: SelId) -> Option<Reg> {
        let c = match (v, kind) {
            (Value::Null, Kind::Int) => Const::Int(None),
            (Value::Null, Kind::Float) => Const::Float(None),
            (Value::Null, Kind::Bool) => Const::Bool(NULL),
            (Value::Int(i) | Value::Money(i) | Value::Ts(i) | Value::Interval(i), Kind::Int) => {
                Const::Int(Some(*i))
            }
            (Value::Float(f), Kind::Float) => Const::Float(Some(*f)),
            (Value::Bool(b), Kind::Bool) => Const::Bool(*b as u8),
            _ => return None,
        };
        Some(self.constant(c, sel))
    }

    /// Lowers `e` for the positions of `sel`; `None` when it has no columnar form.
    fn lower(&mut self, e: &Expr, sel: SelId) -> Option<Reg> {
        let ty = self.ty(e);
        match e {
            Expr::Lit(v) => {
                let kind = kind_of(ty).unwrap_or(Kind::Bool);
                self.literal(v, kind, sel)
            }
            Expr::Now => {
                let dst = self.reg(Kind::Int);
                self.push(sel, Op::Now { dst });
                Some(dst)
            }
            Expr::Field(f) => {
                let dst = self.reg(Kind::Int);
                self.push(sel, Op::Field { dst, f: *f });
                Some(dst)
            }
            Expr::Acc(i, t) => {
                let measure = self.rules.needs.accumulators[*i].measure;
                let expected = match measure {
                    Measure::Count => Ty::Int,
                    Measure::Spend => Ty::Money,
                    Measure::First | Measure::Last => Ty::Ts,
                };
                if expected != *t {
                    return None;
                }
                let dst = self.reg(Kind::Int);
                self.push(
                    sel,
                    Op::Acc {
                        dst,
                        i: *i,
                        measure,
                    },
                );
                Some(dst)
            }
            Expr::Trait(i) => {
                let kind = kind_of(ty)?;
                let dst = self.reg(kind);
                self.push(sel, Op::Trait { dst, i: *i, kind });
                Some(dst)
            }
            Expr::WindowCount(h, d) | Expr::WindowSpend(h, d) => {
                let dst = self.reg(Kind::Int);
                let count = matches!(e, Expr::WindowCount(..));
                self.push(
                    sel,
                    Op::Window {
                        dst,
                        h: *h,
                        d: *d,
                        count,
                    },
                );
                Some(dst)
            }
            Expr::InSegment(n) => {
                let dst = self.reg(Kind::Bool);
                self.push(sel, Op::InSegment { dst, n: *n });
                Some(dst)
            }
            Expr::Not(x) => {
                let a = self.lower(x, sel)?;
                self.expect(a, Kind::Bool)?;
                let dst = self.reg(Kind::Bool);
                self.push(sel, Op::Not { dst, a });
                Some(dst)
            }
            Expr::And(x, y) | Expr::Or(x, y) => {
                let is_and = matches!(e, Expr::And(..));
                let a = self.lower_bool(x, sel);
                let rest = self.sel();
                let drop = if is_and { FALSE } else { TRUE };
                self.push(
                    sel,
                    Op::NarrowBool {
                        from: sel,
                        reg: a,
                        drop,
                        to: rest,
                    },
                );
                let b = self.lower_bool(y, rest);
                let dst = self.reg(Kind::Bool);
                let op = if is_and {
                    Op::And { dst, a, b }
                } else {
                    Op::Or { dst, a, b }
                };
                self.push(sel, op);
                Some(dst)
            }
            Expr::IsNull(x, negated) => {
                if let Expr::Lit(v) = &**x {
                    let hit = (*v == Value::Null) != *negated;
                    return Some(self.constant(Const::Bool(hit as u8), sel));
                }
                let a = self.lower_value(x, sel)?;
                let kind = self.kinds[a as usize];
                let dst = self.reg(Kind::Bool);
                self.push(
                    sel,
                    Op::IsNull {
                        dst,
                        a,
                        kind,
                        negated: *negated,
                    },
                );
                Some(dst)
            }
            Expr::IsBool(x, want, negated) => {
                let a = self.lower(x, sel)?;
                self.expect(a, Kind::Bool)?;
                let dst = self.reg(Kind::Bool);
                self.push(
                    sel,
                    Op::IsBool {
                        dst,
                        a,
                        want: *want,
                        negated: *negated,
                    },
                );
                Some(dst)
            }
            Expr::Cmp(op, x, y) => self.lower_cmp(*op, x, y, sel),
            Expr::Arith(op, x, y, _) => self.lower_arith(*op, x, y, ty, sel),
            Expr::Neg(x) => {
                let xt = self.ty(x);
                let a = self.lower(x, sel)?;
                let dst;
                match xt {
                    Ty::Int | Ty::Money | Ty::Interval => {
                        dst = self.reg(Kind::Int);
                        self.push(sel, Op::NegInt { dst, a });
                    }
                    Ty::Float => {
                        dst = self.reg(Kind::Float);
                        self.push(sel, Op::NegFloat { dst, a });
                    }
                    _ => return None,
                }
                Some(dst)
            }
            Expr::Cast(cast, x) => {
                let xt = self.ty(x);
                let a = self.lower(x, sel)?;
                let scale = self.rules.scale;
                let (dst, op) = match (cast, xt) {
                    (Cast::IntToMoney, Ty::Int) => {
                        let dst = self.reg(Kind::Int);
                        (dst, Op::IntToMoney { dst, a, scale })
                    }
                    (Cast::IntToFloat, Ty::Int) => {
                        let dst = self.reg(Kind::Float);
                        (dst, Op::IntToFloat { dst, a })
                    }
                    (Cast::MoneyToFloat, Ty::Money) => {
                        let dst = self.reg(Kind::Float);
                        (dst, Op::MoneyToFloat { dst, a, scale })
                    }
                    _ => return None,
                };
                self.push(sel, op);
                Some(dst)
            }
            Expr::Coalesce(items) => {
                let kind = kind_of(ty)?;
                self.slope(e)?;
                let mut regs = Vec::with_capacity(items.len());
                let mut cur = sel;
                for (k, it) in items.iter().enumerate() {
                    let r = match it {
                        Expr::Lit(v) => self.literal(v, kind, cur)?,
                        _ => self.lower_value(it, cur)?,
                    };
                    if self.kinds[r as usize] != kind {
                        return None;
                    }
                    regs.push(r);
                    if k + 1 < items.len() {
                        let next = self.sel();
                        self.push(
                            cur,
                            Op::NarrowNull {
                                from: cur,
                                reg: r,
                                kind,
                                to: next,
                            },
                        );
                        cur = next;
                    }
                }
                let dst = self.reg(kind);
                self.push(
                    sel,
                    Op::Coalesce {
                        dst,
                        kind,
                        items: regs,
                    },
                );
                Some(dst)
            }
            // Calendar functions and string-valued expressions: the interpreter,
            // when their value does not move with the clock in a data-dependent way.
            Expr::PurchasedInMonth(..) | Expr::Month(_) | Expr::Year(_) => {
                let kind = kind_of(ty)?;
                Some(self.scalar(e, kind, sel))
            }
            Expr::Stage(_) => None,
        }
    }

    /// Lowers a value operand, using the interpreter for a slope-free value
    /// that has no columnar form of its own.
    fn lower_value(&mut self, e: &Expr, sel: SelId) -> Option<Reg> {
        let mark = (
            self.steps.len(),
            self.kinds.len(),
            self.sels,
            self.scalar_steps,
        );
        if let Some(r) = self.lower(e, sel) {
            return Some(r);
        }
        self.steps.truncate(mark.0);
        self.kinds.truncate(mark.1);
        self.sels = mark.2;
        self.scalar_steps = mark.3;
        let kind = kind_of(self.ty(e))?;
        if self.slope(e) != Some(0) {
            return None;
        }
        Some(self.scalar(e, kind, sel))
    }

    fn expect(&self, r: Reg, kind: Kind) -> Option<()> {
        (self.kinds[r as usize] == kind).then_some(())
    }

    fn lower_cmp(&mut self, op: CmpOp, x: &Expr, y: &Expr, sel: SelId) -> Option<Reg> {
        let (xt, yt) = (self.ty(x), self.ty(y));
        // stage('lifecycle') = 'name' compares stage indexes.
        if matches!(op, CmpOp::Eq | CmpOp::Ne) {
            let pair = match (x, y) {
                (Expr::Stage(n), Expr::Lit(Value::Str(s)))
                | (Expr::Lit(Value::Str(s)), Expr::Stage(n)) => Some((*n, s.clone())),
                _ => None,
            };
            if let Some((n, s)) = pair {
                let stage = match &self.rules.nodes[n].kind {
                    NodeKind::Lifecycle { stages } => stages
                        .iter()
                        .position(|(name, _)| **name == *s)
                        .map(|p| p as u8),
                    NodeKind::Segment { .. } => return None,
                };
                let dst = self.reg(Kind::Bool);
                self.push(
                    sel,
                    Op::StageIs {
                        dst,
                        n,
                        stage,
                        eq: op == CmpOp::Eq,
                    },
                );
                return Some(dst);
            }
        }
        if xt == Ty::Null || yt == Ty::Null {
            // A comparison with NULL is NULL.
            return Some(self.constant(Const::Bool(NULL), sel));
        }
        if xt != yt {
            return None;
        }
        // window <op> constant: the exact instant the comparison flips.
        let window = |e: &Expr| match e {
            Expr::WindowCount(h, d) => Some((*h, *d, true)),
            Expr::WindowSpend(h, d) => Some((*h, *d, false)),
            _ => None,
        };
        let lit = |e: &Expr| match e {
            Expr::Lit(Value::Int(k) | Value::Money(k)) => Some(*k),
            _ => None,
        };
        let fused = match (window(x), lit(y), lit(x), window(y)) {
            (Some(w), Some(k), _, _) => Some((w, op, k)),
            (_, _, Some(k), Some(w)) => Some((w, flip(op), k)),
            _ => None,
        };
        if let Some(((h, d, count), op, k)) = fused {
            let dst = self.reg(Kind::Bool);
            self.push(
                sel,
                Op::WindowCmp {
                    dst,
                    h,
                    d,
                    count,
                    op,
                    k,
                },
            );
            return Some(dst);
        }
        let kind = kind_of(xt)?;
        let slope = if is_time(xt) {
            self.slope(x)?.saturating_sub(self.slope(y)?)
        } else {
            0
        };
        // column <op> constant, the most common comparison.
        if kind == Kind::Int && slope == 0 {
            let k = |e: &Expr| match e {
                Expr::Lit(Value::Int(k) | Value::Money(k) | Value::Ts(k) | Value::Interval(k)) => {
                    Some(*k)
                }
                _ => None,
            };
            let fused = match (k(x), k(y)) {
                (None, Some(k)) => Some((x, op, k)),
                (Some(k), None) => Some((y, flip(op), k)),
                _ => None,
            };
            if let Some((col, op, k)) = fused {
                let a = self.lower_value(col, sel)?;
                if self.kinds[a as usize] != Kind::Int {
                    return None;
                }
                let dst = self.reg(Kind::Bool);
                self.push(sel, Op::CmpIntLit { dst, op, a, k });
                return Some(dst);
            }
        }
        let a = self.lower_value(x, sel)?;
        let b = self.lower_value(y, sel)?;
        if self.kinds[a as usize] != kind || self.kinds[b as usize] != kind {
            return None;
        }
        let dst = self.reg(Kind::Bool);
        let op = match kind {
            Kind::Int => Op::CmpInt {
                dst,
                op,
                a,
                b,
                slope,
            },
            Kind::Float => Op::CmpFloat { dst, op, a, b },
            Kind::Bool => Op::CmpBool { dst, op, a, b },
        };
        self.push(sel, op);
        Some(dst)
    }

    fn lower_arith(&mut self, op: ArithOp, x: &Expr, y: &Expr, ty: Ty, sel: SelId) -> Option<Reg> {
        let (xt, yt) = (self.ty(x), self.ty(y));
        if xt == Ty::Null || yt == Ty::Null {
            let kind = kind_of(ty)?;
            return self.literal(&Value::Null, kind, sel);
        }
        // The result's slope must be static for the parent to use it.
        self.slope(&Expr::Arith(
            op,
            Box::new(x.clone()),
            Box::new(y.clone()),
            ty,
        ))?;
        if let (Expr::Now, Expr::Lit(Value::Interval(d)), ArithOp::Add | ArithOp::Sub) = (x, y, op)
        {
            let offset = if op == ArithOp::Add {
                Some(*d)
            } else {
                d.checked_neg()
            };
            if let Some(offset) = offset {
                let dst = self.reg(Kind::Int);
                self.push(sel, Op::NowPlus { dst, offset });
                return Some(dst);
            }
        }
        enum Form {
            Int,
            MoneyFloat,
            Float,
        }
        let form = match (xt, yt) {
            (Ty::Int, Ty::Int)
            | (Ty::Money, Ty::Money)
            | (Ty::Money, Ty::Int)
            | (Ty::Ts, Ty::Interval)
            | (Ty::Ts, Ty::Ts)
            | (Ty::Interval, Ty::Interval)
            | (Ty::Interval, Ty::Int) => Form::Int,
            (Ty::Money, Ty::Float) => Form::MoneyFloat,
            (Ty::Float, Ty::Float) => Form::Float,
            _ => return None,
        };
        let a = self.lower_value(x, sel)?;
        let b = self.lower_value(y, sel)?;
        let (dst, op) = match form {
            Form::Int => {
                let dst = self.reg(Kind::Int);
                (dst, Op::ArithInt { dst, op, a, b })
            }
            Form::MoneyFloat => {
                let dst = self.reg(Kind::Int);
                (dst, Op::ArithMoneyFloat { dst, op, a, b })
            }
            Form::Float => {
                let dst = self.reg(Kind::Float);
                (dst, Op::ArithFloat { dst, op, a, b })
            }
        };
        self.push(sel, op);
        Some(dst)
    }
}

/// The operator with its operands swapped (`k < x` is `x > k`).
pub fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Eq => CmpOp::Eq,
        CmpOp::Ne => CmpOp::Ne,
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
    }
}
