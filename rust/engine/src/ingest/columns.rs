//! Column readers: each input column, whatever its Arrow type, read as the
//! one representation the engine works with. Unsupported types are schema
//! errors naming the column; values that cannot be read are per-row errors.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Decimal128Type, Float64Type, Int64Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{
    Array, ArrayRef, GenericListArray, Int64Array, PrimitiveArray, RecordBatch, StringArray,
};
use arrow_cast::cast::{cast_with_options, CastOptions};
use arrow_schema::{DataType, Field, TimeUnit};

use crate::error::{EngineError, Result};
use crate::state::{int_id_from_text, IdKind};
use crate::time::{format_ts, TsFormat, MAX_TS, MIN_TS};

/// Finds a column by engine name through the column map.
pub fn find<'a>(
    batch: &'a RecordBatch,
    map: &std::collections::BTreeMap<String, String>,
    name: &str,
) -> Option<&'a ArrayRef> {
    let wanted = map.get(name).map(|s| s.as_str()).unwrap_or(name);
    batch
        .schema()
        .index_of(wanted)
        .ok()
        .map(|i| batch.column(i))
}

fn cast_lenient(
    col: &ArrayRef,
    to: &DataType,
) -> std::result::Result<ArrayRef, arrow_schema::ArrowError> {
    let opts = CastOptions {
        safe: true,
        ..Default::default()
    };
    cast_with_options(col, to, &opts)
}

fn is_text(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_text(v),
        _ => false,
    }
}

fn is_int(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    ) || matches!(t, DataType::Dictionary(_, v) if is_int(v))
}

/// Text values (utf8 after a cast where needed).
pub fn text_column(name: &str, col: &ArrayRef) -> Result<StringArray> {
    if !is_text(col.data_type()) && !is_int(col.data_type()) {
        return Err(EngineError::schema(
            name,
            format!("expected text, found {}", col.data_type()),
        ));
    }
    let c = if col.data_type() == &DataType::Utf8 {
        col.clone()
    } else {
        cast_lenient(col, &DataType::Utf8).map_err(|e| EngineError::schema(name, e.to_string()))?
    };
    Ok(c.as_string::<i32>().clone())
}

/// Integer values as int64; `lost` marks rows whose value did not fit.
pub fn int_column(name: &str, col: &ArrayRef, allow_text: bool) -> Result<(Int64Array, ArrayRef)> {
    let ok = is_int(col.data_type()) || (allow_text && is_text(col.data_type()));
    if !ok {
        return Err(EngineError::schema(
            name,
            format!("expected integers, found {}", col.data_type()),
        ));
    }
    let c = cast_lenient(col, &DataType::Int64)
        .map_err(|e| EngineError::schema(name, e.to_string()))?;
    Ok((c.as_primitive::<Int64Type>().clone(), col.clone()))
}

/// Customer ids: text or integers.
pub enum IdColumn {
    /// Text ids.
    Str(StringArray),
    /// Integer ids; the original column tells overflow from null.
    Int(Int64Array, ArrayRef),
}

impl IdColumn {
    /// The kind of ids in the column.
    pub fn kind(&self) -> IdKind {
        match self {
            IdColumn::Str(_) => IdKind::Str,
            IdColumn::Int(..) => IdKind::Int,
        }
    }

    /// The ids as an engine holding `kind` ids (if it holds any yet) reads
    /// them, by `int_id_from_text`'s rule: integers become their decimal text;
    /// a text that is not an integer's exact decimal text becomes a null
    /// integer whose row `unreadable` explains.
    pub fn into_kind(self, kind: Option<IdKind>) -> Result<IdColumn> {
        Ok(match (self, kind) {
            (IdColumn::Int(_, orig), Some(IdKind::Str)) => {
                // From the original column, so a uint64 beyond int64 keeps its digits.
                IdColumn::Str(text_column("customer_id", &orig)?)
            }
            (IdColumn::Str(text), Some(IdKind::Int)) => {
                let ints: Int64Array = text.iter().map(|t| t.and_then(int_id_from_text)).collect();
                IdColumn::Int(ints, Arc::new(text))
            }
            (same, _) => same,
        })
    }

