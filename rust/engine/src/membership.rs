//! Who is in which segment or lifecycle stage, and the changes between
//! evaluations.

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
}

impl Cause {
    /// Name in the changes table.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Event => "event",
            Cause::Time => "time",
            Cause::Traits => "traits",
            Cause::Rules => "rules",
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
}

/// Membership columns, indexed by node then customer.
#[derive(Debug, Clone, Default)]
pub struct Memberships {
    /// Segment membership (empty for lifecycles).
    pub seg: Vec<Vec<bool>>,
    /// Lifecycle stage (empty for segments).
    pub stage: Vec<Vec<u8>>,
    /// Last exit time, for segments with a cooldown.
    pub last_exit: Vec<Vec<i64>>,
    /// Members per segment.
    pub seg_count: Vec<usize>,
    /// Customers per stage, per lifecycle.
    pub stage_count: Vec<Vec<usize>>,
}

impl Memberships {
    /// Empty memberships for the rules.
    pub fn new(rules: &CompiledRules) -> Self {
        let n = rules.nodes.len();
        let mut m = Memberships {
            seg: vec![Vec::new(); n],
            stage: vec![Vec::new(); n],
            last_exit: vec![Vec::new(); n],
            seg_count: vec![0; n],
            stage_count: vec![Vec::new(); n],
        };
        for (i, node) in rules.nodes.iter().enumerate() {
            if let NodeKind::Lifecycle { stages } = &node.kind {
                m.stage_count[i] = vec![0; stages.len()];
            }
        }
        m
    }

    /// Appends another engine's customers (same rules, both grown to their
    /// customer counts) after these (see `Engine::merge`).
    pub fn append(&mut self, other: Memberships) {
        for (mine, theirs) in self.seg.iter_mut().zip(other.seg) {
            mine.extend(theirs);
        }
        for (mine, theirs) in self.stage.iter_mut().zip(other.stage) {
            mine.extend(theirs);
        }
        for (mine, theirs) in self.last_exit.iter_mut().zip(other.last_exit) {
            mine.extend(theirs);
        }
        for (mine, theirs) in self.seg_count.iter_mut().zip(other.seg_count) {
            *mine += theirs;
        }
        for (mine, theirs) in self.stage_count.iter_mut().zip(other.stage_count) {
            for (m, t) in mine.iter_mut().zip(theirs) {
                *m += t;
            }
        }
    }

    /// Moves customer `c` in or out of segment `n` at `now`, keeping the
    /// count and, for a segment with a cooldown, the time of the last exit.
    #[inline]
    pub fn set_segment(&mut self, n: usize, c: usize, is: bool, now: i64) {
        if self.seg[n][c] == is {
            return;
        }
        self.seg[n][c] = is;
        if is {
            self.seg_count[n] += 1;
        } else {
            self.seg_count[n] -= 1;
            if let Some(slot) = self.last_exit[n].get_mut(c) {
                *slot = now;
            }
        }
    }

    /// Moves customer `c` to stage `to` (or `NO_STAGE`) of lifecycle `n`,
    /// keeping the per-stage counts.
    #[inline]
    pub fn set_stage(&mut self, n: usize, c: usize, to: u8) {
        let from = std::mem::replace(&mut self.stage[n][c], to);
        if from != NO_STAGE {
            self.stage_count[n][from as usize] -= 1;
        }
        if to != NO_STAGE {
            self.stage_count[n][to as usize] += 1;
        }
    }

    /// Grows to `len` customers.
    pub fn grow(&mut self, rules: &CompiledRules, len: usize) {
        for (i, node) in rules.nodes.iter().enumerate() {
            match &node.kind {
                NodeKind::Segment { cooldown, .. } => {
                    if self.seg[i].len() < len {
                        self.seg[i].resize(len, false);
                    }
                    if cooldown.is_some() && self.last_exit[i].len() < len {
                        self.last_exit[i].resize(len, NO_LAST);
                    }
                }
                NodeKind::Lifecycle { .. } => {
                    if self.stage[i].len() < len {
                        self.stage[i].resize(len, NO_STAGE);
                    }
                }
            }
        }
    }
}
