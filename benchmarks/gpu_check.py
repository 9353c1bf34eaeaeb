"""The GPU check (run by ``benchmarks/gpu_check.sh`` on a machine with an NVIDIA GPU, ≤ 8 minutes).

    python benchmarks/gpu_check.py [--json gpu_check.json] [--profile jetson-orin-nano-8gb]

Everything it needs is made here (no dataset download, no Debian data): a learnable synthetic
task — class templates plus noise, at 28×28×1 and 64×64×3 — stands in for a payload's items.

1. CUDA training through ``train_student`` with the profile's memory cap: fp32 vs fp16 AMP (with a
   gradient scaler) vs bf16 — images/s, peak CUDA memory (``max_memory_allocated``) against the
   profile's budget, held-out accuracy;
2. the device-selection log line;
3. ONNX Runtime's execution providers present, and CPU vs CUDA (vs TensorRT EP) inference speed
   with the exported student, outputs compared;
4. if ``import tensorrt`` works: the engine build through ``export.build_tensorrt_engine`` (fp16),
   its outputs vs ONNX Runtime's, and serving through ``serve.load_classifier``.

Each part that cannot run says why in the JSON instead of failing the rest.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import traceback
from pathlib import Path

import numpy as np


def task(n: int, size: int, channels: int, classes: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    templates = rng.integers(0, 256, (classes, size, size, channels))
    y = rng.integers(0, classes, n)
    x = np.clip(templates[y] + rng.normal(0, 90, (n, size, size, channels)), 0, 255).astype(np.uint8)
    return x, y


def part_training(profile_name: str, out: Path, scale: float = 1.0) -> list[dict]:
    import torch

    from labelcast.codec.preprocess import Preprocess
    from labelcast.profiles import load_device
    from labelcast.receiver.export import export_onnx
    from labelcast.receiver.train import StudentConfig, train_student

    prof = load_device(profile_name)
    rows = []
    for size, ch, arch in ((28, 1, "cnn-small"), (64, 3, "mobilenet")):
        x, y = task(int(12_000 * scale), size, ch)
        xt, yt = task(int(2_000 * scale), size, ch, seed=1)
        pp = Preprocess(size, ch)
        for precision in ("fp32", "fp16", "bf16"):
            cfg = StudentConfig(
                arch=arch, train_samples=int(60_000 * scale), min_epochs=1, precision=precision, accelerator="auto"
            )
            torch.cuda.reset_peak_memory_stats() if torch.cuda.is_available() else None
            t = time.time()
            model, info = train_student(x, y, 10, pp, prof, cfg)
            secs = time.time() - t
            with torch.no_grad():
                pred = model(torch.from_numpy(pp.apply(xt))).argmax(1).numpy()
            rows.append(
                {
                    "input": f"{size}×{size}×{ch}",
                    "arch": arch,
                    "precision": info["precision"],
                    "device": info["device"],
                    "batch": info["batch"],
                    "images_per_second": info["images_per_second"],
                    "seconds": round(secs, 1),
                    "peak_training_MiB": round(info["peak_training_bytes"] / 2**20, 1),
                    "budget_MiB": prof.budget_bytes >> 20,
                    "accuracy": round(float((pred == yt).mean()), 4),
                }
            )
            if precision == "fp16":
                export_onnx(model, out / f"student-{size}.onnx", pp, 10)
    return rows


def part_ort(out: Path) -> dict:
    import onnxruntime as ort

    res: dict = {"providers": ort.get_available_providers()}
    model = out / "student-28.onnx"
    if not model.exists():
        return {**res, "skipped": "no exported student"}
    x = np.random.default_rng(0).random((4096, 1, 28, 28), np.float32)
    ref = None
    for name in ("CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"):
        if name not in res["providers"]:
            res[name] = "absent"
            continue
        try:
            s = ort.InferenceSession(str(model), providers=[name])
            s.run(None, {"image": x[:256]})
            t = time.perf_counter()
            for b in range(0, len(x), 256):
                got = s.run(None, {"image": x[b : b + 256]})[0]
            res[name] = {"items_per_second": round(len(x) / (time.perf_counter() - t))}
            full = s.run(None, {"image": x[:256]})[0]
            ref = full if ref is None else ref
            res[name]["max_abs_diff_vs_cpu"] = float(np.abs(full - ref).max())
            del got
        except Exception as e:  # report, go on
            res[name] = f"failed: {type(e).__name__}: {e}"
    return res


def part_tensorrt(out: Path, profile_name: str) -> dict:
    from labelcast.profiles import load_device
    from labelcast.receiver.export import build_tensorrt_engine, tensorrt_available
    from labelcast.receiver.serve import load_classifier

    if not tensorrt_available():
        return {"skipped": "tensorrt does not import on this machine"}
    model = out / "student-28.onnx"
    res = build_tensorrt_engine(model, out / "student-28.engine", load_device(profile_name))
    x = np.random.default_rng(0).integers(0, 256, (512, 28, 28, 1), dtype=np.uint8)
    served = load_classifier(model)
    onnx_only = load_classifier(model, engine=False)
    res.update(
        backend=served.backend,
        notes=served.notes,
        max_abs_diff_vs_ort=float(np.abs(served.logits(x) - onnx_only.logits(x)).max()),
        same_argmax=float((served.logits(x).argmax(1) == onnx_only.logits(x).argmax(1)).mean()),
    )
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default="gpu_check.json")
    ap.add_argument("--profile", default="jetson-orin-nano-8gb")
    ap.add_argument("--out", default="out/gpu_check")
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the work (a CPU smoke run: 0.02)")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    report: dict = {
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    for name, fn in (
        ("training", lambda: part_training(a.profile, out, a.scale)),
        ("onnxruntime", lambda: part_ort(out)),
        ("tensorrt", lambda: part_tensorrt(out, a.profile)),
    ):
        t = time.time()
        try:
            report[name] = fn()
        except Exception as e:  # each part reports for itself
            report[name] = {"failed": f"{type(e).__name__}: {e}", "trace": traceback.format_exc(limit=4)}
        print(f"{name}: {time.time() - t:.0f} s", flush=True)
    Path(a.json).write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
