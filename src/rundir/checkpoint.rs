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
//! A save writes a hidden temporary directory, syncs it, and renames it to its step's name:
//! that one rename commits the checkpoint. Only then are older checkpoints removed, so the
//! latest complete checkpoint is always the highest-numbered one. The checkpoint of formats
//! 1 and 2 (`legacy.rs`) is read until the first save replaces it.

use crate::data::files::{self, sha256_hex, sync_dir, write_synced};
use crate::data::Vocab;
use crate::model::config::ModelConfig;
use crate::model::optim::Adam;
use crate::numerics::dtype::{Dtype, Float};
use crate::rundir::legacy;
pub use crate::rundir::metrics::MetricsSpan;
pub use crate::rundir::runconfig::{
    check_version, RunConfig, RunIdentity, CONFIG_FILE, FORMAT_VERSION,
};
use crate::rundir::tensorfile::{first_bad, serialize, TensorFile};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const FORMAT: &str = "microgpt";

pub const METRICS_FILE: &str = "metrics.csv";
pub const SAMPLES_FILE: &str = "samples.txt";
pub const CHECKPOINTS_DIR: &str = "checkpoints";
pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const MANIFEST_FILE: &str = "manifest.json";

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

/// A checkpoint's model, weights widened to `f64` (exact for both dtypes).
#[derive(Clone, Debug)]
pub struct ModelCheckpoint {
    pub config: ModelConfig,
    pub vocab: Vocab,
    /// The dtype the run trained in (a bf16 run's weights are stored as f32).
    pub dtype: Dtype,
    pub step: usize,
    pub params: Vec<f64>,
    pub manifest: Manifest,
    /// Its `checkpoints/step-N` directory.
    pub path: PathBuf,
}

/// A checkpoint's Adam state, moments widened to `f64`.
#[derive(Clone, Debug)]
pub struct OptimizerState {
    pub t: usize,
    pub m: Vec<f64>,
    pub v: Vec<f64>,
}

/// The state to save after `step` steps.
pub struct Snapshot<'a, F: Float> {
    pub config: &'a ModelConfig,
    pub vocab: &'a Vocab,
    pub step: usize,
    pub params: &'a [F],
    pub adam: &'a Adam<F>,
    pub metrics: MetricsSpan,
    pub run: RunIdentity,
}

/// Why a state was not saved: it is not one training can go on from.
#[derive(Debug, thiserror::Error)]
#[error("the {what} after step {step} are not finite ({first}): not saved")]
pub struct NotFinite {
    pub what: &'static str,
    pub step: usize,
    pub first: String,
}

fn step_name(step: usize) -> String {
    format!("step-{step:08}")
}

