//! One writer per run directory, and `--out` taking only a directory that is empty or ours.
//!
//! The writer holds an OS lock (`flock`) on `DIR/.lock` for the life of its process: the
//! kernel releases it when the process ends, however it ends, so a `SIGKILL` leaves no
//! stale lock. The file holds the writer's pid, for the error a second writer gets.
//! Readers (`sample`, `compare`) take no lock: a checkpoint is committed by one rename; a
//! reader that writes into the directory (`sample --temperatures`) takes it.

use crate::rundir::checkpoint::{
    self, CHECKPOINTS_DIR, METRICS_FILE, MODEL_FILE, OPTIMIZER_FILE, SAMPLES_FILE,
};
use crate::rundir::runconfig::{check_version, CONFIG_FILE};
use anyhow::{anyhow, bail, Context, Result};
use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

pub const LOCK_FILE: &str = ".lock";

/// Files other than `config.json` that a run directory of ours may hold: what `train`,
/// `sweep` (`train.log`) and `sample --temperatures` write there.
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
];

/// The exclusive right to write a run directory, until dropped or the process ends.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Locks `dir` (which must exist), or says which process holds it.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let holder = match pid.trim() {
                    "" => "another process".to_string(),
                    pid => format!("process {pid}"),
                };
                bail!(
                    "{} is being trained by {holder} (it holds {}): wait for it to end, or stop it, then try again",
                    dir.display(),
                    path.display()
                );
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "{}", std::process::id()))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(RunLock { _file: file })
    }
}

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
    checkpoint::clean(dir)?;
    Ok(lock)
}

/// What `train --out DIR` found in DIR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutDir {
    /// Missing, empty, or a run of ours that never saved a checkpoint: start afresh.
    Fresh,
    /// A run of ours with a checkpoint: `--resume` continues it.
    Trained,
}

/// Refuses a DIR holding anything microgpt did not write (naming one such file), or a run
/// of another format.
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
    let has_config = names.iter().any(|n| n == CONFIG_FILE);
    if has_config {
        check_ours(dir)?;
    }
    let foreign = names.iter().find(|n| {
        let allowed = crate::data::files::is_temporary(n)
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
    Ok(match checkpoint::latest_step(dir)? {
        Some(_) => OutDir::Trained,
        None => OutDir::Fresh,
    })
}

/// Errors unless `dir/config.json` is one of ours (any format: an older one is named).
fn check_ours(dir: &Path) -> Result<()> {
    let path = dir.join(CONFIG_FILE);
    let value: Option<serde_json::Value> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
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
        .map(|_| ())
        .with_context(|| format!("--out {}: choose another directory", dir.display()))
}
