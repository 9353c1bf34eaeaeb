"""Receiver benchmark: training throughput of `receive`'s trainer vs. a bare torch loop, and
peak memory per device profile vs. the profile's budget (each in its own process).

    python benchmarks/receiver.py [--json docs/results/receiver.json]
    python benchmarks/receiver.py --render docs/results/receiver.json   # only rewrite docs/devices.md's tables

Throughput: the same student, data (2,000 Fashion-MNIST items), batch and number
of steps; the bare loop is the minimum a hand-written script would do
(forward, loss, backward, step). Memory: a subprocess per profile trains with
the batch the profile yields, under RLIMIT_AS set to the profile's memory,
and reports its peak RSS (ru_maxrss).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, md_grid, render_into, splice_blocks, table, write_json  # noqa: E402

CHILD = r"""
import json, resource, sys, time, numpy as np
from labelcast.codec.preprocess import Preprocess
from labelcast.profiles import load_device
from labelcast.receiver.train import StudentConfig, train_student
prof = load_device(sys.argv[1])
limit = prof.memory_mb << 20
resource.setrlimit(resource.RLIMIT_AS, (limit + (3 << 30), limit + (3 << 30)))  # + torch's reserved address space
rng = np.random.default_rng(0)
x = rng.integers(0, 256, (int(sys.argv[2]), 28, 28, 1), dtype=np.uint8)
y = rng.integers(0, 10, x.shape[0])
t = time.time()
cfg = StudentConfig(arch=sys.argv[3], train_samples=int(sys.argv[4]), min_epochs=1)
_, info = train_student(x, y, 10, Preprocess(), prof, cfg)
info["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(info))
"""


def throughput(arch: str, k: int, steps: int) -> dict:
    import torch
    import torch.nn.functional as F

    from labelcast.codec.preprocess import Preprocess
    from labelcast.datasets.builtin import fashion
    from labelcast.profiles import load_device
    from labelcast.receiver.students import build_student
    from labelcast.receiver.train import StudentConfig, train_student

    x, y = fashion("train")
    x, y = x[:k], y[:k]
    prof = load_device("cpu-small")
    cfg = StudentConfig(arch=arch, train_samples=steps * 128, min_epochs=1, batch=128, checkpoint_every=10**9)
    warm = StudentConfig(arch=arch, train_samples=10 * 128, min_epochs=1, batch=128)
    train_student(x, y, 10, Preprocess(), prof, warm)  # first-use costs (thread pools, kernels) out of the timing
    ours = 0.0
    for _ in range(2):  # best of two: the machine is shared
        t = time.time()
        _, info = train_student(x, y, 10, Preprocess(), prof, cfg)
        ours = max(ours, info["steps"] * info["batch"] / (time.time() - t))
    # bare loop: same model, data, batch and step count
    torch.manual_seed(0)
    model = build_student(arch, 1, 10)
    xs = torch.from_numpy(Preprocess().apply(x))
    ys = torch.from_numpy(y)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    bare = 0.0
    for _ in range(2):
        t = time.time()
        n = 0
        for s in range(info["steps"]):
            b = (s * 128) % (k - 128)
            loss = F.cross_entropy(model(xs[b : b + 128]), ys[b : b + 128])
            opt.zero_grad()
            loss.backward()
            opt.step()
            n += 128
        bare = max(bare, n / (time.time() - t))
    return {
        "arch": arch,
        "receive_img_s": round(ours),
        "bare_torch_img_s": round(bare),
        "ratio": round(ours / bare, 3),
        "steps": info["steps"],
        "batch": info["batch"],
    }


def render(result: dict) -> dict[str, str]:
    """docs/devices.md's throughput and per-profile memory tables from a JSON this wrote."""
    thr = md_grid(
        result["throughput"],
        [
            ("student", lambda r: f"`{r['arch']}`"),
            ("`receive`'s trainer img/s", "receive_img_s"),
            ("bare torch loop img/s", "bare_torch_img_s"),
            ("ratio", lambda r: f"{r['ratio']:.3f}×"),
            ("steps × batch", lambda r: f"{r['steps']} × {r['batch']}"),
        ],
    )
    mem = md_grid(
        result["memory"],
        [
            ("profile", "profile"),
            ("memory", lambda r: f"{r['memory_mb']:,} MB" if "memory_mb" in r else None),
            ("training budget", lambda r: f"{r['budget_mb']:,} MB"),
            ("batch", "batch"),
            ("planned", lambda r: f"{r['planned_mb']:,} MB" if "planned_mb" in r else None),
            ("peak RSS", lambda r: f"{r['peak_rss_mb']:,} MB" if "peak_rss_mb" in r else r.get("outcome")),
            ("under budget", lambda r: ("yes" if r["under_budget"] else "**no**") if "under_budget" in r else "**no**"),
        ],
    )
    return {"receiver:throughput": thr, "receiver:memory": mem}


splice = splice_blocks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default=None)
    ap.add_argument("--render", default=None, help="a JSON this wrote: only rewrite --doc's tables from it")
    ap.add_argument("--doc", default="docs/devices.md")
    a = ap.parse_args()
    if a.render:
        render_into(a.doc, a.render, render, splice)
        return
    rows = [throughput(arch, 2000, 150) for arch in ("cnn-small", "resnet8")]
    table(rows, list(rows[0]), "training throughput: receive's trainer vs. a bare torch loop (cpu-small)")
    from labelcast.profiles import list_profiles, load_device

    mem = []
    for name in list_profiles("devices"):
        prof = load_device(name)
        p = subprocess.run(
            [sys.executable, "-c", CHILD, name, "3000", "cnn-small", "6000"], capture_output=True, text=True
        )
        if p.returncode:
            mem.append({"profile": name, "budget_mb": prof.budget_bytes >> 20, "outcome": p.stderr.strip()[-120:]})
            continue
        info = json.loads(p.stdout.strip().splitlines()[-1])
        mem.append(
            {
                "profile": name,
                "memory_mb": prof.memory_mb,
                "budget_mb": prof.budget_bytes >> 20,
                "batch": info["batch"],
                "planned_mb": info["memory_plan"]["estimate"]["estimated_bytes"] >> 20,
                "peak_rss_mb": round(info["rss_mb"]),
                "under_budget": info["rss_mb"] < prof.budget_bytes / 2**20,
            }
        )
    table(
        mem,
        ["profile", "memory_mb", "budget_mb", "batch", "planned_mb", "peak_rss_mb", "under_budget"],
        "peak memory per device profile (CPU run, RLIMIT_AS = profile memory + 3 GiB of torch address space)",
    )
    write_json(a.json, {"command": " ".join(sys.argv), "machine": machine(), "throughput": rows, "memory": mem})


if __name__ == "__main__":
    main()
