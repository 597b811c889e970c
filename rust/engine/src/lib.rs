//! segstream-engine: a streaming customer-segmentation engine.
//!
//! Keeps per-customer purchase aggregates (struct-of-arrays over dense
//! customer indexes), compiles SQL segment rules, and reports membership
//! changes as events arrive and as time passes. Pure Rust; the Python
//! bindings live in the `segstream-python` crate.

pub mod checkpoint;
pub mod engine;
pub mod error;
pub mod eval;
pub mod ingest;
pub mod measure;
pub mod membership;
pub mod merge;
pub mod output;
pub mod rules;
pub mod state;
pub mod time;

pub use engine::{Engine, IngestOutcome, RemovedNodeExit};
pub use error::{EngineError, Result, RuleLocation};
pub use membership::{Cause, Change, ChangeKind, Holdout};
pub use rules::ruleset::RuleSetSpec;
