//! Who is in which segment or lifecycle stage, and the changes between
//! evaluations.

use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Int64Array};

use crate::error::{EngineError, Result};
use crate::rules::compile::{CompiledRules, NodeKind};
use crate::state::aggregates::NO_LAST;

/// No lifecycle stage.
pub const NO_STAGE: u8 = u8::MAX;

/// Why a membership changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// New events.
    Event,
    /// The clock moved.
    Time,
    /// Trait upserts.
    Traits,
    /// The rules were replaced.
    Rules,
    /// Two profiles of one person were merged.
    Merge,
}

impl Cause {
    /// Name in the changes table.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Event => "event",
            Cause::Time => "time",
            Cause::Traits => "traits",
            Cause::Rules => "rules",
            Cause::Merge => "merge",
        }
    }
}

/// Which members of a segment with a holdout a query returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Holdout {
    /// Everyone the rule holds for: treatment and control group alike, as
    /// the segment's size, the snapshot's column and the changes count them.
    #[default]
    Include,
    /// The treatment group only: the audience to contact.
    Exclude,
    /// The control group only.
    Only,
}

impl Holdout {
    /// Parses `include`, `exclude` or `only`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "include" => Ok(Holdout::Include),
            "exclude" => Ok(Holdout::Exclude),
            "only" => Ok(Holdout::Only),
            other => Err(EngineError::Invalid(format!(
                "holdout must be `include`, `exclude` or `only`, not `{other}`"
            ))),
        }
    }

    /// True when a member held out (or not, `held_out`) is wanted.
    pub fn keeps(self, held_out: bool) -> bool {
        match self {
            Holdout::Include => true,
            Holdout::Exclude => !held_out,
            Holdout::Only => held_out,
        }
    }
}

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Entered a segment, or a lifecycle from no stage.
    Enter,
    /// Left a segment, or a lifecycle to no stage.
    Exit,
    /// Moved to an earlier-listed (higher) stage.
    Progress,
    /// Moved to a later-listed (lower) stage.
    Regress,
}

impl ChangeKind {
    /// Name in the changes table.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Enter => "enter",
            ChangeKind::Exit => "exit",
            ChangeKind::Progress => "progress",
            ChangeKind::Regress => "regress",
        }
    }
}

/// One membership change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// Customer index.
    pub customer: u32,
    /// Node (segment or lifecycle) index.
    pub node: u32,
    /// What changed.
    pub kind: ChangeKind,
    /// Stage before (lifecycles), `NO_STAGE` otherwise.
    pub from: u8,
    /// Stage after (lifecycles), `NO_STAGE` otherwise.
    pub to: u8,
    /// Engine time of the change.
    pub at: i64,
    /// Why.
    pub cause: Cause,
    /// A frequency cap held this entry back from being sent (see
    /// `measure::caps`); always false for other changes.
    pub capped: bool,
}

/// Who is where: one row of cells per customer, one cell per node (a
/// segment's cell is 0 or 1, a lifecycle's the stage index or `NO_STAGE`),
/// so reading or comparing all of a customer's memberships touches one
/// cache line. Counts per segment and stage are kept by the one method that
/// changes a cell, `transition`.
#[derive(Debug, Clone, Default)]
pub struct Memberships {
    /// Cells of a customer with no memberships, one per node.
    blank: Vec<u8>,
    /// `cells[c * width + n]`: customer `c`, node `n`.
    cells: Vec<u8>,
    /// Last exit time per customer, for segments with a cooldown (empty
    /// for the other nodes).
    last_exit: Vec<Vec<i64>>,
    /// Members per segment; customers per stage for lifecycles.
    counts: Vec<Vec<usize>>,
    cooldown: Vec<bool>,
}

