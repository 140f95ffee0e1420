//! What [`super::TensorGpt`] works on besides its parameters: where each weight matrix sits
//! in the flat vector, the batch packed as rows, every activation and gradient buffer
//! (allocated once per batch size), and each thread's scratch.

use super::attention::{scratch_len, AttentionShape};
use super::gemm::Bf16;
use super::ops::Weight;
use super::rows::Rows;
use crate::model::config::predictions;
use crate::model::config::{ModelConfig, ParamLayout};
use crate::model::inventory::{n, Buffer, Count, Inventory, Per};
use crate::numerics::bf16::Kernel;
use crate::numerics::dtype::{Dtype, Float};
use crate::numerics::pool;
use std::ops::Range;
use std::sync::{Mutex, MutexGuard};

/// Where one layer's matrices sit in the flat parameter (and gradient) vector. `attn_wq`,
/// `attn_wk` and `attn_wv` are adjacent in the layout, so together they are one `[3C, C]`
/// matrix.
pub struct LayerRanges {
    pub qkv: Range<usize>,
    pub wo: Range<usize>,
    pub fc1: Range<usize>,
    pub fc2: Range<usize>,
}

/// One layer's four matrices (or their gradients) as slices.
pub struct LayerMatrices<T> {
    pub qkv: T,
    pub wo: T,
    pub fc1: T,
    pub fc2: T,
}

impl LayerRanges {
    /// This layer's matrices as its linear layers read them: of the flat parameters, or of
    /// their bf16 copy when the run keeps one ([`Weight::of`]).
    pub fn weights<'a, F>(
        &self,
        params: &'a [F],
        bf16: Option<Bf16<'a>>,
    ) -> LayerMatrices<Weight<'a, F>> {
        let w = |r: &Range<usize>| Weight::of(params, bf16, r.clone());
        LayerMatrices {
            qkv: w(&self.qkv),
            wo: w(&self.wo),
            fc1: w(&self.fc1),
            fc2: w(&self.fc2),
        }
    }

    /// This layer's matrices in `buf`, all mutable at once: they follow each other in the
    /// layout (docs/SPEC.md §2 order: q, k, v, o, fc1, fc2).
    pub fn of_mut<'a, F>(&self, buf: &'a mut [F]) -> LayerMatrices<&'a mut [F]> {
        assert!(
            self.qkv.end == self.wo.start
                && self.wo.end == self.fc1.start
                && self.fc1.end == self.fc2.start,
            "a layer's matrices are adjacent"
        );
        let (qkv, rest) = buf[self.qkv.start..self.fc2.end].split_at_mut(self.qkv.len());
        let (wo, rest) = rest.split_at_mut(self.wo.len());
        let (fc1, fc2) = rest.split_at_mut(self.fc1.len());
        LayerMatrices { qkv, wo, fc1, fc2 }
    }
}

/// Where every weight matrix sits in the flat parameter (and gradient) vector.
pub struct WeightRanges {
    pub wte: Range<usize>,
    pub wpe: Range<usize>,
    pub lm_head: Range<usize>,
    pub layers: Vec<LayerRanges>,
}

impl WeightRanges {
    pub fn new(layout: &ParamLayout) -> Self {
        let layers = layout.layers.iter().map(|l| LayerRanges {
            qkv: l.attn_wq.offset..l.attn_wv.range().end,
            wo: l.attn_wo.range(),
            fc1: l.mlp_fc1.range(),
            fc2: l.mlp_fc2.range(),
        });
        WeightRanges {
            wte: layout.wte.range(),
            wpe: layout.wpe.range(),
            lm_head: layout.lm_head.range(),
            layers: layers.collect(),
        }
    }
}

/// The batch as rows: each document's predicted positions, one after another.
#[derive(Default)]
pub struct PackedBatch {
    pub tokens: Vec<usize>,
    pub positions: Vec<usize>,
    pub targets: Vec<usize>,
    /// Each document's rows.
    pub docs: Vec<Range<usize>>,
}

