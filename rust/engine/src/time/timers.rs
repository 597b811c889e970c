//! The timer index: per customer, the earliest instant at which any rule can
//! change its value with no new event. Advancing the clock pops only the
//! customers that are due, so its cost follows the due count, not the
//! population.
//!
//! A hierarchical timing wheel over millisecond instants: 11 levels of 64
//! slots, level `l` slots spanning 64^l ms, with one occupancy word per
//! level. Setting a due time is a push into one slot; moving it leaves the
//! old entry behind, recognised as stale when its slot comes up because
//! `due[c]` no longer falls in it. A slot of a higher level is spread over
//! the lower levels when the clock reaches it, so each entry moves at most
//! once per level.

/// No timer set.
pub const NEVER: i64 = i64::MAX;

const BITS: u32 = 6;
const SLOTS: usize = 1 << BITS;
const LEVELS: usize = 11; // 11 × 6 bits cover the 64-bit key space

/// Order-preserving map of an instant to an unsigned key.
#[inline]
fn key(t: i64) -> u64 {
    (t as u64) ^ (1 << 63)
}

/// Customers by due instant, in a hierarchical wheel (see the module docs).
#[derive(Debug, Clone)]
pub struct TimerIndex {
    due: Vec<i64>,
    /// `slots[level * SLOTS + slot]`: customers, some of them stale.
    slots: Vec<Vec<u32>>,
    occupied: [u64; LEVELS],
    /// Every key below this has been popped.
    elapsed: u64,
    /// Due times set below `elapsed` (a clock that was moved back by hand).
    overdue: Vec<u32>,
    /// Entries in slots, stale ones included.
    entries: usize,
    /// Customers with a timer.
    live: usize,
}

impl Default for TimerIndex {
    fn default() -> Self {
        TimerIndex {
            due: Vec::new(),
            slots: vec![Vec::new(); LEVELS * SLOTS],
            occupied: [0; LEVELS],
            elapsed: 0,
            overdue: Vec::new(),
            entries: 0,
            live: 0,
        }
    }
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

    /// Sets (or clears, with `NEVER`) a customer's due time. Does nothing
    /// when it is unchanged.
    #[inline]
    pub fn set(&mut self, customer: u32, at: i64) {
        let c = customer as usize;
        if c >= self.due.len() {
            self.grow(c + 1);
        }
        let old = std::mem::replace(&mut self.due[c], at);
        if old == at {
            return;
        }
        match (old == NEVER, at == NEVER) {
            (true, false) => self.live += 1,
            (false, true) => self.live -= 1,
            _ => {}
        }
        if at != NEVER {
            self.place(customer, key(at));
            if self.entries > 2 * self.live + 4096 {
                self.rebuild();
            }
        }
    }

    /// Puts an entry in the slot for `k` relative to `elapsed`.
    #[inline]
    fn place(&mut self, customer: u32, k: u64) {
        if k < self.elapsed {
            self.overdue.push(customer);
            return;
        }
        let significant = 63 - ((k ^ self.elapsed) | (SLOTS as u64 - 1)).leading_zeros();
        let level = (significant / BITS) as usize;
        let slot = ((k >> (BITS as usize * level)) & (SLOTS as u64 - 1)) as usize;
        self.slots[level * SLOTS + slot].push(customer);
        self.occupied[level] |= 1 << slot;
        self.entries += 1;
    }

    /// Rebuilds the slots from `due`, dropping every stale entry.
    fn rebuild(&mut self) {
        for s in &mut self.slots {
            s.clear();
        }
        self.occupied = [0; LEVELS];
        self.entries = 0;
        self.overdue.clear();
        for c in 0..self.due.len() {
            let at = self.due[c];
            if at != NEVER {
                self.place(c as u32, key(at));
            }
        }
    }

