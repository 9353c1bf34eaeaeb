"""The device trains like a real Jetson (issue #19): device and precision choice, the memory profile as a
hard limit, pretrained backbones with sparse updates, your own student, augmentation that is what it says."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from labelcast.codec.errors import BudgetError, ReferenceMismatchError  # noqa: E402
from labelcast.codec.preprocess import Preprocess  # noqa: E402
from labelcast.profiles import DeviceProfile, load_device  # noqa: E402
from labelcast.receiver.errors import ModelError  # noqa: E402
from labelcast.receiver.train import (  # noqa: E402
    StudentConfig,
    amp_settings,
    load_backbone,
    random_crop,
    select_device,
    train_student,
)
from tests.conftest import run_cli, signed_payload  # noqa: E402


def _data(n=300, size=8, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    templates = rng.integers(0, 256, (3, size, size, 1))
    return np.clip(templates[y] + rng.normal(0, 60, (n, size, size, 1)), 0, 255).astype(np.uint8), y


def test_without_cuda_the_gpu_profile_trains_on_the_cpu_and_says_why(caplog):
    prof = load_device("jetson-orin-nano-8gb")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    device, why = select_device(prof)
    assert device.type == "cpu" and "has a GPU but torch sees none" in why
    x, y = _data()
    with caplog.at_level(logging.INFO, logger="labelcast"):
        _, info = train_student(x, y, 3, Preprocess(8, 1), prof, StudentConfig(train_samples=300))
    assert any("training on cpu" in r.message and "jetson-orin-nano-8gb" in r.message for r in caplog.records)
    assert info["device"] == why and "fp32" in info["precision"]  # fp16 profile, but the CPU trains in fp32


def test_precision_follows_the_profile_on_cuda_and_falls_back_on_the_cpu():
    prof = load_device("jetson-orin-nano-8gb")  # precision fp16
    assert amp_settings(torch.device("cuda"), prof)[0] == torch.float16
    assert amp_settings(torch.device("cuda"), prof, "fp32")[0] is None
    dtype, why = amp_settings(torch.device("cpu"), prof)
    assert dtype is None and "fp32" in why
    assert amp_settings(torch.device("cpu"), prof, "bf16")[0] == torch.bfloat16  # asked for on the CPU
    with pytest.raises(ValueError):
        amp_settings(torch.device("cpu"), prof, "fp8")


MEMORY_PROBE = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    import torch  # the interpreter + torch baseline is measured after this import
    from labelcast.codec.preprocess import Preprocess
    from labelcast.profiles import DeviceProfile
    from labelcast.receiver.train import StudentConfig, train_student

    def vm_data():
        for line in open("/proc/self/status"):
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    prof = DeviceProfile("tiny", memory_mb=int(sys.argv[1]), usable_fraction=0.5, cpu_cores=1)
    x = np.random.default_rng(0).integers(0, 256, (4000, 28, 28, 1), dtype=np.uint8)
    y = np.arange(4000) % 10
    limit = vm_data() + prof.budget_bytes  # the budget as a hard limit above the baseline, nothing more
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    try:
        _, info = train_student(x, y, 10, Preprocess(28, 1), prof, StudentConfig(train_samples=8000))
        print(json.dumps({"ok": True, "peak": info["peak_training_bytes"], "budget": prof.budget_bytes,
                          "batch": info["batch"]}))
    except Exception as e:
        print(json.dumps({"ok": False, "error": type(e).__name__, "message": str(e)}))
    """
)


def _probe(memory_mb: int) -> dict:
    r = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(memory_mb)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_the_memory_profile_is_a_hard_limit_the_trainer_stays_under():
    got = _probe(1024)  # a 512 MiB training budget
    assert got["ok"], got
    assert 0 < got["peak"] <= got["budget"]


def test_a_profile_too_small_is_refused_before_training_starts():
    got = _probe(40)  # 20 MiB: not even the data fits
    assert not got["ok"] and got["error"] == "BudgetError" and "allows 20 MiB" in got["message"]
    with pytest.raises(BudgetError, match="choose a smaller student"):
        x, y = _data(200, 28)
        train_student(x, y, 3, Preprocess(28, 1), DeviceProfile("t", memory_mb=4), StudentConfig())


