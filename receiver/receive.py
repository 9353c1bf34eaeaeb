"""``receive``: the device's order of trust, then training and export.

1. reassemble frames (corrupted ones dropped by their CRC)
2. verify the Ed25519 signature over the exact bytes with the trusted keys and
   the *local* manifest root (a different reference set fails here) — once per payload
3. refuse replayed or older sequence numbers, and expired payloads
4. decode; check the selected items' hashes against the manifest
5. only then train, export ONNX (and TensorRT where present), and accept the
   sequence number — the last step, so an interrupted run can be resumed.

Nothing is written to ``out`` before step 5; the model and the report are
replaced atomically, the report last. Replay state and the event log live in
``state_dir`` — by default the user's state folder (``$LABELCAST_STATE_DIR``, else
platformdirs' ``user_state_dir("labelcast")``, e.g. ``~/.local/state/labelcast``):
pass ``state_dir`` to keep a device's state elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..codec.errors import DecodeError, LimitError, ParentError, StorageError
from ..codec.framing import Reassembler, frames_from_stream, read_frames_dir
from ..codec.keys import TrustSet
from ..codec.manifest import ReferenceStore
from ..codec.payload import DIGEST_LEN, MAGIC, MAX_PAYLOAD_BYTES, Payload, Verified, decode_payload, verify_payload
from ..codec.preprocess import Preprocess
from ..codec.storage import atomic_write
from ..profiles import load_device
from ..results import ReceiveResult
from .chain import Chains, Step, labelled_set_of
from .hints import check_hints, student_hints
from .state import EventLog, ReplayState, StateLock, default_state_dir
from .trainset import check_rebuild, training_set, validation_mask

if TYPE_CHECKING:
    from .semi import SemiConfig

__all__ = ["ReceiveConfig", "read_input", "verify_and_decode", "receive", "validation_mask"]


@dataclass
class ReceiveConfig:
    """What ``receive`` trains and how: the device profile, the student, the labels it uses.

    Attributes:
        device: device profile name or .toml path
        student: StudentConfig, or a student's name ("resnet8", "pkg.module:factory"); None: defaults (+ payload
            hints)
        use_soft: train on soft labels when the payload has them
        tensorrt: build a TensorRT engine when TensorRT and the profile allow
        preprocess: None: the store's own size and channels, pixels / 255
        compare_model: ONNX model (the active slot) to score on the validation slice too
        backbone: "auto": start from the store's backbone for the student's arch (REF/backbone-ARCH.safetensors,
            from `student pretrain`) when it is there; "none": random weights; or a path to a backbone file
        field: the device's own unlabelled captures (any image source form, or a uint8 array): the exported
            student's outputs are corrected to the class mix of this field (``prior_adapt``)
        prior_adapt: with ``field``, re-estimate the field's class prior (EM on the student's posteriors) and
            add ``log(π_field / π_train)`` to the exported student's logits (``--no-prior-adapt``: off)
        semi: auto | on | off: a second, semi-supervised round over the unlabelled store (label propagation,
            receiver/semi.py); auto: the payload's hint, else on for few labels per class
        semi_recipe: the semi-supervised round's recipe (SemiConfig); None: its defaults
        semi_field: with ``field`` and a semi-supervised round, the field's captures join its unlabelled pool
            first (the data the student will meet, pseudo-labelled with the store)
    """

    device: str = "cpu-small"
    student: object = None
    use_soft: bool = True
    tensorrt: bool = True
    preprocess: Preprocess | None = None
    compare_model: str | None = None
    backbone: str = "auto"
    field: str | np.ndarray | None = None
    prior_adapt: bool = True
    semi: str = "auto"
    semi_recipe: SemiConfig | None = None
    semi_field: bool = True


def announce_key(state_path: Path, raw_hex: str, by: bytes) -> str:
    """Keep a sender key announced by a trusted payload in ``STATE/trust/`` (trusted from then on; a revoked
    id stays refused); returns its key id."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from ..codec.keys import key_id

    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(raw_hex))
    kid = key_id(key).hex()
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    atomic_write(state_path / "trust" / f"announced-{kid}.pub", pem, what="announced key")
    EventLog(state_path / "events.jsonl")("key announced", key_id=kid, by=by.hex())
    return kid


