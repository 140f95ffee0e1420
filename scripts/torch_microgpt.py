#!/usr/bin/env python3
"""The microgpt model of shared/SPEC.md, in PyTorch (batched), for validation and benchmarking.

Written from SPEC.md. Same model, same parameter layout ([out, in] matrices, no biases, created
in the SPEC §2 order as wte, wpe, lm_head, layer{i}.attn_wq/wk/wv/wo, layer{i}.mlp_fc1/fc2),
same Adam with linear learning-rate decay (SPEC §4). Batched training: step s takes docs
s*B .. s*B+B-1 (cyclically) of the shuffled list, each encoded [BOS]+chars+[BOS] and cropped to
block_size+1 tokens, padded to the longest of the batch; padded positions are masked out of the
attention keys and of the loss, and the loss is the mean over the batch's real target tokens.
At batch size 1 this is exactly SPEC §4.

  python scripts/torch_microgpt.py --check-golden      # float64, batch 1: same losses as golden/
  python scripts/torch_microgpt.py train --batch-size 32 --steps 200 --out /tmp/run
      (writes OUT/metrics.csv: step,loss,tokens,elapsed_s, like the Rust binary)
  ... train --autocast bf16     the forward pass and loss under torch.autocast("cpu", bfloat16):
      f32 weights, gradients and Adam, bf16 matmuls (as `microgpt train --dtype bf16`)
  ... train --compile           the model through torch.compile (inductor, C++ on the CPU)

Needs torch (bash scripts/setup_torch_venv.sh creates .venv-bench with it).
"""
import argparse
import contextlib
import csv
import json
import math
import os
import random
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    sys.exit("torch is not installed: run `bash scripts/setup_torch_venv.sh` and use "
             ".venv-bench/bin/python")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_INPUT = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "names.txt"))
DEFAULT_GOLDEN = os.path.normpath(os.path.join(ROOT, "..", "shared", "golden", "names_default.json"))

INIT_STD = 0.08
RMS_EPS = 1e-5


# ---------------------------------------------------------------- data (SPEC §1)
def load_docs(path):
    # Text mode with universal newlines splits lines at \n, \r\n and \r, as SPEC §1 says.
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


class Tokenizer:
    def __init__(self, docs):
        self.chars = sorted(set("".join(docs)))
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        self.bos = len(self.chars)
        self.vocab_size = len(self.chars) + 1

    def encode(self, doc):
        return [self.bos] + [self.stoi[c] for c in doc] + [self.bos]


def prepare(path, seed, block_size):
    """Docs shuffled with Python's random seeded `seed` (SPEC §5); returns (rng, tokenizer,
    encoded docs cropped to block_size + 1 tokens). rng is left where SPEC's init expects it."""
    docs = load_docs(path)
    rng = random.Random(seed)
    rng.shuffle(docs)
    tok = Tokenizer(docs)
    enc = [tok.encode(d)[: block_size + 1] for d in docs]
    return rng, tok, enc


def make_batch(enc, step, batch_size, pad_id):
    """(inputs [B,T], targets [B,T] with -1 at padding, key_valid [B,T] or None, n_real)."""
    n_docs = len(enc)
    rows = [enc[(step * batch_size + j) % n_docs] for j in range(batch_size)]
    T = max(len(r) for r in rows) - 1
    inp, tgt, n_real = [], [], 0
    for r in rows:
        n = len(r) - 1
        n_real += n
        pad = T - n
        inp.append(r[:-1] + [pad_id] * pad)
        tgt.append(r[1:] + [-1] * pad)
    inputs = torch.tensor(inp, dtype=torch.long)
    targets = torch.tensor(tgt, dtype=torch.long)
    key_valid = None if n_real == batch_size * T else targets >= 0  # position p is real iff its target is
    return inputs, targets, key_valid, n_real


# ---------------------------------------------------------------- model (SPEC §2, §3)
def rmsnorm(x):
    return x * (x.pow(2).mean(dim=-1, keepdim=True) + RMS_EPS).pow(-0.5)


