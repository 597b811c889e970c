//! Arrow and JSON conversions between the engine and Python.

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use pyo3::prelude::*;
use pyo3_arrow::PyTable;

use crate::errors::Result;
use std::sync::Arc;

/// A record batch as a `pyarrow.Table`.
pub fn table<'py>(py: Python<'py>, batch: RecordBatch) -> Result<Bound<'py, PyAny>> {
    let schema = batch.schema();
    Ok(PyTable::try_new(vec![batch], schema)?.into_pyarrow(py)?)
}

/// Rejected rows as a `pyarrow.Table` of `row` and `reason`.
pub fn rejected_table<'py>(
    py: Python<'py>,
    rejected: &[(usize, String)],
) -> Result<Bound<'py, PyAny>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("row", DataType::Int64, false),
        Field::new("reason", DataType::Utf8, false),
    ]));
    let rows = Int64Array::from_iter_values(rejected.iter().map(|(r, _)| *r as i64));
    let reasons = StringArray::from_iter_values(rejected.iter().map(|(_, m)| m.as_str()));
    let batch = RecordBatch::try_new(schema, vec![Arc::new(rows), Arc::new(reasons)])
        .expect("rejected columns match their schema");
    table(py, batch)
}

/// An Arrow array as a `pyarrow.Array`.
pub fn array<'py>(py: Python<'py>, arr: arrow_array::ArrayRef) -> Result<Bound<'py, PyAny>> {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "customer_id",
        arr.data_type().clone(),
        false,
    )]));
    let batch = RecordBatch::try_new(schema, vec![arr]).expect("one column matches its schema");
    Ok(table(py, batch)?
        .call_method1("column", (0,))?
        .call_method0("combine_chunks")?)
}

/// Parses JSON text into Python objects with the standard library.
pub fn json_to_py<'py>(py: Python<'py>, text: &str) -> Result<Bound<'py, PyAny>> {
    Ok(py.import("json")?.getattr("loads")?.call1((text,))?)
}
