//! Mission B's temperature study (`sample --temperatures`): per temperature, the samples
//! and their figures (uniqueness, novelty and length of names; copied substrings of
//! continuations; the NLL under the model), and a picture of the first character's
//! distribution at each temperature.

use super::{plot, Drawn, Kind, SampleTask};
use anyhow::{bail, Context, Result};
use microgpt::data::files::write_atomic;
use microgpt::data::{input, Corpus, Vocab};
use microgpt::model::config::predictions;
use microgpt::model::engine::Engine;
use microgpt::numerics::rng::Rng;
use microgpt::rundir::checkpoint::RunConfig;
use microgpt::rundir::lock::RunLock;
use microgpt::settings::{DataMode, DataSettings};
use microgpt::training::sample::feed_window;
use serde::Serialize;
use std::collections::HashSet;
use std::fmt::Write as _;

/// Samples per temperature in a study when `--num-samples` is not given.
pub(super) const STUDY_SAMPLES: usize = 200;
/// Samples listed per temperature in temperatures.md (the JSON has all of them).
const MD_SAMPLES: usize = 30;
/// Substrings of this many characters are looked up in the training text (stream study).
const GRAM: usize = 8;

const LINES_NLL_NOTE: &str = "mean negative log-likelihood (nats) per predicted character under the model at temperature 1, pooled over all samples: Engine::loss on [BOS] + sample + [BOS], so the final BOS (the end of the name) is predicted and counted too; a sample that fills the block has that last prediction cropped";
const STREAM_NLL_NOTE: &str = "mean negative log-likelihood (nats) per generated character under the model at temperature 1, with the context the sampler saw (the last block_size characters), pooled over all samples";

pub struct Study {
    temperatures: Vec<f64>,
    training: TrainingText,
}

impl Study {
    pub fn new(temperatures: &[f64], run: &RunConfig, vocab: &Vocab) -> Result<Self> {
        Ok(Study {
            temperatures: temperatures.to_vec(),
            training: TrainingText::load(run, vocab)?,
        })
    }

    /// Draws the samples at every temperature, each from the same RNG state, and writes
    /// the report into the run directory.
    pub fn run<E: Engine>(self, task: &SampleTask, engine: &mut E) -> Result<()> {
        // The study writes into the run directory, whose one writer may be training it now:
        // say so before sampling rather than after.
        let _writer = RunLock::acquire(&task.args.run)?;
        let n = task.args.num_samples.unwrap_or(STUDY_SAMPLES);
        let mut progress = task.progress(self.temperatures.len(), n);
        let mut rows = Vec::with_capacity(self.temperatures.len());
        for &t in &self.temperatures {
            // Every temperature starts from the same state: the rows differ by T alone.
            let drawn = task.draw(engine, &mut task.request.rng.clone(), n, t, &mut progress);
            rows.push(TemperatureRow::new(
                engine,
                t,
                drawn,
                task.vocab,
                &self.training,
            ));
        }
        progress.finish();
        let report = StudyReport {
            run: task.args.run.display().to_string(),
            num_samples: n,
            seed: task.args.seed,
            prompt: task.args.prompt.clone(),
            nll_note: match task.request.kind {
                Kind::Names => LINES_NLL_NOTE,
                Kind::Continuations { .. } => STREAM_NLL_NOTE,
            },
            temperatures: rows,
        };
        let dir = &task.args.run;
        let first = first_distribution(task, engine);
        let context = match task.request.kind {
            Kind::Names => format!("⟨BOS⟩{}", task.args.prompt),
            Kind::Continuations { .. } => task.vocab.decode(&task.request.prompt),
        };
        let picture = plot::Distribution {
            context: &context,
            temperatures: &self.temperatures,
            logits: &first,
            vocab: task.vocab,
        };
        write_atomic(&dir.join("temperatures.png"), &plot::png(&picture)?)?;
        write_atomic(
            &dir.join("temperatures.json"),
            serde_json::to_string_pretty(&report)?.as_bytes(),
        )?;
        let md = report.markdown(task.run, &self.training);
        write_atomic(&dir.join("temperatures.md"), md.as_bytes())?;
        println!("{}\n\n{}", report.what(), report.table());
        println!(
            "wrote {}, {} and {}",
            dir.join("temperatures.md").display(),
            dir.join("temperatures.json").display(),
            dir.join("temperatures.png").display()
        );
        Ok(())
    }
}

/// The logits of the first sampled character: after BOS and the prompt (names), or after
/// the prompt's last block_size characters (continuations).
fn first_distribution<E: Engine>(task: &SampleTask, engine: &mut E) -> Vec<f64> {
    let cfg = engine.config();
    let (vocab_size, block_size) = (cfg.vocab_size, cfg.block_size);
    let mut logits = vec![0.0; vocab_size];
    let context = match task.request.kind {
        Kind::Names => [&[task.vocab.bos()][..], &task.request.prompt].concat(),
        Kind::Continuations { .. } => task.request.prompt.clone(),
    };
    feed_window(engine, &context, block_size, &mut logits);
    logits
}

/// What samples are checked against: the training documents (is a name novel?), or the
/// training text's substrings (how much of a continuation is copied?).
enum TrainingText {
    Docs(HashSet<String>),
    Grams(HashSet<[char; GRAM]>),
}

impl TrainingText {
    fn load(run: &RunConfig, vocab: &Vocab) -> Result<Self> {
        input::check_rereadable(&run.dataset).context("the run's dataset")?;
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

    /// What was sampled, in a sentence.
    fn what(&self) -> String {
        let stream = match self.seed {
            Some(s) => format!("a fresh RNG seeded with {s}"),
            None => "the run's own RNG stream (as after training)".into(),
        };
        let prompt = if self.prompt.is_empty() {
            String::new()
        } else {
            format!(", each starting with the prompt `{}`", self.prompt)
        };
        format!(
            "{} samples per temperature from {stream}{prompt}; every temperature starts from the same RNG state.",
            self.num_samples
        )
    }

    fn markdown(&self, run: &RunConfig, training: &TrainingText) -> String {
        let mut md = format!(
            "# Temperature study: {}\n\n{}\n\n{}\n![the first character's distribution at each temperature](temperatures.png)\n\n",
            self.run,
            self.what(),
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
