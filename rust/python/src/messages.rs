//! `encode_change_messages`: a changes table as Kafka messages, built in Rust.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use pyo3_arrow::input::AnyRecordBatch;
use segstream_engine::output::messages::encode_messages;

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
