//! Merging engines that hold disjoint customers: the shards of one input
//! (`Shard`) become the engine that would have read it all. Every base
//! aggregate, window and set is per customer, so merging is appending.

use crate::engine::Engine;
use crate::error::{EngineError, Result};

impl Engine {
    /// Whether `merge(other)` would succeed: same rules, same kind of ids, no
    /// customer in common.
    pub fn check_mergeable(&self, other: &Engine) -> Result<()> {
        if other.rules.fingerprint != self.rules.fingerprint {
            return Err(EngineError::Invalid(
                "merge: the engines run different rules".into(),
            ));
        }
        if let (Some(a), Some(b)) = (self.state.ids.kind(), other.state.ids.kind()) {
            if a != b {
                return Err(EngineError::Invalid(
                    "merge: one engine holds text customer ids, the other integer ids".into(),
                ));
            }
        }
        if let Some(c) = (0..other.state.len() as u32)
            .find(|&c| self.state.ids.lookup(other.state.ids.get(c)).is_some())
        {
            return Err(EngineError::Invalid(format!(
                "merge: customer `{}` is in both engines; merge only engines of disjoint customers \
                 (the shards of one input)",
                other.state.ids.get(c).to_text()
            )));
        }
        Ok(())
    }

    /// Moves every customer of `other` into this engine. Both must run the
    /// same rules and hold no customer in common (`check_mergeable`); on an
    /// error nothing changes. The clock becomes the later of the two. Customers
    /// a deferred ingest left pending in either engine are evaluated first.
    pub fn merge(&mut self, mut other: Engine) -> Result<()> {
        self.check_mergeable(&other)?;
        self.settle_deferred();
        other.settle_deferred();
        self.grow();
        other.grow();
        let offset = self.state.len() as u32;
        let n = other.state.len();
        for c in 0..n as u32 {
            match other.state.ids.get(c) {
                crate::state::CustomerId::Str(s) => self.state.ids.intern_str(s),
                crate::state::CustomerId::Int(v) => self.state.ids.intern_int(v),
            };
        }
        if self.state.ids.kind().is_none() {
            if let Some(k) = other.state.ids.kind() {
                let _ = self.state.ids.set_kind(k);
            }
        }
        let o = other.state;
        self.state.agg.append(o.agg);
        self.state.keyed.append(o.keyed);
        self.state.conversions.append(o.conversions, offset);
        self.state.aliases.append(o.aliases, offset);
        for (mine, theirs) in self.state.traits.values.iter_mut().zip(o.traits.values) {
            mine.extend(theirs);
        }
        self.state.seen_events.append(o.seen_events, offset);
        self.members.append(other.members);
        self.caps.append(other.caps, offset);
        self.timers.append(other.timers);
        self.clock = match (self.clock, other.clock) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.grow();
        Ok(())
    }
}
