//! Evaluates compiled rules for one customer at one instant and, in the same
//! pass, finds the earliest later instant at which any evaluated part could
//! change with time alone (a "breakpoint"). Values that move with the clock
//! carry a slope (`now()` has slope 1), so a comparison such as
//! `last_purchase_at < now() - INTERVAL '90 days'` yields its crossing time.

use std::sync::Arc;

use crate::membership::{Memberships, NO_STAGE};
use crate::rules::compiled::{CompiledRules, NodeKind};
use crate::rules::expr::{ArithOp, Cast, CmpOp, Expr, Field, Value};
use crate::rules::needs::Measure;
use crate::state::aggregates::{NO_FIRST, NO_LAST};
use crate::state::State;
use crate::time::calendar::{next_month_start, next_year_start};
use crate::time::{month_of, year_of};

/// Evaluation context for one customer at one instant.
pub struct EvalCtx<'a> {
    /// Rules (for stage names and the money scale).
    pub rules: &'a CompiledRules,
    /// State to read.
    pub state: &'a State,
    /// Current memberships (already updated for nodes evaluated earlier in order).
    pub members: &'a Memberships,
    /// Customer index.
    pub c: usize,
    /// Evaluation instant.
    pub now: i64,
    /// Earliest breakpoint found so far, strictly after `now`.
    pub next: i64,
}

impl<'a> EvalCtx<'a> {
    /// Notes a possible change at `t`.
    #[inline]
    pub fn candidate(&mut self, t: i64) {
        if t > self.now && t < self.next {
            self.next = t;
        }
    }

    /// Rule truth: only TRUE counts.
    pub fn truth(&mut self, e: &Expr) -> bool {
        matches!(self.eval(e).0, Value::Bool(true))
    }

