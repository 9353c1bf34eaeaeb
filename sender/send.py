"""``send``: a pipeline of plain steps, each with a typed result.

    link budget (bytes, parity rule)  ─►  scored pool (teacher logits)
      ─►  recipes (``auto`` or the one asked for)  ─►  fitted payload (largest k that fits)
      ─►  outbox (payload.lcst, frames/, send-report.json)

Each step is a function of what the previous ones returned, so the benchmarks and
the planner call the same steps (:func:`encoder`, :func:`fit_recipes`) instead
of copies of them. The outbox holds ``payload.lcst`` (the signed payload),
``frames/`` (one file per frame, ready for the modem) and ``send-report.json``;
an existing outbox is never replaced without ``force``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..codec.errors import StorageError
from ..codec.field import FIELD_FLOOR
from ..codec.framing import make_frames, write_frames
from ..codec.keys import key_id, load_private_key
from ..codec.manifest import ReferenceStore
from ..codec.storage import atomic_write, check_space, replace_durably
from ..errors import ConfigError
from ..results import SendResult
from .budget import Encoded, Fit, LinkBudget, LinkSettings, fit_budget
from .engines import EngineSettings
from .plan import PlanSettings
from .recipe import PayloadSpec, Recipe, Scored, encoder
from .scoring import score_store
from .selection import AUTO, SelectConfig, choose_auto, prefix_key
from .teacher import Teacher

__all__ = [
    "SendConfig",
    "LinkSettings",
    "EngineSettings",
    "PlanSettings",
    "Recipe",
    "Scored",
    "PayloadSpec",
    "send",
    "score",
    "recipes_for",
    "encoder",
    "fit_recipes",
    "check_outbox",
    "write_outbox",
    "next_sequence",
]


@dataclass
class SendConfig:
    """Everything ``send`` is asked for, one concern per part: the link and its budget, the label recipe,
    the scoring engine, the planner, and what is signed beside the labels.

    Attributes:
        link: the link profile and the byte budget (:class:`LinkSettings`)
        recipe: the selection and how its labels are sent (:class:`Recipe`); strategy "auto" (the default):
            random-keyed for pools near the teacher's domain, energy-high with soft labels (4 runner-ups, T = 2)
            for far ones (``selection.AUTO``, ``choose_auto``); a named strategy uses this recipe as given
        engine: how the reference set is scored (:class:`EngineSettings`)
        plan: the planner: on which target data, for which device (:class:`PlanSettings`)
        class_names: the teacher's class names: True always, False never, None (default) when they cost at most
            NAMES_SHARE of the budget — and on a delta, only when the device's chain lacks them or they change
        hints: training hints for the receiver (JSON)
        validation_every: hold back every n-th labelled item for the device's A/B check (0: none, and the device
            cannot tell whether the new model beats the one in service). Costs 15-18 payload bytes (the hint)
            and 1/n of the labels in training
        detector: second ONNX model for detector-guided refinement (None: no refinement)
        expires_in: seconds until the payload expires
        sequence: None: the counter kept beside the key
        parent: previous outbox (or its report / labelled-set.npz): send only the difference
        seal_to: a device's .pub: seal the payload to it (16-byte tag, encrypted); several: signed, its body
            sealed for each
        announce_key: a new sender key's .pub, announced to the devices under this key (rotation)
        force: replace an existing outbox
        field: a device's field sketch (``labelcast field sketch``): the labels' per-class quota follows the
            class mix of what the device sees, floored so no class the teacher knows is starved
            (``codec.field.prior_weights``); None: the quota as configured
        field_floor: with ``field``: the share of an even quota every class keeps (``codec.field.FIELD_FLOOR``,
            chosen on validation data: docs/results.md "Field sketches")
        semi: the hint ``semi``: True / False tells a device on ``--semi auto`` to run (or skip) its
            semi-supervised round over the unlabelled store (10-11 payload bytes); None (default): no hint, the
            device decides by labels per class (``receiver.semi.AUTO_MAX_PER_CLASS``)
    """

    link: LinkSettings = field(default_factory=LinkSettings)
    recipe: Recipe = field(default_factory=lambda: Recipe(SelectConfig(strategy="auto")))
    engine: EngineSettings = field(default_factory=EngineSettings)
    plan: PlanSettings = field(default_factory=PlanSettings)
    class_names: bool | None = None
    hints: dict = field(default_factory=dict)
    validation_every: int = 10
    detector: str | None = None
    expires_in: float = 30 * 86400.0
    sequence: int | None = None
    parent: str | None = None
    seal_to: str | list | tuple | None = None
    announce_key: str | None = None
    force: bool = False
    field: str | os.PathLike | bytes | None = None
    field_floor: float = FIELD_FLOOR
    semi: bool | None = None

    @property
    def select(self) -> SelectConfig:
        return self.recipe.select


NAMES_SHARE = 0.05  # class names ride along by default when they cost at most this share of the budget


def class_names_for(cfg: SendConfig, names: list[str] | None, budget_bytes: int) -> tuple[list[str] | None, dict]:
    """The class names a payload carries, and the report's record of the decision (``SendConfig.class_names``)."""
    if not names:
        return None, {"sent": False, "why": "the teacher stores no class names (teacher calibrate --classes)"}
    cost = len("\n".join(names).encode()) + 2  # the names section and its length
    if cfg.class_names is not None:
        return (names if cfg.class_names else None), {
            "sent": bool(cfg.class_names),
            "bytes": cost,
            "why": "asked for" if cfg.class_names else "turned off",
        }
    fits = cost <= NAMES_SHARE * budget_bytes
    why = f"{cost} B {'≤' if fits else '>'} {NAMES_SHARE:.0%} of the {budget_bytes} B budget"
    return (names if fits else None), {"sent": fits, "bytes": cost, "why": f"default: {why}"}


