//! The engine: rules + state + memberships + clock. Every public operation
//! either applies completely or returns an error having changed nothing.

use std::collections::BTreeMap;

use arrow_array::RecordBatch;

use crate::error::{EngineError, Result};
use crate::eval::kernel::CHUNK;
use crate::eval::Evaluator;
use crate::ingest::{
    apply_json_messages, apply_resolved, apply_trait_batch, group_resolved, resolve,
    unreadable_trait_rows, GroupScratch, Shard, Touched,
};
use crate::membership::{Cause, Change, Holdout, Memberships, NO_STAGE};
use crate::output::holdout_flag;
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
    pub(crate) rules: CompiledRules,
    /// Per-customer state.
    pub(crate) state: State,
    /// Memberships.
    pub(crate) members: Memberships,
    /// Customers due to be re-evaluated by time.
    pub(crate) timers: TimerIndex,
    /// Engine time, ms (None before the first event or `advance_to`).
    pub(crate) clock: Option<i64>,
    /// Source offsets covered by the state (free-form JSON object text).
    pub(crate) offsets: String,
    /// Engine column name -> input column name.
    pub(crate) column_map: BTreeMap<String, String>,
    /// Customers whose evaluation a deferred ingest put off (see `ingest_deferred`).
    pub(crate) deferred: Touched,
    /// Frequency caps across segments (`measure::caps`).
    pub(crate) caps: crate::measure::FrequencyCaps,
    /// The rules lowered for columnar evaluation, with their scratch space.
    evaluator: Evaluator,
    /// Scratch: the evaluation instant of each customer being evaluated.
    instants: Vec<i64>,
    /// Scratch: timers popped in one round.
    due: Vec<(i64, u32)>,
    /// Scratch: the buffers a batch of events is grouped in.
    grouping: GroupScratch,
}

/// Read access for code outside the engine crate (the bindings, tests and
/// benches); the fields stay crate-private so only the engine changes them.
impl Engine {
    /// Compiled rules.
    pub fn rules(&self) -> &CompiledRules {
        &self.rules
    }

    /// Per-customer state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Memberships.
    pub fn members(&self) -> &Memberships {
        &self.members
    }

    /// Customers due to be re-evaluated by time.
    pub fn timers(&self) -> &TimerIndex {
        &self.timers
    }

    /// Engine time, ms (None before the first event or `advance_to`).
    pub fn clock(&self) -> Option<i64> {
        self.clock
    }

    /// Source offsets covered by the state (free-form JSON object text).
    pub fn offsets(&self) -> &str {
        &self.offsets
    }

    /// Records the source offsets the state covers (saved with checkpoints).
    pub fn set_offsets(&mut self, offsets: String) {
        self.offsets = offsets;
    }

    /// Engine column name -> input column name.
    pub fn column_map(&self) -> &BTreeMap<String, String> {
        &self.column_map
    }

    /// True when a deferred ingest left customers to evaluate.
    pub fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }
}

impl Engine {
    /// Compiles the rules and starts empty.
    pub fn new(spec: RuleSetSpec) -> Result<Self> {
        let rules = compile_ruleset(&spec)?;
        crate::measure::entries::check(&rules)?;
        Ok(Self::from_compiled(rules))
    }

