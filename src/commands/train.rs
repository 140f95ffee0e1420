//! The `train` command: data, model, loop, samples, and the run directory — started fresh
//! or resumed from a checkpoint so that the result equals an uninterrupted run.

use crate::cli::TrainArgs;
use anyhow::{bail, Context, Result};
use microgpt::checkpoint::{
    self, ModelCheckpoint, OptimizerState, RunConfig, CONFIG_FILE, METRICS_FILE, MODEL_FILE,
    SAMPLES_FILE,
};
use microgpt::config::ModelConfig;
use microgpt::data::{Corpus, Text};
use microgpt::dispatch::{with_engine, EngineTask};
use microgpt::engine::Engine;
use microgpt::files::write_atomic;
use microgpt::interrupt::{self, Outcome};
use microgpt::memory::{self, Workload};
use microgpt::metrics::{self, MetricsFile, Row};
use microgpt::progress::Progress;
use microgpt::rng::Rng;
use microgpt::sample;
use microgpt::settings::{role, DataMode, Role, RunSettings};
use microgpt::train::{cast_params, evaluate, Trainer};
use std::path::{Path, PathBuf};
use std::time::Instant;

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
    cfg: ModelConfig,
    init: Vec<f64>,
    /// The stream after both, for sampling at the end.
    rng: Rng,
}