impl Memberships {
    /// Empty memberships for the rules.
    pub fn new(rules: &CompiledRules) -> Self {
        let mut m = Memberships::default();
        for node in &rules.nodes {
            match &node.kind {
                NodeKind::Segment { cooldown, .. } => {
                    m.blank.push(0);
                    m.counts.push(vec![0]);
                    m.cooldown.push(cooldown.is_some());
                }
                NodeKind::Lifecycle { stages } => {
                    m.blank.push(NO_STAGE);
                    m.counts.push(vec![0; stages.len()]);
                    m.cooldown.push(false);
                }
            }
            m.last_exit.push(Vec::new());
        }
        m
    }

    fn width(&self) -> usize {
        self.blank.len()
    }

    /// Customers with a row.
    pub fn len(&self) -> usize {
        self.cells.len().checked_div(self.width()).unwrap_or(0)
    }

    /// True when no customer has a row.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Grows to `len` customers.
    pub fn grow(&mut self, len: usize) {
        let w = self.width();
        while self.len() < len && w > 0 {
            self.cells.extend_from_slice(&self.blank);
        }
        for (n, col) in self.last_exit.iter_mut().enumerate() {
            if self.cooldown[n] && col.len() < len {
                col.resize(len, NO_LAST);
            }
        }
    }

    /// Appends another engine's customers (same rules, both grown to their
    /// customer counts) after these (see `Engine::merge`).
    pub fn append(&mut self, other: Memberships) {
        self.cells.extend(other.cells);
        for (mine, theirs) in self.last_exit.iter_mut().zip(other.last_exit) {
            mine.extend(theirs);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            for (m, t) in mine.iter_mut().zip(theirs) {
                *m += t;
            }
        }
    }

    /// Node `n`'s cell for customer `c` (blank past the known customers).
    #[inline]
    pub fn cell(&self, n: usize, c: usize) -> u8 {
        self.cells
            .get(c * self.width() + n)
            .copied()
            .unwrap_or(self.blank[n])
    }

    /// True when customer `c` is in segment `n`.
    #[inline]
    pub fn is_member(&self, n: usize, c: usize) -> bool {
        self.cell(n, c) == 1
    }

    /// Customer `c`'s stage in lifecycle `n`, or `NO_STAGE`.
    #[inline]
    pub fn stage(&self, n: usize, c: usize) -> u8 {
        self.cell(n, c)
    }

    /// When customer `c` last left segment `n`, for segments with a cooldown.
    #[inline]
    pub fn last_exit(&self, n: usize, c: usize) -> Option<i64> {
        self.last_exit[n].get(c).copied().filter(|&t| t != NO_LAST)
    }

    /// Starts loading customer `c`'s row.
    #[inline]
    pub fn prefetch(&self, c: usize) {
        if let Some(cell) = self.cells.get(c * self.width()) {
            crate::state::prefetch::prefetch_read(cell);
        }
    }

    /// Sets node `n`'s cell of customer `c` to `to` at `now` (for a segment
    /// 0 or 1, for a lifecycle a stage or `NO_STAGE`) and returns the cell
    /// before. Keeps the counts and, when a segment with a cooldown is left,
    /// the time of the exit.
    #[inline]
    pub fn transition(&mut self, n: usize, c: usize, to: u8, now: i64) -> u8 {
        let i = c * self.width() + n;
        let from = std::mem::replace(&mut self.cells[i], to);
        if from == to {
            return from;
        }
        let segment = self.blank[n] == 0;
        let slot = |v: u8| (!segment && v != NO_STAGE).then_some(v as usize);
        if segment {
            if to == 1 {
                self.counts[n][0] += 1;
            } else {
                self.counts[n][0] -= 1;
                if let Some(t) = self.last_exit[n].get_mut(c) {
                    *t = now;
                }
            }
        } else {
            if let Some(f) = slot(from) {
                self.counts[n][f] -= 1;
            }
            if let Some(t) = slot(to) {
                self.counts[n][t] += 1;
            }
        }
        from
    }

    /// Members of segment `n`.
    pub fn segment_count(&self, n: usize) -> usize {
        self.counts[n][0]
    }

    /// Customers per stage of lifecycle `n`.
    pub fn stage_counts(&self, n: usize) -> &[usize] {
        &self.counts[n]
    }

