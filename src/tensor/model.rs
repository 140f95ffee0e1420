//! The GPT of SPEC §3 on whole batches: every position of every document is one row, so
//! each linear layer is one GEMM per step. Reads top to bottom like nanoGPT's `model.py`:
//! the weights, the activations, the forward pass, the backward pass, then the [`Engine`].

use super::ops::{self, AttentionShape};
use crate::config::{ConfigError, ModelConfig, ParamLayout};
use crate::dtype::Float;
use crate::engine::Engine;
use std::ops::Range;

/// Offsets of one layer's matrices in the flat parameter vector. `attn_wq`, `attn_wk` and
/// `attn_wv` are adjacent in the layout, so together they are one `[3C, C]` matrix `qkv`.
struct LayerWeights {
    qkv: usize,
    wo: usize,
    fc1: usize,
    fc2: usize,
}

struct Weights {
    wte: usize,
    wpe: usize,
    lm_head: usize,
    layers: Vec<LayerWeights>,
}

impl Weights {
    fn new(layout: &ParamLayout) -> Self {
        let layers = layout
            .layers
            .iter()
            .map(|l| LayerWeights {
                qkv: l.attn_wq.offset,
                wo: l.attn_wo.offset,
                fc1: l.mlp_fc1.offset,
                fc2: l.mlp_fc2.offset,
            })
            .collect();
        Weights {
            wte: layout.wte.offset,
            wpe: layout.wpe.offset,
            lm_head: layout.lm_head.offset,
            layers,
        }
    }
}

/// The `len` elements of the flat vector `buf` from `offset`.
fn tensor<F>(buf: &[F], offset: usize, len: usize) -> &[F] {
    &buf[offset..offset + len]
}

fn tensor_mut<F>(buf: &mut [F], offset: usize, len: usize) -> &mut [F] {
    &mut buf[offset..offset + len]
}

/// Rows `r` of a row-major buffer `width` wide.
fn rows<'a, F>(buf: &'a [F], r: &Range<usize>, width: usize) -> &'a [F] {
    &buf[r.start * width..r.end * width]
}

fn rows_mut<'a, F>(buf: &'a mut [F], r: &Range<usize>, width: usize) -> &'a mut [F] {
    &mut buf[r.start * width..r.end * width]
}

/// The batch as rows: each document's predicted positions, one after another.
#[derive(Default)]
struct Packing {
    tokens: Vec<usize>,
    positions: Vec<usize>,
    targets: Vec<usize>,
    /// Each document's rows.
    docs: Vec<Range<usize>>,
}

impl Packing {
    /// Packs `min(block_size, len - 1)` positions of each document.
    fn pack(&mut self, batch: &[&[usize]], block_size: usize) {
        self.tokens.clear();
        self.positions.clear();
        self.targets.clear();
        self.docs.clear();
        for doc in batch {
            let n = block_size.min(doc.len() - 1);
            let start = self.tokens.len();
            self.tokens.extend_from_slice(&doc[..n]);
            self.positions.extend(0..n);
            self.targets.extend_from_slice(&doc[1..=n]);
            self.docs.push(start..start + n);
        }
    }

    fn len(&self) -> usize {
        self.tokens.len()
    }
}

/// What one layer's forward pass keeps for its backward pass; `N` rows each.
#[derive(Default)]
struct LayerActivations<F> {
    ln1: Vec<F>,      // [N, C]
    ln1_rstd: Vec<F>, // [N]
    /// `[N, 3C]`; while decoding, the rows of earlier positions are the key/value cache.
    qkv: Vec<F>,
    att: Vec<F>,      // [N, H, T]
    atty: Vec<F>,     // [N, C] attention output before the projection
    mid: Vec<F>,      // [N, C] residual stream between attention and MLP
    ln2: Vec<F>,      // [N, C]
    ln2_rstd: Vec<F>, // [N]
    fc: Vec<F>,       // [N, 4C] after the activation
    fc_grad: Vec<F>,  // [N, 4C] the activation's derivative
}

/// Every activation and backward buffer, allocated for `capacity` rows and grown only when
/// a batch may have more.
#[derive(Default)]
struct Activations<F> {
    capacity: usize,
    emb: Vec<F>,        // [N, C] token + position embedding
    emb_rstd: Vec<F>,   // [N]
    resid: Vec<Vec<F>>, // n_layer + 1 of [N, C]: the residual stream into each layer, and out
    layers: Vec<LayerActivations<F>>,
    logits: Vec<F>, // [N, V], then probabilities, then their gradient
    losses: Vec<F>, // [N]
    // Backward.
    dresid: Vec<F>, // [N, C] gradient of the residual stream, updated in place layer by layer
    dln: Vec<F>,    // [N, C] gradient of a normalised input
    datty: Vec<F>,  // [N, C]
    dqkv: Vec<F>,   // [N, 3C]
    dfc: Vec<F>,    // [N, 4C]
    attention_scratch: Vec<F>,
}

