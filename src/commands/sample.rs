//! The `sample` command: samples from a trained run — names (lines runs) or continuations
//! of a prompt (stream runs) — and mission B's temperature study (`--temperatures`), which
//! writes `temperatures.md` and `temperatures.json` to the run.

use crate::cli::SampleArgs;
use anyhow::{bail, Context, Result};
use microgpt::data::files::write_atomic;
use microgpt::data::{self, Corpus, Vocab};
use microgpt::model::config::predictions;
use microgpt::model::engine::Engine;
use microgpt::model::{with_engine, EngineTask};
use microgpt::numerics::rng::Rng;
use microgpt::rundir::checkpoint::{self, RunConfig};
use microgpt::rundir::lock::RunLock;
use microgpt::settings::{DataMode, DataSettings};
use microgpt::training::memory::{self, Need, Workload};
use microgpt::training::sample::{continue_text, generate, stream_prompt, STREAM_CHARS};
use serde::Serialize;
use std::collections::HashSet;
use std::fmt::Write as _;

/// Samples per temperature in a study when `--num-samples` is not given.
const STUDY_SAMPLES: usize = 200;
/// Samples listed per temperature in temperatures.md (the JSON has all of them).
const MD_SAMPLES: usize = 30;
/// The longest continuation `--max-new-tokens` asks for.
const MAX_NEW_TOKENS: usize = 1_000_000;
/// Substrings of this many characters are looked up in the training text (stream study).
const GRAM: usize = 8;

const LINES_NLL_NOTE: &str = "mean negative log-likelihood (nats) per predicted character under the model at temperature 1, pooled over all samples: Engine::loss on [BOS] + sample + [BOS], so the final BOS (the end of the name) is predicted and counted too; a sample that fills the block has that last prediction cropped";
const STREAM_NLL_NOTE: &str = "mean negative log-likelihood (nats) per generated character under the model at temperature 1, with the context the sampler saw (the last block_size characters), pooled over all samples";

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
            let max_new = args.max_new_tokens.unwrap_or(STREAM_CHARS);
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
        Some(temperatures) => Some(Study {
            temperatures: temperatures.clone(),
            training: TrainingText::load(&run, &model.vocab)?,
        }),
        None => None,
    };
    let engine = args.engine.unwrap_or(run.settings.system.engine);
    // Every sample is kept until written: counted with the model.
    let (per_run, chars) = match kind {
        Kind::Names => (run.settings.sampling.num_samples, block_size),
        Kind::Continuations { max_new } => (1, max_new),
    };
    let (n, rounds) = match &args.temperatures {
        Some(t) => (args.num_samples.unwrap_or(STUDY_SAMPLES), t.len()),
        None => (args.num_samples.unwrap_or(per_run), 1),
    };
    memory::check_with(
        &model.config,
        &[Workload::sample(engine, model.dtype, &model.config)],
        &[Need::samples(n.saturating_mul(rounds), chars)],
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

/// What samples are checked against: the training documents (is a name novel?), or the
/// training text's substrings (how much of a continuation is copied?).
enum TrainingText {
    Docs(HashSet<String>),
    Grams(HashSet<[char; GRAM]>),
}

impl TrainingText {
    fn load(run: &RunConfig, vocab: &Vocab) -> Result<Self> {
        data::input::check_rereadable(&run.dataset).context("the run's dataset")?;
        let data = DataSettings {
            input: Some(run.dataset.clone()),
            ..run.settings.data.clone()
        };
        let corpus = Corpus::load(&data, run.model.block_size, &mut Rng::new(data.seed))
            .context("the temperature study needs the run's dataset to compare samples with")?;
        if corpus.vocab != *vocab {
            bail!(
                "{} no longer has the run's vocabulary: it changed since training",
                run.dataset.display()
            );
        }
        let texts = corpus.train_texts();
        Ok(match run.settings.data.data {
            DataMode::Lines => TrainingText::Docs(texts.into_iter().collect()),
            DataMode::Stream => TrainingText::Grams(grams(&texts[0]).collect()),
        })
    }
}

/// Every run of `GRAM` consecutive characters of `text`.
fn grams(text: &str) -> impl Iterator<Item = [char; GRAM]> + '_ {
    let chars: Vec<char> = text.chars().collect();
    (0..chars.len().saturating_sub(GRAM - 1))
        .map(move |i| chars[i..i + GRAM].try_into().expect("GRAM characters"))
}