    /// Why row `i` has no id: null, too large for int64, or a text that names
    /// no integer while the engine holds integer ids.
    pub fn unreadable(&self, i: usize) -> String {
        match self {
            IdColumn::Int(_, orig) if !orig.is_null(i) => match orig.as_string_opt::<i32>() {
                Some(text) => format!(
                    "customer_id `{}` is not an integer, and this engine holds integer ids",
                    text.value(i)
                ),
                None => "customer_id does not fit in int64".into(),
            },
            _ => "customer_id is null".into(),
        }
    }
}

/// Reads the customer id column.
pub fn id_column(name: &str, col: &ArrayRef) -> Result<IdColumn> {
    if is_text(col.data_type()) {
        Ok(IdColumn::Str(text_column(name, col)?))
    } else if is_int(col.data_type()) {
        let (a, orig) = int_column(name, col, false)?;
        Ok(IdColumn::Int(a, orig))
    } else {
        Err(EngineError::schema(
            name,
            format!(
                "expected utf8, large_utf8, int64 or uint64 ids, found {}",
                col.data_type()
            ),
        ))
    }
}

/// Event times in ms, read with a `TsFormat` and refused past `latest`.
pub struct TsColumn {
    values: TsValues,
    format: TsFormat,
    /// Later times are rejected (the wall clock plus the rule set's `max_future`).
    latest: i64,
}

enum TsValues {
    /// Raw values and the factor to ms (`mul` > 0 multiplies, `div` > 0 floors).
    #[allow(missing_docs)]
    Scaled {
        values: PrimitiveArray<Int64Type>,
        mul: i64,
        div: i64,
    },
    /// Epoch numbers in the format's unit.
    Epoch(PrimitiveArray<Int64Type>),
    /// Text to parse per row.
    Text(StringArray),
}

impl TsColumn {
    /// Reads the time column; numbers and text are read with `format`.
    pub fn new(name: &str, col: &ArrayRef, format: TsFormat) -> Result<Self> {
        let as_i64 = |a: &ArrayRef| -> Result<PrimitiveArray<Int64Type>> {
            cast_lenient(a, &DataType::Int64)
                .map(|c| c.as_primitive::<Int64Type>().clone())
                .map_err(|e| EngineError::schema(name, e.to_string()))
        };
        let scaled = |values, mul, div| TsValues::Scaled { values, mul, div };
        let values = match col.data_type() {
            DataType::Timestamp(unit, _) => {
                let raw: PrimitiveArray<Int64Type> = match unit {
                    TimeUnit::Second => {
                        col.as_primitive::<TimestampSecondType>().reinterpret_cast()
                    }
                    TimeUnit::Millisecond => col
                        .as_primitive::<TimestampMillisecondType>()
                        .reinterpret_cast(),
                    TimeUnit::Microsecond => col
                        .as_primitive::<TimestampMicrosecondType>()
                        .reinterpret_cast(),
                    TimeUnit::Nanosecond => col
                        .as_primitive::<TimestampNanosecondType>()
                        .reinterpret_cast(),
                };
                match unit {
                    TimeUnit::Second => scaled(raw, 1000, 0),
                    TimeUnit::Millisecond => scaled(raw, 0, 0),
                    TimeUnit::Microsecond => scaled(raw, 0, 1000),
                    TimeUnit::Nanosecond => scaled(raw, 0, 1_000_000),
                }
            }
            DataType::Date32 => scaled(as_i64(col)?, 86_400_000, 0),
            DataType::Date64 => scaled(as_i64(col)?, 0, 0),
            t if is_int(t) => TsValues::Epoch(as_i64(col)?),
            t if is_text(t) => TsValues::Text(text_column(name, col)?),
            other => {
                return Err(EngineError::schema(
                    name,
                    format!(
                    "expected a timestamp, date, int64 epoch milliseconds or text, found {other}"
                ),
                ))
            }
        };
        Ok(TsColumn {
            values,
            format,
            latest: MAX_TS,
        })
    }

    /// Rejects times after `latest` (ms).
    pub fn refuse_after(&mut self, latest: i64) {
        self.latest = latest.min(MAX_TS);
    }

