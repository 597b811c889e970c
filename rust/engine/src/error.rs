//! The engine's one error type. Every fallible entry point returns it; the
//! binding crate maps each variant to a Python exception class.

use thiserror::Error;

/// Where in a rule's text a problem sits, with the text itself so that the
/// message can show a caret under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleLocation {
    /// The segment, lifecycle stage (`lifecycle.stage`) or option the rule belongs to.
    pub segment: String,
    /// 1-based line inside the rule text.
    pub line: u64,
    /// 1-based column inside the rule text.
    pub column: u64,
    /// The rule text.
    pub source: String,
}

/// Everything that can go wrong in the engine.
#[derive(Debug, Error)]
pub enum EngineError {
    /// A rule or rule-set option that does not compile.
    #[error("{message}")]
    Rule {
        /// Full human-readable message, with the source and a caret.
        message: String,
        /// Location, when the problem is inside a rule's text.
        location: Option<RuleLocation>,
    },
    /// Input whose shape is wrong as a whole: a missing required column or a
    /// column of the wrong type. Nothing is applied when this is returned.
    #[error("column `{column}`: {message}")]
    Schema {
        /// The engine-side column name (before any column map).
        column: String,
        /// What was wrong and what to do.
        message: String,
    },
    /// A checkpoint that cannot be read or belongs to other rules or a newer format.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The new rules need history that the current state did not keep.
    #[error("{0}")]
    MissingHistory(String),
    /// A request that cannot be done as asked (a bad argument, a column
    /// map naming no event column, engines that cannot be merged).
    #[error("{0}")]
    Invalid(String),
    /// A lookup of a segment, stage or customer the engine does not know.
    #[error("{0}")]
    NotFound(String),
    /// Filesystem errors while saving or loading.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl EngineError {
    pub(crate) fn schema(column: &str, message: impl Into<String>) -> Self {
        EngineError::Schema {
            column: column.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn rule_plain(message: impl Into<String>) -> Self {
        EngineError::Rule {
            message: message.into(),
            location: None,
        }
    }
}

/// Shorthand used across the engine.
pub type Result<T> = std::result::Result<T, EngineError>;
