//! Temperature sampling (docs/SPEC.md §4): `softmax(logits / T)` with the original's
//! arithmetic, then one weighted draw from CPython's `choices` — names framed by BOS
//! (lines), or continuations of a text that slide past the block (stream); and what
//! sampling a trained run asks for ([`Request`]).

use crate::data::{self, Vocab};
use crate::model::engine::Engine;
use crate::numerics::pow;
use crate::numerics::rng::Rng;
use crate::rundir::checkpoint::{self, ModelCheckpoint, RunConfig};
use crate::settings::DataMode;
use anyhow::{bail, Result};
use std::path::Path;

/// `softmax([l / T for l in logits])` as the original's Value ops compute it:
/// `l * T**-1`, `exp(x - max)`, a sum from 0, then `e * total**-1`.
pub fn probs_at_temperature(logits: &[f64], temperature: f64, probs: &mut [f64]) {
    let inv_t = pow(temperature, -1.0);
    let mut max = f64::NEG_INFINITY;
    for (p, &l) in probs.iter_mut().zip(logits) {
        *p = l * inv_t;
        if *p > max {
            max = *p;
        }
    }
    let mut total = 0.0;
    for p in probs.iter_mut() {
        *p = (*p + -max).exp();
        total += *p;
    }
    let inv_total = pow(total, -1.0);
    probs.iter_mut().for_each(|p| *p *= inv_total);
}

/// Generates one sequence: BOS, then the `prompt` ids fed as given, then draws until BOS
/// or `block_size` positions. Returns the ids after BOS (prompt included, final BOS not).
pub fn generate<E: Engine>(
    engine: &mut E,
    rng: &mut Rng,
    prompt: &[usize],
    temperature: f64,
) -> Vec<usize> {
    let cfg = engine.config();
    let (vocab_size, block_size) = (cfg.vocab_size, cfg.block_size);
    let bos = vocab_size - 1;
    let mut logits = vec![0.0; vocab_size];
    let mut probs = vec![0.0; vocab_size];
    let mut out: Vec<usize> = prompt.to_vec();
    engine.reset_decode();
    let mut token = bos;
    for pos in 0..block_size {
        engine.decode(token, pos, &mut logits);
        if pos < prompt.len() {
            token = prompt[pos];
            continue;
        }
        probs_at_temperature(&logits, temperature, &mut probs);
        token = rng.choice_weighted(&probs);
        if token == bos {
            break;
        }
        out.push(token);
    }
    out
}

/// Characters a stream continuation has unless asked otherwise (`train`'s sample at the
/// end of a stream run, `sample --max-new-tokens`).
pub const STREAM_CHARS: usize = 300;

/// The longest continuation `--max-new-tokens` asks for.
pub const MAX_NEW_TOKENS: usize = 1_000_000;

/// The ids of a stream continuation's `prompt`: its characters must be in the vocabulary,
/// and an empty prompt starts from a newline (nanoGPT's default start) when the text has
/// one.
pub fn stream_prompt(vocab: &Vocab, prompt: &str) -> anyhow::Result<Vec<usize>> {
    if prompt.is_empty() {
        return match vocab.id('\n') {
            Some(id) => Ok(vec![id]),
            None => {
                anyhow::bail!("the text has no newline to start a sample from: give --prompt TEXT")
            }
        };
    }
    vocab.encode_prompt(prompt)
}

/// What the samples of a run are: names framed by BOS, or continuations of a prompt.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Names,
    Continuations { max_new: usize },
}

/// Sampling a trained run (`microgpt sample`): what to draw, from which prompt, and the
/// RNG stream to draw with.
#[derive(Clone)]
pub struct Request {
    pub kind: Kind,
    /// The prompt's ids: a name's first characters, or the text a continuation follows.
    pub prompt: Vec<usize>,
    /// A fresh stream of `seed`, or the run's own stream continued as after training.
    pub rng: Rng,
}

/// A batch of samples at one temperature: ids after the prompt, and for continuations the
/// NLL the sampler measured.
pub struct Drawn {
    pub ids: Vec<Vec<usize>>,
    pub nll: f64,
}