    /// Value and slope (d value / d now) of an expression.
    pub fn eval(&mut self, e: &Expr) -> (Value, i64) {
        let c = self.c;
        let st = self.state;
        match e {
            Expr::Lit(v) => (v.clone(), 0),
            Expr::Now => (Value::Ts(self.now), 1),
            Expr::Field(f) => (self.field(*f), 0),
            Expr::Trait(i) => (
                st.traits.values[*i].get(c).cloned().unwrap_or(Value::Null),
                0,
            ),
            Expr::Acc(i, _) => {
                let raw = st.keyed.acc[*i].get(c).copied();
                let v = match (st.keyed.needs.accumulators[*i].measure, raw) {
                    (_, None) => Value::Null,
                    (Measure::Count, Some(n)) => Value::Int(n),
                    (Measure::Spend, Some(m)) => Value::Money(m),
                    (Measure::First, Some(t)) if t != NO_FIRST => Value::Ts(t),
                    (Measure::Last, Some(t)) if t != NO_LAST => Value::Ts(t),
                    _ => Value::Null,
                };
                (v, 0)
            }
            Expr::WindowCount(h, d) | Expr::WindowSpend(h, d) => {
                let entries = st.keyed.hist[*h]
                    .get(c)
                    .map(|v| v.as_slice())
                    .unwrap_or(&[]);
                let from = self.now.saturating_sub(*d);
                let start = entries.partition_point(|x| x.ts < from);
                let live = &entries[start..];
                if let Some(first) = live.first() {
                    // The oldest live event leaves the window just after ts + d.
                    self.candidate(first.ts.saturating_add(*d).saturating_add(1));
                }
                let v = if matches!(e, Expr::WindowCount(..)) {
                    Value::Int(live.iter().filter(|x| x.counts()).count() as i64)
                } else {
                    Value::Money(live.iter().fold(0i64, |a, x| a.saturating_add(x.amount())))
                };
                (v, 0)
            }
            Expr::PurchasedInMonth(m, y) => {
                let m = match self.eval(m).0 {
                    Value::Int(m) => m,
                    _ => return (Value::Null, 0),
                };
                let y = match y {
                    Some(y) => match self.eval(y).0 {
                        Value::Int(y) => Some(y),
                        _ => return (Value::Null, 0),
                    },
                    None => None,
                };
                if !(1..=12).contains(&m) {
                    return (Value::Bool(false), 0);
                }
                let months = st.keyed.months.get(c).map(|v| v.as_slice()).unwrap_or(&[]);
                let hit = match y {
                    Some(y) => match y.checked_mul(12).and_then(|k| k.checked_add(m - 1)) {
                        Some(k) if k >= i32::MIN as i64 && k <= i32::MAX as i64 => {
                            months.binary_search(&(k as i32)).is_ok()
                        }
                        _ => false,
                    },
                    None => months.iter().any(|&k| (k as i64).rem_euclid(12) == m - 1),
                };
                (Value::Bool(hit), 0)
            }
            Expr::Month(x) | Expr::Year(x) => {
                let (v, slope) = self.eval(x);
                let Value::Ts(t) = v else {
                    return (Value::Null, 0);
                };
                let is_month = matches!(e, Expr::Month(_));
                if slope > 0 {
                    let boundary = if is_month {
                        next_month_start(t)
                    } else {
                        next_year_start(t)
                    };
                    if let Some(b) = boundary {
                        let wait = b.saturating_sub(t).saturating_add(slope - 1) / slope;
                        self.candidate(self.now.saturating_add(wait));
                    }
                } else if slope < 0 {
                    // Clock-reversed calendars are unusual; re-check daily to stay correct.
                    self.candidate(self.now.saturating_add(86_400_000));
                }
                let out = if is_month { month_of(t) } else { year_of(t) };
                (out.map(Value::Int).unwrap_or(Value::Null), 0)
            }
            Expr::InSegment(n) => (Value::Bool(self.members.is_member(*n, c)), 0),
            Expr::Stage(n) => {
                let s = self.members.stage(*n, c);
                match (&self.rules.nodes[*n].kind, s) {
                    (_, NO_STAGE) => (Value::Null, 0),
                    (NodeKind::Lifecycle { stages }, s) => {
                        (Value::Str(Arc::from(stages[s as usize].0.as_str())), 0)
                    }
                    _ => (Value::Null, 0),
                }
            }
            Expr::Coalesce(items) => {
                for it in items {
                    let r = self.eval(it);
                    if r.0 != Value::Null {
                        return r;
                    }
                }
                (Value::Null, 0)
            }
            Expr::Not(x) => match self.eval(x).0 {
                Value::Bool(b) => (Value::Bool(!b), 0),
                _ => (Value::Null, 0),
            },
            Expr::And(a, b) => {
                // Short-circuiting keeps breakpoints sound: while `a` is FALSE the
                // result cannot change until `a` does, and `a`'s breakpoints are kept.
                let l = self.eval(a).0;
                if l == Value::Bool(false) {
                    return (l, 0);
                }
                let r = self.eval(b).0;
                (
                    match (l, r) {
                        (_, Value::Bool(false)) => Value::Bool(false),
                        (Value::Bool(true), Value::Bool(true)) => Value::Bool(true),
                        _ => Value::Null,
                    },
                    0,
                )
            }
            Expr::Or(a, b) => {
                let l = self.eval(a).0;
                if l == Value::Bool(true) {
                    return (l, 0);
                }
                let r = self.eval(b).0;
                (
                    match (l, r) {
                        (_, Value::Bool(true)) => Value::Bool(true),
                        (Value::Bool(false), Value::Bool(false)) => Value::Bool(false),
                        _ => Value::Null,
                    },
                    0,
                )
            }
            Expr::IsNull(x, negated) => {
                let is_null = self.eval(x).0 == Value::Null;
                (Value::Bool(is_null != *negated), 0)
            }
            Expr::IsBool(x, want, negated) => {
                let v = self.eval(x).0;
                let hit = v == Value::Bool(*want);
                (Value::Bool(hit != *negated), 0)
            }
            Expr::Cmp(op, a, b) => {
                let (l, sl) = self.eval(a);
                let (r, sr) = self.eval(b);
                if let (Some(lv), Some(rv)) = (as_time(&l), as_time(&r)) {
                    let s = sl.saturating_sub(sr);
                    if s != 0 {
                        self.crossing(lv.saturating_sub(rv), s);
                    }
                }
                (compare(*op, &l, &r), 0)
            }
            Expr::Arith(op, a, b, _) => {
                let (l, sl) = self.eval(a);
                let (r, sr) = self.eval(b);
                arith(*op, l, sl, r, sr)
            }
            Expr::Neg(x) => {
                let (v, s) = self.eval(x);
                let out = match v {
                    Value::Int(i) => i.checked_neg().map(Value::Int),
                    Value::Money(i) => i.checked_neg().map(Value::Money),
                    Value::Interval(i) => i.checked_neg().map(Value::Interval),
                    Value::Float(f) => Some(Value::Float(-f)),
                    _ => None,
                };
                (out.unwrap_or(Value::Null), s.saturating_neg())
            }
            Expr::Cast(kind, x) => {
                let (v, s) = self.eval(x);
                let scale = self.rules.scale;
                let out = match (kind, v) {
                    (Cast::IntToMoney, Value::Int(i)) => i.checked_mul(scale).map(Value::Money),
                    (Cast::IntToFloat, Value::Int(i)) => Some(Value::Float(i as f64)),
                    (Cast::MoneyToFloat, Value::Money(m)) => {
                        Some(Value::Float(m as f64 / scale as f64))
                    }
                    _ => None,
                };
                (out.unwrap_or(Value::Null), s)
            }
        }
    }

    /// `diff(t) = diff + s * (t - now)` changes sign near `now - diff / s`.
    fn crossing(&mut self, diff: i64, s: i64) {
        let Some(step) = diff.checked_neg().and_then(|d| d.checked_div_euclid(s)) else {
            return;
        };
        let t0 = self.now.saturating_add(step);
        for t in [t0, t0.saturating_add(1), t0.saturating_add(2)] {
            self.candidate(t);
        }
    }

