//! Base aggregates, one 64-byte row per customer: every one is a commutative,
//! mergeable summary, so the result does not depend on event order or
//! batching. A row is exactly one cache line, so applying an event or
//! evaluating a rule over a customer costs one memory access for all of
//! them, where a column per aggregate cost one per aggregate read.

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array};

use super::{EventKind, EventRow};
use crate::error::{EngineError, Result};

/// Null marker for "first" times.
pub const NO_FIRST: i64 = i64::MAX;
/// Null marker for "last" times.
pub const NO_LAST: i64 = i64::MIN;

/// One customer's base aggregates (money in minor units, times in ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Base {
    /// Sum of purchase amounts.
    pub gross: i64,
    /// Sum of refund amounts.
    pub refunded: i64,
    /// Largest purchase amount (meaningless while `orders` is 0).
    pub max_order: i64,
    /// `NO_FIRST` until the first purchase.
    pub first_purchase: i64,
    /// `NO_LAST` until the first purchase.
    pub last_purchase: i64,
    /// `NO_LAST` until the first refund.
    pub last_refund: i64,
    /// Purchase count.
    pub orders: u32,
    /// Refund count.
    pub refunds: u32,
    /// Items bought (an order without a quantity counts one).
    pub items: u32,
    /// Largest quantity in one order.
    pub max_quantity: u32,
}

const _: () = assert!(std::mem::size_of::<Base>() == 64);

impl Default for Base {
    fn default() -> Self {
        Base {
            gross: 0,
            refunded: 0,
            max_order: 0,
            first_purchase: NO_FIRST,
            last_purchase: NO_LAST,
            last_refund: NO_LAST,
            orders: 0,
            refunds: 0,
            items: 0,
            max_quantity: 0,
        }
    }
}

impl Base {
    /// Net spend.
    #[inline]
    pub fn ltv(&self) -> i64 {
        self.gross.saturating_sub(self.refunded)
    }

    /// Average net order value, `None` before the first order.
    #[inline]
    pub fn aov(&self) -> Option<i64> {
        (self.orders > 0).then(|| self.ltv() / self.orders as i64)
    }

    /// Largest order, `None` before the first order.
    #[inline]
    pub fn max_order(&self) -> Option<i64> {
        (self.orders > 0).then_some(self.max_order)
    }

    /// Folds one event in.
    #[inline]
    fn apply(&mut self, ev: &EventRow<'_>) {
        match ev.kind {
            EventKind::Purchase => {
                self.gross = self.gross.saturating_add(ev.amount);
                self.max_order = self.max_order.max(ev.amount);
                self.first_purchase = self.first_purchase.min(ev.ts);
                self.last_purchase = self.last_purchase.max(ev.ts);
                self.orders = self.orders.saturating_add(1);
                let q = ev.quantity.unwrap_or(1).clamp(0, u32::MAX as i64) as u32;
                self.items = self.items.saturating_add(q);
                self.max_quantity = self.max_quantity.max(q);
            }
            EventKind::Refund => {
                self.refunded = self.refunded.saturating_add(ev.amount);
                self.last_refund = self.last_refund.max(ev.ts);
                self.refunds = self.refunds.saturating_add(1);
            }
            EventKind::Signal(_) => {}
        }
    }
}

/// One aggregate as a checkpoint column: its name (the field's) and how to
/// read it from a row and write it back (counts must fit in `u32`).
struct Column {
    name: &'static str,
    get: fn(&Base) -> i64,
    set: fn(&mut Base, i64) -> Option<()>,
}

macro_rules! column {
    ($field:ident, i64) => {
        Column {
            name: stringify!($field),
            get: |r| r.$field,
            set: |r, v| {
                r.$field = v;
                Some(())
            },
        }
    };
    ($field:ident, u32) => {
        Column {
            name: stringify!($field),
            get: |r| i64::from(r.$field),
            set: |r, v| {
                r.$field = u32::try_from(v).ok()?;
                Some(())
            },
        }
    };
}

