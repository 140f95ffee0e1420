//! A run directory as Python reads it: its settings and `config.json`, its metrics as
//! columns, its latest checkpoint's weights, samples and inspection. Arrays are numpy's,
//! each made from the vector the library filled (moved, not copied).

use crate::args::{choice, positive, size, whole};
use crate::{error, value_error};
use microgpt::data::Vocab;
use microgpt::model::engine::{Engine, EngineKind};
use microgpt::model::{with_engine, EngineTask};
use microgpt::numerics::dtype::Dtype;
use microgpt::rundir::checkpoint::{self, RunConfig, METRICS_FILE};
use microgpt::rundir::metrics as csv;
use microgpt::training::inspect::{names, run_report, text_tokens, Inspected};
use microgpt::training::memory::{self, Workload};
use microgpt::training::sample::Request;
use numpy::ndarray::{Array2, Array4};
use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;

/// The run's settings by name, and its whole `config.json`, both checked.
#[pyfunction]
pub fn read_config(py: Python<'_>, dir: PathBuf) -> PyResult<(Bound<'_, PyAny>, Bound<'_, PyAny>)> {
    let config = RunConfig::read(&dir).map_err(error)?;
    let settings = pythonize::pythonize(py, &config.settings.to_map())?;
    Ok((settings, pythonize::pythonize(py, &config)?))
}

/// The step of the run's latest checkpoint, if it has one.
#[pyfunction]
pub fn latest_step(dir: PathBuf) -> PyResult<Option<usize>> {
    checkpoint::latest_step(&dir).map_err(error)
}

/// `metrics.csv` as columns: `step`, `loss`, `lr`, `tokens`, `elapsed_s`, `val_loss` (NaN on
/// the steps without one).
#[pyfunction]
pub fn metrics(py: Python<'_>, dir: PathBuf) -> PyResult<Bound<'_, PyDict>> {
    let rows = csv::read(&dir.join(METRICS_FILE)).map_err(error)?;
    let column = |f: fn(&csv::Row) -> f64| -> Vec<f64> { rows.iter().map(f).collect() };
    let out = PyDict::new(py);
    let steps: Vec<i64> = rows.iter().map(|r| r.step as i64).collect();
    out.set_item("step", steps.into_pyarray(py))?;
    out.set_item("loss", column(|r| r.loss).into_pyarray(py))?;
    out.set_item("lr", column(|r| r.lr).into_pyarray(py))?;
    let tokens: Vec<i64> = rows.iter().map(|r| r.tokens as i64).collect();
    out.set_item("tokens", tokens.into_pyarray(py))?;
    out.set_item("elapsed_s", column(|r| r.elapsed_s).into_pyarray(py))?;
    out.set_item(
        "val_loss",
        column(|r| r.val_loss.unwrap_or(f64::NAN)).into_pyarray(py),
    )?;
    Ok(out)
}

/// Where a tensor lies in the flat weights: `(name, offset, rows, cols)`.
type Place = (String, usize, usize, usize);

/// The latest checkpoint's weights as one flat array in its dtype, and where each tensor
/// lies in it, in layout order.
#[pyfunction]
pub fn weights(py: Python<'_>, dir: PathBuf) -> PyResult<(Bound<'_, PyAny>, Vec<Place>)> {
    let model = py.detach(|| checkpoint::load_model(&dir)).map_err(error)?;
    let specs = model.config.layout().specs;
    let places = specs
        .into_iter()
        .map(|s| (s.name, s.offset, s.rows, s.cols))
        .collect();
    // Read straight into the array's own buffer, in the checkpoint's dtype (exact).
    let flat = match model.dtype.storage() {
        Dtype::F64 => {
            let params = py.detach(|| model.params()).map_err(error)?;
            PyArray1::from_vec(py, params).into_any()
        }
        // bf16 runs keep f32.
        Dtype::F32 | Dtype::Bf16 => {
            let read = || -> anyhow::Result<Vec<f32>> {
                let mut params = vec![0.0f32; model.num_params()];
                model.read_params(&mut params)?;
                Ok(params)
            };
            PyArray1::from_vec(py, py.detach(read).map_err(error)?).into_any()
        }
    };
    Ok((flat, places))
}

/// Samples as `microgpt sample` prints them: names (lines runs), or continuations after the
/// prompt (stream runs).
#[pyfunction]
#[pyo3(signature = (dir, n=None, temperature=None, prompt="", max_new_tokens=None, seed=None, engine=None))]
#[allow(clippy::too_many_arguments)]
pub fn sample<'py>(
    py: Python<'py>,
    dir: PathBuf,
    n: Option<&Bound<'py, PyAny>>,
    temperature: Option<&Bound<'py, PyAny>>,
    prompt: &str,
    max_new_tokens: Option<&Bound<'py, PyAny>>,
    seed: Option<&Bound<'py, PyAny>>,
    engine: Option<&str>,
) -> PyResult<Vec<String>> {
    let n = size(whole("n", n, false)?);
    let temperature = positive("temperature", temperature)?;
    let max_new_tokens = size(whole("max_new_tokens", max_new_tokens, true)?);
    let seed = whole("seed", seed, false)?;
    let engine = choice::<EngineKind>("engine", engine)?;
    let (run, model) = py.detach(|| checkpoint::load_run(&dir)).map_err(error)?;
    let request =
        Request::new(&dir, &run, &model, prompt, max_new_tokens, seed).map_err(value_error)?;
    let kind = engine.unwrap_or(run.settings.system.engine);
    memory::check(
        &model.config,
        &Workload::sample(kind, model.dtype, &model.config),
    )
    .map_err(error)?;
    let task = Draw {
        n: n.unwrap_or(request.default_count(&run)),
        temperature: temperature.unwrap_or(run.settings.sampling.temperature),
        request: &request,
        vocab: &model.vocab,
    };
    py.detach(|| with_engine(kind, model.dtype, &model.config, &model, task))
        .map_err(error)
}

