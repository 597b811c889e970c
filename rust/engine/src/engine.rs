//! The engine: rules + state + memberships + clock. Every public operation
//! either applies completely or returns an error having changed nothing.

use std::collections::BTreeMap;

use arrow_array::RecordBatch;

use crate::error::{EngineError, Result};
use crate::eval::kernel::CHUNK;
use crate::eval::Evaluator;
use crate::ingest::{
    apply_json_messages, apply_resolved, apply_trait_batch, group_resolved, resolve, Shard, Touched,
};
use crate::membership::{Cause, Change, Memberships, NO_STAGE};
use crate::rules::compile::{compile_ruleset, CompiledRules, NodeKind};
use crate::rules::ruleset::RuleSetSpec;
use crate::state::State;
use crate::time::timers::TimerIndex;

/// Rows that were not applied, with the reason.
pub type Rejected = Vec<(usize, String)>;

/// What one ingest call did.
#[derive(Debug, Default)]
pub struct IngestOutcome {
    /// Membership changes caused by the call (event- and time-driven).
    pub changes: Vec<Change>,
    /// Rejected rows (input row index, reason).
    pub rejected: Rejected,
    /// Rows applied.
    pub applied: usize,
    /// Rows skipped as duplicates of an already-applied `event_id`.
    pub duplicates: usize,
    /// Rows per `event_type` value and how each was read (Arrow input).
    pub event_types: Vec<crate::ingest::EventTypeCount>,
    /// Latest event time applied.
    pub max_ts: Option<i64>,
}

/// The segmentation engine.
#[derive(Debug, Clone)]
pub struct Engine {
    /// Compiled rules.
    pub rules: CompiledRules,
    /// Per-customer state.
    pub state: State,
    /// Memberships.
    pub members: Memberships,
    /// Customers due to be re-evaluated by time.
    pub timers: TimerIndex,
    /// Engine time, ms (None before the first event or `advance_to`).
    pub clock: Option<i64>,
    /// Source offsets covered by the state (free-form JSON object text).
    pub offsets: String,
    /// Engine column name -> input column name.
    pub column_map: BTreeMap<String, String>,
    /// Customers whose evaluation a deferred ingest put off (see `ingest_deferred`).
    pub deferred: Touched,
    /// The rules lowered for columnar evaluation, with their scratch space.
    evaluator: Evaluator,
    /// Scratch: the evaluation instant of each customer being evaluated.
    instants: Vec<i64>,
    /// Scratch: timers popped in one round.
    due: Vec<(i64, u32)>,
}

impl Engine {
    /// Compiles the rules and starts empty.
    pub fn new(spec: RuleSetSpec) -> Result<Self> {
        let rules = compile_ruleset(&spec)?;
        Ok(Self::from_compiled(rules))
    }

    pub(crate) fn from_compiled(rules: CompiledRules) -> Self {
        let state = State::new(&rules.needs, &rules.traits, rules.spec.currency_scale);
        let members = Memberships::new(&rules);
        Engine {
            evaluator: Evaluator::new(&rules),
            instants: Vec::new(),
            due: Vec::new(),
            rules,
            state,
            members,
            timers: TimerIndex::default(),
            clock: None,
            offsets: "{}".into(),
            column_map: BTreeMap::new(),
            deferred: Touched::default(),
        }
    }

    /// A new engine with these rules and column map, and no customers.
    pub fn empty_like(&self) -> Engine {
        let mut e = Engine::from_compiled(self.rules.clone());
        e.column_map = self.column_map.clone();
        e
    }

    /// Sets the column map (engine name -> input column name).
    pub fn set_column_map(&mut self, map: BTreeMap<String, String>) -> Result<()> {
        use crate::ingest::EVENT_COLUMNS;
        for k in map.keys() {
            if !EVENT_COLUMNS.contains(&k.as_str()) {
                let hint =
                    crate::rules::diagnostics::did_you_mean(k, EVENT_COLUMNS.iter().copied());
                return Err(EngineError::Invalid(format!(
                    "column map: unknown engine column `{k}`{hint}"
                )));
            }
        }
        self.column_map = map;
        Ok(())
    }

    /// Number of customers.
    pub fn num_customers(&self) -> usize {
        self.state.len()
    }

    pub(crate) fn grow(&mut self) {
        let n = self.state.len();
        self.state.ensure(n);
        self.members.grow(n);
        self.timers.grow(n);
    }

