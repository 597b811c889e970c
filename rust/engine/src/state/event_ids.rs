//! The `event_id`s already applied, per customer, so that a redelivered event
//! is applied once. Bounded: each customer keeps the ids of its last
//! `EVENT_IDS_KEPT` events, so a long-running service holds at most that many
//! per customer however long it runs.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, UInt64Builder};
use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::error::{EngineError, Result};

/// How many of a customer's most recent event ids are remembered. A
/// redelivery (a producer's retry, a consumer replaying past its last commit)
/// arrives within a few of the customer's events of the original, and an
/// export repeating rows repeats them within a customer's history, which is
/// rarely this long; a duplicate that comes after more than this many newer
/// events of the same customer is applied again. At about 24 bytes an id (a
/// set slot and a ring slot), a customer costs at most 24 KiB here, and the
/// usual customer with a few dozen events a few hundred bytes.
pub const EVENT_IDS_KEPT: usize = 1024;

/// Hashes of applied event ids: a set to answer "seen?" in one lookup, and
/// each customer's ids in arrival order to forget the oldest.
#[derive(Debug, Clone, Default)]
pub struct SeenEvents {
    seen: FxHashSet<(u32, u64)>,
    order: FxHashMap<u32, VecDeque<u64>>,
}

impl SeenEvents {
    /// Records event id hash `h` for customer `c`; false if it was already
    /// there (the event is a duplicate). Takes a pair, as the set it replaces did.
    pub fn insert(&mut self, (c, h): (u32, u64)) -> bool {
        if !self.seen.insert((c, h)) {
            return false;
        }
        let ring = self.order.entry(c).or_default();
        ring.push_back(h);
        if ring.len() > EVENT_IDS_KEPT {
            if let Some(old) = ring.pop_front() {
                self.seen.remove(&(c, old));
            }
        }
        true
    }

    /// Ids remembered, over all customers.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True when no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Gives customer `from`'s ids to `into` (a profile merge): they stay
    /// duplicates for the survivor, within its own bound.
    pub fn move_customer(&mut self, from: u32, into: u32) {
        let Some(ring) = self.order.remove(&from) else {
            return;
        };
        for h in ring {
            self.seen.remove(&(from, h));
            self.insert((into, h));
        }
    }

    /// Takes over `other`'s ids, its customer indexes shifted by `offset` (a
    /// merge appends the other engine's customers after this one's).
    pub fn append(&mut self, other: SeenEvents, offset: u32) {
        self.seen
            .extend(other.seen.into_iter().map(|(c, h)| (c + offset, h)));
        self.order
            .extend(other.order.into_iter().map(|(c, r)| (c + offset, r)));
    }

    /// One `list<uint64>` row per customer (`n` of them): the hashes, oldest
    /// first, so that a loaded state forgets them in the same order.
    pub fn to_column(&self, n: usize) -> ArrayRef {
        let mut b = ListBuilder::new(UInt64Builder::new());
        for c in 0..n as u32 {
            if let Some(ring) = self.order.get(&c) {
                let (front, back) = ring.as_slices();
                b.values().append_slice(front);
                b.values().append_slice(back);
            }
            b.append(true);
        }
        Arc::new(b.finish())
    }

    /// Reads `to_column`'s output for `n` customers. A column written before
    /// the bound (sorted, any length) loads too: its last `EVENT_IDS_KEPT`
    /// ids per customer are kept.
    pub fn from_column(col: &ArrayRef, n: usize) -> Result<Self> {
        let bad = |what: &str| EngineError::Checkpoint(format!("`event_ids` {what}"));
        let DataType::List(f) = col.data_type() else {
            return Err(bad("must be a list"));
        };
        if f.data_type() != &DataType::UInt64 {
            return Err(bad("must be list<uint64>"));
        }
        if col.len() != n {
            return Err(bad(&format!("has {} rows for {n} customers", col.len())));
        }
        let list = col.as_list::<i32>();
        let mut out = SeenEvents::default();
        for c in 0..n {
            for h in list.value(c).as_primitive::<UInt64Type>().iter().flatten() {
                out.insert((c as u32, h));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_remembers_its_last_ids_and_forgets_the_oldest() {
        let mut s = SeenEvents::default();
        for h in 0..EVENT_IDS_KEPT as u64 + 10 {
            assert!(s.insert((3, h)));
        }
        assert!(s.insert((4, 0)), "customers do not share ids");
        assert_eq!(s.len(), EVENT_IDS_KEPT + 1);
        assert!(
            !s.insert((3, EVENT_IDS_KEPT as u64 + 9)),
            "a recent id is a duplicate"
        );
        assert!(
            s.insert((3, 5)),
            "an id older than the last kept ones is forgotten"
        );
    }

    #[test]
    fn the_column_round_trips_in_arrival_order() {
        let mut s = SeenEvents::default();
        for h in [9, 2, 7] {
            s.insert((1, h));
        }
        let col = s.to_column(3);
        let back = SeenEvents::from_column(&col, 3).unwrap();
        assert_eq!(back.order.get(&1).unwrap(), &VecDeque::from([9, 2, 7]));
        assert!(!back.order.contains_key(&0) && back.len() == 3);
        assert!(SeenEvents::from_column(&col, 4).is_err());
    }
}
