//! The scalar engine's graph: microgpt.py's `Value` nodes in an arena addressed by index,
//! and the backward pass over them.

use crate::model::config::Activation;
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
    pub(super) fn reserve(&mut self, nodes: usize) {
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
