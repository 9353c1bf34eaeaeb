"""One equitable benchmark: labels vs. images vs. models vs. distilled data, at equal bytes.

For every built-in scenario and seed, one fixed student recipe (:func:`recipe`)
is trained on what each method can deliver within a payload budget, and
evaluated on the scenario's held-out test split:

``labelcast``
    the sender's selection (strategy chosen on a validation slice, see below)
    with hard teacher labels: the real signed payload (header, index set,
    labels, Ed25519 signature) is at most the budget.
``labelcast-soft``
    the same strategy with soft labels (4 runner-up classes, probabilities
    softmax(z / 2), 16 levels: what ``send --strategy auto`` sends for far pools).
``random``
    a random reference subset with teacher labels, same codec (the strong baseline).
``full-pool``
    every reference item, teacher-labelled: the upper bound of the approach,
    plotted at its own payload size.
``images``
    the largest class-balanced set of target training images that fits, tiled
    into one mosaic and compressed with the best of PNG / WebP / JPEG over a
    grid of qualities, at full or half resolution. Per budget a fast proxy
    (1-nearest-neighbour accuracy on the validation slice) shortlists the best
    of each codec × resolution, and a short student on the validation slice
    picks among them (seed 0; other seeds reuse the choice). Labels are
    implicit in the round-robin class order; 4 bytes of count.
``model-fp16`` / ``model-int8``
    the student itself, trained by the sender on the full target training set
    (three widths), sent as an ONNX file with fp16 weights or int8 dynamic
    quantization, counted as the best of zstd-19 / xz of the file; accuracy is
    measured with ONNX Runtime on that very file.
``distilled``
    distribution-matching distillation (DM, Zhao & Bilen 2023, without
    augmentation) of the target training set into synthetic images per class,
    quantized to 8 bits and compressed like ``images``; smaller budgets take
    the first images of each class.

References: the teacher, and the recipe's student on the full target training set.

Baselines are counted generously: their bytes are the compressed data only
(no header, no signature), while labelcast counts its whole signed payload.

The pool is stored as ``reference build --clusters 32`` stores it (content
clusters), so ``random-keyed`` (random items in the codec's keyed order, no
position bits) is among the candidates.

The labelcast strategy is chosen once per scenario among a few candidates by
the student's accuracy on a validation slice (held out of the target training
set, never the test split) at one budget, seed 0.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["METHODS", "BenchConfig", "run_bench", "recipe", "encode_mosaic", "decode_mosaic", "distill_dm"]

METHODS = ("labelcast", "labelcast-soft", "random", "full-pool", "images", "model-fp16", "model-int8", "distilled")
# (codec, quality, downscale): every candidate is tried at full and at half resolution
IMAGE_CODECS: tuple[tuple[str, int, int], ...] = tuple(
    (codec, q, scale)
    for scale in (1, 2)
    for codec, q in (
        ("png", 0),
        ("webp", 0),
        ("webp", 5),
        ("webp", 25),
        ("webp", 50),
        ("webp", 80),
        ("jpeg", 5),
        ("jpeg", 10),
        ("jpeg", 30),
        ("jpeg", 60),
        ("jpeg", 90),
    )
)
STRATEGY_CANDIDATES = ("random-keyed+quota", "random+quota", "energy-high+quota", "el2n-easy+quota", "margin+quota")
MODEL_WIDTHS = ("cnn-w4", "cnn-w8", "cnn-small")  # widths 4, 8, 16
KEY_SEED = bytes(range(32))  # a fixed bench signing key: payload sizes do not depend on it
BENCH_ROOT = hashlib.sha256(b"labelcast-bench").digest()  # stands for the reference manifest root


@dataclass
class BenchConfig:
    scenarios: tuple[str, ...] = ("fashion", "digits")
    budgets: tuple[int, ...] = (256, 1024, 4096, 16384, 65536)  # payload bytes
    seeds: int = 3
    methods: tuple[str, ...] = METHODS
    train_samples: int = 20_000  # images the student sees (at least one pass over its set)
    validation: int = 1000  # target training items held out for the choices (never sent)
    choice_budget: int = 4096  # budget at which the labelcast strategy is chosen
    strategies: tuple[str, ...] = STRATEGY_CANDIDATES
    clusters: int = 32  # content clusters of the stored pool (0: the plain store, one group per source)
    soft_extra: int = 4  # runner-up classes per soft label
    soft_temperature: float = 2.0  # soft labels are softmax(logits / T)
    dm_ipc: int = 50  # distilled images per class (the largest set)
    dm_iters: int = 100  # DM optimisation steps (Adam, lr 0.003, 64 real images per class per step)
    work: str = "out/bench/equitable"  # teachers and intermediate files
    threads: int = 0  # torch threads; 0: all cores
    quick: bool = False

    @classmethod
    def quick_config(cls, **kw: Any) -> BenchConfig:
        """≤ 5 minutes on 2 cores: one seed, three budgets up to 4 KiB, fewer steps and candidates."""
        base = dict(
            seeds=1,
            budgets=(256, 1024, 4096),
            train_samples=4000,
            strategies=("random-keyed+quota", "energy-high+quota"),
            dm_ipc=10,
            dm_iters=50,
            quick=True,
        )
        base.update(kw)
        return cls(**base)


def recipe(cfg: BenchConfig) -> dict:
    """The one student recipe every method is trained with (written into the report)."""
    from .receiver.train import StudentConfig

    sc = StudentConfig(train_samples=cfg.train_samples, min_epochs=1)
    return {
        "architecture": "cnn-small (3 conv-BN-ReLU blocks, width 16, 29k parameters)",
        "images_seen": f"max({cfg.train_samples}, one pass): epochs = ceil({cfg.train_samples} / items), 1..300",
        "optimizer": f"AdamW lr {sc.lr} (5% warm-up, cosine to 0), weight decay {sc.weight_decay}",
        "batch": "min(64, memory plan of the cpu-small profile), 16..64 by set size",
        "loss": f"cross-entropy, label smoothing {sc.label_smoothing} (KL to soft targets for soft labels)",
        "augmentation": f"random translation ±{sc.shift} px, no flips",
        "preprocessing": "pixels / 255, 28×28 grey",
    }


# ----------------------------------------------------------------------------- images


def encode_mosaic(images: np.ndarray, codec: str, quality: int) -> bytes:
    """Tile N×H×W×C uint8 images into one near-square mosaic and compress it."""
    from PIL import Image

    n, h, w, c = images.shape
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    canvas = np.zeros((rows * h, cols * w, c), dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        canvas[r * h : (r + 1) * h, q * w : (q + 1) * w] = images[i]
    img = Image.fromarray(canvas[..., 0] if c == 1 else canvas)
    buf = io.BytesIO()
    if codec == "png":
        img.save(buf, format="PNG", optimize=True, compress_level=9)
    elif codec == "webp":
        img.save(buf, format="WEBP", quality=quality, method=6)
    elif codec == "jpeg":
        img.save(buf, format="JPEG", quality=quality, optimize=True)
    else:
        raise ValueError(f"unknown image codec {codec!r}")
    return buf.getvalue()


def decode_mosaic(data: bytes, n: int, shape: tuple[int, int, int]) -> np.ndarray:
    """Inverse of :func:`encode_mosaic`: the first ``n`` tiles as N×H×W×C uint8."""
    from PIL import Image

    h, w, c = shape
    canvas = np.asarray(Image.open(io.BytesIO(data)).convert("L" if c == 1 else "RGB"))
    canvas = canvas[..., None] if c == 1 else canvas
    cols = max(1, math.ceil(math.sqrt(n)))
    out = np.empty((n, h, w, c), dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        out[i] = canvas[r * h : (r + 1) * h, q * w : (q + 1) * w]
    return out


def _round_robin(y: np.ndarray, classes: int, seed: int) -> np.ndarray:
    """Indices in class round-robin order (each class shuffled): any prefix is class-balanced."""
    rng = np.random.default_rng([seed, 7])
    per = [rng.permutation(np.flatnonzero(y == c)) for c in range(classes)]
    out = []
    for j in range(max(len(p) for p in per)):
        out.extend(int(p[j]) for p in per if j < len(p))
    return np.asarray(out, dtype=np.int64)


def _nn_proxy(x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray) -> float:
    """1-nearest-neighbour accuracy on 14×14 pixels: a fast stand-in for the student's accuracy."""

    def small(a):
        a = a.astype(np.float32)[..., 0] if a.shape[-1] == 1 else a.astype(np.float32).mean(-1)
        n, h, w = a.shape
        return a[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2).mean((2, 4)).reshape(n, -1)

    f, fv = small(x), small(xv)
    d = (fv**2).sum(1)[:, None] - 2 * fv @ f.T + (f**2).sum(1)[None, :]
    return float((y[d.argmin(1)] == yv).mean())


