//! The `sample` command: samples from a trained run — names (lines runs) or continuations
//! of a prompt (stream runs) — and mission B's temperature study (`--temperatures`, in
//! `study`), which writes `temperatures.md`, `.json` and `.png` to the run. Long sampling
//! shows its progress on stderr.

use crate::cli::SampleArgs;
use crate::commands::progress::Work;
use anyhow::{bail, Result};
use microgpt::data::{self, Vocab};
use microgpt::model::engine::Engine;
use microgpt::model::{with_engine, EngineTask};
use microgpt::numerics::rng::Rng;
use microgpt::rundir::checkpoint::{self, RunConfig};
use microgpt::settings::DataMode;
use microgpt::training::memory::{self, Workload};
use microgpt::training::sample::{
    continuation_steps, continue_text_with, generate, stream_prompt, STREAM_CHARS,
};

mod plot;
mod study;

/// The longest continuation `--max-new-tokens` asks for.
const MAX_NEW_TOKENS: usize = 1_000_000;

/// What the samples are: names framed by BOS, or continuations of a prompt.
#[derive(Clone, Copy)]
enum Kind {
    Names,
    Continuations { max_new: usize },
}

pub fn run(args: &SampleArgs) -> Result<()> {
    let (run, model) = checkpoint::load_run(&args.run)?;
    let block_size = model.config.block_size;
    let (kind, prompt) = match run.settings.data.data {
        DataMode::Lines => {
            if args.max_new_tokens.is_some() {
                bail!("--max-new-tokens is for stream runs: a lines run samples names up to BOS");
            }
            let prompt = model.vocab.encode_prompt(&args.prompt)?;
            if prompt.len() >= block_size {
                bail!(
                    "the prompt has {} characters, but the model sees only {block_size} positions",
                    prompt.len()
                );
            }
            (Kind::Names, prompt)
        }
        DataMode::Stream => {
            // A study's many continuations fit the model's window unless asked otherwise:
            // past it every character re-reads the whole window, block_size times slower.
            let default = match args.temperatures {
                Some(_) => block_size,
                None => STREAM_CHARS,
            };
            let max_new = args.max_new_tokens.unwrap_or(default);
            if max_new > MAX_NEW_TOKENS {
                bail!("--max-new-tokens {max_new} is more than {MAX_NEW_TOKENS}");
            }
            let prompt = stream_prompt(&model.vocab, &args.prompt)?;
            (Kind::Continuations { max_new }, prompt)
        }
    };
    let rng = match args.seed {
        Some(seed) => Rng::new(seed),
        // Replaying the shuffle takes a step per document: more than a dataset within the
        // input limit can hold (a line is at least two bytes) means a corrupt config.json.
        None if run.num_docs as u64 > data::MAX_INPUT_BYTES / 2 => bail!(
            "{}: num_docs {} is more than any dataset holds",
            args.run.join(checkpoint::CONFIG_FILE).display(),
            run.num_docs
        ),
        None => data::rng_after_init(
            run.settings.data.seed,
            run.num_docs,
            &model.config.layout(),
            run.settings.model.init_std,
        ),
    };
    let study = match &args.temperatures {
        Some(temperatures) => Some(study::Study::new(temperatures, &run, &model.vocab)?),
        None => None,
    };
    let engine = args.engine.unwrap_or(run.settings.system.engine);
    memory::check(
        &model.config,
        &Workload::sample(engine, model.dtype, &model.config),
    )?;
    let task = SampleTask {
        args,
        run: &run,
        vocab: &model.vocab,
        kind,
        prompt,
        rng,
        study,
    };
    with_engine(engine, model.dtype, &model.config, &model.params, task)?
}

struct SampleTask<'a> {
    args: &'a SampleArgs,
    run: &'a RunConfig,
    vocab: &'a Vocab,
    kind: Kind,
    prompt: Vec<usize>,
    rng: Rng,
    study: Option<study::Study>,
}

/// A batch of samples at one temperature: ids after the prompt, and for continuations the
/// NLL the sampler measured.
struct Drawn {
    ids: Vec<Vec<usize>>,
    nll: f64,
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
        match self.kind {
            Kind::Names => Work::new(
                format!("sampling {}", times(format!("{n} names"))),
                batches * n,
            ),
            Kind::Continuations { max_new } => {
                let block_size = self.run.model.block_size;
                let steps = continuation_steps(self.prompt.len(), max_new, block_size);
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
        let mut drawn = Drawn {
            ids: Vec::with_capacity(n),
            nll: 0.0,
        };
        for _ in 0..n {
            match self.kind {
                Kind::Names => {
                    drawn.ids.push(generate(engine, rng, &self.prompt, t));
                    progress.add(1);
                }
                Kind::Continuations { max_new } => {
                    let (ids, nll) =
                        continue_text_with(engine, rng, &self.prompt, max_new, t, |steps| {
                            progress.add(steps)
                        });
                    drawn.ids.push(ids);
                    drawn.nll += nll;
                }
            }
        }
        drawn
    }

    /// Prints samples at the run's temperature or `--temperature`.
    fn print_samples<E: Engine>(&self, engine: &mut E) {
        let run_samples = self.run.settings.sampling.num_samples;
        let t = self
            .args
            .temperature
            .unwrap_or(self.run.settings.sampling.temperature);
        let n = match self.kind {
            Kind::Names => self.args.num_samples.unwrap_or(run_samples),
            Kind::Continuations { .. } => self.args.num_samples.unwrap_or(1),
        };
        let mut progress = self.progress(1, n);
        let drawn = self.draw(engine, &mut self.rng.clone(), n, t, &mut progress);
        progress.finish();
        let prompt = self.vocab.decode(&self.prompt);
        for (i, ids) in drawn.ids.iter().enumerate() {
            match self.kind {
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
