//! The `train` command: data, model, loop, samples, and the run directory — started fresh
//! or resumed from a checkpoint so that the result equals an uninterrupted run.

use crate::cli::TrainArgs;
use anyhow::{bail, Context, Result};
use microgpt::checkpoint::{
    self, ModelCheckpoint, NotFinite, OptimizerState, RunConfig, RunIdentity, Snapshot,
    CONFIG_FILE, METRICS_FILE, SAMPLES_FILE,
};
use microgpt::config::ModelConfig;
use microgpt::data::{BatchSource, Corpus};
use microgpt::dispatch::{with_engine, EngineTask};
use microgpt::engine::Engine;
use microgpt::files::{sha256_hex, write_atomic};
use microgpt::interrupt::{self, Outcome};
use microgpt::lock::{claim_new, RunLock};
use microgpt::metrics::{self, MetricsFile, Row};
use microgpt::progress::Progress;
use microgpt::rng::Rng;
use microgpt::sample;
use microgpt::settings::RunSettings;
use microgpt::train::{cast_params, evaluate, Trainer};
use microgpt::validate::resumed;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Parameters a model may have: four copies (weights, gradients, Adam's two moments) of
/// 2^28 f64s are 8 GiB, beyond which a typo is more likely than intent.
const MAX_PARAMS: usize = 1 << 28;

/// How this invocation runs, beyond the run's stored settings.
struct Invocation {
    /// The run directory, if any.
    out: Option<PathBuf>,
    stop_after: Option<usize>,
    quiet: bool,
}

/// What a run starts from, in the original's order of draws: shuffle, then init.
struct Start {
    corpus: Corpus,
    /// SHA-256 of the dataset file.
    dataset_sha256: String,
    cfg: ModelConfig,
    init: Vec<f64>,
    /// The stream after both, for sampling at the end.
    rng: Rng,
}

impl Start {
    fn new(settings: &RunSettings) -> Result<Self> {
        let mut rng = Rng::new(settings.data.seed);
        let corpus = Corpus::load(&settings.data, &mut rng)?;
        let bytes = std::fs::read(&corpus.path)
            .with_context(|| format!("cannot read {}", corpus.path.display()))?;
        let cfg = settings.model.config(corpus.vocab.size());
        cfg.validate()?;
        let total = cfg.layout().total;
        if total > MAX_PARAMS {
            bail!("the model would have {total} parameters; microgpt trains at most {MAX_PARAMS}: choose a smaller --n-embd, --n-layer or --block-size");
        }
        let init = cfg.layout().init(&mut rng, settings.model.init_std);
        Ok(Start {
            dataset_sha256: sha256_hex(&bytes),
            corpus,
            cfg,
            init,
            rng,
        })
    }

    fn run_config(&self, settings: &RunSettings) -> Result<RunConfig> {
        let c = &self.corpus;
        let dataset = std::fs::canonicalize(&c.path)
            .with_context(|| format!("cannot resolve {}", c.path.display()))?;
        Ok(RunConfig {
            format_version: checkpoint::FORMAT_VERSION,
            settings: settings.clone(),
            model: self.cfg.clone(),
            dataset,
            dataset_sha256: self.dataset_sha256.clone(),
            vocab: c.vocab.chars().iter().collect(),
            num_docs: c.docs.len(),
            num_train_docs: c.n_train,
            num_val_docs: c.docs.len() - c.n_train,
            num_params: self.cfg.layout().total,
        })
    }
}

/// Where a resumed run continues from.
struct Resumed {
    model: ModelCheckpoint,
    optimizer: OptimizerState,
    rows: Vec<Row>,
}

pub fn run(args: &TrainArgs) -> Result<Outcome> {
    // Held until the process ends: no other process writes the run directory meanwhile.
    let _lock: Option<RunLock>;
    let (settings, start, resumed) = match &args.resume {
        None => {
            let settings = args.settings();
            settings.validate()?;
            let start = Start::new(&settings)?;
            _lock = match &args.out {
                Some(dir) => {
                    let lock = claim_new(dir)?;
                    start.run_config(&settings)?.write(dir)?;
                    Some(lock)
                }
                None => None,
            };
            (settings, start, None)
        }
        Some(dir) => {
            let (lock, settings, start, resumed) = resume(dir, args)?;
            _lock = Some(lock);
            (settings, start, Some(resumed))
        }
    };
    let invocation = Invocation {
        out: args.resume.clone().or_else(|| args.out.clone()),
        stop_after: args.stop_after,
        quiet: args.quiet,
    };
    let run = start.run_config(&settings)?.identity();
    let params = resumed
        .as_ref()
        .map_or(&start.init, |r| &r.model.params)
        .clone();
    let cfg = start.cfg.clone();
    microgpt::tensor::set_threads(settings.system.threads);
    let (engine, dtype) = (settings.system.engine, settings.system.dtype);
    let task = TrainTask {
        settings: &settings,
        invocation: &invocation,
        run,
        start,
        resumed,
    };
    with_engine(engine, dtype, &cfg, &params, task)?
}

fn resume(dir: &Path, args: &TrainArgs) -> Result<(RunLock, RunSettings, Start, Resumed)> {
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
    if start.corpus.docs.len() != run.num_docs {
        bail!(
            "{} has {} documents, the run was trained on {}: the dataset changed since the run started",
            run.dataset.display(),
            start.corpus.docs.len(),
            run.num_docs
        );
    }
    if start.dataset_sha256 != run.dataset_sha256 {
        bail!(
            "{} is not the text the run was trained on (its SHA-256 differs): the dataset changed since the run started; put the original back to resume",
            run.dataset.display()
        );
    }
    Ok(())
}

struct TrainTask<'a> {
    settings: &'a RunSettings,
    invocation: &'a Invocation,
    /// What the run is, for its checkpoints.
    run: RunIdentity,
    start: Start,
    resumed: Option<Resumed>,
}

