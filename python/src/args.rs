//! Python arguments that are not run settings (`n`, `temperature`, `stop_after`, `engine`,
//! ...): a wrong type is a `TypeError`, a value the command line's flag would refuse a
//! `ValueError` with the library's rule's words.

use microgpt::settings::{self, Choice};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt};

/// The name of `obj`'s type, for messages.
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".into(), |n| n.to_string())
}

/// A whole number: at least 1 when `at_least_one`, else 0 or more; `None` stays `None`.
pub fn whole(
    name: &str,
    obj: Option<&Bound<'_, PyAny>>,
    at_least_one: bool,
) -> PyResult<Option<u64>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    if obj.is_instance_of::<PyBool>() || !obj.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "{name} must be an int, not {}",
            type_name(obj)
        )));
    }
    let refuse = |why: &str| PyValueError::new_err(format!("{name}={obj}: {why}"));
    let n: i128 = obj.extract().map_err(|_| refuse("is too large"))?;
    if n < 0 && !at_least_one {
        return Err(refuse("must be 0 or more"));
    }
    let as_json = serde_json::Value::from(n.clamp(i64::MIN as i128, i64::MAX as i128) as i64);
    if at_least_one {
        settings::at_least_one(&as_json).map_err(|why| refuse(&why))?;
    }
    u64::try_from(n)
        .map(Some)
        .map_err(|_| refuse("is too large"))
}

/// A number the setting `name` allows (its rule in the settings table: a temperature may
/// be 0, greedy), else a positive number; `None` stays `None`.
pub fn positive(name: &str, obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<f64>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    if obj.is_instance_of::<PyBool>()
        || !(obj.is_instance_of::<PyInt>() || obj.is_instance_of::<PyFloat>())
    {
        return Err(PyTypeError::new_err(format!(
            "{name} must be a number, not {}",
            type_name(obj)
        )));
    }
    let x: f64 = obj.extract()?;
    let as_json = serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, Into::into);
    settings::setting(name)
        .map_or_else(|| settings::positive(&as_json), |s| s.check(&as_json))
        .map_err(|why| PyValueError::new_err(format!("{name}={obj}: {why}")))?;
    Ok(Some(x))
}

/// One of `T`'s names (`"tensor"`, `"scalar"`); `None` stays `None`.
pub fn choice<T: Choice>(name: &str, given: Option<&str>) -> PyResult<Option<T>> {
    let Some(given) = given else {
        return Ok(None);
    };
    match T::from_name(given) {
        Some(c) => Ok(Some(c)),
        None => {
            let names: Vec<&str> = T::NAMES.iter().map(|&(_, n)| n).collect();
            Err(PyValueError::new_err(format!(
                "invalid value {given:?} for {name} [possible values: {}]",
                names.join(", ")
            )))
        }
    }
}

/// A number of items as Rust counts them.
pub fn size(n: Option<u64>) -> Option<usize> {
    n.map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}