def next_sequence(key_path: Path, explicit: int | None = None) -> int:
    """Next sequence number: one more than the last one recorded beside the key."""
    if explicit is not None:
        return explicit
    counter = key_path.with_name(key_path.stem + ".seq")
    return (int(counter.read_text().strip() or 0) if counter.exists() else 0) + 1


def _record_sequence(key_path: Path, seq: int) -> None:
    counter = key_path.with_name(key_path.stem + ".seq")
    last = int(counter.read_text().strip() or 0) if counter.exists() else 0
    if seq > last:
        atomic_write(counter, str(seq), what=f"sequence counter {counter}")


def score(teacher: Teacher, store: ReferenceStore, cfg: SendConfig, out: Path | None = None, progress=None) -> Scored:
    """Step 1: teacher logits for every reference item (the local engine, or Ray into ``out/scores``)."""
    if cfg.engine.name == "local":
        return Scored(store, teacher, score_store(teacher, store, progress=progress))
    from .engines import score as run_engine

    scores_dir = (out or Path(".")) / "scores"
    from .engines import RayRun

    run = RayRun()
    logits, secs = run_engine(
        cfg.engine.name,
        teacher,
        store,
        scores_dir,
        address=cfg.engine.ray_address,
        workers=cfg.engine.workers,
        provider=cfg.engine.provider,
        progress=progress,
        run=run,
    )
    return Scored(store, teacher, logits, {"engine": cfg.engine.name, "seconds": round(secs, 2), **run})