impl<F: Float> Activations<F> {
    fn reserve(&mut self, cfg: &ModelConfig, attention: &AttentionShape<F>, rows: usize) {
        if rows <= self.capacity {
            return;
        }
        let (c, h, t, v) = (cfg.n_embd, cfg.n_head, cfg.block_size, cfg.vocab_size);
        let grow = |buf: &mut Vec<F>, width: usize| buf.resize(rows * width, F::zero());
        grow(&mut self.emb, c);
        grow(&mut self.emb_rstd, 1);
        self.resid.resize_with(cfg.n_layer + 1, Vec::new);
        self.resid.iter_mut().for_each(|r| grow(r, c));
        self.layers.resize_with(cfg.n_layer, Default::default);
        for la in &mut self.layers {
            grow(&mut la.ln1, c);
            grow(&mut la.ln1_rstd, 1);
            grow(&mut la.qkv, 3 * c);
            grow(&mut la.att, h * t);
            grow(&mut la.atty, c);
            grow(&mut la.mid, c);
            grow(&mut la.ln2, c);
            grow(&mut la.ln2_rstd, 1);
            grow(&mut la.fc, 4 * c);
            grow(&mut la.fc_grad, 4 * c);
        }
        grow(&mut self.logits, v);
        grow(&mut self.losses, 1);
        grow(&mut self.dresid, c);
        grow(&mut self.dln, c);
        grow(&mut self.datty, c);
        grow(&mut self.dqkv, 3 * c);
        grow(&mut self.dfc, 4 * c);
        self.attention_scratch
            .resize(attention.scratch_len(), F::zero());
        self.capacity = rows;
    }
}

/// microgpt's GPT with flat `F` parameters and batched kernels.
pub struct TensorGpt<F: Float> {
    cfg: ModelConfig,
    layout: ParamLayout,
    params: Vec<F>,
    grads: Vec<F>,
    weights: Weights,
    attention: AttentionShape<F>,
    batch: Packing,
    acts: Activations<F>,
}

impl<F: Float> TensorGpt<F> {
    /// A model with layout-ordered `params`, rounded to `F`; the config must be valid and
    /// fit them.
    pub fn new(cfg: &ModelConfig, params: &[f64]) -> Result<Self, ConfigError> {
        let layout = cfg.check_params(params)?;
        let hd = cfg.head_dim();
        let attention = AttentionShape {
            n_head: cfg.n_head,
            head_dim: hd,
            block_size: cfg.block_size,
            scale: F::of(1.0 / (hd as f64).sqrt()),
        };
        let mut acts = Activations::default();
        // Decoding needs block_size rows; batches of one document fit in them too.
        acts.reserve(cfg, &attention, cfg.block_size);
        Ok(TensorGpt {
            weights: Weights::new(&layout),
            attention,
            params: params.iter().map(|&p| F::of(p)).collect(),
            grads: vec![F::zero(); layout.total],
            batch: Packing::default(),
            acts,
            cfg: cfg.clone(),
            layout,
        })
    }