    /// Applies a batch of events, then re-evaluates the customers it touched
    /// and anyone the moved clock made due.
    pub fn ingest(&mut self, batch: &RecordBatch) -> Result<IngestOutcome> {
        let mut resolved = resolve(&self.state, &self.column_map, batch)?;
        resolved.follow_rules(&self.rules.spec, crate::time::wall_clock_ms());
        self.settle_deferred();
        let mut changes = Vec::new();
        if let Some((lo, hi)) = resolved.ts_range() {
            self.fire_timers_before(lo, hi, &mut changes);
        }
        let mut touched = Touched::default();
        let (mut grouped, rejected, stats) =
            group_resolved(&mut self.state, &resolved, &mut touched);
        self.grow();
        let mut out = IngestOutcome {
            rejected,
            applied: stats.applied,
            duplicates: stats.duplicates,
            changes,
            max_ts: stats.max_ts,
            event_types: stats.event_types,
        };
        // Windows are pruned by the clock before the batch, as in deferred ingest.
        let pruning = self.clock;
        let Some(now) = self.move_clock(stats.max_ts) else {
            grouped.apply_through(&mut self.state, pruning, u32::MAX);
            return Ok(out);
        };
        // A chunk of customers at a time, applied then evaluated: a customer's
        // state is still in cache when its rules read it. Evaluation reads
        // only the customer's own state, so the result is that of applying
        // the whole batch first.
        for chunk in touched.ascending().chunks(CHUNK) {
            let last = chunk[chunk.len() - 1];
            grouped.apply_through(&mut self.state, pruning, last);
            self.evaluate_at(chunk, now, Cause::Event, &mut out.changes);
        }
        grouped.apply_through(&mut self.state, pruning, u32::MAX);
        self.run_timers(now, &mut out.changes);
        Ok(out)
    }

    /// Applies a batch of events and moves the clock, but evaluates no rule:
    /// the customers it touched are evaluated once, at the clock of that
    /// moment, by the next operation that needs memberships (`settle_deferred`).
    /// Their membership changes are not reported. This is for loading history,
    /// when only the memberships at the end matter: a customer touched by every
    /// batch is evaluated once instead of once per batch.
    ///
    /// With a `shard`, only the rows of that shard's customers are applied or
    /// rejected; the others are skipped (see `Shard` and `merge`).
    pub fn ingest_deferred(
        &mut self,
        batch: &RecordBatch,
        shard: Option<Shard>,
    ) -> Result<IngestOutcome> {
        let mut resolved = resolve(&self.state, &self.column_map, batch)?;
        resolved.follow_rules(&self.rules.spec, crate::time::wall_clock_ms());
        resolved.restrict_to(shard);
        let mut deferred = std::mem::take(&mut self.deferred);
        let (rejected, stats) =
            apply_resolved(&mut self.state, self.clock, &resolved, &mut deferred);
        self.deferred = deferred;
        self.grow();
        self.move_clock(stats.max_ts);
        Ok(IngestOutcome {
            rejected,
            applied: stats.applied,
            duplicates: stats.duplicates,
            changes: Vec::new(),
            max_ts: stats.max_ts,
            event_types: stats.event_types,
        })
    }

    /// Whether deferred ingests (`ingest_deferred`, then `settle_deferred`)
    /// end in the memberships that evaluating every batch would. They do not
    /// when a segment has a cooldown: whether a customer may re-enter depends
    /// on every exit along the way, and a deferred load sees only the exits of
    /// the evaluations it does.
    pub fn defers_exactly(&self) -> bool {
        !self.rules.nodes.iter().any(|n| {
            matches!(
                n.kind,
                NodeKind::Segment {
                    cooldown: Some(_),
                    ..
                }
            )
        })
    }

    /// Evaluates the customers that deferred ingests touched, at the current
    /// clock, and fires the timers that fell due meanwhile. The changes are
    /// dropped: deferred ingests report none. Every operation that reads or
    /// changes memberships calls this first.
    pub fn settle_deferred(&mut self) {
        if self.deferred.is_empty() {
            return;
        }
        let Some(now) = self.clock else { return };
        self.evaluate_deferred(now);
        self.run_timers(now, &mut Vec::new());
    }

