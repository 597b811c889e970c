//! Per-customer state: dense customer indexes, base aggregates as
//! struct-of-arrays, and the keyed accumulators and windows the rules need.

pub mod aggregates;
pub mod aliases;
pub mod conversion_columns;
pub mod conversions;
pub mod customers;
pub mod event_ids;
pub mod keyed;
mod keyed_columns;
pub mod prefetch;
mod profile_merge;
pub mod traits;

pub use aggregates::Aggregates;
pub use conversions::Conversions;
pub use customers::{int_id_from_text, CustomerId, CustomerIds, IdKind};
pub use event_ids::{SeenEvents, EVENT_IDS_KEPT};
pub use keyed::{EventTags, Keyed};
pub use traits::Traits;

use crate::rules::needs::Needs;
use crate::rules::ruleset::TraitType;

/// How one event changes money and counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// An order.
    Purchase,
    /// Money back.
    Refund,
    /// Any other signal; the index is into the rules' referenced signals, if any.
    Signal(Option<u32>),
}

/// One validated event, ready to apply.
#[derive(Debug, Clone)]
pub struct EventRow<'a> {
    /// Event time, ms.
    pub ts: i64,
    /// What it is.
    pub kind: EventKind,
    /// Minor units (0 for signals).
    pub amount: i64,
    /// Items in the order.
    pub quantity: Option<i64>,
    /// Tags of the event.
    pub tags: &'a EventTags,
}

/// The whole per-customer state.
#[derive(Debug, Clone)]
pub struct State {
    /// Customer ids and their dense indexes.
    pub ids: CustomerIds,
    /// Base aggregates.
    pub agg: Aggregates,
    /// Accumulators, windows and sets the rules need.
    pub keyed: Keyed,
    /// Declared traits.
    pub traits: Traits,
    /// The event ids already applied, the last `EVENT_IDS_KEPT` per customer.
    pub seen_events: SeenEvents,
    /// Currency scale (digits), for decoding amounts.
    pub scale_digits: u32,
    /// Attribution windows and uplift counters (set up by the engine).
    pub conversions: Conversions,
    /// Customers merged into others (`Engine::merge_customers`).
    pub aliases: aliases::Aliases,
}

impl State {
    /// Empty state for the given needs and traits.
    pub fn new(needs: &Needs, traits: &[(String, TraitType)], scale_digits: u32) -> Self {
        State {
            scale_digits,
            ids: CustomerIds::default(),
            agg: Aggregates::default(),
            keyed: Keyed::new(needs),
            traits: Traits::new(traits),
            seen_events: SeenEvents::default(),
            conversions: Conversions::default(),
            aliases: aliases::Aliases::default(),
        }
    }

    /// Number of customers.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when no customer is known.
    pub fn is_empty(&self) -> bool {
        self.ids.len() == 0
    }

    /// Makes sure every column has a slot for customer `c`.
    pub fn ensure(&mut self, n: usize) {
        self.agg.grow(n);
        self.keyed.grow(n);
        self.traits.grow(n);
    }

    /// Applies one event to customer `c`. `clock` bounds window pruning.
    pub fn apply(&mut self, c: u32, ev: &EventRow<'_>, clock: Option<i64>) {
        self.agg.apply(c as usize, ev);
        self.keyed.apply(c as usize, ev, clock);
        self.conversions.observe(c, ev, clock);
    }
}

/// The state rearranged for new rules (whose needs the caller has checked
/// are covered). Traits are matched by name and type.
pub fn rekey(old: &State, rules: &crate::rules::CompiledRules) -> State {
    let mut traits = Traits::new(&rules.traits);
    for (i, (name, ty)) in rules.traits.iter().enumerate() {
        if let Some(j) = old
            .traits
            .decl
            .iter()
            .position(|(n, t)| n == name && t == ty)
        {
            traits.values[i] = old.traits.values[j].clone();
        }
    }
    let mut s = State {
        ids: old.ids.clone(),
        agg: old.agg.clone(),
        keyed: old.keyed.rekeyed(&rules.needs),
        traits,
        seen_events: old.seen_events.clone(),
        scale_digits: rules.spec.currency_scale,
        conversions: Conversions::default(),
        aliases: old.aliases.clone(),
    };
    let n = s.len();
    s.ensure(n);
    s
}
