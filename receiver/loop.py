"""The one training loop: the teacher, the image student and the text student all run :func:`train_loop`.

What differs between them is one optimizer step (``step_fn``: augment, forward, loss, backward, step) and
what they keep between runs (``save``); everything else is here, as plain helpers:

* :class:`Schedule` — items, batch, epochs; the order of an epoch is a pure function of (seed, epoch), so
  a resumed run sees the same batches as an uninterrupted one; the learning rate (:func:`lr_at`) is a pure
  function of the step.
* :func:`save_checkpoint` / :func:`load_checkpoint` — one atomic write; tensors and plain values only.
* :func:`check_training_space` — room for a checkpoint and the export, before the first step.
* :func:`report_to` — a progress bar's schedule and its per-step figures.

A ``probe`` runs every :data:`PROBE_EVERY` steps (the image student samples its memory there); when it
returns an exception, the loop saves a checkpoint and raises it, so the work done so far is kept.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..codec.storage import atomic_write, check_space

__all__ = [
    "Schedule",
    "train_loop",
    "epochs_for",
    "samples_note",
    "lr_at",
    "set_lr",
    "report_to",
    "save_checkpoint",
    "load_checkpoint",
    "check_training_space",
    "PROBE_EVERY",
]

PROBE_EVERY = 25  # steps between progress reports and probes (memory samples)


def epochs_for(train_samples: int, k: int, min_epochs: int, max_epochs: int) -> int:
    """Passes over ``k`` items: ``train_samples / k``, at least ``min_epochs`` (the floor: a small number of
    samples is raised to it, so a few hundred labels still converge), at most ``max_epochs``."""
    return int(min(max_epochs, max(min_epochs, math.ceil(train_samples / max(k, 1)))))


def samples_note(train_samples: int, k: int, epochs: int, min_epochs: int) -> dict:
    """What the report says of the schedule: asked, seen, and whether the epoch floor raised it."""
    return {
        "train_samples_requested": train_samples,
        "samples_seen": epochs * k,
        "epoch_floor": min_epochs,
        "raised_to_floor": math.ceil(train_samples / max(k, 1)) < min_epochs,
    }


def lr_at(step: int, total: int, peak: float, warmup: float) -> float:
    """Linear warm-up, then cosine to zero; a pure function of the step."""
    w = max(1, int(total * warmup))
    if step < w:
        return peak * (step + 1) / w
    return peak * 0.5 * (1 + math.cos(math.pi * (step - w) / max(1, total - w)))


def set_lr(opt, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr


@dataclass(frozen=True)
class Schedule:
    """``epochs`` passes over ``k`` items in batches of ``batch``; warm-up then cosine from ``lr``."""

    k: int
    batch: int
    epochs: int
    lr: float
    warmup: float
    seed: int

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.k / self.batch)

    @property
    def total(self) -> int:
        return self.steps_per_epoch * self.epochs

    def order(self, epoch: int) -> torch.Tensor:
        return torch.from_numpy(np.random.default_rng([self.seed, epoch]).permutation(self.k))

    def rng(self, step: int) -> np.random.Generator:
        """The step's own random stream (augmentation): a resumed run draws what the uninterrupted one drew."""
        return np.random.default_rng([self.seed, 1, step])


def train_loop(
    opt,
    step_fn: Callable[[int, torch.Tensor], torch.Tensor],
    sched: Schedule,
    *,
    start: int = 0,
    save: Callable[[int], None] | None = None,
    save_every: int = 200,
    probe: Callable[[int], Exception | None] | None = None,
    stop_after: int | None = None,
    progress=None,
) -> int:
    """Run ``sched`` from step ``start``: ``step_fn(step, indices)`` does one optimizer step and returns its
    loss. Checkpoints (``save(step)``) every ``save_every`` steps and at the end. Returns the last step."""
    report = report_to(progress, sched.total, sched.batch, start)
    step, seen, perm = start, -1, None
    while step < sched.total:
        epoch, b = divmod(step, sched.steps_per_epoch)
        if epoch != seen:
            seen, perm = epoch, sched.order(epoch)
        set_lr(opt, lr_at(step, sched.total, sched.lr, sched.warmup))
        loss = step_fn(step, perm[b * sched.batch : (b + 1) * sched.batch])
        step += 1
        failed = None
        if step % PROBE_EVERY == 1:
            failed = probe(step) if probe else None
            report(epoch=f"{epoch + 1}/{sched.epochs}", loss=float(loss))
        if progress:
            progress(1)
        if save is not None and (step % save_every == 0 or step == sched.total or failed is not None):
            save(step)
        if failed is not None:
            raise failed
        if stop_after is not None and step >= stop_after:
            break
    return step


def report_to(progress, total: int, batch: int, done: int = 0):
    """Tell a progress bar the schedule (steps of ``batch`` images, ``done`` already); returns the function
    the loop gives its figures to (epoch, loss) — a no-op for a plain callback."""
    if hasattr(progress, "start"):
        progress.start(total, batch)
        if done:
            progress(done)
    return getattr(progress, "info", lambda **_: None)


def save_checkpoint(path: Path, state: dict) -> None:
    """Serialise in memory, then one atomic write: a full disk is a ``StorageError`` naming the bytes it
    needed (torch writing to the file itself reports it as an opaque ``RuntimeError``)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(path, buf.getvalue(), what=f"checkpoint {path} (the previous checkpoint is intact)")


def load_checkpoint(path: Path) -> dict | None:
    """A checkpoint's tensors and plain values only (``weights_only``: nothing in it is executed); None when
    it cannot be read (a foreign or damaged file starts the training afresh)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises several unrelated types for a damaged or foreign file
        return None


def check_training_space(folder: Path, model: torch.nn.Module) -> None:
    """Before the first step: room for a checkpoint (weights and two optimizer moments), the exported model
    and the chain's copy, with 1 MiB to spare — else ``StorageError`` now, not after an hour of training."""
    n = sum(p.numel() * p.element_size() for p in model.parameters())
    check_space(folder, 5 * n + (1 << 20), what="the training checkpoint and the exported model")