    /// Evaluates the customers deferred ingests left pending, at `now`,
    /// dropping their changes.
    fn evaluate_deferred(&mut self, now: i64) {
        let deferred = std::mem::take(&mut self.deferred);
        let mut dropped = Vec::new();
        for chunk in deferred.ascending().chunks(1 << 16) {
            self.evaluate_at(chunk, now, Cause::Event, &mut dropped);
            dropped.clear();
        }
    }

    /// Applies JSON messages (flat events, Segment-spec `track`/`identify`).
    pub fn ingest_json(&mut self, messages: &[&[u8]]) -> IngestOutcome {
        self.settle_deferred();
        let mut touched = Touched::default();
        let mut traits_touched = Touched::default();
        let (rejected, stats) = apply_json_messages(
            &mut self.state,
            self.clock,
            messages,
            crate::ingest::json::JsonRules::of(&self.rules.spec, crate::time::wall_clock_ms()),
            &mut touched,
            &mut traits_touched,
        );
        self.grow();
        let mut out = IngestOutcome {
            rejected,
            applied: stats.applied,
            duplicates: stats.duplicates,
            max_ts: stats.max_ts,
            ..Default::default()
        };
        self.settle(&touched, stats.max_ts, Cause::Event, &mut out.changes);
        let now = self.clock.unwrap_or(0);
        let only_traits: Vec<u32> = traits_touched
            .list
            .iter()
            .copied()
            .filter(|&c| !touched.contains(c))
            .collect();
        self.evaluate_at(&only_traits, now, Cause::Traits, &mut out.changes);
        out
    }

    /// Upserts profile traits and re-evaluates those customers.
    pub fn update_traits(&mut self, batch: &RecordBatch) -> Result<IngestOutcome> {
        self.settle_deferred();
        let mut touched = Touched::default();
        let rejected = apply_trait_batch(&mut self.state, &self.column_map, batch, &mut touched)?;
        self.grow();
        let mut out = IngestOutcome {
            applied: touched.list.len(),
            rejected,
            ..Default::default()
        };
        let now = self.clock.unwrap_or(0);
        self.evaluate_at(&touched.ascending(), now, Cause::Traits, &mut out.changes);
        Ok(out)
    }

    /// Time-driven changes due before the batch's earliest event fire first,
    /// at their own instants and on the state before the batch, so that an
    /// event cannot undo what time had already done. Timers falling inside the
    /// batch's time range are settled after it, at the new clock.
    fn fire_timers_before(&mut self, earliest: i64, latest: i64, out: &mut Vec<Change>) {
        if self.clock.is_none() {
            return;
        }
        let new_clock = latest.saturating_sub(self.rules.lateness);
        let until = earliest.saturating_sub(1).min(new_clock);
        if self.clock.is_some_and(|c| until > c) {
            self.run_timers(until, out);
        }
    }

    /// Moves the clock after a batch and evaluates what must be.
    fn settle(
        &mut self,
        touched: &Touched,
        max_ts: Option<i64>,
        cause: Cause,
        out: &mut Vec<Change>,
    ) {
        let Some(now) = self.move_clock(max_ts) else {
            return;
        };
        self.evaluate_at(&touched.ascending(), now, cause, out);
        self.run_timers(now, out);
    }

    /// Moves the clock to the latest event time minus the lateness (never back).
    fn move_clock(&mut self, max_ts: Option<i64>) -> Option<i64> {
        let candidate = max_ts.map(|t| t.saturating_sub(self.rules.lateness));
        self.clock = match (self.clock, candidate) {
            (Some(c), Some(n)) => Some(c.max(n)),
            (None, n) => n,
            (c, None) => c,
        };
        self.clock
    }

    /// Advances the clock to `t` (never backwards) and returns the changes
    /// that time alone caused, each at the instant it happened.
    pub fn advance_to(&mut self, t: i64) -> Vec<Change> {
        self.settle_deferred();
        let mut out = Vec::new();
        if self.clock.is_some_and(|c| t <= c) {
            return out;
        }
        self.clock = Some(t);
        self.run_timers(t, &mut out);
        out
    }

