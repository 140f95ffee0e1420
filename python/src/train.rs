//! Training from Python: a run started or resumed by the library with the GIL released,
//! followed by an [`Observer`] that takes the GIL back every [`REPORT_EVERY`] to update the
//! caller's progress display and to let Python handle its signals: a `KeyboardInterrupt`
//! (Ctrl-C, a notebook's stop button) stops the run at that step boundary, saved, and is
//! raised again once the run has saved. Python owns SIGINT: the command line's handler is
//! never installed here. Also the gradient check and a sweep's plan.

use crate::args::{positive, size, whole};
use crate::settings::{given, run_settings};
use crate::{error, value_error};
use microgpt::rundir::metrics::{Ema, Row, SMOOTHING};
use microgpt::training::gradcheck as check;
use microgpt::training::run::{self, Observer, RunInfo, Trained};
use microgpt::training::sweep::{self, Action};
use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::exceptions::PyUserWarning;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often a run takes the GIL back: often enough for a stop to feel immediate and a bar
/// to move smoothly, seldom enough to cost nothing at a few microseconds a step.
const REPORT_EVERY: Duration = Duration::from_millis(100);

/// Trains a new run in `out` (empty or absent) with the given settings.
#[pyfunction]
#[pyo3(signature = (out, stop_after=None, progress=None, **settings))]
pub fn train<'py>(
    py: Python<'py>,
    out: PathBuf,
    stop_after: Option<&Bound<'py, PyAny>>,
    progress: Option<Py<PyAny>>,
    settings: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let settings = run_settings(settings)?;
    let stop_after = size(whole("stop_after", stop_after, true)?);
    let mut follow = Follow::new(progress);
    let result = py.detach(|| run::train(&settings, Some(&out), stop_after, &mut follow));
    ended(py, result, follow, &out)
}

/// Continues the run in `dir` from its last checkpoint; `settings` are those that may
/// change on resume (`steps` to extend it, `threads`, ...).
#[pyfunction]
#[pyo3(signature = (dir, stop_after=None, progress=None, **settings))]
pub fn resume<'py>(
    py: Python<'py>,
    dir: PathBuf,
    stop_after: Option<&Bound<'py, PyAny>>,
    progress: Option<Py<PyAny>>,
    settings: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let given = given(settings, None)?;
    let stop_after = size(whole("stop_after", stop_after, true)?);
    let mut follow = Follow::new(progress);
    let result = py.detach(|| run::resume(&dir, &given, stop_after, &mut follow));
    ended(py, result, follow, &dir)
}

/// How a run ended, as a dict, or the exception that stopped it (raised after it saved).
fn ended<'py>(
    py: Python<'py>,
    result: anyhow::Result<Trained>,
    follow: Follow,
    dir: &Path,
) -> PyResult<Bound<'py, PyDict>> {
    let trained = result.map_err(error)?;
    if let Some(e) = follow.error {
        if e.is_instance_of::<PyKeyboardInterrupt>(py) {
            let shown = dir.display().to_string();
            let quoted = shown.clone().into_pyobject(py)?.repr()?;
            return Err(PyKeyboardInterrupt::new_err(format!(
                "interrupted at step {} of {}; saved in {shown}: microgpt.Run({quoted}).resume() continues it",
                trained.step, trained.steps,
            )));
        }
        return Err(e);
    }
    let out = PyDict::new(py);
    out.set_item("step", trained.step)?;
    out.set_item("steps", trained.steps)?;
    out.set_item("samples", trained.samples)?;
    Ok(out)
}

/// Follows a run for Python: the smoothed loss, the progress object's `start`, `update`
/// and `close`, and Python's signals.
struct Follow {
    progress: Option<Py<PyAny>>,
    total: usize,
    ema: Ema,
    last_val: Option<f64>,
    reported: Instant,
    /// The latest step not yet shown, with its smoothed loss.
    unreported: Option<(Row, f64)>,
    /// What Python raised (a `KeyboardInterrupt`, an error of the progress object).
    error: Option<PyErr>,
}

impl Follow {
    fn new(progress: Option<Py<PyAny>>) -> Self {
        Follow {
            progress,
            total: 0,
            ema: Ema::new(SMOOTHING),
            last_val: None,
            reported: Instant::now(),
            unreported: None,
            error: None,
        }
    }

    /// Calls the progress object's `method`, if there is one, with a dict `fill` fills.
    fn call(
        &self,
        py: Python<'_>,
        method: &str,
        fill: impl FnOnce(&Bound<'_, PyDict>) -> PyResult<()>,
    ) -> PyResult<()> {
        let Some(progress) = &self.progress else {
            return Ok(());
        };
        let dict = PyDict::new(py);
        fill(&dict)?;
        progress.call_method1(py, method, (dict,))?;
        Ok(())
    }

    fn update(&self, py: Python<'_>, row: &Row, smoothed: f64) -> PyResult<()> {
        self.call(py, "update", |d| {
            d.set_item("step", row.step)?;
            d.set_item("steps", self.total)?;
            d.set_item("loss", row.loss)?;
            d.set_item("smoothed", smoothed)?;
            d.set_item("lr", row.lr)?;
            d.set_item("tokens", row.tokens)?;
            d.set_item("elapsed_s", row.elapsed_s)?;
            d.set_item("val_loss", row.val_loss)?;
            d.set_item("last_val", self.last_val)
        })
    }

    fn keep(&mut self, result: PyResult<()>) -> ControlFlow<()> {
        match result {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                self.error.get_or_insert(e);
                ControlFlow::Break(())
            }
        }
    }
}

