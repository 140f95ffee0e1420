//! Temperature sampling (docs/SPEC.md §4): `softmax(logits / T)` with the original's
//! arithmetic, then one weighted draw from CPython's `choices`; at temperature 0, greedy
//! decoding (the likeliest token) — names framed by BOS (lines), or continuations of a text
//! that slide past the block (stream); and what sampling a trained run asks for
//! ([`Request`]).

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

/// The next token after `logits`, never `excluded`. At `temperature` 0 it is greedy: the
/// likeliest token (the lowest id of equals, as `argmax` picks), with no draw from `rng`,
/// the limit of `softmax(logits / T)` as T falls to 0. Above 0 it is the original's: the
/// probabilities of [`probs_at_temperature`] (left in `probs`), one weighted draw.
pub fn next_token(
    logits: &[f64],
    temperature: f64,
    excluded: Option<usize>,
    probs: &mut [f64],
    rng: &mut Rng,
) -> usize {
    if temperature == 0.0 {
        return greedy(logits, excluded);
    }
    probs_at_temperature(logits, temperature, probs);
    if let Some(id) = excluded {
        probs[id] = 0.0;
    }
    rng.choice_weighted(probs)
}

/// The id of the largest logit other than `excluded`; the first of equals.
pub fn greedy(logits: &[f64], excluded: Option<usize>) -> usize {
    let mut best: Option<usize> = None;
    for (id, &l) in logits.iter().enumerate() {
        if Some(id) != excluded && best.is_none_or(|b| l > logits[b]) {
            best = Some(id);
        }
    }
    best.expect("a vocabulary of at least one token besides the excluded one")
}

/// Generates one sequence: BOS, then the `prompt` ids fed as given, then draws (see
/// [`next_token`]) until BOS or `block_size` positions. Returns the ids after BOS (prompt
/// included, final BOS not).
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
        token = next_token(&logits, temperature, None, &mut probs, rng);
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

    /// `n` samples at temperature `t`, drawn with `rng`; `progress` hears of the work as it
    /// is done: one per name, the decoder steps of a continuation (see
    /// [`continuation_steps`]).
    pub fn draw<E: Engine>(
        &self,
        engine: &mut E,
        rng: &mut Rng,
        n: usize,
        t: f64,
        progress: &mut dyn FnMut(usize),
    ) -> Drawn {
        let mut drawn = Drawn {
            ids: Vec::with_capacity(n),
            nll: 0.0,
        };
        for _ in 0..n {
            match self.kind {
                Kind::Names => {
                    drawn.ids.push(generate(engine, rng, &self.prompt, t));
                    progress(1);
                }
                Kind::Continuations { max_new } => {
                    let (ids, nll) =
                        continue_text_with(engine, rng, &self.prompt, max_new, t, &mut *progress);
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
/// `max_new` tokens (see [`next_token`]), never BOS (a stream has none). The context is the last `block_size`
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
    continue_text_with(engine, rng, prompt, max_new, temperature, |_| {})
}

/// [`continue_text`], calling `on_steps` with the decoder steps each feed took: a
/// continuation past the block can take seconds, and these are its progress (they add up
/// to [`continuation_steps`]).
pub fn continue_text_with<E: Engine>(
    engine: &mut E,
    rng: &mut Rng,
    prompt: &[usize],
    max_new: usize,
    temperature: f64,
    mut on_steps: impl FnMut(usize),
) -> (Vec<usize>, f64) {
    assert!(!prompt.is_empty(), "a continuation needs a prompt");
    let cfg = engine.config();
    let (vocab_size, block_size) = (cfg.vocab_size, cfg.block_size);
    let bos = vocab_size - 1;
    let mut logits = vec![0.0; vocab_size];
    let mut probs = vec![0.0; vocab_size];
    let mut seq = prompt.to_vec();
    let mut nll = 0.0;
    on_steps(feed_window(engine, &seq, block_size, &mut logits));
    for i in 0..max_new {
        let token = next_token(&logits, temperature, Some(bos), &mut probs, rng);
        probs_at_temperature(&logits, 1.0, &mut probs);
        nll -= probs[token].ln();
        seq.push(token);
        if i + 1 == max_new {
            break;
        }
        if seq.len() <= block_size {
            engine.decode(token, seq.len() - 1, &mut logits);
            on_steps(1);
        } else {
            on_steps(feed_window(engine, &seq, block_size, &mut logits));
        }
    }
    (seq.split_off(prompt.len()), nll)
}

/// The decoder steps of a continuation of `max_new` tokens after a prompt of `prompt_len`
/// (see [`continue_text`]): the prompt's window, then one step a token while the sequence
/// fits the block, a whole window a token after that (the last token is not fed).
pub fn continuation_steps(prompt_len: usize, max_new: usize, block_size: usize) -> usize {
    let fed = max_new.saturating_sub(1);
    // Sequence lengths prompt_len + 1 ..= prompt_len + fed: those up to block_size cost one.
    let cheap = block_size.saturating_sub(prompt_len).min(fed);
    prompt_len.min(block_size) + cheap + (fed - cheap) * block_size
}

/// Decodes the last `block_size` tokens of `seq` from an empty cache; `logits` ends as the
/// prediction after the last one. Returns the decoder steps taken.
pub fn feed_window<E: Engine>(
    engine: &mut E,
    seq: &[usize],
    block_size: usize,
    logits: &mut [f64],
) -> usize {
    let window = &seq[seq.len().saturating_sub(block_size)..];
    engine.reset_decode();
    for (pos, &token) in window.iter().enumerate() {
        engine.decode(token, pos, logits);
    }
    window.len()
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

    #[test]
    fn temperature_zero_is_the_argmax_and_draws_nothing() {
        let logits = [0.5, 2.0, -1.0, 2.0, 1.9];
        let mut probs = [0.0; 5];
        let mut rng = Rng::new(3);
        let before = rng.clone().random();
        // The first of two equal maxima, as argmax picks; BOS excluded, the next best.
        assert_eq!(next_token(&logits, 0.0, None, &mut probs, &mut rng), 1);
        assert_eq!(next_token(&logits, 0.0, Some(1), &mut probs, &mut rng), 3);
        assert_eq!(greedy(&logits, Some(3)), 1);
        assert_eq!(rng.random(), before, "greedy decoding drew from the RNG");
    }

    #[test]
    fn positive_temperatures_draw_as_the_original() {
        let logits = [0.3, -0.2, 1.1, 0.7];
        for t in [0.2, 0.5, 1.0, 2.0] {
            let (mut a, mut b) = (Rng::new(11), Rng::new(11));
            let mut probs = [0.0; 4];
            for _ in 0..50 {
                let mut expected = [0.0; 4];
                probs_at_temperature(&logits, t, &mut expected);
                let drawn = a.choice_weighted(&expected);
                assert_eq!(next_token(&logits, t, None, &mut probs, &mut b), drawn);
                assert_eq!(probs, expected);
            }
        }
    }
}
