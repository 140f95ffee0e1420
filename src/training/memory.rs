//! The memory a model needs, estimated from its config before any of it is allocated: a
//! config too large for the machine is a one-line error rather than the allocator's abort
//! or the kernel's OOM kill. The arithmetic is checked, so absurd sizes
//! (`--n-embd 18446744073709551615`) are errors too, never an overflow.
//!
//! The estimate counts what is held at the peak, the training step: the weights and, when
//! training, their gradients and Adam's two moments, each once, in the engine's element
//! type (16 bytes a parameter in f32; no other copy outlives the engine's construction,
//! and a checkpoint is streamed through chunks of 64 KiB both ways, see
//! `rundir/tensorfile.rs`), a bf16 run's rounded copy, the tensor engine's activation
//! buffers for the largest batch's rows (summed from `tensor::inventory`, the description
//! the engine allocates from) and the scalar engine's per-step graph (the node count and
//! size `model/scalar` states and reserves) — and, as [`Need`]s, what else a command keeps: the dataset (checked
//! before its documents are built, then counted against `--max-memory`), the samples kept
//! until written, gradcheck's batches and the threads' address space. Every count a user
//! types reaches this check before an allocator. The limits are `--max-memory` (else the
//! memory available) and what the kernel enforces: the control group's limit and
//! `ulimit -v` (`limits`). The program itself (code, OpenBLAS, the allocator's and the
//! threads' own) is [`PROGRAM_BYTES`], a constant measured. `tests/memory_estimate.rs`
//! checks the total against the peak resident memory of real runs.

use crate::data::{Corpus, Text};
use crate::model::config::ModelConfig;
use crate::model::engine::EngineKind;
use crate::model::inventory::{n, Count, Extent};
use crate::model::scalar::{graph_nodes, NODE_BYTES};
use crate::model::tensor;
use crate::numerics::bf16::Kernel;
use crate::numerics::dtype::Dtype;
use crate::settings::{available_cores, RunSettings};
use crate::training::limits::{check_needs, limits};
pub use crate::training::limits::{Kind, Need, LIMIT_VAR};
pub use crate::training::sizes::{format_size, parse_size};
use anyhow::{bail, Result};

/// What the model is used for, beyond its config.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    pub engine: EngineKind,
    pub dtype: Dtype,
    /// Sequences in one forward pass: the batch size (1 for sampling).
    pub sequences: usize,
    /// Positions of the longest sequence (at most the block size): the scalar engine's
    /// graph grows with it.
    pub positions: usize,
    /// Rows of the largest batch (the positions of its sequences; at most `sequences`
    /// times the block size): the tensor engine's activations are sized to it.
    pub rows: usize,
    /// Threads, each with its scratch.
    pub threads: usize,
    /// Training keeps gradients, Adam's moments and checkpoint buffers as well.
    pub training: bool,
}

impl Workload {
    /// Training `batch_size` sequences at a time of which the longest has `longest_tokens`
    /// (a batch of the longest at most), on every core.
    pub fn train(
        engine: EngineKind,
        dtype: Dtype,
        batch_size: usize,
        longest_tokens: usize,
    ) -> Self {
        let positions = longest_tokens.saturating_sub(1);
        Workload {
            engine,
            dtype,
            sequences: batch_size,
            positions,
            rows: batch_size.saturating_mul(positions),
            threads: available_cores(),
            training: true,
        }
    }

    /// A run's training on `corpus`: its largest batch is its `batch_size` longest
    /// documents (lines), or windows of the block size (stream).
    pub fn for_run(settings: &RunSettings, corpus: &Corpus) -> Self {
        let (s, block) = (&settings.system, settings.model.block_size);
        let batch = settings.schedule.batch_size;
        let longest = longest(corpus, block);
        let threads = if s.threads == 0 {
            available_cores()
        } else {
            s.threads
        };
        Workload {
            rows: largest_batch(corpus, block, batch),
            threads,
            ..Workload::train(s.engine, s.dtype, batch, longest)
        }
    }

