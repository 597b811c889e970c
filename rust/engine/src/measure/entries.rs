//! The enter hook: every evaluation passes its changes here, in the order
//! they happened, so that each entry into a measured segment opens its
//! attribution window exactly once, whatever the batching.

use crate::membership::{Change, ChangeKind};
use crate::output::holdout_flag;
use crate::rules::compile::{CompiledRules, NodeKind};
use crate::state::State;

/// Records the entries among `changes` (made by one evaluation, in time order).
pub fn record_entries(rules: &CompiledRules, state: &mut State, changes: &mut [Change]) {
    if !state.conversions.is_active() {
        return;
    }
    for ch in changes.iter_mut() {
        if ch.kind != ChangeKind::Enter {
            continue;
        }
        let Some(spec) = state.conversions.tracked_index(ch.node as usize) else {
            continue;
        };
        let node = &rules.nodes[ch.node as usize];
        let NodeKind::Segment { holdout, .. } = &node.kind else {
            continue;
        };
        let held = holdout_flag(
            state.ids.get(ch.customer),
            &node.name,
            &rules.salt,
            *holdout,
        );
        state.conversions.open_entry(ch.customer, spec, held, ch.at);
    }
}

/// Checks the rule set's measurement keys (conversion, backlash), as
/// `Engine::new` does before building anything.
pub fn check(rules: &CompiledRules) -> crate::Result<()> {
    let mut scratch = crate::state::Keyed::new(&rules.needs);
    crate::state::Conversions::new(rules, &mut scratch).map(|_| ())
}
