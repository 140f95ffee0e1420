//! `train --resume DIR`: the run directory taken for writing, its checkpoint, settings and
//! metrics loaded and checked against each other and against the dataset, so that the run
//! continues exactly where its last checkpoint left it.

use super::train::Start;
use crate::cli::TrainArgs;
use anyhow::{bail, Context, Result};
use microgpt::rundir::checkpoint::{
    self, ModelCheckpoint, OptimizerState, RunConfig, CONFIG_FILE, METRICS_FILE, SAMPLES_FILE,
};
use microgpt::rundir::lock::RunLock;
use microgpt::rundir::metrics::{self, Row};
use microgpt::settings::validate::resumed;
use microgpt::settings::RunSettings;
use std::path::Path;

/// Where a resumed run continues from.
pub struct Resumed {
    pub model: ModelCheckpoint,
    pub optimizer: OptimizerState,
    pub rows: Vec<Row>,
}

/// Takes the run in `dir` for writing and loads it, with the settings `args` may change.
pub fn resume(dir: &Path, args: &TrainArgs) -> Result<(RunLock, RunSettings, Start, Resumed)> {
    if args.out.as_ref().is_some_and(|out| out != dir) {
        bail!(
            "--out cannot change when resuming: the run stays in {}",
            dir.display()
        );
    }
    // A clear error for what is no run directory, before anything is created in it.
    RunConfig::read(dir)?;
    let lock = RunLock::acquire(dir)?;
    checkpoint::clean(dir)?;
    let (run, model) = checkpoint::load_run(dir)?;
    let mut settings = resumed(&run.settings, args.given_settings(), &dir.join(CONFIG_FILE))?;
    let done = model.step;
    let steps = settings.schedule.steps;
    // A run stopped between its last checkpoint and its samples only samples.
    let unsampled = done == steps && !dir.join(SAMPLES_FILE).exists();
    if done >= steps && !unsampled {
        if args.given.contains("steps") {
            bail!(
                "--steps {steps} is not beyond the {done} steps the run in {} has done",
                dir.display()
            );
        }
        bail!(
            "the run in {} is finished ({done} of {steps} steps): pass --steps M to train it further",
            dir.display()
        );
    }
    let optimizer = checkpoint::load_optimizer(dir, &model)?;
    // The same documents as the run started with, wherever it was started from.
    settings.data.input = Some(run.dataset.clone());
    let start = Start::new(&settings)
        .with_context(|| format!("cannot rebuild the data of the run in {}", dir.display()))?;
    same_data(&start, &run, &model)?;
    let rows = metrics::read_span(&dir.join(METRICS_FILE), &model.manifest.metrics)?;
    start.run_config(&settings)?.write(dir)?;
    let resumed = Resumed {
        model,
        optimizer,
        rows,
    };
    Ok((lock, settings, start, resumed))
}

/// Errors unless the dataset is still the one the run was trained on.
fn same_data(start: &Start, run: &RunConfig, model: &ModelCheckpoint) -> Result<()> {
    if start.corpus.vocab != model.vocab {
        bail!(
            "the vocabulary of {} ({} characters) differs from the checkpoint's ({}): the dataset changed since the run started",
            run.dataset.display(),
            start.corpus.vocab.chars().len(),
            model.vocab.chars().len()
        );
    }
    let sizes = (start.corpus.num_docs(), start.corpus.split_sizes());
    // Formats before 3 recorded no split sizes.
    let then = (run.num_docs, run.split_sizes().unwrap_or(sizes.1));
    if sizes != then {
        bail!(
            "{} is not the text the run was trained on ({} documents and {} + {} characters now, {} and {} + {} then): the dataset changed since the run started",
            run.dataset.display(),
            sizes.0,
            sizes.1 .0,
            sizes.1 .1,
            then.0,
            then.1 .0,
            then.1 .1
        );
    }
    if run
        .dataset_sha256
        .as_ref()
        .is_some_and(|then| *then != start.dataset_sha256)
    {
        bail!(
            "{} is not the text the run was trained on (its SHA-256 differs): the dataset changed since the run started; put the original back to resume",
            run.dataset.display()
        );
    }
    Ok(())
}
