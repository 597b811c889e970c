//! Turning input (Arrow batches, JSON messages) into validated events and
//! trait upserts, and applying them. Rows that fail validation are rejected
//! with a reason before anything of theirs is applied.

pub mod arrow_events;
pub mod arrow_traits;
pub mod columns;
pub mod event_types;
pub mod json;

/// The event columns of DESIGN.md, in the order it documents them: the one
/// list the column map, the file readers and the Python package check against.
pub const EVENT_COLUMNS: [&str; 10] = [
    "customer_id",
    "ts",
    "event_type",
    "amount",
    "order_id",
    "product_ids",
    "categories",
    "quantity",
    "event_id",
    "flags",
];

pub use arrow_events::{apply_resolved, group_resolved, resolve, GroupScratch, Grouped, Shard};
pub use arrow_traits::{apply_trait_batch, unreadable_trait_rows};
pub use event_types::{EventTypeCount, ReadAs};
pub use json::apply_json_messages;

/// Customers touched by a call, in first-touch order. Membership is a bitmap
/// indexed by customer: one bit test per row instead of a hash lookup.
#[derive(Debug, Default, Clone)]
pub struct Touched {
    /// Customer indexes.
    pub list: Vec<u32>,
    seen: Vec<u64>,
}

impl Touched {
    /// Records a customer.
    #[inline]
    pub fn add(&mut self, c: u32) {
        let word = (c >> 6) as usize;
        if word >= self.seen.len() {
            self.seen.resize(word + 1, 0);
        }
        let bit = 1u64 << (c & 63);
        if self.seen[word] & bit == 0 {
            self.seen[word] |= bit;
            self.list.push(c);
        }
    }

    /// True if recorded.
    pub fn contains(&self, c: u32) -> bool {
        self.seen
            .get((c >> 6) as usize)
            .is_some_and(|w| w & (1u64 << (c & 63)) != 0)
    }

    /// The customers recorded, in ascending index order: evaluating them in
    /// this order walks the state columns front to back instead of jumping.
    pub fn ascending(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.list.len());
        for (w, &bits) in self.seen.iter().enumerate() {
            let mut b = bits;
            while b != 0 {
                out.push((w as u32) << 6 | b.trailing_zeros());
                b &= b - 1;
            }
        }
        out
    }

    /// True when no customer is recorded.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// Whether an `event_type` text names a purchase or a refund. Case does not
/// matter, and the e-commerce spec's names (`Order Completed`, `Order
/// Refunded`) count too, in every input path; any other text is a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoneyEvent {
    /// An order.
    Purchase,
    /// Money back.
    Refund,
}

/// See `MoneyEvent`.
#[inline]
pub fn money_event(text: &str) -> Option<MoneyEvent> {
    // Exact matches first: the common case costs one comparison.
    match text {
        "purchase" => return Some(MoneyEvent::Purchase),
        "refund" => return Some(MoneyEvent::Refund),
        _ => {}
    }
    if text.len() > "order completed".len() {
        return None;
    }
    let is = |name: &str| text.eq_ignore_ascii_case(name);
    if is("purchase") || is("order completed") || is("order_completed") {
        Some(MoneyEvent::Purchase)
    } else if is("refund") || is("order refunded") || is("order_refunded") {
        Some(MoneyEvent::Refund)
    } else {
        None
    }
}

/// Counters from applying a batch.
#[derive(Debug, Default, Clone)]
pub struct BatchStats {
    /// Events applied.
    pub applied: usize,
    /// Events skipped as already-applied `event_id`s.
    pub duplicates: usize,
    /// Latest event time applied.
    pub max_ts: Option<i64>,
    /// Rows per `event_type` value, and how each was read.
    pub event_types: Vec<event_types::EventTypeCount>,
}

/// Hash of an event id for the idempotency set.
#[inline]
pub fn event_id_hash(id: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id)
}