/// The checkpoints in `dir` by step, lowest first.
fn checkpoints(dir: &Path) -> Result<Vec<(usize, PathBuf)>> {
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
            found.push((step, root.join(name)));
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

/// Removes what a killed save left: temporary files and directories, and checkpoints older
/// than the latest. Only the directory's writer (holding its lock) may call it.
pub fn clean(dir: &Path) -> Result<()> {
    files::remove_temporaries(dir)?;
    files::remove_temporaries(&dir.join(CHECKPOINTS_DIR))?;
    let found = checkpoints(dir)?;
    for (_, old) in found.iter().rev().skip(1) {
        std::fs::remove_dir_all(old)
            .with_context(|| format!("cannot remove the old checkpoint {}", old.display()))?;
    }
    Ok(())
}

fn finite<F: Float>(what: &'static str, step: usize, cfg: &ModelConfig, xs: &[F]) -> Result<()> {
    let values: Vec<f64> = xs.iter().map(|x| x.as_f64()).collect();
    match first_bad(&cfg.layout(), &values, f64::is_finite) {
        Some(first) => Err(NotFinite { what, step, first }.into()),
        None => Ok(()),
    }
}

fn metadata<const N: usize>(entries: [(&str, String); N]) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = entries
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    m.insert("format".into(), FORMAT.into());
    m.insert("format_version".into(), FORMAT_VERSION.to_string());
    m
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

/// Commits `snap` as the checkpoint of its step, then removes the older ones. A state with
/// a non-finite weight or moment is refused with [`NotFinite`], the last checkpoint kept.
/// Saving the step of the latest checkpoint again does nothing.
pub fn save<F: Float>(dir: &Path, snap: &Snapshot<F>) -> Result<()> {
    let (cfg, step) = (snap.config, snap.step);
    check_finite(cfg, step, snap.params, snap.adam)?;
    if latest_step(dir)? == Some(step) {
        return Ok(());
    }
    let layout = cfg.layout();
    let optimizer = serialize(
        &layout,
        &[("m.", &snap.adam.m), ("v.", &snap.adam.v)],
        &metadata([
            ("step", step.to_string()),
            ("adam_t", snap.adam.t.to_string()),
        ]),
    )?;
    let model = serialize(
        &layout,
        &[("", snap.params)],
        &metadata([
            ("config", serde_json::to_string(cfg)?),
            ("vocab", snap.vocab.chars().iter().collect()),
            ("dtype", F::DTYPE.to_string()),
            ("step", step.to_string()),
        ]),
    )?;
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        step,
        files: [
            (MODEL_FILE.to_string(), sha256_hex(&model)),
            (OPTIMIZER_FILE.to_string(), sha256_hex(&optimizer)),
        ]
        .into(),
        metrics: snap.metrics.clone(),
        run: snap.run.clone(),
    };
    let root = dir.join(CHECKPOINTS_DIR);
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let name = step_name(step);
    let staging = root.join(files::temporary_name(&name));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir(&staging)
        .with_context(|| format!("cannot create {}", staging.display()))?;
    write_synced(&staging.join(MODEL_FILE), &model)?;
    write_synced(&staging.join(OPTIMIZER_FILE), &optimizer)?;
    let manifest = serde_json::to_string_pretty(&manifest)?;
    write_synced(&staging.join(MANIFEST_FILE), manifest.as_bytes())?;
    sync_dir(&staging)?;
    let target = root.join(&name);
    std::fs::rename(&staging, &target)
        .with_context(|| format!("cannot commit {}", target.display()))?;
    sync_dir(&root)?;
    for (old, path) in checkpoints(dir)? {
        if old < step {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    legacy::remove_checkpoint(dir)
}

/// A file of the checkpoint in `path`, checked against the manifest's checksum.
fn read_checked(path: &Path, name: &str, manifest: &Manifest) -> Result<Vec<u8>> {
    let file = path.join(name);
    let bytes = match std::fs::read(&file) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "the checkpoint is incomplete: {} is missing",
                file.display()
            )
        }
        r => r.with_context(|| format!("cannot read {}", file.display()))?,
    };
    let recorded = manifest
        .files
        .get(name)
        .with_context(|| format!("{} lists no {name}", path.join(MANIFEST_FILE).display()))?;
    if sha256_hex(&bytes) != *recorded {
        bail!(
            "{} does not match the checksum recorded when it was saved: it was changed or damaged",
            file.display()
        );
    }
    Ok(bytes)
}

fn read_manifest(path: &Path) -> Result<Manifest> {
    let file = path.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", file.display()))?;
    check_version(value.get("format_version").and_then(|v| v.as_u64()), &file)?;
    serde_json::from_value(value).with_context(|| format!("{} is malformed", file.display()))
}

fn parse_ours<'a>(bytes: &'a [u8], path: &Path) -> Result<TensorFile<'a>> {
    let file = TensorFile::parse(bytes, path)?;
    if file.meta_opt("format") != Some(FORMAT) {
        bail!("{} is not a microgpt checkpoint", path.display());
    }
    let version = file.meta_opt("format_version").and_then(|v| v.parse().ok());
    check_version(version, path)?;
    Ok(file)
}

