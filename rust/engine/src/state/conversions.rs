//! Offer uptake: each entry into a segment with a `conversion` spec opens an
//! attribution window `(at, at + within]`; the events applied to that
//! customer while it is open decide whether the entry converted, its revenue
//! and its backlash. Closed windows are folded into small counters per
//! segment, group (treatment / holdout) and UTC day of entry, which is what
//! uplift reports read (docs/measure.md).
//!
//! An event counts for a window when its time lies in the window and the
//! clock before its batch had not passed the window's end. That rule depends
//! on the clock only, so when a closed window is folded changes nothing.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use rustc_hash::FxHashMap;

use super::keyed::{Keyed, Watch};
use super::{EventKind, EventRow};
use crate::error::{EngineError, Result};
use crate::rules::compiled::CompiledRules;
use crate::rules::measure_spec::ConversionSpec;
use crate::rules::needs::Source;

/// Milliseconds in a UTC day: the counters' resolution.
pub const DAY_MS: i64 = 86_400_000;

/// Not a tracked segment.
const UNTRACKED: u16 = u16::MAX;

/// A segment's conversion spec, resolved against the rules.
#[derive(Debug, Clone)]
pub struct Tracked {
    /// The segment's node index.
    pub node: usize,
    /// The segment's name.
    pub name: String,
    /// Attribution window, ms.
    pub within: i64,
    /// Which events convert.
    conversion: Watch,
    /// Conversion by purchase (revenue counts), not by a signal.
    pub by_purchase: bool,
    /// Backlash signal and its window, ms.
    backlash: Option<(Watch, i64)>,
    /// The spec as written, to carry counters over a rule change.
    spec: (
        Option<ConversionSpec>,
        Option<crate::rules::measure_spec::BacklashSpec>,
    ),
}

impl Tracked {
    /// When the last of the entry's windows ends.
    #[inline]
    fn close(&self, at: i64) -> i64 {
        let b = self.backlash.map_or(0, |(_, w)| w);
        at.saturating_add(self.within.max(b))
    }
}

/// One entry whose windows are still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenEntry {
    /// Index into `Conversions::tracked`.
    pub spec: u16,
    /// In the control group.
    pub holdout: bool,
    /// Engine time of the entry.
    pub at: i64,
    /// A converting event arrived.
    pub converted: bool,
    /// A backlash signal arrived.
    pub backlash: bool,
    /// Matching purchases minus matching refunds, minor units.
    pub revenue: i64,
}

/// Counters of closed entries of one segment, group and day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayCounts {
    /// Entries.
    pub entries: u64,
    /// Entries that converted.
    pub conversions: u64,
    /// Revenue in their windows, minor units.
    pub revenue: i64,
    /// Entries with a backlash signal.
    pub backlash: u64,
}

impl DayCounts {
    /// Adds one closed entry.
    pub fn add_entry(&mut self, e: &OpenEntry) {
        self.entries += 1;
        self.conversions += e.converted as u64;
        self.revenue = self.revenue.saturating_add(e.revenue);
        self.backlash += e.backlash as u64;
    }

    /// Adds another day's counts.
    pub fn add(&mut self, o: &DayCounts) {
        self.entries += o.entries;
        self.conversions += o.conversions;
        self.revenue = self.revenue.saturating_add(o.revenue);
        self.backlash += o.backlash;
    }
}

/// Key of the closed counters: tracked segment, holdout, UTC day number.
pub type CounterKey = (u16, bool, i64);

/// Attribution windows and counters of every segment with a conversion spec.
#[derive(Debug, Clone, Default)]
pub struct Conversions {
    /// The tracked segments, in rule-set order.
    pub tracked: Vec<Tracked>,
    /// Node index -> tracked index, or `UNTRACKED`.
    by_node: Vec<u16>,
    /// Open entries per customer.
    pub(crate) open: FxHashMap<u32, Vec<OpenEntry>>,
    /// Bit per customer: has open entries. One bit test keeps events of
    /// other customers off the hash map.
    has_open: Vec<u64>,
    /// `(close, customer)` of open entries, earliest first.
    closing: BinaryHeap<Reverse<(i64, u32)>>,
    /// Closed entries' counters.
    pub closed: BTreeMap<CounterKey, DayCounts>,
}

fn spec_error(segment: &str, msg: impl std::fmt::Display) -> EngineError {
    EngineError::rule_plain(format!("segment `{segment}`: {msg}"))
}

