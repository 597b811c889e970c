//! The runtime of the rules: lowered programs run over chunks of customers,
//! the membership transitions they cause, and each customer's next timer.
//!
//! `program` lowers rules to flat typed operations, `kernel` runs them over
//! columns, and `scalar` interprets one customer's rule tree (the kernel's
//! fallback for steps it does not lower, and the reference it is tested
//! against). This module walks the nodes in dependency order for one chunk at
//! a time, so `in_segment` and `stage` read memberships already updated for
//! the chunk, and reports the changes in the order a customer-by-customer
//! evaluation would give them.

pub mod kernel;
pub mod program;
pub mod scalar;

use kernel::{Inputs, Kernel, CHUNK};
use program::{Programs, TRUE};

use crate::membership::{Cause, Change, ChangeKind, Memberships, NO_STAGE};
use crate::rules::compiled::{CompiledRules, NodeKind};
use crate::state::State;
use crate::time::timers::{TimerIndex, NEVER};

/// Lowered programs plus the scratch space to run them.
#[derive(Debug, Clone, Default)]
pub struct Evaluator {
    programs: Programs,
    kernel: Kernel,
    next: Vec<i64>,
    all: Vec<u16>,
    undecided: Vec<u16>,
    still: Vec<u16>,
    stage: Vec<u8>,
    chunk_changes: Vec<(u16, u16, Change)>,
}

impl Evaluator {
    /// Lowers the rules.
    pub fn new(rules: &CompiledRules) -> Self {
        let programs = Programs::lower(rules);
        let mut kernel = Kernel::default();
        let (regs, sels) = programs.max_shape();
        kernel.reserve(regs, sels);
        Evaluator {
            programs,
            kernel,
            ..Default::default()
        }
    }

    /// Steps that fall back to the scalar interpreter, over all programs.
    pub fn scalar_steps(&self) -> usize {
        self.programs
            .nodes
            .iter()
            .flatten()
            .map(|p| p.scalar_steps)
            .sum()
    }

    /// Evaluates `customers[i]` at `now[i]`, records membership changes in
    /// `out` and sets each customer's timer to its next breakpoint. With
    /// `Cause::Time` only the nodes that can change with time are evaluated:
    /// the others read state that no event has touched since they last ran.
    #[allow(clippy::too_many_arguments)]
    pub fn evaluate(
        &mut self,
        rules: &CompiledRules,
        state: &State,
        members: &mut Memberships,
        timers: &mut TimerIndex,
        customers: &[u32],
        now: &[i64],
        cause: Cause,
        out: &mut Vec<Change>,
    ) {
        debug_assert_eq!(customers.len(), now.len());
        let timed = rules.any_time_dependent();
        for (cs, ts) in customers.chunks(CHUNK).zip(now.chunks(CHUNK)) {
            self.evaluate_chunk(rules, state, members, cs, ts, cause, out);
            for (i, &c) in cs.iter().enumerate() {
                timers.set(c, if timed { self.next[i] } else { NEVER });
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn evaluate_chunk(
        &mut self,
        rules: &CompiledRules,
        state: &State,
        members: &mut Memberships,
        cs: &[u32],
        now: &[i64],
        cause: Cause,
        out: &mut Vec<Change>,
    ) {
        let len = cs.len();
        self.next.clear();
        self.next.resize(len, NEVER);
        self.all.clear();
        self.all.extend(0..len as u16);
        self.chunk_changes.clear();
        for (rank, &n) in rules.order.iter().enumerate() {
            let node = &rules.nodes[n];
            if cause == Cause::Time && !node.time_dependent {
                continue;
            }
            let change = |i: usize, kind, from, to| Change {
                customer: cs[i],
                node: n as u32,
                kind,
                from,
                to,
                at: now[i],
                cause,
                capped: false,
            };
            match &node.kind {
                NodeKind::Segment { cooldown, .. } => {
                    let inp = inputs(rules, state, members, cs, now);
                    let truth = self.kernel.run(
                        &self.programs.nodes[n][0],
                        &inp,
                        &self.all,
                        &mut self.next,
                    );
                    for i in 0..len {
                        let c = cs[i] as usize;
                        let holds = truth[i] == TRUE;
                        let was = members.is_member(n, c);
                        let mut is = holds;
                        if holds && !was {
                            if let (Some(cd), Some(last)) = (cooldown, members.last_exit(n, c)) {
                                let until = last.saturating_add(*cd);
                                if now[i] < until {
                                    is = false;
                                    if until < self.next[i] {
                                        self.next[i] = until;
                                    }
                                }
                            }
                        }
                        if is != was {
                            members.transition(n, c, is as u8, now[i]);
                            let kind = if is {
                                ChangeKind::Enter
                            } else {
                                ChangeKind::Exit
                            };
                            self.chunk_changes.push((
                                i as u16,
                                rank as u16,
                                change(i, kind, NO_STAGE, NO_STAGE),
                            ));
                        }
                    }
                }
                NodeKind::Lifecycle { stages } => {
                    // The first stage whose rule holds wins; later stages are
                    // evaluated only for the positions still undecided.
                    self.stage.clear();
                    self.stage.resize(len, NO_STAGE);
                    self.undecided.clear();
                    self.undecided.extend(0..len as u16);
                    for s in 0..stages.len() {
                        if self.undecided.is_empty() {
                            break;
                        }
                        let inp = inputs(rules, state, members, cs, now);
                        let truth = self.kernel.run(
                            &self.programs.nodes[n][s],
                            &inp,
                            &self.undecided,
                            &mut self.next,
                        );
                        self.still.clear();
                        for &i in &self.undecided {
                            if truth[i as usize] == TRUE {
                                self.stage[i as usize] = s as u8;
                            } else {
                                self.still.push(i);
                            }
                        }
                        std::mem::swap(&mut self.undecided, &mut self.still);
                    }
                    for (i, &c) in cs.iter().enumerate() {
                        let c = c as usize;
                        let (from, to) = (members.stage(n, c), self.stage[i]);
                        if from != to {
                            members.transition(n, c, to, now[i]);
                            let kind = match (from, to) {
                                (NO_STAGE, _) => ChangeKind::Enter,
                                (_, NO_STAGE) => ChangeKind::Exit,
                                (f, t) if t < f => ChangeKind::Progress,
                                _ => ChangeKind::Regress,
                            };
                            self.chunk_changes.push((
                                i as u16,
                                rank as u16,
                                change(i, kind, from, to),
                            ));
                        }
                    }
                }
            }
        }
        // Customer by customer, nodes in evaluation order.
        self.chunk_changes.sort_by_key(|&(i, rank, _)| (i, rank));
        out.extend(self.chunk_changes.iter().map(|&(_, _, c)| c));
    }
}

/// What a program run reads for one chunk, with the memberships as they
/// stand after the nodes already evaluated for it.
fn inputs<'a>(
    rules: &'a CompiledRules,
    state: &'a State,
    members: &'a Memberships,
    customers: &'a [u32],
    now: &'a [i64],
) -> Inputs<'a> {
    Inputs {
        rules,
        state,
        members,
        customers,
        now,
    }
}
