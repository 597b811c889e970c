//! Base aggregates as struct-of-arrays: every one is a commutative, mergeable
//! summary, so the result does not depend on event order or batching.

use super::{EventKind, EventRow};

/// Null marker for "first" times.
pub const NO_FIRST: i64 = i64::MAX;
/// Null marker for "last" times.
pub const NO_LAST: i64 = i64::MIN;

/// One column per aggregate, indexed by customer.
#[derive(Debug, Clone, Default)]
pub struct Aggregates {
    /// Sum of purchase amounts (minor units).
    pub gross: Vec<i64>,
    /// Sum of refund amounts.
    pub refunded: Vec<i64>,
    /// Largest purchase amount.
    pub max_order: Vec<i64>,
    /// First purchase time (`NO_FIRST` if none).
    pub first_purchase: Vec<i64>,
    /// Last purchase time (`NO_LAST` if none).
    pub last_purchase: Vec<i64>,
    /// Last refund time (`NO_LAST` if none).
    pub last_refund: Vec<i64>,
    /// Purchase count.
    pub orders: Vec<u32>,
    /// Refund count.
    pub refunds: Vec<u32>,
    /// Items bought.
    pub items: Vec<u32>,
    /// Largest quantity in one order.
    pub max_quantity: Vec<u32>,
}

impl Aggregates {
    /// Grows every column to `n` customers.
    pub fn grow(&mut self, n: usize) {
        if self.gross.len() >= n {
            return;
        }
        self.gross.resize(n, 0);
        self.refunded.resize(n, 0);
        self.max_order.resize(n, 0);
        self.first_purchase.resize(n, NO_FIRST);
        self.last_purchase.resize(n, NO_LAST);
        self.last_refund.resize(n, NO_LAST);
        self.orders.resize(n, 0);
        self.refunds.resize(n, 0);
        self.items.resize(n, 0);
        self.max_quantity.resize(n, 0);
    }

    /// Folds one event in.
    #[inline]
    pub fn apply(&mut self, c: usize, ev: &EventRow<'_>) {
        match ev.kind {
            EventKind::Purchase => {
                self.gross[c] = self.gross[c].saturating_add(ev.amount);
                self.max_order[c] = self.max_order[c].max(ev.amount);
                self.first_purchase[c] = self.first_purchase[c].min(ev.ts);
                self.last_purchase[c] = self.last_purchase[c].max(ev.ts);
                self.orders[c] = self.orders[c].saturating_add(1);
                let q = ev.quantity.unwrap_or(1).clamp(0, u32::MAX as i64) as u32;
                self.items[c] = self.items[c].saturating_add(q);
                self.max_quantity[c] = self.max_quantity[c].max(q);
            }
            EventKind::Refund => {
                self.refunded[c] = self.refunded[c].saturating_add(ev.amount);
                self.last_refund[c] = self.last_refund[c].max(ev.ts);
                self.refunds[c] = self.refunds[c].saturating_add(1);
            }
            EventKind::Signal(_) => {}
        }
    }

    /// Starts loading a customer's money columns (see `Keyed::prefetch`).
    #[inline]
    pub fn prefetch(&self, c: usize) {
        use super::keyed::prefetch_read;
        if c < self.gross.len() {
            prefetch_read(&self.gross[c]);
            prefetch_read(&self.refunded[c]);
            prefetch_read(&self.max_order[c]);
            prefetch_read(&self.first_purchase[c]);
            prefetch_read(&self.last_purchase[c]);
            prefetch_read(&self.orders[c]);
            prefetch_read(&self.items[c]);
            prefetch_read(&self.max_quantity[c]);
        }
    }

    /// Appends another set of customers' columns after these (see `Engine::merge`).
    pub fn append(&mut self, other: Aggregates) {
        self.gross.extend(other.gross);
        self.refunded.extend(other.refunded);
        self.max_order.extend(other.max_order);
        self.first_purchase.extend(other.first_purchase);
        self.last_purchase.extend(other.last_purchase);
        self.last_refund.extend(other.last_refund);
        self.orders.extend(other.orders);
        self.refunds.extend(other.refunds);
        self.items.extend(other.items);
        self.max_quantity.extend(other.max_quantity);
    }

    /// Net spend.
    #[inline]
    pub fn ltv(&self, c: usize) -> i64 {
        self.gross[c].saturating_sub(self.refunded[c])
    }

    /// Bytes per customer held by these columns.
    pub const BYTES_PER_CUSTOMER: usize = 6 * 8 + 4 * 4;
}
