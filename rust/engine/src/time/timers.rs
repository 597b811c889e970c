//! The timer index: per customer, the earliest instant at which any rule can
//! change its value with no new event. Advancing the clock pops only the
//! customers that are due, so its cost follows the due count, not the
//! population.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// No timer set.
pub const NEVER: i64 = i64::MAX;

/// A min-heap of `(due, customer)` with lazy deletion: `due[c]` is the truth,
/// heap entries that disagree with it are stale and skipped.
#[derive(Debug, Default, Clone)]
pub struct TimerIndex {
    due: Vec<i64>,
    heap: BinaryHeap<Reverse<(i64, u32)>>,
}

impl TimerIndex {
    /// Makes room for customers up to `n`.
    pub fn grow(&mut self, n: usize) {
        if self.due.len() < n {
            self.due.resize(n, NEVER);
        }
    }

    /// The due time of a customer (`NEVER` if none).
    pub fn due(&self, customer: u32) -> i64 {
        self.due.get(customer as usize).copied().unwrap_or(NEVER)
    }

    /// Sets (or clears, with `NEVER`) a customer's due time.
    pub fn set(&mut self, customer: u32, at: i64) {
        self.grow(customer as usize + 1);
        let slot = &mut self.due[customer as usize];
        if *slot == at {
            return;
        }
        *slot = at;
        if at != NEVER {
            self.heap.push(Reverse((at, customer)));
            // Stale entries pile up when customers are rescheduled often; rebuild
            // from the truth once they outnumber live timers.
            if self.heap.len() > 2 * self.due.len() + 1024 {
                self.compact();
            }
        }
    }

    /// Removes and returns the next due customer at or before `until`.
    pub fn pop_due(&mut self, until: i64) -> Option<(i64, u32)> {
        while let Some(&Reverse((at, c))) = self.heap.peek() {
            if at > until {
                return None;
            }
            self.heap.pop();
            if self.due[c as usize] == at {
                self.due[c as usize] = NEVER;
                return Some((at, c));
            }
        }
        None
    }

    /// Removes every customer due at or before `until` and appends them to
    /// `out` in `(due, customer)` order.
    pub fn pop_all_due(&mut self, until: i64, out: &mut Vec<(i64, u32)>) {
        while let Some(d) = self.pop_due(until) {
            out.push(d);
        }
    }

    /// Number of customers with a timer set.
    pub fn pending(&self) -> usize {
        self.due.iter().filter(|&&d| d != NEVER).count()
    }

    fn compact(&mut self) {
        self.heap = self
            .due
            .iter()
            .enumerate()
            .filter(|(_, &d)| d != NEVER)
            .map(|(c, &d)| Reverse((d, c as u32)))
            .collect();
    }

    /// Appends another index's customers after these (see `Engine::merge`).
    pub fn append(&mut self, other: TimerIndex) {
        self.due.extend(other.due);
        self.compact();
    }

    /// Raw due times (for checkpoints).
    pub fn due_times(&self) -> &[i64] {
        &self.due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_time_order_and_skips_stale() {
        let mut t = TimerIndex::default();
        t.set(0, 50);
        t.set(1, 10);
        t.set(0, 20); // reschedule: the 50 entry is stale
        assert_eq!(t.pop_due(100), Some((10, 1)));
        assert_eq!(t.pop_due(100), Some((20, 0)));
        assert_eq!(t.pop_due(100), None);
        t.set(2, 200);
        assert_eq!(t.pop_due(100), None);
        assert_eq!(t.due(2), 200);
    }
}