def activation(name):
    if name == "relu":
        return F.relu
    if name == "gelu":  # GPT-2's tanh approximation
        return lambda x: F.gelu(x, approximate="tanh")
    if name == "relu2":
        return lambda x: F.relu(x).square()
    raise ValueError(f"unknown activation {name!r}")


class Layer(nn.Module):
    def __init__(self, d, dtype):
        super().__init__()
        def mat(o, i):
            return nn.Parameter(torch.empty(o, i, dtype=dtype))
        self.attn_wq = mat(d, d)
        self.attn_wk = mat(d, d)
        self.attn_wv = mat(d, d)
        self.attn_wo = mat(d, d)
        self.mlp_fc1 = mat(4 * d, d)
        self.mlp_fc2 = mat(d, 4 * d)


class MicroGPT(nn.Module):
    def __init__(self, vocab_size, n_embd=16, n_head=4, n_layer=1, block_size=16,
                 act="relu", dtype=torch.float32, attn="manual"):
        super().__init__()
        assert n_embd % n_head == 0
        self.n_embd, self.n_head, self.n_layer, self.block_size = n_embd, n_head, n_layer, block_size
        self.head_dim = n_embd // n_head
        self.act = activation(act)
        self.attn = attn
        # Same as the reference's `/ head_dim ** 0.5`, which is `* pow(head_dim ** 0.5, -1)`.
        self.scale = (self.head_dim ** 0.5) ** -1
        self.wte = nn.Parameter(torch.empty(vocab_size, n_embd, dtype=dtype))
        self.wpe = nn.Parameter(torch.empty(block_size, n_embd, dtype=dtype))
        self.lm_head = nn.Parameter(torch.empty(vocab_size, n_embd, dtype=dtype))
        for i in range(n_layer):
            setattr(self, f"layer{i}", Layer(n_embd, dtype))

    def layers(self):
        return [getattr(self, f"layer{i}") for i in range(self.n_layer)]

    def init_python(self, rng):
        """SPEC §2: every element gauss(0, 0.08), parameters in order, row-major."""
        with torch.no_grad():
            for _, p in self.named_parameters():
                vals = [rng.gauss(0, INIT_STD) for _ in range(p.numel())]
                p.copy_(torch.tensor(vals, dtype=torch.float64).view(p.shape))

    def init_torch(self, seed):
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for _, p in self.named_parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * INIT_STD)

    def forward(self, idx, key_valid=None):
        B, T = idx.shape
        H, hd = self.n_head, self.head_dim
        x = rmsnorm(F.embedding(idx, self.wte) + self.wpe[:T])
        allowed = torch.ones(T, T, dtype=torch.bool).tril()  # query p sees keys s <= p
        if key_valid is not None:
            allowed = allowed & key_valid[:, None, None, :]  # [B, 1, T, T]
        for L in self.layers():
            r = x
            h = rmsnorm(x)
            q = F.linear(h, L.attn_wq).view(B, T, H, hd).transpose(1, 2)
            k = F.linear(h, L.attn_wk).view(B, T, H, hd).transpose(1, 2)
            v = F.linear(h, L.attn_wv).view(B, T, H, hd).transpose(1, 2)
            if self.attn == "sdpa":
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=self.scale)
            else:
                att = (q @ k.transpose(-2, -1)) * self.scale
                att = att.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
                y = att @ v
            y = y.transpose(1, 2).reshape(B, T, self.n_embd)
            x = F.linear(y, L.attn_wo) + r
            r = x
            h = rmsnorm(x)
            x = F.linear(self.act(F.linear(h, L.mlp_fc1)), L.mlp_fc2) + r
        return F.linear(x, self.lm_head)


def loss_fn(logits, targets):
    # mean over the real (non-padding) target tokens of the batch
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-1)


