//! A training run from start to end, the command line's `train` without the command line:
//! [`train`] starts a run (in a run directory or none), [`resume`] continues one from its
//! last checkpoint; either steps, evaluates, saves, stops at a step boundary when asked and
//! draws the samples at the end. What happens along the way is reported to an [`Observer`]
//! (the command line's progress bar, a notebook's), which may also ask the run to stop.

use crate::data::Corpus;
use crate::model::engine::Engine;
use crate::model::{with_engine, EngineTask};
use crate::rundir::checkpoint::{RunIdentity, CONFIG_FILE};
use crate::rundir::lock::RunLock;
use crate::rundir::metrics::Row;
use crate::rundir::outdir::claim_new;
use crate::settings::{RunSettings, SettingsMap};
use crate::training::interrupt::Outcome;
use crate::training::session::Session;
use crate::training::start::{self, Resumed, Start};
use crate::training::step::Trainer;
use anyhow::{Context, Result};
use std::ops::ControlFlow;
use std::path::Path;

/// What a run learns before its first step.
pub struct RunInfo<'a> {
    pub settings: &'a RunSettings,
    pub corpus: &'a Corpus,
    pub num_params: usize,
    /// The steps done before (a resumed run), oldest first.
    pub history: &'a [Row],
}

/// Follows a run. Every method has a default that does nothing.
pub trait Observer {
    /// Once, before the first step.
    fn started(&mut self, _info: &RunInfo) {}
    /// After each step; `Break` stops the run at this step boundary, saved as after Ctrl-C.
    fn step(&mut self, _row: &Row) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
    /// Once, when the steps end (before the samples are drawn), however they end.
    fn finished(&mut self) {}
}

/// An observer that watches nothing.
impl Observer for () {}

/// How a run ended.
#[derive(Debug)]
pub struct Trained {
    /// `Interrupted`: Ctrl-C, a signal or the observer stopped it; saved when it has a run
    /// directory.
    pub outcome: Outcome,
    /// The steps done, and the run's total.
    pub step: usize,
    pub steps: usize,
    /// Drawn once the run reached its total: names (lines), or one continuation (stream).
    pub samples: Vec<String>,
}

impl Trained {
    /// Whether the run reached its total steps.
    pub fn finished(&self) -> bool {
        self.step >= self.steps
    }
}

/// Trains a new run of `settings`, in the run directory `out` (which must be empty or
/// absent) when given, up to step `stop_after` at most this time.
pub fn train(
    settings: &RunSettings,
    out: Option<&Path>,
    stop_after: Option<usize>,
    observer: &mut dyn Observer,
) -> Result<Trained> {
    settings.validate()?;
    let start = Start::new(settings)?;
    set_threads(settings.system.threads)?;
    // Held until the run returns: no other process writes the run directory meanwhile.
    let lock: Option<RunLock> = match out {
        Some(dir) => {
            let mut lock = claim_new(dir)?;
            lock.write_atomic(CONFIG_FILE, &start.run_config(settings)?.json()?)?;
            Some(lock)
        }
        None => None,
    };
    go(settings.clone(), start, None, lock, stop_after, observer)
}

/// Continues the run in `dir` from its last checkpoint, with the `given` settings that may
/// change on resume (`steps` to extend it, `threads`, ...), up to step `stop_after` at most.
pub fn resume(
    dir: &Path,
    given: &SettingsMap,
    stop_after: Option<usize>,
    observer: &mut dyn Observer,
) -> Result<Trained> {
    let (lock, settings, start, resumed) = start::resume(dir, given)?;
    set_threads(settings.system.threads)?;
    go(
        settings,
        start,
        Some(resumed),
        Some(lock),
        stop_after,
        observer,
    )
}

/// Starts the tensor engine's threads, or says why they would not start.
fn set_threads(threads: usize) -> Result<()> {
    crate::model::tensor::set_threads(threads)
        .with_context(|| format!("cannot start {threads} threads: choose fewer --threads"))
}

fn go(
    settings: RunSettings,
    mut start: Start,
    resumed: Option<Resumed>,
    out: Option<RunLock>,
    stop_after: Option<usize>,
    observer: &mut dyn Observer,
) -> Result<Trained> {
    let run = start.run_config(&settings)?.identity();
    // The weights go straight into the engine: the initial ones are freed once it holds
    // them (a resumed run's, drawn for the order of draws only, before it is built), a
    // checkpoint's are read into it.
    let init = std::mem::take(&mut start.init);
    let checkpoint = resumed.as_ref().map(|r| r.model.clone());
    let cfg = start.cfg.clone();
    let (engine, dtype) = (settings.system.engine, settings.system.dtype);
    let task = TrainTask {
        settings: &settings,
        out,
        stop_after,
        run,
        start,
        resumed,
        observer,
    };
    match checkpoint {
        Some(model) => {
            drop(init);
            with_engine(engine, dtype, &cfg, &model, task)?
        }
        None => with_engine(engine, dtype, &cfg, init, task)?,
    }
}

struct TrainTask<'a> {
    settings: &'a RunSettings,
    out: Option<RunLock>,
    stop_after: Option<usize>,
    /// What the run is, for its checkpoints.
    run: RunIdentity,
    start: Start,
    resumed: Option<Resumed>,
    observer: &'a mut dyn Observer,
}

impl EngineTask for TrainTask<'_> {
    type Output = Result<Trained>;
    fn run<E: Engine>(self, engine: E) -> Result<Trained> {
        let mut trainer = Trainer::new(engine, self.settings);
        let mut rows = Vec::new();
        if let Some(r) = self.resumed {
            trainer.step = r.model.step;
            trainer.adam.t = r.optimizer.t;
            // Into the trainer's own buffers.
            let adam = &mut trainer.adam;
            r.optimizer.read_into(&mut adam.m, &mut adam.v)?;
            rows = r.rows;
        }
        let Start {
            corpus, mut rng, ..
        } = self.start;
        self.observer.started(&RunInfo {
            settings: self.settings,
            corpus: &corpus,
            num_params: trainer.engine.layout().total,
            history: &rows,
        });
        let mut session = Session {
            settings: self.settings,
            out: self.out,
            run: self.run,
            corpus: &corpus,
            rows,
        };
        let trained = session.train(&mut trainer, self.stop_after, self.observer);
        self.observer.finished();
        let outcome = trained?;
        let steps = self.settings.schedule.steps;
        let samples = if trainer.step >= steps {
            session.sample(&mut trainer.engine, &mut rng)?
        } else {
            Vec::new()
        };
        Ok(Trained {
            outcome,
            step: trainer.step,
            steps,
            samples,
        })
    }
}