def recipes_for(cfg: SendConfig, scored: Scored) -> tuple[list[Recipe], dict | None]:
    """Step 2: the recipes to try, in order, and the ``auto`` decision (None when a strategy was named).

    Far pools try soft labels first (text stores: margin counts per cluster) and fall back to the
    small-budget recipe when the payload leaves fewer than ``AUTO["soft_min_per_class"]`` items per
    class (see :func:`fit_recipes`)."""
    if cfg.select.strategy != "auto":
        return [cfg.recipe], None
    auto = choose_auto(scored.logits, scored.teacher.confidence)
    names = ("far", "far_small") if auto["far"] else ("near",)
    if scored.store is not None and getattr(scored.store, "kind", "image") == "text":
        # measured on wordnet (docs/text.md): a text label is cheap beside its soft label, and the student gains
        # more from 4× the items than from soft targets; clusters rich in confident items get more of them
        names = ("text", "text_small")
        auto["text"] = "text store: margin counts per cluster, keyed random items (measured best on text)"
    recipes = []
    explicit = _explicit(cfg.recipe)
    for name in names:
        r = dict(AUTO[name])
        sel = replace(cfg.select, strategy=r.pop("strategy"), keyed=r.pop("keyed", cfg.select.keyed))
        kept = {k: v for k, v in explicit.items() if k in r and r[k] != v}
        if kept:  # what the caller set wins over auto's recipe, and the report says so
            auto.setdefault("kept", {}).update({k: f"{v} (auto: {r[k]})" for k, v in kept.items()})
        recipes.append(replace(cfg.recipe, select=sel, **{**r, **explicit}))
    if auto.get("teacher_confidence") is None:
        auto["warning"] = (
            "the teacher has no recorded confidence on its own data, so auto took the pool as near; record it "
            "with `labelcast teacher calibrate MODEL --data SOURCE`"
        )
    return recipes, auto


def _explicit(recipe: Recipe) -> dict:
    """The recipe fields the caller set (those that differ from ``Recipe``'s defaults), the selection aside."""
    base = Recipe(recipe.select)
    return {
        f: getattr(recipe, f)
        for f in ("soft", "soft_extra", "soft_levels", "soft_temperature")
        if getattr(recipe, f) != getattr(base, f)
    }


def fit_recipes(
    scored: Scored,
    recipes: list[Recipe],
    spec: PayloadSpec,
    budget: LinkBudget,
    *,
    keep: float | None = None,
    detector_logits: np.ndarray | None = None,
    auto: dict | None = None,
) -> tuple[Recipe, Fit]:
    """Step 3b: the first recipe whose fitted payload is usable (see :func:`recipes_for`), fitted to the
    budget with the real encoder and framer (or at a fixed fraction ``keep`` of the store)."""
    fit = None
    for i, recipe in enumerate(recipes):
        build = encoder(scored, recipe, spec, detector_logits)
        if keep is not None:
            k = max(1, int(round(keep * spec.n_items)))
            enc = build(k)
            lay = budget.final_layout(len(enc.payload))
            fit = Fit(k, enc, lay, lay.total_frames * budget.frame_bytes, 1)
        else:
            fit = fit_budget(build, spec.n_items, budget)
        if auto is not None:
            auto["chose"] = recipe.describe()
        if i + 1 < len(recipes) and fit.k < AUTO["soft_min_per_class"] * scored.classes:
            if auto is not None:
                auto["soft_items_too_few"] = int(fit.k)
            continue
        return recipe, fit
    raise AssertionError("no recipe")  # pragma: no cover - recipes is never empty


REPORT_FILE = "send-report.json"


def check_outbox(out: Path, force: bool = False) -> None:
    """Refuse an outbox that already holds a payload unless ``force`` (its frames may still be queued)."""
    old = out / "payload.lcst"
    if old.exists() and not force:
        raise FileExistsError(
            f"{out} already holds a payload ({old.stat().st_size} B, sent or queued); "
            "use a new --out folder, or --force to replace it"
        )


def write_outbox(out: Path, files: dict[str, bytes], frames: list[bytes], *, force: bool = False) -> None:
    """Step 4, all or nothing: ``files`` (payload, labelled set, report) and ``frames/`` are written into a
    staging folder inside ``out`` after a check of the space they need, then moved into place, the report
    last. A failure (a full disk) raises ``StorageError`` and leaves no partial outbox."""
    check_outbox(out, force)
    need = sum(map(len, files.values())) + sum(map(len, frames)) + 4096 * (len(files) + len(frames))
    check_space(out, need, what="the outbox")
    stage = out / f".staging-{os.getpid()}"
    try:
        shutil.rmtree(stage, ignore_errors=True)
        for name, data in files.items():
            atomic_write(stage / name, data, what=f"{name} in {out}")
        write_frames(frames, stage / "frames")
        shutil.rmtree(out / "frames", ignore_errors=True)  # an old outbox's frames (with force)
        replace_durably(stage / "frames", out / "frames")
        for name in sorted(files, key=lambda n: n == REPORT_FILE):  # the report last: its presence means complete
            replace_durably(stage / name, out / name)
    except OSError as e:
        raise StorageError(f"cannot write the outbox {out}: {e.strerror or e}", path=out, needed=need) from e
    finally:
        shutil.rmtree(stage, ignore_errors=True)


