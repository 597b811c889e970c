//! PyO3 bindings for segstream-engine: the `segstream._segstream` extension.
//! Converts types and delegates; no segmentation logic lives here.

use pyo3::prelude::*;

mod convert;
mod engine;
mod errors;

#[pymodule]
fn _segstream(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<engine::PyEngine>()?;
    m.add_function(wrap_pyfunction!(engine::describe_rules, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
