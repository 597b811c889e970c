//! Joining two profiles of one person: every base aggregate, keyed
//! accumulator, window and set is a mergeable summary, so the survivor's
//! state after the merge is what it would be had it received both
//! customers' events from the start. The absorbed customer is left empty.

use super::aggregates::{NO_FIRST, NO_LAST};
use super::State;
use crate::rules::expr::Value;
use crate::rules::needs::Measure;

fn union_sorted<T: Ord + Copy>(into: &mut Vec<T>, from: Vec<T>) {
    into.extend(from);
    into.sort_unstable();
    into.dedup();
}

impl State {
    /// Moves customer `from`'s state into customer `into`'s.
    pub(crate) fn absorb(&mut self, from: u32, into: u32) {
        let (f, t) = (from as usize, into as usize);
        self.agg.absorb(f, t);
        let k = &mut self.keyed;
        for (a, spec) in k.acc.iter_mut().zip(&k.needs.accumulators) {
            let (empty, merge): (i64, fn(i64, i64) -> i64) = match spec.measure {
                Measure::Count | Measure::Spend => (0, i64::saturating_add),
                Measure::First => (NO_FIRST, i64::min),
                Measure::Last => (NO_LAST, i64::max),
            };
            let v = std::mem::replace(&mut a[f], empty);
            a[t] = merge(a[t], v);
        }
        for h in &mut k.hist {
            let moved = std::mem::take(&mut h[f]);
            h[t].extend(moved);
            h[t].sort();
        }
        for sets in [&mut k.category_sets, &mut k.product_sets] {
            if !sets.is_empty() {
                let moved = std::mem::take(&mut sets[f]);
                union_sorted(&mut sets[t], moved);
            }
        }
        if !k.months.is_empty() {
            let moved = std::mem::take(&mut k.months[f]);
            union_sorted(&mut k.months[t], moved);
        }
        // Traits carry no time: the survivor's known values win, the
        // absorbed customer's fill the gaps.
        for col in &mut self.traits.values {
            let v = std::mem::replace(&mut col[f], Value::Null);
            if col[t] == Value::Null {
                col[t] = v;
            }
        }
        self.seen_events.move_customer(from, into);
        self.conversions.move_customer(from, into);
    }
}
