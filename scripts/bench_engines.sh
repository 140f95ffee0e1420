#!/usr/bin/env bash
# Per-step time of the scalar and the tensor engine at the default config (d16, 1 layer,
# 4 heads, block 16, batch 1, f64), measured side by side in one run, and the whole default
# process (`microgpt train`, 1000 steps and 20 samples).
#
# A step's time is (time of S+1 steps - time of 1 step) / S of the whole process, so start-up
# and data loading cancel out; each figure is the fastest of RUNS runs (the least disturbed
# by other load on the machine).
#
# The Python original is timed in the same run by scripts/reference_microgpt.py (the
# original's algorithm, whose losses are checked against the golden here: the first step is
# excluded, PY_STEPS more are timed). PY_STEPS=0 skips it.
#
# Usage: scripts/bench_engines.sh | tee docs/bench_engines.txt
#        Env: DATA=path/to/names.txt RUNS=15 PY_STEPS=6
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${DATA:-$ROOT/../shared/data/names.txt}"
RUNS="${RUNS:-15}"
PY_STEPS="${PY_STEPS:-6}"
GOLDEN="$ROOT/../shared/golden/names_default.json"

[ -f "$DATA" ] || { echo "bench_engines: dataset $DATA not found (set DATA=...)" >&2; exit 1; }
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
BIN="$ROOT/target/release/microgpt"

# Fastest wall time in nanoseconds of RUNS runs of: microgpt train <args>.
fastest_ns() {
    local best=
    for _ in $(seq "$RUNS"); do
        local start end
        start=$(date +%s%N)
        "$BIN" train --input "$DATA" "$@" >/dev/null
        end=$(date +%s%N)
        local t=$((end - start))
        if [ -z "$best" ] || [ "$t" -lt "$best" ]; then best=$t; fi
    done
    echo "$best"
}

# Per-step time in nanoseconds of an engine over S steps.
step_ns() {
    local engine=$1 steps=$2
    local one many
    one=$(fastest_ns --engine "$engine" --steps 1 --num-samples 0 --quiet)
    many=$(fastest_ns --engine "$engine" --steps $((steps + 1)) --num-samples 0 --quiet)
    echo $(((many - one) / steps))
}

scalar=$(step_ns scalar 100)
tensor=$(step_ns tensor 2000)
whole=$(fastest_ns)
python_ms=0
if [ "$PY_STEPS" -gt 0 ]; then
    check=()
    [ -f "$GOLDEN" ] && check=(--check-golden "$GOLDEN")
    python_ms=$(python3 "$ROOT/scripts/reference_microgpt.py" --input "$DATA" \
        --steps $((PY_STEPS + 1)) "${check[@]}" | awk '/^ms_per_step/ {print $2}')
fi

# Printed in the units of docs/performance.md's per-step table, whose figures tests/docs.rs
# checks against this output (committed as docs/bench_engines.txt).
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1 /proc/loadavg)"
awk -v s="$scalar" -v t="$tensor" -v w="$whole" -v py="$python_ms" -v pysteps="$PY_STEPS" -v runs="$RUNS" 'BEGIN {
    printf "default config (d16 L1 H4 block 16, batch 1, f64), fastest of %d runs\n", runs
    if (py > 0) {
        printf "  Python original  %9.1f ms/step   (reference_microgpt.py, mean of %d steps)\n", py, pysteps
    }
    printf "  scalar engine    %9.3f ms/step", s / 1e6
    if (py > 0) printf "   %.0fx faster than the Python original", py * 1e6 / s
    printf "\n  tensor engine    %9.1f us/step", t / 1e3
    if (py > 0) printf "   %.0fx faster than the Python original,", py * 1e6 / t
    printf " %.0fx the scalar engine\n", s / t
    printf "whole default run (microgpt train, 1000 steps + 20 samples): %.1f ms", w / 1e6
    if (py > 0) printf ", %.0fx faster than the original'"'"'s 1000 steps", py * 1e9 / w
    printf "\n"
}'