    /// The forward pass up to the logits for rows `r` of the packed batch. `r` must end
    /// where a document ends; attention reads the earlier rows of a document it starts
    /// inside (decoding computes one row with the ones before it as the cache).
    fn forward(&mut self, r: Range<usize>) {
        let ModelConfig {
            n_embd: c,
            vocab_size: v,
            ..
        } = self.cfg;
        let n = r.len();
        let p = &self.params;
        let w = &self.weights;
        let a = &mut self.acts;
        let b = &self.batch;

        ops::embedding_forward(
            rows_mut(&mut a.emb, &r, c),
            &b.tokens[r.clone()],
            &b.positions[r.clone()],
            tensor(p, w.wte, v * c),
            tensor(p, w.wpe, self.cfg.block_size * c),
            c,
        );
        ops::rmsnorm_forward(
            rows_mut(&mut a.resid[0], &r, c),
            &mut a.emb_rstd[r.clone()],
            rows(&a.emb, &r, c),
            c,
        );
        for (l, (lw, la)) in w.layers.iter().zip(&mut a.layers).enumerate() {
            let (before, after) = a.resid.split_at_mut(l + 1);
            let (x, out) = (&before[l], &mut after[0]);
            // Attention block: mid = x + attention(rmsnorm(x)) Woᵀ.
            ops::rmsnorm_forward(
                rows_mut(&mut la.ln1, &r, c),
                &mut la.ln1_rstd[r.clone()],
                rows(x, &r, c),
                c,
            );
            ops::matmul_forward(
                rows_mut(&mut la.qkv, &r, 3 * c),
                rows(&la.ln1, &r, c),
                tensor(p, lw.qkv, 3 * c * c),
                n,
                c,
                3 * c,
                false,
            );
            for doc in &b.docs {
                debug_assert!(doc.end <= r.end);
                if doc.end > r.start {
                    let first = r.start.max(doc.start) - doc.start;
                    ops::attention_forward(
                        &mut la.atty[doc.start * c..],
                        &mut la.att[doc.start * self.cfg.n_head * self.cfg.block_size..],
                        &la.qkv[doc.start * 3 * c..],
                        first,
                        doc.len(),
                        &self.attention,
                    );
                }
            }
            rows_mut(&mut la.mid, &r, c).copy_from_slice(rows(x, &r, c));
            ops::matmul_forward(
                rows_mut(&mut la.mid, &r, c),
                rows(&la.atty, &r, c),
                tensor(p, lw.wo, c * c),
                n,
                c,
                c,
                true,
            );
            // MLP block: out = mid + act(rmsnorm(mid) W1ᵀ) W2ᵀ.
            ops::rmsnorm_forward(
                rows_mut(&mut la.ln2, &r, c),
                &mut la.ln2_rstd[r.clone()],
                rows(&la.mid, &r, c),
                c,
            );
            ops::matmul_forward(
                rows_mut(&mut la.fc, &r, 4 * c),
                rows(&la.ln2, &r, c),
                tensor(p, lw.fc1, 4 * c * c),
                n,
                c,
                4 * c,
                false,
            );
            ops::activation_forward(
                rows_mut(&mut la.fc, &r, 4 * c),
                rows_mut(&mut la.fc_grad, &r, 4 * c),
                self.cfg.activation,
            );
            rows_mut(out, &r, c).copy_from_slice(rows(&la.mid, &r, c));
            ops::matmul_forward(
                rows_mut(out, &r, c),
                rows(&la.fc, &r, 4 * c),
                tensor(p, lw.fc2, 4 * c * c),
                n,
                4 * c,
                c,
                true,
            );
        }
        ops::matmul_forward(
            rows_mut(&mut a.logits, &r, v),
            rows(&a.resid[self.cfg.n_layer], &r, c),
            tensor(p, w.lm_head, v * c),
            n,
            c,
            v,
            false,
        );
    }

    /// Packs `batch`, runs the forward pass and the loss; returns the mean loss.
    fn forward_loss(&mut self, batch: &[&[usize]]) -> f64 {
        self.batch.pack(batch, self.cfg.block_size);
        let n = self.batch.len();
        // Room for the most rows a batch of this many documents can have, so buffers grow
        // once per batch size rather than at every longer batch.
        let most_rows = batch.len() * self.cfg.block_size;
        self.acts.reserve(&self.cfg, &self.attention, most_rows);
        self.forward(0..n);
        let v = self.cfg.vocab_size;
        let losses = &mut self.acts.losses[..n];
        ops::softmax_crossentropy_forward(
            &mut self.acts.logits[..n * v],
            losses,
            &self.batch.targets,
            v,
        );
        // The scalar engine's order: a left-to-right sum, then times 1/N.
        losses.iter().map(|l| l.as_f64()).sum::<f64>() * (1.0 / n as f64)
    }

