"""Inference on the device's active model slot, reloading when the slot changes.

    python infer_active.py SLOTS_DIR [--images some.npy]

Loads SLOTS_DIR/active/student.onnx with ONNX Runtime (the TensorRT execution
provider first when present, then CUDA, then CPU) and checks once a second
whether `active` points to another model; promotion is one atomic rename of the
symlink, so a reload never sees a half-written file.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort


class ActiveModel:
    def __init__(self, slots: Path) -> None:
        self.slots = slots
        self.target = None
        self.session = None
        self.reload()

    def reload(self) -> bool:
        target = os.readlink(self.slots / "active")
        if target == self.target:
            return False
        wanted = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
        providers = [p for p in wanted if p in ort.get_available_providers()]
        self.session = ort.InferenceSession(str(self.slots / target / "student.onnx"), providers=providers)
        meta = self.session.get_modelmeta().custom_metadata_map
        self.pre = json.loads(meta.get("labelcast.preprocess", '{"scale": 0.00392156862745098}'))
        self.target = target
        return True

    def predict(self, images_uint8: np.ndarray) -> np.ndarray:
        x = images_uint8.astype(np.float32) * self.pre["scale"]
        if x.ndim == 3:
            x = x[..., None]
        x = (x - np.asarray(self.pre.get("mean", [0.0]), np.float32)) / np.asarray(
            self.pre.get("std", [1.0]), np.float32
        )
        return self.session.run(None, {"image": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})[0].argmax(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("slots", type=Path)
    ap.add_argument("--images", type=Path, default=None)
    a = ap.parse_args()
    model = ActiveModel(a.slots)
    print(f"serving {model.target}")
    while True:
        if model.reload():
            print(f"reloaded: now serving {model.target}")
        if a.images:
            print(model.predict(np.load(a.images))[:20])
        time.sleep(1.0)


if __name__ == "__main__":
    main()
