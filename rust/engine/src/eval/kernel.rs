//! Runs a lowered program over a chunk of customers: gathers the state each
//! step reads into typed registers, computes with plain loops over the
//! step's selection, and keeps, per position, the earliest later instant at
//! which the rule could flip with time alone (its breakpoint).

use super::program::{Const, Kind, Op, Program, Reg, FALSE, NULL, TRUE};
use super::scalar::EvalCtx;
use crate::membership::{Memberships, NO_STAGE};
use crate::rules::compiled::CompiledRules;
use crate::rules::expr::{ArithOp, CmpOp, Field, Value};
use crate::rules::needs::Measure;
use crate::state::aggregates::{NO_FIRST, NO_LAST};
use crate::state::keyed::Entry;
use crate::state::prefetch::prefetch_read;
use crate::state::State;

/// Customers evaluated together: registers of this many rows stay in cache.
pub const CHUNK: usize = 1024;

/// Storage of one register (only the vectors of its kind are used).
#[derive(Debug, Clone, Default)]
struct RegData {
    int: Vec<i64>,
    float: Vec<f64>,
    null: Vec<bool>,
    truth: Vec<u8>,
}

/// What the program reads, for one chunk.
pub struct Inputs<'a> {
    /// Rules (stage names, money scale) for the interpreter steps.
    pub rules: &'a CompiledRules,
    /// Per-customer state.
    pub state: &'a State,
    /// Memberships, already updated for nodes earlier in the order.
    pub members: &'a Memberships,
    /// Customer index of each position.
    pub customers: &'a [u32],
    /// Evaluation instant of each position.
    pub now: &'a [i64],
}

/// Reusable registers and selection vectors.
#[derive(Debug, Clone, Default)]
pub struct Kernel {
    regs: Vec<RegData>,
    sels: Vec<Vec<u16>>,
}

/// Positions between a prefetch of a window's header and its use; the
/// entries are prefetched half-way, once the header has arrived.
const AHEAD: usize = 16;

/// Starts loading the window state of the positions ahead of `j`: windows
/// live behind a pointer per customer, two dependent cache misses each.
#[inline(always)]
fn prefetch_window(col: &[Vec<Entry>], cs: &[u32], sel: &[u16], j: usize) {
    if let Some(&k) = sel.get(j + AHEAD) {
        if let Some(v) = col.get(cs[k as usize] as usize) {
            prefetch_read(v);
        }
    }
    if let Some(&k) = sel.get(j + AHEAD / 2) {
        if let Some(v) = col.get(cs[k as usize] as usize) {
            if let Some(last) = v.last() {
                prefetch_read(v.as_ptr());
                prefetch_read(last);
            }
        }
    }
}

#[inline(always)]
fn candidate(next: &mut i64, now: i64, t: i64) {
    if t > now && t < *next {
        *next = t;
    }
}

#[inline(always)]
fn holds(op: CmpOp, o: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        CmpOp::Eq => o == Equal,
        CmpOp::Ne => o != Equal,
        CmpOp::Lt => o == Less,
        CmpOp::Le => o != Greater,
        CmpOp::Gt => o == Greater,
        CmpOp::Ge => o != Less,
    }
}

#[inline(always)]
fn int_op(op: ArithOp, a: i64, b: i64) -> Option<i64> {
    match op {
        ArithOp::Add => a.checked_add(b),
        ArithOp::Sub => a.checked_sub(b),
        ArithOp::Mul => a.checked_mul(b),
        ArithOp::Div => a.checked_div(b),
        ArithOp::Mod => a.checked_rem(b),
    }
}

#[inline(always)]
fn float_op(op: ArithOp, a: f64, b: f64) -> Option<f64> {
    let v = match op {
        ArithOp::Add => a + b,
        ArithOp::Sub => a - b,
        ArithOp::Mul => a * b,
        ArithOp::Div => a / b,
        ArithOp::Mod => a % b,
    };
    v.is_finite().then_some(v)
}

