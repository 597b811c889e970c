//! Applying an Arrow batch of profile-trait upserts: `customer_id` plus one
//! column per declared trait. Columns that are not declared traits are ignored.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_cast::cast::{cast_with_options, CastOptions};
use arrow_schema::{DataType, TimeUnit};

use super::columns::{find, id_column, IdColumn};
use super::Touched;
use crate::engine::Rejected;
use crate::error::{EngineError, Result};
use crate::rules::expr::Value;
use crate::rules::ruleset::TraitType;
use crate::state::State;

fn target(ty: TraitType) -> DataType {
    match ty {
        TraitType::String => DataType::Utf8,
        TraitType::Int => DataType::Int64,
        TraitType::Float => DataType::Float64,
        TraitType::Bool => DataType::Boolean,
        TraitType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
    }
}

fn read(col: &ArrayRef, ty: TraitType, i: usize) -> Value {
    if col.is_null(i) {
        return Value::Null;
    }
    match ty {
        TraitType::String => Value::Str(Arc::from(col.as_string::<i32>().value(i))),
        TraitType::Int => Value::Int(col.as_primitive::<Int64Type>().value(i)),
        TraitType::Float => Value::Float(col.as_primitive::<Float64Type>().value(i)),
        TraitType::Bool => Value::Bool(col.as_boolean().value(i)),
        TraitType::Timestamp => Value::Ts(col.as_primitive::<TimestampMillisecondType>().value(i)),
    }
}

/// Validates the schema, then upserts each valid row.
pub fn apply_trait_batch(
    state: &mut State,
    map: &BTreeMap<String, String>,
    batch: &RecordBatch,
    touched: &mut Touched,
) -> Result<Rejected> {
    let id_col = find(batch, map, "customer_id").ok_or_else(|| {
        EngineError::schema(
            "customer_id",
            "required column `customer_id` is missing from the traits batch",
        )
    })?;
    // Ids of the other kind are converted by the rule every decoder shares.
    let ids = id_column("customer_id", id_col)?.into_kind(state.ids.kind())?;
    let kind = ids.kind();
    let mut cols: Vec<(usize, TraitType, ArrayRef, ArrayRef)> = Vec::new();
    for (t, (name, ty)) in state.traits.decl.iter().enumerate() {
        let Ok(idx) = batch.schema().index_of(name) else {
            continue;
        };
        let orig = batch.column(idx).clone();
        let opts = CastOptions {
            safe: true,
            ..Default::default()
        };
        let casted = cast_with_options(&orig, &target(*ty), &opts)
            .map_err(|e| EngineError::schema(name, format!("cannot read as {ty:?}: {e}")))?;
        cols.push((t, *ty, orig, casted));
    }
    if cols.is_empty() && !state.traits.decl.is_empty() {
        let declared: Vec<&str> = state.traits.decl.iter().map(|(n, _)| n.as_str()).collect();
        return Err(EngineError::schema(
            "traits",
            format!(
                "no declared trait column in the batch (declared: {})",
                declared.join(", ")
            ),
        ));
    }
    if batch.num_rows() > 0 {
        let _ = state.ids.set_kind(kind);
    }
    let mut rejected = Vec::new();
    'rows: for i in 0..batch.num_rows() {
        for (t, ty, orig, casted) in &cols {
            if !orig.is_null(i) && casted.is_null(i) {
                let name = &state.traits.decl[*t].0;
                rejected.push((i, format!("trait `{name}`: value cannot be read as {ty:?}")));
                continue 'rows;
            }
        }
        let (c, new) = match &ids {
            IdColumn::Str(a) if !a.is_null(i) => state.ids.intern_str(a.value(i)),
            IdColumn::Int(a, o) if !o.is_null(i) && !a.is_null(i) => {
                state.ids.intern_int(a.value(i))
            }
            _ => {
                rejected.push((i, ids.unreadable(i)));
                continue;
            }
        };
        let c = state.aliases.resolve(c);
        if new {
            state.ensure(c as usize + 1);
        }
        for (t, ty, _, casted) in &cols {
            state.traits.values[*t][c as usize] = read(casted, *ty, i);
        }
        touched.add(c);
    }
    Ok(rejected)
}

/// Converts a JSON trait value to the declared type.
pub fn trait_from_json(ty: TraitType, v: &serde_json::Value) -> std::result::Result<Value, String> {
    use serde_json::Value as J;
    Ok(match (ty, v) {
        (_, J::Null) => Value::Null,
        (TraitType::String, J::String(s)) => Value::Str(Arc::from(s.as_str())),
        (TraitType::String, J::Number(n)) => Value::Str(Arc::from(n.to_string().as_str())),
        (TraitType::String, J::Bool(b)) => Value::Str(Arc::from(b.to_string().as_str())),
        (TraitType::Int, J::Number(n)) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Value::Int(f as i64),
                _ => return Err(format!("{n} is not an integer")),
            },
        },
        (TraitType::Int, J::String(s)) => Value::Int(
            s.trim()
                .parse()
                .map_err(|_| format!("`{s}` is not an integer"))?,
        ),
        (TraitType::Float, J::Number(n)) => Value::Float(n.as_f64().ok_or("not a number")?),
        (TraitType::Float, J::String(s)) => Value::Float(
            s.trim()
                .parse()
                .map_err(|_| format!("`{s}` is not a number"))?,
        ),
        (TraitType::Bool, J::Bool(b)) => Value::Bool(*b),
        (TraitType::Bool, J::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Value::Bool(true),
            "false" | "no" | "0" => Value::Bool(false),
            _ => return Err(format!("`{s}` is not a boolean")),
        },
        (TraitType::Timestamp, J::Number(n)) => {
            Value::Ts(n.as_i64().ok_or("not an integer epoch ms")?)
        }
        (TraitType::Timestamp, J::String(s)) => Value::Ts(crate::time::parse_timestamp_ms(s)?),
        (ty, other) => return Err(format!("expected {ty:?}, got {other}")),
    })
}