    /// The time of row `i` in ms, or why it cannot be used.
    #[inline]
    pub fn get(&self, i: usize) -> std::result::Result<i64, String> {
        let ms = match &self.values {
            TsValues::Scaled { values, mul, div } => {
                if values.is_null(i) {
                    return Err("ts is null".into());
                }
                let v = values.value(i);
                if *mul > 0 {
                    v.checked_mul(*mul)
                        .ok_or_else(|| "ts is out of range".to_string())?
                } else if *div > 0 {
                    v.div_euclid(*div)
                } else {
                    v
                }
            }
            TsValues::Epoch(values) => {
                if values.is_null(i) {
                    return Err("ts is null".into());
                }
                self.format
                    .number(values.value(i))
                    .map_err(|e| format!("ts {e}"))?
            }
            TsValues::Text(a) => {
                if a.is_null(i) {
                    return Err("ts is null".into());
                }
                self.format
                    .text(a.value(i))
                    .map_err(|e| format!("ts {e}"))?
            }
        };
        if !(MIN_TS..=MAX_TS).contains(&ms) {
            return Err(format!("ts {ms} ms is outside the years 1900..9999"));
        }
        if ms > self.latest {
            return Err(format!(
                "ts {} is later than {}, the wall clock plus the rule set's max_future",
                format_ts(ms),
                format_ts(self.latest)
            ));
        }
        Ok(ms)
    }

    /// Every row's time as ms (null where refused) and the reasons of the
    /// refused rows (null where read): how the bulk readers parse a time
    /// column once, before the `as_of` cut.
    pub fn to_millis(&self, rows: usize) -> (Int64Array, StringArray) {
        let mut ms = Vec::with_capacity(rows);
        let mut why = Vec::with_capacity(rows);
        for i in 0..rows {
            match self.get(i) {
                Ok(t) => {
                    ms.push(Some(t));
                    why.push(None);
                }
                Err(reason) => {
                    ms.push(None);
                    why.push(Some(reason));
                }
            }
        }
        (Int64Array::from(ms), StringArray::from(why))
    }
}

/// Money amounts converted to exact minor units.
pub enum AmountColumn {
    /// Floats, rounded to the nearest minor unit.
    Float(PrimitiveArray<Float64Type>),
    /// Decimals with their scale.
    Decimal(PrimitiveArray<Decimal128Type>, i8),
    /// Whole currency units.
    Int(Int64Array, ArrayRef),
    /// Decimal text.
    Text(StringArray),
}

impl AmountColumn {
    /// Reads the amount column.
    pub fn new(name: &str, col: &ArrayRef) -> Result<Self> {
        match col.data_type() {
            DataType::Float64 => Ok(AmountColumn::Float(
                col.as_primitive::<Float64Type>().clone(),
            )),
            DataType::Float32 | DataType::Float16 => {
                let c = cast_lenient(col, &DataType::Float64)
                    .map_err(|e| EngineError::schema(name, e.to_string()))?;
                Ok(AmountColumn::Float(c.as_primitive::<Float64Type>().clone()))
            }
            DataType::Decimal128(_, s) => Ok(AmountColumn::Decimal(
                col.as_primitive::<Decimal128Type>().clone(),
                *s,
            )),
            DataType::Decimal32(_, s) | DataType::Decimal64(_, s) | DataType::Decimal256(_, s) => {
                let to = DataType::Decimal128(38, *s);
                let c =
                    cast_lenient(col, &to).map_err(|e| EngineError::schema(name, e.to_string()))?;
                Ok(AmountColumn::Decimal(
                    c.as_primitive::<Decimal128Type>().clone(),
                    *s,
                ))
            }
            t if is_int(t) => {
                let (a, orig) = int_column(name, col, false)?;
                Ok(AmountColumn::Int(a, orig))
            }
            t if is_text(t) => Ok(AmountColumn::Text(text_column(name, col)?)),
            other => Err(EngineError::schema(
                name,
                format!("expected float64, decimal128 or int64 money, found {other}"),
            )),
        }
    }