    /// Gradcheck's two engines on batches of `batch_size` from `corpus`.
    pub fn gradcheck(
        dtype: Dtype,
        batch_size: usize,
        corpus: &Corpus,
        block_size: usize,
    ) -> [Self; 2] {
        let longest = longest(corpus, block_size);
        [
            Workload::train(EngineKind::Tensor, dtype, batch_size, longest),
            Workload::train(EngineKind::Scalar, Dtype::F64, batch_size, longest),
        ]
    }

    /// Sampling one sequence at a time, up to the block size.
    pub fn sample(engine: EngineKind, dtype: Dtype, cfg: &ModelConfig) -> Self {
        Workload {
            engine,
            dtype,
            sequences: 1,
            positions: cfg.block_size,
            rows: cfg.block_size,
            threads: available_cores(),
            training: false,
        }
    }
}

/// Tokens of the longest sequence a step of `corpus` trains on: its longest document, or a
/// stream's window of `block_size + 1`.
fn longest(corpus: &Corpus, block_size: usize) -> usize {
    match &corpus.text {
        Text::Lines { tokens, .. } => tokens.iter().map(Vec::len).max().unwrap_or(0),
        Text::Stream { .. } => block_size.saturating_add(1),
    }
}

/// Rows of the largest batch of `batch_size` sequences of `corpus`: the sum of its longest
/// documents' positions (lines), or of that many windows (stream).
fn largest_batch(corpus: &Corpus, block_size: usize, batch_size: usize) -> usize {
    let positions = |tokens: usize| tokens.saturating_sub(1).min(block_size);
    match &corpus.text {
        Text::Lines { tokens, .. } => {
            let mut lengths: Vec<usize> = tokens.iter().map(|t| positions(t.len())).collect();
            let k = batch_size.min(lengths.len());
            if k > 0 && k < lengths.len() {
                lengths.select_nth_unstable_by(k - 1, |a, b| b.cmp(a));
            }
            lengths[..k].iter().sum()
        }
        Text::Stream { .. } => batch_size.saturating_mul(block_size),
    }
}

fn params(cfg: &ModelConfig) -> Count {
    Count(cfg.param_count())
}

/// The resident memory of `microgpt train` on the original's tiny model, beyond what this
/// module counts: the binary and its libraries (OpenBLAS), the allocator's arenas, the
/// threads' stacks. Measured: `microgpt train` of the default model on names.txt peaks at
/// 13 MiB resident, of which the dataset as counted is 5.6 MiB and the model 0.2 MiB.
const PROGRAM_BYTES: u128 = 7 << 20;

/// The bytes of the `ParamLayout` description itself: a name and offsets per matrix.
fn layout_bytes(cfg: &ModelConfig) -> Count {
    n(6) * n(cfg.n_layer) * n(96)
}

/// Bytes the tensor engine allocates for `w`: its [`tensor::inventory`], the description
/// it allocates from, for the rows of the largest batch (and the block size's, which
/// decoding reserves).
fn tensor_bytes(cfg: &ModelConfig, w: &Workload) -> Count {
    let inventory = tensor::inventory(cfg, w.dtype, w.training, Kernel::best());
    let most = w.sequences.max(1).saturating_mul(cfg.block_size);
    inventory.bytes(Extent {
        rows: w.rows.min(most).max(cfg.block_size),
        sequences: w.sequences.max(1),
        threads: w.threads,
    })
}

/// Positions of the sequences of `w`'s largest batch: as many of the longest as its rows
/// make (which bounds the attention's quadratic part), and the rest.
fn scalar_nodes(cfg: &ModelConfig, w: &Workload) -> Count {
    let longest = w.positions.min(cfg.block_size).max(1);
    let rows = w.rows.min(w.sequences.saturating_mul(longest));
    let sequences = std::iter::repeat_n(longest, rows / longest).chain([rows % longest]);
    // Sampling decodes up to the block size in a graph of its own.
    let decoding = graph_nodes(cfg, [cfg.block_size], false);
    if !w.training {
        return decoding;
    }
    graph_nodes(cfg, sequences, true).max(decoding)
}