/// The checkpoint columns, in the order `to_columns` writes them.
const COLUMNS: [Column; 10] = [
    column!(gross, i64),
    column!(refunded, i64),
    column!(max_order, i64),
    column!(first_purchase, i64),
    column!(last_purchase, i64),
    column!(last_refund, i64),
    column!(orders, u32),
    column!(refunds, u32),
    column!(items, u32),
    column!(max_quantity, u32),
];

/// Every customer's row, indexed by customer.
#[derive(Debug, Clone, Default)]
pub struct Aggregates {
    rows: Vec<Base>,
}

impl Aggregates {
    /// Grows to `n` customers.
    pub fn grow(&mut self, n: usize) {
        if self.rows.len() < n {
            self.rows.resize(n, Base::default());
        }
    }

    /// Customer `c`'s row.
    #[inline]
    pub fn row(&self, c: usize) -> &Base {
        &self.rows[c]
    }

    /// Every row, by customer index.
    pub fn rows(&self) -> &[Base] {
        &self.rows
    }

    /// Folds one event into customer `c`.
    #[inline]
    pub fn apply(&mut self, c: usize, ev: &EventRow<'_>) {
        self.rows[c].apply(ev);
    }

    /// Starts loading customer `c`'s row (see `Keyed::prefetch`).
    #[inline]
    pub fn prefetch(&self, c: usize) {
        if let Some(r) = self.rows.get(c) {
            super::prefetch::prefetch_read(r);
        }
    }

    /// Appends another set of customers' rows after these (see `Engine::merge`).
    pub fn append(&mut self, other: Aggregates) {
        self.rows.extend(other.rows);
    }

    /// Merges customer `from`'s row into `into`'s (profile merges): sums
    /// add, extremes combine, and `from` is left empty.
    pub fn absorb(&mut self, from: usize, into: usize) {
        let f = std::mem::take(&mut self.rows[from]);
        let t = &mut self.rows[into];
        t.max_order = if t.orders == 0 {
            f.max_order
        } else if f.orders == 0 {
            t.max_order
        } else {
            t.max_order.max(f.max_order)
        };
        t.gross = t.gross.saturating_add(f.gross);
        t.refunded = t.refunded.saturating_add(f.refunded);
        t.first_purchase = t.first_purchase.min(f.first_purchase);
        t.last_purchase = t.last_purchase.max(f.last_purchase);
        t.last_refund = t.last_refund.max(f.last_refund);
        t.orders = t.orders.saturating_add(f.orders);
        t.refunds = t.refunds.saturating_add(f.refunds);
        t.items = t.items.saturating_add(f.items);
        t.max_quantity = t.max_quantity.max(f.max_quantity);
    }

    /// Net spend of customer `c`.
    #[inline]
    pub fn ltv(&self, c: usize) -> i64 {
        self.rows[c].ltv()
    }

    /// The first `n` rows as named int64 columns, for checkpoints.
    pub fn to_columns(&self, n: usize) -> Vec<(&'static str, ArrayRef)> {
        let rows = &self.rows[..n];
        COLUMNS
            .iter()
            .map(|c| {
                let values = Int64Array::from_iter_values(rows.iter().map(c.get));
                (c.name, Arc::new(values) as ArrayRef)
            })
            .collect()
    }

    /// Rebuilds `n` rows from the columns `to_columns` wrote; `read` returns
    /// a named column's values (or the checkpoint error for a missing one).
    pub fn from_columns(n: usize, read: impl Fn(&str) -> Result<Vec<i64>>) -> Result<Self> {
        let mut rows = vec![Base::default(); n];
        for c in &COLUMNS {
            let name = c.name;
            let vals = read(name)?;
            if vals.len() != n {
                return Err(EngineError::Checkpoint(format!(
                    "column `{name}` has {} rows, expected {n}",
                    vals.len()
                )));
            }
            for (r, &v) in rows.iter_mut().zip(&vals) {
                (c.set)(r, v).ok_or_else(|| {
                    EngineError::Checkpoint(format!("column `{name}` holds {v}, out of range"))
                })?;
            }
        }
        Ok(Aggregates { rows })
    }

    /// Bytes per customer held by these rows.
    pub const BYTES_PER_CUSTOMER: usize = std::mem::size_of::<Base>();
}