def _backbone(tmp: Path, arch: str = "cnn-small", root: bytes = b"\x01" * 32) -> Path:
    from safetensors.torch import save_file

    from labelcast.receiver.students import build_student

    torch.manual_seed(5)
    m = build_student(arch, 1, 7, (8, 8))
    path = tmp / f"backbone-{arch}.safetensors"
    save_file(
        {k: v.contiguous() for k, v in m.state_dict().items()},
        str(path),
        metadata={"labelcast.arch": arch, "labelcast.reference_root": root.hex()},
    )
    return path


def test_a_backbone_that_does_not_fit_is_refused_naming_what_differs(tmp_path):
    from labelcast.receiver.students import build_student

    other = _backbone(tmp_path, "resnet8")
    model = build_student("cnn-small", 1, 3, (8, 8))
    with pytest.raises(ModelError, match="is for arch resnet8"):
        load_backbone(model, other, "cnn-small")
    relabelled = tmp_path / "relabelled.safetensors"
    from safetensors.torch import load_file, save_file

    save_file(load_file(str(other)), str(relabelled), metadata={"labelcast.arch": "cnn-small"})
    with pytest.raises(ModelError, match="missing") as e:
        load_backbone(model, relabelled, "cnn-small")
    assert "stem.0.weight" in str(e.value) or "blocks.0" in str(e.value)
    mine = _backbone(tmp_path)
    with pytest.raises(ReferenceMismatchError, match="SHA-256"):
        load_backbone(model, mine, "cnn-small", expect_sha256="0" * 64)
    with pytest.raises(ReferenceMismatchError, match="pretrained on the store"):
        load_backbone(model, mine, "cnn-small", root=b"\x02" * 32)
    assert load_backbone(model, mine, "cnn-small", root=b"\x01" * 32)["tensors"] > 0


def test_finetune_head_leaves_every_frozen_tensor_byte_identical(tmp_path):
    from safetensors.torch import load_file

    path = _backbone(tmp_path)
    x, y = _data()
    model, info = train_student(
        x,
        y,
        3,
        Preprocess(8, 1),
        load_device("cpu-small"),
        StudentConfig(train_samples=600, init=str(path), finetune="head"),
    )
    before = load_file(str(path))
    after = model.state_dict()
    frozen = [k for k in after if not k.startswith("head.")]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)  # BN statistics included
    assert info["trainable_params"] < info["params"] / 3


def test_sparse_updates_keep_no_activations_for_the_frozen_prefix():
    from labelcast.receiver.students import build_student, split_for_finetune
    from labelcast.receiver.train import _activation_bytes

    full = _activation_bytes(build_student("resnet8", 3, 10, (32, 32)), (3, 32, 32))
    last1 = _activation_bytes(split_for_finetune(build_student("resnet8", 3, 10, (32, 32)), "last:1"), (3, 32, 32))
    head = _activation_bytes(split_for_finetune(build_student("resnet8", 3, 10, (32, 32)), "head"), (3, 32, 32))
    assert head < last1 < 0.5 * full


