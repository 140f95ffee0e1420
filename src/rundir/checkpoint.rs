//! The run directory's checkpoints: one atomic unit each, written so that a kill at any
//! instant leaves the last complete one whole, and read back strictly.
//!
//! - `config.json`: [`RunConfig`] (see `runconfig.rs`).
//! - `metrics.csv`: see `metrics.rs`; `samples.txt`: the samples drawn after training.
//! - `.lock`: held by the one process that writes the directory (see `lock.rs`).
//! - `checkpoints/step-NNNNNNNN/`: the state after that many steps:
//!   - `model.safetensors`: one tensor per parameter matrix, named as the original's
//!     `state_dict` (`wte`, `layer0.attn_wq`, ...), shape `[out, in]`, row-major, in the
//!     run's dtype; `__metadata__` holds `format`, `format_version`, `config` (the model's
//!     shape as JSON), `vocab` (the characters in id order; BOS is the id after the last),
//!     `dtype` and `step`.
//!   - `optimizer.safetensors`: Adam's moments as `m.<name>` and `v.<name>`, same shapes
//!     and dtype; `__metadata__` holds `format`, `format_version`, `step` and `adam_t`.
//!   - `manifest.json`: [`Manifest`]: the step, each file's SHA-256, the span of
//!     `metrics.csv` the checkpoint covers and what the run was trained as.
//!
//! A save writes a hidden temporary directory (recorded in `.lock`, so that the next writer
//! removes it if this one is killed), syncs it, and renames it to its step's name: that one
//! rename commits the checkpoint. Only once it reads back whole are the older checkpoints
//! of the same run removed, so the latest complete checkpoint is always the highest-numbered
//! one. An entry the run did not write (another run's, an empty `step-99999999`, a link) is
//! never removed: when it is the highest, loading names it and stops. The checkpoint of
//! formats 1 and 2 (`legacy.rs`) is read until the first save replaces it.

use crate::data::files;
use crate::data::Vocab;
use crate::model::config::ModelConfig;
use crate::model::config::ParamLayout;
use crate::model::optim::Adam;
use crate::model::Weights;
use crate::numerics::dtype::{Dtype, Float};
use crate::rundir::legacy;
pub use crate::rundir::metrics::MetricsSpan;
pub use crate::rundir::runconfig::{
    check_version, RunConfig, RunIdentity, CONFIG_FILE, FORMAT_VERSION, MAX_JSON_BYTES,
};
pub use crate::rundir::save::{save, Snapshot};
use crate::rundir::tensorfile::{bad_at, first_bad, TensorReader};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub(crate) const FORMAT: &str = "microgpt";

pub const METRICS_FILE: &str = "metrics.csv";
pub const SAMPLES_FILE: &str = "samples.txt";
pub const CHECKPOINTS_DIR: &str = "checkpoints";
pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const MANIFEST_FILE: &str = "manifest.json";

/// The largest checkpoint file read: the optimizer file of the largest model training
/// allows (2^28 parameters, two f64 moments each), and room for its header.
pub(crate) const MAX_TENSOR_FILE_BYTES: u64 = (2 << 28) * 8 + (64 << 20);

/// `manifest.json`, the checkpoint's table of contents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format_version: u32,
    pub step: usize,
    /// SHA-256 of each file of the checkpoint.
    pub files: BTreeMap<String, String>,
    pub metrics: MetricsSpan,
    /// What the run was trained as: `config.json` must still say so.
    pub run: RunIdentity,
}

/// A checkpoint's model, checked whole (checksum, metadata, finite weights) and held open:
/// its weights are read only into the buffers that keep them ([`ModelCheckpoint::read_params`],
/// or as the [`Weights`] an engine is built from), never held here.
#[derive(Clone, Debug)]
pub struct ModelCheckpoint {
    pub config: ModelConfig,
    pub vocab: Vocab,
    /// The dtype the run trained in (a bf16 run's weights are stored as f32).
    pub dtype: Dtype,
    pub step: usize,
    pub manifest: Manifest,
    /// Its `checkpoints/step-N` directory.
    pub path: PathBuf,
    file: TensorReader,
}

impl ModelCheckpoint {
    /// The number of weights.
    pub fn num_params(&self) -> usize {
        self.config.layout().total
    }