fn scalar_bytes(cfg: &ModelConfig, w: &Workload) -> Count {
    let p = params(cfg);
    let nodes = p + scalar_nodes(cfg, w);
    // The weights' f64 copy the graph's leaves are made from is freed once it is built.
    let mut bytes = nodes * n(NODE_BYTES);
    if w.training {
        // Adam's m and v.
        bytes = bytes + n(2 * 8) * p;
    }
    // The key/value caches: a node id per channel, position and layer.
    bytes + n(2 * 4) * n(cfg.n_embd) * n(cfg.block_size) * n(cfg.n_layer)
}

/// Estimated bytes for `cfg` under `w`; `None` beyond 2^128 bytes.
pub fn estimate(cfg: &ModelConfig, w: &Workload) -> Option<u128> {
    let engine = match w.engine {
        EngineKind::Tensor => tensor_bytes(cfg, w),
        EngineKind::Scalar => scalar_bytes(cfg, w),
    };
    (engine + layout_bytes(cfg)).0
}

/// Fails, in one line naming the largest part and the limit, when `cfg` under `w` needs
/// more memory than a limit (`--max-memory`, else what the machine has available now, and
/// what the kernel enforces), or more graph nodes than the scalar engine's 32-bit ids can
/// address. Returns the estimate.
pub fn check(cfg: &ModelConfig, w: &Workload) -> Result<u128> {
    check_with(cfg, &[*w], &[])
}

/// [`check`] for engines alive at once and what else the command holds.
pub fn check_with(cfg: &ModelConfig, uses: &[Workload], needs: &[Need]) -> Result<u128> {
    let mut parts = Vec::new();
    for w in uses {
        parts.push(model_need(cfg, w)?);
    }
    parts.extend_from_slice(needs);
    parts.push(Need {
        what: "the program".into(),
        bytes: Some(PROGRAM_BYTES),
        // Running already: the kernel's figures include it.
        kind: Kind::Held,
        advice: "raise --max-memory",
    });
    check_needs(&parts, &limits()?)
}

/// `needs` alone (the dataset before its model is known) against the limits.
pub fn check_needs_now(needs: &[Need]) -> Result<u128> {
    check_needs(needs, &limits()?)
}

/// The model under `w` as a [`Need`], after the scalar engine's node count is checked.
fn model_need(cfg: &ModelConfig, w: &Workload) -> Result<Need> {
    let what = describe(cfg, w);
    if w.engine == EngineKind::Scalar {
        let nodes = (params(cfg) + scalar_nodes(cfg, w)).0;
        if nodes.is_none_or(|nodes| nodes > u128::from(u32::MAX)) {
            bail!(
                "{what} needs {} scalar graph nodes a step, more than the scalar engine's 2^32: use --engine tensor or a smaller model or batch",
                nodes.map_or("more than 2^128".into(), |x| x.to_string())
            );
        }
    }
    Ok(Need {
        what,
        bytes: estimate(cfg, w),
        kind: Kind::Resident,
        advice: "choose a smaller model or batch",
    })
}

