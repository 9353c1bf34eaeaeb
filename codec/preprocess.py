"""How stored uint8 pixels become a model's float input — computed identically at both ends.

The sender scores with it, the receiver trains and evaluates with it; it lives in
the codec so the two cannot drift apart. Models written by labelcast carry it as
ONNX metadata under ``labelcast.preprocess`` (JSON of the fields below).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Preprocess", "PRESETS", "resize_bilinear"]


def resize_bilinear(img: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of N×h×w float images to N×size×size (pixel centres aligned)."""
    n, h, w = img.shape
    ys = (np.arange(size) + 0.5) * h / size - 0.5
    xs = (np.arange(size) + 0.5) * w / size - 0.5
    y0 = np.clip(np.floor(ys).astype(int), 0, h - 1)
    x0 = np.clip(np.floor(xs).astype(int), 0, w - 1)
    y1, x1 = np.clip(y0 + 1, 0, h - 1), np.clip(x0 + 1, 0, w - 1)
    wy = np.clip(ys - y0, 0, 1)[None, :, None]
    wx = np.clip(xs - x0, 0, 1)[None, None, :]
    rows0, rows1 = img[:, y0], img[:, y1]
    top = rows0[:, :, x0] * (1 - wx) + rows0[:, :, x1] * wx
    bot = rows1[:, :, x0] * (1 - wx) + rows1[:, :, x1] * wx
    return top * (1 - wy) + bot * wy


@dataclass(frozen=True)
class Preprocess:
    size: int = 28  # input pixels per side (items are resized when the store differs)
    channels: int = 1  # 1 grey or 3 RGB
    scale: float = 1 / 255  # pixel multiplier applied before mean/std
    mean: tuple[float, ...] = (0.0,)  # per channel, after scaling
    std: tuple[float, ...] = (1.0,)  # per channel, after scaling

    def apply(self, x: np.ndarray) -> np.ndarray:
        """N×H×W×C uint8 → N×C×H×W float32."""
        if x.ndim == 3:
            x = x[..., None]
        if x.shape[3] != self.channels:
            x = np.repeat(x, 3, axis=3) if x.shape[3] == 1 else np.rint(x.mean(axis=3, keepdims=True))
        f = x.astype(np.float32) * np.float32(self.scale)
        if f.shape[1] != self.size or f.shape[2] != self.size:
            f = np.stack([resize_bilinear(f[..., c], self.size) for c in range(f.shape[3])], axis=3)
            f = f.astype(np.float32)
        f = (f - np.asarray(self.mean, dtype=np.float32)) / np.asarray(self.std, dtype=np.float32)
        return np.ascontiguousarray(f.transpose(0, 3, 1, 2))

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Preprocess:
        d = json.loads(text)
        try:
            return cls(int(d["size"]), int(d["channels"]), float(d["scale"]), tuple(d["mean"]), tuple(d["std"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"malformed labelcast.preprocess metadata: {e}") from e


PRESETS = {
    "unit": Preprocess(),
    "fashion": Preprocess(28, 1, 1 / 255, (0.2860,), (0.3530,)),
    "imagenet": Preprocess(224, 3, 1 / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
