"""Fine-tune a student on the rebuilt subset, within the device profile's memory.

:func:`train_student` runs the one training loop the teacher and the text student also run
(:func:`labelcast.receiver.loop.train_loop`: explicit seed, a pure learning-rate schedule,
stateless per-epoch/per-step random streams, so a resumed run repeats the uninterrupted one
exactly, atomic checkpoints every N steps); this module gives it the image student's step
and what is around it:

* **accelerator** (:func:`select_device`): CUDA when the profile says ``cuda = true`` and
  torch sees a GPU, else the CPU — with one log line saying why; mixed precision per the
  profile's ``precision`` (fp16 with a gradient scaler, bf16, fp32); ``channels_last`` memory.
* **memory** (:func:`plan_memory`): the batch is first estimated from the model, then
  *measured* — a probe step at that batch records the real peak (``max_memory_allocated`` on
  GPU; on the CPU the anonymous memory — ``RssAnon`` — the step adds above what the process
  held when training began) and the batch halves until
  it fits; the schedule is computed for the batch finally used. A profile too small for
  batch 1 is refused before training (:class:`BudgetError`). On GPU the process is also capped
  at the profile's budget (``set_per_process_memory_fraction``).
* **pretrained start and sparse updates** (``init``, ``finetune``): a backbone pretrained on
  the reference pool (``labelcast student pretrain``) is loaded — refused when its arch, keys
  or hash differ — and ``finetune`` trains everything, the head only, or the last N blocks:
  the frozen prefix runs without autograd, so it keeps no activations.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..codec.errors import BudgetError, ReferenceMismatchError
from ..codec.preprocess import Preprocess, VectorPreprocess
from ..profiles import DeviceProfile
from .errors import ModelError
from .loop import (
    Schedule,
    check_training_space,
    epochs_for,
    load_checkpoint,
    lr_at,
    samples_note,
    save_checkpoint,
    train_loop,
)
from .students import build_student, split_for_finetune

__all__ = [
    "StudentConfig",
    "train_student",
    "plan_training",
    "plan_memory",
    "select_device",
    "amp_settings",
    "load_backbone",
    "random_crop",
    "random_erase",
    "lr_at",
    "peak_rss_mb",
    "rss_bytes",
]

log = logging.getLogger("labelcast.receiver")


@dataclass
class StudentConfig:
    """The device student's recipe (``train_student``); payload hints fill what is not set.

    Attributes:
        arch: a built-in (students.ARCHS) or your own pkg.module:factory
        train_samples: images seen in training (epochs = this / k, clamped)
        min_epochs: least passes over the labelled items, whatever ``train_samples`` says (7: chosen on
            validation data, docs/results.md "How choices are made")
        max_epochs: most passes over the labelled items
        batch: 0: planned from the device profile (and measured)
        lr: peak AdamW learning rate
        weight_decay: AdamW weight decay
        warmup: fraction of steps warming up linearly
        label_smoothing: label smoothing of the hard-label loss
        augment: crop: padded random crops; roll: wrap-around shifts (the old default); none
        shift: crop padding / max shift, pixels
        flip: horizontal flips (a payload hint; off for digits)
        mosaic: fraction of a batch replaced by 2×2 mosaics of same-label items
        erase: probability an image gets a random rectangle (2–25 % of its area) set to 0, the preprocessed
            mean (cutout, DeVries & Taylor 2017; random erasing, Zhong et al. 2020); 0: none
        seed: seed of the weights, the batch order and the augmentation
        checkpoint_every: steps between checkpoints
        threads: torch intra-op threads; 0: the profile's cores
        init: backbone (.safetensors from ``student pretrain``) to start from; "": random weights
        init_sha256: refuse a backbone whose hash differs (the store's backbones.json); "": any
        finetune: all | head | last:N (N last blocks and the head; the rest frozen)
        warm_fraction: incremental payloads: the share of train_samples a warm start trains for
        warm_min_epochs: … and its least passes over the cumulative set
        precision: auto (the profile's) | fp32 | fp16 | bf16
        accelerator: auto | cpu | cuda
    """

    arch: str = "cnn-small"
    train_samples: int = 100_000
    min_epochs: int = 7
    max_epochs: int = 300
    batch: int = 0
    lr: float = 3e-3
    weight_decay: float = 5e-4
    warmup: float = 0.05
    label_smoothing: float = 0.05
    augment: str = "crop"
    shift: int = 2
    flip: bool = False
    mosaic: float = 0.0
    erase: float = 0.0
    seed: int = 0
    checkpoint_every: int = 200
    threads: int = 0
    init: str = ""
    init_sha256: str = ""
    finetune: str = "all"
    warm_fraction: float = 0.25
    warm_min_epochs: int = 2
    precision: str = "auto"
    accelerator: str = "auto"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc; falls back to the peak)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return int(peak_rss_mb() * (1 << 20))


def anon_bytes() -> int:
    """Anonymous resident memory of this process (``RssAnon``: what allocations hold; the code pages of the
    installed libraries are file-backed, shared and part of the baseline). Falls back to :func:`rss_bytes`."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return rss_bytes()


_BASELINE_RSS = anon_bytes()  # interpreter + numpy + torch, measured when this module loads


def select_device(profile: DeviceProfile, want: str = "auto") -> tuple[torch.device, str]:
    """The training device and why (one line for the log and the report)."""
    has = torch.cuda.is_available()
    if want == "cpu":
        return torch.device("cpu"), "cpu: asked for with accelerator=cpu"
    if want == "cuda" and not has:
        raise ValueError("accelerator=cuda, but torch sees no CUDA GPU (a CPU build of torch, or no driver)")
    if want == "cuda" or (profile.cuda and has):
        return torch.device("cuda"), f"cuda: {torch.cuda.get_device_name(0)} (profile {profile.name})"
    if profile.cuda:
        return torch.device(
            "cpu"
        ), f"cpu: profile {profile.name} has a GPU but torch sees none (CPU build or no driver)"
    return torch.device("cpu"), f"cpu: profile {profile.name} has no GPU"


def amp_settings(
    device: torch.device, profile: DeviceProfile, precision: str = "auto"
) -> tuple[torch.dtype | None, str]:
    """(autocast dtype or None for fp32, why). fp16 uses a gradient scaler; int8 profiles train in fp16."""
    want = profile.precision if precision == "auto" else precision
    want = "fp16" if want == "int8" else want
    if want not in ("fp32", "fp16", "bf16"):
        raise ValueError(f"precision must be fp32, fp16 or bf16, not {want!r}")
    if want == "fp32":
        return None, "fp32"
    if device.type == "cuda":
        if want == "bf16" and not torch.cuda.is_bf16_supported():
            return torch.float16, "fp16 (bf16 not supported by this GPU)"
        return (torch.float16, "fp16 autocast + gradient scaler") if want == "fp16" else (torch.bfloat16, "bf16")
    if want == "bf16" and precision != "auto":
        return torch.bfloat16, "bf16 autocast on the CPU (asked for)"
    return None, f"fp32 ({want} mixed precision is for GPUs; the CPU trains in fp32)"


def _activation_bytes(model: torch.nn.Module, shape: tuple[int, ...]) -> int:
    """Bytes one sample keeps for backward: outputs of leaf modules run with autograd, × 4 B × 2 (grads).
    A frozen prefix runs without autograd, so it adds nothing."""
    total = 0

    def hook(_m, _i, out):
        nonlocal total
        if isinstance(out, torch.Tensor) and torch.is_grad_enabled():
            total += out.numel()

    hs = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    was = model.training
    model.train()
    model(torch.zeros(2, *shape, device=next(model.parameters()).device))
    model.train(was)
    for h in hs:
        h.remove()
    return total // 2 * 4 * 2


def _estimate(model: torch.nn.Module, shape: tuple[int, ...], data_bytes: int, profile: DeviceProfile) -> dict:
    """The batch an estimate allows (power of two ≤ max_batch) and its parts; BudgetError if none."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    fixed = trainable * 4 * 4 + frozen * 4 + data_bytes + 64 * (1 << 20)  # weights+grads+AdamW; data; runtime
    per = _activation_bytes(model, shape) + int(np.prod(shape)) * 4 * 2
    room = profile.budget_bytes - fixed
    if room < per:
        raise BudgetError(
            f"training needs ~{(fixed + per) >> 20} MiB, the profile {profile.name} allows "
            f"{profile.budget_bytes >> 20} MiB; choose a smaller student, --finetune head, or a larger device"
        )
    b = 1
    while b * 2 <= min(profile.max_batch, room // per):
        b *= 2
    return {"max_batch": b, "estimated_bytes": fixed + b * per, "fixed_bytes": fixed, "per_item_bytes": per}


def _loss(out: torch.Tensor, yb: torch.Tensor, soft: bool, smoothing: float = 0.0) -> torch.Tensor:
    out = out.float()
    if soft:
        return F.kl_div(F.log_softmax(out, 1), yb.clamp_min(1e-8), reduction="batchmean")
    return F.cross_entropy(out, yb, label_smoothing=smoothing)


def _probe_peak(model, opt, xb, yb, soft, amp, device, base: int | None = None) -> int:
    """Memory one forward+backward at this batch really takes (no weights change): on GPU the allocator's
    peak; on the CPU the anonymous memory this training added since ``base`` (:func:`anon_bytes` when
    training began; default: when this module loaded). Memory the calling process held before — a
    benchmark's data, a demo's teacher — is not the student's."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
        loss = _loss(model(xb), yb, soft)
    mid = anon_bytes()
    loss.backward()
    after = anon_bytes()
    opt.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated())
    return max(mid, after) - (_BASELINE_RSS if base is None else base)


def plan_memory(
    model, opt, xs, ys, soft, batch: int, profile: DeviceProfile, amp, device, base: int | None = None
) -> dict:
    """Measure the peak of one step at ``batch`` and halve it until it fits the profile's budget (``base``: the
    process RSS when training began, see :func:`_probe_peak`)."""
    budget = profile.budget_bytes
    while True:
        peak = _probe_peak(model, opt, xs[:batch].to(device), ys[:batch].to(device), soft, amp, device, base)
        if peak <= budget or batch == 1:
            break
        batch //= 2
    if peak > budget:
        raise BudgetError(
            f"one training step at batch 1 takes {peak >> 20} MiB; the profile {profile.name} allows "
            f"{budget >> 20} MiB. Choose a smaller student, --finetune head, or a larger device"
        )
    return {"batch": batch, "measured_peak_bytes": int(peak), "budget_bytes": budget, "measured_on": device.type}


def random_crop(xb: torch.Tensor, pad: int, rng: np.random.Generator, groups: int = 8) -> torch.Tensor:
    """Padded random crops: pad by ``pad`` pixels (edges repeated) and cut the original size back out at a
    random offset per group of the batch (nothing wraps around the border)."""
    if pad <= 0:
        return xb
    h, w = xb.shape[2], xb.shape[3]
    padded = F.pad(xb, (pad, pad, pad, pad), mode="replicate")
    out = torch.empty_like(xb)
    for i, chunk in enumerate(torch.arange(xb.shape[0]).chunk(groups)):
        dy, dx = (int(v) for v in rng.integers(0, 2 * pad + 1, size=2))
        out[chunk] = padded[chunk, :, dy : dy + h, dx : dx + w]
        del i
    return out


def _augment(xb: torch.Tensor, cfg: StudentConfig, rng: np.random.Generator) -> torch.Tensor:
    if xb.ndim == 2:  # feature vectors: no image augmentation applies (the MLP's dropout regularises)
        return xb
    if cfg.augment == "crop":
        xb = random_crop(xb, cfg.shift, rng)
    elif cfg.augment == "roll" and cfg.shift:
        for chunk in xb.chunk(4):  # the former default: shifts that wrap around the border
            dy, dx = (int(v) for v in rng.integers(-cfg.shift, cfg.shift + 1, size=2))
            chunk.copy_(torch.roll(chunk, shifts=(dy, dx), dims=(2, 3)))
    elif cfg.augment not in ("none", "roll"):
        raise ValueError(f"augment must be crop, roll or none, not {cfg.augment!r}")
    if cfg.flip:
        m = torch.from_numpy(rng.random(xb.shape[0]) < 0.5).to(xb.device)
        xb = torch.where(m[:, None, None, None], torch.flip(xb, dims=(3,)), xb)
    if cfg.erase > 0:
        xb = random_erase(xb, cfg.erase, rng)
    return xb


def random_erase(xb: torch.Tensor, p: float, rng: np.random.Generator) -> torch.Tensor:
    """Each image, with probability ``p``, gets one rectangle of 2–25 % of its area (aspect 0.3–3.3, inside the
    image) set to 0: the preprocessed inputs' mean. Drawn from ``rng`` alone, so a resumed step erases the same."""
    n, h, w = xb.shape[0], xb.shape[2], xb.shape[3]
    hit = rng.random(n) < p
    area = rng.uniform(0.02, 0.25, n) * h * w
    aspect = np.exp(rng.uniform(np.log(0.3), np.log(1 / 0.3), n))
    eh = np.clip(np.round(np.sqrt(area * aspect)), 1, h).astype(np.int64)
    ew = np.clip(np.round(np.sqrt(area / aspect)), 1, w).astype(np.int64)
    y0 = (rng.random(n) * (h - eh + 1)).astype(np.int64)
    x0 = (rng.random(n) * (w - ew + 1)).astype(np.int64)
    ys, xs = np.arange(h)[None, :], np.arange(w)[None, :]
    rows = (ys >= y0[:, None]) & (ys < (y0 + eh)[:, None]) & hit[:, None]
    cols = (xs >= x0[:, None]) & (xs < (x0 + ew)[:, None])
    mask = torch.from_numpy(rows[:, :, None] & cols[:, None, :]).to(xb.device)[:, None]
    return xb.masked_fill(mask, 0.0)


class _Items:
    """The training items on the device. Where the preprocessing is a plain per-channel scale and shift of
    items already at the model's size and channels (the built-in stores, any store trained at its own size),
    they stay **uint8** (a quarter of float32's memory: 81 MB instead of 324 MB for 25,793 28×28 items, 4×
    more at 64×64 RGB) and become the model's float input a batch at a time, with the same float32 ops as
    :meth:`Preprocess.apply`; otherwise the whole set is converted once, as before."""

    def __init__(self, x: np.ndarray, preprocess: Preprocess, device: torch.device) -> None:
        self.n = int(x.shape[0])
        self.raw = _keeps_uint8(x, preprocess)
        if self.raw:
            a, b = preprocess.affine()  # the same float32 constants and ops as Preprocess.apply
            c = preprocess.channels
            self.a = torch.from_numpy(np.broadcast_to(a, (c,)).copy()).view(1, c, 1, 1).to(device)
            self.b = torch.from_numpy(np.broadcast_to(b, (c,)).copy()).view(1, c, 1, 1).to(device)
            self.x = torch.from_numpy(np.ascontiguousarray(x)).to(device)  # N×H×W×C uint8
        elif getattr(preprocess, "modality", "image") == "vector":
            self.x = torch.from_numpy(preprocess.apply(x)).to(device)  # N×D float32
        else:
            self.x = torch.from_numpy(preprocess.apply(x)).to(device).contiguous(memory_format=torch.channels_last)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, idx) -> torch.Tensor:
        """The model's float input (N×C×H×W, channels-last memory) for the items ``idx`` (indices or a slice)."""
        if not self.raw:
            return self.x[idx]
        xb = self.x[idx].permute(0, 3, 1, 2).float()  # NHWC memory seen as NCHW: channels-last already
        return xb * self.a + self.b