# ---------------------------------------------------------------- training (SPEC §4)
class ManualAdam:
    """SPEC §4 written out: m_hat = m/(1-b1^t), v_hat = v/(1-b2^t), p -= lr_t m_hat/(sqrt(v_hat)+eps)."""

    def __init__(self, params, betas, eps):
        self.params = list(params)
        self.b1, self.b2 = betas
        self.eps = eps
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    @torch.no_grad()
    def step(self, lr):
        self.t += 1
        c1, c2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t
        for p, m, v in zip(self.params, self.m, self.v):
            g = p.grad
            m.mul_(self.b1).add_(g, alpha=1 - self.b1)
            v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
            p.sub_(lr * (m / c1) / ((v / c2).sqrt() + self.eps))

    def zero_grad(self):
        for p in self.params:
            p.grad = None


class TorchAdam:
    """torch.optim.Adam (same update formula as SPEC §4), with the step's lr set by hand."""

    def __init__(self, params, betas, eps):
        self.opt = torch.optim.Adam(params, lr=0.01, betas=betas, eps=eps, foreach=True)

    def step(self, lr):
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.opt.step()

    def zero_grad(self):
        self.opt.zero_grad(set_to_none=True)


def train(model, enc, pad_id, num_steps, batch_size=1, lr=0.01, betas=(0.85, 0.99), eps=1e-8,
          adam="torch", run_steps=None, on_step=None, on_first_grads=None, autocast=None,
          forward=None):
    """Trains for run_steps (default num_steps) of a num_steps-long lr schedule.
    on_step(step_1_based, loss_float, n_real_tokens) after each step. autocast="bf16" runs the
    forward pass and the loss under torch.autocast("cpu", bfloat16); forward (default model)
    is what is called, e.g. torch.compile(model)."""
    opt = (TorchAdam if adam == "torch" else ManualAdam)(model.parameters(), betas, eps)
    forward = model if forward is None else forward
    cast = ((lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if autocast == "bf16"
            else contextlib.nullcontext)
    for s in range(num_steps if run_steps is None else run_steps):
        inputs, targets, key_valid, n_real = make_batch(enc, s, batch_size, pad_id)
        with cast():
            loss = loss_fn(forward(inputs, key_valid), targets)
        loss.backward()
        if on_first_grads is not None and s == 0:
            on_first_grads(model)
        opt.step(lr * (1 - s / num_steps))
        opt.zero_grad()
        if on_step is not None:
            on_step(s + 1, loss.item(), n_real)
    return model


def count_params(model):
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- golden check
def check_golden(args):
    torch.set_num_threads(args.threads)
    with open(args.golden) as f:
        gold = json.load(f)
    cfg = gold["config"]
    n_embd, n_head = cfg.get("n_embd", 16), cfg.get("n_head", 4)
    n_layer, block_size = cfg.get("n_layer", 1), cfg.get("block_size", 16)
    num_steps, seed = cfg.get("steps", 1000), cfg.get("seed", 42)
    path = cfg.get("input", args.input)
    rng, tok, enc = prepare(path, seed, block_size)
    problems = []
    if len(enc) != gold["num_docs"] or tok.vocab_size != gold["vocab_size"]:
        problems.append(f"docs/vocab {len(enc)}/{tok.vocab_size} != {gold['num_docs']}/{gold['vocab_size']}")
    want = [float(x) for x in gold["losses"]]
    n = min(args.golden_steps, len(want))
    rng_state = rng.getstate()
    worst = 0.0
    for adam in ("torch", "manual"):
        rng.setstate(rng_state)
        model = MicroGPT(tok.vocab_size, n_embd, n_head, n_layer, block_size, dtype=torch.float64)
        model.init_python(rng)
        if count_params(model) != gold["num_params"]:
            problems.append(f"num_params {count_params(model)} != {gold['num_params']}")
        got, grad_diff = [], [None]

        def first_grads(m):
            if "first_step_grads" in gold:
                g = torch.cat([p.grad.reshape(-1) for p in m.parameters()])
                ref = torch.tensor([float(x) for x in gold["first_step_grads"]], dtype=torch.float64)
                grad_diff[0] = (g - ref).abs().max().item()

        train(model, enc, tok.bos, num_steps, batch_size=1, adam=adam, run_steps=n,
              on_step=lambda s, l, nt: got.append(l), on_first_grads=first_grads)
        diffs = [abs(a - b) for a, b in zip(got, want)]
        d = max(diffs)
        worst = max(worst, d, grad_diff[0] or 0.0)
        print(f"golden {os.path.basename(args.golden)} [{adam} Adam]: {n} steps, max |loss - golden| = {d:.3e}"
              + (f", max |first-step grad - golden| = {grad_diff[0]:.3e}" if grad_diff[0] is not None else ""))
        if args.verbose:
            for i, (a, b) in enumerate(zip(got, want)):
                print(f"  step {i + 1:3d}  torch {a!r:22}  golden {b!r:22}  diff {abs(a - b):.1e}")
    for p in problems:
        print("MISMATCH:", p)
    ok = worst <= args.tol and not problems
    print(f"{'PASS' if ok else 'FAIL'}: max abs difference {worst:.3e} (tolerance {args.tol:g})")
    return 0 if ok else 1


# ---------------------------------------------------------------- train CLI (metrics like the Rust binary)
def run_train(args):
    torch.set_num_threads(args.threads)
    if args.autocast and args.dtype != "f32":
        sys.exit("torch_microgpt: --autocast bf16 keeps f32 master weights: use --dtype f32")
    dtype = {"f32": torch.float32, "f64": torch.float64}[args.dtype]
    rng, tok, enc = prepare(args.input, args.seed, args.block_size)
    model = MicroGPT(tok.vocab_size, args.n_embd, args.n_head, args.n_layer, args.block_size,
                     act=args.activation, dtype=dtype, attn=args.attn)
    if args.init == "python":
        model.init_python(rng)
    else:
        model.init_torch(args.seed)
    rows = []
    total = [0]
    t0 = time.perf_counter()

    def on_step(step, loss, n_real):
        total[0] += n_real
        rows.append((step, loss, total[0], time.perf_counter() - t0))
        if not args.quiet and (step == 1 or step % args.log_every == 0 or step == args.steps):
            print(f"step {step:5d} / {args.steps} | loss {loss:.4f} | {total[0] / rows[-1][3]:.0f} tok/s", flush=True)

    forward = torch.compile(model) if args.compile else model
    train(model, enc, tok.bos, args.steps, batch_size=args.batch_size, lr=args.lr, adam=args.adam,
          on_step=on_step, autocast=args.autocast, forward=forward)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "metrics.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["step", "loss", "tokens", "elapsed_s"])
            for step, loss, tokens, el in rows:
                w.writerow([step, repr(loss), tokens, f"{el:.6f}"])
    if not args.quiet:
        print(f"params {count_params(model)}, {total[0]} tokens in {rows[-1][3]:.3f} s")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", nargs="?", choices=["train"], help="train (writes OUT/metrics.csv)")
    ap.add_argument("--check-golden", action="store_true", help="float64, batch 1: compare losses with a golden file")
    ap.add_argument("--golden", default=DEFAULT_GOLDEN)
    ap.add_argument("--golden-steps", type=int, default=20)
    ap.add_argument("--tol", type=float, default=1e-9)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--input", default=DEFAULT_INPUT)
    ap.add_argument("--out", default=None)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--block-size", type=int, default=16)
    ap.add_argument("--n-embd", type=int, default=16)
    ap.add_argument("--n-layer", type=int, default=1)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--activation", default="relu", choices=["relu", "gelu", "relu2"])
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--dtype", default="f32", choices=["f32", "f64"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--adam", default="torch", choices=["torch", "manual"])
    ap.add_argument("--attn", default="manual", choices=["manual", "sdpa"],
                    help="attention: explicit matmul/softmax, or F.scaled_dot_product_attention")
    ap.add_argument("--init", default="torch", choices=["torch", "python"],
                    help="python: SPEC's gauss init from the shared RNG (slow for big models)")
    ap.add_argument("--autocast", default=None, choices=["bf16"],
                    help="bf16: forward and loss under torch.autocast('cpu', bfloat16), f32 master weights")
    ap.add_argument("--compile", action="store_true", help="train through torch.compile(model)")
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.check_golden:
        return check_golden(args)
    if args.mode == "train":
        return run_train(args)
    ap.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
