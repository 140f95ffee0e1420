//! The `train` command: data, model, loop, samples, and the run directory — started fresh
//! or resumed from a checkpoint so that the result equals an uninterrupted run.

use super::resume::{resume, Resumed};
use crate::cli::TrainArgs;
use anyhow::{bail, Result};
use microgpt::bf16;
use microgpt::checkpoint::{
    self, NotFinite, RunConfig, RunIdentity, Snapshot, METRICS_FILE, SAMPLES_FILE,
};
use microgpt::config::ModelConfig;
use microgpt::data::{Corpus, Text};
use microgpt::dispatch::{with_engine, EngineTask};
use microgpt::dtype::Dtype;
use microgpt::engine::Engine;
use microgpt::files::write_atomic;
use microgpt::interrupt::{self, Outcome};
use microgpt::lock::{claim_new, RunLock};
use microgpt::memory::{self, Workload};
use microgpt::metrics::{MetricsFile, Row};
use microgpt::progress::Progress;
use microgpt::rng::Rng;
use microgpt::sample;
use microgpt::settings::{DataMode, RunSettings};
use microgpt::train::{cast_params, evaluate, Trainer};
use std::path::PathBuf;
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
pub struct Start {
    pub corpus: Corpus,
    /// The dataset's fingerprint ([`Corpus::sha256`]).
    pub dataset_sha256: String,
    cfg: ModelConfig,
    init: Vec<f64>,
    /// The stream after both, for sampling at the end.
    rng: Rng,
}

impl Start {
    pub fn new(settings: &RunSettings) -> Result<Self> {
        let mut rng = Rng::new(settings.data.seed);
        let corpus = Corpus::load(&settings.data, settings.model.block_size, &mut rng)?;
        let cfg = settings.model.config(corpus.vocab.size());
        cfg.validate()?;
        memory::check(&cfg, &Workload::for_run(settings, &corpus))?;
        let total = cfg.layout().total;
        if total > MAX_PARAMS {
            bail!("the model would have {total} parameters; microgpt trains at most {MAX_PARAMS}: choose a smaller --n-embd, --n-layer or --block-size");
        }
        let init = cfg.layout().init(&mut rng, settings.model.init_std);
        Ok(Start {
            dataset_sha256: corpus.sha256.clone(),
            corpus,
            cfg,
            init,
            rng,
        })
    }

    pub fn run_config(&self, settings: &RunSettings) -> Result<RunConfig> {
        let c = &self.corpus;
        // A pipe (`--input <(zcat names.gz)`) is gone once read: recorded as given.
        let dataset = std::fs::canonicalize(&c.path).unwrap_or_else(|_| c.path.clone());
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
            dataset_sha256: self.dataset_sha256.clone(),
            vocab: c.vocab.chars().iter().collect(),
            num_docs: c.num_docs(),
            num_train_docs,
            num_val_docs,
            num_train_chars,
            num_val_chars,
            num_params: self.cfg.layout().total,
            bf16_kernel: match settings.system.dtype {
                Dtype::Bf16 => Some(bf16::kernel()?),
                _ => None,
            },
        })
    }
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
            match &corpus.text {
                Text::Lines { docs, .. } => println!("num docs: {}", docs.len()),
                Text::Stream { tokens, .. } => println!("num chars: {}", tokens.len()),
            }
            println!("vocab size: {}", corpus.vocab.size());
            println!("num params: {}", trainer.engine.layout().total);
            if settings.system.dtype == Dtype::Bf16 {
                let kernel = bf16::kernel()?;
                println!("bf16 GEMMs: {} ({})", kernel.name(), kernel.describe());
            }
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
