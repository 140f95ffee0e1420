#!/usr/bin/env bash
# Create .venv-bench (in the repo root) with a CPU-usable PyTorch + numpy, for
# scripts/torch_microgpt.py and scripts/bench_vs_torch.py.
#
# The Linux x86_64 torch wheel on PyPI (~540 MB) declares the NVIDIA CUDA packages
# (nvidia-*, cuda-toolkit, triton: several GB more) as dependencies. On this
# CPU-only machine we install torch with --no-deps, then its remaining
# pure-Python requirements (read from the wheel's own metadata, GPU ones left
# out), then, since torch's .so files still name the CUDA libraries as DT_NEEDED,
# small stub libraries built with gcc (scripts/make_cuda_stubs.py).
# Needs: python3 with venv + pip, gcc, readelf (binutils).
#
# Usage: bash scripts/setup_torch_venv.sh        (idempotent; re-run is cheap)
# Env:   PYTHON=python3.11  TORCH_SPEC='torch==2.x.y'  VENV=path
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv-bench}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.15.0}"  # the version this was tested with

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import torch, numpy' 2>/dev/null; then
    echo "setup_torch_venv: $VENV already has torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
    exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup_torch_venv: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

echo "setup_torch_venv: installing $TORCH_SPEC without its CUDA dependencies (large download)"
"${PIP[@]}" install --no-deps "$TORCH_SPEC"

# torch's own requirements, minus the GPU-only ones, with markers evaluated here.
mapfile -t DEPS < <("$PY" - <<'EOF'
import importlib.metadata as md
try:
    from packaging.requirements import Requirement
except ImportError:
    from pip._vendor.packaging.requirements import Requirement
for line in md.requires("torch") or []:
    r = Requirement(line)
    name = r.name.lower().replace("_", "-")
    if name.startswith("nvidia-") or name.startswith("triton") or name.startswith("cuda-"):
        continue
    if r.marker is not None and not r.marker.evaluate({"extra": ""}):
        continue
    print(f"{r.name}{r.specifier}")
EOF
)
echo "(pip will report that torch's CUDA requirements are not installed: that is intended)"
echo "setup_torch_venv: installing torch's CPU requirements: ${DEPS[*]:-none} numpy"
"${PIP[@]}" install "${DEPS[@]}" numpy

# The wheel's libraries list the CUDA libraries as DT_NEEDED, so without them torch does not
# even import. Give it stand-ins (see scripts/make_cuda_stubs.py) when that is the case.
if ! "$PY" -c 'import torch' 2>/dev/null; then
    TORCH_LIB="$("$PY" -c 'import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec("torch").origin), "lib"))')"
    echo "setup_torch_venv: torch does not import without the CUDA libraries; building stubs in $TORCH_LIB"
    "$PY" "$ROOT/scripts/make_cuda_stubs.py" "$TORCH_LIB"
fi

"$PY" - <<'EOF'
import torch, numpy
x = torch.randn(64, 64)
y = (x @ x.T).sum()
print(f"setup_torch_venv: ok: torch {torch.__version__}, numpy {numpy.__version__}, "
      f"cuda available={torch.cuda.is_available()}, threads={torch.get_num_threads()}, test={float(y):.3f}")
EOF
