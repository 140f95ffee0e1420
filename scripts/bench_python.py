#!/usr/bin/env python3
"""Per-step cost of training from Python (`microgpt.train`) beside the binary
(`microgpt train`), the two taking turns, best of --repeats each.

Two figures per side, both best of the repeats:
- wall: the run's own clock, `elapsed_s` of its last row in metrics.csv over its steps (the
  training loop only, measured by the library the same way for both);
- CPU: the process's CPU time (every thread) of a run of 2N steps minus one of N, over N:
  what a step costs without the data loading, the start-up or the wait for a core, which on
  a machine shared with other work is the steadier figure.

Python trains as a notebook does, with its progress display (tqdm's bar when tqdm is
installed) and its Ctrl-C checks; the binary as in a log, printing progress lines.

    pip install ./python && cargo build --release
    python3 scripts/bench_python.py [--repeats 5] [--threads N]

`--callgrind` counts instructions instead (one thread; deterministic): a step's count is the
difference of runs of 2N and N steps over N. Valgrind runs no AVX-512, so build both sides for
AVX2 first, in a target directory of their own:

    export CARGO_TARGET_DIR=/tmp/avx2 RUSTFLAGS="-C target-cpu=x86-64-v3"
    cargo build --release && pip install ./python
    python3 scripts/bench_python.py --callgrind --binary /tmp/avx2/release/microgpt
"""

import argparse
import contextlib
import csv
import os
import re
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import microgpt

REPO = Path(__file__).resolve().parents[1]
NAMES = REPO.parent / "shared" / "data" / "names.txt"

CONFIGS = {
    "d16 batch 1 (the original's model)": (
        dict(n_embd=16, n_head=4, n_layer=1, block_size=16, batch_size=1), 10000),
    "d128 (4 layers, block 64, batch 12, f32)": (
        dict(n_embd=128, n_head=4, n_layer=4, block_size=64, batch_size=12, dtype="f32"), 60),
}


def wall_per_step(run_dir: Path) -> float:
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return float(rows[-1]["elapsed_s"]) / int(rows[-1]["step"])


def cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def binary_run(binary: str, settings: dict, out: Path) -> float:
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in settings.items()]
    before = cpu(resource.RUSAGE_CHILDREN)
    subprocess.run([binary, "train", *flags, "--out", str(out)], check=True,
                   stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return cpu(resource.RUSAGE_CHILDREN) - before


def python_run(settings: dict, out: Path) -> float:
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
        before = cpu(resource.RUSAGE_SELF)
        microgpt.train(out=out, **settings)
        return cpu(resource.RUSAGE_SELF) - before


CALLGRIND_STEPS = {"d16 batch 1 (the original's model)": 2000, "d128 (4 layers, block 64, batch 12, f32)": 4}


def instructions(command: list, out: Path) -> int:
    """The instructions callgrind counts running `command` (OpenBLAS held to its AVX2 kernels)."""
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *command],
        capture_output=True, text=True, env=dict(os.environ, OPENBLAS_CORETYPE="Haswell"),
    )
    counted = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or counted is None or not (out / "metrics.csv").exists():
        sys.exit(f"{' '.join(command)} failed under valgrind:\n{done.stderr[-3000:]}")
    return int(counted.group(1))


def count_instructions(binary: str) -> None:
    print(f"{'config (threads 1)':42} {'binary':>14} {'Python':>14} {'Python/binary':>14}")
    for name, (shape, _) in CONFIGS.items():
        n = CALLGRIND_STEPS[name]
        per_run = {}
        with tempfile.TemporaryDirectory() as tmp:
            for k in (1, 2):
                settings = dict(shape, input=str(NAMES), num_samples=0, save_every=0, threads=1, steps=k * n)
                out = Path(tmp) / f"binary{k}"
                flags = [f"--{key.replace('_', '-')}={v}" for key, v in settings.items()]
                per_run["binary", k] = instructions([binary, "train", *flags, "--out", str(out)], out)
                out = Path(tmp) / f"python{k}"
                code = f"import microgpt; microgpt.train(out={str(out)!r}, **{settings!r})"
                per_run["Python", k] = instructions([sys.executable, "-c", code], out)
        step = {side: (per_run[side, 2] - per_run[side, 1]) / n for side in ("binary", "Python")}
        print(f"{name:42} {step['binary']:14,.0f} {step['Python']:14,.0f} {step['Python'] / step['binary']:14.5f}",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--binary", default=str(REPO / "target" / "release" / "microgpt"))
    parser.add_argument("--threads", type=int, help="the runs' threads [default: the machine's cores]")
    parser.add_argument("--callgrind", action="store_true", help="count instructions per step instead")
    args = parser.parse_args()
    if args.callgrind:
        count_instructions(args.binary)
        return
    print(f"{'config':42} {'wall: binary':>13} {'Python':>10} {'ratio':>6}   {'CPU: binary':>12} {'Python':>10} {'ratio':>6}")
    for name, (shape, n) in CONFIGS.items():
        settings = dict(shape, input=str(NAMES), num_samples=0, save_every=0)
        if args.threads:
            settings["threads"] = args.threads
        inf = float("inf")
        wall = {"binary": inf, "Python": inf}
        cpus = {(side, k): inf for side in wall for k in (1, 2)}
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.repeats):
                for k in (1, 2):
                    for side in wall:
                        out = Path(tmp) / f"{side}{i}x{k}"
                        run_settings = dict(settings, steps=k * n)
                        if side == "binary":
                            spent = binary_run(args.binary, run_settings, out)
                        else:
                            spent = python_run(run_settings, out)
                        cpus[side, k] = min(cpus[side, k], spent)
                        wall[side] = min(wall[side], wall_per_step(out))
        step_cpu = {side: (cpus[side, 2] - cpus[side, 1]) / n for side in wall}
        print(f"{name:42} {wall['binary'] * 1e3:10.4f} ms {wall['Python'] * 1e3:7.4f} ms "
              f"{wall['Python'] / wall['binary']:6.3f}   {step_cpu['binary'] * 1e3:9.4f} ms "
              f"{step_cpu['Python'] * 1e3:7.4f} ms {step_cpu['Python'] / step_cpu['binary']:6.3f}", flush=True)


if __name__ == "__main__":
    main()