impl PackedBatch {
    /// Packs `min(block_size, len - 1)` positions of each document. The vectors grow to
    /// the rows of the largest batch packed, exactly.
    pub fn pack(&mut self, batch: &[&[usize]], block_size: usize) {
        for v in [&mut self.tokens, &mut self.positions, &mut self.targets] {
            v.clear();
        }
        self.docs.clear();
        let rows = batch.iter().map(|d| predictions(d.len(), block_size)).sum();
        self.reserve(rows, batch.len());
        for doc in batch {
            let n = predictions(doc.len(), block_size);
            let start = self.tokens.len();
            self.tokens.extend_from_slice(&doc[..n]);
            self.positions.extend(0..n);
            self.targets.extend_from_slice(&doc[1..=n]);
            self.docs.push(start..start + n);
        }
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Room for `rows` rows of `sequences` documents in all, exactly.
    pub fn reserve(&mut self, rows: usize, sequences: usize) {
        for v in [&mut self.tokens, &mut self.positions, &mut self.targets] {
            v.reserve_exact(rows.saturating_sub(v.len()));
        }
        let docs = &mut self.docs;
        docs.reserve_exact(sequences.saturating_sub(docs.len()));
    }
}

/// What one layer's forward pass keeps for its backward pass; `N` rows each.
#[derive(Default)]
pub struct LayerActivations<F> {
    pub ln1: Rows<F>,      // [N, C]
    pub ln1_rstd: Rows<F>, // [N, 1]
    /// `[N, 3C]`; while decoding, the rows of earlier positions are the key/value cache.
    pub qkv: Rows<F>,
    pub att: Rows<F>,      // [N, H * T] softmax weights (layout in `attention`)
    pub atty: Rows<F>,     // [N, C] attention output before the projection
    pub mid: Rows<F>,      // [N, C] residual stream between attention and MLP
    pub ln2: Rows<F>,      // [N, C]
    pub ln2_rstd: Rows<F>, // [N, 1]
    pub fc: Rows<F>,       // [N, M] after the activation (M = mlp_dim)
    pub fc_dact: Rows<F>,  // [N, M] the activation's derivative act'(x) at its input
}

/// Every activation and backward buffer, allocated for `capacity` rows and grown only when
/// a batch has more.
#[derive(Default)]
pub struct Activations<F> {
    capacity: usize,
    pub emb: Rows<F>,        // [N, C] token + position embedding
    pub emb_rstd: Rows<F>,   // [N, 1]
    pub resid: Vec<Rows<F>>, // n_layer + 1 of [N, C]: the residual stream into each layer, and out
    pub layers: Vec<LayerActivations<F>>,
    pub logits: Rows<F>, // [N, V], then probabilities, then their gradient
    pub losses: Rows<F>, // [N, 1]
    // Backward.
    pub dresid: Rows<F>, // [N, C] gradient of the residual stream, updated in place layer by layer
    pub dln: Rows<F>,    // [N, C] gradient of a normalised input (ln1 or ln2)
    pub datty: Rows<F>,  // [N, C]
    pub dqkv: Rows<F>,   // [N, 3C]
    pub dfc: Rows<F>,    // [N, M]
    pub demb: Rows<F>,   // [N, C] gradient of the embedding sum
    /// Each thread's [`AttentionShape::scratch_len`] elements.
    pub attention_scratch: PerWorker<Vec<F>>,
}

impl<F: Float> Activations<F> {
    /// Room for `rows` rows and the current thread count, each buffer as wide as `inv`
    /// says.
    pub fn reserve(&mut self, inv: &Inventory, attention: &AttentionShape<F>, rows: usize) {
        let scratch = attention.scratch_len();
        debug_assert_eq!(scratch, inv.width("attention scratch"));
        self.attention_scratch
            .resize(|| vec![F::zero(); scratch], |s| s.len() >= scratch);
        if rows <= self.capacity {
            return;
        }
        self.resid.resize_with(inv.copies("resid"), Rows::default);
        self.layers
            .resize_with(inv.copies("layer.ln1"), Default::default);
        for (name, buf) in self.named() {
            buf.resize(rows, inv.width(name), F::zero());
        }
        self.capacity = rows;
    }