    /// Minor units of row `i` (`Ok(None)` when null), or why it cannot be used.
    #[inline]
    pub fn get(&self, i: usize, scale_digits: u32) -> std::result::Result<Option<i64>, String> {
        let scale = 10i64.pow(scale_digits);
        let v = match self {
            AmountColumn::Float(a) => {
                if a.is_null(i) {
                    return Ok(None);
                }
                let f = a.value(i);
                if !f.is_finite() {
                    return Err(format!("amount {f} is not a finite number"));
                }
                let m = (f * scale as f64).round();
                if m.abs() >= 9.0e18 {
                    return Err(format!("amount {f} is too large"));
                }
                m as i64
            }
            AmountColumn::Decimal(a, s) => {
                if a.is_null(i) {
                    return Ok(None);
                }
                rescale(a.value(i), *s as i32, scale_digits as i32)
                    .ok_or_else(|| "amount is too large".to_string())?
            }
            AmountColumn::Int(a, orig) => {
                if orig.is_null(i) {
                    return Ok(None);
                }
                if a.is_null(i) {
                    return Err("amount is too large".into());
                }
                a.value(i)
                    .checked_mul(scale)
                    .ok_or_else(|| "amount is too large".to_string())?
            }
            AmountColumn::Text(a) => {
                if a.is_null(i) {
                    return Ok(None);
                }
                parse_decimal(a.value(i), scale_digits)
                    .ok_or_else(|| format!("amount `{}` is not a number", a.value(i)))?
            }
        };
        Ok(Some(v))
    }
}

/// Rescales a decimal from `from` to `to` digits, rounding half away from zero.
pub fn rescale(v: i128, from: i32, to: i32) -> Option<i64> {
    let out = if from > to {
        let d = 10i128.checked_pow((from - to) as u32)?;
        let q = v / d;
        let r = v % d;
        if r.abs() * 2 >= d {
            q + v.signum()
        } else {
            q
        }
    } else {
        v.checked_mul(10i128.checked_pow((to - from) as u32)?)?
    };
    i64::try_from(out).ok()
}

/// Parses decimal text into minor units exactly (rounding beyond the scale).
pub fn parse_decimal(text: &str, scale: u32) -> Option<i64> {
    let t = text.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int_part, frac) = t.split_once('.').unwrap_or((t, ""));
    if int_part.is_empty() && frac.is_empty() {
        return None;
    }
    if !int_part.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
        || frac.len() > 30
        || int_part.len() > 30
    {
        return None;
    }
    let digits = format!("{int_part}{frac}");
    let v: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    let v = if neg { -v } else { v };
    rescale(v, frac.len() as i32, scale as i32)
}

/// Tags: a list of strings per row, or one string per row.
pub enum TagColumn {
    /// `list<utf8>`.
    List(GenericListArray<i32>, StringArray),
    /// One tag per row.
    Single(StringArray),
}

impl TagColumn {
    /// Reads a tag column.
    pub fn new(name: &str, col: &ArrayRef) -> Result<Self> {
        match col.data_type() {
            DataType::List(_)
            | DataType::LargeList(_)
            | DataType::ListView(_)
            | DataType::FixedSizeList(_, _) => {
                let to = DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)));
                let c = cast_lenient(col, &to).map_err(|e| {
                    EngineError::schema(name, format!("cannot read as list<utf8>: {e}"))
                })?;
                let list = c.as_list::<i32>().clone();
                let values = list.values().as_string::<i32>().clone();
                Ok(TagColumn::List(list, values))
            }
            t if is_text(t) => Ok(TagColumn::Single(text_column(name, col)?)),
            other => Err(EngineError::schema(
                name,
                format!("expected list<utf8> or utf8, found {other}"),
            )),
        }
    }

    /// Calls `f` for each tag of row `i`.
    #[inline]
    pub fn for_each(&self, i: usize, mut f: impl FnMut(&str)) {
        match self {
            TagColumn::List(list, values) => {
                if list.is_null(i) {
                    return;
                }
                let offsets = list.value_offsets();
                for j in offsets[i] as usize..offsets[i + 1] as usize {
                    if !values.is_null(j) {
                        f(values.value(j));
                    }
                }
            }
            TagColumn::Single(a) => {
                if !a.is_null(i) {
                    f(a.value(i));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(parse_decimal("12.34", 2), Some(1234));
        assert_eq!(parse_decimal("12.345", 2), Some(1235));
        assert_eq!(parse_decimal("-0.5", 0), Some(-1));
        assert_eq!(parse_decimal("7", 2), Some(700));
        assert_eq!(parse_decimal("abc", 2), None);
        assert_eq!(parse_decimal(".", 2), None);
        assert_eq!(rescale(12345, 3, 2), Some(1235));
    }
}