impl Request {
    /// For the run in `dir` (`run` and `model` loaded from it): `prompt` starts every
    /// sample; `max_new_tokens` (stream runs only) is a continuation's length.
    pub fn new(
        dir: &Path,
        run: &RunConfig,
        model: &ModelCheckpoint,
        prompt: &str,
        max_new_tokens: Option<usize>,
        seed: Option<u64>,
    ) -> Result<Self> {
        let block_size = model.config.block_size;
        let (kind, prompt) = match run.settings.data.data {
            DataMode::Lines => {
                if max_new_tokens.is_some() {
                    bail!(
                        "--max-new-tokens is for stream runs: a lines run samples names up to BOS"
                    );
                }
                let prompt = model.vocab.encode_prompt(prompt)?;
                if prompt.len() >= block_size {
                    bail!(
                        "the prompt has {} characters, but the model sees only {block_size} positions",
                        prompt.len()
                    );
                }
                (Kind::Names, prompt)
            }
            DataMode::Stream => {
                let max_new = max_new_tokens.unwrap_or(STREAM_CHARS);
                if max_new > MAX_NEW_TOKENS {
                    bail!("--max-new-tokens {max_new} is more than {MAX_NEW_TOKENS}");
                }
                let prompt = stream_prompt(&model.vocab, prompt)?;
                (Kind::Continuations { max_new }, prompt)
            }
        };
        let rng = match seed {
            Some(seed) => Rng::new(seed),
            // Replaying the shuffle takes a step per document: more than a dataset within
            // the input limit can hold (a line is at least two bytes) means a corrupt
            // config.json.
            None if run.num_docs as u64 > data::MAX_INPUT_BYTES / 2 => bail!(
                "{}: num_docs {} is more than any dataset holds",
                dir.join(checkpoint::CONFIG_FILE).display(),
                run.num_docs
            ),
            None => data::rng_after_init(
                run.settings.data.seed,
                run.num_docs,
                &model.config.layout(),
                run.settings.model.init_std,
            ),
        };
        Ok(Request { kind, prompt, rng })
    }

    /// `n` samples at temperature `t`, drawn with `rng`.
    pub fn draw<E: Engine>(&self, engine: &mut E, rng: &mut Rng, n: usize, t: f64) -> Drawn {
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

    /// How many samples to draw unless asked: the run's own count of names, one
    /// continuation.
    pub fn default_count(&self, run: &RunConfig) -> usize {
        match self.kind {
            Kind::Names => run.settings.sampling.num_samples,
            Kind::Continuations { .. } => 1,
        }
    }

    /// A sample as it reads: a name (its prompt included), or a continuation after its
    /// prompt.
    pub fn text(&self, vocab: &Vocab, ids: &[usize]) -> String {
        match self.kind {
            Kind::Names => vocab.decode(ids),
            Kind::Continuations { .. } => vocab.decode(&self.prompt) + &vocab.decode(ids),
        }
    }
}

/// A continuation of a stream: feeds `prompt` (at least one token), then draws
/// `max_new` tokens, never BOS (a stream has none). The context is the last `block_size`
/// tokens, as nanoGPT crops it: while the sequence fits the block the key/value cache
/// grows, after that every token re-reads the window. Returns the new tokens and their
/// negative log-likelihood under the model at temperature 1 (nats, summed).
pub fn continue_text<E: Engine>(
    engine: &mut E,
    rng: &mut Rng,
    prompt: &[usize],
    max_new: usize,
    temperature: f64,
) -> (Vec<usize>, f64) {
    assert!(!prompt.is_empty(), "a continuation needs a prompt");
    let cfg = engine.config();
    let (vocab_size, block_size) = (cfg.vocab_size, cfg.block_size);
    let bos = vocab_size - 1;
    let mut logits = vec![0.0; vocab_size];
    let mut probs = vec![0.0; vocab_size];
    let mut seq = prompt.to_vec();
    let mut nll = 0.0;
    feed_window(engine, &seq, block_size, &mut logits);
    for i in 0..max_new {
        probs_at_temperature(&logits, temperature, &mut probs);
        probs[bos] = 0.0;
        let token = rng.choice_weighted(&probs);
        probs_at_temperature(&logits, 1.0, &mut probs);
        nll -= probs[token].ln();
        seq.push(token);
        if i + 1 == max_new {
            break;
        }
        if seq.len() <= block_size {
            engine.decode(token, seq.len() - 1, &mut logits);
        } else {
            feed_window(engine, &seq, block_size, &mut logits);
        }
    }
    (seq.split_off(prompt.len()), nll)
}

/// Decodes the last `block_size` tokens of `seq` from an empty cache; `logits` ends as the
/// prediction after the last one.
fn feed_window<E: Engine>(engine: &mut E, seq: &[usize], block_size: usize, logits: &mut [f64]) {
    let window = &seq[seq.len().saturating_sub(block_size)..];
    engine.reset_decode();
    for (pos, &token) in window.iter().enumerate() {
        engine.decode(token, pos, logits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_sum_to_one_and_sharpen_with_low_temperature() {
        let logits = [1.0, 2.0, 0.5];
        let mut hot = [0.0; 3];
        let mut cold = [0.0; 3];
        probs_at_temperature(&logits, 1.0, &mut hot);
        probs_at_temperature(&logits, 0.2, &mut cold);
        assert!((hot.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        assert!(cold[1] > hot[1]);
    }
}
