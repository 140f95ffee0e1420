//! One invocation's training: the loop, its metrics and its saves, and the samples at the
//! end. `metrics.csv` grows as the run goes (every [`METRICS_EVERY`]), so a plot or
//! `tail -f` can follow it; each checkpoint records the prefix it covers, and a resume keeps
//! only that prefix.

use crate::data::Corpus;
use crate::model::engine::Engine;
use crate::numerics::rng::Rng;
use crate::rundir::checkpoint::{self, NotFinite, RunIdentity, Snapshot, SAMPLES_FILE};
use crate::rundir::lock::{Lost, RunLock};
use crate::rundir::metrics::{MetricsFile, Row};
use crate::settings::{DataMode, RunSettings};
use crate::training::interrupt::{self, Outcome};
use crate::training::run::Observer;
use crate::training::sample;
use crate::training::step::{evaluate, Trainer};
use anyhow::Result;
use std::time::{Duration, Instant};

/// How often the rows trained since the last write are appended to `metrics.csv`.
pub const METRICS_EVERY: Duration = Duration::from_secs(2);

pub(crate) struct Session<'a> {
    pub settings: &'a RunSettings,
    /// The run directory, if any, held by its lock, through which every write goes.
    pub out: Option<RunLock>,
    pub run: RunIdentity,
    pub corpus: &'a Corpus,
    /// Every step of the run so far.
    pub rows: Vec<Row>,
}

impl Session<'_> {
    /// Steps until the run's end, step `stop_after`, Ctrl-C or the observer's stop, saving
    /// on the way and at the end (with a run directory).
    pub fn train<E: Engine>(
        &mut self,
        trainer: &mut Trainer<E>,
        stop_after: Option<usize>,
        observer: &mut dyn Observer,
    ) -> Result<Outcome> {
        let s = self.settings;
        let steps = s.schedule.steps;
        let block_size = s.model.block_size;
        let source = self
            .corpus
            .batches(s.schedule.batch_size, block_size, s.data.seed);
        let val = self
            .corpus
            .val_sequences(block_size, s.evaluation.eval_windows);
        let stop_at = stop_after.unwrap_or(steps).min(steps);
        let (mut tokens, elapsed_before) = self
            .rows
            .last()
            .map_or((0, 0.0), |r| (r.tokens, r.elapsed_s));
        let mut metrics_file = match &mut self.out {
            Some(lock) => Some(MetricsFile::create(lock, &self.rows)?),
            None => None,
        };
        let started = Instant::now();
        let mut written = Instant::now();
        let mut outcome = Outcome::Done;
        while trainer.step < stop_at {
            if interrupt::requested() {
                outcome = Outcome::Interrupted;
                break;
            }
            let stats = match trainer.step(&source.batch(trainer.step)) {
                Ok(stats) => stats,
                Err(diverged) => return Err(self.stop(trainer, &mut metrics_file, diverged)),
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
            let save_every = s.system.save_every;
            if save_every > 0 && stats.step.is_multiple_of(save_every) && stats.step < stop_at {
                if let Err(e) = self.save(trainer, &mut metrics_file) {
                    return Err(self.stop(trainer, &mut metrics_file, e));
                }
                written = Instant::now();
            } else if written.elapsed() >= METRICS_EVERY {
                if let (Some(lock), Some(file)) = (self.out.as_mut(), metrics_file.as_mut()) {
                    if let Err(e) = file.append(lock, &self.rows) {
                        return Err(self.stop(trainer, &mut metrics_file, e));
                    }
                }
                written = Instant::now();
            }
            if observer.step(&row).is_break() {
                outcome = Outcome::Interrupted;
                break;
            }
        }
        if let Err(e) = self.save(trainer, &mut metrics_file) {
            return Err(self.stop(trainer, &mut metrics_file, e));
        }
        Ok(outcome)
    }
    /// Appends the new metrics rows, then commits the checkpoint that covers them; a state
    /// that is not finite is refused before either.
    fn save<E: Engine>(
        &mut self,
        trainer: &Trainer<E>,
        metrics_file: &mut Option<MetricsFile>,
    ) -> Result<()> {
        let (Some(lock), Some(metrics_file)) = (self.out.as_mut(), metrics_file) else {
            return Ok(());
        };
        let (config, params) = (trainer.engine.config(), trainer.engine.params());
        checkpoint::check_finite(config, trainer.step, params, &trainer.adam)?;
        metrics_file.append(lock, &self.rows)?;
        let snapshot = Snapshot {
            config,
            vocab: &self.corpus.vocab,
            step: trainer.step,
            params,
            adam: &trainer.adam,
            metrics: metrics_file.span(),
            run: self.run.clone(),
        };
        checkpoint::save(lock, &snapshot)
    }

    /// `why` training cannot go on, after saving the state if it is still finite, with
    /// what the run directory keeps. A directory moved meanwhile is saved where it went; one
    /// whose lock another writer took is not written again.
    fn stop<E: Engine>(
        &mut self,
        trainer: &Trainer<E>,
        metrics_file: &mut Option<MetricsFile>,
        mut why: anyhow::Error,
    ) -> anyhow::Error {
        let Some(lock) = self.out.as_mut() else {
            return why;
        };
        let step = trainer.step;
        let mut moved = false;
        if let Err(lost) = lock.verify() {
            match lost.downcast_ref::<Lost>() {
                Some(Lost::Moved { to, .. }) if lock.follow(&to.clone()).is_ok() => {
                    (why, moved) = (lost, true);
                }
                _ => {
                    return lost.context(format!(
                        "training stopped at step {step}; nothing more is saved there"
                    ))
                }
            }
        }
        let dir = lock.dir().to_path_buf();
        let saved = match self.save(trainer, metrics_file) {
            Ok(()) => Ok(step),
            Err(e) if e.is::<NotFinite>() => checkpoint::latest_step(&dir).map(|s| s.unwrap_or(0)),
            Err(e) => Err(e),
        };
        let kept = match saved {
            Ok(0) => "nothing is saved".to_string(),
            Ok(s) if s == step && moved => format!(
                "the {s} steps before are saved in {0}; continue with: microgpt train --resume {0}",
                dir.display()
            ),
            Ok(s) if s == step => format!("the {s} steps before are saved in {}", dir.display()),
            Ok(s) => format!(
                "the weights were no longer finite, so the last good checkpoint (the {s} steps before) is kept in {}",
                dir.display()
            ),
            Err(e) => {
                let last = checkpoint::latest_step(&dir).ok().flatten();
                let kept = last.map_or("nothing is saved".into(), |s| {
                    format!("the last checkpoint (step {s}) is kept")
                });
                // The save often fails as training did (a full disk): said once.
                if format!("{e:#}") == format!("{why:#}") {
                    kept
                } else {
                    format!("saving failed too ({e:#}); {kept}")
                }
            }
        };
        why.context(format!("training stopped; {kept}"))
    }

    /// The samples after training, written to the run directory: names (lines), or one
    /// continuation of a newline (stream).
    pub fn sample<E: Engine>(&mut self, engine: &mut E, rng: &mut Rng) -> Result<Vec<String>> {
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
        if let Some(lock) = &mut self.out {
            let text: String = samples.iter().map(|s| format!("{s}\n")).collect();
            lock.write_atomic(SAMPLES_FILE, text.as_bytes())?;
        }
        Ok(samples)
    }
}
