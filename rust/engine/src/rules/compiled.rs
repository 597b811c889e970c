//! The output of compilation: one node per segment or lifecycle with its
//! typed rules, the evaluation order, and the state the rules need.

use super::expr::Expr;
use super::needs::Needs;
use super::ruleset::{RuleSetSpec, TraitType};

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
