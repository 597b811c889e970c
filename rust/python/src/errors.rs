//! Engine errors as the Python exception classes of `segstream.errors`.
//!
//! The classes are imported once (lazily, on the first raise) by
//! `import_exception!`. Every method of the binding returns `Result<T>`, whose
//! error holds either an engine error or a Python one, so `?` works on both;
//! the engine error becomes its Python class in one place, `From<Error> for
//! PyErr`.

use pyo3::import_exception;
use pyo3::prelude::*;
use segstream_engine::EngineError;

import_exception!(segstream.errors, RuleError);
import_exception!(segstream.errors, SchemaError);
import_exception!(segstream.errors, InvalidInputError);
import_exception!(segstream.errors, NotFoundError);
import_exception!(segstream.errors, MissingFileError);
import_exception!(segstream.errors, CheckpointError);
import_exception!(segstream.errors, MissingHistoryError);
import_exception!(segstream.errors, InternalError);

/// An error of a binding call: from the engine, or from Python itself (a
/// wrong argument type, a failed conversion).
#[derive(Debug)]
pub enum Error {
    /// The engine refused the call.
    Engine(EngineError),
    /// Python raised.
    Python(PyErr),
}

/// The result type of the binding's methods.
pub type Result<T> = std::result::Result<T, Error>;

impl From<EngineError> for Error {
    fn from(e: EngineError) -> Self {
        Error::Engine(e)
    }
}

impl From<PyErr> for Error {
    fn from(e: PyErr) -> Self {
        Error::Python(e)
    }
}

impl From<std::convert::Infallible> for Error {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        match e {
            Error::Python(e) => e,
            Error::Engine(e) => engine_to_py(e),
        }
    }
}

fn engine_to_py(e: EngineError) -> PyErr {
    match e {
        EngineError::Rule { message, location } => {
            let (line, column, segment) = match location {
                Some(l) => (Some(l.line), Some(l.column), Some(l.segment)),
                None => (None, None, None),
            };
            RuleError::new_err((message, line, column, segment))
        }
        EngineError::Schema { column, message } => {
            SchemaError::new_err((format!("column `{column}`: {message}"), column))
        }
        EngineError::Checkpoint(m) => CheckpointError::new_err(m),
        EngineError::MissingHistory(m) => MissingHistoryError::new_err(m),
        EngineError::Invalid(m) => InvalidInputError::new_err(m),
        EngineError::NotFound(m) => NotFoundError::new_err(m),
        EngineError::Io { path, source } => match source.kind() {
            std::io::ErrorKind::NotFound => MissingFileError::new_err(format!("{path}: {source}")),
            _ => pyo3::exceptions::PyOSError::new_err(format!("{path}: {source}")),
        },
    }
}

/// A Rust panic must never take the interpreter down: it becomes an
/// `InternalError` that says what was being done, what the panic said, and
/// that it is a bug to report.
pub fn internal(what: &str, payload: &(dyn std::any::Any + Send)) -> Error {
    let said = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message");
    Error::Python(InternalError::new_err(format!(
        "internal error in segstream while {what} ({said}); this is a bug, please report it \
         with this message"
    )))
}
