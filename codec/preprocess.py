"""How stored uint8 pixels become a model's float input — computed identically at both ends.

The sender scores with it, ``evaluate`` measures with it, the receiver trains with it; it
lives in the codec so that none of them can drift apart. A model written or calibrated by
labelcast carries it as ONNX metadata under ``labelcast.preprocess`` (JSON of the fields
below); any other model is described once with a **spec** (:meth:`Preprocess.from_spec`):
a preset name, an inline JSON object or a path to a ``.json`` file, with these keys (all
optional, defaults in brackets):

``size``      int, or ``[height, width]``            [28]
``channels``  1 or 3                                 [1]
``scale``     pixel multiplier before mean/std      [1/255]
``mean``      per channel, after scaling, in the model's channel order  [0]
``std``       per channel, after scaling            [1]
``layout``    ``"nchw"``, ``"nhwc"`` or ``"flat"``   ["nchw"]
              (flat: N × H·W·C, each image flattened row-major over H, W, C — after size,
              channels, scale and mean/std — for classic ML models on pixel features)
``order``     ``"rgb"`` or ``"bgr"`` channel order   ["rgb"]
``output``    ``"logits"``, ``"probs"`` (the model ends in a softmax) or ``"log_probs"``  ["logits"]

Resizing from the store's size to the model's is separable: area averaging (exact box
filter with fractional overlaps) on an axis that shrinks, bilinear with pixel centres
aligned on one that grows — the same weights wherever it runs.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["Preprocess", "VectorPreprocess", "PRESETS", "resize", "resize_bilinear", "SPEC_KEYS", "check_images"]

SPEC_KEYS = ("size", "channels", "scale", "mean", "std", "layout", "order", "output")
LAYOUTS = ("nchw", "nhwc", "flat")
ORDERS = ("rgb", "bgr")
OUTPUTS = ("logits", "probs", "log_probs")
_PROB_FLOOR = 1e-12  # log(p) of a probability output is taken at no less than this


def resize_bilinear(img: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of N×h×w float images to N×size×size (pixel centres aligned), elementwise.

    Kept bit for bit as the built-in ``digits`` pool was made with it (its stores' roots depend
    on it); models' inputs go through :func:`resize`."""
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


@lru_cache(maxsize=64)
def _weights(n_in: int, n_out: int) -> np.ndarray:
    """n_out × n_in resampling matrix: area averaging when shrinking, bilinear when growing."""
    w = np.zeros((n_out, n_in), dtype=np.float64)
    if n_out < n_in:
        step = n_in / n_out
        for i in range(n_out):
            a, b = i * step, (i + 1) * step
            for j in range(int(math.floor(a)), min(n_in, int(math.ceil(b)))):
                w[i, j] = min(b, j + 1) - max(a, j)
        w /= w.sum(axis=1, keepdims=True)
        return w
    pos = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    lo = np.clip(np.floor(pos).astype(int), 0, n_in - 1)
    hi = np.clip(lo + 1, 0, n_in - 1)
    frac = np.clip(pos - lo, 0, 1)
    rows = np.arange(n_out)
    np.add.at(w, (rows, lo), 1 - frac)
    np.add.at(w, (rows, hi), frac)
    return w


def resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize N×h×w (or N×h×w×C) float images to ``height × width`` (see the module docstring)."""
    a = np.asarray(img, dtype=np.float64)
    wh = _weights(a.shape[1], height)
    ww = _weights(a.shape[2], width)
    if a.ndim == 3:
        return np.einsum("ih,nhw,jw->nij", wh, a, ww, optimize=True)
    return np.einsum("ih,nhwc,jw->nijc", wh, a, ww, optimize=True)


@dataclass(frozen=True)
class Preprocess:
    size: int | tuple[int, int] = 28  # input pixels per side, or (height, width)
    channels: int = 1  # 1 grey or 3 colour
    scale: float = 1 / 255  # pixel multiplier applied before mean/std
    mean: tuple[float, ...] = (0.0,)  # per channel, after scaling (the model's channel order)
    std: tuple[float, ...] = (1.0,)  # per channel, after scaling
    layout: str = "nchw"  # the model's input layout: nchw, nhwc or flat (N × H·W·C, row-major H, W, C)
    order: str = "rgb"  # the model's channel order: rgb or bgr
    output: str = "logits"  # what the model outputs: logits, probs or log_probs

    def __post_init__(self) -> None:
        size = self.size
        if isinstance(size, list | tuple):
            if len(size) != 2:
                raise ValueError("size must be an int or [height, width]")
            h, w = int(size[0]), int(size[1])
            object.__setattr__(self, "size", h if h == w else (h, w))
        else:
            object.__setattr__(self, "size", int(size))
        if min(self.hw) < 1 or max(self.hw) > 4096:
            raise ValueError("size must be 1..4096 pixels per side")
        if self.channels not in (1, 3):
            raise ValueError("channels must be 1 or 3")
        mean = tuple(float(v) for v in self.mean)
        std = tuple(float(v) for v in self.std)
        mean = mean * self.channels if len(mean) == 1 else mean
        std = std * self.channels if len(std) == 1 else std
        if len(mean) != self.channels or len(std) != self.channels:
            raise ValueError(f"mean and std need 1 or {self.channels} values (one per channel)")
        if any(v == 0 for v in std) or not math.isfinite(float(self.scale)):
            raise ValueError("std must be non-zero and scale finite")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        object.__setattr__(self, "scale", float(self.scale))
        if self.layout not in LAYOUTS or self.order not in ORDERS or self.output not in OUTPUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, order one of {ORDERS}, output one of {OUTPUTS}")

    @property
    def hw(self) -> tuple[int, int]:
        return (self.size, self.size) if isinstance(self.size, int) else tuple(self.size)  # type: ignore[return-value]

    def input_shape(self, batch: int | str = "N") -> tuple:
        h, w = self.hw
        if self.layout == "flat":
            return (batch, h * w * self.channels)
        return (batch, self.channels, h, w) if self.layout == "nchw" else (batch, h, w, self.channels)

    def describe(self) -> str:
        """The input shape in words, e.g. ``nhwc 1×24×32×3`` or ``flat N×784 (28×28×1, row-major H, W, C)``."""
        shape = "×".join(str(d) for d in self.input_shape("N"))
        if self.layout == "flat":
            h, w = self.hw
            return f"flat {shape} ({h}×{w}×{self.channels}, row-major H, W, C)"
        return f"{self.layout} {shape}"

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel float32 ``(a, b)``: the model's input is ``pixel · a + b`` (``a = scale/std``,
        ``b = −mean/std``), one value each or one per channel."""
        std = np.asarray(self.std, dtype=np.float32)
        return np.float32(self.scale) / std, -np.asarray(self.mean, dtype=np.float32) / std

    def apply(self, x: np.ndarray) -> np.ndarray:
        """N×H×W[×C] uint8 (RGB or grey, as stores hold them) → the model's float32 input.

        One fused pass: ``x · (scale/std) − mean/std`` per channel, written straight into the model's
        layout (5× faster than separate scale, subtract, divide and transpose passes on 64×64×3)."""
        if x.ndim == 3:
            x = x[..., None]
        if x.shape[3] != self.channels:
            x = np.repeat(x, 3, axis=3) if x.shape[3] == 1 else np.rint(x.mean(axis=3, keepdims=True))
        h, w = self.hw
        if x.shape[1] != h or x.shape[2] != w:
            x = resize(np.asarray(x, dtype=np.float32), h, w).astype(np.float32)
        if self.order == "bgr" and self.channels == 3:
            x = x[..., ::-1]
        a, b = self.affine()
        if self.layout == "nchw":
            x, a, b = x.transpose(0, 3, 1, 2), a[None, :, None, None], b[None, :, None, None]
        out = np.empty(x.shape, dtype=np.float32)
        np.multiply(x, a, out=out, casting="unsafe")
        out += b
        return out.reshape(self.input_shape(out.shape[0])) if self.layout == "flat" else out

    def as_logits(self, out: np.ndarray) -> np.ndarray:
        """Model output → scores whose softmax is the model's distribution (log-probabilities for
        a model that ends in a softmax; logits unchanged)."""
        z = np.asarray(out, dtype=np.float32)
        if self.output == "probs":
            return np.log(np.clip(z, _PROB_FLOOR, None)).astype(np.float32)
        return z

    def to_json(self) -> str:
        d = asdict(self)
        d["size"] = list(self.hw) if not isinstance(self.size, int) else self.size
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> Preprocess:
        try:
            d = json.loads(text)
        except ValueError as e:
            raise ValueError(f"malformed preprocessing JSON: {e}") from e
        return cls.from_dict(d)

    @classmethod
    def from_dict(cls, d: dict, base: Preprocess | None = None) -> Preprocess:
        """Keys as in the module docstring; unknown keys and wrong types are errors."""
        if not isinstance(d, dict):
            raise ValueError("a preprocessing spec is a JSON object")
        unknown = set(d) - set(SPEC_KEYS)
        if unknown:
            raise ValueError(f"unknown preprocessing key(s) {sorted(unknown)}; known: {', '.join(SPEC_KEYS)}")
        base = base or cls()
        try:
            vals = {k: d[k] for k in SPEC_KEYS if k in d}
            for k in ("mean", "std"):
                if k in vals:
                    v = vals[k]
                    vals[k] = tuple(v) if isinstance(v, list | tuple) else (float(v),)
            if "channels" in vals and "mean" not in vals and len(base.mean) != int(vals["channels"]):
                vals["mean"] = base.mean[:1]
            if "channels" in vals and "std" not in vals and len(base.std) != int(vals["channels"]):
                vals["std"] = base.std[:1]
            return replace(base, **vals)
        except (TypeError, ValueError) as e:
            raise ValueError(f"invalid preprocessing spec: {e}") from e

    @classmethod
    def from_spec(cls, spec: str | dict | Preprocess | Path) -> Preprocess:
        """A preset name, an inline JSON object, a path to a ``.json`` file, a dict, or a Preprocess."""
        if isinstance(spec, Preprocess):
            return spec
        if isinstance(spec, dict):
            return cls.from_dict(spec)
        text = str(spec).strip()
        if text in PRESETS:
            return PRESETS[text]
        if text.startswith("{"):
            return cls.from_json(text)
        p = Path(text)
        if p.suffix == ".json":
            try:
                return cls.from_json(p.read_text())
            except OSError as e:
                raise ValueError(f"cannot read preprocessing spec {p}: {e.strerror}") from e
        raise ValueError(
            f"unknown preprocessing spec {text!r}: give a preset ({', '.join(PRESETS)}), "
            'an inline JSON object such as \'{"size": 32, "channels": 3, "mean": 0.5, "std": 0.5}\', '
            "or a path to a .json file"
        )