def read_input(path: str | os.PathLike) -> tuple[bytes, dict]:
    """Payload bytes from a frames directory, a frame stream file or a payload file."""
    p = Path(path)
    info: dict = {"input": str(p)}
    if p.is_dir():
        frames = read_frames_dir(p)
    else:
        try:
            size = p.stat().st_size
            if size > MAX_PAYLOAD_BYTES + (MAX_PAYLOAD_BYTES >> 2):  # checked before reading: frames add < 25 %
                raise LimitError(f"{p} is {size:,} bytes; a payload is at most {MAX_PAYLOAD_BYTES:,} (not read)")
            data = p.read_bytes()
        except OSError as e:
            raise StorageError(f"cannot read {p}: {e.strerror}") from e
        if data[:4] == MAGIC:
            return data, {**info, "kind": "payload"}
        frames = frames_from_stream(data)
    r = Reassembler()
    for f in frames:
        r.add(f)
    data = r.payload()
    info.update(kind="frames", frames_read=len(frames), frames_dropped=r.dropped, duplicates=r.duplicates)
    return data, info


def verify_and_decode(
    data: bytes | Verified,
    store: ReferenceStore,
    trust: TrustSet,
    state: ReplayState | None,
    now: float | None = None,
    chains: Chains | None = None,
    use_soft: bool = True,
    budget_bytes: int | None = None,
) -> tuple[Payload, np.ndarray, Step]:
    """Steps 2-4 of the order of trust; returns the decoded payload, the verified item bytes of the set it
    makes, and that set (a delta's is the chain's head with the delta applied; ``chains`` holds the heads).

    ``data`` may be a payload already verified (by the watcher): its signature is not checked again.
    ``budget_bytes`` (the device profile's): the memory rebuilding the training set takes is checked against
    it before any of it is allocated (``BudgetError``)."""
    v = data if isinstance(data, Verified) else verify_payload(data, trust, store.root, n_items=store.n, now=now)
    if state is not None:
        state.check(v.header.key_id, v.header.sequence)
    base = None
    if "parent" in v.blobs and chains is not None:
        base = chains.base_indices(v.header.key_id, v.blobs["parent"])
        if base is None and len(v.blobs["parent"]) == DIGEST_LEN:  # a delta on a set not held (yet): say which
            chains.refuse_parent(v.header.key_id, v.blobs["parent"])
    p = decode_payload(v, store.manifest.segments, base)
    check_hints(p.hints)  # before anything reads them
    if p.exemplars is not None and store.kind != "image":
        raise DecodeError(f"the payload carries image exemplars; the reference store holds {store.kind} items")
    if budget_bytes is not None:
        head = chains.head_info(v.header.key_id) if (chains is not None and p.is_delta) else None
        k_total = v.header.k + (head or {}).get("items", 0)
        check_rebuild(p, store.manifest.item_bytes, budget_bytes, use_soft, k_total)
    if chains is not None:
        step = chains.step(p, use_soft)
    elif p.is_delta:
        raise ParentError("a delta payload needs the device's chain state (receive with a state folder)")
    else:
        step = Step(labelled_set_of(p, use_soft), None, None)
    return p, store.require_items(step.labelled.indices), step


def _student_config(cfg: ReceiveConfig, hints: dict, store: ReferenceStore | None = None):
    """The student recipe: the config's (or the defaults, with the payload's hints), and its start: the
    backbone asked for, else the store's own for this arch; its expected hash comes from the hints."""
    from .train import StudentConfig

    sc = cfg.student or StudentConfig()
    if isinstance(sc, str):  # a student named: a registered one or the operator's own factory
        sc = StudentConfig(arch=sc)
    default = asdict(StudentConfig())
    # the payload's hints (checked: types, ranges, registered students only) fill what the caller left at its
    # default (a `--finetune last:2` on the CLI must not drop the sender's "no flips for digits"); what the
    # caller set explicitly wins
    changes = {k: v for k, v in student_hints(hints).items() if getattr(sc, k) == default[k]}
    if changes:
        sc = StudentConfig(**{**asdict(sc), **changes})
    if not sc.init and cfg.backbone not in ("auto", "none"):
        sc = replace(sc, init=cfg.backbone)
    elif not sc.init and cfg.backbone == "auto" and store is not None:
        own = store.path / f"backbone-{sc.arch}.safetensors"
        if own.exists():
            sc = replace(sc, init=str(own))
    if sc.init and store is not None and not sc.init_sha256 and Path(sc.init).parent.resolve() == store.path.resolve():
        recorded = store.path / "backbones.json"  # `student pretrain` records the hash of the store's backbones
        expect = json.loads(recorded.read_text()).get(sc.arch) if recorded.exists() else None
        sc = replace(sc, init_sha256=expect or "")
    if store is not None and store.kind == "vector":
        sc = _vector_student(sc, default["arch"])
    return sc


