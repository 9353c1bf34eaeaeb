"""Fine-tune a student on the rebuilt subset, within the device profile's memory.

The loop reads top to bottom: explicit seed, a pure learning-rate schedule,
stateless per-epoch/per-step random streams (so a resumed run repeats the
uninterrupted one exactly), atomic checkpoints every N steps.
"""

from __future__ import annotations

import math
import os
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..codec.errors import BudgetError, StorageError
from ..codec.preprocess import Preprocess
from ..profiles import DeviceProfile
from .students import build_student

__all__ = ["StudentConfig", "train_student", "plan_batch", "lr_at", "peak_rss_mb"]


@dataclass
class StudentConfig:
    arch: str = "cnn-small"  # see students.ARCHS
    train_samples: int = 100_000  # images seen in training (epochs = this / k, clamped)
    min_epochs: int = 10
    max_epochs: int = 300
    batch: int = 0  # 0: derived from the device profile
    lr: float = 3e-3  # peak AdamW learning rate
    weight_decay: float = 5e-4
    warmup: float = 0.05  # fraction of steps warming up linearly
    label_smoothing: float = 0.05
    shift: int = 2  # max random translation, pixels
    flip: bool = False  # horizontal flips (off for digits)
    mosaic: float = 0.0  # fraction of a batch replaced by 2×2 mosaics of same-label items
    seed: int = 0
    checkpoint_every: int = 200  # steps between checkpoints
    threads: int = 0  # torch intra-op threads; 0: the profile's cores
    pretrained: str = ""  # optional state_dict file to start from


def lr_at(step: int, total: int, peak: float, warmup: float) -> float:
    """Linear warm-up, then cosine to zero; a pure function of the step."""
    w = max(1, int(total * warmup))
    if step < w:
        return peak * (step + 1) / w
    return peak * 0.5 * (1 + math.cos(math.pi * (step - w) / max(1, total - w)))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _activation_bytes(model: torch.nn.Module, shape: tuple[int, ...]) -> int:
    """Bytes of activations one sample keeps for backward (leaf outputs × 4 B × 2 for grads)."""
    total = 0

    def hook(_m, _i, out):
        nonlocal total
        if isinstance(out, torch.Tensor):
            total += out.numel()

    hs = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    was = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    model.train(was)
    for h in hs:
        h.remove()
    return total * 4 * 2