@dataclass(frozen=True)
class VectorPreprocess:
    """How a **vector store**'s items (N × D float32 or float16 features, ``npy:`` stores) become a model's
    input: ``(x − mean) / std`` per feature (one value for all, or one per feature), N × D float32.

    Spec (a model's ``labelcast.preprocess`` metadata, or ``--preprocess``):
    ``{"vector": {"dim": D, "mean": 0, "std": 1, "output": "logits"}}`` — mean/std a number or D numbers,
    output as for images. ``{"vector": D}`` is the identity on D features."""

    dim: int
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    output: str = "logits"
    modality = "vector"
    layout = "vector"

    def __post_init__(self) -> None:
        d = int(self.dim)
        if not 1 <= d <= 1 << 20:
            raise ValueError("a vector's dim must be 1..1,048,576")
        object.__setattr__(self, "dim", d)
        for k in ("mean", "std"):
            v = getattr(self, k)
            v = tuple(float(a) for a in (v if isinstance(v, list | tuple | np.ndarray) else (v,)))
            if len(v) not in (1, d) or not all(math.isfinite(a) for a in v):
                raise ValueError(f"vector {k} needs 1 or {d} finite values (one per feature)")
            object.__setattr__(self, k, v)
        if any(a == 0 for a in self.std):
            raise ValueError("vector std must be non-zero")
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}")

    @property
    def channels(self) -> int:
        return 1

    @property
    def hw(self) -> tuple[int, int]:
        return (1, self.dim)

    def input_shape(self, batch: int | str = "N") -> tuple:
        return (batch, self.dim)

    def describe(self) -> str:
        return f"vector N×{self.dim} (float features)"

    def apply(self, x: np.ndarray) -> np.ndarray:
        """N × D float items → the model's N × D float32 input (checked: a wrong D names both sides)."""
        a = np.asarray(x)
        if a.ndim != 2 or a.shape[1] != self.dim:
            from .errors import SourceError

            raise SourceError(f"items are {'×'.join(map(str, a.shape))}; the model takes vectors of {self.dim}")
        mean = np.asarray(self.mean, dtype=np.float32)
        inv = np.float32(1.0) / np.asarray(self.std, dtype=np.float32)
        out = a.astype(np.float32)
        out -= mean
        out *= inv
        return out

    def as_logits(self, out: np.ndarray) -> np.ndarray:
        z = np.asarray(out, dtype=np.float32)
        if self.output == "probs":
            return np.log(np.clip(z, _PROB_FLOOR, None)).astype(np.float32)
        return z

    def to_json(self) -> str:
        def short(v: tuple[float, ...]) -> float | list[float]:
            return v[0] if len(v) == 1 else list(v)  # exact: a model reads back what it was trained with

        return json.dumps(
            {"vector": {"dim": self.dim, "mean": short(self.mean), "std": short(self.std), "output": self.output}}
        )

    @classmethod
    def from_json(cls, text: str | dict) -> VectorPreprocess:
        d = json.loads(text) if isinstance(text, str) else text
        v = d.get("vector") if isinstance(d, dict) else None
        if isinstance(v, int) and not isinstance(v, bool):
            return cls(v)
        if not isinstance(v, dict) or "dim" not in v or set(v) - {"dim", "mean", "std", "output"}:
            raise ValueError('a vector spec is {"vector": {"dim": D, "mean": …, "std": …, "output": …}}')
        try:
            return cls(v["dim"], v.get("mean", 0.0), v.get("std", 1.0), v.get("output", "logits"))
        except TypeError as e:
            raise ValueError(f"invalid vector spec: {e}") from e

    @classmethod
    def fitted(cls, x: np.ndarray, output: str = "logits") -> VectorPreprocess:
        """Per-feature standardisation fitted on ``x`` (N × D); a constant feature's std is floored so that
        it stays near zero instead of amplifying noise."""
        a = np.asarray(x, dtype=np.float64)
        mean, std = a.mean(0), a.std(0)
        floor = max(1e-6, 0.01 * float(std.mean()) if std.size else 1e-6)
        std = np.maximum(std, floor)  # float32 values: what apply computes with, and shorter JSON
        return cls(a.shape[1], tuple(mean.astype(np.float32).tolist()), tuple(std.astype(np.float32).tolist()), output)