impl Start {
    fn new(settings: &RunSettings) -> Result<Self> {
        let mut rng = Rng::new(settings.data.seed);
        let corpus = Corpus::load(&settings.data, settings.model.block_size, &mut rng)?;
        let cfg = settings.model.config(corpus.vocab.size());
        cfg.validate()?;
        memory::check(&cfg, &Workload::for_run(settings, &corpus))?;
        let init = cfg.layout().init(&mut rng, settings.model.init_std);
        Ok(Start {
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
        let (num_train_docs, num_val_docs) = match &c.text {
            Text::Lines { docs, n_train, .. } => (*n_train, docs.len() - n_train),
            Text::Stream { .. } => (0, 0),
        };
        let (num_train_chars, num_val_chars) = c.split_sizes();
        Ok(RunConfig {
            format_version: checkpoint::FORMAT_VERSION,
            settings: settings.clone(),
            model: self.cfg.clone(),
            dataset,
            vocab: c.vocab.chars().iter().collect(),
            num_docs: c.num_docs(),
            num_train_docs,
            num_val_docs,
            num_train_chars,
            num_val_chars,
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
    let (settings, invocation, start, resumed) = match &args.resume {
        None => {
            let settings = args.settings();
            let start = Start::new(&settings)?;
            if let Some(dir) = &args.out {
                if dir.join(MODEL_FILE).exists() {
                    bail!(
                        "{} already holds a trained run: continue it with --resume {0}, or choose another --out",
                        dir.display()
                    );
                }
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create run directory {}", dir.display()))?;
                start.run_config(&settings)?.write(dir)?;
            }
            let invocation = Invocation {
                out: args.out.clone(),
                stop_after: args.stop_after,
                quiet: args.quiet,
            };
            (settings, invocation, start, None)
        }
        Some(dir) => {
            let (settings, start, resumed) = resume(dir, args)?;
            let invocation = Invocation {
                out: Some(dir.clone()),
                stop_after: args.stop_after,
                quiet: args.quiet,
            };
            (settings, invocation, start, Some(resumed))
        }
    };
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
        start,
        resumed,
    };
    with_engine(engine, dtype, &cfg, &params, task)?
}

/// The stored settings with the ones given on the command line that may change on resume
/// (see [`Role`]); changing a setting of the run's identity is an error.
fn resumed_settings(stored: &RunSettings, args: &TrainArgs, dir: &Path) -> Result<RunSettings> {
    let mut map = stored.to_map();
    for (key, value) in args.given_settings() {
        if role(&key) == Some(Role::Identity) && map.get(&key) != Some(&value) {
            bail!(
                "--{} cannot change when resuming: the run's settings are in {}",
                key.replace('_', "-"),
                dir.join(CONFIG_FILE).display()
            );
        }
        map.insert(key, value);
    }
    RunSettings::from_map(&map)
}

fn resume(dir: &Path, args: &TrainArgs) -> Result<(RunSettings, Start, Resumed)> {
    if args.out.as_ref().is_some_and(|out| out != dir) {
        bail!(
            "--out cannot change when resuming: the run stays in {}",
            dir.display()
        );
    }
    let (run, model) = checkpoint::load_run(dir)?;
    let mut settings = resumed_settings(&run.settings, args, dir)?;
    let done = model.step;
    let steps = settings.schedule.steps;
    if done >= steps {
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
    if start.corpus.vocab != model.vocab {
        bail!(
            "the vocabulary of {} ({} characters) differs from the checkpoint's ({}): the dataset changed since the run started",
            run.dataset.display(),
            start.corpus.vocab.chars().len(),
            model.vocab.chars().len()
        );
    }
    let sizes = (start.corpus.num_docs(), start.corpus.split_sizes());
    if sizes != (run.num_docs, (run.num_train_chars, run.num_val_chars)) {
        bail!(
            "{} is not the text the run was trained on ({} documents and {} + {} characters now, {} and {} + {} then): the dataset changed since the run started",
            run.dataset.display(),
            sizes.0,
            sizes.1 .0,
            sizes.1 .1,
            run.num_docs,
            run.num_train_chars,
            run.num_val_chars
        );
    }
    let metrics_path = dir.join(METRICS_FILE);
    let mut rows = metrics::read(&metrics_path)?;
    // Steps after the checkpoint (a save cut short) are trained again.
    rows.truncate(done);
    if rows.len() != done || rows.iter().enumerate().any(|(i, r)| r.step != i + 1) {
        bail!(
            "{} does not hold steps 1..={done} of the checkpoint",
            metrics_path.display()
        );
    }
    start.run_config(&settings)?.write(dir)?;
    let resumed = Resumed {
        model,
        optimizer,
        rows,
    };
    Ok((settings, start, resumed))
}

struct TrainTask<'a> {
    settings: &'a RunSettings,
    invocation: &'a Invocation,
    start: Start,
    resumed: Option<Resumed>,
}

impl EngineTask for TrainTask<'_> {
    type Output = Result<Outcome>;
    fn run<E: Engine>(self, engine: E) -> Result<Outcome> {
        let TrainTask {
            settings,
            invocation,
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
            match &corpus.text {
                Text::Lines { docs, .. } => println!("num docs: {}", docs.len()),
                Text::Stream { tokens, .. } => println!("num chars: {}", tokens.len()),
            }
            println!("vocab size: {}", corpus.vocab.size());
            println!("num params: {}", trainer.engine.layout().total);
        }
        let mut session = Session {
            settings,
            invocation,
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
        let block_size = s.model.block_size;
        let source = self
            .corpus
            .batches(s.schedule.batch_size, block_size, s.data.seed);
        let val = self
            .corpus
            .val_sequences(block_size, s.evaluation.eval_windows);
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
                    // The weights are still those of the last good step: keep them.
                    progress.finish();
                    self.save(trainer, &mut metrics_file)?;
                    return Err(match &self.invocation.out {
                        Some(dir) => diverged.context(format!(
                            "training stopped; the {} steps before are saved in {}",
                            trainer.step,
                            dir.display()
                        )),
                        None => diverged,
                    });
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
                self.save(trainer, &mut metrics_file)?;
            }
        }
        progress.finish();
        self.save(trainer, &mut metrics_file)?;
        Ok(outcome)
    }

    /// Appends the new metrics rows, then writes the checkpoint: rows past the checkpoint
    /// are dropped on resume, missing rows are not.
    fn save<E: Engine>(
        &self,
        trainer: &Trainer<E>,
        metrics_file: &mut Option<MetricsFile>,
    ) -> Result<()> {
        let (Some(dir), Some(metrics_file)) = (&self.invocation.out, metrics_file) else {
            return Ok(());
        };
        metrics_file.append(&self.rows)?;
        checkpoint::save(
            dir,
            trainer.engine.config(),
            &self.corpus.vocab,
            trainer.step,
            trainer.engine.params(),
            &trainer.adam,
        )
    }

    /// The samples after training, printed and written to the run directory: names
    /// (lines), or one continuation of a newline (stream).
    fn sample<E: Engine>(&self, engine: &mut E, rng: &mut Rng) -> Result<()> {
        let quiet = self.invocation.quiet;
        let s = &self.settings.sampling;
        let vocab = &self.corpus.vocab;
        let samples: Vec<String> = match self.settings.data.data {
            DataMode::Lines => (0..s.num_samples)
                .map(|_| vocab.decode(&sample::generate(engine, rng, &[], s.temperature)))
                .collect(),
            DataMode::Stream => {
                let prompt = sample::stream_prompt(vocab, "")?;
                (0..s.num_samples.min(1))
                    .map(|_| {
                        let (ids, _) = sample::continue_text(
                            engine,
                            rng,
                            &prompt,
                            sample::STREAM_CHARS,
                            s.temperature,
                        );
                        vocab.decode(&ids)
                    })
                    .collect()
            }
        };
        if !samples.is_empty() && !quiet {
            match self.settings.data.data {
                DataMode::Lines => {
                    println!("\n--- inference (new, hallucinated names) ---");
                    for (i, name) in samples.iter().enumerate() {
                        println!("sample {:2}: {name}", i + 1);
                    }
                }
                DataMode::Stream => {
                    println!(
                        "\n--- inference ({} characters after a newline) ---",
                        sample::STREAM_CHARS
                    );
                    println!("{}", samples[0]);
                }
            }
        }
        if let Some(dir) = &self.invocation.out {
            let text: String = samples.iter().map(|s| format!("{s}\n")).collect();
            write_atomic(&dir.join(SAMPLES_FILE), text.as_bytes())?;
        }
        Ok(())
    }
}
