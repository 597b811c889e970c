//! Checks on the names a rule set declares, before any rule is read:
//! segments, lifecycles, stages and traits are identifiers, unique, and do
//! not take a name the output or the language already uses.

use std::collections::{HashMap, HashSet};

use super::expr::Field;
use super::ruleset::RuleSetSpec;
use crate::error::{EngineError, Result};

/// The names rules can refer to, by node index.
#[derive(Debug, Default)]
pub struct Names {
    /// Segment or lifecycle name to `(node index, is a segment)`.
    pub nodes: HashMap<String, (usize, bool)>,
    /// Stage names by node index (empty for segments).
    pub stages: Vec<Vec<String>>,
}

/// Checks every declared name of `spec`; `is_function` tells a built-in
/// function's name, which a trait may not take.
pub fn check_names(spec: &RuleSetSpec, is_function: impl Fn(&str) -> bool) -> Result<Names> {
    let mut names: HashMap<String, (usize, bool)> = HashMap::new();
    let mut index = 0usize;
    let node_names = spec
        .segments
        .iter()
        .map(|s| (&s.name, "segment"))
        .chain(spec.lifecycles.iter().map(|l| (&l.name, "lifecycle")));
    for (name, what) in node_names {
        check_output_column(name, what, spec)?;
    }
    for s in &spec.segments {
        check_name(&s.name, "segment")?;
        if names.insert(s.name.clone(), (index, true)).is_some() {
            return Err(EngineError::rule_plain(format!(
                "segment `{}` is defined twice",
                s.name
            )));
        }
        index += 1;
    }
    for l in &spec.lifecycles {
        check_name(&l.name, "lifecycle")?;
        if names.insert(l.name.clone(), (index, false)).is_some() {
            return Err(EngineError::rule_plain(format!(
                "`{}` is defined twice (segments and lifecycles share one namespace)",
                l.name
            )));
        }
        index += 1;
        if l.stages.is_empty() {
            return Err(EngineError::rule_plain(format!(
                "lifecycle `{}` has no stages",
                l.name
            )));
        }
        let mut seen = HashSet::new();
        for st in &l.stages {
            check_name(&st.name, "stage")?;
            if !seen.insert(st.name.as_str()) {
                return Err(EngineError::rule_plain(format!(
                    "lifecycle `{}` has stage `{}` twice",
                    l.name, st.name
                )));
            }
        }
    }
    for t in spec.traits.keys() {
        check_name(t, "trait")?;
        // Traits are snapshot and profile columns beside the id.
        if t == ID_COLUMN {
            return Err(EngineError::rule_plain(format!(
                "trait `{t}` has the name of the id column of every output; rename it, e.g. `crm_{t}`"
            )));
        }
        check_holdout_suffix(t, "trait")?;
        if Field::ALL.iter().any(|(n, _)| n == t) || is_function(t) {
            return Err(EngineError::rule_plain(format!(
                "trait `{t}` has the name of a built-in field or function; rename it"
            )));
        }
    }
    let stages: Vec<Vec<String>> = spec
        .segments
        .iter()
        .map(|_| Vec::new())
        .chain(
            spec.lifecycles
                .iter()
                .map(|l| l.stages.iter().map(|st| st.name.clone()).collect()),
        )
        .collect();
    Ok(Names {
        nodes: names,
        stages,
    })
}

/// The id column of every output table.
const ID_COLUMN: &str = "customer_id";

/// Ends the name of a segment's holdout column in membership outputs
/// (`<segment>__holdout`).
pub const HOLDOUT_SUFFIX: &str = "__holdout";

/// Snapshots, memberships and profiles have a column per segment and
/// lifecycle beside the id, the aggregates and the traits: a node taking one
/// of those names would give a table with two columns of one name.
fn check_output_column(name: &str, what: &str, spec: &RuleSetSpec) -> Result<()> {
    if name == ID_COLUMN || Field::ALL.iter().any(|(n, _)| *n == name) {
        return Err(EngineError::rule_plain(format!(
            "{what} `{name}` has the name of an output column (`customer_id` or an aggregate such as `ltv`); rename it, e.g. `{name}_segment`"
        )));
    }
    if spec.traits.contains_key(name) {
        return Err(EngineError::rule_plain(format!(
            "{what} `{name}` has the name of trait `{name}`, and outputs have a column for each; rename one of them, e.g. `{name}_segment`"
        )));
    }
    check_holdout_suffix(name, what)
}

fn check_holdout_suffix(name: &str, what: &str) -> Result<()> {
    match name.strip_suffix(HOLDOUT_SUFFIX) {
        Some(segment) => Err(EngineError::rule_plain(format!(
            "{what} `{name}` ends in `{HOLDOUT_SUFFIX}`, which is reserved for the holdout column of a segment (`{segment}{HOLDOUT_SUFFIX}` for segment `{segment}`); rename it"
        ))),
        None => Ok(()),
    }
}

fn check_name(name: &str, what: &str) -> Result<()> {
    if is_identifier(name) && name.len() <= 128 {
        Ok(())
    } else {
        Err(EngineError::rule_plain(format!(
            "{what} name `{name}` must be lowercase letters, digits and underscores, starting with a letter"
        )))
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