    /// Advances the clock to `t` in one step: every customer due by `t` (and
    /// every customer a deferred ingest left pending) is evaluated once, at `t`.
    /// The changes are net, stamped `t`: a customer who entered and left a
    /// segment in between reports nothing. Cheaper than `advance_to` over a long
    /// stretch, where one customer may be due many times; changes of deferred
    /// customers are not reported, as for `settle_deferred`.
    pub fn advance_to_net(&mut self, t: i64) -> Vec<Change> {
        let mut out = Vec::new();
        if self.clock.is_some_and(|c| t <= c) {
            self.settle_deferred();
            return out;
        }
        self.clock = Some(t);
        self.evaluate_deferred(t);
        // Evaluating at `t` schedules each customer's next timer after `t`, so
        // every customer popped here is popped once.
        let mut due = std::mem::take(&mut self.due);
        due.clear();
        self.timers.pop_all_due(t, &mut due);
        let customers: Vec<u32> = due.iter().map(|&(_, c)| c).collect();
        self.due = due;
        self.evaluate_at(&customers, t, Cause::Time, &mut out);
        out
    }

    /// Fires every timer due by `until`, each customer at its own due
    /// instant, in rounds: a customer whose next breakpoint also falls by
    /// `until` is due again in a later round. The changes come out in the
    /// order of their instants, then customers, as one timer at a time would
    /// give them.
    fn run_timers(&mut self, until: i64, out: &mut Vec<Change>) {
        let start = out.len();
        let mut due = std::mem::take(&mut self.due);
        let mut rounds = 0;
        loop {
            due.clear();
            self.timers.pop_all_due(until, &mut due);
            if due.is_empty() {
                break;
            }
            rounds += 1;
            // In index order, as for events; the changes are put back in time order below.
            due.sort_unstable_by_key(|&(_, c)| c);
            let customers: Vec<u32> = due.iter().map(|&(_, c)| c).collect();
            self.instants.clear();
            self.instants.extend(due.iter().map(|&(at, _)| at));
            let instants = std::mem::take(&mut self.instants);
            self.evaluator.evaluate(
                &self.rules,
                &self.state,
                &mut self.members,
                &mut self.timers,
                &customers,
                &instants,
                Cause::Time,
                out,
            );
            self.instants = instants;
        }
        self.due = due;
        if rounds > 0 {
            out[start..].sort_by_key(|c| (c.at, c.customer));
        }
    }

    /// Evaluates customers at one instant (see `Evaluator::evaluate`).
    fn evaluate_at(&mut self, customers: &[u32], now: i64, cause: Cause, out: &mut Vec<Change>) {
        if customers.is_empty() {
            return;
        }
        let mut instants = std::mem::take(&mut self.instants);
        instants.clear();
        instants.resize(customers.len(), now);
        self.evaluator.evaluate(
            &self.rules,
            &self.state,
            &mut self.members,
            &mut self.timers,
            customers,
            &instants,
            cause,
            out,
        );
        self.instants = instants;
    }

    /// Re-evaluates every customer on every node at the current clock and
    /// returns the changes (cause `rules`): what a forced recalculation does.
    pub fn recompute(&mut self) -> Vec<Change> {
        self.settle_deferred();
        self.evaluate_everyone()
    }

    /// Every customer evaluated at the clock, with cause `rules`.
    fn evaluate_everyone(&mut self) -> Vec<Change> {
        let now = self.clock.unwrap_or(0);
        let mut out = Vec::new();
        let everyone: Vec<u32> = (0..self.num_customers() as u32).collect();
        self.evaluate_at(&everyone, now, Cause::Rules, &mut out);
        out
    }

