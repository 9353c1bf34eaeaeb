"""Bring your own teacher, end to end on the CLI (issue #18).

    python benchmarks/byo_teacher.py [--workdir out/bench/byo] [--budget 8192] [--json docs/results/byo.json]
    python benchmarks/byo_teacher.py --render docs/results/byo.json   # only rewrite docs/results.md's table

A user trains their own classifier the way they would anywhere — plain torch, on Fashion-MNIST
train brought to 32×32 RGB, normalised with mean/std 0.5, NHWC input, ending in a softmax —
and exports it with a plain ``torch.onnx.export`` (their own input/output names, no labelcast
metadata). Then, only through the CLI:

1. ``labelcast teacher calibrate user.onnx --data builtin:fashion:train --preprocess '{…}'`` —
   the spec is declared once and stored in the model;
2. ``labelcast evaluate user.onnx --data builtin:fashion:test`` — the teacher's accuracy with its
   stored spec;
3. ``labelcast reference build builtin:fashion`` (28×28 grey, the default grouping), ``send
   --budget B`` (8 KiB), ``receive`` (the device's default student) and ``evaluate`` the student.

Then the same steps for a classic-ML teacher (#38): a scikit-learn MLP on flattened pixels, exported by
skl2onnx with its default options (a label output and a ZipMap of probabilities), trained in a
throwaway environment the benchmark makes (``--no-sklearn`` skips it), declared with the spec
``{"size": 28, "layout": "flat"}``.

It prints each teacher's and student's accuracy and their ratio (goal ≥ 0.90).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import md_grid, render_into, splice_block, table, write_json  # noqa: E402

SPEC = {"size": 32, "channels": 3, "mean": 0.5, "std": 0.5, "layout": "nhwc", "output": "probs"}


def user_model(out: Path, epochs: int = 6, seed: int = 0) -> float:
    """The user's own training, nothing from labelcast: returns the seconds it took."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from labelcast.datasets.builtin import target

    x, y, _ = target("fashion", "train")
    torch.manual_seed(seed)
    xs = torch.from_numpy(x).float().div(255).permute(0, 3, 1, 2)
    xs = F.interpolate(xs, size=(32, 32), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    xs = ((xs - 0.5) / 0.5).permute(0, 2, 3, 1).contiguous()  # the user's NHWC, mean/std 0.5
    ys = torch.from_numpy(y)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = nn.Sequential(
                nn.Conv2d(3, 32, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(32, 64, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(64, 128, 3, padding=1),
                nn.ReLU(),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
            )
            self.head = nn.Linear(128, 10)

        def forward(self, x):
            return self.head(self.f(x.permute(0, 3, 1, 2)))

    net = Net()
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    t = time.time()
    for _ in range(epochs):
        perm = torch.randperm(len(xs))
        for b in range(0, len(xs), 128):
            i = perm[b : b + 128]
            loss = F.cross_entropy(net(xs[i]), ys[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()

    class WithSoftmax(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return torch.softmax(self.m(x), dim=1)

    torch.onnx.export(
        WithSoftmax(net),
        (torch.zeros(1, 32, 32, 3),),
        str(out),
        input_names=["input"],
        output_names=["probs"],
        dynamic_axes={"input": {0: "batch"}, "probs": {0: "batch"}},
        dynamo=False,
    )
    return time.time() - t


def lc(*args, cwd: Path) -> dict:
    r = subprocess.run(
        [sys.executable, "-m", "labelcast", *map(str, args), "--json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "LABELCAST_PROGRESS": "0"},
    )
    if r.returncode:
        raise SystemExit(f"labelcast {' '.join(map(str, args))} failed:\n{r.stderr}")
    return json.loads(r.stdout.splitlines()[-1])


SKLEARN_SPEC = {"size": 28, "channels": 1, "layout": "flat", "output": "probs"}
SKLEARN_TRAIN = """
import sys, time
import numpy as np
from sklearn.neural_network import MLPClassifier
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType

z = np.load(sys.argv[1])
x = z["x"].reshape(len(z["x"]), -1).astype(np.float32) / 255  # flattened pixels, row-major H, W, C
t = time.time()
clf = MLPClassifier(hidden_layer_sizes=(256,), max_iter=25, random_state=0).fit(x, z["y"])
onx = convert_sklearn(clf, initial_types=[("input", FloatTensorType([None, x.shape[1]]))])  # default options: ZipMap
open(sys.argv[2], "wb").write(onx.SerializeToString())
print(round(time.time() - t, 1))
"""


def sklearn_model(wd: Path) -> float:
    """A scikit-learn MLP on flattened Fashion-MNIST pixels, exported by skl2onnx with its default options
    (a label output and a ZipMap of probabilities), built in a throwaway environment: labelcast does not
    depend on scikit-learn. Returns the seconds it took to train."""
    import numpy as np

    from labelcast.datasets.builtin import target

    env = (wd / "sklearn-env").absolute()
    if not (env / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
        subprocess.run(
            [str(env / "bin" / "pip"), "install", "-q", "numpy", "scikit-learn", "skl2onnx", "onnx"], check=True
        )
    x, y, _ = target("fashion", "train")
    np.savez(wd / "fashion-train.npz", x=x, y=y)
    (wd / "train_sklearn.py").write_text(SKLEARN_TRAIN)
    r = subprocess.run(
        [str(env / "bin" / "python"), "train_sklearn.py", "fashion-train.npz", "sklearn.onnx"],
        cwd=wd,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(r.stdout.split()[-1])


def run_teacher(model: str, spec: dict, described: str, wd: Path, a) -> tuple[dict, dict, list[dict]]:
    """Calibrate, evaluate, send over the fashion store, receive and evaluate the student, per seed."""
    cal = lc("teacher", "calibrate", model, "--data", "builtin:fashion:train", "--preprocess", json.dumps(spec), cwd=wd)
    teacher = lc("evaluate", model, "--data", "builtin:fashion:test", cwd=wd)
    rows = []
    for seed in range(a.seeds):
        tag = f"{Path(model).stem}{seed}"
        sent = lc(
            "send",
            "--teacher",
            model,
            "--reference",
            "ref",
            "--key",
            "keys/sender.key",
            "--budget",
            a.budget,
            "--seed",
            seed,
            "--out",
            f"outbox-{tag}",
            "--force",
            cwd=wd,
        )
        lc(
            "receive",
            f"outbox-{tag}/frames",
            "--reference",
            "ref",
            "--trust",
            "keys/sender.pub",
            "--out",
            f"device-{tag}",
            "--state",
            f"state-{tag}",
            cwd=wd,
        )
        student = lc("evaluate", f"device-{tag}/student.onnx", "--data", "builtin:fashion:test", cwd=wd)
        rows.append(
            {
                "teacher": model,
                "seed": seed,
                "teacher_spec": described,
                "teacher_acc": teacher["accuracy"],
                "framed_bytes": sent["framed_bytes"],
                "labels": sent["selected_items"],
                "strategy": sent["strategy"],
                "student_acc": student["accuracy"],
                "ratio": round(student["accuracy"] / teacher["accuracy"], 3),
            }
        )
    return cal, teacher, rows


TEACHER_NAMES = {
    "torch": "plain torch CNN: NHWC 32×32×3, mean/std 0.5, softmax output",
    "sklearn": "scikit-learn MLP (256 hidden) on flattened pixels, skl2onnx defaults: flat 784, /255, label + "
    "ZipMap outputs",
}


def render(result: dict) -> str:
    """docs/results.md's table from a JSON this wrote: one row per teacher and seed."""
    rows = [{**r, "kind": kind} for kind, res in result.items() if kind in TEACHER_NAMES for r in res["rows"]]
    return md_grid(
        rows,
        [
            ("teacher", lambda r: TEACHER_NAMES[r["kind"]]),
            ("train s", lambda r: f"{result[r['kind']]['train_seconds'][r['teacher']]:.1f}"),
            ("teacher accuracy", lambda r: f"{r['teacher_acc']:.4f}"),
            ("framed bytes", "framed_bytes"),
            ("labels", "labels"),
            ("strategy (auto)", "strategy"),
            ("student accuracy", lambda r: f"{r['student_acc']:.4f}"),
            ("student / teacher", lambda r: f"{r['ratio']:.3f}"),
        ],
    )


def splice(doc: str, text: str) -> str:
    return splice_block(doc, "byo:table", text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--render", default=None, help="a JSON this wrote: only rewrite --doc's table from it")
    ap.add_argument("--doc", default="docs/results.md")
    ap.add_argument("--workdir", default="out/bench/byo")
    ap.add_argument("--budget", type=int, default=8192)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--no-sklearn", action="store_true", help="skip the scikit-learn teacher (needs PyPI)")
    ap.add_argument("--no-torch", action="store_true", help="skip the torch teacher")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if a.render:
        render_into(a.doc, a.render, render, splice)
        return
    wd = Path(a.workdir)
    wd.mkdir(parents=True, exist_ok=True)
    if not (wd / "ref" / "manifest.lcm").exists():
        lc("reference", "build", "builtin:fashion", "--out", "ref", cwd=wd)
    if not (wd / "keys" / "sender.key").exists():
        lc("keygen", "--out", "keys", cwd=wd)
    secs, out = {}, {}
    if not a.no_torch:
        secs["user.onnx"] = user_model(wd / "user.onnx")
        out["torch"] = run_teacher("user.onnx", SPEC, "nhwc 32×32×3, mean/std 0.5, softmax output", wd, a)
    if not a.no_sklearn:
        secs["sklearn.onnx"] = sklearn_model(wd)
        out["sklearn"] = run_teacher("sklearn.onnx", SKLEARN_SPEC, "flat 784, /255, ZipMap probabilities", wd, a)
    rows = [r for _, _, rs in out.values() for r in rs]
    table(rows, list(rows[0]), f"teachers users bring ({secs} s to train), {a.budget} B on iridium-sbd-mt")
    write_json(
        a.json,
        {k: {"calibration": c, "teacher": t, "rows": r, "train_seconds": secs} for k, (c, t, r) in out.items()},
    )


if __name__ == "__main__":
    main()