def is_vector_spec(d) -> bool:
    return isinstance(d, dict) and "vector" in d


PRESETS = {
    "unit": Preprocess(),
    "fashion": Preprocess(28, 1, 1 / 255, (0.2860,), (0.3530,)),
    "imagenet": Preprocess(224, 3, 1 / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "half": Preprocess(32, 3, 1 / 255, (0.5,), (0.5,)),  # (x/255 − 0.5)/0.5: common for CIFAR-style models
}


def check_images(x, y=None, names=None, *, what: str = "x") -> None:
    """The array contract of every API that takes images: uint8 pixels 0–255, N×H×W or N×H×W×C (channels last,
    1 or 3), as the reference stores hold them; ``y`` one label per image; ``names`` one per class. Anything
    else is a ``SourceError`` that says how to convert (checked before any work starts)."""
    from .errors import SourceError

    if not isinstance(x, np.ndarray):
        raise SourceError(f"{what} must be a numpy array of images, not {type(x).__name__}")
    if x.dtype.kind in "OUS":
        return  # text items: checked by the text path
    if x.ndim == 2 and x.dtype in (np.float32, np.float16):
        _check_labels(x, y, names, what)  # feature vectors (a vector store's items)
        return
    if x.dtype != np.uint8:
        hint = (
            "(x * 255).round().astype('uint8') if they are in [0, 1]"
            if np.issubdtype(x.dtype, np.floating)
            else "x.astype('uint8') if they are 0–255"
        )
        raise SourceError(
            f"{what} holds {x.dtype} pixels; images are uint8 0–255, as the stores hold them: {hint}. "
            "The model's own scaling (its preprocessing spec) is applied inside"
        )
    if x.ndim not in (3, 4):
        raise SourceError(f"{what} has shape {x.shape}; images are N×H×W or N×H×W×C (channels last)")
    if x.ndim == 4 and x.shape[3] not in (1, 3) and x.shape[1] in (1, 3):
        raise SourceError(
            f"{what} has shape {x.shape}: channels first (N×C×H×W); images are channels last: x.transpose(0, 2, 3, 1)"
        )
    if x.ndim == 4 and x.shape[3] not in (1, 3):
        raise SourceError(f"{what} has {x.shape[3]} channels; images have 1 (grey) or 3 (RGB), channels last")
    _check_labels(x, y, names, what)


def _check_labels(x, y, names, what: str) -> None:
    from .errors import SourceError

    if y is not None:
        yy = np.asarray(y)
        if yy.ndim != 1 or yy.shape[0] != x.shape[0]:
            raise SourceError(f"{what} has {x.shape[0]} images but the labels have shape {yy.shape}: one label each")
        if yy.size and (not np.issubdtype(yy.dtype, np.integer) or yy.min() < 0):
            raise SourceError("labels are class numbers 0, 1, 2 … (non-negative integers)")
        if names is not None and yy.size and int(yy.max()) >= len(names):
            raise SourceError(
                f"the labels go up to class {int(yy.max())} but {len(names)} class names were given: one name a class"
            )