def _vector_student(sc, default_arch: str):
    """A vector store's student: an MLP (the image default becomes ``mlp``; an image student is refused),
    without image augmentation or pretrained image backbones."""
    from .students import VECTOR_ARCHS

    arch = VECTOR_ARCHS[0] if sc.arch == default_arch else sc.arch
    if arch not in VECTOR_ARCHS and ":" not in arch:
        raise ValueError(f"student {arch!r} is for images; a vector store trains {' or '.join(VECTOR_ARCHS)}")
    return replace(sc, arch=arch, augment="none", flip=False, mosaic=0.0, init="", init_sha256="")


def vector_preprocess(store: ReferenceStore, sample: int = 8192):
    """The standardisation a vector store's student learns with: per-feature mean/std over an evenly spaced
    sample of the store's items (the same items on every device holding the store, so the same numbers)."""
    from ..codec.preprocess import VectorPreprocess

    idx = np.unique(np.linspace(0, store.n - 1, min(sample, store.n)).astype(np.int64))
    return VectorPreprocess.fitted(store.read(idx))


def text_preprocess(hints: dict):
    """The tokenizer a text payload asks for (hint ``tokenizer``), else the default."""
    from ..codec.errors import DecodeError
    from ..codec.text import TextPreprocess, Tokenizer

    try:
        return TextPreprocess(Tokenizer.from_json(hints["tokenizer"])) if "tokenizer" in hints else TextPreprocess()
    except (ValueError, TypeError) as e:
        raise DecodeError(f"the payload's tokenizer hint is not usable: {e}") from e


def _base_report(data: bytes, p: Payload, profile, info: dict) -> dict:
    h = p.header
    return {
        "payload_sha256": hashlib.sha256(data).hexdigest(),
        "payload_bytes": len(data),
        "format_version": h.version,
        "key_id": h.key_id.hex(),
        "sequence": h.sequence,
        "expires_at": h.expires_at,
        "selected_items": h.k,
        "classes": h.classes,
        "class_counts": np.bincount(p.labels, minlength=h.classes).tolist(),
        "section_bytes": p.section_bytes,
        "soft_labels": p.soft is not None,
        "exemplars": p.exemplars.n if p.exemplars is not None else 0,
        "device": profile.name,
        **info,
    }


def _train_and_export(p, x, step, store, cfg, profile, outp, report, resume, progress):
    """Step 5: train on the rebuilt set (warm from the chain's last model for a delta), export, score the
    held-back slice. Returns (seconds spent exporting, the model)."""
    from .export import build_tensorrt_engine, export_onnx, tensorrt_available
    from .train import train_student

    h = p.header
    work = outp / ".work"
    ts = training_set(p, x, store.manifest.item_shape, cfg.use_soft, step.labelled)
    sc = _student_config(cfg, p.hints, store)
    # the field's captures, read once and before training (a bad source costs no training): the semi round's
    # pool and the prior adaptation both use them
    fx = None
    if cfg.field is not None:
        from .field import field_images

        fx = field_images(cfg.field, store)
    warm = step.warm
    if warm is not None:  # an incremental payload: a short schedule from the model trained on the parent set
        sc = replace(sc, train_samples=max(1, int(sc.train_samples * sc.warm_fraction)), min_epochs=sc.warm_min_epochs)
    common = {"checkpoint": work / "checkpoint.pt", "resume": resume, "tag": report["payload_sha256"]}
    if store.kind == "text":
        from .text_models import train_text_student

        pp = text_preprocess(p.hints)
        model, tinfo = train_text_student(
            ts.x, ts.targets, h.classes, pp.tokenizer, profile, sc, progress=progress, warm=warm, **common
        )
    else:
        if store.kind == "vector":
            pp = cfg.preprocess or vector_preprocess(store)
        else:
            ih, iw, ic = store.manifest.item_shape
            pp = cfg.preprocess or Preprocess(size=(ih, iw), channels=ic, mean=(0.0,) * ic, std=(1.0,) * ic)
        model, tinfo = train_student(
            ts.x, ts.targets, h.classes, pp, profile, sc, progress=progress, root=store.root, warm=warm, **common
        )
    seen = int(tinfo.get("epochs", 0)) * len(ts.x) or None  # round 2's schedule is a share of what round 1 saw
    model = _semi(model, ts, p, step, store, cfg, (pp, profile, sc), report, fx, progress=progress, seen=seen, **common)
    tinfo["training_set"] = ts.counts
    t = time.time()
    meta = {"payload_sha256": report["payload_sha256"], "sequence": h.sequence, "classes": step.labelled.class_names}
    served = _adapted(model, ts.targets, h.classes, pp, cfg, fx, report) if fx is not None else model
    exp = export_onnx(served, outp / "student.onnx", pp, h.classes, meta)
    if cfg.tensorrt and profile.backend == "tensorrt" and store.kind != "text":
        if tensorrt_available():
            exp.update(build_tensorrt_engine(outp / "student.onnx", outp / "student.engine", profile))
        else:
            exp["tensorrt"] = "skipped: TensorRT is not installed on this machine"
    if ts.val_x.shape[0]:
        from .evaluate import evaluate

        report["validation"] = {
            "items": int(ts.val_x.shape[0]),
            "accuracy": evaluate(outp / "student.onnx", ts.val_x, ts.val_y)["accuracy"],
        }
        if cfg.compare_model:
            report["validation"]["compare_accuracy"] = evaluate(cfg.compare_model, ts.val_x, ts.val_y)["accuracy"]
    report.update(training=tinfo, export=exp, student=str(outp / "student.onnx"))
    return time.time() - t, model