def plan_batch(model: torch.nn.Module, shape: tuple[int, ...], data_bytes: int, profile: DeviceProfile) -> dict:
    """Largest batch (power of two ≤ max_batch) whose estimated memory fits the profile."""
    params = sum(p.numel() for p in model.parameters())
    fixed = params * 4 * 4 + data_bytes + 200 * (1 << 20)  # weights+grads+Adam; data; runtime
    per = _activation_bytes(model, shape) + int(np.prod(shape)) * 4 * 2
    room = profile.budget_bytes - fixed
    if room < per:
        raise BudgetError(
            f"training needs ~{(fixed + per) >> 20} MiB, the profile {profile.name} allows "
            f"{profile.budget_bytes >> 20} MiB; choose a smaller student or a larger device"
        )
    b = 1
    while b * 2 <= min(profile.max_batch, room // per):
        b *= 2
    return {"batch": b, "estimated_bytes": fixed + b * per, "budget_bytes": profile.budget_bytes}


def _augment(xb: torch.Tensor, cfg: StudentConfig, rng: np.random.Generator) -> torch.Tensor:
    if cfg.shift:
        # four shift groups per batch; rolled in place, slice by slice (no concatenation copy)
        for chunk in xb.chunk(4):
            dy, dx = (int(v) for v in rng.integers(-cfg.shift, cfg.shift + 1, size=2))
            chunk.copy_(torch.roll(chunk, shifts=(dy, dx), dims=(2, 3)))
    if cfg.flip:
        m = torch.from_numpy(rng.random(xb.shape[0]) < 0.5)
        xb = torch.where(m[:, None, None, None], torch.flip(xb, dims=(3,)), xb)
    return xb


def _mosaic(xb, yb, xs, by_class, cfg, rng):
    """Replace a fraction of the batch by 2×2 mosaics of four items of the same label."""
    m = int(round(cfg.mosaic * xb.shape[0]))
    if m == 0 or yb.ndim != 1:
        return xb
    xb = xb.clone()
    h, w = xb.shape[2], xb.shape[3]
    for j in range(m):
        pool = by_class[int(yb[j])]
        pick = pool[rng.integers(0, pool.size, size=4)]
        small = F.interpolate(xs[pick], size=(h // 2, w // 2), mode="bilinear", align_corners=False)
        top = torch.cat([small[0], small[1]], dim=2)
        bot = torch.cat([small[2], small[3]], dim=2)
        tile = torch.cat([top, bot], dim=1)
        xb[j, :, : tile.shape[1], : tile.shape[2]] = tile
    return xb


def _save(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(state, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"cannot write checkpoint {path}: {e.strerror}; the previous checkpoint is intact") from e


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
) -> tuple[torch.nn.Module, dict]:
    """Train on uint8 items with hard labels (k,) or soft targets (k, classes).

    ``tag`` identifies the payload: a checkpoint from another payload is never resumed.
    """
    cfg = cfg or StudentConfig()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads or max(1, profile.cpu_cores))
    t0 = time.time()
    xs = torch.from_numpy(preprocess.apply(x))
    soft = targets.ndim == 2
    ys = torch.from_numpy(targets.astype(np.float32) if soft else targets.astype(np.int64))
    k = xs.shape[0]
    model = build_student(cfg.arch, preprocess.channels, classes)
    if cfg.pretrained:
        sd = torch.load(cfg.pretrained, map_location="cpu", weights_only=True)
        own = model.state_dict()  # keep what fits; a new head for another class count starts fresh
        model.load_state_dict({n: v for n, v in sd.items() if n in own and own[n].shape == v.shape}, strict=False)
    plan = plan_batch(model, tuple(xs.shape[1:]), xs.numel() * 4, profile)
    # small batches: more optimizer steps per image, which small sets need (measured: 64 beats 128-256)
    batch = cfg.batch or min(plan["batch"], 64, max(16, 1 << max(0, (k // 4).bit_length() - 1)))
    epochs = int(min(cfg.max_epochs, max(cfg.min_epochs, math.ceil(cfg.train_samples / max(k, 1)))))
    steps_per = math.ceil(k / batch)
    total = epochs * steps_per
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    hard = ys if not soft else ys.argmax(1)
    by_class = {c: np.flatnonzero(hard.numpy() == c) for c in range(classes)}
    step = 0
    ck = Path(checkpoint) if checkpoint else None
    if ck is not None and resume and ck.exists():
        st = torch.load(ck, map_location="cpu", weights_only=False)
        if st.get("tag") == tag and st.get("config") == asdict(cfg) and st.get("total") == total:
            model.load_state_dict(st["model"])
            opt.load_state_dict(st["opt"])
            step = int(st["step"])
    model.train()
    perm_epoch, perm = -1, None
    while step < total:
        epoch, b = divmod(step, steps_per)
        if epoch != perm_epoch:  # a pure function of (seed, epoch): a resumed run sees the same order
            perm_epoch, perm = epoch, torch.from_numpy(np.random.default_rng([cfg.seed, epoch]).permutation(k))
        rng = np.random.default_rng([cfg.seed, 1, step])
        idx = perm[b * batch : (b + 1) * batch]
        xb, yb = xs[idx], ys[idx]
        xb = _mosaic(xb, yb, xs, by_class, cfg, rng) if cfg.mosaic else xb
        xb = _augment(xb, cfg, rng)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total, cfg.lr, cfg.warmup)
        out = model(xb)
        if soft:
            loss = F.kl_div(F.log_softmax(out, 1), yb.clamp_min(1e-8), reduction="batchmean")
        else:
            loss = F.cross_entropy(out, yb, label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if progress:
            progress(1)
        if ck is not None and (step % cfg.checkpoint_every == 0 or step == total):
            state = {"tag": tag, "config": asdict(cfg), "total": total, "step": step}
            _save(ck, {**state, "model": model.state_dict(), "opt": opt.state_dict()})
        if stop_after is not None and step >= stop_after:
            break
    model.eval()
    info = {
        "arch": cfg.arch,
        "params": sum(p.numel() for p in model.parameters()),
        "items": k,
        "epochs": epochs,
        "steps": total,
        "batch": batch,
        "soft_labels": soft,
        "memory_plan": plan,
        "train_seconds": round(time.time() - t0, 3),
        "images_per_second": round(total * batch / max(time.time() - t0, 1e-9), 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    return model, info