def _half(images: np.ndarray) -> np.ndarray:
    """2×2 mean pooling of N×H×W×C uint8 images."""
    n, h, w, c = images.shape
    a = images[:, : h // 2 * 2, : w // 2 * 2].astype(np.float32)
    return np.rint(a.reshape(n, h // 2, 2, w // 2, 2, c).mean((2, 4))).astype(np.uint8)


def _upscale(images: np.ndarray, h: int) -> np.ndarray:
    from .codec.preprocess import resize_bilinear

    up = np.stack([resize_bilinear(images[..., c].astype(np.float64), h) for c in range(images.shape[3])], axis=3)
    return np.clip(np.rint(up), 0, 255).astype(np.uint8)


def image_candidates(
    images: np.ndarray,
    labels: np.ndarray,
    budget: int,
    xv: np.ndarray,
    yv: np.ndarray,
    codecs: tuple[tuple[str, int, int], ...] = IMAGE_CODECS,
    header: int = 4,
) -> list[dict]:
    """For each (codec, quality, resolution): the most images (in the given order) within ``budget``
    bytes, decoded as the receiver would see them, with the 1-NN proxy accuracy on (xv, yv).

    Half-resolution candidates travel at H/2 × W/2 and are upscaled (bilinear) by the receiver.
    """
    from .sender.budget import largest_fitting

    shape = images.shape[1:]
    half = _half(images) if any(c[2] == 2 for c in codecs) else images
    out = []
    for codec, q, scale in codecs:
        src = images if scale == 1 else half
        sizes: dict[int, int] = {}

        def fits(n: int, codec=codec, q=q, src=src, sizes=sizes) -> bool:
            if n not in sizes:
                sizes[n] = len(encode_mosaic(src[:n], codec, q)) + header
            return sizes[n] <= budget

        # exponential probe from small sets (cheap encodes), then bisection inside the bracket
        hi = 1
        while hi < len(src) and fits(hi):
            hi = min(2 * hi, len(src))
        n = largest_fitting(fits, hi)
        if n == 0:
            continue
        data = encode_mosaic(src[:n], codec, q)
        dec = decode_mosaic(data, n, src.shape[1:])
        if scale != 1:
            dec = _upscale(dec, shape[0])
        out.append(
            {
                "codec": codec,
                "quality": q,
                "scale": scale,
                "n": n,
                "bytes": len(data) + header,
                "proxy": _nn_proxy(dec, labels[:n], xv, yv),
                "images": dec,
            }
        )
    return out


def shortlist(cands: list[dict]) -> list[dict]:
    """The best candidate by proxy for each (codec, resolution): at most six go to the student."""
    best: dict[tuple[str, int], dict] = {}
    for c in cands:
        k = (c["codec"], c["scale"])
        if k not in best or (c["proxy"], c["n"]) > (best[k]["proxy"], best[k]["n"]):
            best[k] = c
    return list(best.values())


def fit_images(
    images: np.ndarray, labels: np.ndarray, budget: int, xv: np.ndarray, yv: np.ndarray, header: int = 4
) -> dict | None:
    """The best candidate by the 1-NN proxy alone (no student training), or None if nothing fits."""
    cands = image_candidates(images, labels, budget, xv, yv, header=header)
    return max(cands, key=lambda c: (c["proxy"], c["n"])) if cands else None


# ----------------------------------------------------------------------------- distillation


def distill_dm(
    x: np.ndarray,
    y: np.ndarray,
    classes: int,
    ipc: int,
    iters: int,
    seed: int,
    progress=None,
    lr: float = 0.003,
    real_batch: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Distribution matching: synthetic images whose mean embedding under random
    ConvNets matches each class's real images. Returns (uint8 N×H×W×C, labels),
    ordered so that the first m images of every class form the m-per-class set."""
    import torch
    import torch.nn as nn

    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 11])
    real = torch.from_numpy(x.astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()
    by_class = [np.flatnonzero(y == c) for c in range(classes)]
    init = np.concatenate([rng.choice(ix, size=ipc, replace=ix.size < ipc) for ix in by_class])
    syn = real[init].clone().requires_grad_(True)
    opt = torch.optim.Adam([syn], lr=lr)
    ch = x.shape[3]

    def net():
        layers: list[nn.Module] = []
        i = ch
        for _ in range(3):
            layers += [nn.Conv2d(i, 32, 3, padding=1), nn.GroupNorm(32, 32), nn.ReLU(), nn.AvgPool2d(2)]
            i = 32
        return nn.Sequential(*layers, nn.Flatten())

    for _ in range(iters):
        emb = net()
        for p in emb.parameters():
            p.requires_grad_(False)
        loss = torch.zeros(())
        for c in range(classes):
            pick = rng.choice(by_class[c], size=min(real_batch, by_class[c].size), replace=False)
            with torch.no_grad():
                mr = emb(real[pick]).mean(0)
            ms = emb(syn[c * ipc : (c + 1) * ipc]).mean(0)
            loss = loss + ((mr - ms) ** 2).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            syn.clamp_(0, 1)
        if progress:
            progress(1)
    img = np.rint(syn.detach().permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    lab = np.repeat(np.arange(classes), ipc)
    # interleave: image j of every class, then j+1 …  (prefixes are class-balanced)
    order = np.arange(classes * ipc).reshape(classes, ipc).T.reshape(-1)
    return img[order], lab[order]


# ----------------------------------------------------------------------------- models


def onnx_slim(src: Path, dst: Path) -> None:
    """Drop what inference does not need (exporter stack traces, doc strings, shape hints)."""
    import onnx

    m = onnx.load(str(src))
    for n in m.graph.node:
        del n.metadata_props[:]
        n.doc_string = ""
    del m.graph.value_info[:]
    m.doc_string = ""
    onnx.checker.check_model(m)
    onnx.save(m, str(dst))


def onnx_fp16(src: Path, dst: Path) -> None:
    """Store float weights as fp16 with a Cast back to float (ONNX Runtime runs it as is)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.load(str(src))
    g = m.graph
    casts, keep = [], []
    for t in g.initializer:
        a = numpy_helper.to_array(t)
        if a.dtype == np.float32 and a.size > 1:
            keep.append(numpy_helper.from_array(a.astype(np.float16), t.name + "_fp16"))
            casts.append(helper.make_node("Cast", [t.name + "_fp16"], [t.name], to=TensorProto.FLOAT))
        else:
            keep.append(t)
    del g.initializer[:]
    g.initializer.extend(keep)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(casts + nodes)
    onnx.checker.check_model(m)
    onnx.save(m, str(dst))


def onnx_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantization of weights (ONNX Runtime's quantization tool)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QUInt8)


def compressed_size(data: bytes) -> tuple[int, str]:
    import zstandard

    z = len(zstandard.ZstdCompressor(level=19).compress(data))
    x = len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))
    return (z, "zstd-19") if z <= x else (x, "xz-9e")


# ----------------------------------------------------------------------------- the bench


@dataclass
class _Env:
    name: str
    x: np.ndarray  # pool
    segs: np.ndarray
    classes: int
    xtr: np.ndarray  # target train (all, for teacher and the model reference)
    ytr: np.ndarray
    send: np.ndarray  # indices of xtr a sender may ship as images / distil from
    val: np.ndarray  # indices of xtr held out for choices
    xte: np.ndarray
    yte: np.ndarray
    logits: np.ndarray
    teacher_acc: float
    extra: dict = field(default_factory=dict)


def _teacher(name: str, work: Path, xtr, ytr, names, log) -> Path:
    from .sender.teacher import TeacherConfig, train_and_export

    tc = TeacherConfig(seed=0)
    tag = hashlib.sha256(repr((name, asdict(tc), xtr.shape, int(ytr.sum()))).encode()).hexdigest()[:12]
    path = work / f"teacher-{tag}.onnx"
    if path.exists():
        log(f"{name}: teacher reused from {path}")
    else:
        t = time.time()
        train_and_export(xtr, ytr, names, path, tc)
        log(f"{name}: teacher trained in {time.time() - t:.0f} s")
    return path


def _setup(name: str, cfg: BenchConfig, log) -> _Env:
    from .datasets import builtin
    from .sender.teacher import Teacher

    work = Path(cfg.work) / name
    work.mkdir(parents=True, exist_ok=True)
    x, g, _ = builtin.pool(name)
    if cfg.clusters:  # the store `reference build --clusters K` writes: grouped by content cluster
        from .sender.clusters import ClusterConfig, cluster_items, cluster_order

        g = cluster_items(x, ClusterConfig(k=cfg.clusters))
        order = cluster_order(g)
        x, g = x[order], g[order]
    xtr, ytr, names = builtin.target(name, "train")
    xte, yte, _ = builtin.target(name, "test")
    val, send = builtin.stratified_split(ytr, cfg.validation, seed=99)
    t = Teacher(_teacher(name, work, xtr, ytr, names, log))
    logits = np.concatenate([t.logits(x[s : s + 4096]) for s in range(0, len(x), 4096)])
    tacc = float((t.logits(xte).argmax(1) == yte).mean())
    segs = np.diff(np.concatenate([[0], np.flatnonzero(np.diff(g)) + 1, [len(g)]]))
    return _Env(name, x, segs, len(names), xtr, ytr, send, val, xte, yte, logits, tacc)


class _Runner:
    def __init__(self, cfg: BenchConfig, progress) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self.cfg = cfg
        from .codec.keys import TrustSet, key_id

        self.key = Ed25519PrivateKey.from_private_bytes(KEY_SEED)
        self.trust = TrustSet({key_id(self.key.public_key()): self.key.public_key()})
        self.progress = progress
        self.memo: dict[str, tuple[Any, float]] = {}
        self.trained = 0

    # one student, one accuracy (the same data, targets and seed give the same student: trained once)
    def student(self, env: _Env, x, targets, seed: int, arch: str = "cnn-small", xe=None, ye=None, samples=None):
        import torch

        from .codec.preprocess import Preprocess
        from .profiles import load_device
        from .receiver.train import StudentConfig, train_student

        x = np.ascontiguousarray(x)
        xe, ye = (env.xte, env.yte) if xe is None else (xe, ye)
        h = hashlib.sha256()
        for part in (x, np.ascontiguousarray(targets), xe, ye):
            h.update(part.tobytes())
        samples = samples or self.cfg.train_samples
        key = f"{h.hexdigest()}-{seed}-{arch}-{samples}"
        if key in self.memo:
            self.progress(1)
            return self.memo[key]
        sc = StudentConfig(arch=arch, train_samples=samples, min_epochs=1, seed=seed, threads=self.cfg.threads)
        model, _ = train_student(x, targets, env.classes, Preprocess(), load_device("cpu-small"), sc)
        self.trained += 1
        with torch.no_grad():
            chunks = [xe[s : s + 2048] for s in range(0, len(xe), 2048)]
            pred = np.concatenate([model(torch.from_numpy(Preprocess().apply(c))).argmax(1).numpy() for c in chunks])
        self.progress(1)
        self.memo[key] = (model, float((pred == ye).mean()))
        return self.memo[key]

    def payload(self, env: _Env, idx: np.ndarray, labels: np.ndarray, soft=None, prefix_key=None) -> bytes:
        from .codec.payload import build_payload

        p, _ = build_payload(
            idx,
            labels,
            n_items=len(env.x),
            classes=env.classes,
            root=BENCH_ROOT,
            key=self.key,
            sequence=1,
            expires_at=2**33,
            segments=env.segs,
            soft=soft,
            prefix_key=prefix_key,
        )
        return p

    def labels_at(self, env: _Env, strategy: str, budget: int, seed: int, soft: bool) -> dict | None:
        """Fit a selection to the budget with the real encoder; returns the items and bytes."""
        from .codec.errors import BudgetError
        from .codec.payload import open_payload
        from .codec.softlabels import soft_from_probs
        from .sender.budget import fit_payload
        from .sender.selection import SelectConfig, prefix_key, pseudo_labels, rank_items, select, softmax

        base, _, q = strategy.partition("+")
        sc = SelectConfig(strategy=base, quota=q == "quota", seed=seed)
        z = env.logits
        pl = env.extra.setdefault("pl", pseudo_labels(z))
        if soft and "probs" not in env.extra:
            env.extra["probs"] = softmax(z, self.cfg.soft_temperature)
        order = rank_items(z, sc, env.segs)
        chosen: dict[int, np.ndarray] = {}

        def build(k: int):
            idx = select(z, k, sc, order, env.segs)
            chosen[k] = idx
            s = soft_from_probs(env.extra["probs"][idx], pl[idx], self.cfg.soft_extra, 16) if soft else None
            return self.payload(env, idx, pl[idx], s, prefix_key(sc)), {}

        try:
            fit = fit_payload(build, len(pl), budget)
        except BudgetError:
            return None
        # train on what the receiver decodes from the signed bytes, not on the sender's arrays
        got = open_payload(fit.payload, self.trust, BENCH_ROOT, n_items=len(env.x), segments=env.segs)
        if not np.array_equal(np.sort(got.indices), chosen[fit.k]):
            raise RuntimeError("payload round trip changed the selection")
        targets = got.soft.dense(got.labels, env.classes) if soft else got.labels
        return {"idx": got.indices, "targets": targets, "bytes": len(fit.payload), "items": int(got.indices.size)}

    def choose_strategy(self, env: _Env, log) -> tuple[str, dict]:
        xv, yv = env.xtr[env.val], env.ytr[env.val]
        scores = {}
        for s in self.cfg.strategies:
            got = self.labels_at(env, s, self.cfg.choice_budget, 0, False)
            if got is None:
                continue
            _, acc = self.student(env, env.x[got["idx"]], got["targets"], 0, xe=xv, ye=yv)
            scores[s] = acc
        # ties go to the earlier candidate (the list starts with send's choice for a near pool)
        cands = list(self.cfg.strategies)
        best = max(scores, key=lambda s: (scores[s], -cands.index(s)))
        log(f"{env.name}: strategy {best} chosen on the validation slice ({scores})")
        return best, scores


def _key(r: dict) -> Any:
    return r["budget"] if r["budget"] is not None else r.get("variant", "-")


def _summarise(rows: list[dict], methods) -> list[dict]:
    """Mean ± std per (method, budget or variant), ordered by bytes."""
    out = []
    for m in methods:
        rs = [r for r in rows if r["method"] == m]
        cells: dict[Any, list[dict]] = {}
        for r in rs:
            cells.setdefault(_key(r), []).append(r)
        part = []
        for cell in cells.values():
            ok = [r for r in cell if r["accuracy"] is not None]
            part.append(
                {
                    "method": m,
                    "budget": cell[0]["budget"],
                    "variant": cell[0].get("variant"),
                    "n": len(ok),
                    "bytes": float(np.mean([r["bytes"] for r in ok])) if ok else None,
                    "items": float(np.mean([r["items"] for r in ok])) if ok and ok[0]["items"] is not None else None,
                    "mean": float(np.mean([r["accuracy"] for r in ok])) if ok else None,
                    "std": float(np.std([r["accuracy"] for r in ok])) if ok else None,
                }
            )
        part.sort(key=lambda s: (s["bytes"] is None, s["bytes"] or 0, str(s["budget"])))
        out.extend(part)
    return out


def plot(result: dict, scenario: str, path: str | os.PathLike) -> None:
    """Accuracy against log bytes, one line per method, references as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sc = result["scenarios"][scenario]
    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    style = {
        "labelcast": dict(color="C3", marker="o", lw=2.5),
        "labelcast-soft": dict(color="C1", marker="o", ls="--"),
        "random": dict(color="C0", marker="s"),
        "full-pool": dict(color="C3", marker="*", ms=14, ls="none"),
        "images": dict(color="C2", marker="^"),
        "model-fp16": dict(color="C4", marker="D"),
        "model-int8": dict(color="C5", marker="D", ls="--"),
        "distilled": dict(color="C6", marker="v"),
    }
    for m in result["config"]["methods"]:
        pts = [s for s in sc["summary"] if s["method"] == m and s["mean"] is not None]
        if not pts:
            continue
        pts.sort(key=lambda s: s["bytes"])
        label = m if m != "labelcast" else f"labelcast ({sc['strategy']})"
        ax.errorbar(
            [p["bytes"] for p in pts],
            [p["mean"] for p in pts],
            yerr=[p["std"] for p in pts],
            label=label,
            capsize=3,
            **style.get(m, {}),
        )
    ax.axhline(sc["teacher_accuracy"], color="k", ls="--", lw=1, label=f"teacher ({sc['teacher_accuracy']:.3f})")
    ref = sc.get("student_full_target")
    if ref:
        ax.axhline(ref["mean"], color="grey", ls=":", lw=1.5, label=f"student on full target ({ref['mean']:.3f})")
    ax.set_xscale("log", base=2)
    ticks = [b for b in result["config"]["budgets"]]
    ax.set_xticks(ticks, [f"{b >> 10} KiB" if b >= 1024 else f"{b} B" for b in ticks])
    ax.set_xlabel("bytes sent (payload; log scale)")
    ax.set_ylabel("student accuracy on held-out test split")
    seeds = result["config"]["seeds"]
    ax.set_title(f"{scenario}: accuracy per byte, one student recipe, mean ± std over {seeds} seed(s)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(result: dict) -> str:
    """The results.md section: recipe, per-scenario table (method × budget), the command."""
    cfg = result["config"]
    lines = [
        f"Regenerate: `{result['command']}` ({result['seconds'] / 60:.1f} min on "
        f"{result['machine']['cpus']} cores; every number in `{result['json']}`).",
        "",
        "Student recipe (every method): "
        + "; ".join(f"{k}: {v}" for k, v in result["recipe"].items())
        + ". Budgets are payload bytes; labelcast counts its whole signed payload, the baselines only"
        " their compressed data. Cells: accuracy mean ± std over seeds, with the bytes actually used"
        " and the number of items (labels, images or parameters).",
    ]
    for name, sc in result["scenarios"].items():
        budgets = [b for b in cfg["budgets"]]
        lines += [
            "",
            f"### {name}: teacher {sc['teacher_accuracy']:.3f}, student on full target "
            f"{sc['student_full_target']['mean']:.3f} ± {sc['student_full_target']['std']:.3f}; "
            f"labelcast strategy `{sc['strategy']}`",
            "",
            "| method | " + " | ".join(f"≤ {b:,} B" for b in budgets) + f" | > {budgets[-1]:,} B |",
            "|---|" + "---|" * (len(budgets) + 1),
        ]
        for m in cfg["methods"]:
            cells = []
            fixed = [s for s in sc["summary"] if s["method"] == m and s["budget"] is None and s["mean"] is not None]
            if fixed:  # fixed sizes: each point in the smallest budget column it fits, or beyond
                for i, b in enumerate(budgets):
                    lo = budgets[i - 1] if i else 0
                    cells.append("; ".join(_cell(s) for s in fixed if lo < s["bytes"] <= b) or "—")
                cells.append("; ".join(_cell(s) for s in fixed if s["bytes"] > budgets[-1]) or "—")
            else:
                rows = {s["budget"]: s for s in sc["summary"] if s["method"] == m}
                if not rows:
                    continue
                for b in budgets:
                    s = rows.get(b)
                    cells.append(_cell(s) if s and s["mean"] is not None else "does not fit")
                cells.append("")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines += ["", f"![{name}](accuracy_vs_bytes_{name}.png)"]
    return "\n".join(lines)


def _cell(s: dict) -> str:
    what = "parameters" if s["method"].startswith("model") else "items"
    items = f", {int(round(s['items'])):,} {what}" if s.get("items") is not None else ""
    tag = f"{s['variant']}: " if s.get("variant") and s["method"].startswith("model") else ""
    return f"{tag}{s['mean']:.3f}±{s['std']:.3f} ({int(round(s['bytes'])):,} B{items})"


def run_bench(cfg: BenchConfig, log=print, command: str = "labelcast bench") -> dict:
    """Run the benchmark; returns every number (the JSON report)."""
    from ._progress import bar

    unknown = set(cfg.methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {', '.join(METHODS)}")
    t0 = time.time()
    per_seed = (
        sum(
            len(cfg.budgets) if m in ("labelcast", "labelcast-soft", "random", "images", "distilled") else 0
            for m in cfg.methods
        )
        + ("full-pool" in cfg.methods)
        + len(MODEL_WIDTHS)
    )
    image_methods = sum(m in cfg.methods for m in ("images", "distilled"))
    choices = len(cfg.strategies) + 6 * len(cfg.budgets) * image_methods  # at most: validation-slice choices
    total = len(cfg.scenarios) * (cfg.seeds * per_seed + choices)
    result: dict = {
        "command": command,
        "config": asdict(cfg),
        "recipe": recipe(cfg),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "scenarios": {},
    }
    with bar(total, "bench", unit="student") as progress:
        run = _Runner(cfg, progress)
        for name in cfg.scenarios:
            env = _setup(name, cfg, log)
            strategy, scores = run.choose_strategy(env, log)
            rows: list[dict] = []
            ref_accs = []
            for seed in range(cfg.seeds):
                t_seed = time.time()
                ref_accs.append(_one_seed(run, env, cfg, strategy, seed, rows))
                log(f"{name} seed {seed}: {time.time() - t_seed:.0f} s")
            summary = _summarise(rows, cfg.methods)
            spent = {m: round(sum(r["seconds"] for r in rows if r["method"] == m), 1) for m in cfg.methods}
            log(f"{name}: seconds by method {spent}")
            result["scenarios"][name] = {
                "seconds_by_method": spent,
                "teacher_accuracy": env.teacher_acc,
                "pool_items": int(len(env.x)),
                "strategy": strategy,
                "strategy_validation_accuracy": scores,
                "student_full_target": {"mean": float(np.mean(ref_accs)), "std": float(np.std(ref_accs))},
                "runs": rows,
                "summary": summary,
            }
        result["students_trained"] = run.trained
    result["seconds"] = round(time.time() - t0, 1)
    return result


def _one_seed(run: _Runner, env: _Env, cfg: BenchConfig, strategy: str, seed: int, rows: list[dict]) -> float:
    """Every method at every budget for one seed; returns the full-target student's accuracy."""
    from ._progress import bar
    from .sender.selection import pseudo_labels

    xs, ys = env.xtr[env.send], env.ytr[env.send]
    name = env.name
    clock = [time.time()]

    def add(method, budget, acc, nbytes, items=None, **detail):
        now = time.time()
        rows.append(
            {
                "method": method,
                "budget": budget,
                "seed": seed,
                "accuracy": acc,
                "bytes": nbytes,
                "items": items,
                "seconds": round(now - clock[0], 2),  # fitting, distilling, training, evaluating
                **detail,
            }
        )
        clock[0] = now

    for method, strat, soft in (
        ("labelcast", strategy, False),
        ("labelcast-soft", strategy, True),
        ("random", "random", False),
    ):
        if method not in cfg.methods:
            continue
        for b in cfg.budgets:
            got = run.labels_at(env, strat, b, seed, soft)
            if got is None:
                add(method, b, None, None)
                continue
            _, acc = run.student(env, env.x[got["idx"]], got["targets"], seed)
            add(method, b, acc, got["bytes"], got["items"], strategy=strat)
    if "full-pool" in cfg.methods:
        pl = pseudo_labels(env.logits)
        idx = np.arange(len(pl))
        nbytes = len(run.payload(env, idx, pl))
        _, acc = run.student(env, env.x, pl, seed)
        add("full-pool", None, acc, nbytes, len(pl), variant="all items")
    if "images" in cfg.methods:
        order = _round_robin(ys, env.classes, seed)
        _send_images(run, env, cfg, "images", xs[order], ys[order], seed, add)
    if "distilled" in cfg.methods:
        with bar(cfg.dm_iters, f"{name} DM distillation", unit="step") as p:
            syn, slab = distill_dm(xs, ys, env.classes, cfg.dm_ipc, cfg.dm_iters, seed, p)
        _send_images(run, env, cfg, "distilled", syn, slab, seed, add)
    return _models(run, env, seed, add, cfg)


def _send_images(run: _Runner, env: _Env, cfg: BenchConfig, method: str, imgs, labs, seed: int, add) -> None:
    """Images at every budget. The codec, quality and resolution are chosen once per budget (seed 0)
    by a short student's accuracy on the validation slice among the proxy's shortlist."""
    xv, yv = env.xtr[env.val], env.ytr[env.val]
    for b in cfg.budgets:
        key = ("codec-choice", method, b)
        if key not in env.extra:
            cands = shortlist(image_candidates(imgs, labs, b, xv, yv))
            scored = []
            for c in cands:
                _, v = run.student(env, c["images"], labs[: c["n"]], 0, xe=xv, ye=yv, samples=cfg.train_samples // 4)
                scored.append((v, c["n"], c))
            env.extra[key] = max(scored, key=lambda t: t[:2])[2] if scored else None
            if env.extra[key] is not None:
                env.extra[key]["validation"] = {f"{c['codec']}-q{c['quality']}-x{c['scale']}": v for v, _, c in scored}
        choice = env.extra[key]
        if choice is None:
            add(method, b, None, None)
            continue
        fit = image_candidates(imgs, labs, b, xv, yv, codecs=((choice["codec"], choice["quality"], choice["scale"]),))
        if not fit:
            add(method, b, None, None)
            continue
        f = fit[0]
        _, acc = run.student(env, f["images"], labs[: f["n"]], seed)
        add(
            method,
            b,
            acc,
            f["bytes"],
            f["n"],
            codec=f["codec"],
            quality=f["quality"],
            scale=f["scale"],
            validation=choice["validation"],
        )


def _models(run: _Runner, env: _Env, seed: int, add, cfg: BenchConfig) -> float:
    """Sending the model: train each width on the full target set, export, shrink, measure with ORT."""
    from .codec.preprocess import Preprocess
    from .receiver.evaluate import evaluate
    from .receiver.export import export_onnx

    work = Path(cfg.work) / env.name / "models"
    work.mkdir(parents=True, exist_ok=True)
    ref = float("nan")
    for arch in MODEL_WIDTHS:
        model, acc = run.student(env, env.xtr, env.ytr, seed, arch=arch)
        if arch == "cnn-small":
            ref = acc
        f32 = work / f"{arch}-s{seed}.onnx"
        export_onnx(model, f32, Preprocess(), env.classes)
        onnx_slim(f32, f32)
        params = sum(p.numel() for p in model.parameters())
        for fmt, conv in (("fp16", onnx_fp16), ("int8", onnx_int8)):
            out = work / f"{arch}-s{seed}-{fmt}.onnx"
            conv(f32, out)
            size, how = compressed_size(out.read_bytes())
            method = f"model-{fmt}"
            if method in cfg.methods:
                acc_q = float(evaluate(out, env.xte, env.yte)["accuracy"])  # ONNX Runtime on that very file
                add(method, None, acc_q, size, params, variant=arch, compression=how, float_accuracy=acc)
    return ref


def update_results_md(path: str | os.PathLike, section: str) -> None:
    """Replace the text between the bench markers in ``path`` (append the markers when absent)."""
    p = Path(path)
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    text = p.read_text() if p.exists() else "# Results\n"
    block = f"{start}\n{section}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        title = "## Equitable benchmark: labels vs. images vs. models vs. distilled data"
        text = text.rstrip("\n") + f"\n\n{title}\n\n" + block + "\n"
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, p)


def write_report(result: dict, json_path: str | os.PathLike, plots: str | os.PathLike | None, results_md) -> None:
    result["json"] = str(json_path)
    jp = Path(json_path)
    jp.parent.mkdir(parents=True, exist_ok=True)
    tmp = jp.with_name(jp.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=float))
    os.replace(tmp, jp)
    if plots:
        for name in result["scenarios"]:
            plot(result, name, Path(plots) / f"accuracy_vs_bytes_{name}.png")
    if results_md:
        update_results_md(results_md, markdown(result))
