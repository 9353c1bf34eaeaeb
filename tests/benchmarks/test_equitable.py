"""The equitable benchmark: its pieces keep their contracts, and a tiny run reports every method."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from labelcast.cli import cli
from labelcast.cli_bench import METHODS as CLI_METHODS

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from equitable import distill, images, models, report, runner  # noqa: E402


class bench:  # the module's former single namespace, as the tests use it
    IMAGE_CODECS = images.IMAGE_CODECS
    encode_mosaic, decode_mosaic, fit_images = images.encode_mosaic, images.decode_mosaic, images.fit_images
    image_candidates, _half, _upscale, _round_robin = (
        images.image_candidates,
        images._half,
        images._upscale,
        images._round_robin,
    )
    distill_dm = distill.distill_dm
    onnx_slim, onnx_fp16, onnx_int8, compressed_size = (
        models.onnx_slim,
        models.onnx_fp16,
        models.onnx_int8,
        models.compressed_size,
    )
    update_results_md, write_report = report.update_results_md, report.write_report
    BenchConfig, run_bench, METHODS = runner.BenchConfig, runner.run_bench, runner.METHODS


def _images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4
    x = np.zeros((n, 28, 28, 1), dtype=np.uint8)
    for i, c in enumerate(y):  # a bright bar whose position is the class, plus noise
        x[i, 4 + 5 * c : 8 + 5 * c, 4:24] = 200
        x[i] += rng.integers(0, 30, size=(28, 28, 1), dtype=np.uint8)
    return x, y


def test_mosaic_png_round_trip_is_exact_and_lossy_codecs_are_close():
    x, _ = _images(37)
    for codec, q in sorted({(c, q) for c, q, _ in bench.IMAGE_CODECS}):
        data = bench.encode_mosaic(x, codec, q)
        back = bench.decode_mosaic(data, len(x), x.shape[1:])
        assert back.shape == x.shape and back.dtype == np.uint8
        if codec == "png":
            assert np.array_equal(back, x)
        else:
            assert np.abs(back.astype(int) - x.astype(int)).mean() < 40
    assert len(bench.encode_mosaic(x, "jpeg", 10)) < len(bench.encode_mosaic(x, "png", 0))
    with pytest.raises(ValueError):
        bench.encode_mosaic(x, "gif", 1)


@pytest.mark.parametrize("budget", [300, 1500, 6000])
def test_fit_images_never_exceeds_the_budget_and_prefers_what_the_proxy_scores(budget):
    x, y = _images(400)
    xv, yv = _images(40, seed=1)
    fit = bench.fit_images(x, y, budget, xv, yv)
    assert fit is not None
    assert fit["bytes"] <= budget
    assert fit["n"] == len(fit["images"]) >= 1
    # the chosen data are what the receiver decodes from the bytes counted
    src = x if fit["scale"] == 1 else bench._half(x)
    data = bench.encode_mosaic(src[: fit["n"]], fit["codec"], fit["quality"])
    assert len(data) + 4 == fit["bytes"]
    dec = bench.decode_mosaic(data, fit["n"], src.shape[1:])
    dec = dec if fit["scale"] == 1 else bench._upscale(dec, 28)
    assert np.array_equal(dec, fit["images"]) and dec.shape[1:] == x.shape[1:]
    # the choice is the proxy's best (ties: more images) among every candidate that fits
    cands = bench.image_candidates(x, y, budget, xv, yv)
    best = max(cands, key=lambda c: (c["proxy"], c["n"]))
    assert (fit["codec"], fit["quality"], fit["scale"], fit["n"]) == (
        best["codec"],
        best["quality"],
        best["scale"],
        best["n"],
    )
    assert all(c["bytes"] <= budget for c in cands)
    assert bench.fit_images(x, y, 20, xv, yv) is None  # nothing fits in 20 bytes


def test_round_robin_prefixes_are_class_balanced():
    y = np.repeat(np.arange(5), [30, 10, 20, 5, 40])
    order = bench._round_robin(y, 5, seed=3)
    assert sorted(order.tolist()) == list(range(y.size))
    assert np.bincount(y[order[:25]], minlength=5).tolist() == [5, 5, 5, 5, 5]


def _dm_gap(x, y, syn, lab, nets: int = 6) -> float:
    """DM's objective on fresh random ConvNets: Σ_c ‖mean emb(real_c) − mean emb(syn_c)‖², averaged."""
    import torch.nn as nn

    torch.manual_seed(123)
    real = torch.from_numpy(x.astype(np.float32) / 255).permute(0, 3, 1, 2)
    fake = torch.from_numpy(syn.astype(np.float32) / 255).permute(0, 3, 1, 2)
    total = 0.0
    for _ in range(nets):
        layers, i = [], 1
        for _ in range(3):
            layers += [nn.Conv2d(i, 32, 3, padding=1), nn.GroupNorm(32, 32), nn.ReLU(), nn.AvgPool2d(2)]
            i = 32
        emb = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            for c in range(4):
                total += float(((emb(real[y == c]).mean(0) - emb(fake[lab == c]).mean(0)) ** 2).sum())
    return total / nets


