#!/usr/bin/env python3
"""Per-step cost of training from Python (`microgpt.train`) beside the binary
(`microgpt train`), the two taking turns, best of --repeats each.

A step's cost is the run's own clock: `elapsed_s` of its last row in metrics.csv over its
steps (the training loop only, without loading the data), which the library measures the
same way for both. Python trains as a notebook does, with its progress display (tqdm's bar
when tqdm is installed) and Ctrl-C checks; the binary as in a log, printing progress lines.

    pip install ./python && cargo build --release
    python3 scripts/bench_python.py [--repeats 5]
"""

import argparse
import csv
import subprocess
import sys
import tempfile
from pathlib import Path

import microgpt

REPO = Path(__file__).resolve().parents[1]
NAMES = REPO.parent / "shared" / "data" / "names.txt"

CONFIGS = {
    "d16 batch 1 (the original's model)": dict(n_embd=16, n_head=4, n_layer=1, block_size=16, batch_size=1,
                                               steps=20000),
    "d128 (4 layers, block 64, batch 12, f32)": dict(n_embd=128, n_head=4, n_layer=4, block_size=64,
                                                      batch_size=12, dtype="f32", steps=150),
}


def per_step(run_dir: Path) -> float:
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return float(rows[-1]["elapsed_s"]) / int(rows[-1]["step"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--binary", default=str(REPO / "target" / "release" / "microgpt"))
    args = parser.parse_args()
    print(f"{'config':44} {'binary':>12} {'Python':>12} {'Python/binary':>14}")
    for name, settings in CONFIGS.items():
        settings = dict(settings, input=str(NAMES), num_samples=0, save_every=0)
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in settings.items()]
        best = {"binary": float("inf"), "Python": float("inf")}
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.repeats):
                out = Path(tmp) / f"cli{i}"
                subprocess.run([args.binary, "train", *flags, "--out", str(out)], check=True,
                               stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
                best["binary"] = min(best["binary"], per_step(out))
                out = Path(tmp) / f"py{i}"
                saved = sys.stdout
                sys.stdout = open("/dev/null", "w")
                try:
                    microgpt.train(out=out, **settings)
                finally:
                    sys.stdout.close()
                    sys.stdout = saved
                best["Python"] = min(best["Python"], per_step(out))
        ratio = best["Python"] / best["binary"]
        print(f"{name:44} {best['binary'] * 1e3:9.4f} ms {best['Python'] * 1e3:9.4f} ms {ratio:13.3f}x",
              flush=True)


if __name__ == "__main__":
    main()