/// The first instant after `now` at which `diff + slope * (t - now)` compares
/// with zero differently than `diff` does, if it ever does.
fn crossing(op: CmpOp, diff: i64, slope: i64, now: i64) -> Option<i64> {
    let current = holds(op, diff.cmp(&0));
    let step = diff.checked_neg()?.checked_div_euclid(slope)?;
    let t0 = now.saturating_add(step);
    for t in [t0, t0.saturating_add(1), t0.saturating_add(2)] {
        if t <= now {
            continue;
        }
        let at = diff as i128 + slope as i128 * (t as i128 - now as i128);
        if holds(op, at.cmp(&0)) != current {
            return Some(t);
        }
    }
    None
}

impl Kernel {
    /// Makes room for programs of this shape.
    pub fn reserve(&mut self, regs: usize, sels: usize) {
        if self.regs.len() < regs {
            self.regs.resize_with(regs, || RegData {
                int: vec![0; CHUNK],
                float: vec![0.0; CHUNK],
                null: vec![false; CHUNK],
                truth: vec![0; CHUNK],
            });
        }
        if self.sels.len() < sels {
            self.sels.resize_with(sels, || Vec::with_capacity(CHUNK));
        }
    }

    /// Runs `prog` for the positions in `input` (ascending, each below
    /// `inp.customers.len()` ≤ `CHUNK`) and returns its truth register;
    /// `next[i]` is lowered to any breakpoint found for position `i`.
    pub fn run(
        &mut self,
        prog: &Program,
        inp: &Inputs<'_>,
        input: &[u16],
        next: &mut [i64],
    ) -> &[u8] {
        self.reserve(prog.kinds.len(), prog.sels as usize);
        self.sels[0].clear();
        self.sels[0].extend_from_slice(input);
        for step in &prog.steps {
            // Selections are only ever written to a later index than they are read from.
            let (before, after) = self.sels.split_at_mut(step.sel as usize + 1);
            let sel: &[u16] = &before[step.sel as usize];
            match &step.op {
                Op::NarrowBool { reg, drop, to, .. } => {
                    let r = &self.regs[*reg as usize].truth;
                    let out = &mut after[(*to - step.sel - 1) as usize];
                    out.clear();
                    out.extend(sel.iter().copied().filter(|&i| r[i as usize] != *drop));
                }
                Op::NarrowNull { reg, kind, to, .. } => {
                    let r = &self.regs[*reg as usize];
                    let out = &mut after[(*to - step.sel - 1) as usize];
                    out.clear();
                    match kind {
                        Kind::Bool => {
                            out.extend(sel.iter().copied().filter(|&i| r.truth[i as usize] == NULL))
                        }
                        _ => out.extend(sel.iter().copied().filter(|&i| r.null[i as usize])),
                    }
                }
                op => exec(&mut self.regs, op, sel, inp, next),
            }
        }
        &self.regs[prog.out as usize].truth
    }
}

/// Splits the register file into the destination (always the newest register
/// of a step) and the operands before it.
#[inline(always)]
fn split(regs: &mut [RegData], dst: Reg) -> (&[RegData], &mut RegData) {
    let (lo, hi) = regs.split_at_mut(dst as usize);
    (lo, &mut hi[0])
}

