#!/usr/bin/env python3
"""microgpt.py's algorithm in pure Python, written from ../shared/SPEC.md: a scalar `Value`
autograd and the same GPT, for timing the original's speed side by side with ours.

It is checked against the original program's real output: `--check-golden` trains the
golden's steps and asserts every loss is identical to the last bit (so this is the original's
computation, and its timing is the original's). Usage:

    python3 scripts/reference_microgpt.py --input ../shared/data/names.txt --steps 20
    python3 scripts/reference_microgpt.py --input ../shared/data/names.txt --check-golden \
        ../shared/golden/names_default.json --steps 50
Prints `ms_per_step <float>` last (after a one-step warm-up is excluded).
"""
import argparse
import json
import math
import random
import time


class Value:
    __slots__ = ("data", "grad", "_children", "_local_grads")

    def __init__(self, data, children=(), local_grads=()):
        self.data = data
        self.grad = 0
        self._children = children
        self._local_grads = local_grads

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1, 1))

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data))

    def __pow__(self, other):
        return Value(self.data**other, (self,), (other * self.data ** (other - 1),))

    def log(self):
        return Value(math.log(self.data), (self,), (1 / self.data,))

    def exp(self):
        return Value(math.exp(self.data), (self,), (math.exp(self.data),))

    def relu(self):
        return Value(max(0, self.data), (self,), (float(self.data > 0),))

    def __neg__(self):
        return self * -1

    def __radd__(self, other):
        return self + other

    def __sub__(self, other):
        return self + (-other)

    def __rmul__(self, other):
        return self * other

    def __truediv__(self, other):
        return self * other**-1

    def backward(self):
        topo, visited = [], set()
        stack = [(self, iter(self._children))]
        visited.add(self)
        while stack:  # iterative post-order DFS, children in creation order
            node, children = stack[-1]
            for child in children:
                if child not in visited:
                    visited.add(child)
                    stack.append((child, iter(child._children)))
                    break
            else:
                stack.pop()
                topo.append(node)
        self.grad = 1
        for v in reversed(topo):
            for child, local_grad in zip(v._children, v._local_grads):
                child.grad += local_grad * v.grad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--total-steps", type=int, default=1000, help="schedule length")
    ap.add_argument("--n-embd", type=int, default=16)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-layer", type=int, default=1)
    ap.add_argument("--block-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--check-golden", help="golden JSON whose losses must match bit for bit")
    a = ap.parse_args()

    random.seed(a.seed)
    with open(a.input, encoding="utf-8") as f:
        docs = [line.strip() for line in f if line.strip()]
    random.shuffle(docs)
    uchars = sorted(set("".join(docs)))
    BOS, vocab_size = len(uchars), len(uchars) + 1
    n_embd, n_head, n_layer, block_size = a.n_embd, a.n_head, a.n_layer, a.block_size
    head_dim = n_embd // n_head

    def matrix(nout, nin, std=0.08):
        return [[Value(random.gauss(0, std)) for _ in range(nin)] for _ in range(nout)]

    sd = {"wte": matrix(vocab_size, n_embd), "wpe": matrix(block_size, n_embd),
          "lm_head": matrix(vocab_size, n_embd)}
    for i in range(n_layer):
        for name in ("attn_wq", "attn_wk", "attn_wv", "attn_wo"):
            sd[f"layer{i}.{name}"] = matrix(n_embd, n_embd)
        sd[f"layer{i}.mlp_fc1"] = matrix(4 * n_embd, n_embd)
        sd[f"layer{i}.mlp_fc2"] = matrix(n_embd, 4 * n_embd)
    params = [p for mat in sd.values() for row in mat for p in row]

    def linear(x, w):
        return [sum(wi * xi for wi, xi in zip(wo, x)) for wo in w]

    def softmax(logits):
        max_val = max(val.data for val in logits)
        exps = [(val - max_val).exp() for val in logits]
        total = sum(exps)
        return [e / total for e in exps]

    def rmsnorm(x):
        ms = sum(xi * xi for xi in x) / len(x)
        scale = (ms + 1e-5) ** -0.5
        return [xi * scale for xi in x]

    def gpt(token_id, pos_id, keys, values):
        x = [t + p for t, p in zip(sd["wte"][token_id], sd["wpe"][pos_id])]
        x = rmsnorm(x)
        for li in range(n_layer):
            x_residual = x
            x = rmsnorm(x)
            q = linear(x, sd[f"layer{li}.attn_wq"])
            k = linear(x, sd[f"layer{li}.attn_wk"])
            v = linear(x, sd[f"layer{li}.attn_wv"])
            keys[li].append(k)
            values[li].append(v)
            x_attn = []
            for h in range(n_head):
                hs = h * head_dim
                q_h = q[hs:hs + head_dim]
                k_h = [ki[hs:hs + head_dim] for ki in keys[li]]
                v_h = [vi[hs:hs + head_dim] for vi in values[li]]
                attn_logits = [sum(q_h[j] * k_h[t][j] for j in range(head_dim)) / head_dim**0.5
                               for t in range(len(k_h))]
                w = softmax(attn_logits)
                x_attn.extend(sum(w[t] * v_h[t][j] for t in range(len(v_h)))
                              for j in range(head_dim))
            x = linear(x_attn, sd[f"layer{li}.attn_wo"])
            x = [p + r for p, r in zip(x, x_residual)]
            x_residual = x
            x = rmsnorm(x)
            x = [xi.relu() for xi in linear(x, sd[f"layer{li}.mlp_fc1"])]
            x = linear(x, sd[f"layer{li}.mlp_fc2"])
            x = [p + r for p, r in zip(x, x_residual)]
        return linear(x, sd["lm_head"])

    lr, beta1, beta2, eps = 0.01, 0.85, 0.99, 1e-8
    m, v = [0.0] * len(params), [0.0] * len(params)
    golden = json.load(open(a.check_golden))["losses"] if a.check_golden else None
    t_start = None
    for step in range(a.steps):
        if step == 1:
            t_start = time.perf_counter()
        doc = docs[step % len(docs)]
        tokens = [BOS] + [uchars.index(ch) for ch in doc] + [BOS]
        n = min(block_size, len(tokens) - 1)
        keys, values = [[] for _ in range(n_layer)], [[] for _ in range(n_layer)]
        losses = []
        for pos_id in range(n):
            probs = softmax(gpt(tokens[pos_id], pos_id, keys, values))
            losses.append(-probs[tokens[pos_id + 1]].log())
        loss = (1 / n) * sum(losses)
        loss.backward()
        lr_t = lr * (1 - step / a.total_steps)
        for i, p in enumerate(params):
            m[i] = beta1 * m[i] + (1 - beta1) * p.grad
            v[i] = beta2 * v[i] + (1 - beta2) * p.grad**2
            m_hat = m[i] / (1 - beta1 ** (step + 1))
            v_hat = v[i] / (1 - beta2 ** (step + 1))
            p.data -= lr_t * m_hat / (v_hat**0.5 + eps)
            p.grad = 0
        if golden is not None:
            assert loss.data == float(golden[step]), (step + 1, loss.data, golden[step])
    elapsed = time.perf_counter() - t_start if t_start else float("nan")
    if golden is not None:
        print(f"golden: {a.steps} losses identical to the last bit")
    print(f"ms_per_step {1000 * elapsed / max(1, a.steps - 1):.3f}")


if __name__ == "__main__":
    main()