/// The latest checkpoint's model, checked against its manifest: checksums, step, shape,
/// vocabulary, finite weights.
pub fn load_model(dir: &Path) -> Result<ModelCheckpoint> {
    // A reader takes no lock: a live run may replace the checkpoint it is reading, and then
    // the next one is complete.
    for _ in 0..10 {
        let Some((_, path)) = checkpoints(dir)?.pop() else {
            if legacy::has_checkpoint(dir) {
                return load_model_with(dir.to_path_buf(), legacy::manifest(dir)?);
            }
            if !dir.join(CONFIG_FILE).exists() {
                RunConfig::read(dir)?;
            }
            bail!(
                "{} holds no checkpoint yet: the run stopped before its first save; start it again with train --out {0}",
                dir.display()
            );
        };
        match load_model_at(path.clone()) {
            Err(_) if !path.exists() => continue,
            loaded => return loaded,
        }
    }
    bail!(
        "{} changed checkpoints too often to read one",
        dir.display()
    )
}

fn load_model_at(path: PathBuf) -> Result<ModelCheckpoint> {
    let manifest = read_manifest(&path)?;
    load_model_with(path, manifest)
}

/// The model of the checkpoint in `path`, checked against `manifest`.
fn load_model_with(path: PathBuf, manifest: Manifest) -> Result<ModelCheckpoint> {
    let file_path = path.join(MODEL_FILE);
    let bytes = read_checked(&path, MODEL_FILE, &manifest)?;
    let file = parse_ours(&bytes, &file_path)?;
    let config: ModelConfig = serde_json::from_str(file.meta("config")?)
        .with_context(|| format!("{}: metadata config is malformed", file_path.display()))?;
    config
        .validate()
        .with_context(|| format!("{}: metadata config", file_path.display()))?;
    // A config claiming more parameters than the file holds is corrupt: refused before its
    // layout is built, which for an absurd one would not fit in memory.
    let room = bytes.len() as u128 / 4;
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
    let params = file.read(&layout, dtype, &[""])?.remove(0);
    if let Some(bad) = first_bad(&layout, &params, f64::is_finite) {
        bail!("{} holds a non-finite weight ({bad})", file_path.display());
    }
    Ok(ModelCheckpoint {
        config,
        vocab: Vocab::from_chars(vocab.chars().collect()),
        dtype,
        step,
        params,
        manifest,
        path,
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
    let bytes = read_checked(&model.path, OPTIMIZER_FILE, &model.manifest)?;
    let file = parse_ours(&bytes, &path)?;
    let (step, t) = (file.meta_usize("step")?, file.meta_usize("adam_t")?);
    if step != model.step || t != step {
        bail!(
            "{} is at step {step} with adam_t {t}, its checkpoint at step {}",
            path.display(),
            model.step
        );
    }
    let layout = model.config.layout();
    let mut moments = file.read(&layout, model.dtype, &["m.", "v."])?;
    let v = moments.pop().expect("two groups");
    let m = moments.pop().expect("two groups");
    let bad = first_bad(&layout, &m, f64::is_finite)
        .map(|b| format!("first moment {b}"))
        .or_else(|| {
            first_bad(&layout, &v, |x| x.is_finite() && x >= 0.0)
                .map(|b| format!("second moment {b}"))
        });
    if let Some(bad) = bad {
        bail!("{} holds an impossible Adam state ({bad})", path.display());
    }
    Ok(OptimizerState { t, m, v })
}

/// A run's config and latest model checkpoint, checked against each other.
pub fn load_run(dir: &Path) -> Result<(RunConfig, ModelCheckpoint)> {
    let config = RunConfig::read(dir)?;
    let model = load_model(dir)?;
    config.check_identity(
        &model.manifest.run,
        &format!("the checkpoint at step {}", model.step),
    )?;
    if config.num_params != model.params.len() {
        bail!(
            "{}: num_params is {}, the model has {}",
            dir.join(CONFIG_FILE).display(),
            config.num_params,
            model.params.len()
        );
    }
    Ok((config, model))
}
