#!/usr/bin/env python3
"""Side-by-side training throughput: our Rust tensor engine vs the same model in PyTorch.

Every side trains the model of shared/SPEC.md (scripts/torch_microgpt.py is the PyTorch one,
validated against the golden losses with `--check-golden`) on the same data (the same shuffled
document stream, batches of B docs padded to the longest), f32 master weights, 2 threads. The
sides (--sides, default all): ours (f32), ours_bf16 (`--dtype bf16`: bf16 GEMM operands, f32
everything else), torch (eager f32), torch_compile (torch.compile, f32) and torch_bf16 (eager
under torch.autocast("cpu", bfloat16)); with --baseline BIN, also baseline: an earlier build of
ours in f32 (and baseline_bf16, in bf16), so that a change's speed is measured before and
after in one run. Two tables:
  short: the names dataset at block_size 16 (documents of ~7 characters), several model sizes;
  context: long documents (tiny Shakespeare cut into 300-character lines, so every document
    fills the block) at block_size 16, 64, 128, 256 for (128, 4, 4, B 12), and (384, 6, 6, B 8)
    and GPT-2 small's shape (768, 12, 12, B 4) at 256; per-step time against block_size is drawn
    to docs/bench_context.png (matplotlib).
Each side runs as a subprocess that writes metrics.csv (step, loss, tokens, elapsed_s); tokens/s
counts real target tokens (no padding) over the steps after a warm-up (the first 10%, at least 1).
Each subprocess's peak resident memory is the RSS column, the largest over a side's runs of the
config: the VmHWM that /usr/bin/time reports for it. (wait4's ru_maxrss of a child of this
script is no measure: Linux folds the pre-exec image, this Python with torch loaded, into it.)
The number of steps is chosen per side from a short calibration run so that each timed run takes
about --seconds; the two sides take turns for --repeats timed runs each and each side's best is
kept, so a slow phase of the machine falls on both rather than on one side's every run. The 2 cores
are easily disturbed (other processes make OpenMP/BLAS threads stall), so before each run the
script waits a little for the CPUs to be idle, and says so when they were not. At lr 0.01 the
larger configs diverge (the loss blows up); that does not change the work per step, and --lr, when
given, goes to both sides.

  bash scripts/setup_torch_venv.sh            # once: .venv-bench with torch
  .venv-bench/bin/python scripts/bench_vs_torch.py [--quick] [--bin target/release/microgpt]

Model FLOPs per trained token, as nanoGPT's estimate_mfu (forward + backward = 3 x forward,
2 FLOPs per multiply-add):
  6 * N  +  12 * n_layer * n_head * head_dim * T
where N = the weights used in matrix products (all parameters but the wte/wpe lookup tables:
lm_head + 12 * n_embd^2 per layer), and the attention term is the PaLM / nanoGPT estimate
(QK^T and AV: 2 * 2 * T * n_embd FLOPs per layer per token forward, x3 for fwd+bwd) with
T = block_size, as nanoGPT counts it (the whole square, not the causal half).
MFU = model FLOP/s / peak, where peak is this machine's float32 GEMM rate measured here with torch
(square matmul, --threads threads, best of several runs); the bf16 sides' MFU is over the bf16
GEMM rate measured the same way (torch.mm on bfloat16 operands).
"""
import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV_PY = os.path.join(ROOT, ".venv-bench", "bin", "python")

try:
    import torch
except ImportError:
    if os.path.exists(VENV_PY) and os.path.realpath(sys.prefix) != os.path.realpath(os.path.join(ROOT, ".venv-bench")):
        os.execv(VENV_PY, [VENV_PY] + sys.argv)  # re-run under the bench venv
    sys.exit("bench_vs_torch: torch is not installed. Run `bash scripts/setup_torch_venv.sh` "
             "(creates .venv-bench), then `.venv-bench/bin/python scripts/bench_vs_torch.py`.")

sys.path.insert(0, HERE)
import torch_microgpt as tm  # noqa: E402