MIN_HELD_BACK = 20  # fewer held-back items than this and the device's A/B comparison is mostly noise


def comparison_warning(validation_every: int, k: int) -> str | None:
    """Why the device will not be able to tell whether this payload's model beats the one in service."""
    if not validation_every:
        return (
            "no held-back items (--validation-every 0): a device that already has a model keeps this one aside; "
            "promote it there by hand (`labelcast model promote`)"
        )
    held = k // validation_every if validation_every <= k else 0
    if held == 0:
        return (
            f"no held-back items ({k} labelled items): a device that already has a model keeps this one aside; "
            "promote it there by hand (`labelcast model promote`)"
        )
    if held < MIN_HELD_BACK:
        return f"only {held} held-back items: the device's A/B comparison is weak (±{held**-0.5:.2f} accuracy)"
    return None


def _backbone_advice(store: ReferenceStore, auto: dict | None) -> str | None:
    """A far pool teaches a device that starts from a backbone pretrained on the pool better (measured on
    ``digits``: +3.1 points at 1 KiB, 3 seeds; docs/devices.md); say so when the store has none."""
    from .pretrain import backbone_path

    if not auto or not auto.get("far") or store.kind == "text" or backbone_path(store.path, "cnn-small").exists():
        return None
    return (
        "far pool and no pretrained backbone installed with the store: `labelcast student pretrain --reference "
        f"{store.path}` (once, on the ground; the device's receive --init auto then starts from it) measured "
        "+3.1 points on digits at 1 KiB (docs/devices.md)"
    )


def _report(cfg, scored, recipe, fit, budget, spec, frames, auto, stages, t0) -> dict:
    sel = recipe.select
    link = budget.link
    lay = fit.layout
    digest = hashlib.sha256(fit.payload).hexdigest()
    return {
        "payload_id": digest[:8],
        "payload_sha256": digest,
        "mode": _mode(spec.seal_to),
        "auth_bytes": sum(fit.encoded.sections.get(k, 0) for k in ("tag", "signature", "recipients")),
        "strategy": sel.strategy,
        "auto": auto,
        "quota": sel.quota,
        "keyed": prefix_key(sel) is not None,
        "alpha": sel.alpha,
        "reference_items": spec.n_items,
        "reference_root": spec.root.hex(),
        "selected_items": int(fit.k),
        "classes": scored.classes,
        "class_counts": np.bincount(fit.encoded.labels, minlength=scored.classes).tolist(),
        "payload_bytes": len(fit.payload),
        "section_bytes": fit.encoded.sections,
        "frames": len(frames),
        "frame_bytes": link.frame_bytes,
        "framed_bytes": len(frames) * link.frame_bytes,
        "budget_bytes": budget.budget_bytes,
        "delivery": {
            "model": "arq" if link.retransmits else "lossy",
            "loss_rate": link.loss_rate,
            "target": None if budget.overhead is not None or link.retransmits else budget.delivery,
            "overhead_percent": budget.overhead,
            "parity_frames": lay.parity,
            "probability": round(budget.probability(lay), 6),
        },
        "parity_frames": lay.parity,
        "link": link.name,
        "link_seconds": round(link.seconds_for(link.transmissions_for(len(frames))), 2),
        "link_passes": link.passes_for(len(frames)),
        "budget_tries": fit.tries,
        "sequence": spec.sequence,
        "key_id": key_id(spec.key.public_key()).hex(),
        "expires_at": spec.expires_at,
        "soft_labels": recipe.soft,
        "soft_temperature": recipe.soft_temperature if recipe.soft else None,
        "refinement": fit.encoded.extra.get("refinement"),
        "stage_seconds": {k: round(v, 3) for k, v in stages.items()},
        "seconds": round(time.time() - t0, 3),
        "config": _config_record(cfg),
    }


