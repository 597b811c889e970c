//! `encode_change_messages`: a changes table as Kafka messages, built in Rust.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use pyo3_arrow::input::AnyRecordBatch;
use segstream_engine::output::messages::{encode_messages, key_partitions};

use crate::errors::Result;

/// `[(partition, [(key, value), ...]), ...]` for every change row of `table`:
/// JSON values keyed by customer id, grouped by the partition Kafka's default
/// partitioner gives the key among `partitions`, in table order within each.
#[pyfunction]
#[pyo3(signature = (table, partitions))]
pub fn encode_change_messages<'py>(
    py: Python<'py>,
    table: AnyRecordBatch,
    partitions: u32,
) -> Result<Bound<'py, PyList>> {
    let reader = table.into_reader()?;
    let encoded = py
        .detach(|| -> std::result::Result<Vec<_>, String> {
            let mut encoded = Vec::new();
            for batch in reader {
                let batch = batch.map_err(|e| format!("could not read the changes table: {e}"))?;
                encoded.extend(encode_messages(&batch, "customer_id", partitions)?);
            }
            Ok(encoded)
        })
        .map_err(PyValueError::new_err)?;
    let out = PyList::empty(py);
    for part in &encoded {
        let messages = PyList::empty(py);
        let (mut k0, mut v0) = (0usize, 0usize);
        for (k1, v1) in part.key_ends.iter().zip(&part.value_ends) {
            let (k1, v1) = (*k1 as usize, *v1 as usize);
            let key = PyBytes::new(py, &part.keys[k0..k1]);
            let value = PyBytes::new(py, &part.values[v0..v1]);
            messages.append(PyTuple::new(py, [key, value])?)?;
            (k0, v0) = (k1, v1);
        }
        out.append((part.partition, messages))?;
    }
    Ok(out)
}

/// An Arrow IPC stream message starts with the continuation marker; an IPC
/// file with its magic. JSON text starts with neither.
fn is_arrow_ipc(value: &[u8]) -> bool {
    value.starts_with(&[0xff, 0xff, 0xff, 0xff]) || value.starts_with(b"ARROW1")
}

/// Indices of the messages the worker cannot hand to `ingest_json` as they
/// are: no value, an empty one, one over `limit` bytes, or an Arrow IPC
/// payload. Usually none, so a batch of JSON takes one call and no Python loop.
#[pyfunction]
#[pyo3(signature = (values, limit))]
pub fn unusual_messages(values: &Bound<'_, PyList>, limit: usize) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for (i, value) in values.iter().enumerate() {
        match value.cast::<PyBytes>() {
            Ok(bytes) => {
                let b = bytes.as_bytes();
                if b.is_empty() || b.len() > limit || is_arrow_ipc(b) {
                    out.push(i);
                }
            }
            Err(_) => out.push(i),
        }
    }
    Ok(out)
}

/// The Kafka default partition of each row's `column` value, as a
/// `pyarrow.UInt32Array`: how a producer splits a table of events so each
/// customer's rows go where keyed messages would.
#[pyfunction]
#[pyo3(signature = (table, column, partitions))]
pub fn partitions_of<'py>(
    py: Python<'py>,
    table: AnyRecordBatch,
    column: &str,
    partitions: u32,
) -> Result<Bound<'py, PyAny>> {
    let reader = table.into_reader()?;
    let mut out: Vec<u32> = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| PyValueError::new_err(e.to_string()))?;
        let index = batch
            .schema()
            .index_of(column)
            .map_err(|_| PyValueError::new_err(format!("the table has no `{column}` column")))?;
        out.extend(
            key_partitions(batch.column(index).as_ref(), partitions)
                .map_err(PyValueError::new_err)?,
        );
    }
    let array: arrow_array::ArrayRef = std::sync::Arc::new(arrow_array::UInt32Array::from(out));
    crate::convert::array(py, array)
}
