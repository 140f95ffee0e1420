//! The `sample` command: samples from a trained run, and mission B's temperature study
//! (`--temperatures`), which writes `temperatures.md` and `temperatures.json` to the run.

use crate::cli::SampleArgs;
use anyhow::{bail, Context, Result};
use microgpt::checkpoint::{self, RunConfig};
use microgpt::data::{self, predictions, Corpus, Vocab};
use microgpt::dispatch::{with_engine, EngineTask};
use microgpt::engine::Engine;
use microgpt::files::write_atomic;
use microgpt::memory::{self, Workload};
use microgpt::rng::Rng;
use microgpt::sample::generate;
use microgpt::settings::DataSettings;
use serde::Serialize;
use std::collections::HashSet;
use std::fmt::Write as _;

/// Samples per temperature in a study when `--num-samples` is not given.
const STUDY_SAMPLES: usize = 200;
/// Samples listed per temperature in temperatures.md (the JSON has all of them).
const MD_SAMPLES: usize = 30;

const NLL_NOTE: &str = "mean negative log-likelihood (nats) per predicted character under the model at temperature 1, pooled over all samples: Engine::loss on [BOS] + sample + [BOS], so the final BOS (the end of the name) is predicted and counted too; a sample that fills the block has that last prediction cropped";

pub fn run(args: &SampleArgs) -> Result<()> {
    let (run, model) = checkpoint::load_run(&args.run)?;
    let prompt = model.vocab.encode_prompt(&args.prompt)?;
    if prompt.len() >= model.config.block_size {
        bail!(
            "the prompt has {} characters, but the model sees only {} positions",
            prompt.len(),
            model.config.block_size
        );
    }
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
        Some(temperatures) => Some(Study {
            temperatures: temperatures.clone(),
            training_docs: training_docs(&run, &model.vocab)?,
        }),
        None => None,
    };
    let kind = args.engine.unwrap_or(run.settings.system.engine);
    memory::check(
        &model.config,
        &Workload::sample(kind, model.dtype, &model.config),
    )?;
    let task = SampleTask {
        args,
        run: &run,
        vocab: &model.vocab,
        prompt,
        rng,
        study,
    };
    with_engine(kind, model.dtype, &model.config, &model.params, task)?
}

/// The documents the run trained on (its validation documents excluded).
fn training_docs(run: &RunConfig, vocab: &Vocab) -> Result<HashSet<String>> {
    let data = DataSettings {
        input: Some(run.dataset.clone()),
        ..run.settings.data.clone()
    };
    let corpus = Corpus::load(&data, &mut Rng::new(data.seed))
        .context("the temperature study needs the run's dataset to tell novel samples")?;
    if corpus.vocab != *vocab {
        bail!(
            "{} no longer has the run's vocabulary: it changed since training",
            run.dataset.display()
        );
    }
    Ok(corpus.train_docs().iter().cloned().collect())
}

struct Study {
    temperatures: Vec<f64>,
    training_docs: HashSet<String>,
}

struct SampleTask<'a> {
    args: &'a SampleArgs,
    run: &'a RunConfig,
    vocab: &'a Vocab,
    prompt: Vec<usize>,
    rng: Rng,
    study: Option<Study>,
}

impl EngineTask for SampleTask<'_> {
    type Output = Result<()>;
    fn run<E: Engine>(mut self, mut engine: E) -> Result<()> {
        let Some(study) = self.study.take() else {
            let n = self
                .args
                .num_samples
                .unwrap_or(self.run.settings.sampling.num_samples);
            let t = self
                .args
                .temperature
                .unwrap_or(self.run.settings.sampling.temperature);
            for i in 0..n {
                let ids = generate(&mut engine, &mut self.rng, &self.prompt, t);
                println!("sample {:2}: {}", i + 1, self.vocab.decode(&ids));
            }
            return Ok(());
        };
        let n = self.args.num_samples.unwrap_or(STUDY_SAMPLES);
        let rows: Vec<TemperatureRow> = study
            .temperatures
            .iter()
            .map(|&t| {
                // Every temperature starts from the same state: the rows differ by T alone.
                let mut rng = self.rng.clone();
                let ids: Vec<Vec<usize>> = (0..n)
                    .map(|_| generate(&mut engine, &mut rng, &self.prompt, t))
                    .collect();
                TemperatureRow::new(&mut engine, t, &ids, self.vocab, &study.training_docs)
            })
            .collect();
        let report = StudyReport {
            run: self.args.run.display().to_string(),
            num_samples: n,
            seed: self.args.seed,
            prompt: self.args.prompt.clone(),
            num_training_docs: study.training_docs.len(),
            nll_note: NLL_NOTE,
            temperatures: rows,
        };
        let dir = &self.args.run;
        write_atomic(
            &dir.join("temperatures.json"),
            serde_json::to_string_pretty(&report)?.as_bytes(),
        )?;
        let md = report.markdown(self.run.model.block_size);
        write_atomic(&dir.join("temperatures.md"), md.as_bytes())?;
        println!("{}", report.table());
        println!(
            "wrote {} and {}",
            dir.join("temperatures.md").display(),
            dir.join("temperatures.json").display()
        );
        Ok(())
    }
}