def send(
    teacher: str | os.PathLike | Teacher,
    reference: str | os.PathLike | ReferenceStore,
    key: str | os.PathLike,
    out: str | os.PathLike,
    cfg: SendConfig | None = None,
    *,
    now: float | None = None,
    progress=None,
    logits: np.ndarray | None = None,
) -> SendResult:
    """Run the sender pipeline; writes the outbox and returns the report (also ``send-report.json``)."""
    cfg = cfg or SendConfig()
    t0 = time.time()
    stages: dict[str, float] = {}
    outp = Path(out)
    check_outbox(outp, cfg.force)  # before any work: an outbox that exists, or a folder that cannot be written
    check_space(outp, what="the outbox")
    budget = cfg.link.resolve()
    key_path = Path(key)
    priv = load_private_key(key_path)
    store = reference if isinstance(reference, ReferenceStore) else ReferenceStore(reference)
    tea = teacher if isinstance(teacher, Teacher) else Teacher(teacher)
    _check_modality(store, tea)
    t = time.time()
    scored = Scored(store, tea, logits) if logits is not None else score(tea, store, cfg, outp, progress)
    det = score_store(Teacher(cfg.detector), store, progress=progress) if cfg.detector else None
    stages["score"] = time.time() - t
    t = time.time()
    field_info = None
    if cfg.field is not None:
        cfg, field_info = _with_field(cfg, scored, store)
    spec, names_info = _spec(cfg, priv, key_path, store, tea, budget, time.time() if now is None else now)
    planned = delta = None
    if cfg.parent is not None:
        recipe, fit, auto, delta = _delta(cfg, scored, spec, budget, names_info)
    elif _plans(cfg, store.kind):
        mix = tuple(field_info["class_mix"]) if field_info and field_info.get("steered") else None
        planned, recipe, fit, auto = _planned(cfg, scored, spec, budget, store, progress, mix)
    else:
        recipes, auto = recipes_for(cfg, scored)
        recipe, fit = fit_recipes(scored, recipes, spec, budget, keep=cfg.link.keep, detector_logits=det, auto=auto)
        if cfg.select.strategy == "auto":
            auto["planner"] = (
                f"off: a {store.kind} store (the planner simulates image students); chosen by the teacher's "
                "confidence shift"
                if store.kind in ("text", "vector")
                else "off: no --target data; chosen by the teacher's confidence shift (give --target to simulate)"
            )
    stages["select_encode"] = time.time() - t
    frames = make_frames(fit.payload, budget.link.frame_bytes, parity=fit.layout.parity)
    report = _report(cfg, scored, recipe, fit, budget, spec, frames, auto, stages, t0)
    report["class_names"] = {**names_info, "sent": "names" in fit.encoded.sections}
    if field_info is not None:
        report["field"] = {**field_info, **_field_effect(scored, recipe, fit, spec)}
    advice = _backbone_advice(store, auto)
    if advice:
        report["advice"] = [advice]
    warnings = _warnings(cfg, fit, auto)
    if warnings:
        report["warnings"] = warnings
    if delta is not None:
        report["delta"] = delta
    if scored.engine:
        report["scoring"] = scored.engine
    if planned is not None:
        report["plan"] = planned
        report["exemplars"] = fit.encoded.extra.get("exemplars", 0)
        if not fit.encoded.indices.size:
            report["strategy"] = "exemplars only"
    _emit(outp, key_path, fit, frames, _labelled_set(fit, spec, scored), report, cfg.force)
    return SendResult(report)


def _spec(cfg: SendConfig, priv, key_path: Path, store: ReferenceStore, tea: Teacher, budget, now: float):
    """What is signed beside the labels (and the report's record of the class names decision)."""
    names, names_info = class_names_for(cfg, tea.classes, budget.budget_bytes)
    spec = PayloadSpec(
        priv,
        store.root,
        store.n,
        store.manifest.segments,
        next_sequence(key_path, cfg.sequence),
        int(now + cfg.expires_in),
        names,
        _hints(cfg, store, tea) or None,
        seal_to=_seal_key(cfg.seal_to),
    )
    return spec, names_info