    /// The earliest occupied slot: `(level, slot, first key it covers)`.
    /// Entries of a lower level always come before those of a higher one.
    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        for level in 0..LEVELS {
            let occ = self.occupied[level];
            if occ == 0 {
                continue;
            }
            let shift = BITS as usize * level;
            let pos = ((self.elapsed >> shift) & (SLOTS as u64 - 1)) as u32;
            let off = occ.rotate_right(pos).trailing_zeros();
            let slot = ((pos + off) as usize) & (SLOTS - 1);
            // The block of 64 slots this level is in, relative to `elapsed`.
            let block_bits = shift + BITS as usize;
            let base = if block_bits >= 64 {
                0
            } else {
                self.elapsed & !((1u64 << block_bits) - 1)
            };
            let mut start = base | ((slot as u64) << shift);
            if pos + off >= SLOTS as u32 {
                // Wrapped into the next block (only after a clock moved by hand).
                start = start.saturating_add(1u64.checked_shl(block_bits as u32).unwrap_or(0));
            }
            return Some((level, slot, start));
        }
        None
    }

    /// Removes every customer due at or before `until` and appends them to
    /// `out` in `(due, customer)` order.
    pub fn pop_all_due(&mut self, until: i64, out: &mut Vec<(i64, u32)>) {
        let first = out.len();
        let limit = key(until);
        if !self.overdue.is_empty() {
            let overdue = std::mem::take(&mut self.overdue);
            for c in overdue {
                let at = self.due[c as usize];
                if at == NEVER {
                    continue;
                }
                if key(at) <= limit {
                    self.pop(c, at, out);
                } else {
                    self.overdue.push(c);
                }
            }
            // One customer may have been listed twice; it was popped once.
        }
        while let Some((level, slot, start)) = self.next_slot() {
            if start > limit {
                break;
            }
            let idx = level * SLOTS + slot;
            let list = std::mem::take(&mut self.slots[idx]);
            self.occupied[level] &= !(1 << slot);
            self.entries -= list.len();
            self.elapsed = self.elapsed.max(start);
            if level == 0 {
                for &c in &list {
                    let at = self.due[c as usize];
                    if at != NEVER && key(at) == start {
                        self.pop(c, at, out);
                    }
                }
            } else {
                let span = 1u64 << (BITS as usize * level);
                for &c in &list {
                    let at = self.due[c as usize];
                    if at == NEVER {
                        continue;
                    }
                    let k = key(at);
                    if k >= start && k - start < span {
                        self.place(c, k);
                    }
                }
            }
            // Keep the slot's allocation for later use.
            let mut list = list;
            list.clear();
            if self.slots[idx].is_empty() {
                self.slots[idx] = list;
            }
        }
        if limit >= self.elapsed {
            self.elapsed = limit.saturating_add(1);
        }
        out[first..].sort_unstable();
    }

    #[inline]
    fn pop(&mut self, c: u32, at: i64, out: &mut Vec<(i64, u32)>) {
        self.due[c as usize] = NEVER;
        self.live -= 1;
        out.push((at, c));
    }

    /// Number of customers with a timer set.
    pub fn pending(&self) -> usize {
        self.live
    }

    /// Appends another index's customers after these (see `Engine::merge`).
    pub fn append(&mut self, other: TimerIndex) {
        self.due.extend(other.due);
        self.live = self.due.iter().filter(|&&d| d != NEVER).count();
        self.elapsed = self.elapsed.min(other.elapsed);
        self.rebuild();
    }

    /// Raw due times (for checkpoints).
    pub fn due_times(&self) -> &[i64] {
        &self.due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pops_in_time_order_and_skips_stale() {
        let mut t = TimerIndex::default();
        t.set(0, 50);
        t.set(1, 10);
        t.set(0, 20); // reschedule: the 50 entry is stale
        let mut out = Vec::new();
        t.pop_all_due(100, &mut out);
        assert_eq!(out, vec![(10, 1), (20, 0)]);
        t.set(2, 200);
        out.clear();
        t.pop_all_due(100, &mut out);
        assert!(out.is_empty());
        assert_eq!(t.due(2), 200);
        assert_eq!(t.pending(), 1);
    }

    #[test]
    fn a_due_time_behind_the_wheel_still_fires() {
        let mut t = TimerIndex::default();
        let mut out = Vec::new();
        t.set(0, 1_000);
        t.pop_all_due(5_000, &mut out);
        assert_eq!(out, vec![(1_000, 0)]);
        t.set(1, 2_000); // behind what was popped
        t.set(2, -7);
        out.clear();
        t.pop_all_due(2_500, &mut out);
        assert_eq!(out, vec![(-7, 2), (2_000, 1)]);
    }

    #[derive(Debug, Clone)]
    enum Step {
        Set(u32, i64),
        Clear(u32),
        Pop(i64),
    }

    fn step() -> impl Strategy<Value = Step> {
        let time = prop_oneof![
            0i64..5_000,
            any::<i64>().prop_filter("not NEVER", |t| *t != NEVER),
            (0i64..40).prop_map(|d| d * 86_400_000),
        ];
        prop_oneof![
            4 => (0u32..40, time.clone()).prop_map(|(c, t)| Step::Set(c, t)),
            1 => (0u32..40).prop_map(Step::Clear),
            2 => time.prop_map(Step::Pop),
        ]
    }

    proptest! {
        /// The wheel pops exactly what a sorted list of due times says is due,
        /// in the same order, whatever the sets, clears and pops in between.
        #[test]
        fn wheel_agrees_with_a_sorted_list(steps in proptest::collection::vec(step(), 1..200)) {
            let mut wheel = TimerIndex::default();
            let mut truth: std::collections::BTreeMap<u32, i64> = Default::default();
            for s in steps {
                match s {
                    Step::Set(c, t) => { wheel.set(c, t); truth.insert(c, t); }
                    Step::Clear(c) => { wheel.set(c, NEVER); truth.remove(&c); }
                    Step::Pop(until) => {
                        let mut got = Vec::new();
                        wheel.pop_all_due(until, &mut got);
                        let mut want: Vec<(i64, u32)> = truth
                            .iter()
                            .filter(|(_, &t)| t <= until)
                            .map(|(&c, &t)| (t, c))
                            .collect();
                        want.sort_unstable();
                        for (_, c) in &want { truth.remove(c); }
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert_eq!(wheel.pending(), truth.len());
            }
        }
    }
}