impl EngineTask for TrainTask<'_> {
    type Output = Result<Outcome>;
    fn run<E: Engine>(self, engine: E) -> Result<Outcome> {
        let TrainTask {
            settings,
            invocation,
            run,
            start,
            resumed,
        } = self;
        let mut trainer = Trainer::new(engine, settings);
        let mut rows = Vec::new();
        if let Some(r) = resumed {
            trainer.step = r.model.step;
            trainer.adam.t = r.optimizer.t;
            trainer.adam.m = cast_params(&r.optimizer.m);
            trainer.adam.v = cast_params(&r.optimizer.v);
            rows = r.rows;
        }
        let Start {
            corpus, mut rng, ..
        } = start;
        // Before the first line, so a caller that saw it can interrupt a step boundary.
        interrupt::install()?;
        if !invocation.quiet {
            println!("num docs: {}", corpus.docs.len());
            println!("vocab size: {}", corpus.vocab.size());
            println!("num params: {}", trainer.engine.layout().total);
        }
        let mut session = Session {
            settings,
            invocation,
            run,
            corpus: &corpus,
            rows,
        };
        let outcome = session.train(&mut trainer)?;
        let steps = settings.schedule.steps;
        if trainer.step < steps {
            let at = format!("step {} of {steps}", trainer.step);
            let what = match outcome {
                Outcome::Interrupted => "interrupted",
                Outcome::Done => "stopped",
            };
            match &invocation.out {
                Some(dir) => eprintln!(
                    "{what} at {at}; saved. Continue with: microgpt train --resume {}",
                    dir.display()
                ),
                None => eprintln!("{what} at {at}; nothing saved (no --out)"),
            }
            return Ok(outcome);
        }
        session.sample(&mut trainer.engine, &mut rng)?;
        Ok(Outcome::Done)
    }
}

/// One invocation's training: the loop, its metrics and its saves.
struct Session<'a> {
    settings: &'a RunSettings,
    invocation: &'a Invocation,
    run: RunIdentity,
    corpus: &'a Corpus,
    /// Every step of the run so far.
    rows: Vec<Row>,
}

