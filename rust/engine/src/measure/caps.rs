//! Frequency caps across segments: a customer gets at most `max` entries
//! across a cap's segments in any sliding `per`. Later entries still make
//! them members, but the change carries `capped = true` so that downstream
//! tools do not send. Holdout entries count like treated ones (the cap holds
//! back both groups alike, so uplift compares like with like).
//!
//! Decisions depend only on the order of entries, which a replay repeats,
//! so they are the same on every replay.

use std::sync::Arc;

use arrow_array::builder::{Int64Builder, ListBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use rustc_hash::FxHashMap;

use crate::error::{EngineError, Result};
use crate::rules::compiled::CompiledRules;
use crate::rules::measure_spec::FrequencyCapSpec;

/// One cap and the entries it let through, per customer.
#[derive(Debug, Clone)]
struct Cap {
    spec: FrequencyCapSpec,
    max: usize,
    per: i64,
    /// Times of the entries sent, per customer (only the last `per` matter).
    sent: FxHashMap<u32, Vec<i64>>,
}

/// Every cap of a rule set.
#[derive(Debug, Clone, Default)]
pub struct FrequencyCaps {
    caps: Vec<Cap>,
    /// Node index -> the caps that count its entries.
    by_node: Vec<Vec<u16>>,
}

fn cap_error(msg: String) -> EngineError {
    EngineError::rule_plain(msg)
}

impl FrequencyCaps {
    /// Resolves the rule set's `frequency_caps`.
    pub fn new(rules: &CompiledRules) -> Result<Self> {
        let mut out = FrequencyCaps {
            caps: Vec::new(),
            by_node: vec![Vec::new(); rules.nodes.len()],
        };
        for spec in &rules.spec.frequency_caps {
            let name = &spec.name;
            if out.caps.iter().any(|c| &c.spec.name == name) {
                return Err(cap_error(format!(
                    "frequency_caps: two caps are named `{name}`"
                )));
            }
            if spec.max == 0 {
                return Err(cap_error(format!(
                    "frequency cap `{name}`: max must be at least 1 (to send nothing, leave the segments out of the campaign)"
                )));
            }
            let per = spec.per.to_ms(&format!("frequency cap `{name}`: per"))?;
            if per <= 0 {
                return Err(cap_error(format!(
                    "frequency cap `{name}`: per must be positive"
                )));
            }
            if spec.segments.is_empty() {
                return Err(cap_error(format!(
                    "frequency cap `{name}`: list the segments it counts"
                )));
            }
            let k = out.caps.len() as u16;
            for seg in &spec.segments {
                let names = rules.nodes.iter().map(|n| n.name.as_str());
                let Some(n) = rules.node_index(seg) else {
                    let hint = crate::rules::diagnostics::did_you_mean(seg, names);
                    return Err(cap_error(format!(
                        "frequency cap `{name}`: unknown segment `{seg}`{hint}"
                    )));
                };
                if !rules.nodes[n].is_segment() {
                    return Err(cap_error(format!(
                        "frequency cap `{name}`: `{seg}` is a lifecycle; caps count segment entries"
                    )));
                }
                if out.by_node[n].contains(&k) {
                    return Err(cap_error(format!(
                        "frequency cap `{name}`: `{seg}` is listed twice"
                    )));
                }
                out.by_node[n].push(k);
            }
            out.caps.push(Cap {
                spec: spec.clone(),
                max: spec.max as usize,
                per,
                sent: FxHashMap::default(),
            });
        }
        Ok(out)
    }

    /// True when the rule set has caps.
    #[inline]
    pub fn is_active(&self) -> bool {
        !self.caps.is_empty()
    }

    /// Decides an entry of customer `c` into node `n` at `at`: true when a
    /// cap is full (the entry is capped and counts for no cap), else the
    /// entry is counted by every cap of the node.
    pub fn on_enter(&mut self, c: u32, n: usize, at: i64) -> bool {
        let Some(ks) = self.by_node.get(n).filter(|k| !k.is_empty()) else {
            return false;
        };
        let mut capped = false;
        for &k in ks {
            let cap = &mut self.caps[k as usize];
            let Some(times) = cap.sent.get_mut(&c) else {
                continue;
            };
            // Entries come nearly in time order: what lies a full period
            // before this one cannot share a window with a later entry.
            let horizon = at.saturating_sub(cap.per);
            times.retain(|&t| t > horizon);
            let near = times
                .iter()
                .filter(|&&t| t < at.saturating_add(cap.per))
                .count();
            capped |= near >= cap.max;
        }
        if !capped {
            for &k in ks {
                self.caps[k as usize].sent.entry(c).or_default().push(at);
            }
        }
        capped
    }

    /// The first `n` customers' sent entries, one `cap:<name>` list column per cap.
    pub fn to_columns(&self, n: usize) -> Vec<(String, ArrayRef)> {
        self.caps
            .iter()
            .map(|cap| {
                let mut b = ListBuilder::new(Int64Builder::new());
                for c in 0..n as u32 {
                    if let Some(times) = cap.sent.get(&c) {
                        b.values().append_slice(times);
                    }
                    b.append(true);
                }
                (
                    format!("cap:{}", cap.spec.name),
                    Arc::new(b.finish()) as ArrayRef,
                )
            })
            .collect()
    }

    /// Restores what `to_columns` wrote for `n` customers.
    pub fn restore(&mut self, n: usize, read: impl Fn(&str) -> Result<ArrayRef>) -> Result<()> {
        let bad = |m: String| EngineError::Checkpoint(m);
        for cap in &mut self.caps {
            let name = format!("cap:{}", cap.spec.name);
            let col = read(&name)?;
            let ok =
                matches!(col.data_type(), DataType::List(f) if f.data_type() == &DataType::Int64);
            if !ok || col.len() != n {
                return Err(bad(format!(
                    "`{name}` must be list<int64>, one row per customer"
                )));
            }
            let list = col.as_list::<i32>();
            cap.sent.clear();
            for row in 0..n {
                let v = list.value(row);
                let v = v.as_primitive::<Int64Type>();
                if v.null_count() > 0 {
                    return Err(bad(format!("`{name}` row {row} holds a null")));
                }
                if !v.is_empty() {
                    cap.sent.insert(row as u32, v.values().to_vec());
                }
            }
        }
        Ok(())
    }

    /// Appends another engine's customers, whose indexes start at `offset` here.
    pub fn append(&mut self, other: FrequencyCaps, offset: u32) {
        for (mine, theirs) in self.caps.iter_mut().zip(other.caps) {
            mine.sent
                .extend(theirs.sent.into_iter().map(|(c, t)| (c + offset, t)));
        }
    }

    /// These rules' caps, keeping what each cap that kept its name and spec sent.
    pub fn carried_to(&self, rules: &CompiledRules) -> Result<FrequencyCaps> {
        let mut new = FrequencyCaps::new(rules)?;
        for cap in &mut new.caps {
            if let Some(old) = self.caps.iter().find(|o| o.spec == cap.spec) {
                cap.sent = old.sent.clone();
            }
        }
        Ok(new)
    }

    /// Moves what customer `from` was sent to customer `into` (profile merges).
    pub fn merge_customer(&mut self, from: u32, into: u32) {
        for cap in &mut self.caps {
            if let Some(mut times) = cap.sent.remove(&from) {
                let survivor = cap.sent.entry(into).or_default();
                survivor.append(&mut times);
                survivor.sort_unstable();
            }
        }
    }
}
