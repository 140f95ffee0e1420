//! The scalar reference engine: microgpt.py's `Value` autograd and GPT, one graph node per
//! scalar operation, reproducing the original bit for bit (docs/SPEC.md §3, §6).
//!
//! Nodes live in an arena addressed by index. The parameters are the first nodes and stay;
//! everything after them is truncated before each new graph. The original's constant nodes
//! (a plain number wrapped as the second child of `+` or `*`) are leaves no gradient
//! ordering depends on, so they are not materialised: the number is kept as the local
//! gradient of the first child instead.

use crate::model::config::predictions;
use crate::model::config::{ConfigError, ModelConfig, ParamLayout};
use crate::model::engine::Engine;
use crate::model::inventory::{n, Count};
use crate::model::optim::Rounding;
use crate::numerics::pow;

mod graph;
pub use graph::{Graph, NodeId};

/// Bytes a graph node takes: value, gradient, two children, two local gradients (the
/// arena), and the backward pass's visited flag and place in the order.
pub const NODE_BYTES: usize = 2 * size_of::<f64>()
    + size_of::<[NodeId; 2]>()
    + size_of::<[f64; 2]>()
    + size_of::<bool>()
    + size_of::<NodeId>();

/// Nodes the graph of sequences of `positions` each holds beyond the parameters: the
/// forward pass of every position and, with `loss`, each position's softmax, log and
/// negation and their mean. Counted from [`ScalarGpt::gpt`] and [`ScalarGpt::build_loss`],
/// which reserve exactly this many and check it.
pub fn graph_nodes(
    cfg: &ModelConfig,
    positions: impl IntoIterator<Item = usize>,
    loss: bool,
) -> Count {
    let (c, h, l, v) = (
        n(cfg.n_embd),
        n(cfg.n_head),
        n(cfg.n_layer),
        n(cfg.vocab_size),
    );
    // Embedding and norm; each layer's norms, linears (2 nodes per weight), activation and
    // residuals; the head; the loss's softmax, log and negation.
    let per_layer = n(24) * c * c + n(12) * c + n(6);
    let mut per_position = n(4) * c + n(3) + l * per_layer + n(2) * c * v;
    if loss {
        per_position = per_position + n(5) * v + n(2);
    }
    // Attention at position p reads p + 1 keys: 4C + 6H nodes per key and layer.
    let per_key = l * (n(4) * c + n(6) * h);
    let (mut nodes, mut rows) = (n(0), n(0));
    for p in positions {
        let keys = Count(
            Some(p as u128)
                .and_then(|p| p.checked_mul(p + 1))
                .map(|k| k / 2),
        );
        nodes = nodes + n(p) * per_position + per_key * keys;
        rows = rows + n(p);
    }
    // The mean: a sum of every position's loss, times 1/N.
    if loss {
        nodes + rows + n(1)
    } else {
        nodes
    }
}

/// A layer's key/value cache: one vector of nodes per position.
type Cache = Vec<Vec<NodeId>>;

/// microgpt's GPT on the scalar graph.
pub struct ScalarGpt {
    cfg: ModelConfig,
    layout: ParamLayout,
    graph: Graph,
    n_params: usize,
    keys: Vec<Cache>,
    values: Vec<Cache>,
    /// The attention weights' nodes of the last position [`ScalarGpt::gpt`] built, per
    /// layer and head (`layer * n_head + head`), for [`Engine::attention`].
    attention: Vec<Vec<NodeId>>,
}

