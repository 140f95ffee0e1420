#!/usr/bin/env bash
# The tiny Shakespeare recipe (README "Training on continuous text"): trains nanoGPT's CPU
# shape (n_embd 128, 4 layers, 4 heads, block_size 64, batch 12) on the characters of tiny
# Shakespeare, the last 10% held out, and reports what the README's goal is measured in:
# ms per step, total time, the first evaluation at val loss <= 1.88 (step and elapsed
# seconds, evaluations included) and the final val loss.
#
#   bash scripts/shakespeare.sh OUT_DIR [TEXT] [DTYPE] [STEPS]
#       TEXT: ../shared/data/tinyshakespeare.txt; DTYPE: f32 (or bf16); STEPS: 1200
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/shakespeare.sh OUT_DIR [TEXT] [DTYPE] [STEPS]}
text=${2:-../shared/data/tinyshakespeare.txt}
dtype=${3:-f32}
steps=${4:-1200}
target=1.88
[ -e "$out" ] && { echo "error: $out exists: choose a new OUT_DIR" >&2; exit 1; }

cargo build --release --quiet
start=$(date +%s.%N)
./target/release/microgpt train --data stream --input "$text" --out "$out" \
    --n-embd 128 --n-head 4 --n-layer 4 --block-size 64 --batch-size 12 \
    --dtype "$dtype" --threads 2 --init-std 0.02 \
    --activation gelu --steps "$steps" --lr 4.5e-3 --warmup-steps 100 --lr-schedule cosine \
    --beta1 0.9 --beta2 0.99 --weight-decay 0.1 --grad-clip 1.0 \
    --val-frac 0.1 --eval-every 250 --eval-windows 256 --num-samples 1
end=$(date +%s.%N)

python3 - "$out/metrics.csv" "$start" "$end" "$target" <<'PY'
import csv, sys
path, start, end, target = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
rows = list(csv.DictReader(open(path)))
steps, train_s = int(rows[-1]["step"]), float(rows[-1]["elapsed_s"])
evals = [(int(r["step"]), float(r["elapsed_s"]), float(r["val_loss"])) for r in rows if r["val_loss"]]
print(f"\nsteps: {steps}, training time {train_s:.1f} s (evaluations included), "
      f"{1000 * train_s / steps:.1f} ms/step; whole command {end - start:.1f} s")
hit = next(((s, t, v) for s, t, v in evals if v <= target), None)
if hit:
    print(f"val loss <= {target}: first at step {hit[0]}, {hit[1]:.1f} s (val {hit[2]:.4f})")
else:
    print(f"val loss <= {target}: not reached")
print(f"final val loss: {evals[-1][2]:.4f} at step {evals[-1][0]}")
PY
