//! Keyed state: the filtered accumulators (`purchases(category => …)`,
//! `spend(since => …)`, `last_event_at(…)`), sliding windows (`within => …`)
//! and sets that the compiled rules ask for. Only names a rule mentions are
//! tracked, so an event's other tags cost one hash lookup each.

use rustc_hash::FxHashMap;

use super::aggregates::{NO_FIRST, NO_LAST};
use super::prefetch::prefetch_read;
use super::{EventKind, EventRow};
use crate::rules::needs::{Measure, Needs, Source, Window};
use crate::time::calendar::month_key;

/// Tags of one event, translated to the ids that the rules reference.
#[derive(Debug, Clone, Default)]
pub struct EventTags {
    /// Referenced product ids.
    pub products: Vec<u32>,
    /// Referenced category ids.
    pub categories: Vec<u32>,
    /// Referenced flag ids.
    pub flags: Vec<u32>,
    /// Every category (symbol ids), when the category set is kept.
    pub all_categories: Vec<u32>,
    /// Every product (symbol ids), when the product set is kept.
    pub all_products: Vec<u32>,
}

impl EventTags {
    /// Empties the tags for reuse.
    pub fn clear(&mut self) {
        self.products.clear();
        self.categories.clear();
        self.flags.clear();
        self.all_categories.clear();
        self.all_products.clear();
    }
}

/// One event in a sliding window: 16 bytes (a window holds many of them per
/// customer, so the size is most of the state's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// Event time.
    pub ts: i64,
    /// The amount and whether the event counts as one, in one word: events
    /// that count (purchases, signals) keep their amount, which is never
    /// negative; refunds, which do not count, keep `-amount - 1`, always negative.
    code: i64,
}

impl Entry {
    /// An event of `amount` minor units (never negative); `counts` is false for refunds.
    #[inline]
    pub fn new(ts: i64, amount: i64, counts: bool) -> Entry {
        let amount = amount.max(0);
        let code = if counts { amount } else { -amount - 1 };
        Entry { ts, code }
    }

    /// Signed minor units (refunds negative).
    #[inline]
    pub fn amount(&self) -> i64 {
        if self.code >= 0 {
            self.code
        } else {
            self.code + 1
        }
    }

    /// Counts as one (purchases and signals; not refunds).
    #[inline]
    pub fn counts(&self) -> bool {
        self.code >= 0
    }
}

#[derive(Debug, Clone, Copy)]
enum Matcher {
    Purchase {
        product: Option<u32>,
        category: Option<u32>,
        flag: Option<u32>,
    },
    Signal(u32),
}

/// An event filter kept for something other than a rule (a conversion or
/// backlash spec): its names are registered, so events carry their tags,
/// but no accumulator or window is kept for it.
#[derive(Debug, Clone, Copy)]
pub struct Watch(Matcher);

#[derive(Debug, Clone, Default)]
struct Names {
    index: FxHashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Names {
    fn add(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(name.into());
        self.index.insert(name.into(), i);
        i
    }

    #[inline]
    fn get(&self, name: &str) -> Option<u32> {
        if self.names.is_empty() {
            None
        } else {
            self.index.get(name).copied()
        }
    }
}

/// All keyed state.
#[derive(Debug, Clone)]
pub struct Keyed {
    /// What is kept.
    pub needs: Needs,
    products: Names,
    categories: Names,
    flags: Names,
    signals: Names,
    symbols: Names,
    acc_match: Vec<Matcher>,
    hist_match: Vec<Matcher>,
    /// Scalar accumulators, `acc[a][customer]`.
    pub acc: Vec<Vec<i64>>,
    /// Windows, `hist[h][customer]`, sorted by time.
    pub hist: Vec<Vec<Vec<Entry>>>,
    /// Category sets (symbol ids, sorted).
    pub category_sets: Vec<Vec<u32>>,
    /// Product sets (symbol ids, sorted).
    pub product_sets: Vec<Vec<u32>>,
    /// Months with a purchase (`year * 12 + month0`, sorted).
    pub months: Vec<Vec<i32>>,
    len: usize,
}

impl Keyed {
    /// Empty keyed state for the needs.
    pub fn new(needs: &Needs) -> Self {
        let mut k = Keyed {
            needs: needs.clone(),
            products: Names::default(),
            categories: Names::default(),
            flags: Names::default(),
            signals: Names::default(),
            symbols: Names::default(),
            acc_match: Vec::new(),
            hist_match: Vec::new(),
            acc: vec![Vec::new(); needs.accumulators.len()],
            hist: vec![Vec::new(); needs.histories.len()],
            category_sets: Vec::new(),
            product_sets: Vec::new(),
            months: Vec::new(),
            len: 0,
        };
        k.acc_match = needs
            .accumulators
            .iter()
            .map(|a| k.matcher(&a.source))
            .collect();
        k.hist_match = needs
            .histories
            .iter()
            .map(|h| k.matcher(&h.source))
            .collect();
        k
    }