def _semi(model, ts, p, step, store: ReferenceStore, cfg: ReceiveConfig, recipe, report: dict, field, **train):
    """Round 2 over the unlabelled store when ``semi_decision`` says so; the report's ``semi`` says what ran
    and the held-back slice's accuracy after each round. ``field``: the device's captures (None: none), which
    join the pool when ``cfg.semi_field``."""
    from .semi import SemiConfig, semi_decision, semi_round

    pp, profile, sc = recipe
    run, why = semi_decision(cfg.semi, p.hints, len(ts.x), p.header.classes, store.kind, store.n)
    info: dict = {"ran": run, "why": why}
    if run:
        before = _held_back_accuracy(model, ts, pp)
        seed = int(report["payload_sha256"][:16], 16)
        classes = p.header.classes
        if store.kind == "text":
            from .text_models import train_text_student

            tok = pp.tokenizer
            train["trainer"] = lambda x, y, c, **kw: train_text_student(x, y, classes, tok, profile, c, **kw)
        else:
            train["root"] = store.root
        args = (store, step.labelled.indices, classes, pp, profile, sc, cfg.semi_recipe or SemiConfig())
        fx = field if cfg.semi_field else None
        if fx is not None and (cfg.semi_recipe or SemiConfig()).field_pool:
            train["pool_weights"] = _field_pool_weights(fx, store)
        train["guard"] = why.startswith("auto:")  # the rule's own decision: the agreement check applies
        model, more = semi_round(model, ts.x, ts.targets, *args, seed=seed, field=fx, **train)
        info.update(more, held_back_round1=before)
        if more.get("ran"):
            info["held_back_round2"] = _held_back_accuracy(model, ts, pp)
    report["semi"] = info
    return model


def _field_pool_weights(fx, store: ReferenceStore) -> np.ndarray:
    """Per store item, the odds of the semi round's draw: the device's own sketch's group shares, tempered
    as the sender's quota is (``prior_weights``), spread over each group's items."""
    from ..codec.field import prior_weights
    from .field import make_sketch

    groups = np.asarray(store.manifest.groups, dtype=np.int64)
    w = prior_weights(make_sketch(fx, store).shares)
    count = np.bincount(groups, minlength=w.size)
    return w[groups] / np.maximum(count[groups], 1)


def _held_back_accuracy(model, ts, pp) -> float | None:
    import torch

    if not len(ts.val_x):
        return None
    model.eval()
    with torch.no_grad():
        z = model(torch.from_numpy(pp.apply(ts.val_x))).argmax(1).numpy()
    return round(float((z == ts.val_y).mean()), 4)


