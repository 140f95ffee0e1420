//! What a trained model makes of a text, position by position: its distribution over the
//! next character (the sampler's softmax at temperature 1) and every head's attention
//! weights, read from whichever [`Engine`] runs it; and a run's [`RunReport`] of them, the
//! content of `inspect.json`. `microgpt inspect` tabulates and draws these, Python returns
//! them.

use crate::data::Vocab;
use crate::model::config::predictions;
use crate::model::engine::{Engine, EngineKind};
use crate::model::{with_engine, EngineTask};
use crate::numerics::dtype::Dtype;
use crate::rundir::checkpoint::{self, RunConfig};
use crate::settings::{Choice, DataMode, SettingsMap};
use crate::training::sample::probs_at_temperature;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

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

/// Predictions listed per position.
pub const TOP: usize = 5;
/// How a BOS token reads in the tables and pictures.
const BOS: &str = "⟨BOS⟩";

/// One run and what it made of the text.
pub struct Inspected {
    pub dir: PathBuf,
    /// Tells the run apart in tables and file names: its directory's name.
    pub name: String,
    pub config: RunConfig,
    pub vocab: Vocab,
    /// The engine and dtype that ran it, e.g. `tensor f64`.
    pub engine: String,
    pub view: Inspection,
}

impl Inspected {
    /// Runs the latest checkpoint of the run in `dir` on `text`, on `engine` (default: the
    /// run's).
    pub fn load(
        dir: &Path,
        name: String,
        text: &str,
        engine: Option<EngineKind>,
        dtype: Option<Dtype>,
    ) -> Result<Self> {
        let (config, model) = checkpoint::load_run(dir)?;
        let tokens = text_tokens(
            &model.vocab,
            config.settings.data.data,
            text,
            model.config.block_size,
        )
        .with_context(|| format!("run {}", dir.display()))?;
        // A dtype is the tensor engine's: it picks that engine unless `engine` says otherwise.
        let kind = engine.unwrap_or(match dtype {
            Some(_) => EngineKind::Tensor,
            None => config.settings.system.engine,
        });
        let task = InspectTask { tokens: &tokens };
        let dtype = dtype.unwrap_or(model.dtype);
        let view = with_engine(kind, dtype, &model.config, &model, task)?;
        Ok(Inspected {
            dir: dir.to_path_buf(),
            name,
            engine: format!("{} {dtype}", kind.name()),
            vocab: model.vocab,
            config,
            view,
        })
    }

    /// How token `id` reads where whitespace would vanish: BOS, space, newline and tab as
    /// visible symbols (all in the pictures' font), other control characters by code.
    pub fn shown(&self, id: usize) -> String {
        match self.vocab.chars().get(id) {
            None => BOS.into(),
            Some(' ') => "␣".into(),
            Some('\n') => "↵".into(),
            Some('\t') => "⇥".into(),
            Some(c) if c.is_control() => format!("U+{:04X}", *c as u32),
            Some(c) => c.to_string(),
        }
    }
}

struct InspectTask<'a> {
    tokens: &'a [usize],
}

impl EngineTask for InspectTask<'_> {
    type Output = Inspection;
    fn run<E: Engine>(self, mut engine: E) -> Inspection {
        inspect(&mut engine, self.tokens)
    }
}

/// Each run's name: its directory's, numbered when two runs share one.
pub fn names(dirs: &[PathBuf]) -> Vec<String> {
    let base: Vec<String> = dirs
        .iter()
        .map(|d| {
            let name = d.file_name().map(|n| n.to_string_lossy().into_owned());
            let name = name.unwrap_or_else(|| "run".into());
            name.replace(|c: char| !(c.is_alphanumeric() || "-_=.,".contains(c)), "_")
        })
        .collect();
    base.iter()
        .enumerate()
        .map(|(i, b)| {
            if base.iter().filter(|o| *o == b).count() > 1 {
                format!("{b}-{}", i + 1)
            } else {
                b.clone()
            }
        })
        .collect()
}

/// One of the likeliest next tokens at a position.
#[derive(Serialize)]
pub struct Prediction {
    pub char: String,
    pub id: usize,
    pub p: f64,
}

/// What the model made of one position.
#[derive(Serialize)]
pub struct PositionReport {
    pub input: String,
    pub target: String,
    pub input_id: usize,
    pub target_id: usize,
    pub p_target: f64,
    pub loss: f64,
    pub top5: Vec<Prediction>,
}

/// One run's report: `inspect.json` for a single run.
#[derive(Serialize)]
pub struct RunReport<'a> {
    pub run: String,
    pub name: &'a str,
    /// The settings that identify the run (`config.json`'s, without the runtime ones).
    pub settings: SettingsMap,
    pub engine: &'a str,
    pub text: &'a str,
    pub positions: Vec<PositionReport>,
    pub mean_loss: f64,
    /// `[layer][head][query][key]`, keys `0..=query`.
    pub attention: &'a [Vec<Vec<Vec<f64>>>],
}

/// One run's `inspect.json` (or its part in a comparison of several).
pub fn run_report<'a>(run: &'a Inspected, text: &'a str) -> RunReport<'a> {
    let v = &run.view;
    let positions = (0..v.positions())
        .map(|pos| PositionReport {
            input: run.shown(v.tokens[pos]),
            target: run.shown(v.tokens[pos + 1]),
            input_id: v.tokens[pos],
            target_id: v.tokens[pos + 1],
            p_target: v.p_target(pos),
            loss: v.loss(pos),
            top5: v
                .top(pos, TOP)
                .into_iter()
                .map(|(id, p)| Prediction {
                    char: run.shown(id),
                    id,
                    p,
                })
                .collect(),
        })
        .collect();
    RunReport {
        run: run.dir.display().to_string(),
        name: &run.name,
        settings: run.config.settings.labels(),
        engine: &run.engine,
        text,
        positions,
        mean_loss: v.mean_loss(),
        attention: &v.attention,
    }
}