    fn matcher(&mut self, s: &Source) -> Matcher {
        match s {
            Source::Signal(n) => Matcher::Signal(self.signals.add(n)),
            Source::Purchase {
                product,
                category,
                flag,
            } => Matcher::Purchase {
                product: product.as_deref().map(|p| self.products.add(p)),
                category: category.as_deref().map(|c| self.categories.add(c)),
                flag: flag.as_deref().map(|f| self.flags.add(f)),
            },
        }
    }

    /// Registers a filter that `watched` tests events against.
    pub fn watch(&mut self, source: &Source) -> Watch {
        Watch(self.matcher(source))
    }

    /// True when the event passes the filter (purchases and refunds alike
    /// for a purchase filter).
    #[inline]
    pub fn watched(w: &Watch, ev: &EventRow<'_>) -> bool {
        Self::matches(&w.0, ev)
    }

    /// Index of a signal name the rules reference.
    #[inline]
    pub fn signal_index(&self, name: &str) -> Option<u32> {
        self.signals.get(name)
    }

    /// The signal names the rules reference, with their indexes.
    pub fn signal_names(&self) -> impl Iterator<Item = (&str, u32)> {
        self.signals
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (&**n, i as u32))
    }

    /// True when product tags matter to any rule.
    pub fn wants_products(&self) -> bool {
        !self.products.names.is_empty() || self.needs.product_set
    }

    /// True when category tags matter to any rule.
    pub fn wants_categories(&self) -> bool {
        !self.categories.names.is_empty() || self.needs.category_set
    }

    /// True when flag tags matter to any rule.
    pub fn wants_flags(&self) -> bool {
        !self.flags.names.is_empty()
    }

    /// Adds a product tag to `tags`.
    #[inline]
    pub fn tag_product(&mut self, tags: &mut EventTags, name: &str) {
        if let Some(i) = self.products.get(name) {
            tags.products.push(i);
        }
        if self.needs.product_set {
            tags.all_products.push(self.symbols.add(name));
        }
    }

    /// Adds a category tag to `tags`.
    #[inline]
    pub fn tag_category(&mut self, tags: &mut EventTags, name: &str) {
        if let Some(i) = self.categories.get(name) {
            tags.categories.push(i);
        }
        if self.needs.category_set {
            tags.all_categories.push(self.symbols.add(name));
        }
    }

    /// Adds a flag tag to `tags`.
    #[inline]
    pub fn tag_flag(&mut self, tags: &mut EventTags, name: &str) {
        if let Some(i) = self.flags.get(name) {
            tags.flags.push(i);
        }
    }

    /// Text of a symbol (category/product set member).
    pub fn symbol(&self, i: u32) -> &str {
        &self.symbols.names[i as usize]
    }

    /// Interns a set member by name (checkpoint restore).
    pub fn intern_symbol(&mut self, name: &str) -> u32 {
        self.symbols.add(name)
    }

    /// Grows to `n` customers.
    pub fn grow(&mut self, n: usize) {
        if n <= self.len {
            return;
        }
        for (a, spec) in self.acc.iter_mut().zip(&self.needs.accumulators) {
            let init = match spec.measure {
                Measure::First => NO_FIRST,
                Measure::Last => NO_LAST,
                _ => 0,
            };
            a.resize(n, init);
        }
        for h in &mut self.hist {
            h.resize_with(n, Vec::new);
        }
        if self.needs.category_set {
            self.category_sets.resize_with(n, Vec::new);
        }
        if self.needs.product_set {
            self.product_sets.resize_with(n, Vec::new);
        }
        if self.needs.months {
            self.months.resize_with(n, Vec::new);
        }
        self.len = n;
    }

    #[inline]
    fn matches(m: &Matcher, ev: &EventRow<'_>) -> bool {
        if !Self::may_match(m, ev.kind) {
            return false;
        }
        match *m {
            Matcher::Signal(_) => true,
            Matcher::Purchase {
                product,
                category,
                flag,
            } => {
                product.is_none_or(|p| ev.tags.products.contains(&p))
                    && category.is_none_or(|c| ev.tags.categories.contains(&c))
                    && flag.is_none_or(|f| ev.tags.flags.contains(&f))
            }
        }
    }