    /// Reads the weights into `dest` (layout order, rounded to `F`: exact for the run's
    /// own dtype), checksum verified as they pass; on an error `dest` is not to be used.
    pub fn read_params<F: Float>(&self, dest: &mut [F]) -> Result<()> {
        let layout = self.config.layout();
        self.file.read_into(&layout, self.dtype, &[""], &mut [dest])
    }

    /// The weights widened to `f64` (exact for every dtype), in layout order.
    pub fn params(&self) -> Result<Vec<f64>> {
        let mut params = vec![0.0; self.num_params()];
        self.read_params(&mut params)?;
        Ok(params)
    }
}

impl Weights for &ModelCheckpoint {
    fn fill<F: Float>(self, dest: &mut [F]) -> Result<()> {
        self.read_params(dest)
    }
}

/// A checkpoint's Adam state, checked whole (checksum, step, finite moments, second moments
/// not negative) and held open: its moments are read into the optimizer's own buffers
/// ([`OptimizerState::read_into`]).
#[derive(Clone, Debug)]
pub struct OptimizerState {
    pub t: usize,
    layout: ParamLayout,
    dtype: Dtype,
    file: TensorReader,
}

impl OptimizerState {
    /// Reads the first and second moments into `m` and `v` (layout order, rounded to `F`),
    /// checksum verified as they pass; on an error they are not to be used.
    pub fn read_into<F: Float>(&self, m: &mut [F], v: &mut [F]) -> Result<()> {
        self.file
            .read_into(&self.layout, self.dtype, &["m.", "v."], &mut [m, v])
    }

    /// The moments widened to `f64`.
    pub fn moments(&self) -> Result<(Vec<f64>, Vec<f64>)> {
        let (mut m, mut v) = (vec![0.0; self.layout.total], vec![0.0; self.layout.total]);
        self.read_into(&mut m, &mut v)?;
        Ok((m, v))
    }
}

/// Why a state was not saved: it is not one training can go on from.
#[derive(Debug, thiserror::Error)]
#[error("the {what} after step {step} are not finite ({first}): not saved")]
pub struct NotFinite {
    pub what: &'static str,
    pub step: usize,
    pub first: String,
}

pub(crate) fn step_name(step: usize) -> String {
    format!("step-{step:08}")
}

