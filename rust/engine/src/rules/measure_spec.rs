//! The measurement keys of a rule set as users write them: a segment's
//! `conversion` and `backlash`, and the rule set's `frequency_caps`
//! (docs/measure.md). Checked and resolved by `measure::MeasureRules`.

use serde::{Deserialize, Serialize};

use super::ruleset::DurationSpec;

/// What taking up a segment's offer means: a matching event within
/// `within` after the entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConversionSpec {
    /// Length of the attribution window after each entry.
    pub within: DurationSpec,
    /// `purchase` (the default) or a signal name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Only purchases of this product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// Only purchases in this category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Only purchases carrying this flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<String>,
}

/// A signal that counts against an offer (an unsubscribe, a complaint).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BacklashSpec {
    /// The signal name.
    pub event: String,
    /// How long after the entry it counts.
    pub within: DurationSpec,
}

/// At most `max` enter events across `segments` in any sliding `per`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FrequencyCapSpec {
    /// Unique name of the cap.
    pub name: String,
    /// The segments whose entries it counts.
    pub segments: Vec<String>,
    /// Entries sent per `per`.
    pub max: u32,
    /// The sliding period.
    pub per: DurationSpec,
}
