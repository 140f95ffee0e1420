//! The GPT of docs/SPEC.md §3 on whole batches: every position of every document is one row, so
//! each linear layer is one GEMM per step. Reads like llm.c's `train_gpt2.c`: the forward
//! pass, then the backward pass, one line per layer (and a line naming the row views of
//! the layer's buffers it reads where the call would not fit); then the [`Engine`].

use super::attention::{attention_backward, attention_forward, AttentionShape, Workspace};
use super::buffers::{inventory, Activations, PackedBatch, PerWorker, WeightRanges};
use super::gemm::Bf16;
use super::ops::{self, Linear, Weight};
use crate::model::config::{ConfigError, ModelConfig, ParamLayout};
use crate::model::engine::Engine;
use crate::model::inventory::Inventory;
use crate::numerics::bf16::{Kernel, Scratch};
use crate::numerics::dtype::Float;
use std::ops::Range;

/// microgpt's GPT with flat `F` parameters and batched kernels.
pub struct TensorGpt<F: Float> {
    cfg: ModelConfig,
    layout: ParamLayout,
    params: Vec<F>,
    grads: Vec<F>,
    weights: WeightRanges,
    /// What the buffers are allocated from (the memory estimate's description too).
    inventory: Inventory,
    attention: AttentionShape<F>,
    batch: PackedBatch,
    acts: Activations<F>,
    /// A bf16 run's copy of the weights (`--dtype bf16`), `None` otherwise.
    bf16: Option<Bf16Copy>,
}

/// The weights rounded to bf16, the operand of every linear layer's GEMMs in a bf16 run:
/// made once per step, before the first forward pass after an update (`stale` until then),
/// not per GEMM; and the packing scratch of each of the pool's threads.
struct Bf16Copy {
    kernel: Kernel,
    bits: Vec<u16>,
    stale: bool,
    scratch: PerWorker<Scratch>,
}

impl Bf16Copy {
    /// What the layers read of it.
    fn view(&self) -> Bf16<'_> {
        Bf16 {
            bits: &self.bits,
            kernel: self.kernel,
            scratch: &self.scratch,
        }
    }
}

impl TensorGpt<f32> {
    /// A model for `--dtype bf16`: f32 in everything (weights, gradients, activations, the
    /// optimizer) but its GEMMs, whose operands are rounded to bf16 and summed in f32 on
    /// `kernel`.
    pub fn new_bf16(
        cfg: &ModelConfig,
        params: &[f64],
        kernel: Kernel,
    ) -> Result<Self, ConfigError> {
        Ok(Self::new(cfg, params)?.into_bf16(kernel))
    }

    /// This model with its GEMMs in bf16 on `kernel` (see [`TensorGpt::new_bf16`]).
    pub fn into_bf16(mut self, kernel: Kernel) -> Self {
        self.bf16 = Some(Bf16Copy {
            kernel,
            bits: vec![0; self.params.len()],
            stale: true,
            scratch: PerWorker::default(),
        });
        self
    }
}

/// The linear layers' shapes for a batch of `n` rows.
struct Shapes {
    qkv: Linear,
    wo: Linear,
    fc1: Linear,
    fc2: Linear,
    lm_head: Linear,
}

impl Shapes {
    fn new(cfg: &ModelConfig, n: usize) -> Self {
        let (c, m) = (cfg.n_embd, cfg.mlp_dim());
        let linear = |ic, oc| Linear { n, ic, oc };
        Shapes {
            qkv: linear(c, 3 * c),
            wo: linear(c, c),
            fc1: linear(c, m),
            fc2: linear(m, c),
            lm_head: linear(c, cfg.vocab_size),
        }
    }
}

impl<F: Float> TensorGpt<F> {
    /// A model with layout-ordered `params`, rounded to `F`; the config must be valid and
    /// fit them.
    pub fn new(cfg: &ModelConfig, params: &[f64]) -> Result<Self, ConfigError> {
        cfg.check_params(params)?;
        let mut model = Self::zeros(cfg)?;
        for (p, &x) in model.params.iter_mut().zip(params) {
            *p = F::of(x);
        }
        Ok(model)
    }

