//! Profile aliases: which customer indexes were merged into which (the
//! Segment/RudderStack `alias` call). Every alias points at its final
//! survivor, so resolving an index is one lookup, and events of an absorbed
//! id are applied to the survivor.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, Int64Array};
use arrow_schema::DataType;
use rustc_hash::FxHashMap;

use crate::error::{EngineError, Result};

/// Name of the checkpoint column (written only when some alias exists).
pub const ALIAS_COLUMN: &str = "merged_into";

/// Absorbed customer index -> its survivor.
#[derive(Debug, Clone, Default)]
pub struct Aliases {
    map: FxHashMap<u32, u32>,
}

impl Aliases {
    /// The customer whose state holds `c`'s: `c` itself unless it was merged.
    #[inline]
    pub fn resolve(&self, c: u32) -> u32 {
        if self.map.is_empty() {
            return c;
        }
        self.map.get(&c).copied().unwrap_or(c)
    }

    /// True when `c` was merged into another customer.
    pub fn is_alias(&self, c: u32) -> bool {
        self.map.contains_key(&c)
    }

    /// Number of aliases.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing was merged.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Records that `from` (a survivor so far) now lives in `into` (a
    /// survivor); what pointed at `from` now points at `into`.
    pub fn add(&mut self, from: u32, into: u32) {
        debug_assert!(!self.map.contains_key(&into) && from != into);
        for target in self.map.values_mut() {
            if *target == from {
                *target = into;
            }
        }
        self.map.insert(from, into);
    }

    /// The first `n` customers' survivors (-1: not merged), when any alias exists.
    pub fn to_columns(&self, n: usize) -> Vec<(String, ArrayRef)> {
        if self.map.is_empty() {
            return Vec::new();
        }
        let col = Int64Array::from_iter_values(
            (0..n as u32).map(|c| self.map.get(&c).map_or(-1, |&t| t as i64)),
        );
        vec![(ALIAS_COLUMN.into(), Arc::new(col) as ArrayRef)]
    }

    /// Restores what `to_columns` wrote (no column: no alias). A survivor
    /// must be a customer that is not itself merged.
    pub fn restore(&mut self, n: usize, col: Option<&ArrayRef>) -> Result<()> {
        self.map.clear();
        let Some(col) = col else { return Ok(()) };
        let bad = |m: String| EngineError::Checkpoint(m);
        if col.data_type() != &DataType::Int64 || col.null_count() > 0 || col.len() != n {
            return Err(bad(format!(
                "`{ALIAS_COLUMN}` must be non-null int64, one row per customer"
            )));
        }
        let vals = col.as_primitive::<Int64Type>().values();
        for (c, &t) in vals.iter().enumerate() {
            if t == -1 {
                continue;
            }
            let ok = usize::try_from(t).is_ok_and(|t| t < n && t != c && vals[t] == -1);
            if !ok {
                return Err(bad(format!(
                    "`{ALIAS_COLUMN}` row {c} points at {t}, which is no surviving customer"
                )));
            }
            self.map.insert(c as u32, t as u32);
        }
        Ok(())
    }

    /// Appends another engine's aliases, its indexes shifted by `offset`.
    pub fn append(&mut self, other: Aliases, offset: u32) {
        self.map
            .extend(other.map.into_iter().map(|(a, b)| (a + offset, b + offset)));
    }
}