def _with_field(cfg: SendConfig, scored: Scored, store: ReferenceStore) -> tuple[SendConfig, dict]:
    """The config with the quota weighted by the device's field class mix, and what the report records."""
    from ..codec.field import FIELD_MIN_SHIFT, class_mix, decode_sketch, mix_shift, prior_weights

    raw = cfg.field if isinstance(cfg.field, bytes) else Path(cfg.field).read_bytes()
    sketch = decode_sketch(raw)
    groups = np.asarray(store.manifest.groups)
    sketch.check(store.root, max(len(store.manifest.group_names), int(groups.max()) + 1 if groups.size else 1))
    mix = class_mix(sketch, scored.labels, groups, scored.classes)
    info = {
        "sketch": str(cfg.field) if not isinstance(cfg.field, bytes) else f"{len(raw)} bytes",
        "images": sketch.images,
        "class_mix": [round(float(v), 4) for v in mix],
        "shift": round(mix_shift(mix), 4),
    }
    conf = getattr(scored.teacher, "confidence", None)
    far = choose_auto(scored.logits, conf) if conf is not None else {"far": False}
    if far["far"]:  # the class mix stands on the teacher's view of the store, which a far pool makes unreliable
        info.update(steered=False, why=f"far pool (auto's confidence shift {far['shift']}): the quota is not steered")
        return cfg, info
    if info["shift"] < FIELD_MIN_SHIFT:  # an even field: the labels already cover it, the quota stays even
        why = f"the field's class mix is {info['shift']:.3f} from even (< {FIELD_MIN_SHIFT}): the quota is not steered"
        info.update(steered=False, why=why)
        return cfg, info
    w = prior_weights(mix, cfg.field_floor)
    sel = replace(cfg.select, class_weights=tuple(float(v) for v in w))
    info.update(steered=True, class_weights=[round(float(v), 4) for v in w])
    return replace(cfg, recipe=replace(cfg.recipe, select=sel)), info


def _field_effect(scored: Scored, recipe: Recipe, fit: Fit, spec: PayloadSpec) -> dict:
    """The per-class counts the same selection gives without the field's weights (same number of items)."""
    from .selection import select

    plain = replace(recipe.select, class_weights=None)
    k = int(np.asarray(fit.encoded.indices).size)
    idx = select(scored.logits, k, plain, segments=spec.segments) if k else np.zeros(0, np.int64)
    return {"class_counts_without": np.bincount(scored.labels[idx], minlength=scored.classes).tolist()}


def _config_record(cfg: SendConfig) -> dict:
    """The config as the report records it (target arrays by their size, not their pixels; a sketch given as
    bytes by its length)."""
    t = cfg.plan.target
    if isinstance(t, tuple | list):
        cfg = replace(cfg, plan=replace(cfg.plan, target=f"arrays: {len(t[0])} images, {len(t[2])} classes"))
    if isinstance(cfg.field, bytes):
        cfg = replace(cfg, field=f"field sketch: {len(cfg.field)} bytes")
    return asdict(cfg)


def _hints(cfg: SendConfig, store: ReferenceStore, tea: Teacher) -> dict:
    """What is signed beside the labels for the device: the A/B share, a key announced, the tokenizer."""
    hints = {**cfg.hints, **({"val_every": cfg.validation_every} if cfg.validation_every else {})}
    if cfg.semi is not None:
        hints["semi"] = cfg.semi
    if cfg.announce_key:
        hints["announce_key"] = _raw_key(cfg.announce_key)
    if store.kind == "text":
        hints.update(tea.preprocess.tokenizer.hint())
    return hints


def _warnings(cfg: SendConfig, fit: Fit, auto: dict | None) -> list[str]:
    """What the operator should hear: no A/B comparison possible, an uncalibrated teacher, settings kept."""
    out = [w for w in (comparison_warning(cfg.validation_every, int(fit.k)), (auto or {}).get("warning")) if w]
    if auto and auto.get("kept"):
        out.append(f"auto's recipe kept your settings: {auto['kept']}")
    return out


