//! The keyed state's checkpoint columns: each accumulator, window, set and
//! month list as a named Arrow column, and back. Symbols are written as
//! their text, so a checkpoint does not depend on the interning order.

use std::sync::Arc;

use arrow_array::builder::{Int32Builder, Int64Builder, ListBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, Int64Array};
use arrow_schema::DataType;

use super::keyed::{Entry, Keyed};
use crate::error::{EngineError, Result};

fn err(msg: impl Into<String>) -> EngineError {
    EngineError::Checkpoint(msg.into())
}

fn ints(read: &impl Fn(&str) -> Result<ArrayRef>, name: &str) -> Result<Vec<i64>> {
    let c = read(name)?;
    if c.data_type() != &DataType::Int64 || c.null_count() > 0 {
        return Err(err(format!("column `{name}` must be non-null int64")));
    }
    Ok(c.as_primitive::<Int64Type>().values().to_vec())
}

/// Column `name`, which must be a list of `item` (`label` in the error).
fn list_column(
    read: &impl Fn(&str) -> Result<ArrayRef>,
    name: &str,
    item: &DataType,
    label: &str,
) -> Result<ArrayRef> {
    let c = read(name)?;
    let DataType::List(f) = c.data_type() else {
        return Err(err(format!("`{name}` must be a list")));
    };
    if f.data_type() != item {
        return Err(err(format!("`{name}` must be list<{label}>")));
    }
    Ok(c)
}

impl Keyed {
    /// The first `n` customers' keyed state as named columns.
    pub fn to_columns(&self, n: usize) -> Vec<(String, ArrayRef)> {
        let mut out: Vec<(String, ArrayRef)> = Vec::new();
        let i64col = |v: &[i64]| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(v[..n].iter().copied()))
        };
        let k = self;
        for (i, acc) in k.acc.iter().enumerate() {
            out.push((format!("acc_{i}"), i64col(acc)));
        }
        for (i, hist) in k.hist.iter().enumerate() {
            let mut b = ListBuilder::new(Int64Builder::new());
            for entries in &hist[..n] {
                for e in entries {
                    b.values().append_value(e.ts);
                    b.values().append_value(e.amount());
                    b.values().append_value(e.counts() as i64);
                }
                b.append(true);
            }
            out.push((format!("hist_{i}"), Arc::new(b.finish()) as ArrayRef));
        }
        let mut sets = |name: &str, kept: bool, sets: &[Vec<u32>]| {
            if !kept {
                return;
            }
            let mut b = ListBuilder::new(StringBuilder::new());
            for s in &sets[..n] {
                for &x in s {
                    b.values().append_value(k.symbol(x));
                }
                b.append(true);
            }
            out.push((name.into(), Arc::new(b.finish()) as ArrayRef));
        };
        sets("category_set", k.needs.category_set, &k.category_sets);
        sets("product_set", k.needs.product_set, &k.product_sets);
        if k.needs.months {
            let mut b = ListBuilder::new(Int32Builder::new());
            for s in &k.months[..n] {
                b.values().append_slice(s);
                b.append(true);
            }
            out.push(("months".into(), Arc::new(b.finish()) as ArrayRef));
        }
        out
    }

    /// Restores `n` customers' keyed state from the columns `to_columns`
    /// wrote; `read` returns a column by name, or the error for a missing one.
    pub fn restore_columns(
        &mut self,
        n: usize,
        read: impl Fn(&str) -> Result<ArrayRef>,
    ) -> Result<()> {
        let k = self;
        for i in 0..k.acc.len() {
            k.acc[i] = ints(&read, &format!("acc_{i}"))?;
        }
        for i in 0..k.hist.len() {
            let name = format!("hist_{i}");
            let c = list_column(&read, &name, &DataType::Int64, "int64")?;
            let list = c.as_list::<i32>();
            let mut out = Vec::with_capacity(n);
            for row in 0..n {
                let vals = list.value(row);
                let vals = vals.as_primitive::<Int64Type>();
                if vals.len() % 3 != 0 || vals.null_count() > 0 {
                    return Err(err(format!("`{name}` row {row} is malformed")));
                }
                let v = vals.values();
                let mut entries = Vec::with_capacity(v.len() / 3);
                for t in v.chunks_exact(3) {
                    // Counting events (purchases, signals) never carry a negative
                    // amount, refunds never a positive one.
                    let counts = t[2] != 0;
                    if (counts && t[1] < 0) || (!counts && t[1] > 0) {
                        return Err(err(format!("`{name}` row {row} has an impossible amount")));
                    }
                    entries.push(Entry::new(t[0], t[1].saturating_abs(), counts));
                }
                entries.sort();
                out.push(entries);
            }
            k.hist[i] = out;
        }
        if k.needs.category_set {
            k.category_sets = k.read_sets(&read, "category_set", n)?;
        }
        if k.needs.product_set {
            k.product_sets = k.read_sets(&read, "product_set", n)?;
        }
        if k.needs.months {
            let c = list_column(&read, "months", &DataType::Int32, "int32")?;
            let list = c.as_list::<i32>();
            k.months = (0..n)
                .map(|row| {
                    let v = list.value(row);
                    let mut m: Vec<i32> = v.as_primitive::<Int32Type>().iter().flatten().collect();
                    m.sort_unstable();
                    m.dedup();
                    m
                })
                .collect();
        }
        Ok(())
    }

    /// A category or product set column: symbols interned, each set sorted
    /// and without repeats, as `apply` keeps them.
    fn read_sets(
        &mut self,
        read: &impl Fn(&str) -> Result<ArrayRef>,
        name: &str,
        n: usize,
    ) -> Result<Vec<Vec<u32>>> {
        let c = list_column(read, name, &DataType::Utf8, "utf8")?;
        let list = c.as_list::<i32>();
        let mut sets = Vec::with_capacity(n);
        for row in 0..n {
            let vals = list.value(row);
            let mut s: Vec<u32> = vals
                .as_string::<i32>()
                .iter()
                .flatten()
                .map(|x| self.intern_symbol(x))
                .collect();
            s.sort_unstable();
            s.dedup();
            sets.push(s);
        }
        Ok(sets)
    }
}