impl Session<'_> {
    /// Steps until the run's end, `--stop-after` or Ctrl-C, saving on the way and at the
    /// end (with `--out`).
    fn train<E: Engine>(&mut self, trainer: &mut Trainer<E>) -> Result<Outcome> {
        let s = self.settings;
        let steps = s.schedule.steps;
        let source = self.corpus.batches(s.schedule.batch_size);
        let val = self.corpus.val_sequences();
        let stop_at = self.invocation.stop_after.unwrap_or(steps).min(steps);
        let (mut tokens, elapsed_before) = self
            .rows
            .last()
            .map_or((0, 0.0), |r| (r.tokens, r.elapsed_s));
        let mut metrics_file = match &self.invocation.out {
            Some(dir) => Some(MetricsFile::create(&dir.join(METRICS_FILE), &self.rows)?),
            None => None,
        };
        let mut progress = Progress::new(self.invocation.quiet, steps, &self.rows);
        let started = Instant::now();
        let mut outcome = Outcome::Done;
        while trainer.step < stop_at {
            if interrupt::requested() {
                outcome = Outcome::Interrupted;
                break;
            }
            let stats = match trainer.step(&source.batch(trainer.step)) {
                Ok(stats) => stats,
                Err(diverged) => {
                    progress.finish();
                    return Err(self.stop(trainer, &mut metrics_file, diverged));
                }
            };
            tokens += stats.tokens as u64;
            let eval_every = s.evaluation.eval_every;
            let evaluate_now = !val.is_empty()
                && (stats.step == steps
                    || (eval_every > 0 && stats.step.is_multiple_of(eval_every)));
            let val_loss =
                evaluate_now.then(|| evaluate(&mut trainer.engine, &val, s.schedule.batch_size));
            let row = Row {
                step: stats.step,
                loss: stats.loss,
                lr: stats.lr,
                tokens,
                elapsed_s: elapsed_before + started.elapsed().as_secs_f64(),
                val_loss,
            };
            self.rows.push(row);
            progress.step(&row);
            let save_every = s.system.save_every;
            if save_every > 0 && stats.step.is_multiple_of(save_every) && stats.step < stop_at {
                if let Err(e) = self.save(trainer, &mut metrics_file) {
                    progress.finish();
                    return Err(self.stop(trainer, &mut metrics_file, e));
                }
            }
        }
        progress.finish();
        if let Err(e) = self.save(trainer, &mut metrics_file) {
            return Err(self.stop(trainer, &mut metrics_file, e));
        }
        Ok(outcome)
    }

    /// Appends the new metrics rows, then commits the checkpoint that covers them; a state
    /// that is not finite is refused before either.
    fn save<E: Engine>(
        &self,
        trainer: &Trainer<E>,
        metrics_file: &mut Option<MetricsFile>,
    ) -> Result<()> {
        let (Some(dir), Some(metrics_file)) = (&self.invocation.out, metrics_file) else {
            return Ok(());
        };
        let (config, params) = (trainer.engine.config(), trainer.engine.params());
        checkpoint::check_finite(config, trainer.step, params, &trainer.adam)?;
        metrics_file.append(&self.rows)?;
        let snapshot = Snapshot {
            config,
            vocab: &self.corpus.vocab,
            step: trainer.step,
            params,
            adam: &trainer.adam,
            metrics: metrics_file.span(),
            run: self.run.clone(),
        };
        checkpoint::save(dir, &snapshot)
    }

    /// `why` training cannot go on, after saving the state if it is still finite, with
    /// what the run directory keeps.
    fn stop<E: Engine>(
        &self,
        trainer: &Trainer<E>,
        metrics_file: &mut Option<MetricsFile>,
        why: anyhow::Error,
    ) -> anyhow::Error {
        let Some(dir) = &self.invocation.out else {
            return why;
        };
        let saved = match self.save(trainer, metrics_file) {
            Ok(()) => Ok(trainer.step),
            Err(e) if e.is::<NotFinite>() => checkpoint::latest_step(dir).map(|s| s.unwrap_or(0)),
            Err(e) => return e.context(format!("{why:#}")),
        };
        let kept = match saved {
            Ok(0) => "nothing is saved".to_string(),
            Ok(step) if step == trainer.step => {
                format!("the {step} steps before are saved in {}", dir.display())
            }
            Ok(step) => format!(
                "the weights were no longer finite, so the last good checkpoint (the {step} steps before) is kept in {}",
                dir.display()
            ),
            Err(e) => return e,
        };
        why.context(format!("training stopped; {kept}"))
    }

    /// The samples after training, printed and written to the run directory.
    fn sample<E: Engine>(&self, engine: &mut E, rng: &mut Rng) -> Result<()> {
        let quiet = self.invocation.quiet;
        let s = &self.settings.sampling;
        if s.num_samples > 0 && !quiet {
            println!("\n--- inference (new, hallucinated names) ---");
        }
        let mut samples = String::new();
        for i in 0..s.num_samples {
            let ids = sample::generate(engine, rng, &[], s.temperature);
            let name = self.corpus.vocab.decode(&ids);
            if !quiet {
                println!("sample {:2}: {name}", i + 1);
            }
            samples.push_str(&name);
            samples.push('\n');
        }
        if let Some(dir) = &self.invocation.out {
            write_atomic(&dir.join(SAMPLES_FILE), samples.as_bytes())?;
        }
        Ok(())
    }
}