struct Study {
    temperatures: Vec<f64>,
    training: TrainingText,
}

struct SampleTask<'a> {
    args: &'a SampleArgs,
    run: &'a RunConfig,
    vocab: &'a Vocab,
    kind: Kind,
    prompt: Vec<usize>,
    rng: Rng,
    study: Option<Study>,
}

/// A batch of samples at one temperature: ids after the prompt, and for continuations the
/// NLL the sampler measured.
struct Drawn {
    ids: Vec<Vec<usize>>,
    nll: f64,
}

impl SampleTask<'_> {
    fn draw<E: Engine>(&self, engine: &mut E, rng: &mut Rng, n: usize, t: f64) -> Drawn {
        let mut drawn = Drawn {
            ids: Vec::with_capacity(n),
            nll: 0.0,
        };
        for _ in 0..n {
            match self.kind {
                Kind::Names => drawn.ids.push(generate(engine, rng, &self.prompt, t)),
                Kind::Continuations { max_new } => {
                    let (ids, nll) = continue_text(engine, rng, &self.prompt, max_new, t);
                    drawn.ids.push(ids);
                    drawn.nll += nll;
                }
            }
        }
        drawn
    }
}

impl EngineTask for SampleTask<'_> {
    type Output = Result<()>;
    fn run<E: Engine>(mut self, mut engine: E) -> Result<()> {
        let Some(study) = self.study.take() else {
            let run_samples = self.run.settings.sampling.num_samples;
            let t = self
                .args
                .temperature
                .unwrap_or(self.run.settings.sampling.temperature);
            let mut rng = self.rng.clone();
            match self.kind {
                Kind::Names => {
                    let n = self.args.num_samples.unwrap_or(run_samples);
                    for (i, ids) in self
                        .draw(&mut engine, &mut rng, n, t)
                        .ids
                        .iter()
                        .enumerate()
                    {
                        println!("sample {:2}: {}", i + 1, self.vocab.decode(ids));
                    }
                }
                Kind::Continuations { .. } => {
                    let n = self.args.num_samples.unwrap_or(1);
                    let prompt = self.vocab.decode(&self.prompt);
                    for (i, ids) in self
                        .draw(&mut engine, &mut rng, n, t)
                        .ids
                        .iter()
                        .enumerate()
                    {
                        if n > 1 {
                            println!("--- sample {} ---", i + 1);
                        }
                        println!("{prompt}{}", self.vocab.decode(ids));
                    }
                }
            }
            return Ok(());
        };
        // The study writes into the run directory, whose one writer may be training it now:
        // say so before sampling rather than after.
        let _writer = RunLock::acquire(&self.args.run)?;
        let n = self.args.num_samples.unwrap_or(STUDY_SAMPLES);
        let rows: Vec<TemperatureRow> = study
            .temperatures
            .iter()
            .map(|&t| {
                // Every temperature starts from the same state: the rows differ by T alone.
                let drawn = self.draw(&mut engine, &mut self.rng.clone(), n, t);
                TemperatureRow::new(&mut engine, t, drawn, self.vocab, &study.training)
            })
            .collect();
        let report = StudyReport {
            run: self.args.run.display().to_string(),
            num_samples: n,
            seed: self.args.seed,
            prompt: self.args.prompt.clone(),
            nll_note: match self.kind {
                Kind::Names => LINES_NLL_NOTE,
                Kind::Continuations { .. } => STREAM_NLL_NOTE,
            },
            temperatures: rows,
        };
        let dir = &self.args.run;
        write_atomic(
            &dir.join("temperatures.json"),
            serde_json::to_string_pretty(&report)?.as_bytes(),
        )?;
        let md = report.markdown(self.run, &study.training);
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
    nll_note: &'static str,
    temperatures: Vec<TemperatureRow>,
}

