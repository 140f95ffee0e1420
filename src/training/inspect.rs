//! What a trained model makes of a text, position by position: its distribution over the
//! next character (the sampler's softmax at temperature 1) and every head's attention
//! weights, read from whichever [`Engine`] runs it. `microgpt inspect` tabulates and
//! draws these.

use crate::data::Vocab;
use crate::model::config::predictions;
use crate::model::engine::Engine;
use crate::settings::DataMode;
use crate::training::sample::probs_at_temperature;
use anyhow::{bail, Result};
use std::collections::BTreeSet;

/// The tokens a run sees for `text`, as training frames them: `[BOS] + text + [BOS]` for a
/// name (lines), the characters alone for a passage (stream). Every token but the last is
/// an input and every token but the first a target, so the result predicts
/// `len - 1 <= block_size` positions. A name of exactly `block_size` characters loses its
/// final BOS, as training crops it; anything longer is an error, not slid.
pub fn text_tokens(
    vocab: &Vocab,
    mode: DataMode,
    text: &str,
    block_size: usize,
) -> Result<Vec<usize>> {
    if text.is_empty() {
        bail!("the text is empty: give a name (lines runs) or a passage (stream runs)");
    }
    let unknown: BTreeSet<char> = text.chars().filter(|&c| vocab.id(c).is_none()).collect();
    if !unknown.is_empty() {
        let list: Vec<String> = unknown.iter().map(|c| format!("{c:?}")).collect();
        let known: String = vocab.chars().iter().collect();
        bail!(
            "the text has characters outside the run's vocabulary: {} (the vocabulary: {known:?})",
            list.join(", ")
        );
    }
    let ids = text.chars().map(|c| vocab.id(c).expect("checked above"));
    let n = text.chars().count();
    match mode {
        DataMode::Lines => {
            if n > block_size {
                bail!(
                    "the name has {n} characters, but the model sees only {block_size} positions (block_size)"
                );
            }
            let mut tokens = vec![vocab.bos()];
            tokens.extend(ids);
            tokens.push(vocab.bos());
            tokens.truncate(predictions(tokens.len(), block_size) + 1);
            Ok(tokens)
        }
        DataMode::Stream => {
            if n < 2 {
                bail!("a stream run predicts each character from the ones before it: give at least 2 characters");
            }
            if n - 1 > block_size {
                bail!(
                    "the passage has {n} characters, but the model predicts at most block_size = {block_size} of them from the ones before: give at most {} characters",
                    block_size + 1
                );
            }
            Ok(ids.collect())
        }
    }
}

/// The model's view of one token sequence.
#[derive(Clone, Debug)]
pub struct Inspection {
    /// The sequence: position `i` reads `tokens[i]` and predicts `tokens[i + 1]`.
    pub tokens: Vec<usize>,
    /// `[position][id]`: the next-token distribution at temperature 1.
    pub probs: Vec<Vec<f64>>,
    /// `[layer][head][query][key]` for keys `0..=query`: each query's softmax weights.
    pub attention: Vec<Vec<Vec<Vec<f64>>>>,
}

/// Decodes `tokens` from an empty cache and records, at every position, the distribution
/// `sample` would draw from at temperature 1 and the weights each head attended with.
/// `tokens` must predict at most `block_size` positions (see [`text_tokens`]).
pub fn inspect<E: Engine>(engine: &mut E, tokens: &[usize]) -> Inspection {
    let cfg = engine.config().clone();
    let n = tokens.len() - 1;
    assert!(n <= cfg.block_size, "{n} positions past the block");
    let mut logits = vec![0.0; cfg.vocab_size];
    let mut probs = Vec::with_capacity(n);
    let mut attention = vec![vec![Vec::with_capacity(n); cfg.n_head]; cfg.n_layer];
    engine.reset_decode();
    for (pos, &token) in tokens[..n].iter().enumerate() {
        engine.decode(token, pos, &mut logits);
        let mut p = vec![0.0; cfg.vocab_size];
        probs_at_temperature(&logits, 1.0, &mut p);
        probs.push(p);
        for (layer, heads) in attention.iter_mut().enumerate() {
            for (head, rows) in heads.iter_mut().enumerate() {
                let mut weights = vec![0.0; pos + 1];
                engine.attention(layer, head, &mut weights);
                rows.push(weights);
            }
        }
    }
    Inspection {
        tokens: tokens.to_vec(),
        probs,
        attention,
    }
}

impl Inspection {
    /// Predicted positions.
    pub fn positions(&self) -> usize {
        self.probs.len()
    }

    /// The probability position `pos` gave its target.
    pub fn p_target(&self, pos: usize) -> f64 {
        self.probs[pos][self.tokens[pos + 1]]
    }

    /// `-ln p(target)` in nats: the training loss's term for this position.
    pub fn loss(&self, pos: usize) -> f64 {
        -self.p_target(pos).ln()
    }

    /// The mean of the positions' losses in training's order: summed left to right, then
    /// times `1/n` (so a name's equals [`Engine::loss`] on its tokens).
    pub fn mean_loss(&self) -> f64 {
        let total: f64 = (0..self.positions()).map(|pos| self.loss(pos)).sum();
        total * (1.0 / self.positions() as f64)
    }

    /// The `k` likeliest next tokens at `pos`, likeliest first (ties: the lower id first).
    pub fn top(&self, pos: usize, k: usize) -> Vec<(usize, f64)> {
        let mut ranked: Vec<(usize, f64)> = self.probs[pos].iter().copied().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(k);
        ranked
    }
}
