//! The rule language: rule-set specs, SQL parsing, type checking and
//! compilation, and evaluation with time breakpoints.

pub mod compile;
pub mod describe;
pub mod diagnostics;
pub mod eval;
pub mod expr;
pub mod measure_spec;
pub mod needs;
pub mod ruleset;

pub use compile::{compile_ruleset, CompiledRules, Node, NodeKind};
pub use needs::{Accumulator, Measure, Source, Window};
pub use ruleset::{LifecycleSpec, RuleSetSpec, SegmentSpec, StageSpec, TraitType};
