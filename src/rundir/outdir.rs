//! `train --out DIR`: taking a directory for a new run only when nothing in it would be
//! lost — it must be new, empty, or a run of ours that never committed anything: no
//! checkpoint, no samples, and no more rows in `metrics.csv` than a run appends before its
//! first save (which a resume would drop).

use crate::data::files::{self, is_temporary, read_regular_text, OUTPUTS_RECORD};
use crate::data::MAX_INPUT_BYTES;
use crate::rundir::checkpoint::{
    self, CHECKPOINTS_DIR, METRICS_FILE, MODEL_FILE, OPTIMIZER_FILE, SAMPLES_FILE,
};
use crate::rundir::lock::{RunLock, LOCK_FILE};
use crate::rundir::runconfig::{check_version, CONFIG_FILE, MAX_JSON_BYTES};
use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;

/// Files other than `config.json` that a run directory of ours may hold: what `train`,
/// `sweep` (`train.log`), `sample --temperatures` and `inspect` write there.
const OURS: &[&str] = &[
    METRICS_FILE,
    // The checkpoint of formats 1 and 2.
    MODEL_FILE,
    OPTIMIZER_FILE,
    SAMPLES_FILE,
    CHECKPOINTS_DIR,
    LOCK_FILE,
    "train.log",
    "temperatures.md",
    "temperatures.json",
    "attention.png",
    "attention.svg",
    OUTPUTS_RECORD,
];

/// What a run leaves that no checkpoint holds: starting afresh would lose it.
const RESULTS: &[&str] = &[SAMPLES_FILE, "temperatures.md", "temperatures.json"];

/// Takes DIR for a new run (`train --out DIR`): refused if it holds anything but an unsaved
/// run of ours, or if another process writes it.
pub fn claim_new(dir: &Path) -> Result<RunLock> {
    let trained = || {
        anyhow!(
            "{} already holds a trained run: continue it with --resume {0}, or choose another --out",
            dir.display()
        )
    };
    // Foreign files are refused before anything is created in DIR; a trained run once DIR
    // is ours alone (a live run's writer is named first).
    inspect_out(dir)?;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create run directory {}", dir.display()))?;
    let lock = RunLock::acquire(dir)?;
    if inspect_out(dir)? == OutDir::Trained {
        return Err(trained());
    }
    Ok(lock)
}

/// What `train --out DIR` found in DIR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutDir {
    /// Missing, empty, or a run of ours that never trained a step: start afresh.
    Fresh,
    /// A run of ours with a checkpoint: `--resume` continues it.
    Trained,
}

/// Refuses a DIR holding anything microgpt did not write (naming one such file), a run of
/// another format, or the results of a run (steps in `metrics.csv`, samples) without the
/// checkpoint to continue it.
pub fn inspect_out(dir: &Path) -> Result<OutDir> {
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(OutDir::Fresh),
        r => r.with_context(|| format!("cannot read {}", dir.display()))?,
    };
    let mut names = Vec::new();
    for entry in entries {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    // Asked after the listing, not of it: a listing made while a live run saves may miss
    // the config.json renamed into place before the checkpoints it does list.
    let has_config = std::fs::symlink_metadata(dir.join(CONFIG_FILE)).is_ok();
    let save_every = match has_config {
        true => check_ours(dir)?,
        false => 0,
    };
    let foreign = names.iter().find(|n| {
        let allowed = is_temporary(n)
            || *n == LOCK_FILE
            || *n == "train.log"
            || (has_config && (*n == CONFIG_FILE || OURS.contains(&n.as_str())));
        !allowed
    });
    if let Some(name) = foreign {
        bail!(
            "--out {} holds files microgpt did not write ({name}, ...): choose an empty or new directory",
            dir.display()
        );
    }
    if checkpoint::latest_step(dir)?.is_some() {
        return Ok(OutDir::Trained);
    }
    let mut results: Vec<String> = RESULTS
        .iter()
        .filter(|n| names.iter().any(|m| m == *n))
        .map(|n| n.to_string())
        .collect();
    // Steps past the first save were committed by it: the checkpoint was removed since.
    let steps = metrics_steps(dir)?;
    if save_every > 0 && steps > save_every {
        results.insert(0, format!("{steps} steps in {METRICS_FILE}"));
    }
    if !results.is_empty() {
        bail!(
            "{} holds the results of a run ({}) but no checkpoint to continue it: choose another --out, or remove {0} to train it again",
            dir.display(),
            results.join(", ")
        );
    }
    Ok(OutDir::Fresh)
}

/// The complete rows of `dir/metrics.csv` (0 when it is missing).
fn metrics_steps(dir: &Path) -> Result<usize> {
    let path = dir.join(METRICS_FILE);
    if std::fs::symlink_metadata(&path).is_err() {
        return Ok(0);
    }
    let bytes = files::read_regular(&path, MAX_INPUT_BYTES)?;
    Ok(bytes
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        .saturating_sub(1))
}

/// Errors unless `dir/config.json` is one of ours (any format: an older one is named);
/// returns its `save_every`.
fn check_ours(dir: &Path) -> Result<usize> {
    let path = dir.join(CONFIG_FILE);
    let text = read_regular_text(&path, MAX_JSON_BYTES)
        .with_context(|| format!("--out {}: choose an empty or new directory", dir.display()))?;
    let value: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    let version = value.as_ref().and_then(|v| {
        v.get("settings")
            .or_else(|| v.get("args"))
            .and(v.get("format_version"))
            .and_then(|f| f.as_u64())
    });
    let Some(version) = version else {
        bail!(
            "--out {} holds a {CONFIG_FILE} microgpt did not write: choose an empty or new directory",
            dir.display()
        );
    };
    check_version(Some(version), &path)
        .with_context(|| format!("--out {}: choose another directory", dir.display()))?;
    let save_every = value.and_then(|v| v.pointer("/settings/system/save_every")?.as_u64());
    Ok(save_every.map_or(0, |n| n as usize))
}
