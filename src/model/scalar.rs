//! The scalar reference engine: microgpt.py's `Value` autograd and GPT, one graph node per
//! scalar operation, reproducing the original bit for bit (docs/SPEC.md §3, §6).
//!
//! Nodes live in an arena addressed by index. The parameters are the first nodes and stay;
//! everything after them is truncated before each new graph. The original's constant nodes
//! (a plain number wrapped as the second child of `+` or `*`) are leaves no gradient
//! ordering depends on, so they are not materialised: the number is kept as the local
//! gradient of the first child instead.

use crate::model::config::predictions;
use crate::model::config::{Activation, ConfigError, ModelConfig, ParamLayout};
use crate::model::engine::Engine;
use crate::model::inventory::{n, Count};
use crate::model::optim::Rounding;
use crate::numerics::pow;

pub type NodeId = u32;
const NONE: NodeId = NodeId::MAX;

/// The arena: struct-of-arrays, so the parameters' values and gradients are flat slices.
#[derive(Default)]
pub struct Graph {
    pub data: Vec<f64>,
    pub grad: Vec<f64>,
    children: Vec<[NodeId; 2]>,
    local_grads: Vec<[f64; 2]>,
    // Reused by backward.
    visited: Vec<bool>,
    topo: Vec<NodeId>,
    stack: Vec<(NodeId, u8)>,
}

impl Graph {
    fn push(&mut self, data: f64, children: [NodeId; 2], local_grads: [f64; 2]) -> NodeId {
        let id = self.data.len() as NodeId;
        self.data.push(data);
        self.grad.push(0.0);
        self.children.push(children);
        self.local_grads.push(local_grads);
        id
    }

    pub fn leaf(&mut self, data: f64) -> NodeId {
        self.push(data, [NONE, NONE], [0.0, 0.0])
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Room for `nodes` nodes in all, exactly (a graph's count is known before it is built).
    fn reserve(&mut self, nodes: usize) {
        let more = nodes.saturating_sub(self.len());
        self.data.reserve_exact(more);
        self.grad.reserve_exact(more);
        self.children.reserve_exact(more);
        self.local_grads.reserve_exact(more);
    }

    /// Drops every node from `len` on (the parameters stay).
    pub fn truncate(&mut self, len: usize) {
        self.data.truncate(len);
        self.grad.truncate(len);
        self.children.truncate(len);
        self.local_grads.truncate(len);
    }

    pub fn value(&self, v: NodeId) -> f64 {
        self.data[v as usize]
    }

    /// `a + b`, local gradients `(1, 1)`.
    pub fn add(&mut self, a: NodeId, b: NodeId) -> NodeId {
        let data = self.value(a) + self.value(b);
        self.push(data, [a, b], [1.0, 1.0])
    }

    /// `a + c` for a plain number `c`.
    pub fn add_const(&mut self, a: NodeId, c: f64) -> NodeId {
        let data = self.value(a) + c;
        self.push(data, [a, NONE], [1.0, 0.0])
    }

    /// `a * b`, local gradients `(b, a)`.
    pub fn mul(&mut self, a: NodeId, b: NodeId) -> NodeId {
        let (x, y) = (self.value(a), self.value(b));
        self.push(x * y, [a, b], [y, x])
    }

    /// `a * c` for a plain number `c` (also `-a` as `a * -1` and `a / c` as `a * c**-1`).
    pub fn mul_const(&mut self, a: NodeId, c: f64) -> NodeId {
        let data = self.value(a) * c;
        self.push(data, [a, NONE], [c, 0.0])
    }

    /// `a ** e`, local gradient `e * a ** (e - 1)`, both the C `pow`.
    pub fn pow_const(&mut self, a: NodeId, e: f64) -> NodeId {
        let x = self.value(a);
        self.push(pow(x, e), [a, NONE], [e * pow(x, e - 1.0), 0.0])
    }

    /// `a / b` = `a * b ** -1`.
    pub fn div(&mut self, a: NodeId, b: NodeId) -> NodeId {
        let inv = self.pow_const(b, -1.0);
        self.mul(a, inv)
    }

    pub fn log(&mut self, a: NodeId) -> NodeId {
        let x = self.value(a);
        self.push(x.ln(), [a, NONE], [1.0 / x, 0.0])
    }

    pub fn exp(&mut self, a: NodeId) -> NodeId {
        let x = self.value(a);
        self.push(x.exp(), [a, NONE], [x.exp(), 0.0])
    }

    pub fn activation(&mut self, a: NodeId, act: Activation) -> NodeId {
        let (y, dy) = act.forward_and_grad(self.value(a));
        self.push(y, [a, NONE], [dy, 0.0])
    }

    /// Python's `sum(terms)`: starts from the integer 0, so the first term `a` becomes the
    /// node `a + 0`, and each further term `t` the node `acc + t`.
    pub fn sum(&mut self, terms: impl IntoIterator<Item = NodeId>) -> NodeId {
        let mut terms = terms.into_iter();
        let first = terms.next().expect("sum of no terms");
        let mut acc = self.add_const(first, 0.0);
        for t in terms {
            acc = self.add(acc, t);
        }
        acc
    }

    /// Back-propagates from `root` as the original: a depth-first post-order over children
    /// in creation order, each node once, then `child.grad += local_grad * node.grad` in
    /// reverse of that order. Iterative, so deep graphs cannot overflow the stack.
    pub fn backward(&mut self, root: NodeId) {
        self.visited.clear();
        self.visited.reserve_exact(self.data.len());
        self.visited.resize(self.data.len(), false);
        self.topo.clear();
        self.topo.reserve_exact(self.data.len());
        self.stack.clear();
        self.visited[root as usize] = true;
        self.stack.push((root, 0));
        while let Some(top) = self.stack.last_mut() {
            let (node, next_child) = *top;
            if next_child < 2 {
                top.1 += 1;
                let child = self.children[node as usize][next_child as usize];
                if child != NONE && !self.visited[child as usize] {
                    self.visited[child as usize] = true;
                    self.stack.push((child, 0));
                }
            } else {
                self.stack.pop();
                self.topo.push(node);
            }
        }
        self.grad[root as usize] = 1.0;
        for &node in self.topo.iter().rev() {
            let g = self.grad[node as usize];
            let children = self.children[node as usize];
            let local = self.local_grads[node as usize];
            for k in 0..2 {
                if children[k] != NONE {
                    self.grad[children[k] as usize] += local[k] * g;
                }
            }
        }
    }
}

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
