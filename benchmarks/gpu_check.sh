#!/usr/bin/env bash
# The GPU check: run on a machine with an NVIDIA GPU (≤ 8 minutes). It needs a Python with a CUDA build of
# torch and labelcast installed with its receiver extra (`pip install -e '.[receiver]'`); TensorRT is optional.
# Results: JSON at $OUT/gpu_check.json (or ./gpu_check.json) and on stdout. docs/devices.md says what ran where.
set -uo pipefail
cd "$(dirname "$0")/.."
dest="${OUT:-.}"
mkdir -p "$dest"
echo "== nvidia-smi"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || echo "nvidia-smi: not available"
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] && PY=.venv/bin/python
"$PY" - <<'PYEOF'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
PYEOF
timeout 480 "$PY" benchmarks/gpu_check.py --json "$dest/gpu_check.json" --out "$dest/gpu_check_work"