def _emit(outp: Path, key_path: Path, fit: Fit, frames: list[bytes], labelled, report: dict, force: bool) -> None:
    """The sequence is recorded as used before anything leaves (it is never reused, even when the outbox then
    fails), then the outbox is written whole or not at all."""
    from .delta import SET_FILE

    seq = report["sequence"]
    _record_sequence(key_path, seq)
    files = {"payload.lcst": fit.payload, SET_FILE: labelled.to_bytes()}
    try:
        write_outbox(outp, {**files, REPORT_FILE: _report_bytes(report)}, frames, force=force)
    except StorageError as e:
        raise StorageError(
            f"{e}; no outbox was written. Sequence {seq} is recorded as used: the next send uses {seq + 1}",
            path=e.path,
            needed=e.needed,
        ) from e


def _report_bytes(report: dict) -> bytes:
    return json.dumps(report, indent=2, default=str).encode()


def _delta(cfg: SendConfig, scored: Scored, spec: PayloadSpec, budget: LinkBudget, names_info: dict):
    """A delta on the parent set (or the full payload of the same set, when that is smaller). By default
    the names travel once per chain: not again when the parent set holds the same ones."""
    from .delta import delta_encoder, fit_delta, full_equivalent, load_parent

    parent = load_parent(cfg.parent)
    if cfg.class_names is None and spec.class_names and parent.class_names == spec.class_names:
        spec = spec.with_(class_names=None)
        names_info.update(why="default: the device's chain already holds them")
    recipes, auto = recipes_for(cfg, scored)
    recipe = recipes[0]
    names = scored.teacher.classes if scored.teacher is not None else None
    build, kmax = delta_encoder(scored, recipe, spec, parent, names)
    fit = fit_delta(build, kmax, budget)
    result = fit.encoded.extra["result"]
    key = prefix_key(recipe.select)
    full = full_equivalent(result, spec, key)
    info = {
        "parent": parent.digest.hex(),
        **fit.encoded.extra["changes"],
        "delta_bytes": len(fit.payload),
        "full_bytes": full,
        "sent": "delta",
        "items_after": result.k,
    }
    if full <= len(fit.payload):
        enc = Encoded(*_full_payload(result, spec, key), {"result": result})
        lay = budget.final_layout(len(enc.payload))
        fit = Fit(result.k, enc, lay, lay.total_frames * budget.frame_bytes, 1)
        info["sent"] = "full (smaller than the delta)"
    return recipe, fit, auto, info


def _full_payload(result, spec: PayloadSpec, key):
    from .delta import full_payload

    payload, sections = full_payload(result, spec, key)
    return payload, sections, result.indices, result.labels


def _labelled_set(fit: Fit, spec: PayloadSpec, scored: Scored):
    """The labelled set the device holds after this payload (the parent of the next delta)."""
    from ..codec.delta import LabelledSet

    result = fit.encoded.extra.get("result")
    if result is None:
        idx = np.asarray(fit.encoded.indices, dtype=np.int64)
        order = np.argsort(idx)
        names = spec.class_names or (scored.teacher.classes if scored.teacher is not None else None)
        result = LabelledSet(spec.n_items, scored.classes, idx[order], np.asarray(fit.encoded.labels)[order], names)
    return result


