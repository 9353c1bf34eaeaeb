#!/usr/bin/env bash
# One-shot install of the lean labelcast receiver on a Jetson (JetPack 6, Python 3.10).
# Needs no network at run time; at install time it needs the files listed below, copied to the device:
#   WHEELS/  torch-*.whl from NVIDIA's JetPack wheel set (the CUDA build for this JetPack),
#            onnxruntime_gpu-*.whl for JetPack (or onnxruntime for CPU only),
#            and `pip download`ed wheels of labelcast's receiver dependencies (numpy, onnx, onnxscript,
#            constriction, cryptography, zfec, click, tqdm, platformdirs, tomli) for aarch64 / cp310,
#            plus labelcast-*.whl (`pip wheel --no-deps .` on the ground).
# Usage: sudo ./install-jetson.sh WHEELS [/opt/labelcast]
set -euo pipefail
WHEELS=${1:?usage: install-jetson.sh WHEELS [PREFIX]}
PREFIX=${2:-/opt/labelcast}
python3 -m venv --system-site-packages "$PREFIX/venv"    # system site: TensorRT's Python bindings from JetPack
"$PREFIX/venv/bin/pip" install --no-index --find-links "$WHEELS" torch
"$PREFIX/venv/bin/pip" install --no-index --find-links "$WHEELS" "labelcast[receiver]"
id labelcast >/dev/null 2>&1 || useradd --system --home /var/lib/labelcast labelcast
install -d -o labelcast -g labelcast /var/lib/labelcast/inbox /var/lib/labelcast/state
install -d /etc/labelcast/trusted
echo "Copy the reference store to /var/lib/labelcast/reference and sender.pub to /etc/labelcast/trusted/,"
echo "then: $PREFIX/venv/bin/labelcast reference verify /var/lib/labelcast/reference --full"
echo "and:  cp $(dirname "$0")/labelcast-watch.service /etc/systemd/system/ && systemctl enable --now labelcast-watch"