fn exec(regs: &mut [RegData], op: &Op, sel: &[u16], inp: &Inputs<'_>, next: &mut [i64]) {
    let st = inp.state;
    let cs = inp.customers;
    let now = inp.now;
    match op {
        Op::NarrowBool { .. } | Op::NarrowNull { .. } => unreachable!("handled by run"),
        Op::Const { dst, v } => {
            let (_, d) = split(regs, *dst);
            for &i in sel {
                let i = i as usize;
                match *v {
                    Const::Int(x) => {
                        d.int[i] = x.unwrap_or(0);
                        d.null[i] = x.is_none();
                    }
                    Const::Float(x) => {
                        d.float[i] = x.unwrap_or(0.0);
                        d.null[i] = x.is_none();
                    }
                    Const::Bool(b) => d.truth[i] = b,
                }
            }
        }
        Op::Now { dst } => {
            let (_, d) = split(regs, *dst);
            for &i in sel {
                let i = i as usize;
                d.int[i] = now[i];
                d.null[i] = false;
            }
        }
        Op::NowPlus { dst, offset } => {
            let (_, d) = split(regs, *dst);
            for &i in sel {
                let i = i as usize;
                let v = now[i].checked_add(*offset);
                d.int[i] = v.unwrap_or(0);
                d.null[i] = v.is_none();
            }
        }
        Op::Field { dst, f } => {
            let (_, d) = split(regs, *dst);
            gather_field(d, *f, sel, st, cs);
        }
        Op::Acc { dst, i: a, measure } => {
            let (_, d) = split(regs, *dst);
            let col = &st.keyed.acc[*a];
            for &i in sel {
                let i = i as usize;
                let (v, null) = match col.get(cs[i] as usize) {
                    None => (0, true),
                    Some(&v) => match measure {
                        Measure::Count | Measure::Spend => (v, false),
                        Measure::First => (v, v == NO_FIRST),
                        Measure::Last => (v, v == NO_LAST),
                    },
                };
                d.int[i] = v;
                d.null[i] = null;
            }
        }
        Op::Trait { dst, i: t, kind } => {
            let (_, d) = split(regs, *dst);
            let col = &st.traits.values[*t];
            for &i in sel {
                let i = i as usize;
                let v = col.get(cs[i] as usize).unwrap_or(&Value::Null);
                match kind {
                    Kind::Int => {
                        let x = match v {
                            Value::Int(x) | Value::Money(x) | Value::Ts(x) | Value::Interval(x) => {
                                Some(*x)
                            }
                            _ => None,
                        };
                        d.int[i] = x.unwrap_or(0);
                        d.null[i] = x.is_none();
                    }
                    Kind::Float => {
                        let x = match v {
                            Value::Float(x) => Some(*x),
                            _ => None,
                        };
                        d.float[i] = x.unwrap_or(0.0);
                        d.null[i] = x.is_none();
                    }
                    Kind::Bool => {
                        d.truth[i] = match v {
                            Value::Bool(b) => *b as u8,
                            _ => NULL,
                        }
                    }
                }
            }
        }
        Op::Window {
            dst,
            h,
            d: lookback,
            count,
        } => {
            let (_, d) = split(regs, *dst);
            let col = &st.keyed.hist[*h];
            for (j, &i) in sel.iter().enumerate() {
                prefetch_window(col, cs, sel, j);
                let i = i as usize;
                let entries = col.get(cs[i] as usize).map(|v| v.as_slice()).unwrap_or(&[]);
                let from = now[i].saturating_sub(*lookback);
                let live = &entries[entries.partition_point(|x| x.ts < from)..];
                if let Some(first) = live.first() {
                    // The oldest live event leaves the window just after ts + d.
                    candidate(
                        &mut next[i],
                        now[i],
                        first.ts.saturating_add(*lookback).saturating_add(1),
                    );
                }
                d.int[i] = if *count {
                    live.iter().filter(|x| x.counts()).count() as i64
                } else {
                    live.iter().fold(0i64, |a, x| a.saturating_add(x.amount()))
                };
                d.null[i] = false;
            }
        }
        Op::WindowCmp {
            dst,
            h,
            d: lookback,
            count,
            op,
            k,
        } => {
            let (_, d) = split(regs, *dst);
            let col = &st.keyed.hist[*h];
            for (j, &i) in sel.iter().enumerate() {
                prefetch_window(col, cs, sel, j);
                let i = i as usize;
                let entries = col.get(cs[i] as usize).map(|v| v.as_slice()).unwrap_or(&[]);
                let from = now[i].saturating_sub(*lookback);
                let live = &entries[entries.partition_point(|x| x.ts < from)..];
                let leaves = |e: &Entry| e.ts.saturating_add(*lookback).saturating_add(1);
                let value = if *count {
                    live.iter().filter(|x| x.counts()).count() as i64
                } else {
                    live.iter().fold(0i64, |a, x| a.saturating_add(x.amount()))
                };
                let current = holds(*op, value.cmp(k));
                d.truth[i] = current as u8;
                // Walk the entries out of the window, oldest first, to the first
                // instant at which the comparison no longer gives `current`.
                let exact = *count
                    || live
                        .iter()
                        .try_fold(0i64, |a, x| a.checked_add(x.amount().checked_abs()?))
                        .is_some();
                if !exact {
                    if let Some(first) = live.first() {
                        candidate(&mut next[i], now[i], leaves(first));
                    }
                    continue;
                }
                let mut left = value;
                for (j, e) in live.iter().enumerate() {
                    left -= if *count {
                        e.counts() as i64
                    } else {
                        e.amount()
                    };
                    if live.get(j + 1).is_some_and(|n| n.ts == e.ts) {
                        continue;
                    }
                    if holds(*op, left.cmp(k)) != current {
                        candidate(&mut next[i], now[i], leaves(e));
                        break;
                    }
                }
            }
        }
        Op::InSegment { dst, n } => {
            let (_, d) = split(regs, *dst);
            for &i in sel {
                let i = i as usize;
                d.truth[i] = inp.members.is_member(*n, cs[i] as usize) as u8;
            }
        }
        Op::StageIs { dst, n, stage, eq } => {
            let (_, d) = split(regs, *dst);
            for &i in sel {
                let i = i as usize;
                let s = inp.members.stage(*n, cs[i] as usize);
                d.truth[i] = if s == NO_STAGE {
                    NULL
                } else {
                    ((Some(s) == *stage) == *eq) as u8
                };
            }
        }
        Op::Scalar { dst, expr, kind } => {
            let (_, d) = split(regs, *dst);
            for &i in sel {
                let i = i as usize;
                let mut ctx = EvalCtx {
                    rules: inp.rules,
                    state: st,
                    members: inp.members,
                    c: cs[i] as usize,
                    now: now[i],
                    next: next[i],
                };
                let v = ctx.eval(expr).0;
                next[i] = ctx.next;
                match kind {
                    Kind::Int => {
                        let x = match v {
                            Value::Int(x) | Value::Money(x) | Value::Ts(x) | Value::Interval(x) => {
                                Some(x)
                            }
                            _ => None,
                        };
                        d.int[i] = x.unwrap_or(0);
                        d.null[i] = x.is_none();
                    }
                    Kind::Float => {
                        let x = match v {
                            Value::Float(x) => Some(x),
                            _ => None,
                        };
                        d.float[i] = x.unwrap_or(0.0);
                        d.null[i] = x.is_none();
                    }
                    Kind::Bool => {
                        d.truth[i] = match v {
                            Value::Bool(b) => b as u8,
                            _ => NULL,
                        }
                    }
                }
            }
        }
        Op::Not { dst, a } => {
            let (lo, d) = split(regs, *dst);
            let a = &lo[*a as usize].truth;
            for &i in sel {
                let i = i as usize;
                d.truth[i] = match a[i] {
                    FALSE => TRUE,
                    TRUE => FALSE,
                    _ => NULL,
                };
            }
        }
        Op::And { dst, a, b } => {
            let (lo, d) = split(regs, *dst);
            let (a, b) = (&lo[*a as usize].truth, &lo[*b as usize].truth);
            for &i in sel {
                let i = i as usize;
                d.truth[i] = if a[i] == FALSE || b[i] == FALSE {
                    FALSE
                } else if a[i] == TRUE && b[i] == TRUE {
                    TRUE
                } else {
                    NULL
                };
            }
        }
        Op::Or { dst, a, b } => {
            let (lo, d) = split(regs, *dst);
            let (a, b) = (&lo[*a as usize].truth, &lo[*b as usize].truth);
            for &i in sel {
                let i = i as usize;
                d.truth[i] = if a[i] == TRUE || b[i] == TRUE {
                    TRUE
                } else if a[i] == FALSE && b[i] == FALSE {
                    FALSE
                } else {
                    NULL
                };
            }
        }
        Op::IsNull {
            dst,
            a,
            kind,
            negated,
        } => {
            let (lo, d) = split(regs, *dst);
            let a = &lo[*a as usize];
            for &i in sel {
                let i = i as usize;
                let is_null = match kind {
                    Kind::Bool => a.truth[i] == NULL,
                    _ => a.null[i],
                };
                d.truth[i] = (is_null != *negated) as u8;
            }
        }
        Op::IsBool {
            dst,
            a,
            want,
            negated,
        } => {
            let (lo, d) = split(regs, *dst);
            let a = &lo[*a as usize].truth;
            for &i in sel {
                let i = i as usize;
                d.truth[i] = ((a[i] == *want as u8) != *negated) as u8;
            }
        }
        Op::CmpInt {
            dst,
            op,
            a,
            b,
            slope,
        } => {
            let (lo, d) = split(regs, *dst);
            let (a, b) = (&lo[*a as usize], &lo[*b as usize]);
            for &i in sel {
                let i = i as usize;
                if a.null[i] || b.null[i] {
                    d.truth[i] = NULL;
                    continue;
                }
                let (x, y) = (a.int[i], b.int[i]);
                d.truth[i] = holds(*op, x.cmp(&y)) as u8;
                if *slope != 0 {
                    if let Some(t) = crossing(*op, x.saturating_sub(y), *slope, now[i]) {
                        candidate(&mut next[i], now[i], t);
                    }
                }
            }
        }
        Op::CmpIntLit { dst, op, a, k } => {
            let (lo, d) = split(regs, *dst);
            let a = &lo[*a as usize];
            for &i in sel {
                let i = i as usize;
                d.truth[i] = if a.null[i] {
                    NULL
                } else {
                    holds(*op, a.int[i].cmp(k)) as u8
                };
            }
        }
        Op::CmpFloat { dst, op, a, b } => {
            let (lo, d) = split(regs, *dst);
            let (a, b) = (&lo[*a as usize], &lo[*b as usize]);
            for &i in sel {
                let i = i as usize;
                d.truth[i] = if a.null[i] || b.null[i] {
                    NULL
                } else {
                    match a.float[i].partial_cmp(&b.float[i]) {
                        Some(o) => holds(*op, o) as u8,
                        None => NULL,
                    }
                };
            }
        }
        Op::CmpBool { dst, op, a, b } => {
            let (lo, d) = split(regs, *dst);
            let (a, b) = (&lo[*a as usize].truth, &lo[*b as usize].truth);
            for &i in sel {
                let i = i as usize;
                d.truth[i] = if a[i] == NULL || b[i] == NULL {
                    NULL
                } else {
                    holds(*op, a[i].cmp(&b[i])) as u8
                };
            }
        }
        Op::ArithInt { dst, op, a, b } => {
            let (lo, d) = split(regs, *dst);
            let (a, b) = (&lo[*a as usize], &lo[*b as usize]);
            for &i in sel {
                let i = i as usize;
                let v = if a.null[i] || b.null[i] {
                    None
                } else {
                    int_op(*op, a.int[i], b.int[i])
                };
                d.int[i] = v.unwrap_or(0);
                d.null[i] = v.is_none();
            }
        }
        Op::ArithMoneyFloat { dst, op, a, b } => {
            let (lo, d) = split(regs, *dst);
            let (a, b) = (&lo[*a as usize], &lo[*b as usize]);
            for &i in sel {
                let i = i as usize;
                let v = if a.null[i] || b.null[i] {
                    None
                } else {
                    float_op(*op, a.int[i] as f64, b.float[i])
                        .and_then(|f| (f.abs() < 9.0e18).then(|| f.round() as i64))
                };
                d.int[i] = v.unwrap_or(0);
                d.null[i] = v.is_none();
            }
        }
        Op::ArithFloat { dst, op, a, b } => {
            let (lo, d) = split(regs, *dst);
            let (a, b) = (&lo[*a as usize], &lo[*b as usize]);
            for &i in sel {
                let i = i as usize;
                let v = if a.null[i] || b.null[i] {
                    None
                } else {
                    float_op(*op, a.float[i], b.float[i])
                };
                d.float[i] = v.unwrap_or(0.0);
                d.null[i] = v.is_none();
            }
        }
        Op::NegInt { dst, a } => {
            let (lo, d) = split(regs, *dst);
            let a = &lo[*a as usize];
            for &i in sel {
                let i = i as usize;
                let v = if a.null[i] {
                    None
                } else {
                    a.int[i].checked_neg()
                };
                d.int[i] = v.unwrap_or(0);
                d.null[i] = v.is_none();
            }
        }
        Op::NegFloat { dst, a } => {
            let (lo, d) = split(regs, *dst);
            let a = &lo[*a as usize];
            for &i in sel {
                let i = i as usize;
                d.float[i] = -a.float[i];
                d.null[i] = a.null[i];
            }
        }
        Op::IntToMoney { dst, a, scale } => {
            let (lo, d) = split(regs, *dst);
            let a = &lo[*a as usize];
            for &i in sel {
                let i = i as usize;
                let v = if a.null[i] {
                    None
                } else {
                    a.int[i].checked_mul(*scale)
                };
                d.int[i] = v.unwrap_or(0);
                d.null[i] = v.is_none();
            }
        }
        Op::IntToFloat { dst, a } => {
            let (lo, d) = split(regs, *dst);
            let a = &lo[*a as usize];
            for &i in sel {
                let i = i as usize;
                d.float[i] = a.int[i] as f64;
                d.null[i] = a.null[i];
            }
        }
        Op::MoneyToFloat { dst, a, scale } => {
            let (lo, d) = split(regs, *dst);
            let a = &lo[*a as usize];
            for &i in sel {
                let i = i as usize;
                d.float[i] = a.int[i] as f64 / *scale as f64;
                d.null[i] = a.null[i];
            }
        }
        Op::Coalesce { dst, kind, items } => {
            let (lo, d) = split(regs, *dst);
            for &i in sel {
                let i = i as usize;
                match kind {
                    Kind::Bool => {
                        d.truth[i] = items
                            .iter()
                            .map(|r| lo[*r as usize].truth[i])
                            .find(|&b| b != NULL)
                            .unwrap_or(NULL);
                    }
                    Kind::Int => {
                        let hit = items.iter().map(|r| &lo[*r as usize]).find(|r| !r.null[i]);
                        d.int[i] = hit.map(|r| r.int[i]).unwrap_or(0);
                        d.null[i] = hit.is_none();
                    }
                    Kind::Float => {
                        let hit = items.iter().map(|r| &lo[*r as usize]).find(|r| !r.null[i]);
                        d.float[i] = hit.map(|r| r.float[i]).unwrap_or(0.0);
                        d.null[i] = hit.is_none();
                    }
                }
            }
        }
    }
}

