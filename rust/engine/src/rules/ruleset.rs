//! The rule set as users write it (YAML on the Python side, JSON across the
//! binding): segments, lifecycles, traits and options.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::error::{EngineError, Result};
use crate::time::parse_duration_ms;

/// A duration given as text (`"30 days"`) or as milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum DurationSpec {
    /// Milliseconds.
    Millis(i64),
    /// Text such as `30 days`.
    Text(String),
}

impl DurationSpec {
    /// Milliseconds, or a rule error naming `what`.
    pub fn to_ms(&self, what: &str) -> Result<i64> {
        match self {
            DurationSpec::Millis(ms) if *ms >= 0 => Ok(*ms),
            DurationSpec::Millis(ms) => Err(EngineError::rule_plain(format!(
                "{what}: duration must not be negative (got {ms})"
            ))),
            DurationSpec::Text(t) => {
                parse_duration_ms(t).map_err(|e| EngineError::rule_plain(format!("{what}: {e}")))
            }
        }
    }
}

/// Declared type of a profile trait, as written under `traits:` (`string`,
/// `int`, …). A value that cannot be read as it is a rejected row.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TraitType {
    /// Compared as text, case-sensitively; numbers and booleans in JSON are
    /// kept as their text.
    String,
    /// Signed 64-bit. Other Arrow types are cast to it (a float column
    /// truncates toward zero).
    Int,
    /// 64-bit float.
    Float,
    /// Three-valued in rules: an unknown trait is NULL, not FALSE.
    Bool,
    /// Held as epoch milliseconds.
    Timestamp,
}

/// One segment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SegmentSpec {
    /// Unique name.
    pub name: String,
    /// SQL boolean expression.
    pub rule: String,
    /// Percent of members flagged as control group (0–100).
    #[serde(default)]
    pub holdout: Option<f64>,
    /// No new enter within this time of the last exit.
    #[serde(default)]
    pub cooldown: Option<DurationSpec>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One lifecycle stage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    /// Stage name, unique in its lifecycle.
    pub name: String,
    /// SQL boolean expression.
    pub rule: String,
}

/// Ordered, mutually exclusive stages.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LifecycleSpec {
    /// Unique name (shared namespace with segments).
    pub name: String,
    /// First matching stage wins.
    pub stages: Vec<StageSpec>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A whole rule set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct RuleSetSpec {
    /// Minor units per currency unit, as a power of ten.
    #[serde(default = "default_scale")]
    pub currency_scale: u32,
    /// How far the clock runs behind the latest event time.
    #[serde(default)]
    pub allowed_lateness: Option<DurationSpec>,
    /// Reshuffles holdout groups.
    #[serde(default)]
    pub holdout_salt: Option<String>,
    /// Declared profile traits.
    #[serde(default)]
    pub traits: BTreeMap<String, TraitType>,
    /// Segments.
    #[serde(default)]
    pub segments: Vec<SegmentSpec>,
    /// Lifecycles.
    #[serde(default)]
    pub lifecycles: Vec<LifecycleSpec>,
    /// More `event_type` names read as purchases and refunds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_types: Option<EventTypesSpec>,
    /// Events this far ahead of the wall clock are rejected (default 1 day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_future: Option<DurationSpec>,
}

/// `event_types: {purchase: [order, sale], refund: [return]}`: names read
/// as purchases or refunds besides the built-in ones, ignoring ASCII case.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct EventTypesSpec {
    /// Read as purchases.
    #[serde(default)]
    pub purchase: Vec<String>,
    /// Read as refunds.
    #[serde(default)]
    pub refund: Vec<String>,
}

/// The default of `max_future`: a day covers any clock skew and time zone
/// mistake, and no real event is dated further ahead.
pub const DEFAULT_MAX_FUTURE_MS: i64 = 86_400_000;

fn default_scale() -> u32 {
    2
}

impl RuleSetSpec {
    /// Reads the JSON form produced by the Python layer.
    pub fn from_json(text: &str) -> Result<Self> {
        let spec: Self = serde_json::from_str(text)
            .map_err(|e| EngineError::rule_plain(format!("rule set: {e}")))?;
        spec.max_future_ms()?;
        spec.check_event_types()?;
        Ok(spec)
    }

    /// `max_future` in ms, or a rule error if it is not a duration.
    pub fn max_future_ms(&self) -> Result<i64> {
        self.max_future
            .as_ref()
            .map_or(Ok(DEFAULT_MAX_FUTURE_MS), |d| d.to_ms("max_future"))
    }

    /// A name mapped both ways, or empty, is a rule error.
    fn check_event_types(&self) -> Result<()> {
        let Some(types) = &self.event_types else {
            return Ok(());
        };
        for name in types.purchase.iter().chain(&types.refund) {
            if name.trim().is_empty() {
                return Err(EngineError::rule_plain(
                    "event_types: a name must not be empty",
                ));
            }
        }
        if let Some(both) = types
            .purchase
            .iter()
            .find(|p| types.refund.iter().any(|r| r.eq_ignore_ascii_case(p)))
        {
            return Err(EngineError::rule_plain(format!(
                "event_types: `{both}` is listed as both purchase and refund"
            )));
        }
        Ok(())
    }

    /// Canonical JSON (stable field order), used for fingerprints and checkpoints.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("rule set serializes")
    }

    /// A stable fingerprint of the rules: 16 hex digits.
    pub fn fingerprint(&self) -> String {
        format!(
            "{:016x}",
            xxhash_rust::xxh3::xxh3_64(self.to_json().as_bytes())
        )
    }
}