/// One temperature's figures: uniqueness, novelty and length for names; the fraction of
/// copied substrings for continuations; the NLL for both.
#[derive(Serialize)]
struct TemperatureRow {
    temperature: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    unique_frac: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    novel_frac: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mean_length: Option<f64>,
    /// Of the generated 8-character substrings, the fraction found in the training text.
    #[serde(skip_serializing_if = "Option::is_none")]
    copied_8gram_frac: Option<f64>,
    nll_per_char: f64,
    samples: Vec<String>,
}

impl TemperatureRow {
    fn new<E: Engine>(
        engine: &mut E,
        temperature: f64,
        drawn: Drawn,
        vocab: &Vocab,
        training: &TrainingText,
    ) -> Self {
        let samples: Vec<String> = drawn.ids.iter().map(|s| vocab.decode(s)).collect();
        let n = samples.len().max(1) as f64;
        let mut row = TemperatureRow {
            temperature,
            unique_frac: None,
            novel_frac: None,
            mean_length: None,
            copied_8gram_frac: None,
            nll_per_char: 0.0,
            samples: Vec::new(),
        };
        match training {
            TrainingText::Docs(docs) => {
                let unique: HashSet<&String> = samples.iter().collect();
                let novel = samples.iter().filter(|s| !docs.contains(*s)).count();
                let chars: usize = samples.iter().map(|s| s.chars().count()).sum();
                row.unique_frac = Some(unique.len() as f64 / n);
                row.novel_frac = Some(novel as f64 / n);
                row.mean_length = Some(chars as f64 / n);
                row.nll_per_char = names_nll(engine, &drawn.ids, vocab);
            }
            TrainingText::Grams(grams_seen) => {
                let (mut copied, mut total) = (0usize, 0usize);
                for s in &samples {
                    for g in grams(s) {
                        copied += usize::from(grams_seen.contains(&g));
                        total += 1;
                    }
                }
                let chars: usize = drawn.ids.iter().map(Vec::len).sum();
                row.copied_8gram_frac = Some(copied as f64 / total.max(1) as f64);
                row.nll_per_char = drawn.nll / chars.max(1) as f64;
            }
        }
        row.samples = samples;
        row
    }
}

/// NLL per predicted character of names: `Engine::loss` on `[BOS] + name + [BOS]`.
fn names_nll<E: Engine>(engine: &mut E, ids: &[Vec<usize>], vocab: &Vocab) -> f64 {
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
    nll / targets.max(1) as f64
}

impl StudyReport {
    fn table(&self) -> String {
        let names = self.temperatures.iter().any(|r| r.unique_frac.is_some());
        let mut t = String::from(if names {
            "| temperature | unique | novel | mean length | NLL/char (nats) |\n|---:|---:|---:|---:|---:|\n"
        } else {
            "| temperature | copied 8-grams | NLL/char (nats) |\n|---:|---:|---:|\n"
        });
        let pct = |x: Option<f64>| format!("{:.1}%", 100.0 * x.unwrap_or(f64::NAN));
        for r in &self.temperatures {
            let _ = if names {
                writeln!(
                    t,
                    "| {} | {} | {} | {:.2} | {:.4} |",
                    r.temperature,
                    pct(r.unique_frac),
                    pct(r.novel_frac),
                    r.mean_length.unwrap_or(f64::NAN),
                    r.nll_per_char
                )
            } else {
                writeln!(
                    t,
                    "| {} | {} | {:.4} |",
                    r.temperature,
                    pct(r.copied_8gram_frac),
                    r.nll_per_char
                )
            };
        }
        t
    }

    fn markdown(&self, run: &RunConfig, training: &TrainingText) -> String {
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
        let block_size = run.model.block_size;
        let _ = match training {
            TrainingText::Docs(docs) => writeln!(
                md,
                "- **unique**: distinct samples / samples.\n- **novel**: samples that are not among the run's {} distinct training documents.\n- **mean length**: characters per sample.\n- **NLL/char**: {} (the block is {block_size} positions).",
                docs.len(),
                self.nll_note
            ),
            TrainingText::Grams(_) => writeln!(
                md,
                "- **copied 8-grams**: of the samples' {GRAM}-character substrings, the fraction that occur in the run's training text.\n- **NLL/char**: {} (the block is {block_size} positions).",
                self.nll_note
            ),
        };
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
