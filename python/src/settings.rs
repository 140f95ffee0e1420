//! Python keyword arguments as run settings, in one place: `n_embd=64, activation="gelu"`
//! become the library's [`RunSettings`] by the command line's names (the flags with `_`),
//! defaults and rules. A setting that is not one is a `ValueError` ("unknown setting"), a
//! value of the wrong Python type a `TypeError`, a value the command line refuses a
//! `ValueError` with the command line's message.

use crate::args::type_name;
use crate::value_error;
use microgpt::settings::validate::{check, flag};
use microgpt::settings::{self, RunSettings, SettingsMap};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};
use serde_json::Value;

/// Every setting's default, by name: the command line's defaults, in the order of the
/// library's table of settings.
#[pyfunction]
pub fn defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let defaults = RunSettings::default().to_map();
    let out = PyDict::new(py);
    for key in settings::all().map(|s| &s.name) {
        out.set_item(key, pythonize::pythonize(py, &defaults[*key])?)?;
    }
    Ok(out)
}

/// Every setting of a run of the given ones (the others at their defaults), checked.
#[pyfunction]
#[pyo3(signature = (**settings))]
pub fn check_settings<'py>(
    py: Python<'py>,
    settings: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(pythonize::pythonize(py, &run_settings(settings)?.to_map())?)
}

/// The run settings of `kwargs`: the defaults with the given settings in their place,
/// checked one by one and together.
pub fn run_settings(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<RunSettings> {
    let mut map = RunSettings::default().to_map();
    map.extend(given(kwargs, None)?);
    let settings = RunSettings::from_map(&map).map_err(value_error)?;
    settings.validate().map_err(value_error)?;
    // The model's shape, which the library checks once the data gives the vocabulary's
    // size: refused here as a setting, before anything is read or created.
    let any_vocab = 2;
    let shape = settings.model.config(any_vocab).validate();
    shape.map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(settings)
}

/// The settings given in `kwargs` (only those in `allowed`, when given), each checked alone:
/// its name, its Python type, the command line's rule and the setting's type (an enum's
/// names, a whole number's sign).
pub fn given(
    kwargs: Option<&Bound<'_, PyDict>>,
    allowed: Option<&[&str]>,
) -> PyResult<SettingsMap> {
    let defaults = RunSettings::default().to_map();
    let mut map = SettingsMap::new();
    let Some(kwargs) = kwargs else {
        return Ok(map);
    };
    for (key, obj) in kwargs.iter() {
        let key: String = key.extract()?;
        let (Some(default), true) = (
            defaults.get(&key),
            allowed.is_none_or(|a| a.contains(&key.as_str())),
        ) else {
            let names: Vec<&str> = match allowed {
                Some(a) => a.to_vec(),
                None => settings::all().map(|s| s.name).collect(),
            };
            return Err(PyValueError::new_err(format!(
                "unknown setting {key:?}: the settings are {}",
                names.join(", ")
            )));
        };
        let value = json(&key, &obj, default)?;
        let refuse = |why: &str| PyValueError::new_err(format!("{} {value}: {why}", flag(&key)));
        // Parsed alone among the defaults: a type the setting cannot hold (a path for
        // grad_clip) is a TypeError; an enum's unknown name is refused after the rules.
        let mut alone = defaults.clone();
        alone.insert(key.clone(), value.clone());
        let parsed = RunSettings::from_map(&alone).map_err(|e| e.root_cause().to_string());
        if let Err(why) = &parsed {
            // Null is a float that is not finite: the rules refuse it as a value.
            if why.starts_with("invalid type") && !value.is_null() {
                return Err(PyTypeError::new_err(format!("{key}: {why}")));
            }
        }
        check(&key, &value).map_err(|why| refuse(&why))?;
        if default.is_u64() && value.as_i64().is_some_and(|n| n < 0) {
            return Err(refuse("must be 0 or more"));
        }
        parsed.map_err(|why| refuse(&why))?;
        map.insert(key, value);
    }
    Ok(map)
}

/// `obj` as `config.json` holds the setting `key` whose default is `default`: an int for a
/// whole number, an int or a float for a number (a float that is not finite becomes null,
/// which every numeric rule refuses), a str for a choice, a str or path for a file.
fn json(key: &str, obj: &Bound<'_, PyAny>, default: &Value) -> PyResult<Value> {
    let wrong = |wanted: &str| {
        PyTypeError::new_err(format!("{key} must be {wanted}, not {}", type_name(obj)))
    };
    let is_int = obj.is_instance_of::<PyInt>() && !obj.is_instance_of::<PyBool>();
    let is_float = obj.is_instance_of::<PyFloat>();
    let number = || -> PyResult<Value> {
        if is_int {
            let n: i128 = obj.extract()?;
            return u64::try_from(n)
                .map(Value::from)
                .or_else(|_| i64::try_from(n).map(Value::from))
                .map_err(|_| PyValueError::new_err(format!("{} {n}: is too large", flag(key))));
        }
        let x: f64 = obj.extract()?;
        Ok(serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number))
    };
    match default {
        Value::Number(n) if n.is_u64() => {
            if is_int {
                number()
            } else {
                Err(wrong("an int"))
            }
        }
        Value::Number(_) => {
            if is_int || is_float {
                number()
            } else {
                Err(wrong("a number"))
            }
        }
        Value::String(_) if obj.is_instance_of::<PyString>() => Ok(Value::String(obj.extract()?)),
        Value::String(_) => Err(wrong("a str")),
        // A setting that may be unset (`input`, `grad_clip`): its type is checked by
        // parsing, below.
        _ if obj.is_none() => Ok(Value::Null),
        _ if is_int || is_float => number(),
        _ => {
            let path: std::path::PathBuf = obj
                .extract()
                .map_err(|_| wrong("a str, a path, a number or None"))?;
            match path.to_str() {
                Some(p) => Ok(Value::String(p.to_string())),
                None => Err(PyValueError::new_err(format!(
                    "the path {} given to {key} is not valid UTF-8, which config.json cannot record: rename it",
                    path.display()
                ))),
            }
        }
    }
}
