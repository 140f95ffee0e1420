//! The `sample` command: samples from a trained run — names (lines runs) or continuations
//! of a prompt (stream runs) — and mission B's temperature study (`--temperatures`, in
//! `study`), which writes `temperatures.md`, `.json` and `.png` to the run. Long sampling
//! shows its progress on stderr.

use crate::cli::SampleArgs;
use crate::commands::progress::Work;
use anyhow::Result;
use microgpt::data::Vocab;
use microgpt::model::engine::{Engine, EngineKind};
use microgpt::model::{with_engine, EngineTask};
use microgpt::numerics::rng::Rng;
use microgpt::rundir::checkpoint::{self, RunConfig};
use microgpt::settings::DataMode;
use microgpt::training::memory::{self, Need, Workload};
use microgpt::training::sample::{continuation_steps, Drawn, Kind, Request};

mod plot;
mod study;

pub fn run(args: &SampleArgs) -> Result<()> {
    let (run, model) = checkpoint::load_run(&args.run)?;
    // A study's many continuations fit the model's window unless asked otherwise: past it
    // every character re-reads the whole window, block_size times slower.
    let study_window = (args.temperatures.is_some() && run.settings.data.data == DataMode::Stream)
        .then_some(model.config.block_size);
    let request = Request::new(
        &args.run,
        &run,
        &model,
        &args.prompt,
        args.max_new_tokens.or(study_window),
        args.seed,
    )?;
    let study = match &args.temperatures {
        Some(temperatures) => Some(study::Study::new(temperatures, &run, &model.vocab)?),
        None => None,
    };
    // `--dtype` is the tensor engine's: it picks that engine unless `--engine` says otherwise.
    let engine = args.engine.unwrap_or(match args.dtype {
        Some(_) => EngineKind::Tensor,
        None => run.settings.system.engine,
    });
    let dtype = args.dtype.unwrap_or(model.dtype);
    // Every sample is kept until written: counted with the model.
    let (per_run, chars) = match request.kind {
        Kind::Names => (run.settings.sampling.num_samples, model.config.block_size),
        Kind::Continuations { max_new } => (1, max_new),
    };
    let (n, rounds) = match &args.temperatures {
        Some(t) => (args.num_samples.unwrap_or(study::STUDY_SAMPLES), t.len()),
        None => (args.num_samples.unwrap_or(per_run), 1),
    };
    memory::check_with(
        &model.config,
        &[Workload::sample(engine, dtype, &model.config)],
        &[Need::samples(n.saturating_mul(rounds), chars)],
    )?;
    let task = SampleTask {
        args,
        run: &run,
        vocab: &model.vocab,
        request,
        study,
    };
    with_engine(engine, dtype, &model.config, &model, task)?
}

struct SampleTask<'a> {
    args: &'a SampleArgs,
    run: &'a RunConfig,
    vocab: &'a Vocab,
    request: Request,
    study: Option<study::Study>,
}

impl SampleTask<'_> {
    /// The progress of `batches` batches of `n` samples: counted in samples for names, in
    /// decoder steps for continuations (one can take seconds, and its characters past the
    /// window cost block_size times those before).
    fn progress(&self, batches: usize, n: usize) -> Work {
        let times = |what: String| match batches {
            1 => what,
            _ => format!("{batches} temperatures × {what}"),
        };
        match self.request.kind {
            Kind::Names => Work::new(
                format!("sampling {}", times(format!("{n} names"))),
                batches * n,
            ),
            Kind::Continuations { max_new } => {
                let block_size = self.run.model.block_size;
                let steps = continuation_steps(self.request.prompt.len(), max_new, block_size);
                let what = times(format!("{n} continuations of {max_new} characters"));
                Work::new(format!("sampling {what}"), batches * n * steps)
            }
        }
    }

    fn draw<E: Engine>(
        &self,
        engine: &mut E,
        rng: &mut Rng,
        n: usize,
        t: f64,
        progress: &mut Work,
    ) -> Drawn {
        self.request
            .draw(engine, rng, n, t, &mut |steps| progress.add(steps))
    }

    /// Prints samples at the run's temperature or `--temperature`.
    fn print_samples<E: Engine>(&self, engine: &mut E) {
        let run_samples = self.run.settings.sampling.num_samples;
        let t = self
            .args
            .temperature
            .unwrap_or(self.run.settings.sampling.temperature);
        let n = match self.request.kind {
            Kind::Names => self.args.num_samples.unwrap_or(run_samples),
            Kind::Continuations { .. } => self.args.num_samples.unwrap_or(1),
        };
        let mut progress = self.progress(1, n);
        let drawn = self.draw(engine, &mut self.request.rng.clone(), n, t, &mut progress);
        progress.finish();
        let prompt = self.vocab.decode(&self.request.prompt);
        for (i, ids) in drawn.ids.iter().enumerate() {
            match self.request.kind {
                Kind::Names => println!("sample {:2}: {}", i + 1, self.vocab.decode(ids)),
                Kind::Continuations { .. } => {
                    if n > 1 {
                        println!("--- sample {} ---", i + 1);
                    }
                    println!("{prompt}{}", self.vocab.decode(ids));
                }
            }
        }
    }
}

impl EngineTask for SampleTask<'_> {
    type Output = Result<()>;
    fn run<E: Engine>(mut self, mut engine: E) -> Result<()> {
        match self.study.take() {
            None => {
                self.print_samples(&mut engine);
                Ok(())
            }
            Some(study) => study.run(&self, &mut engine),
        }
    }
}