    /// A model of `cfg` (which must be valid) with every weight 0, for weights written
    /// into it afterwards ([`Engine::params_and_grads_mut`]) rather than copied from others.
    pub fn zeros(cfg: &ModelConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let layout = cfg.layout();
        let hd = cfg.head_dim();
        let attention = AttentionShape {
            n_head: cfg.n_head,
            head_dim: hd,
            block_size: cfg.block_size,
            scale: F::of(1.0 / (hd as f64).sqrt()),
        };
        let inventory = inventory(cfg, F::DTYPE, true, Kernel::best());
        let (mut acts, mut batch) = (Activations::default(), PackedBatch::default());
        // Decoding needs block_size rows of one sequence; batches grow them when larger.
        acts.reserve(&inventory, &attention, cfg.block_size);
        batch.reserve(cfg.block_size, 1);
        Ok(TensorGpt {
            weights: WeightRanges::new(&layout),
            attention,
            params: vec![F::zero(); inventory.width("params")],
            grads: vec![F::zero(); inventory.width("grads")],
            inventory,
            batch,
            acts,
            cfg: cfg.clone(),
            layout,
            bf16: None,
        })
    }

    /// Layer `layer`'s softmax attention weights from the last forward pass, `[N, H, T]`
    /// row-major over the `N` rows of the batch as packed (each document's positions in
    /// order; while decoding, the sequence so far): for row `i` of a document and head `h`,
    /// element `[i][h][j]` is the weight on the document's position `j` for `j <= i`, 0 for
    /// later positions of the document, and unspecified past the document's length.
    pub fn attention_weights(&self, layer: usize) -> &[F] {
        self.acts.layers[layer].att.rows(&(0..self.batch.len()))
    }

    /// The forward pass up to the logits for rows `r` of the packed batch. `r` must end
    /// where a document ends; attention reads the earlier rows of a document it starts
    /// inside (decoding computes one row with the ones before it as the cache).
    fn forward(&mut self, r: Range<usize>) {
        self.refresh_bf16();
        let c = self.cfg.n_embd;
        let (p, w, b, a) = (&self.params, &self.weights, &self.batch, &mut self.acts);
        let bf16 = self.bf16.as_ref().map(Bf16Copy::view);
        let (shape, attn) = (Shapes::new(&self.cfg, r.len()), &self.attention);
        let (tokens, positions) = (&b.tokens[r.clone()], &b.positions[r.clone()]);
        let (wte, wpe) = (&p[w.wte.clone()], &p[w.wpe.clone()]);
        let emb = a.emb.rows_mut(&r);
        ops::embedding_forward(emb, tokens, positions, wte, wpe, c);
        ops::rmsnorm_forward(a.resid[0].rows_mut(&r), a.emb_rstd.rows_mut(&r), emb, c);
        for (l, (lw, la)) in w.layers.iter().zip(&mut a.layers).enumerate() {
            let (before, after) = a.resid.split_at_mut(l + 1);
            let (x, out) = (before[l].rows(&r), after[0].rows_mut(&r));
            let lp = lw.weights(p, bf16);
            // Attention block: mid = x + attention(rmsnorm(x)) Woᵀ. Attention reads and writes
            // whole buffers: a decoded row attends to the cached rows before it.
            let (ln1, ln1_rstd) = (la.ln1.rows_mut(&r), la.ln1_rstd.rows_mut(&r));
            ops::rmsnorm_forward(ln1, ln1_rstd, x, c);
            ops::matmul_forward(la.qkv.rows_mut(&r), ln1, lp.qkv, shape.qkv);
            let (docs, rows) = (&b.docs[..], &r);
            attention_forward(&mut la.atty, &mut la.att, &la.qkv, (docs, rows), attn, bf16);
            let mid = la.mid.rows_mut(&r);
            mid.copy_from_slice(x);
            ops::matmul_forward_residual(mid, la.atty.rows(&r), lp.wo, shape.wo);
            // MLP block: out = mid + act(rmsnorm(mid) W1ᵀ) W2ᵀ.
            let (ln2, ln2_rstd) = (la.ln2.rows_mut(&r), la.ln2_rstd.rows_mut(&r));
            ops::rmsnorm_forward(ln2, ln2_rstd, mid, c);
            let (fc, fc_dact) = (la.fc.rows_mut(&r), la.fc_dact.rows_mut(&r));
            ops::matmul_forward(fc, ln2, lp.fc1, shape.fc1);
            ops::activation_forward(fc, fc_dact, self.cfg.activation);
            out.copy_from_slice(mid);
            ops::matmul_forward_residual(out, fc, lp.fc2, shape.fc2);
        }
        let (x, logits) = (a.resid[self.cfg.n_layer].rows(&r), a.logits.rows_mut(&r));
        let lm_head = Weight::of(p, bf16, w.lm_head.clone());
        ops::matmul_forward(logits, x, lm_head, shape.lm_head);
    }

