//! The rule language, with no knowledge of customer state: rule-set specs
//! (`ruleset`), parsing (`parse`), name checks (`validate`), lowering to
//! typed expressions (`lower`, with the type rules in `types` and the
//! built-in functions in `functions`), the reference graph between nodes
//! (`graph`) and the compiled result (`compiled`). The runtime that
//! evaluates compiled rules over state lives in `crate::eval`.

pub mod compiled;
pub mod describe;
pub mod diagnostics;
pub mod expr;
pub mod functions;
pub mod graph;
pub mod lower;
pub mod measure_spec;
pub mod needs;
pub mod parse;
pub mod ruleset;
pub mod types;
pub mod validate;

pub use compiled::{CompiledRules, Node, NodeKind};
pub use lower::compile_ruleset;
pub use needs::{Accumulator, Measure, Source, Window};
pub use ruleset::{LifecycleSpec, RuleSetSpec, SegmentSpec, StageSpec, TraitType};

/// The path the compiled types had before the split into modules; kept so
/// code written against it (in branches not yet merged) still builds.
pub mod compile {
    pub use super::compiled::{CompiledRules, Node, NodeKind};
    pub use super::lower::compile_ruleset;
}
