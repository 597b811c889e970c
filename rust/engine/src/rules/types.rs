//! The type rules of the language: how numbers of different kinds meet
//! (money stays exact in minor units where it can, otherwise the result is a
//! float) and which arithmetic is allowed on which types.

use sqlparser::tokenizer::Span;

use super::expr::{ArithOp, Cast, Expr, Ty, Value};
use super::lower::{Lowerer, Typed};
use crate::error::Result;

impl Lowerer<'_> {
    pub(super) fn coerce_to_money(&self, e: Expr, t: Ty) -> Option<Expr> {
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

    pub(super) fn to_float(e: Expr, t: Ty) -> Expr {
        match t {
            Ty::Int => Expr::Cast(Cast::IntToFloat, Box::new(e)),
            Ty::Money => Expr::Cast(Cast::MoneyToFloat, Box::new(e)),
            _ => e,
        }
    }

    /// Brings two numeric operands to one type.
    pub(super) fn unify_numeric(&self, l: Typed, r: Typed) -> (Expr, Expr, Ty) {
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

    pub(super) fn arith(&mut self, op: ArithOp, l: Typed, r: Typed, span: Span) -> Result<Typed> {
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
}

pub(super) fn op_symbol(op: ArithOp) -> &'static str {
    match op {
        ArithOp::Add => "+",
        ArithOp::Sub => "-",
        ArithOp::Mul => "*",
        ArithOp::Div => "/",
        ArithOp::Mod => "%",
    }
}
