//! The conversion tracking's checkpoint form: each customer's open entries
//! as one list column, and the closed counters (which belong to no customer)
//! as one JSON metadata entry, segments named by their text.

use std::sync::Arc;

use arrow_array::builder::{Int64Builder, ListBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::conversions::{Conversions, DayCounts, OpenEntry};
use crate::error::{EngineError, Result};

/// Name of the open-entries column.
pub const OPEN_COLUMN: &str = "conversion_open";
/// Metadata key of the closed counters.
pub const COUNTERS_KEY: &str = "segstream.conversion_counters";

/// Values per open entry in the list column.
const WIDTH: usize = 6;

fn err(msg: impl Into<String>) -> EngineError {
    EngineError::Checkpoint(msg.into())
}

/// One row of the counters entry.
#[derive(Debug, Serialize, Deserialize)]
struct CounterRow {
    segment: String,
    holdout: bool,
    day: i64,
    entries: u64,
    conversions: u64,
    revenue: i64,
    backlash: u64,
}

impl Conversions {
    /// The first `n` customers' open entries, as `(name, column)`; nothing
    /// when no segment is tracked.
    pub fn to_columns(&self, n: usize) -> Vec<(String, ArrayRef)> {
        if !self.is_active() {
            return Vec::new();
        }
        let mut b = ListBuilder::new(Int64Builder::new());
        for c in 0..n as u32 {
            if let Some(list) = self.open.get(&c) {
                for e in list {
                    b.values().append_slice(&[
                        e.spec as i64,
                        e.holdout as i64,
                        e.at,
                        e.converted as i64,
                        e.backlash as i64,
                        e.revenue,
                    ]);
                }
            }
            b.append(true);
        }
        vec![(OPEN_COLUMN.into(), Arc::new(b.finish()) as ArrayRef)]
    }

    /// The closed counters as the JSON text of the metadata entry (None
    /// when no segment is tracked).
    pub fn counters_json(&self) -> Option<String> {
        if !self.is_active() {
            return None;
        }
        let rows: Vec<CounterRow> = self
            .closed
            .iter()
            .map(|(&(spec, holdout, day), v)| CounterRow {
                segment: self.tracked[spec as usize].name.clone(),
                holdout,
                day,
                entries: v.entries,
                conversions: v.conversions,
                revenue: v.revenue,
                backlash: v.backlash,
            })
            .collect();
        Some(serde_json::to_string(&rows).expect("counters serialize"))
    }

    /// Restores `n` customers' open entries and the counters from what
    /// `to_columns` and `counters_json` wrote.
    pub fn restore(
        &mut self,
        n: usize,
        read: impl Fn(&str) -> Result<ArrayRef>,
        counters: Option<&str>,
    ) -> Result<()> {
        if !self.is_active() {
            return Ok(());
        }
        let c = read(OPEN_COLUMN)?;
        let DataType::List(f) = c.data_type() else {
            return Err(err(format!("`{OPEN_COLUMN}` must be a list")));
        };
        if f.data_type() != &DataType::Int64 || c.len() != n {
            return Err(err(format!(
                "`{OPEN_COLUMN}` must be list<int64>, one row per customer"
            )));
        }
        let list = c.as_list::<i32>();
        let mut open: FxHashMap<u32, Vec<OpenEntry>> = FxHashMap::default();
        for row in 0..n {
            let vals = list.value(row);
            let vals = vals.as_primitive::<Int64Type>();
            if vals.len() % WIDTH != 0 || vals.null_count() > 0 {
                return Err(err(format!("`{OPEN_COLUMN}` row {row} is malformed")));
            }
            let mut entries = Vec::new();
            for v in vals.values().chunks_exact(WIDTH) {
                let bit = |x: i64| match x {
                    0 => Ok(false),
                    1 => Ok(true),
                    _ => Err(err(format!("`{OPEN_COLUMN}` row {row} has a flag {x}"))),
                };
                let spec = u16::try_from(v[0])
                    .ok()
                    .filter(|&s| (s as usize) < self.tracked.len())
                    .ok_or_else(|| {
                        err(format!(
                            "`{OPEN_COLUMN}` row {row}: no tracked segment {}",
                            v[0]
                        ))
                    })?;
                entries.push(OpenEntry {
                    spec,
                    holdout: bit(v[1])?,
                    at: v[2],
                    converted: bit(v[3])?,
                    backlash: bit(v[4])?,
                    revenue: v[5],
                });
            }
            if !entries.is_empty() {
                open.insert(row as u32, entries);
            }
        }
        self.set_open(open);
        let rows: Vec<CounterRow> = serde_json::from_str(
            counters.ok_or_else(|| err(format!("missing metadata `{COUNTERS_KEY}`")))?,
        )
        .map_err(|e| err(format!("`{COUNTERS_KEY}`: {e}")))?;
        self.closed.clear();
        for r in rows {
            let spec = self
                .tracked
                .iter()
                .position(|t| t.name == r.segment)
                .ok_or_else(|| {
                    err(format!(
                        "`{COUNTERS_KEY}` counts segment `{}`, which has no conversion spec",
                        r.segment
                    ))
                })?;
            if r.conversions > r.entries || r.backlash > r.entries {
                return Err(err(format!(
                    "`{COUNTERS_KEY}`: segment `{}` day {} counts more conversions or backlash than entries",
                    r.segment, r.day
                )));
            }
            let slot = self
                .closed
                .entry((spec as u16, r.holdout, r.day))
                .or_default();
            slot.add(&DayCounts {
                entries: r.entries,
                conversions: r.conversions,
                revenue: r.revenue,
                backlash: r.backlash,
            });
        }
        Ok(())
    }
}