def _keeps_uint8(x: np.ndarray, preprocess: Preprocess) -> bool:
    return (
        x.dtype == np.uint8
        and x.ndim == 4
        and tuple(x.shape[1:3]) == tuple(preprocess.hw)
        and x.shape[3] == preprocess.channels
        and preprocess.layout == "nchw"
        and (preprocess.order != "bgr" or preprocess.channels == 1)
    )


def _data_bytes(x: np.ndarray, preprocess: Preprocess) -> int:
    """Memory the training items take on the device (see :class:`_Items`)."""
    per = preprocess.channels * preprocess.hw[0] * preprocess.hw[1]
    return int(x.shape[0]) * per * (1 if _keeps_uint8(x, preprocess) else 4)


def _mosaic(xb, yb, xs, by_class, cfg, rng):
    """Replace a fraction of the batch by 2×2 mosaics of four items of the same label."""
    m = int(round(cfg.mosaic * xb.shape[0]))
    if m == 0 or yb.ndim != 1 or xb.ndim != 4:
        return xb
    xb = xb.clone()
    h, w = xb.shape[2], xb.shape[3]
    for j in range(m):
        pool = by_class[int(yb[j])]
        pick = pool[rng.integers(0, pool.size, size=4)]
        small = F.interpolate(
            xs[torch.from_numpy(pick)].to(xb.device), size=(h // 2, w // 2), mode="bilinear", align_corners=False
        )
        top = torch.cat([small[0], small[1]], dim=2)
        bot = torch.cat([small[2], small[3]], dim=2)
        tile = torch.cat([top, bot], dim=1)
        xb[j, :, : tile.shape[1], : tile.shape[2]] = tile
    return xb


MEMORY_SLACK = 1.10  # measured anonymous memory moves with the allocator: 10 % and 16 MiB over the budget stop it


def over_budget(run: _Run, profile: DeviceProfile) -> bool:
    """The CPU training peak sampled so far is beyond the profile's budget (the plan was wrong)."""
    return run.device.type != "cuda" and run.peak > profile.budget_bytes * MEMORY_SLACK + (16 << 20)


def over_budget_error(run: _Run, profile: DeviceProfile, step: int) -> BudgetError:
    planned = run.notes["memory_plan"]["measured_peak_bytes"] >> 20
    return BudgetError(
        f"training took {run.peak >> 20} MiB at step {step}, over the profile {profile.name}'s "
        f"{profile.budget_bytes >> 20} MiB (the plan measured {planned} MiB); stopped with the checkpoint kept. "
        "Give a smaller --student, --finetune head, or a larger profile"
    )


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_backbone(
    model: torch.nn.Module, path: str | os.PathLike, arch: str, expect_sha256: str = "", root: bytes | None = None
) -> dict:
    """Load a pretrained backbone into ``model`` (its head excepted); refuses another arch, other keys or
    shapes, a backbone pretrained on another reference store (``root``), or (with ``expect_sha256``) another
    file, naming what differs. Returns what was loaded."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    p = Path(path)
    try:
        digest = file_sha256(p)
        with safe_open(str(p), "pt") as f:
            meta = f.metadata() or {}
        sd = load_file(str(p))
    except (OSError, ValueError, RuntimeError) as e:
        raise ModelError(f"cannot read the backbone {p}: {e}") from e
    if expect_sha256 and digest != expect_sha256:
        raise ReferenceMismatchError(
            f"backbone {p} has SHA-256 {digest[:16]}…, the payload was planned for {expect_sha256[:16]}…; "
            "install the backbone built with the store (labelcast student pretrain)"
        )
    if meta.get("labelcast.arch", arch) != arch:
        raise ModelError(f"backbone {p} is for arch {meta.get('labelcast.arch')}; the student is {arch}")
    made_on = meta.get("labelcast.reference_root")
    if root is not None and made_on and made_on != root.hex():
        raise ReferenceMismatchError(
            f"backbone {p} was pretrained on the store with root {made_on[:16]}…; this device's store is "
            f"{root.hex()[:16]}…"
        )
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    theirs = {k: v for k, v in sd.items() if not k.startswith("head.")}
    missing, unexpected = sorted(set(own) - set(theirs)), sorted(set(theirs) - set(own))
    shapes = sorted(k for k in set(own) & set(theirs) if tuple(own[k].shape) != tuple(theirs[k].shape))
    if missing or unexpected or shapes:
        raise ModelError(
            f"backbone {p} does not fit {arch}: missing {missing[:5]}{'…' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'…' if len(unexpected) > 5 else ''}, other shapes {shapes[:5]}"
        )
    model.load_state_dict(theirs, strict=False)
    return {
        "backbone": str(p),
        "sha256": digest,
        "tensors": len(theirs),
        "pretrained_on": meta.get("labelcast.reference_root"),
    }


def plan_training(
    x: np.ndarray, classes: int, soft: bool, profile: DeviceProfile, cfg: StudentConfig | None = None, val=None
) -> dict:
    """What :func:`train_student` would do, without training: arch, epochs, batch, memory, device."""
    cfg = cfg or StudentConfig()
    k = int(x.shape[0] - (0 if val is None else int(np.asarray(val).sum())))
    pp = VectorPreprocess(x.shape[1]) if x.ndim == 2 else Preprocess(size=(x.shape[1], x.shape[2]), channels=x.shape[3])
    model = split_for_finetune(build_student(cfg.arch, pp.channels, classes, pp.hw), cfg.finetune)
    est = _estimate(model, (pp.channels, *pp.hw), _data_bytes(x[:k], pp), profile)
    batch = cfg.batch or min(est["max_batch"], 64, max(16, 1 << max(0, (k // 4).bit_length() - 1)))
    epochs = epochs_for(cfg.train_samples, k, cfg.min_epochs, cfg.max_epochs)
    device, why = select_device(profile, cfg.accelerator)
    amp, amp_why = amp_settings(device, profile, cfg.precision)
    return {
        "arch": cfg.arch,
        "params": sum(p.numel() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "finetune": cfg.finetune,
        "init": cfg.init or None,
        "items": k,
        "epochs": epochs,
        "batch": batch,
        "steps": epochs * math.ceil(k / batch),
        "labels": "soft (KL)" if soft else "hard (cross-entropy, label smoothing)",
        "device": why,
        "precision": amp_why,
        "memory_plan": {**est, "batch": batch, "budget_bytes": profile.budget_bytes},
    }


def _build(cfg: StudentConfig, preprocess: Preprocess, classes: int, device: torch.device, warm, root):
    """The student, its pretrained or warm start, its frozen prefix, on the device."""
    model = build_student(cfg.arch, preprocess.channels, classes, preprocess.hw)
    loaded = load_backbone(model, cfg.init, cfg.arch, cfg.init_sha256, root) if cfg.init else None
    if warm is not None:
        loaded = warm_start(model, warm)
    # channels_last: faster convolutions with cuDNN and oneDNN alike (measured 1.05–1.2× on 2 CPU cores)
    model = split_for_finetune(model, cfg.finetune).to(device).to(memory_format=torch.channels_last)
    return model, loaded


def warm_start(model: torch.nn.Module, state: dict) -> dict:
    """Start from an earlier model's weights; a head for more classes keeps the old rows (new rows fresh)."""
    own = model.state_dict()
    copied = 0
    for name, v in state.items():
        if name not in own:
            continue
        if own[name].shape == v.shape:
            own[name] = v
        elif own[name].ndim == v.ndim and own[name].shape[1:] == v.shape[1:] and own[name].shape[0] > v.shape[0]:
            own[name][: v.shape[0]] = v  # a wider classifier: old classes keep their weights
        else:
            raise ModelError(f"cannot warm-start {name}: {tuple(v.shape)} → {tuple(own[name].shape)}")
        copied += 1
    model.load_state_dict(own)
    return {"warm_start": True, "tensors": copied}


def _resume(ck: Path | None, resume: bool, tag: str, cfg: StudentConfig, total: int, model, opt, scaler) -> int:
    if ck is None or not resume or not ck.exists():
        return 0
    st = load_checkpoint(ck)
    if st is None or st.get("tag") != tag or st.get("config") != asdict(cfg) or st.get("total") != total:
        return 0
    model.load_state_dict(st["model"])
    opt.load_state_dict(st["opt"])
    if st.get("scaler"):
        scaler.load_state_dict(st["scaler"])
    return int(st["step"])


@dataclass
class _Run:
    """Everything the loop needs, prepared and measured before the first step."""

    model: torch.nn.Module
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    xs: _Items
    ys: torch.Tensor
    soft: bool
    batch: int
    epochs: int
    total: int
    device: torch.device
    amp: torch.dtype | None
    notes: dict
    base: int = 0
    peak: int = 0

    def sample(self) -> None:
        """Keep the largest training memory seen (CPU: anonymous memory above ``base``)."""
        if self.device.type != "cuda":
            self.peak = max(self.peak, anon_bytes() - self.base)


_OPTIMIZER_LOADED = False


def _load_optimizer_code() -> int:
    """Make torch import what its optimizers import lazily on first use (~800 modules, ~70 MB of Python
    objects: torch._dynamo and friends), once per process; returns the memory that took, which the training's
    baseline then includes: it is code every process that trains pays once, like torch's own import, not
    memory the student's size or batch moves."""
    global _OPTIMIZER_LOADED
    if _OPTIMIZER_LOADED:
        return 0
    before = anon_bytes()
    p = torch.nn.Parameter(torch.zeros(1))
    p.grad = torch.zeros(1)
    torch.optim.AdamW([p]).step()
    _OPTIMIZER_LOADED = True
    return max(0, anon_bytes() - before)


def _prepare(x, targets, classes, preprocess, profile, cfg: StudentConfig, warm, root) -> _Run:
    device, why = select_device(profile, cfg.accelerator)
    log.info("training on %s", why)
    base = anon_bytes()  # what the process held before training: not the student's memory
    amp, amp_why = amp_settings(device, profile, cfg.precision)
    if device.type == "cuda":
        total_mem = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, profile.budget_bytes / total_mem))
    model, loaded = _build(cfg, preprocess, classes, device, warm, root)
    shape = (preprocess.channels, *preprocess.hw)
    # the estimate (BudgetError) comes before the subset is copied to float: a profile too small is
    # refused before anything large is allocated
    est = _estimate(model, shape, _data_bytes(x, preprocess), profile)
    base += _load_optimizer_code()  # after the refusal above: a profile too small never pays for it
    xs = _Items(x, preprocess, device)
    soft = targets.ndim == 2
    ys = torch.from_numpy(targets.astype(np.float32) if soft else targets.astype(np.int64)).to(device)
    k = len(xs)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    # small batches: more optimizer steps per image, which small sets need (measured: 64 beats 128-256)
    want = cfg.batch or min(est["max_batch"], 64, max(16, 1 << max(0, (k // 4).bit_length() - 1)))
    mem = plan_memory(model, opt, xs[: min(want, k)], ys, soft, min(want, k), profile, amp, device, base)
    batch = mem["batch"]
    epochs = epochs_for(cfg.train_samples, k, cfg.min_epochs, cfg.max_epochs)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16 and device.type == "cuda")
    notes = {"device": why, "precision": amp_why, "init": loaded, "memory_plan": {**mem, "estimate": est}}
    total = epochs * math.ceil(k / batch)
    run = _Run(model, opt, scaler, xs, ys, soft, batch, epochs, total, device, amp, notes, base)
    run.peak = mem["measured_peak_bytes"]
    return run


def _train_step(run: _Run, cfg: StudentConfig, by_class, sched: Schedule):
    """One optimizer step on the items ``idx`` (augmented from the step's own random stream)."""

    def step_fn(step: int, idx: torch.Tensor) -> torch.Tensor:
        idx = idx.to(run.device)
        rng = sched.rng(step)
        xb, yb = run.xs[idx], run.ys[idx]
        xb = _mosaic(xb, yb, run.xs, by_class, cfg, rng) if cfg.mosaic else xb
        xb = _augment(xb, cfg, rng)
        with torch.autocast(run.device.type, dtype=run.amp or torch.float32, enabled=run.amp is not None):
            loss = _loss(run.model(xb), yb, run.soft, cfg.label_smoothing)
        run.opt.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.step(run.opt)
        run.scaler.update()
        return loss.detach()

    return step_fn


def train_student(
    x: np.ndarray,
    targets: np.ndarray,
    classes: int,
    preprocess: Preprocess,
    profile: DeviceProfile,
    cfg: StudentConfig | None = None,
    *,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    tag: str = "",
    progress=None,
    stop_after: int | None = None,
    warm: dict | None = None,
    root: bytes | None = None,
) -> tuple[torch.nn.Module, dict]:
    """Train on uint8 items with hard labels (k,) or soft targets (k, classes); returns (model on the CPU, info).

    ``tag`` identifies the payload: a checkpoint from another payload is never resumed. ``warm``: the
    state dict of an earlier model to start from (incremental payloads). ``root``: the device's reference
    root, which a pretrained backbone must have been made on."""
    cfg = cfg or StudentConfig()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads or max(1, profile.cpu_cores))
    t0 = time.time()
    run = _prepare(x, targets, classes, preprocess, profile, cfg, warm, root)
    k, batch = len(run.xs), run.batch
    ck = Path(checkpoint) if checkpoint else None
    if ck is not None:
        check_training_space(ck.parent, run.model)
    step = _resume(ck, resume, tag, cfg, run.total, run.model, run.opt, run.scaler)
    hard = run.ys if not run.soft else run.ys.argmax(1)
    by_class = {c: np.flatnonzero(hard.cpu().numpy() == c) for c in range(classes)}
    sched = Schedule(k, batch, run.epochs, cfg.lr, cfg.warmup, cfg.seed)

    def save(step: int) -> None:
        state = {"tag": tag, "config": asdict(cfg), "total": run.total, "step": step}
        state.update(model=run.model.state_dict(), opt=run.opt.state_dict(), scaler=run.scaler.state_dict())
        save_checkpoint(ck, state)

    def probe(step: int) -> Exception | None:
        run.sample()
        return over_budget_error(run, profile, step) if over_budget(run, profile) else None

    run.model.train()
    train_loop(
        run.opt,
        _train_step(run, cfg, by_class, sched),
        sched,
        start=step,
        save=save if ck is not None else None,
        save_every=cfg.checkpoint_every,
        probe=probe,
        stop_after=stop_after,
        progress=progress,
    )
    model = run.model.eval()
    on_gpu = run.device.type == "cuda"
    run.sample()
    peak = int(torch.cuda.max_memory_allocated()) if on_gpu else max(0, run.peak)
    info = {
        "arch": cfg.arch,
        "params": sum(p.numel() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "finetune": cfg.finetune,
        "items": k,
        "epochs": run.epochs,
        **samples_note(cfg.train_samples, k, run.epochs, cfg.min_epochs),
        "steps": run.total,
        "batch": batch,
        "soft_labels": run.soft,
        **run.notes,
        "train_seconds": round(time.time() - t0, 3),
        "images_per_second": round(run.total * batch / max(time.time() - t0, 1e-9), 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_training_bytes": peak,
    }
    return model.cpu().to(memory_format=torch.contiguous_format), info