struct Draw<'a> {
    request: &'a Request,
    vocab: &'a Vocab,
    n: usize,
    temperature: f64,
}

impl EngineTask for Draw<'_> {
    type Output = Vec<String>;
    fn run<E: Engine>(self, mut engine: E) -> Vec<String> {
        let req = self.request;
        let drawn = req.draw(
            &mut engine,
            &mut req.rng.clone(),
            self.n,
            self.temperature,
            &mut |_| {},
        );
        drawn
            .ids
            .iter()
            .map(|ids| req.text(self.vocab, ids))
            .collect()
    }
}

/// What the run makes of `text`: `inspect.json`'s content without its attention, the
/// attention as `[n_layer, n_head, T, T]` (query, key; zero above the diagonal) and the
/// next-token probabilities as `[T, vocab_size]`.
#[pyfunction]
#[pyo3(signature = (dir, text, engine=None))]
pub fn inspect<'py>(
    py: Python<'py>,
    dir: PathBuf,
    text: &str,
    engine: Option<&str>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let engine = choice::<EngineKind>("engine", engine)?;
    // The text's own faults are the caller's: a ValueError, before the model is loaded.
    let config = RunConfig::read(&dir).map_err(error)?;
    let (mode, block_size) = (config.settings.data.data, config.model.block_size);
    text_tokens(&config.vocab(), mode, text, block_size).map_err(value_error)?;
    let name = names(std::slice::from_ref(&dir)).remove(0);
    let run = py
        .detach(|| Inspected::load(&dir, name, text, engine, None))
        .map_err(error)?;
    let mut report = serde_json::to_value(run_report(&run, text)).map_err(|e| error(e.into()))?;
    if let Some(fields) = report.as_object_mut() {
        fields.remove("attention");
    }
    let v = &run.view;
    let (t, vocab) = (v.positions(), run.vocab.size());
    let (layers, heads) = (v.attention.len(), v.attention.first().map_or(0, Vec::len));
    let mut attention = Array4::<f64>::zeros((layers, heads, t, t));
    for (l, per_layer) in v.attention.iter().enumerate() {
        for (h, rows) in per_layer.iter().enumerate() {
            for (q, weights) in rows.iter().enumerate() {
                for (k, &w) in weights.iter().enumerate() {
                    attention[[l, h, q, k]] = w;
                }
            }
        }
    }
    let probs =
        Array2::from_shape_vec((t, vocab), v.probs.concat()).map_err(|e| error(e.into()))?;
    Ok((
        pythonize::pythonize(py, &report)?,
        attention.into_pyarray(py).into_any(),
        probs.into_pyarray(py).into_any(),
    ))
}
