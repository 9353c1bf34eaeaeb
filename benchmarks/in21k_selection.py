"""A fixed, ImageNet-21K-scale selection for codec benchmarks.

Emulates what an energy-ranked 1% selection of ImageNet-21K looks like for a
fine-grained 200-class target (e.g. birds): 14,197,122 items in 21,841 groups
(synset folders, canonical order = group by group), most picks concentrated in a
few hundred task-relevant groups — some taken almost whole, some sparsely — the
rest scattered thinly over the other groups; labels mostly one class per group.

Usage:
    python in21k_selection.py OUT.npz [--seed 0] [--keep 0.01] [--classes 200]

Writes indices (sorted int64), labels (int16, aligned with indices), group_sizes
(int64, one per group, in canonical order) and n (int). Deterministic per seed.
"""

import argparse

import numpy as np

N_ITEMS = 14_197_122
N_GROUPS = 21_841


def group_sizes(rng):
    raw = rng.lognormal(mean=6.2, sigma=0.9, size=N_GROUPS)
    sizes = np.maximum(1, np.floor(raw / raw.sum() * N_ITEMS)).astype(np.int64)
    sizes[: N_ITEMS - sizes.sum()] += 1  # exact total
    return sizes


def selection(rng, sizes, keep, classes):
    k = int(round(N_ITEMS * keep))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    relevant = rng.choice(N_GROUPS, size=1200, replace=False)
    # Per-group take rates: U-shaped, so some groups are taken almost whole, many sparsely.
    rate = rng.beta(0.35, 0.9, size=relevant.size)
    want_relevant = int(k * 0.9)
    rate *= want_relevant / (rate * sizes[relevant]).sum()
    rate = np.clip(rate, 0, 1)
    dominant = rng.integers(0, classes, size=relevant.size)
    idx, lab = [], []
    for g, r, d in zip(relevant, rate, dominant, strict=True):
        m = rng.random(sizes[g]) < r
        pos = starts[g] + np.flatnonzero(m)
        # A group's label: its dominant class 80% of the time, else one of 4 look-alike classes.
        other = (d + rng.integers(1, 5, size=pos.size)) % classes
        idx.append(pos)
        lab.append(np.where(rng.random(pos.size) < 0.8, d, other))
    idx = np.concatenate(idx)
    lab = np.concatenate(lab)
    rest = k - idx.size
    taken = np.zeros(N_ITEMS, bool)
    taken[idx] = True
    scatter = rng.choice(np.flatnonzero(~taken), size=max(rest, 0), replace=False)
    idx = np.concatenate([idx, scatter])
    lab = np.concatenate([lab, rng.integers(0, classes, size=scatter.size)])
    order = np.argsort(idx)
    return idx[order].astype(np.int64), lab[order].astype(np.int16)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=float, default=0.01)
    ap.add_argument("--classes", type=int, default=200)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    sizes = group_sizes(rng)
    idx, lab = selection(rng, sizes, a.keep, a.classes)
    np.savez_compressed(a.out, indices=idx, labels=lab, group_sizes=sizes, n=N_ITEMS)
    print(f"n={N_ITEMS} groups={N_GROUPS} k={idx.size} classes={a.classes} -> {a.out}")


if __name__ == "__main__":
    main()