impl Conversions {
    /// Resolves the segments' conversion and backlash specs, registering
    /// their filters with the keyed state so that events carry their tags.
    pub fn new(rules: &CompiledRules, keyed: &mut Keyed) -> Result<Self> {
        let mut c = Conversions {
            by_node: vec![UNTRACKED; rules.nodes.len()],
            ..Default::default()
        };
        for seg in &rules.spec.segments {
            let name = &seg.name;
            let Some(conv) = &seg.conversion else {
                if seg.backlash.is_some() {
                    return Err(spec_error(
                        name,
                        "`backlash` needs a `conversion` spec to measure against",
                    ));
                }
                continue;
            };
            let within = conv
                .within
                .to_ms(&format!("segment `{name}`: conversion.within"))?;
            if within <= 0 {
                return Err(spec_error(name, "conversion.within must be positive"));
            }
            let event = conv.event.as_deref().unwrap_or("purchase");
            let by_purchase = matches!(
                crate::ingest::money_event(event),
                Some(crate::ingest::MoneyEvent::Purchase)
            );
            if event.trim().is_empty() {
                return Err(spec_error(name, "conversion.event must not be empty"));
            }
            if crate::ingest::money_event(event) == Some(crate::ingest::MoneyEvent::Refund) {
                return Err(spec_error(
                    name,
                    "conversion.event cannot be a refund; use `backlash` for signals against the offer",
                ));
            }
            let source = if by_purchase {
                Source::Purchase {
                    product: conv.product.clone(),
                    category: conv.category.clone(),
                    flag: conv.flag.clone(),
                }
            } else {
                if conv.product.is_some() || conv.category.is_some() || conv.flag.is_some() {
                    return Err(spec_error(
                        name,
                        format!(
                            "conversion.product/category/flag filter purchases, but the conversion event is the signal `{event}`"
                        ),
                    ));
                }
                Source::Signal(event.to_string())
            };
            let backlash = match &seg.backlash {
                None => None,
                Some(b) => {
                    let w = b
                        .within
                        .to_ms(&format!("segment `{name}`: backlash.within"))?;
                    if w <= 0 {
                        return Err(spec_error(name, "backlash.within must be positive"));
                    }
                    if b.event.trim().is_empty() || crate::ingest::money_event(&b.event).is_some() {
                        return Err(spec_error(
                            name,
                            format!(
                                "backlash.event must name a signal (such as `unsubscribe`), not `{}`",
                                b.event
                            ),
                        ));
                    }
                    Some((keyed.watch(&Source::Signal(b.event.clone())), w))
                }
            };
            let node = rules
                .node_index(name)
                .expect("every segment spec compiled to a node");
            if c.tracked.len() >= UNTRACKED as usize {
                return Err(spec_error(name, "too many segments with a conversion spec"));
            }
            c.by_node[node] = c.tracked.len() as u16;
            c.tracked.push(Tracked {
                node,
                name: name.clone(),
                within,
                conversion: keyed.watch(&source),
                by_purchase,
                backlash,
                spec: (seg.conversion.clone(), seg.backlash.clone()),
            });
        }
        Ok(c)
    }

    /// True when some segment is tracked.
    #[inline]
    pub fn is_active(&self) -> bool {
        !self.tracked.is_empty()
    }

    /// The tracked index of node `n`, if it has a conversion spec.
    #[inline]
    pub fn tracked_index(&self, n: usize) -> Option<u16> {
        self.by_node.get(n).copied().filter(|&i| i != UNTRACKED)
    }

    /// Opens the windows of an entry of customer `c` into tracked segment `spec`.
    pub fn open_entry(&mut self, c: u32, spec: u16, holdout: bool, at: i64) {
        let close = self.tracked[spec as usize].close(at);
        self.open.entry(c).or_default().push(OpenEntry {
            spec,
            holdout,
            at,
            converted: false,
            backlash: false,
            revenue: 0,
        });
        self.mark(c);
        self.closing.push(Reverse((close, c)));
    }

    fn mark(&mut self, c: u32) {
        let word = (c >> 6) as usize;
        if word >= self.has_open.len() {
            self.has_open.resize(word + 1, 0);
        }
        self.has_open[word] |= 1 << (c & 63);
    }

    /// True when customer `c` has open windows.
    #[inline]
    pub fn watching(&self, c: u32) -> bool {
        self.has_open
            .get((c >> 6) as usize)
            .is_some_and(|w| w & (1 << (c & 63)) != 0)
    }

    /// Attributes one event of customer `c` to its open windows. `clock` is
    /// the engine clock before the event's batch.
    #[inline]
    pub fn observe(&mut self, c: u32, ev: &EventRow<'_>, clock: Option<i64>) {
        if !self.watching(c) {
            return;
        }
        let Some(list) = self.open.get_mut(&c) else {
            return;
        };
        let open_at = |end: i64| ev.ts <= end && clock.is_none_or(|now| end >= now);
        for e in list.iter_mut() {
            if ev.ts <= e.at {
                continue;
            }
            let t = &self.tracked[e.spec as usize];
            if open_at(e.at.saturating_add(t.within)) && Keyed::watched(&t.conversion, ev) {
                match ev.kind {
                    EventKind::Purchase => {
                        e.converted = true;
                        e.revenue = e.revenue.saturating_add(ev.amount);
                    }
                    EventKind::Refund => e.revenue = e.revenue.saturating_sub(ev.amount),
                    EventKind::Signal(_) => e.converted = true,
                }
            }
            if let Some((w, within)) = &t.backlash {
                if open_at(e.at.saturating_add(*within)) && Keyed::watched(w, ev) {
                    e.backlash = true;
                }
            }
        }
    }