SHORT_CONFIGS = [  # (n_embd, n_layer, n_head, batch, block_size)
    (16, 1, 4, 1, 16),
    (16, 1, 4, 32, 16),
    (64, 2, 4, 16, 16),
    (128, 4, 4, 32, 16),
    (256, 4, 8, 32, 16),
    (512, 6, 8, 64, 16),
]
CONTEXT_CONFIGS = [(128, 4, 4, 12, t) for t in (16, 64, 128, 256)] + [(384, 6, 6, 8, 256), (768, 12, 12, 4, 256)]
# Models this large (matrix weights) time a few steps only: seconds each, and the memory column
# needs no more.
BIG_MATMUL_PARAMS = 50e6
LONG_DOC_CHARS = 300


def long_documents(path, out_dir):
    """Tiny Shakespeare as one line of text cut into LONG_DOC_CHARS-character documents (longer
    than any block here, so every document fills the block). Written once, next to our binary."""
    out = os.path.join(out_dir, f"shakespeare_{LONG_DOC_CHARS}.txt")
    if not os.path.exists(out):
        with open(path, encoding="utf-8") as f:
            text = " ".join(line.strip() for line in f if line.strip())
        docs = (text[i:i + LONG_DOC_CHARS].strip() for i in range(0, len(text), LONG_DOC_CHARS))
        os.makedirs(out_dir, exist_ok=True)
        with open(out, "w", encoding="utf-8") as f:
            f.write("\n".join(d for d in docs if len(d) > 1) + "\n")
    return out


# ---------------------------------------------------------------- measurement helpers
def sgemm_peak(threads, n=2048, repeats=8, dtype=torch.float32):
    """Best n x n matmul rate in FLOP/s with `threads` threads (float32, or dtype)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    c = torch.empty(n, n, dtype=dtype)
    torch.mm(a, b, out=c)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b, out=c)
        best = min(best, time.perf_counter() - t)
    return 2.0 * n ** 3 / best


def cpu_busy(interval=0.5):
    """Fraction of all CPUs' time spent busy over `interval` seconds (from /proc/stat)."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v), idle
    try:
        t0, i0 = sample()
        time.sleep(interval)
        t1, i1 = sample()
        return 1.0 - (i1 - i0) / max(t1 - t0, 1)
    except OSError:
        return 0.0


WAIT_BUDGET = [120.0]  # seconds of waiting for idle CPUs left for the whole script


def wait_for_idle(max_wait, threshold=0.25):
    """Waits (up to max_wait s, and within WAIT_BUDGET overall) until other processes leave the
    CPUs mostly idle; returns the last busy fraction seen. Other work on the 2 cores wrecks
    multi-threaded timings (OpenMP threads spin and get descheduled)."""
    start = time.time()
    deadline = start + min(max_wait, WAIT_BUDGET[0])
    busy = cpu_busy()
    while busy > threshold and time.time() < deadline:
        time.sleep(1.5)
        busy = cpu_busy()
    WAIT_BUDGET[0] = max(0.0, WAIT_BUDGET[0] - (time.time() - start))
    return busy


def read_metrics(path):
    """Rows of metrics.csv as (step, tokens, elapsed_s), sorted by step."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"step", "tokens", "elapsed_s"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"metrics.csv lacks column(s) {', '.join(sorted(missing))} (has: {', '.join(reader.fieldnames or [])})")
        rows = [(int(r["step"]), int(float(r["tokens"])), float(r["elapsed_s"])) for r in reader]
    rows.sort()
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


def throughput(rows, warmup_frac=0.1):
    """Real target tokens per second over the rows after the warm-up (first 10%, >= 1 row)."""
    k = max(1, math.ceil(warmup_frac * len(rows)))
    if len(rows) <= k:  # too short to skip: use everything since the start
        step, tokens, el = rows[-1]
        return tokens / el if el > 0 else float("nan")
    _, tok0, t0 = rows[k - 1]
    _, tok1, t1 = rows[-1]
    return (tok1 - tok0) / (t1 - t0) if t1 > t0 else float("nan")


def seconds_per_step(rows):
    """Per-step time of a calibration run, leaving out the first step when possible."""
    if len(rows) >= 2:
        return (rows[-1][2] - rows[0][2]) / (len(rows) - 1)
    return rows[-1][2]


def model_flops_per_token(n_embd, n_layer, vocab_size, block_size):
    """nanoGPT's estimate_mfu: 6N + 12 L H hd T, with H hd = n_embd and T = block_size."""
    n_matmul = vocab_size * n_embd + n_layer * 12 * n_embd * n_embd  # lm_head + per-layer weights
    return 6 * n_matmul + 12 * n_layer * n_embd * block_size