/// Gathers one base aggregate, with the NULL rules of the rule language
/// (no order: `max_order` and `aov` are NULL; never: the times are NULL).
fn gather_field(d: &mut RegData, f: Field, sel: &[u16], st: &State, cs: &[u32]) {
    let a = &st.agg;
    macro_rules! each {
        (|$r:ident, $c:ident| $e:expr) => {
            for &i in sel {
                let i = i as usize;
                let $c = cs[i] as usize;
                let $r = a.row($c);
                let (v, null): (i64, bool) = $e;
                d.int[i] = v;
                d.null[i] = null;
            }
        };
    }
    let opt = |v: Option<i64>| (v.unwrap_or(0), v.is_none());
    match f {
        Field::Ltv => each!(|r, _c| (r.ltv(), false)),
        Field::GrossSpend => each!(|r, _c| (r.gross, false)),
        Field::Refunded => each!(|r, _c| (r.refunded, false)),
        Field::MaxOrder => each!(|r, _c| opt(r.max_order())),
        Field::Aov => each!(|r, _c| opt(r.aov())),
        Field::Orders => each!(|r, _c| (r.orders as i64, false)),
        Field::Refunds => each!(|r, _c| (r.refunds as i64, false)),
        Field::Items => each!(|r, _c| (r.items as i64, false)),
        Field::MaxQuantity => each!(|r, _c| (r.max_quantity as i64, false)),
        Field::FirstPurchaseAt => each!(|r, _c| (r.first_purchase, r.first_purchase == NO_FIRST)),
        Field::LastPurchaseAt => each!(|r, _c| (r.last_purchase, r.last_purchase == NO_LAST)),
        Field::LastRefundAt => each!(|r, _c| (r.last_refund, r.last_refund == NO_LAST)),
        Field::DistinctCategories => each!(|_r, c| (
            st.keyed.category_sets.get(c).map(|s| s.len()).unwrap_or(0) as i64,
            false
        )),
        Field::DistinctProducts => each!(|_r, c| (
            st.keyed.product_sets.get(c).map(|s| s.len()).unwrap_or(0) as i64,
            false
        )),
    }
}