#[derive(Serialize)]
struct StudyReport {
    run: String,
    num_samples: usize,
    /// `None`: the run's own RNG stream, continued as after training.
    seed: Option<u64>,
    prompt: String,
    num_training_docs: usize,
    nll_note: &'static str,
    temperatures: Vec<TemperatureRow>,
}

#[derive(Serialize)]
struct TemperatureRow {
    temperature: f64,
    unique_frac: f64,
    novel_frac: f64,
    mean_length: f64,
    nll_per_char: f64,
    samples: Vec<String>,
}

impl TemperatureRow {
    fn new<E: Engine>(
        engine: &mut E,
        temperature: f64,
        ids: &[Vec<usize>],
        vocab: &Vocab,
        training_docs: &HashSet<String>,
    ) -> Self {
        let samples: Vec<String> = ids.iter().map(|s| vocab.decode(s)).collect();
        let n = samples.len().max(1) as f64;
        let unique: HashSet<&String> = samples.iter().collect();
        let novel = samples
            .iter()
            .filter(|s| !training_docs.contains(*s))
            .count();
        let chars: usize = samples.iter().map(|s| s.chars().count()).sum();
        let block_size = engine.config().block_size;
        let (mut nll, mut targets) = (0.0, 0usize);
        for s in ids {
            let mut tokens = Vec::with_capacity(s.len() + 2);
            tokens.push(vocab.bos());
            tokens.extend_from_slice(s);
            tokens.push(vocab.bos());
            let predicted = predictions(tokens.len(), block_size);
            nll += engine.loss(&[&tokens]) * predicted as f64;
            targets += predicted;
        }
        TemperatureRow {
            temperature,
            unique_frac: unique.len() as f64 / n,
            novel_frac: novel as f64 / n,
            mean_length: chars as f64 / n,
            nll_per_char: nll / targets.max(1) as f64,
            samples,
        }
    }
}

impl StudyReport {
    fn table(&self) -> String {
        let mut t = String::from(
            "| temperature | unique | novel | mean length | NLL/char (nats) |\n|---:|---:|---:|---:|---:|\n",
        );
        for r in &self.temperatures {
            let _ = writeln!(
                t,
                "| {} | {:.1}% | {:.1}% | {:.2} | {:.4} |",
                r.temperature,
                100.0 * r.unique_frac,
                100.0 * r.novel_frac,
                r.mean_length,
                r.nll_per_char
            );
        }
        t
    }

    fn markdown(&self, block_size: usize) -> String {
        let stream = match self.seed {
            Some(s) => format!("a fresh RNG seeded with {s}"),
            None => "the run's own RNG stream (as after training)".into(),
        };
        let prompt = if self.prompt.is_empty() {
            String::new()
        } else {
            format!(", each starting with the prompt `{}`", self.prompt)
        };
        let mut md = format!(
            "# Temperature study: {}\n\n{} samples per temperature from {stream}{prompt}; every temperature starts from the same RNG state.\n\n{}\n",
            self.run,
            self.num_samples,
            self.table()
        );
        let _ = writeln!(
            md,
            "- **unique**: distinct samples / samples.\n- **novel**: samples that are not among the run's {} distinct training documents.\n- **mean length**: characters per sample.\n- **NLL/char**: {} (the block is {block_size} positions).",
            self.num_training_docs, NLL_NOTE
        );
        for r in &self.temperatures {
            let shown = r.samples.len().min(MD_SAMPLES);
            let _ = writeln!(
                md,
                "\n## Temperature {}\n\nThe first {shown} of {} samples (an empty line is an empty sample):\n\n```text",
                r.temperature,
                r.samples.len()
            );
            for s in &r.samples[..shown] {
                md.push_str(s);
                md.push('\n');
            }
            md.push_str("```\n");
        }
        md
    }
}