    /// True when an event of `kind` may land in window `h` (tags not checked).
    #[inline]
    fn may_match(m: &Matcher, kind: EventKind) -> bool {
        match (*m, kind) {
            (Matcher::Signal(s), EventKind::Signal(Some(e))) => s == e,
            (Matcher::Purchase { .. }, EventKind::Purchase | EventKind::Refund) => true,
            _ => false,
        }
    }

    /// Asks the CPU to start loading what `apply` will read for an event of
    /// `kind` to customer `c`, a few rows ahead: with customers in random order
    /// nearly every row misses the cache, and the misses of rows in flight
    /// overlap instead of queueing. `deep` also follows each window's header to
    /// its entries (the header must have been fetched by an earlier call).
    /// Windows the event is too old for (before `clock` minus the lookback)
    /// are left alone, as `apply` leaves them.
    #[inline]
    pub fn prefetch(&self, c: usize, kind: EventKind, ts: i64, clock: Option<i64>, deep: bool) {
        for (h, m) in self.hist_match.iter().enumerate() {
            if !Self::may_match(m, kind) {
                continue;
            }
            let lookback = self.needs.histories[h].lookback;
            if clock.is_some_and(|now| ts < now.saturating_sub(lookback)) {
                continue; // too old to be stored: `apply` will not look
            }
            let Some(entries) = self.hist[h].get(c) else {
                continue;
            };
            if deep {
                if let Some(last) = entries.last() {
                    // The oldest (is anything expiring?) and the newest (new
                    // events land after it).
                    prefetch_read(entries.as_ptr());
                    prefetch_read(last);
                }
            } else {
                prefetch_read(entries);
            }
        }
        if !deep && !matches!(kind, EventKind::Signal(_)) {
            for a in &self.acc {
                if let Some(slot) = a.get(c) {
                    prefetch_read(slot);
                }
            }
        }
    }

    /// Folds one event in. `clock` (the engine clock before this batch) lets
    /// windows drop what no rule can see again.
    #[inline]
    pub fn apply(&mut self, c: usize, ev: &EventRow<'_>, clock: Option<i64>) {
        let counts = !matches!(ev.kind, EventKind::Refund);
        for (a, m) in self.acc_match.iter().enumerate() {
            if !Self::matches(m, ev) {
                continue;
            }
            let spec = &self.needs.accumulators[a];
            let in_window = match spec.window {
                Window::All => true,
                Window::Since(s) => ev.ts >= s,
                Window::Between(s, e) => ev.ts >= s && ev.ts < e,
            };
            if !in_window {
                continue;
            }
            let slot = &mut self.acc[a][c];
            match spec.measure {
                Measure::Count if counts => *slot = slot.saturating_add(1),
                Measure::Spend => {
                    let signed = if counts { ev.amount } else { -ev.amount };
                    *slot = slot.saturating_add(signed)
                }
                Measure::First if counts => *slot = (*slot).min(ev.ts),
                Measure::Last if counts => *slot = (*slot).max(ev.ts),
                _ => {}
            }
        }
        for (h, m) in self.hist_match.iter().enumerate() {
            if !Self::matches(m, ev) {
                continue;
            }
            let lookback = self.needs.histories[h].lookback;
            let entries = &mut self.hist[h][c];
            if let Some(now) = clock {
                if ev.ts < now.saturating_sub(lookback) {
                    continue; // already outside every window a rule can ask for
                }
                let horizon = now.saturating_sub(lookback);
                // Most of the time nothing has expired: one look at the oldest.
                let cut = match entries.first() {
                    Some(oldest) if oldest.ts < horizon => {
                        entries.partition_point(|e| e.ts < horizon)
                    }
                    _ => 0,
                };
                if cut > 0 {
                    entries.drain(..cut);
                    // A burst (a sale, a crawler) must not pin its memory for good.
                    if entries.capacity() > 4 * entries.len() + 8 {
                        entries.shrink_to(2 * entries.len() + 2);
                    }
                }
            }
            let entry = Entry::new(ev.ts, ev.amount, counts);
            // Events mostly come in time order: then the new one goes last.
            if entries.last().is_none_or(|last| *last <= entry) {
                entries.push(entry);
            } else {
                let at = entries.partition_point(|e| *e <= entry);
                entries.insert(at, entry);
            }
        }
        if matches!(ev.kind, EventKind::Purchase) {
            if self.needs.category_set {
                insert_sorted_all(&mut self.category_sets[c], &ev.tags.all_categories);
            }
            if self.needs.product_set {
                insert_sorted_all(&mut self.product_sets[c], &ev.tags.all_products);
            }
            if self.needs.months {
                if let Some(k) = month_key(ev.ts) {
                    insert_sorted_all(&mut self.months[c], &[k as i32]);
                }
            }
        }
    }