def total_params(n_embd, n_layer, vocab_size, block_size):
    return 2 * vocab_size * n_embd + block_size * n_embd + n_layer * 12 * n_embd * n_embd


def expected_tokens(enc, steps, batch):
    n = len(enc)
    return sum(len(enc[i % n]) - 1 for i in range(steps * batch))


# ---------------------------------------------------------------- the two sides
class Side:
    def __init__(self, name, args):
        self.name, self.args = name, args
        self.input = args.input  # the current table's data

    def command(self, cfg, steps, out):
        raise NotImplementedError

    def run(self, cfg, steps):
        busy = wait_for_idle(self.args.wait_idle)
        self.busy = max(getattr(self, "busy", 0.0), busy)
        out = tempfile.mkdtemp(prefix=f"bench-{self.name}-")
        try:
            cmd = self.command(cfg, steps, out)
            code, output, rss = run_measured(cmd, self.args.timeout)
            self.peak_rss = max(getattr(self, "peak_rss", 0), rss)
            metrics = os.path.join(out, "metrics.csv")
            if code != 0 or not os.path.exists(metrics):
                tail = output.strip().splitlines()[-3:]
                raise RuntimeError(f"exit {code}: {' | '.join(tail) or 'no metrics.csv'}\n    command: {' '.join(cmd)}")
            try:
                return read_metrics(metrics)
            except ValueError as err:
                raise RuntimeError(f"{err}\n    command: {' '.join(cmd)}") from None
        finally:
            if not self.args.keep_tmp:
                shutil.rmtree(out, ignore_errors=True)

    def calibrate(self, cfg, est_step_s):
        """A short run; returns the steps for a timed run of about --seconds."""
        a = self.args
        self.busy, self.peak_rss = 0.0, 0
        calib = int(min(max(a.calib_seconds / max(est_step_s, 1e-6), 3), 400))
        per_step = seconds_per_step(self.run(cfg, calib))
        e, l = cfg[0], cfg[1]
        floor = 3 if 12 * l * e * e > BIG_MATMUL_PARAMS else a.min_steps
        return int(min(max(math.ceil(a.seconds / 0.9 / max(per_step, 1e-7)), floor), a.max_steps))