fn describe(cfg: &ModelConfig, w: &Workload) -> String {
    let use_ = if w.training {
        format!("training batches of {}", w.sequences)
    } else {
        "sampling".into()
    };
    format!(
        "the model (n_embd {}, n_head {}, n_layer {}, block_size {}, vocab_size {}) {use_} on the {} engine ({})",
        cfg.n_embd, cfg.n_head, cfg.n_layer, cfg.block_size, cfg.vocab_size, w.engine, w.dtype
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::Activation;
    use crate::training::limits::Limit;

    fn limit(bytes: u64) -> Vec<Limit> {
        vec![Limit {
            bytes,
            source: "test".into(),
            address_space: false,
        }]
    }

    fn check_within(c: &ModelConfig, uses: &[Workload], limits: Vec<Limit>) -> Result<u128> {
        let parts: Vec<Need> = uses
            .iter()
            .map(|w| model_need(c, w))
            .collect::<Result<_>>()?;
        check_needs(&parts, &limits)
    }

    fn cfg(n_embd: usize, n_layer: usize, block_size: usize) -> ModelConfig {
        ModelConfig {
            vocab_size: 27,
            n_embd,
            n_head: 1,
            n_layer,
            block_size,
            activation: Activation::Relu,
        }
    }

    #[test]
    fn the_parameter_count_is_the_layouts() {
        let c = ModelConfig {
            n_head: 4,
            ..cfg(16, 1, 16)
        };
        assert_eq!(c.param_count(), Some(c.layout().total as u128));
        let c = ModelConfig {
            n_head: 2,
            ..cfg(24, 3, 7)
        };
        assert_eq!(c.param_count(), Some(c.layout().total as u128));
    }

    #[test]
    fn absurd_configs_are_errors_not_overflows() {
        let w = Workload::train(EngineKind::Tensor, Dtype::F64, 1, 10);
        for c in [
            cfg(usize::MAX, 1, 16),
            cfg(16, usize::MAX, 16),
            cfg(16, 1, usize::MAX),
        ] {
            let err = check_within(&c, &[w], limit(1 << 40))
                .unwrap_err()
                .to_string();
            assert!(err.contains("more than"), "{err}");
        }
        let err = check_within(&cfg(100_000, 1, 16), &[w], limit(1 << 40))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("n_embd 100000") && err.contains("TiB"),
            "{err}"
        );
        let scalar = Workload::train(EngineKind::Scalar, Dtype::F64, 1_000_000, 16);
        let err = check_within(&cfg(16, 1, 16), &[scalar], Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("scalar graph nodes"), "{err}");
    }

    fn corpus(text: Text) -> Corpus {
        Corpus {
            path: "test".into(),
            sha256: String::new(),
            vocab: crate::data::Vocab::from_chars(vec!['a']),
            text,
        }
    }

    #[test]
    fn the_largest_batch_is_the_longest_documents_cropped_to_the_block() {
        // Documents of 3, 9, 5, 20 and 2 tokens train 2, 8, 4, 19 and 1 positions.
        let tokens = [3, 9, 5, 20, 2].map(|n| vec![0; n]).to_vec();
        let lines = corpus(Text::Lines {
            docs: Vec::new(),
            tokens,
            n_train: 5,
        });
        // The two longest at block 16: 16 (cropped from 19) + 8.
        assert_eq!(largest_batch(&lines, 16, 2), 24);
        assert_eq!(largest_batch(&lines, 16, 1), 16);
        // A batch larger than the corpus takes every document: 16 + 8 + 4 + 2 + 1.
        assert_eq!(largest_batch(&lines, 16, 99), 31);
        assert_eq!(largest_batch(&lines, 4, 3), 12);
        assert_eq!(largest_batch(&lines, 16, 0), 0);
        let stream = corpus(Text::Stream {
            tokens: vec![0; 1000],
            n_train: 900,
        });
        assert_eq!(largest_batch(&stream, 64, 8), 512);
        assert_eq!(largest_batch(&stream, 64, usize::MAX), usize::MAX);
    }

    #[test]
    fn the_originals_model_fits_in_a_few_megabytes() {
        let c = ModelConfig {
            n_head: 4,
            ..cfg(16, 1, 16)
        };
        for engine in [EngineKind::Tensor, EngineKind::Scalar] {
            let w = Workload::train(engine, Dtype::F64, 1, 16);
            let bytes = check_within(&c, &[w], limit(64 << 20)).unwrap();
            assert!(bytes > 100_000, "{engine}: {bytes}");
        }
    }
}
