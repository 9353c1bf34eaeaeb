"""``receive``: the device's order of trust, then training and export.

1. reassemble frames (corrupted ones dropped by their CRC)
2. verify the Ed25519 signature over the exact bytes with the trusted keys and
   the *local* manifest root (a different reference set fails here)
3. refuse replayed or older sequence numbers, and expired payloads
4. decode; check the selected items' hashes against the manifest
5. only then train, export ONNX (and TensorRT where present), and accept the
   sequence number — the last step, so an interrupted run can be resumed.

Nothing is written to ``out`` before step 5; the model and the report are
replaced atomically, the report last.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..codec.errors import StorageError
from ..codec.framing import Reassembler, frames_from_stream, read_frames_dir
from ..codec.keys import TrustSet
from ..codec.manifest import ReferenceStore
from ..codec.payload import Payload, open_payload
from ..codec.preprocess import Preprocess
from ..profiles import load_device
from .state import ReplayState

__all__ = ["ReceiveConfig", "read_input", "verify_and_decode", "receive"]


@dataclass
class ReceiveConfig:
    device: str = "cpu-small"  # device profile name or .toml path
    student: object = None  # StudentConfig; None: defaults (+ payload hints)
    use_soft: bool = True  # train on soft labels when the payload has them
    tensorrt: bool = True  # build a TensorRT engine when TensorRT and the profile allow
    preprocess: Preprocess | None = None  # None: the store's own size and channels, pixels / 255
    compare_model: str | None = None  # ONNX model (the active slot) to score on the validation slice too


def read_input(path: str | os.PathLike) -> tuple[bytes, dict]:
    """Payload bytes from a frames directory, a frame stream file or a payload file."""
    p = Path(path)
    info: dict = {"input": str(p)}
    if p.is_dir():
        frames = read_frames_dir(p)
    else:
        try:
            data = p.read_bytes()
        except OSError as e:
            raise StorageError(f"cannot read {p}: {e.strerror}") from e
        if data[:4] == b"LCST":
            return data, {**info, "kind": "payload"}
        frames = frames_from_stream(data)
    r = Reassembler()
    for f in frames:
        r.add(f)
    data = r.payload()
    info.update(kind="frames", frames_read=len(frames), frames_dropped=r.dropped, duplicates=r.duplicates)
    return data, info


def verify_and_decode(
    data: bytes, store: ReferenceStore, trust: TrustSet, state: ReplayState | None, now: float | None = None
) -> tuple[Payload, np.ndarray]:
    """Steps 2-4 of the order of trust; returns the decoded payload and the verified item bytes."""
    head = open_payload(data, trust, store.root, n_items=store.n, now=now, decode=False)
    if state is not None:
        state.check(head.header.key_id, head.header.sequence)
    p = open_payload(data, trust, store.root, n_items=store.n, segments=store.manifest.segments, now=now)
    return p, store.require_items(p.indices)


def validation_mask(k: int, hints: dict) -> np.ndarray:
    """Items the sender held back for validation (hint ``val_every`` = n: every n-th item by index)."""
    n = hints.get("val_every")
    mask = np.zeros(k, dtype=bool)
    if isinstance(n, int) and 2 <= n <= k:
        mask[n - 1 :: n] = True
    return mask


def _student_config(cfg: ReceiveConfig, hints: dict):
    from .train import StudentConfig

    sc = cfg.student or StudentConfig()
    allowed = {"arch", "train_samples", "shift", "flip", "mosaic", "lr"}
    changes = {k: v for k, v in (hints.get("student") or {}).items() if k in allowed}
    if changes and cfg.student is None:
        sc = StudentConfig(**{**asdict(sc), **changes})
    return sc


def receive(
    input_path: str | os.PathLike,
    reference: str | os.PathLike | ReferenceStore,
    trust: TrustSet,
    out: str | os.PathLike,
    cfg: ReceiveConfig | None = None,
    *,
    state_dir: str | os.PathLike | None = None,
    dry_run: bool = False,
    resume: bool = False,
    now: float | None = None,
    progress=None,
) -> dict:
    """Run the receiver; returns the report (also written to ``out/receive-report.json``)."""
    cfg = cfg or ReceiveConfig()
    t0 = time.time()
    stages: dict[str, float] = {}
    profile = load_device(cfg.device)
    data, info = read_input(input_path)
    stages["reassemble"] = time.time() - t0
    t = time.time()
    store = reference if isinstance(reference, ReferenceStore) else ReferenceStore(reference)
    state = ReplayState(state_dir)
    p, x = verify_and_decode(data, store, trust, state, now)
    h = p.header
    stages["verify_decode"] = time.time() - t
    counts = np.bincount(p.labels, minlength=h.classes).tolist()
    report = {
        "payload_sha256": hashlib.sha256(data).hexdigest(),
        "payload_bytes": len(data),
        "key_id": h.key_id.hex(),
        "sequence": h.sequence,
        "expires_at": h.expires_at,
        "selected_items": h.k,
        "classes": h.classes,
        "class_counts": counts,
        "section_bytes": p.section_bytes,
        "soft_labels": p.soft is not None,
        "device": profile.name,
        **info,
    }
    if dry_run:
        report["dry_run"] = True
        report["stage_seconds"] = {k: round(v, 3) for k, v in stages.items()}
        return report
    from .export import build_tensorrt_engine, export_onnx, tensorrt_available
    from .train import train_student

    outp = Path(out)
    work = outp / ".work"
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(f"cannot create output folder {outp}: {e.strerror}") from e
    state.begin(h.key_id, h.sequence, report["payload_sha256"])
    t = time.time()
    targets = p.soft.dense(p.labels, h.classes) if (p.soft is not None and cfg.use_soft) else p.labels
    val = validation_mask(h.k, p.hints)
    train_sel = ~val
    sc = _student_config(cfg, p.hints)
    ih, _, ic = store.manifest.item_shape
    pp = cfg.preprocess or Preprocess(size=ih, channels=ic, mean=(0.0,) * ic, std=(1.0,) * ic)
    model, tinfo = train_student(
        x[train_sel],
        targets[train_sel],
        h.classes,
        pp,
        profile,
        sc,
        checkpoint=work / "checkpoint.pt",
        resume=resume,
        tag=report["payload_sha256"],
        progress=progress,
    )
    stages["train"] = time.time() - t
    t = time.time()
    meta = {"payload_sha256": report["payload_sha256"], "sequence": h.sequence, "classes": p.class_names}
    exp = export_onnx(model, outp / "student.onnx", pp, h.classes, meta)
    if cfg.tensorrt and profile.backend == "tensorrt":
        if tensorrt_available():
            exp.update(build_tensorrt_engine(outp / "student.onnx", outp / "student.engine", profile))
        else:
            exp["tensorrt"] = "skipped: TensorRT is not installed on this machine"
    if val.any():
        from .evaluate import evaluate

        report["validation"] = {
            "items": int(val.sum()),
            "accuracy": evaluate(outp / "student.onnx", x[val], p.labels[val])["accuracy"],
        }
        if cfg.compare_model:
            report["validation"]["compare_accuracy"] = evaluate(cfg.compare_model, x[val], p.labels[val])["accuracy"]
    stages["export"] = time.time() - t
    report.update(
        training=tinfo,
        export=exp,
        student=str(outp / "student.onnx"),
        stage_seconds={k: round(v, 3) for k, v in stages.items()},
        seconds=round(time.time() - t0, 3),
    )
    # the report is durable before the sequence is accepted: a power cut between the two leaves a
    # begun payload that resumes (from its last checkpoint), never an accepted one without a report
    tmp = outp / "receive-report.json.tmp"
    try:
        with open(tmp, "w") as fh:
            fh.write(json.dumps(report, indent=2, default=str))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, outp / "receive-report.json")
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"cannot write the report in {outp}: {e.strerror}") from e
    state.accept(h.key_id, h.sequence)
    (work / "checkpoint.pt").unlink(missing_ok=True)
    return report
