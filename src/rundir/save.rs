//! Committing a checkpoint (see `checkpoint.rs` for what it holds): staged in a recorded
//! temporary directory, committed by one rename where the writer's lock is, read back, and
//! only then the run's older checkpoints removed.

use crate::data::files::{self, sync_dir, write_synced, write_synced_with};
use crate::data::Vocab;
use crate::model::config::ModelConfig;
use crate::model::optim::Adam;
use crate::numerics::dtype::Float;
use crate::rundir::checkpoint::{
    check_finite, checked_manifest, checkpoints, is_ours, open_checked, step_name, Manifest,
    MetricsSpan, RunIdentity, CHECKPOINTS_DIR, FORMAT, FORMAT_VERSION, MANIFEST_FILE, MODEL_FILE,
    OPTIMIZER_FILE,
};
use crate::rundir::legacy;
use crate::rundir::lock::RunLock;
use crate::rundir::tensorfile;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;

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

/// Commits `snap` as the checkpoint of its step in the directory `lock` holds, then removes
/// the older checkpoints of this run (and nothing else). A state with a non-finite weight
/// or moment is refused with [`NotFinite`], the last checkpoint kept. Saving the step of a
/// checkpoint of this run that is there already does nothing.
pub fn save<F: Float>(lock: &mut RunLock, snap: &Snapshot<F>) -> Result<()> {
    let (cfg, step) = (snap.config, snap.step);
    check_finite(cfg, step, snap.params, snap.adam)?;
    let name = step_name(step);
    let target = lock.dir().join(CHECKPOINTS_DIR).join(&name);
    if std::fs::symlink_metadata(&target).is_ok() {
        if is_ours(&target, step, &snap.run) {
            // Committed before a kill that may have come before the older ones went.
            return remove_older(lock, step, &snap.run);
        }
        bail!(
            "{} is in the way of this run's checkpoint and is not one of its own: move it away, then resume",
            target.display()
        );
    }
    let committed = commit(lock, snap);
    lock.explain(committed)?;
    remove_older(lock, step, &snap.run)
}

/// Writes the checkpoint of `snap` into a recorded temporary directory, syncs it, and
/// renames it to the checkpoint of its step where the lock is now; reads it back.
fn commit<F: Float>(lock: &mut RunLock, snap: &Snapshot<F>) -> Result<()> {
    lock.verify()?;
    let root = lock.dir().join(CHECKPOINTS_DIR);
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let name = step_name(snap.step);
    let staging_name = files::temporary_name(&name);
    lock.record(Some(&format!("{CHECKPOINTS_DIR}/{staging_name}")))?;
    let staging = root.join(&staging_name);
    // One of this process's own, from a save the directory's move cut short.
    if std::fs::symlink_metadata(&staging).is_ok_and(|m| m.is_dir()) {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("cannot remove {}", staging.display()))?;
    }
    std::fs::create_dir(&staging)
        .with_context(|| format!("cannot create {}", staging.display()))?;
    stage(&staging, snap)?;
    sync_dir(&staging)?;
    // The one rename that commits it.
    lock.verify()?;
    let target = root.join(&name);
    std::fs::rename(&staging, &target)
        .with_context(|| format!("cannot commit {}", target.display()))?;
    sync_dir(&root)?;
    // Nothing is removed before what replaces it reads back as saved: each file hashed
    // again from the disk, its header parsed.
    let saved = checked_manifest(&target, snap.step)?;
    for file in [MODEL_FILE, OPTIMIZER_FILE] {
        open_checked(&target, file, &saved)?;
    }
    Ok(())
}

/// Writes the files of `snap` into `dir`: the model's and the optimizer's streamed from
/// their buffers (hashed as they are written, never whole in memory), then the manifest
/// with those hashes.
fn stage<F: Float>(dir: &Path, snap: &Snapshot<F>) -> Result<()> {
    let (cfg, step) = (snap.config, snap.step);
    let layout = cfg.layout();
    let model_meta = metadata([
        ("config", serde_json::to_string(cfg)?),
        ("vocab", snap.vocab.chars().iter().collect()),
        ("dtype", F::DTYPE.to_string()),
        ("step", step.to_string()),
    ]);
    let model = write_synced_with(&dir.join(MODEL_FILE), |f| {
        tensorfile::write(f, &layout, &[("", snap.params)], &model_meta)
    })?;
    let optimizer_meta = metadata([
        ("step", step.to_string()),
        ("adam_t", snap.adam.t.to_string()),
    ]);
    let moments = [("m.", &snap.adam.m[..]), ("v.", &snap.adam.v[..])];
    let optimizer = write_synced_with(&dir.join(OPTIMIZER_FILE), |f| {
        tensorfile::write(f, &layout, &moments, &optimizer_meta)
    })?;
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        step,
        files: [
            (MODEL_FILE.to_string(), model),
            (OPTIMIZER_FILE.to_string(), optimizer),
        ]
        .into(),
        metrics: snap.metrics.clone(),
        run: snap.run.clone(),
    };
    let text = serde_json::to_string_pretty(&manifest)?;
    write_synced(&dir.join(MANIFEST_FILE), text.as_bytes())
}

/// Removes the checkpoints of `run` older than `step` (and nothing else). Each is first
/// renamed to a recorded temporary, so that one half removed by a kill is not left as a
/// checkpoint no one can verify, but finished by the next writer.
fn remove_older(lock: &mut RunLock, step: usize, run: &RunIdentity) -> Result<()> {
    lock.verify()?;
    let root = lock.dir().join(CHECKPOINTS_DIR);
    for (old, path) in checkpoints(lock.dir())? {
        if old < step && is_ours(&path, old, run) {
            let doomed = files::temporary_name(&step_name(old));
            lock.record(Some(&format!("{CHECKPOINTS_DIR}/{doomed}")))?;
            std::fs::rename(&path, root.join(&doomed))
                .and_then(|()| std::fs::remove_dir_all(root.join(&doomed)))
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    // A run of format 1 or 2 kept its one checkpoint in the directory itself.
    legacy::remove_checkpoint(lock.dir())
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