def _adapted(model, targets, classes: int, pp, cfg: ReceiveConfig, x, report: dict):
    """The student corrected to the field's class mix (EM prior re-estimation on its own posteriors over the
    field images ``x``), unless its median confidence there is below ``PRIOR_MIN_CONFIDENCE``; the report's
    ``field`` says what ran. The chain keeps the uncorrected model."""
    import torch

    from .field import PRIOR_MIN_CONFIDENCE, adapt_prior, with_logit_bias

    t = np.asarray(targets)
    train_prior = t.mean(0) if t.ndim == 2 else np.bincount(t, minlength=classes) / max(len(t), 1)
    train_prior = np.maximum(train_prior, 1e-6)
    info = {"images": int(len(x)), "prior_adapt": bool(cfg.prior_adapt), "train_prior": _r(train_prior)}
    if not cfg.prior_adapt:
        report["field"] = info
        return model
    model.eval()
    with torch.no_grad():
        probs = np.concatenate(
            [torch.softmax(model(torch.from_numpy(pp.apply(x[s : s + 512]))), 1).numpy() for s in range(0, len(x), 512)]
        )
    conf = float(np.median(probs.max(1)))
    info["field_confidence"] = round(conf, 4)
    if conf < PRIOR_MIN_CONFIDENCE:
        info.update(prior_adapt=False, why=f"median confidence {conf:.3f} < {PRIOR_MIN_CONFIDENCE}: EM is not trusted")
        report["field"] = info
        return model
    field_prior, steps = adapt_prior(probs, train_prior)
    # a class the field never shows keeps 0.1 % of the prior, so a capture of it can still win on strong evidence
    bias = np.log(np.maximum(field_prior, 1e-3) / train_prior).astype(np.float32)
    report["field"] = {**info, "field_prior": _r(field_prior), "em_steps": steps, "logit_bias": _r(bias)}
    return with_logit_bias(model, bias)


def _r(a) -> list[float]:
    return [round(float(v), 4) for v in a]


def _would_train(p: Payload, x, step, store: ReferenceStore, cfg: ReceiveConfig, profile) -> dict:
    """The training plan a dry run reports: student, batch, memory, the training set's make-up."""
    from .text_models import plan_text
    from .train import plan_training

    ts = training_set(p, x, store.manifest.item_shape, cfg.use_soft, step.labelled)
    sc = _student_config(cfg, p.hints, store)
    classes = p.header.classes
    plan = (
        plan_text(len(ts.x), classes, text_preprocess(p.hints).tokenizer, profile, sc)
        if store.kind == "text"
        else plan_training(ts.x, classes, ts.targets.ndim == 2, profile, sc)
    )
    plan["training_set"] = ts.counts
    plan["semi"] = _semi_plan(ts, p, step, store, cfg, profile, plan["arch"])
    return plan


def _semi_plan(ts, p: Payload, step, store: ReferenceStore, cfg: ReceiveConfig, profile, arch: str) -> dict:
    """Whether the semi-supervised round would run, its pool and the memory it adds before round 2."""
    from ..codec.preprocess import VectorPreprocess
    from .semi import (
        SemiConfig,
        fitting_pool,
        graph_view,
        item_bytes_of,
        semi_decision,
        semi_feature_dim,
        semi_memory,
    )
    from .students import build_student

    run, why = semi_decision(cfg.semi, p.hints, len(ts.x), p.header.classes, store.kind, store.n)
    if not run:
        return {"runs": False, "why": why}
    rc = cfg.semi_recipe or SemiConfig()
    x = ts.x
    if store.kind == "text":
        from .text_models import TEXT_ARCHS

        family, width, _, channels = TEXT_ARCHS[arch]
        dim = channels if family == "cnn" else width
    else:
        pp = VectorPreprocess(x.shape[1]) if x.ndim == 2 else Preprocess(size=x.shape[1:3], channels=x.shape[3])
        dim = semi_feature_dim(build_student(arch, pp.channels, p.header.classes, pp.hw))
    shape = dict(
        labelled=len(x), item_bytes=item_bytes_of(x), feature_dim=dim, classes=p.header.classes, view=graph_view(rc, x)
    )
    pool = fitting_pool(rc.pool_size(x), store.n - step.labelled.k, profile.budget_bytes, cfg=rc, **shape)
    out = {"runs": True, "why": why, "pool_items": pool, "estimated_bytes": semi_memory(pool, cfg=rc, **shape)}
    if why.startswith("auto:"):
        out["then"] = f"round 2 when propagation and the student agree on at least {rc.min_agreement:.0%} of the pool"
    return out