impl Observer for Follow {
    fn started(&mut self, info: &RunInfo) {
        self.total = info.settings.schedule.steps;
        for r in info.history {
            self.ema.push(r.loss);
        }
        self.last_val = info.history.iter().rev().find_map(|r| r.val_loss);
        let last = info.history.last();
        let (done, tokens, elapsed_s) =
            last.map_or((0, 0, 0.0), |r| (r.step, r.tokens, r.elapsed_s));
        let result = Python::attach(|py| {
            self.call(py, "start", |d| {
                d.set_item("steps", self.total)?;
                d.set_item("done", done)?;
                d.set_item("tokens", tokens)?;
                d.set_item("elapsed_s", elapsed_s)?;
                d.set_item("num_params", info.num_params)?;
                d.set_item("vocab_size", info.corpus.vocab.size())?;
                d.set_item("num_docs", info.corpus.num_docs())?;
                let (train, val) = info.corpus.split_sizes();
                d.set_item("num_chars", train + val)
            })
        });
        let _ = self.keep(result);
    }

    fn step(&mut self, row: &Row) -> ControlFlow<()> {
        let smoothed = self.ema.push(row.loss);
        self.last_val = row.val_loss.or(self.last_val);
        if self.error.is_some() {
            return ControlFlow::Break(());
        }
        let due = self.reported.elapsed() >= REPORT_EVERY
            || row.val_loss.is_some()
            || row.step == self.total;
        if !due {
            self.unreported = Some((*row, smoothed));
            return ControlFlow::Continue(());
        }
        self.reported = Instant::now();
        self.unreported = None;
        let result = Python::attach(|py| {
            py.check_signals()?;
            self.update(py, row, smoothed)
        });
        self.keep(result)
    }

    fn finished(&mut self) {
        let result = Python::attach(|py| {
            if let Some((row, smoothed)) = self.unreported.take() {
                self.update(py, &row, smoothed)?;
            }
            self.call(py, "close", |_| Ok(()))
        });
        let _ = self.keep(result);
    }
}

/// One run of a sweep: its name, its directory and its `(setting, value)` of the grid.
type Point = (String, PathBuf, Vec<(String, String)>);

/// The run directories of a grid of `(setting, values as text)` in `out`, one per
/// combination, the last setting varying fastest.
#[pyfunction]
pub fn sweep_points(grid: Vec<(String, Vec<String>)>, out: PathBuf) -> PyResult<Vec<Point>> {
    let grid = sweep::checked(grid).map_err(value_error)?;
    let points = sweep::points(&grid, &out).map_err(value_error)?;
    Ok(points
        .into_iter()
        .map(|p| (p.name, p.dir, p.values))
        .collect())
}

/// What the run of these settings in `dir` needs: `("train", None)`, `("resume", steps)` or
/// `("done", None)`; `extend` trains a finished run of fewer steps on.
#[pyfunction]
#[pyo3(signature = (dir, extend, **settings))]
pub fn sweep_action(
    dir: PathBuf,
    extend: bool,
    settings: Option<&Bound<'_, PyDict>>,
) -> PyResult<(&'static str, Option<usize>)> {
    let settings = run_settings(settings)?;
    Ok(
        match sweep::action(&dir, &settings, extend).map_err(error)? {
            Action::Train => ("train", None),
            Action::Resume(steps) => ("resume", Some(steps)),
            Action::Done => ("done", None),
        },
    )
}

/// The settings a gradient check takes: the data's and the model's, the batch and dtype.
const GRADCHECK_SETTINGS: &[&str] = &[
    "input",
    "data",
    "seed",
    "n_embd",
    "n_head",
    "n_layer",
    "block_size",
    "activation",
    "init_std",
    "batch_size",
    "dtype",
];

/// The tensor engine's loss and gradients against the scalar reference's: one dict per
/// tensor (the loss first) with its `name`, `shape`, `max_abs`, `max_rel` and `ok`.
#[pyfunction]
#[pyo3(signature = (tolerance=None, batches=None, **settings))]
pub fn gradcheck<'py>(
    py: Python<'py>,
    tolerance: Option<&Bound<'py, PyAny>>,
    batches: Option<&Bound<'py, PyAny>>,
    settings: Option<&Bound<'py, PyDict>>,
) -> PyResult<Vec<Bound<'py, PyDict>>> {
    given(settings, Some(GRADCHECK_SETTINGS))?;
    let s = run_settings(settings)?;
    let dtype = s.system.dtype;
    let tolerance =
        positive("tolerance", tolerance)?.unwrap_or_else(|| check::default_tolerance(dtype));
    let batches = size(whole("batches", batches, true)?).unwrap_or(check::BATCHES);
    let batch_size = s.schedule.batch_size;
    let (deviations, crop_warning) = py
        .detach(|| check::check(&s.data, &s.model, dtype, batch_size, batches, &mut |_| {}))
        .map_err(error)?;
    if let Some(warning) = crop_warning {
        let message = std::ffi::CString::new(warning).unwrap_or_default();
        PyErr::warn(py, &py.get_type::<PyUserWarning>(), &message, 1)?;
    }
    deviations
        .iter()
        .map(|d| {
            let row = PyDict::new(py);
            row.set_item("name", &d.name)?;
            row.set_item("shape", d.shape)?;
            row.set_item("max_abs", d.max_abs)?;
            row.set_item("max_rel", d.max_rel)?;
            row.set_item("ok", check::verdict(d.max_rel, tolerance) == "OK")?;
            Ok(row)
        })
        .collect()
}
