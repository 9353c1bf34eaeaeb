"""Distribution-matching dataset distillation (DM, Zhao & Bilen 2023): the distilled-images baseline."""

from __future__ import annotations

import numpy as np

__all__ = ["distill_dm"]


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