/// The entries of `checkpoints/` named as a step's checkpoint (`step-NNNNNNNN`, nothing
/// else), by step, lowest first. Their kinds and contents are checked where they are used.
pub(crate) fn checkpoints(dir: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let root = dir.join(CHECKPOINTS_DIR);
    let entries = match std::fs::read_dir(&root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        r => r.with_context(|| format!("cannot list {}", root.display()))?,
    };
    let mut found = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        let step = name.to_str().and_then(|n| n.strip_prefix("step-"));
        if let Some(step) = step.and_then(|s| s.parse().ok()) {
            if name.to_str() == Some(step_name(step).as_str()) {
                found.push((step, root.join(name)));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The latest checkpoint's step, if the run has one (of any format).
pub fn latest_step(dir: &Path) -> Result<Option<usize>> {
    match checkpoints(dir)?.last() {
        Some((step, _)) => Ok(Some(*step)),
        None => legacy::step(dir),
    }
}

/// The manifest of the checkpoint in `path` (`checkpoints/step-N`), checked against its
/// name and kind: a real directory (not a link) whose manifest is of step `N`.
pub(crate) fn checked_manifest(path: &Path, step: usize) -> Result<Manifest> {
    let meta = std::fs::symlink_metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_dir() {
        bail!(
            "{} is a {}, not a checkpoint microgpt wrote: move it away to use the run",
            path.display(),
            files::kind(&meta)
        );
    }
    let manifest = read_manifest(path)
        .with_context(|| format!("{} is not a checkpoint microgpt wrote", path.display()))?;
    if manifest.step != step {
        bail!(
            "{} holds the checkpoint of step {}: it was renamed; move it away to use the run",
            path.display(),
            manifest.step
        );
    }
    Ok(manifest)
}

/// Whether the checkpoint in `path` was written by the run `run` at `step`: only such a
/// checkpoint is ever removed.
pub(crate) fn is_ours(path: &Path, step: usize, run: &RunIdentity) -> bool {
    checked_manifest(path, step).is_ok_and(|m| m.run == *run)
}

fn finite<F: Float>(what: &'static str, step: usize, cfg: &ModelConfig, xs: &[F]) -> Result<()> {
    match first_bad(&cfg.layout(), xs, f64::is_finite) {
        Some(first) => Err(NotFinite { what, step, first }.into()),
        None => Ok(()),
    }
}

/// Errors with [`NotFinite`] unless every weight and moment is finite: the state training
/// can go on from.
pub fn check_finite<F: Float>(
    cfg: &ModelConfig,
    step: usize,
    params: &[F],
    adam: &Adam<F>,
) -> Result<()> {
    finite("weights", step, cfg, params)?;
    finite("Adam moments", step, cfg, &adam.m)?;
    finite("Adam moments", step, cfg, &adam.v)
}

/// A file of the checkpoint in `path`, checked against the manifest's checksum, opened.
pub(crate) fn open_checked(path: &Path, name: &str, manifest: &Manifest) -> Result<TensorReader> {
    let file = path.join(name);
    if std::fs::symlink_metadata(&file).is_err() {
        bail!(
            "the checkpoint is incomplete: {} is missing",
            file.display()
        )
    }
    let recorded = manifest
        .files
        .get(name)
        .with_context(|| format!("{} lists no {name}", path.join(MANIFEST_FILE).display()))?;
    TensorReader::open(&file, MAX_TENSOR_FILE_BYTES, recorded)
}

fn read_manifest(path: &Path) -> Result<Manifest> {
    let file = path.join(MANIFEST_FILE);
    let text = files::read_regular_text(&file, MAX_JSON_BYTES)?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", file.display()))?;
    check_version(value.get("format_version").and_then(|v| v.as_u64()), &file)?;
    serde_json::from_value(value).with_context(|| format!("{} is malformed", file.display()))
}

fn open_ours(path: &Path, name: &str, manifest: &Manifest) -> Result<TensorReader> {
    let file = open_checked(path, name, manifest)?;
    if file.meta_opt("format") != Some(FORMAT) {
        bail!("{} is not a microgpt checkpoint", file.path.display());
    }
    let version = file.meta_opt("format_version").and_then(|v| v.parse().ok());
    check_version(version, &file.path)?;
    Ok(file)
}

/// The latest checkpoint's model, checked against its manifest: checksums, step, shape,
/// vocabulary, finite weights.
pub fn load_model(dir: &Path) -> Result<ModelCheckpoint> {
    // A reader takes no lock: a live run may replace the checkpoint it is reading, and then
    // the next one is complete.
    for _ in 0..10 {
        let Some((step, path)) = checkpoints(dir)?.pop() else {
            if legacy::has_checkpoint(dir) {
                return load_model_with(dir.to_path_buf(), legacy::manifest(dir)?);
            }
            if !dir.join(CONFIG_FILE).exists() {
                RunConfig::read(dir)?;
            }
            bail!(
                "{} holds no checkpoint yet: the run stopped before its first save, or its checkpoints were removed; train it again with --out",
                dir.display()
            );
        };
        match load_model_at(path.clone(), step) {
            Err(_) if std::fs::symlink_metadata(&path).is_err() => continue,
            loaded => return loaded,
        }
    }
    bail!(
        "{} changed checkpoints too often to read one",
        dir.display()
    )
}

fn load_model_at(path: PathBuf, step: usize) -> Result<ModelCheckpoint> {
    let manifest = checked_manifest(&path, step)?;
    load_model_with(path, manifest)
}

/// The model of the checkpoint in `path`, checked against `manifest`.
fn load_model_with(path: PathBuf, manifest: Manifest) -> Result<ModelCheckpoint> {
    let file_path = path.join(MODEL_FILE);
    let file = open_ours(&path, MODEL_FILE, &manifest)?;
    let config: ModelConfig = serde_json::from_str(file.meta("config")?)
        .with_context(|| format!("{}: metadata config is malformed", file_path.display()))?;
    config
        .validate()
        .with_context(|| format!("{}: metadata config", file_path.display()))?;
    // A config claiming more parameters than the file holds is corrupt: refused before its
    // layout is built, which for an absurd one would not fit in memory.
    let room = file.size() as u128 / 4;
    if config.param_count().is_none_or(|p| p > room) {
        bail!(
            "{}: metadata config has more parameters than the file holds",
            file_path.display()
        );
    }
    let vocab: String = file.meta("vocab")?.into();
    let stored = match file.meta("dtype")? {
        "f32" => Dtype::F32,
        "f64" => Dtype::F64,
        other => bail!("{}: unknown dtype {other:?}", file_path.display()),
    };
    let step = file.meta_usize("step")?;
    let run = &manifest.run;
    // The run's dtype: a bf16 run stores f32.
    let trained = run.settings.get("dtype").cloned();
    let trained = trained.and_then(|d| serde_json::from_value::<Dtype>(d).ok());
    let Some(dtype) = trained.filter(|d| d.storage() == stored) else {
        bail!(
            "{} disagrees with its {MANIFEST_FILE}: not a checkpoint of this run",
            file_path.display()
        );
    };
    if step != manifest.step || config != run.model || vocab != run.vocab {
        bail!(
            "{} disagrees with its {MANIFEST_FILE}: not a checkpoint of this run",
            file_path.display()
        );
    }
    let layout = config.layout();
    if let Some(bad) = first_failing(&file, &layout, dtype, &[""], |_, x| x.is_finite())? {
        bail!("{} holds a non-finite weight ({bad})", file_path.display());
    }
    Ok(ModelCheckpoint {
        config,
        vocab: Vocab::from_chars(vocab.chars().collect()),
        dtype,
        step,
        manifest,
        path,
        file,
    })
}

/// Adam's state of `model`, the checkpoint of `dir` it was loaded from: finite moments,
/// second moments not negative.
pub fn load_optimizer(dir: &Path, model: &ModelCheckpoint) -> Result<OptimizerState> {
    if !model.path.starts_with(dir) {
        bail!(
            "{} is not a checkpoint of {}",
            model.path.display(),
            dir.display()
        );
    }
    let path = model.path.join(OPTIMIZER_FILE);
    let file = open_ours(&model.path, OPTIMIZER_FILE, &model.manifest)?;
    let (step, t) = (file.meta_usize("step")?, file.meta_usize("adam_t")?);
    if step != model.step || t != step {
        bail!(
            "{} is at step {step} with adam_t {t}, its checkpoint at step {}",
            path.display(),
            model.step
        );
    }
    let layout = model.config.layout();
    let possible = |group, x: f64| x.is_finite() && (group == 0 || x >= 0.0);
    if let Some(bad) = first_failing(&file, &layout, model.dtype, &["m.", "v."], possible)? {
        bail!("{} holds an impossible Adam state ({bad})", path.display());
    }
    Ok(OptimizerState {
        t,
        layout,
        dtype: model.dtype,
        file,
    })
}

/// Streams the `groups` of `file` through `ok(group, value)`, keeping nothing: the first
/// value that fails and where (its moment too, for the optimizer's two groups), if any.
fn first_failing(
    file: &TensorReader,
    layout: &ParamLayout,
    dtype: Dtype,
    groups: &[&str],
    ok: impl Fn(usize, f64) -> bool,
) -> Result<Option<String>> {
    let mut bad = None;
    let read = file.stream(layout, dtype, groups, false, |group, at, values| {
        if let Some(i) = values.iter().position(|&x| !ok(group, x)) {
            let which = match (groups.len(), group) {
                (1, _) => "",
                (_, 0) => "first moment ",
                _ => "second moment ",
            };
            let at = bad_at(layout, at + i, values[i]).unwrap_or_default();
            bad = Some(format!("{which}{at}"));
            // Found: the rest need not be read.
            bail!("{at}");
        }
        Ok(())
    });
    match bad {
        Some(bad) => Ok(Some(bad)),
        None => read.map(|()| None),
    }
}

/// A run's config and latest model checkpoint, checked against each other.
pub fn load_run(dir: &Path) -> Result<(RunConfig, ModelCheckpoint)> {
    let config = RunConfig::read(dir)?;
    let model = load_model(dir)?;
    config
        .check_identity(
            &model.manifest.run,
            &format!("the checkpoint at step {}", model.step),
        )
        .with_context(|| {
            format!(
                "{} is another run's checkpoint, or {CONFIG_FILE} was edited",
                model.path.display()
            )
        })?;
    if config.num_params != model.num_params() {
        bail!(
            "{}: num_params is {}, the model has {}",
            dir.join(CONFIG_FILE).display(),
            config.num_params,
            model.num_params()
        );
    }
    Ok((config, model))
}