    /// Rounds the weights' bf16 copy again if they changed since it was made, and gives
    /// each of the pool's threads its scratch.
    fn refresh_bf16(&mut self) {
        let Some(copy) = self.bf16.as_mut() else {
            return;
        };
        if copy.stale {
            ops::round_to_bf16(copy.kernel, &mut copy.bits, &self.params);
            copy.stale = false;
        }
        let kernel = copy.kernel;
        copy.scratch.resize(|| Scratch::new(kernel), |_| true);
    }

    /// Packs `batch`, runs the forward pass and the loss; returns the mean loss.
    fn forward_loss(&mut self, batch: &[&[usize]]) -> f64 {
        self.batch.pack(batch, self.cfg.block_size);
        let n = self.batch.len();
        // Room for this batch's rows: buffers grow at a batch larger than any before.
        self.acts.reserve(&self.inventory, &self.attention, n);
        self.forward(0..n);
        let (v, all) = (self.cfg.vocab_size, &(0..n));
        let a = &mut self.acts;
        let (logits, losses) = (a.logits.rows_mut(all), a.losses.rows_mut(all));
        ops::softmax_crossentropy_forward(logits, losses, &self.batch.targets, v);
        // The scalar engine's order: a left-to-right sum, then times 1/N.
        losses.iter().map(|l| l.as_f64()).sum::<f64>() * (1.0 / n as f64)
    }

    /// The backward pass of the whole packed batch after [`TensorGpt::forward_loss`].
    fn backward(&mut self) {
        let (c, v, n) = (self.cfg.n_embd, self.cfg.vocab_size, self.batch.len());
        let (p, g, w, b) = (&self.params, &mut self.grads, &self.weights, &self.batch);
        let a = &mut self.acts;
        let bf16 = self.bf16.as_ref().map(Bf16Copy::view);
        let (shape, attn, all) = (Shapes::new(&self.cfg, n), &self.attention, &(0..n));
        let dlogits = a.logits.rows_mut(all);
        ops::softmax_crossentropy_backward(dlogits, &b.targets, v, n);
        let (dresid, dln) = (a.dresid.rows_mut(all), a.dln.rows_mut(all));
        let (x, dfc) = (a.resid[self.cfg.n_layer].rows(all), a.dfc.rows_mut(all));
        let dlm_head = &mut g[w.lm_head.clone()];
        let lm_head = Weight::of(p, bf16, w.lm_head.clone());
        ops::matmul_backward(dresid, dlm_head, dlogits, x, lm_head, shape.lm_head);
        for (l, (lw, la)) in w.layers.iter().zip(&a.layers).enumerate().rev() {
            let (lp, lg) = (lw.weights(p, bf16), lw.of_mut(g));
            // MLP block: out = mid + act(rmsnorm(mid) W1ᵀ) W2ᵀ; dresid becomes dmid.
            let (fc, ln2) = (la.fc.rows(all), la.ln2.rows(all));
            ops::matmul_backward(dfc, lg.fc2, dresid, fc, lp.fc2, shape.fc2);
            ops::activation_backward(dfc, la.fc_dact.rows(all));
            ops::matmul_backward(dln, lg.fc1, dfc, ln2, lp.fc1, shape.fc1);
            let (mid, ln2_rstd) = (la.mid.rows(all), la.ln2_rstd.rows(all));
            ops::rmsnorm_backward(dresid, dln, mid, ln2_rstd, c);
            // Attention block: mid = x + attention(rmsnorm(x)) Woᵀ; dresid becomes dx.
            let (datty, atty) = (a.datty.rows_mut(all), la.atty.rows(all));
            ops::matmul_backward(datty, lg.wo, dresid, atty, lp.wo, shape.wo);
            let (scratch, dqkv) = (&a.attention_scratch, &mut a.dqkv);
            let space = Workspace { scratch, bf16 };
            attention_backward(dqkv, &a.datty, &la.att, &la.qkv, &b.docs, attn, space);
            let (dqkv, ln1) = (a.dqkv.rows(all), la.ln1.rows(all));
            ops::matmul_backward(dln, lg.qkv, dqkv, ln1, lp.qkv, shape.qkv);
            let (x, ln1_rstd) = (a.resid[l].rows(all), la.ln1_rstd.rows(all));
            ops::rmsnorm_backward(dresid, dln, x, ln1_rstd, c);
        }
        // resid[0] = rmsnorm(wte[token] + wpe[position]).
        let demb = a.demb.rows_mut(all);
        demb.fill(F::zero());
        ops::rmsnorm_backward(demb, dresid, a.emb.rows(all), a.emb_rstd.rows(all), c);
        // The embeddings' gradients are scatter-adds; every other matrix was overwritten.
        let (dwte, dwpe) = g[w.wte.start..w.wpe.end].split_at_mut(w.wte.len());
        dwte.fill(F::zero());
        dwpe.fill(F::zero());
        ops::embedding_backward(dwte, dwpe, demb, &b.tokens, &b.positions, c);
    }
}