    /// The backward pass of the whole packed batch after [`TensorGpt::forward_loss`].
    fn backward(&mut self) {
        let ModelConfig {
            n_embd: c,
            vocab_size: v,
            ..
        } = self.cfg;
        let n = self.batch.len();
        let r = 0..n;
        let p = &self.params;
        let g = &mut self.grads;
        let w = &self.weights;
        let a = &mut self.acts;
        let b = &self.batch;

        ops::softmax_crossentropy_backward(rows_mut(&mut a.logits, &r, v), &b.targets, v, n);
        ops::matmul_backward(
            rows_mut(&mut a.dresid, &r, c),
            tensor_mut(g, w.lm_head, v * c),
            rows(&a.logits, &r, v),
            rows(&a.resid[self.cfg.n_layer], &r, c),
            tensor(p, w.lm_head, v * c),
            n,
            c,
            v,
        );
        for (l, (lw, la)) in w.layers.iter().zip(&a.layers).enumerate().rev() {
            // MLP block: out = mid + act(rmsnorm(mid) W1ᵀ) W2ᵀ; dresid becomes dmid.
            ops::matmul_backward(
                rows_mut(&mut a.dfc, &r, 4 * c),
                tensor_mut(g, lw.fc2, 4 * c * c),
                rows(&a.dresid, &r, c),
                rows(&la.fc, &r, 4 * c),
                tensor(p, lw.fc2, 4 * c * c),
                n,
                4 * c,
                c,
            );
            ops::activation_backward(
                rows_mut(&mut a.dfc, &r, 4 * c),
                rows(&la.fc_grad, &r, 4 * c),
            );
            ops::matmul_backward(
                rows_mut(&mut a.dln, &r, c),
                tensor_mut(g, lw.fc1, 4 * c * c),
                rows(&a.dfc, &r, 4 * c),
                rows(&la.ln2, &r, c),
                tensor(p, lw.fc1, 4 * c * c),
                n,
                c,
                4 * c,
            );
            ops::rmsnorm_backward(
                rows_mut(&mut a.dresid, &r, c),
                rows(&a.dln, &r, c),
                rows(&la.mid, &r, c),
                &la.ln2_rstd[..n],
                c,
            );
            // Attention block: mid = x + attention(rmsnorm(x)) Woᵀ; dresid becomes dx.
            ops::matmul_backward(
                rows_mut(&mut a.datty, &r, c),
                tensor_mut(g, lw.wo, c * c),
                rows(&a.dresid, &r, c),
                rows(&la.atty, &r, c),
                tensor(p, lw.wo, c * c),
                n,
                c,
                c,
            );
            for doc in &b.docs {
                ops::attention_backward(
                    rows_mut(&mut a.dqkv, doc, 3 * c),
                    rows(&a.datty, doc, c),
                    &la.att[doc.start * self.cfg.n_head * self.cfg.block_size..],
                    rows(&la.qkv, doc, 3 * c),
                    doc.len(),
                    &self.attention,
                    &mut a.attention_scratch,
                );
            }
            ops::matmul_backward(
                rows_mut(&mut a.dln, &r, c),
                tensor_mut(g, lw.qkv, 3 * c * c),
                rows(&a.dqkv, &r, 3 * c),
                rows(&la.ln1, &r, c),
                tensor(p, lw.qkv, 3 * c * c),
                n,
                c,
                3 * c,
            );
            ops::rmsnorm_backward(
                rows_mut(&mut a.dresid, &r, c),
                rows(&a.dln, &r, c),
                rows(&a.resid[l], &r, c),
                &la.ln1_rstd[..n],
                c,
            );
        }
        // resid[0] = rmsnorm(wte[token] + wpe[position]).
        let demb = rows_mut(&mut a.dln, &r, c);
        demb.fill(F::zero());
        ops::rmsnorm_backward(
            demb,
            rows(&a.dresid, &r, c),
            rows(&a.emb, &r, c),
            &a.emb_rstd[..n],
            c,
        );
        // The embeddings' gradients are scatter-adds; every other matrix was overwritten.
        let (dwte, dwpe) = g[w.wte..].split_at_mut(w.wpe - w.wte);
        let (dwte, dwpe) = (&mut dwte[..v * c], &mut dwpe[..self.cfg.block_size * c]);
        dwte.fill(F::zero());
        dwpe.fill(F::zero());
        ops::embedding_backward(dwte, dwpe, rows(&a.dln, &r, c), &b.tokens, &b.positions, c);
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
        let v = self.cfg.vocab_size;
        for (out, &l) in logits.iter_mut().zip(&self.acts.logits[pos * v..][..v]) {
            *out = l.as_f64();
        }
    }

    /// Decoding's row is its position, so the weights are row `pos` of the layer's
    /// `att: [N, H, T]`: `att[(pos * H + head) * T ..][..=pos]`.
    fn attention(&self, layer: usize, head: usize, weights: &mut [f64]) {
        let pos = self.batch.len() - 1;
        assert_eq!(weights.len(), pos + 1, "one weight per decoded position");
        let (h, t) = (self.cfg.n_head, self.cfg.block_size);
        let row = &self.acts.layers[layer].att[(pos * h + head) * t..][..=pos];
        for (w, &a) in weights.iter_mut().zip(row) {
            *w = a.as_f64();
        }
    }
}