    /// Folds every entry whose windows ended before `clock` into the
    /// counters: no event can reach it any more.
    pub fn close_until(&mut self, clock: i64) {
        while let Some(&Reverse((close, c))) = self.closing.peek() {
            if close >= clock {
                break;
            }
            self.closing.pop();
            let Some(list) = self.open.get_mut(&c) else {
                continue;
            };
            let tracked = &self.tracked;
            let closed = &mut self.closed;
            list.retain(|e| {
                let done = tracked[e.spec as usize].close(e.at) < clock;
                if done {
                    closed
                        .entry((e.spec, e.holdout, e.at.div_euclid(DAY_MS)))
                        .or_default()
                        .add_entry(e);
                }
                !done
            });
            if list.is_empty() {
                self.open.remove(&c);
                if let Some(w) = self.has_open.get_mut((c >> 6) as usize) {
                    *w &= !(1 << (c & 63));
                }
            }
        }
    }

    /// Per group (`[treatment, holdout]`) the counts of tracked segment
    /// `spec`'s entries made in days `[first_day, end_day)` whose windows
    /// ended before `clock`, and the number of entries still open.
    pub fn totals(
        &self,
        spec: u16,
        first_day: i64,
        end_day: i64,
        clock: i64,
    ) -> ([DayCounts; 2], u64) {
        let mut out = [DayCounts::default(); 2];
        if first_day < end_day {
            for (&(_, holdout, _), counts) in self
                .closed
                .range((spec, false, first_day)..(spec, false, end_day))
                .chain(
                    self.closed
                        .range((spec, true, first_day)..(spec, true, end_day)),
                )
            {
                out[holdout as usize].add(counts);
            }
        }
        let t = &self.tracked[spec as usize];
        let mut immature = 0;
        for e in self.open.values().flatten() {
            let day = e.at.div_euclid(DAY_MS);
            if e.spec != spec || day < first_day || day >= end_day {
                continue;
            }
            if t.close(e.at) < clock {
                out[e.holdout as usize].add_entry(e);
            } else {
                immature += 1;
            }
        }
        (out, immature)
    }

    /// Appends the windows and counters of another engine's customers, whose
    /// indexes start at `offset` here (shard merge; same rules).
    pub fn append(&mut self, other: Conversions, offset: u32) {
        for (c, list) in other.open {
            let c = c + offset;
            for e in &list {
                self.closing
                    .push(Reverse((self.tracked[e.spec as usize].close(e.at), c)));
            }
            self.open.insert(c, list);
            self.mark(c);
        }
        for (k, v) in other.closed {
            self.closed.entry(k).or_default().add(&v);
        }
    }

    /// Restores open windows (from a checkpoint): rebuilds the bitmap and
    /// the closing queue.
    pub(crate) fn set_open(&mut self, open: FxHashMap<u32, Vec<OpenEntry>>) {
        self.open.clear();
        self.has_open.clear();
        self.closing.clear();
        for (c, list) in open {
            for e in &list {
                self.closing
                    .push(Reverse((self.tracked[e.spec as usize].close(e.at), c)));
            }
            self.open.insert(c, list);
            self.mark(c);
        }
    }

    /// These rules' tracking, carrying over the windows and counters of
    /// every segment whose name and measurement spec did not change.
    pub fn carried_to(&self, rules: &CompiledRules, keyed: &mut Keyed) -> Result<Conversions> {
        let mut new = Conversions::new(rules, keyed)?;
        let map: Vec<Option<u16>> = self
            .tracked
            .iter()
            .map(|old| {
                new.tracked
                    .iter()
                    .position(|t| t.name == old.name && t.spec == old.spec)
                    .map(|i| i as u16)
            })
            .collect();
        let mut open: FxHashMap<u32, Vec<OpenEntry>> = FxHashMap::default();
        for (&c, list) in &self.open {
            let kept: Vec<OpenEntry> = list
                .iter()
                .filter_map(|e| map[e.spec as usize].map(|spec| OpenEntry { spec, ..*e }))
                .collect();
            if !kept.is_empty() {
                open.insert(c, kept);
            }
        }
        new.set_open(open);
        for (&(spec, holdout, day), v) in &self.closed {
            if let Some(s) = map[spec as usize] {
                new.closed.insert((s, holdout, day), *v);
            }
        }
        Ok(new)
    }

    /// Moves customer `from`'s open entries to `into` (profile merges).
    pub fn move_customer(&mut self, from: u32, into: u32) {
        let Some(mut list) = self.open.remove(&from) else {
            return;
        };
        if let Some(w) = self.has_open.get_mut((from >> 6) as usize) {
            *w &= !(1 << (from & 63));
        }
        for e in &list {
            let close = self.tracked[e.spec as usize].close(e.at);
            self.closing.push(Reverse((close, into)));
        }
        self.open.entry(into).or_default().append(&mut list);
        self.mark(into);
    }

    /// Open entries held (approximate memory use).
    pub fn open_entries(&self) -> usize {
        self.open.values().map(Vec::len).sum()
    }
}