    /// Appends the customers of another keyed state built for the same rules
    /// (see `Engine::merge`). Set members are symbols of each state's own
    /// table, so the other's are translated by name.
    pub fn append(&mut self, other: Keyed) {
        for (mine, theirs) in self.acc.iter_mut().zip(other.acc) {
            mine.extend(theirs);
        }
        for (mine, theirs) in self.hist.iter_mut().zip(other.hist) {
            mine.extend(theirs);
        }
        let symbols: Vec<u32> = other
            .symbols
            .names
            .iter()
            .map(|name| self.symbols.add(name))
            .collect();
        let translate = |sets: Vec<Vec<u32>>| {
            sets.into_iter().map(|set| {
                let mut set: Vec<u32> = set.into_iter().map(|s| symbols[s as usize]).collect();
                set.sort_unstable();
                set
            })
        };
        if self.needs.category_set {
            self.category_sets.extend(translate(other.category_sets));
        }
        if self.needs.product_set {
            self.product_sets.extend(translate(other.product_sets));
        }
        if self.needs.months {
            self.months.extend(other.months);
        }
        self.len += other.len;
    }

    /// Heap bytes held by windows and sets (approximate).
    pub fn heap_bytes(&self) -> usize {
        let acc: usize = self.acc.iter().map(|a| a.capacity() * 8).sum();
        let hist: usize = self
            .hist
            .iter()
            .map(|h| {
                h.capacity() * 24
                    + h.iter()
                        .map(|v| v.capacity() * std::mem::size_of::<Entry>())
                        .sum::<usize>()
            })
            .sum();
        let sets = |s: &Vec<Vec<u32>>| {
            s.capacity() * 24 + s.iter().map(|v| v.capacity() * 4).sum::<usize>()
        };
        acc + hist
            + sets(&self.category_sets)
            + sets(&self.product_sets)
            + self.months.capacity() * 24
            + self.months.iter().map(|v| v.capacity() * 4).sum::<usize>()
    }
}

fn insert_sorted_all<T: Ord + Copy>(set: &mut Vec<T>, items: &[T]) {
    for &x in items {
        if let Err(at) = set.binary_search(&x) {
            set.insert(at, x);
        }
    }
}

impl Keyed {
    /// The same state arranged for other needs, which must be a subset of
    /// what this state kept (checked by the caller); columns move, nothing is recomputed.
    pub fn rekeyed(&self, needs: &Needs) -> Keyed {
        let mut k = Keyed::new(needs);
        k.symbols = self.symbols.clone();
        k.len = self.len;
        for (i, spec) in needs.accumulators.iter().enumerate() {
            match self.needs.accumulators.iter().position(|a| a == spec) {
                Some(j) => k.acc[i] = self.acc[j].clone(),
                None => {
                    let init = match spec.measure {
                        Measure::First => NO_FIRST,
                        Measure::Last => NO_LAST,
                        _ => 0,
                    };
                    k.acc[i] = vec![init; self.len];
                }
            }
        }
        for (i, spec) in needs.histories.iter().enumerate() {
            k.hist[i] = match self
                .needs
                .histories
                .iter()
                .position(|h| h.source == spec.source)
            {
                Some(j) => self.hist[j].clone(),
                None => vec![Vec::new(); self.len],
            };
        }
        let take = |want: bool, have: &Vec<Vec<u32>>, len: usize| -> Vec<Vec<u32>> {
            match (want, have.is_empty()) {
                (false, _) => Vec::new(),
                (true, false) => have.clone(),
                (true, true) => vec![Vec::new(); len],
            }
        };
        k.category_sets = take(needs.category_set, &self.category_sets, self.len);
        k.product_sets = take(needs.product_set, &self.product_sets, self.len);
        k.months = match (needs.months, self.months.is_empty()) {
            (false, _) => Vec::new(),
            (true, false) => self.months.clone(),
            (true, true) => vec![Vec::new(); self.len],
        };
        k
    }
}

#[cfg(test)]
mod tests {
    use super::Entry;

    #[test]
    fn entries_keep_amount_and_counting_in_one_word() {
        for amount in [0, 1, 1999, i64::MAX] {
            let bought = Entry::new(5, amount, true);
            assert_eq!((bought.amount(), bought.counts()), (amount, true));
            let refunded = Entry::new(5, amount, false);
            assert_eq!((refunded.amount(), refunded.counts()), (-amount, false));
        }
        assert_eq!(std::mem::size_of::<Entry>(), 16);
        // Same instant: a refund sorts before a purchase, whatever the amounts.
        assert!(Entry::new(5, 0, false) < Entry::new(5, 0, true));
    }
}
