//! `microgpt._core`: the library's training, runs, sweeps and gradient check as Python
//! functions. The public API (`microgpt.train`, `microgpt.Run`, ...) is the Python package
//! around it (`microgpt/__init__.py`); this crate converts, releases the GIL while the
//! library works, and turns its errors into Python's.
//!
//! Errors: a wrong Python type is a `TypeError`, a bad setting or argument a `ValueError`
//! (with the command line's message), a missing file a `FileNotFoundError`, and anything
//! else the library refuses (a run directory another process trains, a corrupt checkpoint,
//! a diverged run) a `microgpt.Error`.

mod args;
mod read;
mod settings;
mod train;

use pyo3::create_exception;
use pyo3::exceptions::{PyFileNotFoundError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

create_exception!(
    microgpt,
    Error,
    PyRuntimeError,
    "What microgpt refuses or cannot do: a run directory another process is training, a corrupt checkpoint, a run whose loss diverged, ..."
);

/// The library's error as a Python exception: `FileNotFoundError` when a file it needed is
/// missing, `microgpt.Error` otherwise; the message is the command line's.
pub(crate) fn error(e: anyhow::Error) -> PyErr {
    let message = format!("{e:#}");
    let missing = e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
    });
    if missing {
        PyFileNotFoundError::new_err(message)
    } else {
        Error::new_err(message)
    }
}

/// The library's refusal of an argument, as a `ValueError`.
pub(crate) fn value_error(e: anyhow::Error) -> PyErr {
    PyValueError::new_err(format!("{e:#}"))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("Error", m.py().get_type::<Error>())?;
    m.add_function(wrap_pyfunction!(settings::defaults, m)?)?;
    m.add_function(wrap_pyfunction!(settings::check_settings, m)?)?;
    m.add_function(wrap_pyfunction!(train::train, m)?)?;
    m.add_function(wrap_pyfunction!(train::resume, m)?)?;
    m.add_function(wrap_pyfunction!(train::sweep_points, m)?)?;
    m.add_function(wrap_pyfunction!(train::sweep_action, m)?)?;
    m.add_function(wrap_pyfunction!(train::gradcheck, m)?)?;
    m.add_function(wrap_pyfunction!(read::read_config, m)?)?;
    m.add_function(wrap_pyfunction!(read::latest_step, m)?)?;
    m.add_function(wrap_pyfunction!(read::metrics, m)?)?;
    m.add_function(wrap_pyfunction!(read::weights, m)?)?;
    m.add_function(wrap_pyfunction!(read::sample, m)?)?;
    m.add_function(wrap_pyfunction!(read::inspect, m)?)?;
    Ok(())
}