def test_a_user_student_factory_trains_and_exports_to_an_onnx_that_onnx_runtime_loads(tmp_path):
    import onnxruntime as ort

    from labelcast.codec.keys import generate_keypair, load_private_key
    from labelcast.codec.manifest import ReferenceStore
    from tests.conftest import make_store

    store = ReferenceStore(make_store(tmp_path / "ref", n=300))
    priv, pub = generate_keypair(tmp_path / "keys")
    data = signed_payload(
        store,
        load_private_key(priv),
        np.arange(0, 300, 3),
        np.arange(100) % 3,
        3,
        n_items=300,
        segments=None,
        expires_in=600,
    )
    (tmp_path / "p.lcst").write_bytes(data)
    code, out, err = run_cli(
        "receive",
        tmp_path / "p.lcst",
        "--reference",
        tmp_path / "ref",
        "--trust",
        pub,
        "--out",
        tmp_path / "dev",
        "--state",
        tmp_path / "state",
        "--student",
        "tests.receiver.user_student:make",
        "--train-samples",
        "300",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["training"]["arch"] == "tests.receiver.user_student:make"
    s = ort.InferenceSession(str(tmp_path / "dev" / "student.onnx"), providers=["CPUExecutionProvider"])
    assert s.run(None, {"image": np.zeros((2, 1, 8, 8), np.float32)})[0].shape == (2, 3)
    code, _, err = run_cli(
        "receive",
        tmp_path / "p.lcst",
        "--reference",
        tmp_path / "ref",
        "--trust",
        pub,
        "--out",
        tmp_path / "d2",
        "--state",
        tmp_path / "s2",
        "--student",
        "tests.receiver.user_student:nope",
    )
    assert code == 2 and "cannot load the student factory" in err


def test_pretrain_writes_a_backbone_the_device_starts_from_by_default(tmp_path):
    from labelcast.codec.manifest import ReferenceStore
    from labelcast.sender.pretrain import PretrainConfig, pretrain
    from tests.conftest import make_store

    store = ReferenceStore(make_store(tmp_path / "ref", n=300))
    res = pretrain(tmp_path / "ref", cfg=PretrainConfig(pseudo_classes=6, train_samples=1000))
    assert json.loads((tmp_path / "ref" / "backbones.json").read_text())["cnn-small"] == res["sha256"]
    from labelcast.receiver.receive import ReceiveConfig, _student_config

    sc = _student_config(ReceiveConfig(), {}, store)
    assert sc.init.endswith("backbone-cnn-small.safetensors") and sc.init_sha256 == res["sha256"]
    assert _student_config(ReceiveConfig(backbone="none"), {}, store).init == ""


def test_payload_hints_fill_what_the_caller_left_at_its_default():
    from labelcast.receiver.receive import ReceiveConfig, _student_config
    from labelcast.receiver.train import StudentConfig

    hints = {"student": {"flip": True, "shift": 3, "finetune": "head"}}
    sc = _student_config(ReceiveConfig(student=StudentConfig(finetune="last:2")), hints)
    assert (sc.flip, sc.shift, sc.finetune) == (True, 3, "last:2")  # hints kept, the explicit choice wins
    assert _student_config(ReceiveConfig(), hints).finetune == "head"


def test_profiles_show_lists_the_student_zoo_at_a_device_s_budget():
    from labelcast.receiver.students import ARCHS

    code, out, err = run_cli("profiles", "show", "jetson-orin-nano-8gb", "--students", "--size", "64", "--json")
    assert code == 0, err
    rows = json.loads(out.splitlines()[-1])["students"]
    assert [r["arch"] for r in rows] == list(ARCHS)
    assert all(r["params"] > 0 and r["macs"] > 0 and isinstance(r["planned_batch"], int) for r in rows)


def test_random_crops_never_wrap_pixels_around_the_border():
    x = torch.zeros(64, 1, 12, 12)
    x[:, :, :, -1] = 1.0  # a bright right column
    out = random_crop(x, 3, np.random.default_rng(0))
    assert out.shape == x.shape
    assert float(out[:, :, :, :3].max()) == 0.0  # the column never reappears on the left


def test_the_training_set_stays_uint8_and_batches_match_the_preprocessing_exactly():
    from labelcast.receiver.train import _data_bytes, _Items

    x = np.random.default_rng(3).integers(0, 256, (40, 12, 12, 3), dtype=np.uint8)
    pp = Preprocess((12, 12), 3, 1 / 255, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    items = _Items(x, pp, torch.device("cpu"))
    assert items.raw and items.x.dtype == torch.uint8 and _data_bytes(x, pp) == x.nbytes
    idx = torch.tensor([5, 0, 39, 7])
    got = items[idx]
    assert torch.equal(got, torch.from_numpy(pp.apply(x[idx.numpy()])))
    assert got.is_contiguous(memory_format=torch.channels_last)
    other = Preprocess((8, 8), 3)  # a resize: the whole set is converted once, as before
    assert not _Items(x, other, torch.device("cpu")).raw and _data_bytes(x, other) == 40 * 3 * 64 * 4