    /// An empty engine for rules that compiled and whose measurement keys
    /// passed `measure::entries::check`.
    pub(crate) fn from_compiled(rules: CompiledRules) -> Self {
        let mut state = State::new(&rules.needs, &rules.traits, rules.spec.currency_scale);
        state.conversions = crate::state::Conversions::new(&rules, &mut state.keyed)
            .expect("measurement keys checked before");
        let members = Memberships::new(&rules);
        let caps = crate::measure::FrequencyCaps::new(&rules).expect("caps checked before");
        Engine {
            caps,
            evaluator: Evaluator::new(&rules),
            instants: Vec::new(),
            due: Vec::new(),
            grouping: GroupScratch::default(),
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
        self.close_windows();
        let mut changes = Vec::new();
        if let Some((lo, hi)) = resolved.ts_range() {
            self.fire_timers_before(lo, hi, &mut changes);
        }
        let mut touched = Touched::default();
        let scratch = std::mem::take(&mut self.grouping);
        let (mut grouped, rejected, stats) =
            group_resolved(&mut self.state, &resolved, &mut touched, scratch);
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
            self.grouping = grouped.into_scratch();
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
        self.grouping = grouped.into_scratch();
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
        self.close_windows();
        let mut deferred = std::mem::take(&mut self.deferred);
        let (rejected, stats) = apply_resolved(
            &mut self.state,
            self.clock,
            &resolved,
            &mut deferred,
            &mut self.grouping,
        );
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

    /// Applies JSON messages (flat events, Segment-spec `track`/`identify`,
    /// and `alias`, applied as profile merges after the batch's events).
    pub fn ingest_json(&mut self, messages: &[&[u8]]) -> IngestOutcome {
        let (aliases, others) = crate::measure::merge_alias::split_aliases(messages);
        if aliases.is_empty() {
            return self.ingest_json_events(messages);
        }
        let kept: Vec<&[u8]> = others.iter().map(|&i| messages[i]).collect();
        let mut out = self.ingest_json_events(&kept);
        for r in &mut out.rejected {
            r.0 = others[r.0];
        }
        let ints = self.state.ids.kind() == Some(crate::state::IdKind::Int);
        for (i, alias) in aliases {
            let outcome = alias.and_then(|(from, into)| {
                let as_id = |id: &crate::measure::merge_alias::OwnedId| {
                    id.as_id(ints)
                        .ok_or_else(|| "alias ids must be integers in this engine".to_string())
                };
                let (from, into) = (as_id(&from)?, as_id(&into)?);
                self.merge_customers(&[(from.borrow(), into.borrow())])
                    .map_err(|e| e.to_string())
            });
            match outcome {
                Ok(changes) => {
                    out.applied += 1;
                    out.changes.extend(changes);
                }
                Err(why) => out.rejected.push((i, why)),
            }
        }
        out.rejected.sort_by_key(|r| r.0);
        out
    }

    fn ingest_json_events(&mut self, messages: &[&[u8]]) -> IngestOutcome {
        self.settle_deferred();
        self.close_windows();
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

    /// Merges profiles of one person: each row `(customer_id, into)` moves
    /// the first customer's state into the second's (rules for chains and
    /// repeats in `measure::merge_alias`). The absorbed ids leave every
    /// segment and lifecycle, then the survivors are re-evaluated; all these
    /// changes have cause `merge`. Later events of an absorbed id go to its
    /// survivor. On an error nothing changes.
    pub fn merge_customers(
        &mut self,
        rows: &[(crate::state::CustomerId<'_>, crate::state::CustomerId<'_>)],
    ) -> Result<Vec<Change>> {
        use crate::measure::merge_alias::{plan, Step};
        self.settle_deferred();
        let steps = plan(&self.state, rows)?;
        let now = self.clock.unwrap_or(0);
        let mut out = Vec::new();
        let mut survivors = Touched::default();
        for step in steps {
            match step {
                Step::Same => {}
                Step::AliasNew { id, into } => {
                    let (c, _) = match id {
                        crate::state::CustomerId::Str(s) => self.state.ids.intern_str(s),
                        crate::state::CustomerId::Int(v) => self.state.ids.intern_int(v),
                    };
                    self.grow();
                    self.state.aliases.add(c, into);
                }
                Step::Merge { from, into } => {
                    self.leave_everything(from, now, &mut out);
                    self.state.absorb(from, into);
                    self.caps.merge_customer(from, into);
                    self.timers.set(from, crate::time::timers::NEVER);
                    self.state.aliases.add(from, into);
                    survivors.add(into);
                }
            }
        }
        let survivors: Vec<u32> = survivors
            .ascending()
            .into_iter()
            .filter(|&c| !self.state.aliases.is_alias(c))
            .collect();
        self.evaluate_at(&survivors, now, Cause::Merge, &mut out);
        Ok(out)
    }

    /// Takes customer `c` out of every segment and lifecycle (cause `merge`).
    fn leave_everything(&mut self, c: u32, now: i64, out: &mut Vec<Change>) {
        for (n, node) in self.rules.nodes.iter().enumerate() {
            let cell = self.members.cell(n, c as usize);
            let (blank, from) = if node.is_segment() {
                (0, NO_STAGE)
            } else {
                (NO_STAGE, cell)
            };
            if cell == blank {
                continue;
            }
            self.members.transition(n, c as usize, blank, now);
            out.push(Change {
                customer: c,
                node: n as u32,
                kind: crate::membership::ChangeKind::Exit,
                from,
                to: NO_STAGE,
                at: now,
                cause: Cause::Merge,
                capped: false,
            });
        }
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

    /// Upserts traits all or nothing: when a row of any batch cannot be read
    /// (a value that does not fit its trait's type, a null id), an error
    /// that names the first such rows and why, and nothing is applied.
    /// Otherwise as `update_traits` on each batch in turn.
    pub fn update_traits_all(&mut self, batches: &[RecordBatch]) -> Result<IngestOutcome> {
        let mut bad: Rejected = Vec::new();
        let mut offset = 0;
        for b in batches {
            let rows = unreadable_trait_rows(&self.state, &self.column_map, b)?;
            bad.extend(rows.into_iter().map(|(r, m)| (r + offset, m)));
            offset += b.num_rows();
        }
        if !bad.is_empty() {
            let shown: Vec<String> = bad
                .iter()
                .take(5)
                .map(|(r, m)| format!("row {r}: {m}"))
                .collect();
            let more = match bad.len() {
                n if n > 5 => format!("; and {} more", n - 5),
                _ => String::new(),
            };
            return Err(EngineError::Invalid(format!(
                "{} of {offset} trait rows cannot be read, so none was applied: {}{more} \
                 (update_traits_result applies the other rows and returns these)",
                bad.len(),
                shown.join("; "),
            )));
        }
        let mut total = IngestOutcome::default();
        for b in batches {
            let out = self.update_traits(b)?;
            total.changes.extend(out.changes);
            total.applied += out.applied;
        }
        Ok(total)
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

    /// Advances the clock to `t` and returns the changes that time alone
    /// caused, each at the instant it happened. `t` equal to the clock is a
    /// no-op; before it, an error that changes nothing (see `check_advance`).
    pub fn advance_to(&mut self, t: i64) -> Result<Vec<Change>> {
        self.check_advance(t)?;
        self.settle_deferred();
        let mut out = Vec::new();
        if self.clock == Some(t) {
            return Ok(out);
        }
        self.clock = Some(t);
        self.run_timers(t, &mut out);
        Ok(out)
    }

    /// The clock never goes back (events have been applied and memberships
    /// evaluated up to it), so a target before it is refused: doing nothing
    /// would leave the caller reading memberships of a later time than the
    /// one asked for, without knowing.
    fn check_advance(&self, t: i64) -> Result<()> {
        match self.clock {
            Some(c) if t < c => Err(EngineError::Invalid(format!(
                "advance_to({}) is before the engine clock ({}); the clock never goes back \
                 (events and earlier calls moved it there). To move it only forward, compare \
                 with the clock first",
                crate::time::format_ts(t),
                crate::time::format_ts(c),
            ))),
            _ => Ok(()),
        }
    }

    /// Advances the clock to `t` in one step: every customer due by `t` (and
    /// every customer a deferred ingest left pending) is evaluated once, at `t`.
    /// The changes are net, stamped `t`: a customer who entered and left a
    /// segment in between reports nothing. Cheaper than `advance_to` over a long
    /// stretch, where one customer may be due many times; changes of deferred
    /// customers are not reported, as for `settle_deferred`.
    pub fn advance_to_net(&mut self, t: i64) -> Result<Vec<Change>> {
        self.check_advance(t)?;
        let mut out = Vec::new();
        if self.clock == Some(t) {
            self.settle_deferred();
            return Ok(out);
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
        Ok(out)
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
            crate::measure::record_entries(
                &self.rules,
                &mut self.state,
                &mut self.caps,
                &mut out[start..],
            );
        }
    }

    /// Folds the attribution windows that ended before the clock into the
    /// uplift counters (memory only: the counts do not depend on when).
    fn close_windows(&mut self) {
        if let Some(now) = self.clock {
            self.state.conversions.close_until(now);
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
        let start = out.len();
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
        crate::measure::record_entries(
            &self.rules,
            &mut self.state,
            &mut self.caps,
            &mut out[start..],
        );
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
    /// (`lifecycle` or `lifecycle.stage`). `holdout` picks the treatment or
    /// control group of a segment with a holdout; lifecycles have none, so
    /// for them anything but `Include` is an error.
    pub fn members_of(&self, name: &str, holdout: Holdout) -> Result<Vec<u32>> {
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
            (
                NodeKind::Segment {
                    holdout: percent, ..
                },
                None,
            ) => {
                let name = &self.rules.nodes[n].name;
                let held_out = |c: usize| {
                    holdout_flag(
                        self.state.ids.get(c as u32),
                        name,
                        &self.rules.salt,
                        *percent,
                    )
                };
                Ok(self
                    .members
                    .customers_in(n)
                    .filter(|&c| holdout == Holdout::Include || holdout.keeps(held_out(c)))
                    .map(|c| c as u32)
                    .collect())
            }
            (NodeKind::Segment { .. }, Some(_)) => Err(EngineError::Invalid(format!(
                "`{node_name}` is a segment and has no stages"
            ))),
            (NodeKind::Lifecycle { .. }, _) if holdout != Holdout::Include => {
                Err(EngineError::Invalid(format!(
                    "`{node_name}` is a lifecycle; lifecycles have no holdout"
                )))
            }
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
        crate::measure::entries::check(&new_rules)?;
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
        let mut state = crate::state::rekey(&self.state, &new_rules);
        state.conversions = self
            .state
            .conversions
            .carried_to(&new_rules, &mut state.keyed)?;
        let caps = self.caps.carried_to(&new_rules)?;
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
        self.caps = caps;
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