    fn field(&self, f: Field) -> Value {
        let a = &self.state.agg;
        let c = self.c;
        let ts = |v: i64, none: i64| if v == none { Value::Null } else { Value::Ts(v) };
        match f {
            Field::Ltv => Value::Money(a.ltv(c)),
            Field::GrossSpend => Value::Money(a.row(c).gross),
            Field::Refunded => Value::Money(a.row(c).refunded),
            Field::MaxOrder => {
                if a.row(c).orders == 0 {
                    Value::Null
                } else {
                    Value::Money(a.row(c).max_order)
                }
            }
            Field::Aov => {
                if a.row(c).orders == 0 {
                    Value::Null
                } else {
                    Value::Money(a.ltv(c) / a.row(c).orders as i64)
                }
            }
            Field::Orders => Value::Int(a.row(c).orders as i64),
            Field::Refunds => Value::Int(a.row(c).refunds as i64),
            Field::Items => Value::Int(a.row(c).items as i64),
            Field::MaxQuantity => Value::Int(a.row(c).max_quantity as i64),
            Field::FirstPurchaseAt => ts(a.row(c).first_purchase, NO_FIRST),
            Field::LastPurchaseAt => ts(a.row(c).last_purchase, NO_LAST),
            Field::LastRefundAt => ts(a.row(c).last_refund, NO_LAST),
            Field::DistinctCategories => Value::Int(
                self.state
                    .keyed
                    .category_sets
                    .get(c)
                    .map(|s| s.len())
                    .unwrap_or(0) as i64,
            ),
            Field::DistinctProducts => Value::Int(
                self.state
                    .keyed
                    .product_sets
                    .get(c)
                    .map(|s| s.len())
                    .unwrap_or(0) as i64,
            ),
        }
    }
}

fn as_time(v: &Value) -> Option<i64> {
    match v {
        Value::Ts(t) | Value::Interval(t) => Some(*t),
        _ => None,
    }
}

/// SQL comparison with NULL propagation.
pub fn compare(op: CmpOp, l: &Value, r: &Value) -> Value {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match (l, r) {
        (Value::Int(a), Value::Int(b))
        | (Value::Money(a), Value::Money(b))
        | (Value::Ts(a), Value::Ts(b))
        | (Value::Interval(a), Value::Interval(b)) => Some(a.cmp(b)),
        (Value::Float(a), Value::Float(b)) => a.partial_cmp(b),
        (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    };
    match ord {
        None => Value::Null,
        Some(o) => Value::Bool(match op {
            CmpOp::Eq => o == Ordering::Equal,
            CmpOp::Ne => o != Ordering::Equal,
            CmpOp::Lt => o == Ordering::Less,
            CmpOp::Le => o != Ordering::Greater,
            CmpOp::Gt => o == Ordering::Greater,
            CmpOp::Ge => o != Ordering::Less,
        }),
    }
}

fn arith(op: ArithOp, l: Value, sl: i64, r: Value, sr: i64) -> (Value, i64) {
    use ArithOp::*;
    use Value as V;
    let int = |a: i64, b: i64| -> Option<i64> {
        match op {
            Add => a.checked_add(b),
            Sub => a.checked_sub(b),
            Mul => a.checked_mul(b),
            Div => a.checked_div(b),
            Mod => a.checked_rem(b),
        }
    };
    let float = |a: f64, b: f64| -> Option<f64> {
        let v = match op {
            Add => a + b,
            Sub => a - b,
            Mul => a * b,
            Div => a / b,
            Mod => a % b,
        };
        v.is_finite().then_some(v)
    };
    let to_money =
        |f: f64| -> Option<i64> { (f.is_finite() && f.abs() < 9.0e18).then(|| f.round() as i64) };
    let slope = match op {
        Add => sl.saturating_add(sr),
        Sub => sl.saturating_sub(sr),
        _ => 0,
    };
    let out = match (l, r) {
        (V::Null, _) | (_, V::Null) => None,
        (V::Int(a), V::Int(b)) => int(a, b).map(V::Int),
        (V::Money(a), V::Money(b)) => int(a, b).map(V::Money),
        (V::Money(a), V::Int(b)) => int(a, b).map(V::Money),
        (V::Money(a), V::Float(b)) => float(a as f64, b).and_then(to_money).map(V::Money),
        (V::Float(a), V::Float(b)) => float(a, b).map(V::Float),
        (V::Ts(a), V::Interval(b)) => int(a, b).map(V::Ts),
        (V::Ts(a), V::Ts(b)) => int(a, b).map(V::Interval),
        (V::Interval(a), V::Interval(b)) => int(a, b).map(V::Interval),
        (V::Interval(a), V::Int(b)) => {
            let v = int(a, b).map(V::Interval);
            let s = if op == Mul { sl.saturating_mul(b) } else { 0 };
            return (v.unwrap_or(V::Null), s);
        }
        _ => None,
    };
    (out.unwrap_or(V::Null), slope)
}
