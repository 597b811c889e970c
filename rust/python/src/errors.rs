//! Maps engine errors to the Python exception classes in `segstream.errors`.

use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyRuntimeError};
use pyo3::prelude::*;
use segstream_engine::EngineError;

fn raise(py: Python<'_>, class: &str, args: impl IntoPyObjectTuple) -> PyErr {
    let built = py
        .import("segstream.errors")
        .and_then(|m| m.getattr(class))
        .and_then(|cls| args.call(&cls));
    match built {
        Ok(exc) => PyErr::from_value(exc),
        Err(e) => e,
    }
}

/// Argument tuples for exception constructors.
pub trait IntoPyObjectTuple {
    /// Calls `cls` with these arguments.
    fn call<'py>(self, cls: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>>;
}

impl IntoPyObjectTuple for (String,) {
    fn call<'py>(self, cls: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        cls.call1(self)
    }
}

impl IntoPyObjectTuple for (String, String) {
    fn call<'py>(self, cls: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        cls.call1(self)
    }
}

impl IntoPyObjectTuple for (String, Option<u64>, Option<u64>, Option<String>) {
    fn call<'py>(self, cls: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        cls.call1(self)
    }
}

/// Converts an engine error into the matching Python exception.
pub fn to_py(py: Python<'_>, e: EngineError) -> PyErr {
    match e {
        EngineError::Rule { message, location } => {
            let (line, column, segment) = match location {
                Some(l) => (Some(l.line), Some(l.column), Some(l.segment)),
                None => (None, None, None),
            };
            raise(py, "RuleError", (message, line, column, segment))
        }
        EngineError::Schema { column, message } => raise(
            py,
            "SchemaError",
            (format!("column `{column}`: {message}"), column),
        ),
        EngineError::Checkpoint(m) => raise(py, "CheckpointError", (m,)),
        EngineError::MissingHistory(m) => raise(py, "MissingHistoryError", (m,)),
        EngineError::Invalid(m) => raise(py, "SegstreamError", (m,)),
        EngineError::Io { path, source } => match source.kind() {
            std::io::ErrorKind::NotFound => {
                PyFileNotFoundError::new_err(format!("{path}: {source}"))
            }
            _ => PyOSError::new_err(format!("{path}: {source}")),
        },
    }
}

/// A Rust panic must never take the interpreter down: report it as an error.
pub fn panic_to_py(what: &str) -> PyErr {
    PyRuntimeError::new_err(format!(
        "internal error in segstream while {what}; please report it"
    ))
}
