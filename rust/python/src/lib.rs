//! PyO3 bindings for segstream-engine: the `segstream._segstream` extension.
//! Converts types and delegates; no segmentation logic lives here.

use pyo3::prelude::*;

/// The engine keeps millions of small per-customer vectors that grow and
/// shrink as windows slide; mimalloc serves them faster than the system
/// allocator and with less fragmentation (the process's peak memory is part of
/// what the bulk benchmark compares).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod convert;
mod engine;
mod errors;
mod messages;
mod times;

#[pymodule]
fn _segstream(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<engine::PyEngine>()?;
    m.add_function(wrap_pyfunction!(engine::describe_rules, m)?)?;
    m.add_function(wrap_pyfunction!(engine::_panic_for_tests, m)?)?;
    m.add_function(wrap_pyfunction!(messages::encode_change_messages, m)?)?;
    m.add_function(wrap_pyfunction!(messages::unusual_messages, m)?)?;
    m.add_function(wrap_pyfunction!(messages::partitions_of, m)?)?;
    m.add_function(wrap_pyfunction!(engine::check_rule_spec, m)?)?;
    m.add_function(wrap_pyfunction!(times::parse_times, m)?)?;
    m.add_function(wrap_pyfunction!(times::parse_time, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "EVENT_COLUMNS",
        segstream_engine::ingest::EVENT_COLUMNS.to_vec(),
    )?;
    Ok(())
}