    /// Per node: members of a segment, or customers per stage of a lifecycle.
    pub fn counts(&self) -> &[Vec<usize>] {
        &self.counts
    }

    /// Node `n`'s cells of the first `len` customers.
    pub fn column(&self, n: usize, len: usize) -> impl Iterator<Item = u8> + '_ {
        (0..len).map(move |c| self.cell(n, c))
    }

    /// The customers whose cell of node `n` is not blank.
    pub fn customers_in(&self, n: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.len()).filter(move |&c| self.cell(n, c) != self.blank[n])
    }

    /// Exit times of segment `n`'s customers, if it has a cooldown.
    pub fn last_exit_column(&self, n: usize) -> Option<&[i64]> {
        self.cooldown[n].then_some(self.last_exit[n].as_slice())
    }

    /// Replaces segment `n`'s exit times (checkpoints, rule changes).
    pub fn set_last_exit_column(&mut self, n: usize, times: Vec<i64>) {
        if self.cooldown[n] {
            self.last_exit[n] = times;
        }
    }

    /// The first `n` customers' cells as checkpoint columns: `seg:<name>`
    /// booleans (plus `last_exit:<name>` times for a cooldown) and
    /// `stage:<name>` stage indexes.
    pub fn to_columns(&self, rules: &CompiledRules, n: usize) -> Vec<(String, ArrayRef)> {
        let mut out: Vec<(String, ArrayRef)> = Vec::new();
        for (i, node) in rules.nodes.iter().enumerate() {
            if node.is_segment() {
                let vals: BooleanArray = self.column(i, n).map(|v| Some(v == 1)).collect();
                out.push((format!("seg:{}", node.name), Arc::new(vals)));
                if let Some(times) = self.last_exit_column(i) {
                    let vals = Int64Array::from_iter_values(times[..n].iter().copied());
                    out.push((format!("last_exit:{}", node.name), Arc::new(vals)));
                }
            } else {
                let vals = Int64Array::from_iter_values(self.column(i, n).map(i64::from));
                out.push((format!("stage:{}", node.name), Arc::new(vals)));
            }
        }
        out
    }

    /// Rebuilds `n` customers' memberships from the columns `to_columns`
    /// wrote, read by name with `bools` and `ints` (which give the
    /// checkpoint's errors for a missing or mistyped column).
    pub fn from_columns(
        rules: &CompiledRules,
        n: usize,
        bools: impl Fn(&str) -> Result<Vec<bool>>,
        ints: impl Fn(&str) -> Result<Vec<i64>>,
    ) -> Result<Self> {
        let bad = |m: String| EngineError::Checkpoint(m);
        let mut m = Memberships::new(rules);
        m.grow(n);
        for (i, node) in rules.nodes.iter().enumerate() {
            let cells: Vec<u8> = match &node.kind {
                NodeKind::Segment { .. } => {
                    let name = format!("seg:{}", node.name);
                    bools(&name)?.into_iter().map(u8::from).collect()
                }
                NodeKind::Lifecycle { stages } => {
                    let name = format!("stage:{}", node.name);
                    let vals = ints(&name)?;
                    vals.into_iter()
                        .map(|v| match u8::try_from(v) {
                            Ok(s) if s == NO_STAGE || (s as usize) < stages.len() => Ok(s),
                            _ => Err(bad(format!(
                                "stage index {v} out of range for `{}`",
                                node.name
                            ))),
                        })
                        .collect::<Result<_>>()?
                }
            };
            if cells.len() != n {
                return Err(bad(format!(
                    "`{}` has {} rows, expected {n}",
                    node.name,
                    cells.len()
                )));
            }
            for (c, v) in cells.into_iter().enumerate() {
                m.transition(i, c, v, NO_LAST);
            }
            if m.cooldown[i] {
                let times = ints(&format!("last_exit:{}", node.name))?;
                if times.len() != n {
                    return Err(bad(format!(
                        "`last_exit:{}` has the wrong length",
                        node.name
                    )));
                }
                m.last_exit[i] = times;
            }
        }
        Ok(m)
    }
}