def test_distill_dm_lowers_the_embedding_gap_to_the_class_means_and_orders_by_class():
    x, y = _images(200)
    syn0, lab0 = bench.distill_dm(x, y, 4, ipc=3, iters=0, seed=0)
    syn, lab = bench.distill_dm(x, y, 4, ipc=3, iters=30, seed=0)
    assert syn.shape == (12, 28, 28, 1) and syn.dtype == np.uint8
    assert lab[:4].tolist() == [0, 1, 2, 3]  # interleaved: any prefix of 4·m is m per class
    # the optimisation moved each class's synthetic images towards its real images' mean embedding,
    # measured on random networks it never saw
    assert _dm_gap(x, y, syn, lab) < 0.8 * _dm_gap(x, y, syn0, lab0)


def test_model_formats_run_in_onnx_runtime_and_shrink(tmp_path):
    import onnxruntime as ort

    from labelcast.codec.preprocess import Preprocess
    from labelcast.receiver.export import export_onnx
    from labelcast.receiver.students import build_student

    torch.manual_seed(0)
    model = build_student("cnn-w8", 1, 10).eval()
    f32 = tmp_path / "m.onnx"
    export_onnx(model, f32, Preprocess(), 10)
    bench.onnx_slim(f32, f32)
    x = np.random.default_rng(0).random((8, 1, 28, 28), np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    sizes = {"fp32": f32.stat().st_size}
    for fmt, conv, tol in (("fp16", bench.onnx_fp16, 1e-2), ("int8", bench.onnx_int8, 0.5)):
        out = tmp_path / f"m-{fmt}.onnx"
        conv(f32, out)
        sizes[fmt] = out.stat().st_size
        s = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        got = s.run(None, {s.get_inputs()[0].name: x})[0]
        assert np.abs(got - want).max() < tol
    assert sizes["int8"] < sizes["fp16"] < sizes["fp32"]
    n, how = bench.compressed_size(f32.read_bytes())
    assert 0 < n < sizes["fp32"] and how in ("zstd-19", "xz-9e")


def test_results_md_section_is_replaced_in_place(tmp_path):
    p = tmp_path / "results.md"
    p.write_text("# Results\n\nbefore\n")
    bench.update_results_md(p, "first")
    bench.update_results_md(p, "second")
    text = p.read_text()
    assert text.count("<!-- bench:start -->") == 1 and "second" in text and "first" not in text
    assert text.startswith("# Results\n\nbefore\n")


def test_bench_cli_lists_the_benchmarks_methods():
    assert tuple(CLI_METHODS) == tuple(runner.METHODS)


def test_bench_cli_refuses_bad_arguments():
    r = CliRunner().invoke(cli, ["bench", "--payload-bytes", "10"])
    assert r.exit_code == 2 and "--payload-bytes" in r.output
    r = CliRunner().invoke(cli, ["bench", "--method", "telepathy"])
    assert r.exit_code == 2
    with pytest.raises(ValueError, match="unknown methods"):
        bench.run_bench(bench.BenchConfig(methods=("telepathy",)))


@pytest.mark.bench
def test_tiny_bench_reports_every_method_within_budget(tmp_path):
    cfg = bench.BenchConfig(
        scenarios=("digits",),
        budgets=(512, 4096),
        seeds=1,
        train_samples=600,
        strategies=("random+quota", "energy-high+quota"),
        dm_ipc=4,
        dm_iters=3,
        validation=300,
        teacher_epochs=3,
        plan_candidates=4,  # labels, distilled only, exemplars only and the first hybrid: the plan's shape
        work=str(tmp_path / "work"),
    )
    result = bench.run_bench(cfg, log=lambda m: None)
    bench.write_report(result, tmp_path / "r.json", tmp_path / "plots", tmp_path / "results.md")
    md = (tmp_path / "results.md").read_text()
    assert md.count("<!-- bench-digits:start -->") == 1 and "### digits:" in md  # one block per scenario
    sc = result["scenarios"]["digits"]
    assert sc["strategy"] in cfg.strategies and set(sc["strategy_validation_accuracy"]) == set(cfg.strategies)
    seen = {r["method"] for r in sc["runs"] if r["accuracy"] is not None}
    assert seen == set(bench.METHODS)
    for r in sc["runs"]:
        if r["budget"] is not None and r["accuracy"] is not None:
            assert r["bytes"] <= r["budget"], r
            assert 0.0 <= r["accuracy"] <= 1.0
    # labelcast counts the real signed payload: more budget, more labels
    lc = {r["budget"]: r for r in sc["runs"] if r["method"] == "labelcast"}
    assert lc[4096]["items"] > lc[512]["items"] > 0
    # labelcast-auto is the planner's choice, trained as the device trains it; hybrid carries exemplars
    auto = {r["budget"]: r for r in sc["runs"] if r["method"] == "labelcast-auto"}
    assert all(r["choice"] and r["predicted"] is not None for r in auto.values())
    hyb = [r for r in sc["runs"] if r["method"] == "hybrid" and r["accuracy"] is not None]
    assert hyb and all(r["exemplars"] > 0 and r["choice"].startswith("hybrid") for r in hyb)
    # the distilled baseline and the planner share one distillation (one cache file, none of the bench's own)
    assert len(list((tmp_path / "work" / "digits" / "plans").glob("distilled-*.npz"))) == 1
    assert not list((tmp_path / "work" / "digits").glob("dm-*.npz"))
    full = [r for r in sc["runs"] if r["method"] == "full-pool"][0]
    assert full["items"] == sc["pool_items"]
    assert (tmp_path / "plots" / "accuracy_vs_bytes_digits.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "r.json").read_text())["recipe"]["architecture"].startswith("cnn-small")
    assert "| labelcast |" in (tmp_path / "results.md").read_text()