    /// Customer indexes in a segment, or in any stage of a lifecycle
    /// (`lifecycle` or `lifecycle.stage`).
    pub fn members_of(&self, name: &str) -> Result<Vec<u32>> {
        let (node_name, stage_name) = match name.split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (name, None),
        };
        let Some(n) = self.rules.node_index(node_name) else {
            let names: Vec<&str> = self.rules.nodes.iter().map(|n| n.name.as_str()).collect();
            let hint = crate::rules::diagnostics::did_you_mean(node_name, names.iter().copied());
            return Err(EngineError::NotFound(format!(
                "unknown segment `{node_name}`{hint}"
            )));
        };
        match (&self.rules.nodes[n].kind, stage_name) {
            (NodeKind::Segment { .. }, None) => {
                Ok(self.members.customers_in(n).map(|c| c as u32).collect())
            }
            (NodeKind::Segment { .. }, Some(_)) => Err(EngineError::Invalid(format!(
                "`{node_name}` is a segment and has no stages"
            ))),
            (NodeKind::Lifecycle { stages }, stage) => {
                let want = match stage {
                    Some(s) => match stages.iter().position(|(n, _)| n == s) {
                        Some(i) => Some(i as u8),
                        None => {
                            return Err(EngineError::NotFound(format!(
                                "lifecycle `{node_name}` has no stage `{s}`"
                            )))
                        }
                    },
                    None => None,
                };
                Ok(self
                    .members
                    .customers_in(n)
                    .filter(|&c| want.is_none_or(|w| w == self.members.stage(n, c)))
                    .map(|c| c as u32)
                    .collect())
            }
        }
    }

    /// Replaces the rules, re-evaluates everyone and returns the changes
    /// (cause `rules`). Refuses, changing nothing, when the new rules need
    /// history the current state did not keep.
    pub fn replace_rules(
        &mut self,
        spec: RuleSetSpec,
    ) -> Result<(Vec<Change>, Vec<RemovedNodeExit>)> {
        let new_rules = compile_ruleset(&spec)?;
        self.settle_deferred();
        let old_needs = &self.state.keyed.needs;
        let missing = old_needs.missing_from(&new_rules.needs);
        if !missing.is_empty() && !self.state.is_empty() {
            return Err(EngineError::MissingHistory(format!(
                "the new rules need history that the current state did not keep: {}. \
                 Build a new engine with these rules and re-ingest the events instead.",
                missing.join("; ")
            )));
        }
        if self.state.ids.kind().is_some() && new_rules.scale != self.rules.scale {
            return Err(EngineError::Invalid(
                "the new rules change currency_scale; amounts already kept would be misread. Re-ingest the events instead.".into(),
            ));
        }
        let state = crate::state::rekey(&self.state, &new_rules);
        let mut members = Memberships::new(&new_rules);
        let n = state.len();
        members.grow(n);
        let mut removed = Vec::new();
        let now = self.clock.unwrap_or(0);
        // Carry memberships of nodes that keep their name and kind; report the
        // members of removed nodes as exits.
        for (i, old) in self.rules.nodes.iter().enumerate() {
            match new_rules.node_index(&old.name) {
                Some(j) if new_rules.nodes[j].is_segment() == old.is_segment() => {
                    // Old cell -> new cell. Stages are matched by name, and a stage
                    // that disappeared reads as none; a segment's 0/1 carries over.
                    let map: Vec<u8> = match (&old.kind, &new_rules.nodes[j].kind) {
                        (
                            NodeKind::Lifecycle { stages: os },
                            NodeKind::Lifecycle { stages: ns },
                        ) => os
                            .iter()
                            .map(|(name, _)| {
                                ns.iter()
                                    .position(|(m, _)| m == name)
                                    .map(|p| p as u8)
                                    .unwrap_or(NO_STAGE)
                            })
                            .collect(),
                        _ => vec![0, 1],
                    };
                    for c in self.members.customers_in(i) {
                        let cell = self.members.cell(i, c);
                        let to = map.get(cell as usize).copied().unwrap_or(NO_STAGE);
                        members.transition(j, c, to, now);
                    }
                    if let Some(times) = self.members.last_exit_column(i) {
                        members.set_last_exit_column(j, times.to_vec());
                    }
                }
                _ => {
                    for c in 0..n {
                        let from_stage = match &old.kind {
                            NodeKind::Segment { .. } => None,
                            NodeKind::Lifecycle { stages } => match self.members.stage(i, c) {
                                NO_STAGE => None,
                                s => Some(stages[s as usize].0.clone()),
                            },
                        };
                        let was_member = old.is_segment() && self.members.is_member(i, c);
                        if was_member || from_stage.is_some() {
                            removed.push(RemovedNodeExit {
                                customer: c as u32,
                                from_stage,
                                at: now,
                                name: old.name.clone(),
                            });
                        }
                    }
                }
            }
        }
        self.evaluator = Evaluator::new(&new_rules);
        self.rules = new_rules;
        self.state = state;
        self.members = members;
        self.timers = TimerIndex::default();
        self.timers.grow(n);
        Ok((self.evaluate_everyone(), removed))
    }
}

/// A member of a node that the new rules no longer define.
#[derive(Debug, Clone)]
pub struct RemovedNodeExit {
    /// Customer index.
    pub customer: u32,
    /// Stage before, for lifecycles.
    pub from_stage: Option<String>,
    /// Engine time.
    pub at: i64,
    /// The removed node's name.
    pub name: String,
}
