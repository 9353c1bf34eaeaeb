"""Inference on the device's active model slot, reloading when the slot changes.

    python infer_active.py SLOTS_DIR [--images some.npy]

Loads SLOTS_DIR/active/student.onnx through labelcast's own runtime
(:class:`labelcast.receiver.serve.OnnxClassifier`: the preprocessing stored in the
model, ONNX Runtime's TensorRT, CUDA then CPU execution providers, whichever exist)
and checks once a second whether `active` points to another model; promotion is one
atomic rename of the symlink, so a reload never sees a half-written file. Images are
uint8 N×H×W[×C], as the reference store holds them.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from labelcast.receiver.serve import OnnxClassifier


class ActiveModel:
    def __init__(self, slots: Path) -> None:
        self.slots = slots
        self.target: str | None = None
        self.model: OnnxClassifier | None = None
        self.reload()

    def reload(self) -> bool:
        target = os.readlink(self.slots / "active")
        if target == self.target:
            return False
        self.model = OnnxClassifier(self.slots / target / "student.onnx", providers="auto")
        self.target = target
        return True

    def predict(self, images_uint8: np.ndarray) -> np.ndarray:
        x = images_uint8 if images_uint8.ndim == 4 else images_uint8[..., None]
        return self.model.predict(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("slots", type=Path)
    ap.add_argument("--images", type=Path, default=None)
    a = ap.parse_args()
    model = ActiveModel(a.slots)
    print(f"serving {model.target} ({model.model.provider})")
    while True:
        if model.reload():
            print(f"reloaded: now serving {model.target}")
        if a.images:
            print(model.predict(np.load(a.images))[:20])
        time.sleep(1.0)


if __name__ == "__main__":
    main()