def receive(
    input_path: str | os.PathLike | Verified,
    reference: str | os.PathLike | ReferenceStore,
    trust: TrustSet,
    out: str | os.PathLike | None,
    cfg: ReceiveConfig | None = None,
    *,
    state_dir: str | os.PathLike | None = None,
    dry_run: bool = False,
    resume: bool = False,
    now: float | None = None,
    progress=None,
) -> ReceiveResult:
    """Run the receiver; returns the report (also written to ``out/receive-report.json``).

    ``input_path``: a frames folder, a frame stream, a payload file, or a payload the caller already
    verified. ``state_dir``: replay state and event log (default: the user's state folder, see the
    module docstring); one process at a time owns it (``LockedError`` otherwise). ``dry_run``: verify
    and decode, report the training plan, write nothing (``out`` may be None)."""
    state_path = Path(state_dir) if state_dir else default_state_dir()
    args = (input_path, reference, trust, out, cfg, state_path, dry_run, resume, now, progress)
    if dry_run:
        return ReceiveResult(_receive(*args))
    with StateLock(state_path, "receive"):
        return ReceiveResult(_receive(*args))


def _receive(input_path, reference, trust, out, cfg, state_path: Path, dry_run, resume, now, progress) -> dict:
    cfg = cfg or ReceiveConfig()
    t0 = time.time()
    stages: dict[str, float] = {}
    profile = load_device(cfg.device)
    if isinstance(input_path, Verified):
        data, info = input_path.data, {"input": "verified payload", "kind": "payload"}
    else:
        data, info = read_input(input_path)
    stages["reassemble"] = time.time() - t0
    t = time.time()
    store = reference if isinstance(reference, ReferenceStore) else ReferenceStore(reference)
    state = ReplayState(state_path)
    chains = Chains(state_path)
    trust = trust.with_folder(state_path / "trust")  # sender keys announced by earlier payloads
    src = input_path if isinstance(input_path, Verified) else data
    p, x, step = verify_and_decode(src, store, trust, state, now, chains, cfg.use_soft, profile.budget_bytes)
    h = p.header
    stages["verify_decode"] = time.time() - t
    report = _base_report(data, p, profile, info)
    report.update(payload_id=report["payload_sha256"][:8], reference_root=store.root.hex())
    report["chain"] = {
        "parent": step.parent,
        "head": step.labelled.digest.hex(),
        "items": step.labelled.k,
        "classes": step.labelled.classes,
        "warm_start": step.warm is not None,
    }
    if dry_run:
        report.update(would_train=_would_train(p, x, step, store, cfg, profile), dry_run=True)
        report["stage_seconds"] = {k: round(v, 3) for k, v in stages.items()}
        return report
    if out is None:
        raise ValueError("receive needs an output folder (out) unless dry_run")
    outp = Path(out)
    try:
        (outp / ".work").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(f"cannot create output folder {outp}: {e.strerror}") from e
    state.begin(h.key_id, h.sequence, report["payload_sha256"])
    t = time.time()
    export_s, model = _train_and_export(p, x, step, store, cfg, profile, outp, report, resume, progress)
    stages["train"] = time.time() - t - export_s
    stages["export"] = export_s
    report.update(stage_seconds={k: round(v, 3) for k, v in stages.items()}, seconds=round(time.time() - t0, 3))
    # the report is durable before the sequence is accepted: a power cut between the two leaves a
    # begun payload that resumes (from its last checkpoint), never an accepted one without a report
    atomic_write(outp / "receive-report.json", json.dumps(report, indent=2, default=str), what=f"report in {outp}")
    # the chain's head moves before the sequence is accepted; a cut between the two resumes (Chains.step)
    chains.commit(h.key_id, h.sequence, step, model.state_dict())
    state.accept(h.key_id, h.sequence)
    if "announce_key" in p.hints:
        report["announced_key"] = announce_key(state_path, p.hints["announce_key"], h.key_id)
    (outp / ".work" / "checkpoint.pt").unlink(missing_ok=True)
    EventLog(state_path / "events.jsonl")(
        "received",
        sequence=h.sequence,
        key_id=h.key_id.hex(),
        items=step.labelled.k,
        model=report["student"],
        validation=report.get("validation"),
    )
    return report