def _seal_key(seal_to):
    """None, one device's key, or a list of them (a group), from paths or keys."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from ..codec.keys import load_public_key

    if seal_to is None or isinstance(seal_to, Ed25519PublicKey):
        return seal_to
    if isinstance(seal_to, list | tuple):
        keys = [_seal_key(k) for k in seal_to]
        return None if not keys else keys[0] if len(keys) == 1 else keys
    return load_public_key(seal_to)


def _raw_key(path) -> str:
    from cryptography.hazmat.primitives import serialization

    from ..codec.keys import load_public_key

    return load_public_key(path).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def _mode(seal_to) -> str:
    if seal_to is None:
        return "signed"
    if isinstance(seal_to, list):
        return f"signed, sealed for {len(seal_to)} devices"
    return f"sealed to device {key_id(seal_to).hex()}"


def _check_modality(store: ReferenceStore, tea: Teacher) -> None:
    from ..receiver.errors import ModelError

    if store.kind == "vector" and tea.modality == "image":  # a classic model over N × D floats, spec guessed
        tea.use_vectors(store.item_shape[0])
    if store.kind != tea.modality:
        raise ModelError(
            f"the teacher {tea.path.name} takes {tea.modality} but the reference store {store.path} holds "
            f"{store.kind}: score a {store.kind} store with a {store.kind} teacher"
        )


def _plans(cfg: SendConfig, kind: str = "image") -> bool:
    if kind in ("text", "vector"):  # the planner simulates image students and sends image exemplars
        if cfg.plan.enabled:
            raise ConfigError(f"the planner works on image stores; a {kind} payload is labels only: drop --plan")
        return False
    plan = cfg.plan
    want = plan.enabled if plan.enabled is not None else (cfg.select.strategy == "auto" and plan.target is not None)
    if want and plan.target is None:
        raise ConfigError("the planner needs the sender's target data: give --target SOURCE")
    if want and (cfg.link.keep is not None or cfg.detector):
        raise ConfigError("--plan fits the budget itself: drop --keep and --detector")
    return want


def load_target(cfg: SendConfig, store: ReferenceStore):
    """The sender's labelled target data at the store's item size, split for the planner."""
    from ..datasets.sources import load_labelled
    from .plan import split_target

    h, w, c = store.manifest.item_shape
    target = cfg.plan.target
    if isinstance(target, tuple | list):  # arrays in hand: (x, y, names), at the store's item size
        x, y, names = _target_arrays(target, (h, w, c))
        return split_target(x, y, names, seed=cfg.select.seed, source="arrays")
    x, y, names = load_labelled(target, (h, w), c, labels=cfg.plan.target_labels)
    return split_target(np.asarray(x), y, names, seed=cfg.select.seed, source=target)


def _target_arrays(target, shape: tuple[int, int, int]):
    """``(x, y, names)`` checked against the array contract and the store's item shape."""
    from ..codec.errors import SourceError
    from ..codec.preprocess import check_images

    if len(target) != 3:
        raise SourceError("the target as arrays is (x, y, names): images, one label each, one name a class")
    x, y, names = np.asarray(target[0]), np.asarray(target[1]), list(target[2])
    check_images(x, y, names, what="the target's x")
    xs = x if x.ndim == 4 else x[..., None]
    if tuple(xs.shape[1:]) != tuple(shape):
        raise SourceError(
            f"the target's images are {xs.shape[1:]}, the store's items {tuple(shape)}: the planner compares them "
            "item for item (load them with load_labelled(SOURCE, (h, w), channels), or give a source string)"
        )
    return xs, y.astype(np.int64), [str(n) for n in names]


def _planned(cfg: SendConfig, scored: Scored, spec: PayloadSpec, budget: LinkBudget, store, progress, class_mix=None):
    """The planner's choice: its plan (without the fitted payload), the recipe, the fit, the auto decision.
    ``class_mix``: a steering field sketch's class mix, which the planner's validation accuracy is weighted by."""
    from ..profiles import load_device
    from .plan import _recipe, plan_payload

    target = load_target(cfg, store)
    r = cfg.recipe
    soft = (r.soft_extra, r.soft_levels, r.soft_temperature)
    res = plan_payload(
        scored,
        spec,
        budget,
        target,
        cfg.select,
        load_device(cfg.plan.device),
        replace(cfg.plan.config, seed=cfg.select.seed, class_mix=class_mix),
        soft,
        progress,
    )
    best = res.pop("candidate")
    fit = res.pop("fit")
    fit.encoded.extra["exemplars"] = (best.exemplars or {}).get("n", 0)
    recipe = _recipe(best.recipe, cfg.select, soft) if best.recipe else Recipe(replace(cfg.select, strategy="random"))
    auto = dict(res["auto"], chose=best.name, planner="on")
    return res, recipe, fit, auto