impl ScalarGpt {
    /// The model with layout-ordered `params`; the config must be valid and fit them.
    pub fn new(cfg: &ModelConfig, params: &[f64]) -> Result<Self, ConfigError> {
        let layout = cfg.check_params(params)?;
        let mut graph = Graph::default();
        for &p in params {
            graph.leaf(p);
        }
        Ok(ScalarGpt {
            n_params: layout.total,
            keys: vec![Vec::new(); cfg.n_layer],
            values: vec![Vec::new(); cfg.n_layer],
            attention: vec![Vec::new(); cfg.n_layer * cfg.n_head],
            cfg: cfg.clone(),
            layout,
            graph,
        })
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// `W x` for the `[nout][nin]` matrix at `w`: each output a Python `sum` of `w_i * x_i`.
    fn linear(&mut self, x: &[NodeId], w: usize, nout: usize) -> Vec<NodeId> {
        let nin = x.len();
        (0..nout)
            .map(|o| {
                let row = w + o * nin;
                let g = &mut self.graph;
                let terms: Vec<NodeId> =
                    (0..nin).map(|i| g.mul((row + i) as NodeId, x[i])).collect();
                g.sum(terms)
            })
            .collect()
    }

    /// `x * (sum(x_i * x_i) / len(x) + 1e-5) ** -0.5`.
    fn rmsnorm(&mut self, x: &[NodeId]) -> Vec<NodeId> {
        let g = &mut self.graph;
        let squares: Vec<NodeId> = x.iter().map(|&xi| g.mul(xi, xi)).collect();
        let total = g.sum(squares);
        let ms = g.mul_const(total, pow(x.len() as f64, -1.0));
        let shifted = g.add_const(ms, 1e-5);
        let scale = g.pow_const(shifted, -0.5);
        x.iter().map(|&xi| g.mul(xi, scale)).collect()
    }

    /// `exp(z - max z) / sum(...)`; the max is a plain number.
    fn softmax(&mut self, logits: &[NodeId]) -> Vec<NodeId> {
        let g = &mut self.graph;
        let max = logits
            .iter()
            .map(|&l| g.value(l))
            .fold(f64::NEG_INFINITY, |m, v| if v > m { v } else { m });
        let exps: Vec<NodeId> = logits
            .iter()
            .map(|&l| {
                let shifted = g.add_const(l, -max);
                g.exp(shifted)
            })
            .collect();
        let total = g.sum(exps.iter().copied());
        exps.iter().map(|&e| g.div(e, total)).collect()
    }

    /// The logits for `token` at `pos`, appending this position's keys and values.
    fn gpt(&mut self, token: usize, pos: usize) -> Vec<NodeId> {
        let d = self.cfg.n_embd;
        let hd = self.cfg.head_dim();
        let x: Vec<NodeId> = (0..d)
            .map(|i| {
                let t = (self.layout.wte.offset + token * d + i) as NodeId;
                let p = (self.layout.wpe.offset + pos * d + i) as NodeId;
                self.graph.add(t, p)
            })
            .collect();
        let mut x = self.rmsnorm(&x);
        let inv_sqrt_hd = pow(pow(hd as f64, 0.5), -1.0);
        for li in 0..self.cfg.n_layer {
            let lp = &self.layout.layers[li];
            let (wq, wk, wv) = (lp.attn_wq.offset, lp.attn_wk.offset, lp.attn_wv.offset);
            let (wo, fc1, fc2) = (lp.attn_wo.offset, lp.mlp_fc1.offset, lp.mlp_fc2.offset);
            let residual = x;
            let xn = self.rmsnorm(&residual);
            let q = self.linear(&xn, wq, d);
            let k = self.linear(&xn, wk, d);
            let v = self.linear(&xn, wv, d);
            self.keys[li].push(k);
            self.values[li].push(v);
            let mut x_attn = Vec::with_capacity(d);
            for h in 0..self.cfg.n_head {
                let hs = h * hd;
                let n_pos = self.keys[li].len();
                let logits: Vec<NodeId> = (0..n_pos)
                    .map(|t| {
                        let g = &mut self.graph;
                        let terms: Vec<NodeId> = (0..hd)
                            .map(|j| g.mul(q[hs + j], self.keys[li][t][hs + j]))
                            .collect();
                        let dot = g.sum(terms);
                        g.mul_const(dot, inv_sqrt_hd)
                    })
                    .collect();
                let weights = self.softmax(&logits);
                for j in 0..hd {
                    let g = &mut self.graph;
                    let terms: Vec<NodeId> = (0..n_pos)
                        .map(|t| g.mul(weights[t], self.values[li][t][hs + j]))
                        .collect();
                    x_attn.push(g.sum(terms));
                }
                // Kept by moving the node ids: the graph's arithmetic is untouched.
                self.attention[li * self.cfg.n_head + h] = weights;
            }
            let out = self.linear(&x_attn, wo, d);
            let x_mid: Vec<NodeId> = (0..d)
                .map(|i| self.graph.add(out[i], residual[i]))
                .collect();
            let xn = self.rmsnorm(&x_mid);
            let hidden = self.linear(&xn, fc1, self.cfg.mlp_dim());
            let act = self.cfg.activation;
            let hidden: Vec<NodeId> = hidden
                .iter()
                .map(|&h| self.graph.activation(h, act))
                .collect();
            let out = self.linear(&hidden, fc2, d);
            x = (0..d).map(|i| self.graph.add(out[i], x_mid[i])).collect();
        }
        self.linear(&x, self.layout.lm_head.offset, self.cfg.vocab_size)
    }

    fn clear_cache(&mut self) {
        self.keys.iter_mut().for_each(Vec::clear);
        self.values.iter_mut().for_each(Vec::clear);
    }

    /// Builds the loss graph of a batch: `(1/N) * sum(per-token losses)` over all `N` target
    /// tokens of all documents (for one document, exactly the original's loss).
    fn build_loss(&mut self, batch: &[&[usize]]) -> NodeId {
        self.graph.truncate(self.n_params);
        let block = self.cfg.block_size;
        let positions = || batch.iter().map(|t| predictions(t.len(), block));
        let nodes = self.n_params + self.count(graph_nodes(&self.cfg, positions(), true));
        self.graph.reserve(nodes);
        let mut losses = Vec::with_capacity(positions().sum());
        for tokens in batch {
            self.clear_cache();
            let n = predictions(tokens.len(), self.cfg.block_size);
            for pos in 0..n {
                let logits = self.gpt(tokens[pos], pos);
                let probs = self.softmax(&logits);
                let logp = self.graph.log(probs[tokens[pos + 1]]);
                losses.push(self.graph.mul_const(logp, -1.0));
            }
        }
        let n_tokens = losses.len();
        let total = self.graph.sum(losses);
        let mean = self.graph.mul_const(total, 1.0 / n_tokens as f64);
        assert_eq!(self.graph.len(), nodes, "graph_nodes counts the graph");
        mean
    }

    fn count(&self, nodes: Count) -> usize {
        let nodes = nodes.0.and_then(|n| usize::try_from(n).ok());
        nodes.expect("a graph that fits in memory")
    }
}

impl Engine for ScalarGpt {
    type F = f64;
    const ADAM_ROUNDING: Rounding = Rounding::Python;

    fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    fn forward_backward(&mut self, batch: &[&[usize]]) -> f64 {
        let loss = self.build_loss(batch);
        self.graph.grad[..self.n_params].fill(0.0);
        self.graph.backward(loss);
        self.graph.value(loss)
    }

    fn loss(&mut self, batch: &[&[usize]]) -> f64 {
        let loss = self.build_loss(batch);
        self.graph.value(loss)
    }

    fn params(&self) -> &[f64] {
        &self.graph.data[..self.n_params]
    }

    fn grads(&self) -> &[f64] {
        &self.graph.grad[..self.n_params]
    }

    fn params_and_grads_mut(&mut self) -> (&mut [f64], &mut [f64]) {
        (
            &mut self.graph.data[..self.n_params],
            &mut self.graph.grad[..self.n_params],
        )
    }

    fn reset_decode(&mut self) {
        self.graph.truncate(self.n_params);
        let decoded = graph_nodes(&self.cfg, [self.cfg.block_size], false);
        self.graph.reserve(self.n_params + self.count(decoded));
        self.clear_cache();
        self.attention.iter_mut().for_each(Vec::clear);
    }

    fn decode(&mut self, token: usize, pos: usize, logits: &mut [f64]) {
        let nodes = self.gpt(token, pos);
        for (out, &l) in logits.iter_mut().zip(&nodes) {
            *out = self.graph.value(l);
        }
    }

    fn attention(&self, layer: usize, head: usize, weights: &mut [f64]) {
        let nodes = &self.attention[layer * self.cfg.n_head + head];
        assert_eq!(
            weights.len(),
            nodes.len(),
            "one weight per decoded position"
        );
        for (w, &node) in weights.iter_mut().zip(nodes) {
            *w = self.graph.value(node);
        }
    }
}