def run_measured(cmd, timeout):
    """Runs `cmd` under /usr/bin/time; returns its exit code, its output (stdout and stderr) and
    its peak resident bytes (time's %M, KiB: the command's own, from a small parent)."""
    with tempfile.TemporaryFile(mode="w+") as log, tempfile.NamedTemporaryFile(mode="r") as rss:
        p = subprocess.Popen([TIME, "-f", "%M", "-o", rss.name] + cmd, stdout=log,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            p.wait()
        log.seek(0)
        kib = rss.read().strip().splitlines()
        peak = int(kib[-1]) * 1024 if kib and kib[-1].isdigit() else 0
        return p.returncode, log.read(), peak


TIME = "/usr/bin/time"  # GNU time (Debian: apt-get install time)


def measure(sides, cfg, est_step_s, args):
    """Calibrates each side, then runs --repeats timed runs per side, the sides taking turns
    (so that a slow phase of the machine falls on both, not on one side's every run); keeps
    each side's best. Returns {side name: (tokens/s, steps, rows) or the exception}."""
    steps, best = {}, {}
    for side in sides:
        try:
            steps[side.name] = side.calibrate(cfg, est_step_s)
        except Exception as err:  # keep going: show what can be shown
            best[side.name] = err
    for _ in range(args.repeats):
        for side in sides:
            if side.name not in steps or isinstance(best.get(side.name), Exception):
                continue
            try:
                rows = side.run(cfg, steps[side.name])
            except Exception as err:
                best[side.name] = err
                continue
            rate = throughput(rows)
            if side.name not in best or rate > best[side.name][0]:
                best[side.name] = (rate, steps[side.name], rows)
    return best


class Ours(Side):
    def __init__(self, name, args, dtype="f32", binary=None):
        super().__init__(name, args)
        self.dtype, self.binary = dtype, binary or args.bin

    def command(self, cfg, steps, out):
        e, l, h, b, t = cfg
        a = self.args
        cmd = [self.binary, "train", "--engine", "tensor", "--dtype", self.dtype, "--threads", str(a.threads),
               "--batch-size", str(b), "--block-size", str(t), "--n-embd", str(e),
               "--n-layer", str(l), "--n-head", str(h), "--steps", str(steps), "--num-samples", "0",
               "--quiet", "--input", self.input, "--out", out,
               # Checkpoints only at the end: periodic saves are not training throughput.
               "--save-every", "0"]
        if a.lr is not None:
            cmd += ["--lr", repr(a.lr)]
        return cmd


class Torch(Side):
    def __init__(self, name, args, extra=()):
        super().__init__(name, args)
        self.extra = list(extra)

    def command(self, cfg, steps, out):
        e, l, h, b, t = cfg
        a = self.args
        cmd = [sys.executable, os.path.join(HERE, "torch_microgpt.py"), "train", "--dtype", "f32",
               "--threads", str(a.threads), "--batch-size", str(b), "--block-size", str(t),
               "--n-embd", str(e), "--n-layer", str(l), "--n-head", str(h), "--steps", str(steps),
               "--attn", a.torch_attn, "--quiet", "--input", self.input, "--out", out] + self.extra
        if a.lr is not None:
            cmd += ["--lr", repr(a.lr)]
        return cmd


# name: (column label, bf16 GEMMs?, maker)
SIDES = {
    "ours": ("ours f32", False, lambda a: Ours("ours", a)),
    "ours_bf16": ("ours bf16", True, lambda a: Ours("ours_bf16", a, "bf16")),
    # An earlier build of ours (--baseline), f32 and bf16: a change's speed before and after, in one run.
    "baseline": ("baseline f32", False, lambda a: Ours("baseline", a, binary=a.baseline)),
    "baseline_bf16": ("baseline bf16", True, lambda a: Ours("baseline_bf16", a, "bf16", binary=a.baseline)),
    "torch": ("torch f32", False, lambda a: Torch("torch", a)),
    "torch_compile": ("compile f32", False, lambda a: Torch("torch_compile", a, ["--compile"])),
    "torch_bf16": ("torch bf16", True, lambda a: Torch("torch_bf16", a, ["--autocast", "bf16"])),
}
TORCH_SIDES = ("torch", "torch_compile", "torch_bf16")


# ---------------------------------------------------------------- main
def step_ms(side):
    return 1e3 * side["tokens_per_step"] / side["tokens_per_s"] if side else None


def ratio(res, fast, slow):
    """How many times faster side `fast` is than side `slow` (None if either is missing)."""
    f, s = res.get(fast), res.get(slow)
    return s and f and step_ms(s) / step_ms(f)


def fastest_torch(res):
    present = [n for n in TORCH_SIDES if res.get(n)]
    return min(present, key=lambda n: step_ms(res[n])) if present else None


# (column, fast side, slow side): "ours/torch" is how many times faster ours f32 is, etc.
RATIOS = [("ours/baseline", "ours", "baseline"), ("bf16/baseline", "ours_bf16", "baseline_bf16"),
          ("ours/torch", "ours", "torch"),
          ("bf16/torch bf16", "ours_bf16", "torch_bf16"),
          ("bf16/ours f32", "ours_bf16", "ours"), ("bf16/best torch", "ours_bf16", None)]


def header(sides):
    cols = [f"{'config (E,L,H,B,T)':<20}", f"{'params':>11}"]
    cols += [f"{SIDES[n][0] + ' ms':>15}" for n in sides]
    cols += [f"{label:>15}" for label, fast, slow in RATIOS if fast in sides and (slow is None or slow in sides)]
    cols += [f"{'MFU ' + SIDES[n][0]:>17}" for n in sides]
    cols += [f"{'RSS ' + SIDES[n][0]:>16}" for n in sides]
    return " ".join(cols)


def render(res, sides):
    c = res["config"]
    name = "%d,%d,%d,%d,%d" % (c["n_embd"], c["n_layer"], c["n_head"], c["batch"], c["block_size"])
    cols = [f"{name:<20}", f"{res['params']:>11,}"]
    cols += [f"{fmt_ms(res.get(n)):>15}" for n in sides]
    for label, fast, slow in RATIOS:
        if fast in sides and (slow is None or slow in sides):
            r = ratio(res, fast, slow or fastest_torch(res)) if (slow or fastest_torch(res)) else None
            cols.append(f"{('%.2fx' % r) if r else 'n/a':>15}")
    cols += [f"{fmt_pct(res.get(n) and res[n]['mfu']):>17}" for n in sides]
    cols += [f"{fmt_gib(res.get(n) and res[n]['peak_rss']):>16}" for n in sides]
    return " ".join(cols)


def fmt_gib(x):
    return "n/a" if not x else f"{x / 2**30:.2f} GiB"


def fmt_ms(side):
    return "n/a" if not side else f"{step_ms(side):,.2f}"


def fmt_rate(x):
    return "n/a" if x is None or x != x else f"{x:,.0f}"


def fmt_pct(x):
    return "n/a" if x is None or x != x else f"{100 * x:.2f}%"


def plot_context(results, path):
    """Per-step time against block_size for both sides, the (128, 4, 4, 12) rows."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(no matplotlib in this Python: `.venv-bench/bin/pip install matplotlib` to draw the plot)")
        return
    rows = [r for r in results if (r["config"]["n_embd"], r["config"]["n_layer"]) == (128, 4)]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    lines = (("ours", "microgpt f32", "o-"), ("ours_bf16", "microgpt bf16", "o-"),
             ("torch", "PyTorch eager f32", "s--"), ("torch_compile", "torch.compile f32", "s--"),
             ("torch_bf16", "PyTorch bf16 autocast", "s--"))
    for name, label, style in lines:
        pts = [(r["config"]["block_size"], 1e3 * r[name]["tokens_per_step"] / r[name]["tokens_per_s"])
               for r in rows if r.get(name)]
        if pts:
            ax.plot(*zip(*pts), style, label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks([r["config"]["block_size"] for r in rows])
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("block_size (every document fills the block)")
    ax.set_ylabel("ms per training step")
    ax.set_title("n_embd 128, 4 layers, 4 heads, batch 12, 2 threads")
    busy = max((r[n]["others_cpu_busy"] for r in rows for n in SIDES if r.get(n)), default=0)
    if busy > 0.25:  # say so on the picture itself: such a run is no quiet-machine figure
        ax.text(0.5, 0.02, f"other processes kept the CPUs {100 * busy:.0f}% busy: not a quiet-machine run",
                transform=ax.transAxes, ha="center", fontsize=8, color="red")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    print(f"plot: {os.path.relpath(path)}")


def run_table(title, input_path, configs, sides, args, peaks):
    """Measures `configs` on `input_path` with every side; returns the results."""
    print(f"\n== {title}: {os.path.relpath(input_path)}", flush=True)
    results = []
    encoded = {}
    for cfg in configs:
        e, l, h, b, t = cfg
        if t not in encoded:
            _, tok, enc = tm.prepare(input_path, 42, t)
            encoded[t] = (tok, enc)
            print(f"  data at block_size {t}: {len(enc)} docs, vocab {tok.vocab_size}, "
                  f"mean {sum(len(x) - 1 for x in enc) / len(enc):.1f} target tokens per doc", flush=True)
        tok, enc = encoded[t]
        mean_len = sum(len(x) - 1 for x in enc) / len(enc)
        fpt = model_flops_per_token(e, l, tok.vocab_size, t)
        est_step = fpt * b * mean_len / (0.3 * peaks[False]) + 2e-3  # rough guess, for the calibration length
        res = {"config": {"n_embd": e, "n_layer": l, "n_head": h, "batch": b, "block_size": t},
               "params": total_params(e, l, tok.vocab_size, t), "flops_per_token": fpt}
        for side in sides:
            side.input = input_path
        measured = measure(sides, cfg, est_step, args)
        for side in sides:
            got = measured.get(side.name, RuntimeError("no timed run"))
            if isinstance(got, Exception):
                res[side.name] = None
                print(f"  {side.name:5} {cfg}: failed: {got}", flush=True)
                continue
            rate, steps, rows = got
            res[side.name] = {"tokens_per_s": rate, "steps": steps, "seconds": rows[-1][2],
                              "tokens_per_step": rows[-1][1] / steps,
                              "mfu": rate * fpt / peaks[SIDES[side.name][1]], "others_cpu_busy": side.busy,
                              "peak_rss": side.peak_rss}
            if side.busy > 0.25:
                print(f"  note: other processes kept the CPUs {100 * side.busy:.0f}% busy before a {side.name} run",
                      flush=True)
            want = expected_tokens(enc, steps, b)
            if rows[-1][1] != want:
                print(f"  warning: {side.name} {cfg}: {rows[-1][1]} tokens in {steps} steps, expected {want} "
                      "(different data or batching?)", flush=True)
            print(f"  {side.name:5} {cfg}: {steps} steps in {rows[-1][2]:.2f} s -> {rate:,.0f} tok/s (best of "
                  f"{args.repeats}), peak RSS {fmt_gib(side.peak_rss)}", flush=True)
        results.append(res)
    return results


def parse_configs(text):
    return [tuple(int(v) for v in c.split(",")) for c in text.split(";") if c.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "microgpt"),
                    help="our binary (default target/release/microgpt)")
    ap.add_argument("--input", default=tm.DEFAULT_INPUT, help="short table's text (default ../shared/data/names.txt)")
    ap.add_argument("--long-input", default=os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "tinyshakespeare.txt")),
                    help="text cut into long documents for the context table (default ../shared/data/tinyshakespeare.txt)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tables", default="short,context", help="which tables: short, context or both (default)")
    ap.add_argument("--configs", default=None,
                    help="short table override, e.g. '16,1,4,1,16;64,2,4,16,16' (n_embd,n_layer,n_head,batch,block_size)")
    ap.add_argument("--context-configs", default=None, help="context table override, same format")
    ap.add_argument("--plot", default=os.path.join(ROOT, "docs", "bench_context.png"),
                    help="where to draw the context table's per-step times ('' for no plot)")
    ap.add_argument("--seconds", type=float, default=None, help="target length of each timed run (default 3, quick 1)")
    ap.add_argument("--quick", action="store_true", help="shorter runs (about a third of the time)")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per side and config, best kept (default 2, quick 1)")
    ap.add_argument("--wait-idle", type=float, default=10.0,
                    help="before each run, wait up to this many seconds for other processes to leave the CPUs idle")
    ap.add_argument("--lr", type=float, default=None, help="passed to both sides when given (default: both 0.01)")
    ap.add_argument("--torch-attn", default="manual", choices=["manual", "sdpa"])
    ap.add_argument("--baseline", default=None,
                    help="an earlier build of ours, run as sides 'baseline' (f32) and 'baseline_bf16' beside the "
                         "others: the columns ours/baseline and bf16/baseline are a change's speedup, "
                         "measured in one run")
    ap.add_argument("--sides", default=None,
                    help=f"which sides, in this order (default all: {','.join(SIDES)}; baseline only with --baseline)")
    ap.add_argument("--only", choices=["ours", "torch"], default=None,
                    help="only our sides, or only PyTorch's (of --sides)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--timeout", type=float, default=900,
                    help="per subprocess, seconds (torch.compile compiles in its first step)")
    ap.add_argument("--wait-budget", type=float, default=120.0, help="total seconds of such waiting (default 120)")
    args = ap.parse_args()
    WAIT_BUDGET[0] = args.wait_budget
    args.seconds = args.seconds or (1.0 if args.quick else 3.0)
    args.repeats = args.repeats or (1 if args.quick else 2)
    args.calib_seconds = 0.3 if args.quick else 0.6
    args.min_steps = 4 if args.quick else 10
    args.max_steps = 1_000_000
    args.input = os.path.abspath(args.input)
    args.bin = os.path.abspath(args.bin)
    tables = {t.strip() for t in args.tables.split(",") if t.strip()}
    short_configs = parse_configs(args.configs) if args.configs else SHORT_CONFIGS
    context_configs = parse_configs(args.context_configs) if args.context_configs else CONTEXT_CONFIGS

    if not os.path.exists(TIME):
        sys.exit(f"bench_vs_torch: {TIME} not found (Debian: apt-get install time): it measures peak RSS")
    for path in [args.input] * ("short" in tables) + [args.long_input] * ("context" in tables):
        if not os.path.exists(path):
            sys.exit(f"bench_vs_torch: input {path} not found")

    if args.baseline:
        args.baseline = os.path.abspath(args.baseline)
        if not os.access(args.baseline, os.X_OK):
            sys.exit(f"bench_vs_torch: baseline {args.baseline} is not an executable")
    default_sides = [n for n in SIDES if not n.startswith("baseline") or args.baseline]
    names = [n.strip() for n in (args.sides or ",".join(default_sides)).split(",") if n.strip()]
    if any(n.startswith("baseline") for n in names) and not args.baseline:
        sys.exit("bench_vs_torch: side baseline needs --baseline BIN (an earlier build of ours)")
    unknown = [n for n in names if n not in SIDES]
    if unknown:
        sys.exit(f"bench_vs_torch: unknown side(s) {', '.join(unknown)}: use {', '.join(SIDES)}")
    if args.only:
        names = [n for n in names if (n in TORCH_SIDES) == (args.only == "torch")]
    if any(n not in TORCH_SIDES for n in names) and not os.access(args.bin, os.X_OK):
        print(f"bench_vs_torch: {args.bin} not found: build it (cargo build --release) or pass --bin; "
              "showing the torch sides only")
        names = [n for n in names if n in TORCH_SIDES]

    load = os.getloadavg()[0]
    wait_for_idle(args.wait_idle)
    peaks = {False: sgemm_peak(args.threads), True: sgemm_peak(args.threads, dtype=torch.bfloat16)}
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.2f}{'  (busy: numbers will be noisy)' if load > 0.5 else ''}")
    print(f"torch {torch.__version__}, {args.threads} threads; GEMM peaks (2048^3 matmul, best of 8): "
          f"f32 {peaks[False] / 1e9:.1f}, bf16 {peaks[True] / 1e9:.1f} GFLOP/s (measured again at the end; MFU uses the higher)")
    print(f"sides: {', '.join(SIDES[n][0] for n in names)}; timed runs ~{args.seconds:g} s each; model FLOPs/token = "
          "6*N_matmul + 12*n_layer*n_embd*block_size (nanoGPT's estimate_mfu; see the top of this script)", flush=True)

    sides = [SIDES[n][2](args) for n in names]
    short = run_table("short documents (names), block_size 16", args.input, short_configs, sides, args, peaks) \
        if "short" in tables else []
    context = []
    if "context" in tables:
        long_path = long_documents(args.long_input, os.path.join(os.path.dirname(args.bin), "bench-data"))
        context = run_table(f"long documents (tiny Shakespeare in {LONG_DOC_CHARS}-character lines)", long_path,
                            context_configs, sides, args, peaks)

    wait_for_idle(args.wait_idle)
    for bf16 in (False, True):
        again = sgemm_peak(args.threads, dtype=torch.bfloat16 if bf16 else torch.float32)
        if again > peaks[bf16]:  # a busier start: redo the MFU columns with the better peak
            for res in short + context:
                for name in names:
                    if res.get(name) and SIDES[name][1] == bf16:
                        res[name]["mfu"] *= peaks[bf16] / again
            peaks[bf16] = again
    print(f"\nGEMM peaks used for MFU: f32 {peaks[False] / 1e9:.1f}, bf16 {peaks[True] / 1e9:.1f} GFLOP/s; "
          f"load average now {os.getloadavg()[0]:.2f}")
    print("ratios: how many times faster the first side is (per-step time of the second / of the first)")
    for title, results in (("short documents (names)", short), ("long documents: the context axis", context)):
        if results:
            head = header(names)
            print(f"\n{title}\n{head}\n{'-' * len(head)}")
            for res in results:
                print(render(res, names))
    if context and args.plot:
        plot_context(context, args.plot)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"sgemm_peak_flops": peaks[False], "bf16_gemm_peak_flops": peaks[True],
                       "threads": args.threads, "torch": torch.__version__,
                       "short": short, "context": context}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
