//! Run directories of older formats, read as this one, so that they outlive upgrades:
//!
//! - `config.json` of format 1 (the `train` arguments under `args`) and 2 (the settings by
//!   group) is upgraded in memory; a setting a file lacks takes the value that reproduces
//!   how the run ran before the setting existed (its `since` in the settings table), and
//!   the facts format 3 added (the dataset's hash, the split's characters) are unknown.
//! - Formats 1 and 2 kept one checkpoint, `model.safetensors` and `optimizer.safetensors`,
//!   beside `config.json`, without a manifest: it is read with one made from what the
//!   directory holds. A resume writes the current format; its first checkpoint replaces
//!   the old files.

use crate::data::files::{sha256_file, sha256_hex};
use crate::rundir::checkpoint::{
    Manifest, MAX_TENSOR_FILE_BYTES, METRICS_FILE, MODEL_FILE, OPTIMIZER_FILE,
};
use crate::rundir::metrics::MetricsSpan;
use crate::rundir::runconfig::{check_version, RunConfig};
use crate::rundir::tensorfile::TensorReader;
use crate::settings::{Since, GROUPS};
use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};
use std::path::Path;

/// The keys format 3 added beside the settings.
const SINCE_FORMAT_3: &[&str] = &["dataset_sha256", "num_train_chars", "num_val_chars"];

/// `config.json` of format `version` as the current format reads it; what is malformed
/// is left for the strict reading to name.
pub fn upgrade_config(value: &mut Value, version: u32) -> Result<()> {
    let Some(config) = value.as_object_mut() else {
        return Ok(());
    };
    if version == 1 {
        if let Some(args) = config.remove("args") {
            config.insert("settings".into(), settings_of_args(args)?);
        }
    }
    if version < 3 {
        for key in SINCE_FORMAT_3 {
            config.entry(*key).or_insert(Value::Null);
        }
    }
    let Some(Value::Object(groups)) = config.get_mut("settings") else {
        return Ok(());
    };
    for (group, settings) in GROUPS {
        let Some(Value::Object(values)) = groups.get_mut(*group) else {
            continue;
        };
        for s in *settings {
            if let Since::Format {
                version: since,
                absent_means,
            } = s.since
            {
                if version < since && !values.contains_key(s.name) {
                    let value = s.parse_text(absent_means).expect("a value of the setting");
                    values.insert(s.name.into(), value);
                }
            }
        }
    }
    Ok(())
}

/// Format 1's `args` (`data` and `model` nested, the rest flat, `out` among them) as the
/// settings by group.
fn settings_of_args(args: Value) -> Result<Value> {
    let Value::Object(args) = args else {
        bail!("args is not an object");
    };
    let mut flat = Map::new();
    for (key, value) in args {
        match (key.as_str(), value) {
            ("data" | "model", Value::Object(nested)) => flat.extend(nested),
            // Where the run was written: no setting.
            ("out", _) => {}
            (_, value) => {
                flat.insert(key, value);
            }
        }
    }
    let mut groups = Map::new();
    for (group, settings) in GROUPS {
        let values: Map<String, Value> = settings
            .iter()
            .filter_map(|s| Some((s.name.to_string(), flat.remove(s.name)?)))
            .collect();
        groups.insert(group.to_string(), values.into());
    }
    if let Some(unknown) = flat.keys().next() {
        bail!("unknown key args.{unknown}");
    }
    Ok(groups.into())
}

/// Whether `dir` holds a checkpoint of format 1 or 2.
pub fn has_checkpoint(dir: &Path) -> bool {
    dir.join(MODEL_FILE).is_file()
}

/// The step of `dir`'s checkpoint of format 1 or 2, if it has one.
pub fn step(dir: &Path) -> Result<Option<usize>> {
    if !has_checkpoint(dir) {
        return Ok(None);
    }
    let path = dir.join(MODEL_FILE);
    let sha256 = sha256_file(&path, MAX_TENSOR_FILE_BYTES)?;
    let file = TensorReader::open(&path, MAX_TENSOR_FILE_BYTES, &sha256)?;
    Ok(Some(file.meta_usize("step")?))
}

/// The manifest formats 1 and 2 did not write, made from what `dir` holds: the files'
/// checksums, the step in `model.safetensors`, the rows of `metrics.csv` up to it, and the
/// run as `config.json` describes it (nothing else recorded what it was trained as).
pub fn manifest(dir: &Path) -> Result<Manifest> {
    let mut files = std::collections::BTreeMap::new();
    for name in [MODEL_FILE, OPTIMIZER_FILE] {
        let path = dir.join(name);
        if std::fs::symlink_metadata(&path).is_err() {
            bail!(
                "the checkpoint is incomplete: {} is missing",
                path.display()
            )
        }
        files.insert(name.to_string(), sha256_file(&path, MAX_TENSOR_FILE_BYTES)?);
    }
    let path = dir.join(MODEL_FILE);
    let file = TensorReader::open(&path, MAX_TENSOR_FILE_BYTES, &files[MODEL_FILE])?;
    let version = file.meta_opt("format_version").and_then(|v| v.parse().ok());
    let step = file.meta_usize("step")?;
    Ok(Manifest {
        format_version: check_version(version, &path)?,
        step,
        files,
        metrics: metrics_span(&dir.join(METRICS_FILE), step)?,
        run: RunConfig::read(dir)?.identity(),
    })
}

/// The span of the first `rows` steps of `metrics.csv`: its header and `rows` lines (all
/// of it when shorter, which reading the span then refuses).
fn metrics_span(path: &Path, rows: usize) -> Result<MetricsSpan> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let end = bytes
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .nth(rows)
        .map_or(bytes.len(), |(i, _)| i + 1);
    Ok(MetricsSpan {
        rows,
        bytes: end as u64,
        sha256: sha256_hex(&bytes[..end]),
    })
}

/// Removes the checkpoint of format 1 or 2 once a newer one is committed.
pub fn remove_checkpoint(dir: &Path) -> Result<()> {
    for name in [MODEL_FILE, OPTIMIZER_FILE] {
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            r => r.with_context(|| format!("cannot remove {}", path.display()))?,
        }
    }
    Ok(())
}
