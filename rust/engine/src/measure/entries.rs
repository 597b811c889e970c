//! The enter hook: every evaluation passes its changes here, in the order
//! they happened, so that frequency caps decide each entry once and each
//! entry into a measured segment opens its attribution window once.

use super::caps::FrequencyCaps;
use crate::membership::{Change, ChangeKind};
use crate::output::holdout_flag;
use crate::rules::compiled::{CompiledRules, NodeKind};
use crate::state::State;

/// Records the entries among `changes` (made by one evaluation, in time
/// order): sets `capped` where a frequency cap is full, and opens the
/// attribution windows of the entries that were not capped (a capped entry
/// is not sent, so it is no trial of the offer, in either group).
pub fn record_entries(
    rules: &CompiledRules,
    state: &mut State,
    caps: &mut FrequencyCaps,
    changes: &mut [Change],
) {
    if !state.conversions.is_active() && !caps.is_active() {
        return;
    }
    for ch in changes.iter_mut() {
        if ch.kind != ChangeKind::Enter || !rules.nodes[ch.node as usize].is_segment() {
            continue;
        }
        if caps.on_enter(ch.customer, ch.node as usize, ch.at) {
            ch.capped = true;
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

/// Checks the rule set's measurement keys (conversion, backlash,
/// frequency caps), as `Engine::new` does before building anything.
pub fn check(rules: &CompiledRules) -> crate::Result<()> {
    let mut scratch = crate::state::Keyed::new(&rules.needs);
    crate::state::Conversions::new(rules, &mut scratch)?;
    FrequencyCaps::new(rules).map(|_| ())
}
