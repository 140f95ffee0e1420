#!/usr/bin/env bash
# Trains d128 L4, d256 L4 and d512 L6 on the names list twice: with the original's settings
# (lr 0.01, init std 0.08, linear decay, no clipping), which diverge at d256 and wider, and
# with the recipe docs/performance.md recommends for wide models (lr 1e-3 with 100 warm-up steps and
# cosine decay, init std 0.02, gradient clipping at 1.0). Prints each run's last train and
# val loss and writes loss curves with `microgpt compare`.
#
# Usage: scripts/large_configs.sh [OUT_DIR]   Env: DATA=... STEPS=1000 BATCH=32 THREADS=2
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/target/large-configs}"
DATA="${DATA:-$ROOT/../shared/data/names.txt}"
STEPS="${STEPS:-1000}"
BATCH="${BATCH:-32}"
THREADS="${THREADS:-2}"
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" || exit 1
BIN="$ROOT/target/release/microgpt"
mkdir -p "$OUT"

RECIPE=(--lr 1e-3 --warmup-steps 100 --lr-schedule cosine --init-std 0.02 --grad-clip 1.0)
runs=()
for shape in "128 4 4" "256 4 8" "512 6 8"; do
    read -r embd layer head <<<"$shape"
    for setting in original recipe; do
        dir="$OUT/d${embd}_L${layer}_${setting}"
        rm -rf "$dir"
        extra=()
        [ "$setting" = recipe ] && extra=("${RECIPE[@]}")
        start=$(date +%s)
        "$BIN" train --input "$DATA" --dtype f32 --threads "$THREADS" --batch-size "$BATCH" \
            --n-embd "$embd" --n-layer "$layer" --n-head "$head" --steps "$STEPS" \
            --val-frac 0.05 --eval-every 100 --num-samples 10 --quiet --out "$dir" "${extra[@]}" \
            2>"$dir.err"
        status=$?
        secs=$(($(date +%s) - start))
        last=$(tail -n 1 "$dir/metrics.csv" 2>/dev/null)
        if [ $status -eq 0 ]; then
            echo "d$embd L$layer $setting: ${secs}s  last row (step,loss,lr,tokens,elapsed_s,val_loss): $last"
            runs+=("$dir")
        else
            echo "d$embd L$layer $setting: FAILED after ${secs}s: $(tail -n 1 "$dir.err")"
        fi
    done
done
[ ${#runs[@]} -gt 0 ] && "$BIN" compare "${runs[@]}" --out "$OUT"