    /// Every row buffer by its name in the [`inventory`].
    fn named(&mut self) -> Vec<(&'static str, &mut Rows<F>)> {
        let mut all = vec![("emb", &mut self.emb), ("emb_rstd", &mut self.emb_rstd)];
        all.extend(self.resid.iter_mut().map(|r| ("resid", r)));
        for la in &mut self.layers {
            all.extend([
                ("layer.ln1", &mut la.ln1),
                ("layer.ln1_rstd", &mut la.ln1_rstd),
                ("layer.qkv", &mut la.qkv),
                ("layer.att", &mut la.att),
                ("layer.atty", &mut la.atty),
                ("layer.mid", &mut la.mid),
                ("layer.ln2", &mut la.ln2),
                ("layer.ln2_rstd", &mut la.ln2_rstd),
                ("layer.fc", &mut la.fc),
                ("layer.fc_dact", &mut la.fc_dact),
            ]);
        }
        all.extend([
            ("logits", &mut self.logits),
            ("losses", &mut self.losses),
            ("dresid", &mut self.dresid),
            ("dln", &mut self.dln),
            ("datty", &mut self.datty),
            ("dqkv", &mut self.dqkv),
            ("dfc", &mut self.dfc),
            ("demb", &mut self.demb),
        ]);
        all
    }
}

/// Every buffer the tensor engine allocates for `cfg` in `dtype` (`training`: with
/// gradients and Adam's moments): what [`Activations::reserve`] and the engine allocate
/// from, and what the memory estimate sums.
pub fn inventory(cfg: &ModelConfig, dtype: Dtype, training: bool, kernel: Kernel) -> Inventory {
    let s = match dtype.storage() {
        Dtype::F64 => 8,
        _ => 4,
    };
    let (c, h, t, l, v) = (
        n(cfg.n_embd),
        n(cfg.n_head),
        n(cfg.block_size),
        n(cfg.n_layer),
        n(cfg.vocab_size),
    );
    let m = n(4) * c;
    let p = Count(cfg.param_count());
    let model = |name| Buffer::new(name, Per::Model, p, s);
    let row = |name, width| Buffer::new(name, Per::Row, width, s);
    let layer = |name, width| row(name, width).times(l);
    let mut all = vec![model("params")];
    if training {
        // Sampling never writes the gradients' buffer, which the kernel then never maps.
        all.extend([model("grads"), model("adam.m"), model("adam.v")]);
    }
    if dtype == Dtype::Bf16 {
        all.push(Buffer::new("bf16 weights", Per::Model, p, 2));
        let scratch = n(kernel.scratch_bytes());
        all.push(Buffer::new("bf16 scratch", Per::Thread, scratch, 1));
    }
    let attention_scratch = scratch_len(cfg.n_head, cfg.n_embd, cfg.block_size);
    all.push(Buffer::new(
        "attention scratch",
        Per::Thread,
        attention_scratch,
        s,
    ));
    all.extend([row("emb", c), row("emb_rstd", n(1))]);
    all.push(row("resid", c).times(l + n(1)));
    all.extend([
        layer("layer.ln1", c),
        layer("layer.ln1_rstd", n(1)),
        layer("layer.qkv", n(3) * c),
        layer("layer.att", h * t),
        layer("layer.atty", c),
        layer("layer.mid", c),
        layer("layer.ln2", c),
        layer("layer.ln2_rstd", n(1)),
        layer("layer.fc", m),
        layer("layer.fc_dact", m),
    ]);
    all.extend([row("logits", v), row("losses", n(1))]);
    all.extend([row("dresid", c), row("dln", c), row("datty", c)]);
    all.extend([row("dqkv", n(3) * c), row("dfc", m), row("demb", c)]);
    // The packed batch: token, position and target ids per row, a range per sequence.
    for name in ["batch.tokens", "batch.positions", "batch.targets"] {
        all.push(Buffer::new(name, Per::Row, n(1), size_of::<usize>()));
    }
    let range = size_of::<Range<usize>>();
    all.push(Buffer::new("batch.docs", Per::Sequence, n(1), range));
    Inventory(all)
}

/// One `T` per thread of the pool, for the task a thread is running (the pool runs one
/// task at a time per worker index). Each sits behind its own lock, which only that
/// thread takes, so it is never contended, and tasks borrow their scratch safely.
pub struct PerWorker<T>(Vec<Mutex<T>>);

impl<T> Default for PerWorker<T> {
    fn default() -> Self {
        PerWorker(Vec::new())
    }
}

impl<T> PerWorker<T> {
    /// One `T` per thread of the pool: kept where `fits`, else made again by `make`.
    pub fn resize(&mut self, make: impl Fn() -> T, fits: impl Fn(&T) -> bool) {
        self.0.resize_with(pool::threads(), || Mutex::new(make()));
        for slot in &mut self.0 {
            let t = slot.get_mut().unwrap_or_else(|e| e.into_inner());
            if !fits(t) {
                *t = make();
            }
        }
    }

    /// Worker `worker`'s `T`.
    pub fn get(&self, worker: usize) -> MutexGuard<'_, T> {
        let slot = self.0.get(worker).expect("a scratch for every thread");
        slot.lock().unwrap_or_else(|e| e.into_inner())
    }
}
