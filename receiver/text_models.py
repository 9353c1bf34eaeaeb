"""Text classifiers for both ends: the teacher the ground trains and the student the device trains.

Both take the contract's input — ``tokens``, N × length int64 ids from :class:`labelcast.codec.text.Tokenizer`
(0 = padding) — and output N × classes logits, so any ONNX text classifier with that input works as a
teacher too. Two families (``TEXT_ARCHS``):

* ``fasttext`` / ``fasttext-small``: a bag of embedded features (words, word pairs, character trigrams),
  masked mean, dropout, linear — fastText's classifier;
* ``textcnn``: embeddings → 1-D convolution (width 3) → ReLU → masked max over positions → linear.

A model may fold the tokenizer's ids into fewer embedding rows (``buckets``: id → 1 + (id − 1) mod
(buckets − 1), inside the model, so it exports to ONNX and the contract is unchanged): the small
student keeps 65,536 rows (2.1 M parameters at 32 dims) whatever the tokenizer's vocabulary.

Training (:func:`train_text`) is the device's loop for text: AdamW with the same warm-up/cosine schedule
as images, token dropout as augmentation, hard or soft targets, checkpoints every ``checkpoint_every``
steps that a resumed run continues (the same order: a pure function of the seed and epoch).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import ModelError
from .loop import Schedule, check_training_space, epochs_for, load_checkpoint, samples_note, save_checkpoint, train_loop

__all__ = ["TEXT_ARCHS", "TextModel", "build_text_model", "TextTrainConfig", "train_text"]

# arch → (family, embedding dims, buckets (0: the tokenizer's vocabulary), conv channels)
TEXT_ARCHS = {
    "fasttext": ("bag", 64, 0, 0),
    "fasttext-small": ("bag", 32, 1 << 16, 0),
    "textcnn": ("cnn", 64, 1 << 17, 128),
}
DEFAULT_TEXT_STUDENT = "fasttext"  # measured: 0.774 vs 0.757 for fasttext-small on 12k wordnet labels


class TextModel(nn.Module):
    def __init__(self, vocab: int, classes: int, family: str, dim: int, buckets: int, channels: int) -> None:
        super().__init__()
        self.family, self.buckets = family, (buckets if 0 < buckets < vocab else vocab)
        self.embed = nn.Embedding(self.buckets, dim, padding_idx=0, sparse=True)  # sparse: only seen rows update
        nn.init.normal_(self.embed.weight, std=0.1)
        with torch.no_grad():
            self.embed.weight[0].zero_()
        self.drop = nn.Dropout(0.2)
        if family == "cnn":
            self.conv = nn.Conv1d(dim, channels, 3, padding=1)
            self.head = nn.Linear(channels, classes)
        else:
            self.head = nn.Linear(dim, classes)
        self.fold = self.buckets < vocab

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        ids = tokens
        if self.fold:
            ids = torch.where(tokens > 0, torch.remainder(tokens - 1, self.buckets - 1) + 1, tokens)
        mask = (ids > 0).to(self.embed.weight.dtype).unsqueeze(-1)
        e = self.embed(ids)
        if self.family == "cnn":
            h = F.relu(self.conv(e.transpose(1, 2))).transpose(1, 2)
            h = (h * mask - (1 - mask) * 1e4).amax(dim=1)
            h = h * (mask.sum(1) > 0).to(h.dtype)
        else:
            h = (e * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(self.drop(h))


def build_text_model(arch: str, vocab: int, classes: int) -> TextModel:
    if arch not in TEXT_ARCHS:
        raise ModelError(f"unknown text model {arch!r}; text models: {', '.join(TEXT_ARCHS)}")
    family, dim, buckets, channels = TEXT_ARCHS[arch]
    return TextModel(vocab, classes, family, dim, buckets, channels)


@dataclass
class TextTrainConfig:
    train_samples: int = 200_000  # items seen (epochs = this / k, clamped); 300k measured no better
    min_epochs: int = 5
    max_epochs: int = 200
    batch: int = 256
    lr: float = 1e-2  # peak learning rate (measured best of 5e-3, 1e-2, 2e-2 on the wordnet teacher)
    weight_decay: float = 1e-4
    warmup: float = 0.05
    label_smoothing: float = 0.05
    token_dropout: float = 0.1  # augmentation: each id zeroed with this probability
    seed: int = 0
    checkpoint_every: int = 200
    threads: int = 0


class _Both:
    """SparseAdam for the embedding (sparse gradients: a step costs the rows it saw, not the vocabulary)
    and AdamW for the rest, stepped, scheduled and checkpointed as one optimizer."""

    def __init__(self, sparse: torch.optim.Optimizer, dense: torch.optim.Optimizer) -> None:
        self.parts = (sparse, dense)

    @property
    def param_groups(self) -> list:
        return [g for o in self.parts for g in o.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.parts:
            o.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for o in self.parts:
            o.step()

    def state_dict(self) -> dict:
        return {"sparse": self.parts[0].state_dict(), "dense": self.parts[1].state_dict()}

    def load_state_dict(self, st: dict) -> None:
        self.parts[0].load_state_dict(st["sparse"])
        self.parts[1].load_state_dict(st["dense"])


def _text_step(model: TextModel, opt, xs: torch.Tensor, ys: torch.Tensor, cfg: TextTrainConfig):
    """One optimizer step: token dropout (a pure function of seed and step), forward, loss, backward."""

    def step_fn(step: int, idx: torch.Tensor) -> torch.Tensor:
        xb, yb = xs[idx], ys[idx]
        if cfg.token_dropout:
            g = torch.Generator().manual_seed(int(np.random.default_rng([cfg.seed, 2, step]).integers(1 << 62)))
            xb = xb * (torch.rand(xb.shape, generator=g) >= cfg.token_dropout)
        out = model(xb)
        if yb.ndim == 2:
            loss = -(yb * F.log_softmax(out, 1)).sum(1).mean()
        else:
            loss = F.cross_entropy(out, yb, label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    return step_fn


def train_text(
    model: TextModel,
    tokens: np.ndarray,
    targets: np.ndarray,
    cfg: TextTrainConfig | None = None,
    *,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    tag: str = "",
    progress=None,
    stop_after: int | None = None,
) -> dict:
    """Train ``model`` in place on token ids with hard labels (k,) or soft targets (k, classes); returns info."""
    cfg = cfg or TextTrainConfig()
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t0 = time.time()
    xs = torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.int64))
    ys = torch.from_numpy(np.asarray(targets, dtype=np.float32 if np.asarray(targets).ndim == 2 else np.int64))
    k = int(xs.shape[0])
    if k == 0:
        raise ValueError("nothing to train on: the training set is empty")
    sched = Schedule(
        k,
        min(cfg.batch, k),
        epochs_for(cfg.train_samples, k, cfg.min_epochs, cfg.max_epochs),
        cfg.lr,
        cfg.warmup,
        cfg.seed,
    )
    decay = [p for n, p in model.named_parameters() if not n.startswith("embed")]
    opt = _Both(
        torch.optim.SparseAdam([model.embed.weight], lr=cfg.lr),
        torch.optim.AdamW(decay, lr=cfg.lr, weight_decay=cfg.weight_decay),
    )
    ck = Path(checkpoint) if checkpoint else None
    if ck is not None:
        check_training_space(ck.parent, model)
    resumed_at = _resume_text(ck, resume, tag, cfg, sched.total, model, opt)

    def save(step: int) -> None:
        state = {"tag": tag, "config": asdict(cfg), "total": sched.total, "step": step, "rng": torch.get_rng_state()}
        save_checkpoint(ck, {**state, "model": model.state_dict(), "opt": opt.state_dict()})

    model.train()
    step_fn = _text_step(model, opt, xs, ys, cfg)
    kw = {"save": save if ck is not None else None, "save_every": cfg.checkpoint_every, "stop_after": stop_after}
    train_loop(opt, step_fn, sched, start=resumed_at, progress=progress, **kw)
    model.eval()
    return {
        "items": k,
        "epochs": sched.epochs,
        **samples_note(cfg.train_samples, k, sched.epochs, cfg.min_epochs),
        "steps": sched.total,
        "batch": sched.batch,
        "resumed_at_step": resumed_at,
        "params": sum(p.numel() for p in model.parameters()),
        "seconds": round(time.time() - t0, 2),
    }


def _resume_text(ck: Path | None, resume: bool, tag: str, cfg: TextTrainConfig, total: int, model, opt) -> int:
    """The step a checkpoint of this payload, config and schedule resumes at (0: start afresh)."""

    if ck is None or not resume or not ck.exists():
        return 0
    st = load_checkpoint(ck) or {}
    if st.get("tag") != tag or st.get("config") != asdict(cfg) or st.get("total") != total:
        return 0
    model.load_state_dict(st["model"])
    opt.load_state_dict(st["opt"])
    if "rng" in st:  # dropout draws from torch's generator: the resumed run continues its sequence
        torch.set_rng_state(st["rng"])
    return int(st["step"])


def student_arch(requested: str, default_arch: str) -> str:
    """The text student for a StudentConfig's ``arch``: a text arch as given; the image default means
    "the default student", which on text is ``fasttext``; any other image arch is refused."""
    if requested in TEXT_ARCHS:
        return requested
    if requested == default_arch:
        return DEFAULT_TEXT_STUDENT
    raise ModelError(f"{requested!r} is an image student; a text store trains {', '.join(TEXT_ARCHS)}")


def _text_config(sc, k: int) -> TextTrainConfig:
    """The device's text recipe from its StudentConfig (samples, epochs, seed, checkpoint cadence; the learning
    rate only where a payload or user changed it from the image default)."""
    from .train import StudentConfig

    lr = sc.lr if sc.lr != StudentConfig.lr else TextTrainConfig.lr
    # the image default (100k) is too short for text: 200k measured +6 points on 12k wordnet labels
    samples = sc.train_samples if sc.train_samples != StudentConfig.train_samples else TextTrainConfig.train_samples
    return TextTrainConfig(
        train_samples=samples,
        min_epochs=min(sc.min_epochs, TextTrainConfig.min_epochs),
        max_epochs=sc.max_epochs,
        lr=lr,
        seed=sc.seed,
        checkpoint_every=sc.checkpoint_every,
        threads=sc.threads,
    )


def plan_text(k: int, classes: int, tokenizer, profile, sc) -> dict:
    """What the device would train on a text store, with its memory estimate against the profile."""
    from .train import StudentConfig

    arch = student_arch(sc.arch, StudentConfig.arch)
    model = build_text_model(arch, tokenizer.vocab, classes)
    tc = _text_config(sc, max(k, 1))
    params = sum(p.numel() for p in model.parameters())
    batch = min(tc.batch, max(k, 1))
    # weights + Adam's two moments (dense here, sparse rows in practice: an upper bound) + one batch's activations
    need = params * 4 * 3 + batch * tokenizer.length * (model.embed.embedding_dim * 4 * 3 + 8)
    epochs = epochs_for(tc.train_samples, k, tc.min_epochs, tc.max_epochs)
    return {
        "arch": arch,
        "modality": "text",
        "params": params,
        "items": k,
        "epochs": epochs,
        "batch": batch,
        "steps": epochs * math.ceil(max(k, 1) / batch),
        "device": "cpu (text students train on the CPU: sparse embedding updates)",
        "memory_plan": {"estimated_bytes": int(need), "budget_bytes": profile.budget_bytes},
    }


def train_text_student(texts, targets, classes: int, tokenizer, profile, sc, **kw) -> tuple[TextModel, dict]:
    """The device's text student (``sc``: the receiver's StudentConfig) on its verified items; refuses a
    plan that does not fit the profile's memory before allocating anything, and any option a text student
    cannot honour (a CUDA accelerator, a partial fine-tune, an image backbone) with a typed error. A warm
    start (a delta's chain) keeps the earlier model's weights, its head grown for new classes."""
    from ..codec.errors import BudgetError
    from .train import warm_start

    _refuse_unsupported(sc)
    plan = plan_text(len(texts), classes, tokenizer, profile, sc)
    if plan["memory_plan"]["estimated_bytes"] > profile.budget_bytes:
        raise BudgetError(
            f"the text student {plan['arch']} needs ~{plan['memory_plan']['estimated_bytes'] >> 20} MiB, "
            f"the profile {profile.name} allows {profile.budget_bytes >> 20} MiB: choose fasttext-small"
        )
    torch.manual_seed(sc.seed)
    model = build_text_model(plan["arch"], tokenizer.vocab, classes)
    warm = kw.pop("warm", None)
    if warm is not None:
        warm_start(model, warm)  # ModelError when the arch changed: never a silent restart from scratch
    tc = _text_config(sc, len(texts))
    threads = tc.threads or max(1, profile.cpu_cores)
    tc.threads = threads
    info = train_text(model, tokenizer.encode(list(texts)), targets, tc, **kw)
    info.update(arch=plan["arch"], modality="text", warm_start=warm is not None, train_seconds=info["seconds"])
    info.update(device="cpu", finetune="all", accelerator=f"{sc.accelerator} → cpu (sparse embedding updates)")
    return model, info


def _refuse_unsupported(sc) -> None:
    from .errors import ModelError

    if sc.accelerator == "cuda":
        raise ModelError("a text student trains on the CPU (sparse embedding updates): use --accelerator auto or cpu")
    if sc.finetune != "all":
        raise ModelError(f"--finetune {sc.finetune} applies to image students; a text student trains all its weights")
    if sc.init:
        raise ModelError(f"--init {sc.init}: pretrained backbones are image students'; a text student starts fresh")
