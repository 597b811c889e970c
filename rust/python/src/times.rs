//! `parse_times` and `parse_time`: the engine's one time parser for the
//! bulk readers and the Python API (conversion only).

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema};
use pyo3::prelude::*;
use pyo3_arrow::input::AnyRecordBatch;
use segstream_engine::ingest::columns::TsColumn;
use segstream_engine::time::TsFormat;
use segstream_engine::EngineError;

use crate::convert::table;
use crate::errors::{InvalidInputError, Result};

fn format(unit: &str, tz: Option<&str>, refuse_seconds: bool) -> Result<TsFormat> {
    let mut f = TsFormat::named(unit, tz).map_err(InvalidInputError::new_err)?;
    f.refuse_seconds_lookalike = refuse_seconds;
    Ok(f)
}

/// Parses the first column of `data` (text, integers, dates or timestamps)
/// row by row; returns a table of `ms` (epoch ms, null where refused) and
/// `reason` (null where read).
#[pyfunction]
#[pyo3(signature = (data, unit="ms", tz=None, refuse_seconds=false))]
pub fn parse_times<'py>(
    py: Python<'py>,
    data: AnyRecordBatch,
    unit: &str,
    tz: Option<&str>,
    refuse_seconds: bool,
) -> Result<Bound<'py, PyAny>> {
    let fmt = format(unit, tz, refuse_seconds)?;
    let batches: Vec<RecordBatch> = data
        .into_reader()?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| InvalidInputError::new_err(format!("could not read the Arrow input: {e}")))?;
    let [batch] = batches.as_slice() else {
        return Err(InvalidInputError::new_err("parse_times takes one record batch").into());
    };
    let col = batch
        .columns()
        .first()
        .ok_or_else(|| InvalidInputError::new_err("parse_times needs one column"))?
        .clone();
    let rows = batch.num_rows();
    let (ms, why) = py.detach(|| TsColumn::new("ts", &col, fmt).map(|ts| ts.to_millis(rows)))?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("ms", DataType::Int64, true),
        Field::new("reason", DataType::Utf8, true),
    ]));
    let out = RecordBatch::try_new(schema, vec![Arc::new(ms), Arc::new(why)])
        .expect("parsed columns match their schema");
    table(py, out)
}

/// One text time as epoch milliseconds (ISO-8601, a date, or epoch ms);
/// InvalidInputError saying why not.
#[pyfunction]
#[pyo3(signature = (text, tz=None))]
pub fn parse_time(text: &str, tz: Option<&str>) -> Result<i64> {
    let fmt = format("ms", tz, false)?;
    Ok(fmt
        .text(text)
        .map_err(|e| EngineError::Invalid(format!("time {e}")))?)
}