impl<F: Float> Engine for TensorGpt<F> {
    type F = F;

    fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    fn forward_backward(&mut self, batch: &[&[usize]]) -> f64 {
        let loss = self.forward_loss(batch);
        self.backward();
        loss
    }

    fn loss(&mut self, batch: &[&[usize]]) -> f64 {
        self.forward_loss(batch)
    }

    fn params(&self) -> &[F] {
        &self.params
    }

    fn grads(&self) -> &[F] {
        &self.grads
    }

    fn params_and_grads_mut(&mut self) -> (&mut [F], &mut [F]) {
        if let Some(copy) = &mut self.bf16 {
            copy.stale = true;
        }
        (&mut self.params, &mut self.grads)
    }

    fn reset_decode(&mut self) {
        self.batch.pack(&[], self.cfg.block_size);
        self.batch.docs.push(0..0);
    }

    /// Decodes as a one-document batch growing by a row per call: the forward pass runs on
    /// the new row only, and attention reads the earlier rows' keys and values.
    fn decode(&mut self, token: usize, pos: usize, logits: &mut [f64]) {
        let b = &mut self.batch;
        assert_eq!(
            pos,
            b.len(),
            "decode positions must follow reset_decode in order"
        );
        assert!(
            pos < self.cfg.block_size,
            "position {pos} beyond the block size"
        );
        b.tokens.push(token);
        b.positions.push(pos);
        b.docs[0] = 0..pos + 1;
        self.forward(pos..pos + 1);
        for (out, &l) in logits.iter_mut().zip(self.acts.logits.row(pos)) {
            *out = l.as_f64();
        }
    }

    /// Decoding's row is its position, so the weights are row `pos` of the layer's
    /// `att: [N, H, T]`: `att[(pos * H + head) * T ..][..=pos]`.
    fn attention(&self, layer: usize, head: usize, weights: &mut [f64]) {
        let pos = self.batch.len() - 1;
        assert_eq!(weights.len(), pos + 1, "one weight per decoded position");
        let (h, t) = (self.cfg.n_head, self.cfg.block_size);
        let row = &self.attention_weights(layer)[(pos * h + head) * t..][..=pos];
        for (w, &a) in weights.iter_mut().zip(row) {
            *w = a.as_f64();
        }
    }
}
