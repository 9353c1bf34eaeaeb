"""The constants of ``send``'s rules, measured on validation data only (docs/results.md "How choices are made").

Every number here is a student's accuracy on the planner's validation slice: 1,000 items of the scenario's
target *training* split held back from everything a sender may ship (the equitable benchmark's split,
``benchmarks/equitable``). The test split is never read. Each cell is the planner's own simulation
(``sender.plan.plan_payload`` with ``PlanConfig.only``): the payload fitted to the budget with the real
encoder, decoded as the device decodes it, trained with the device's recipe on the planner's short
schedule (12,000 images), three seeds. What each experiment decides:

* ``labels`` — the label recipes of ``send --strategy auto`` at 256 B … 4 KiB: which family wins on each
  scenario (near: random-keyed with hard labels; far: energy-high with soft labels, or EL2N-easy with hard
  labels below ``AUTO["soft_min_per_class"]`` soft-labelled items per class), set against the scenario's
  measured shift, bounds the ``AUTO["shift"]`` threshold; on the far scenario, where soft labels overtake
  hard ones, as items per class grow, bounds ``soft_min_per_class``.
* ``hybrid`` — the labels beside a hybrid's distilled exemplars (``HYBRID_LABELS``).
* ``repeat`` — how a hybrid's exemplars sit beside its labels on the device (``trainset.EXEMPLAR_SHARE``):
  repeated to ½ or ¾ of the images trained on, or a two-phase schedule (labels alone for half the images,
  then labels and exemplars, or exemplars alone, warm).
* ``exemplars`` — the codec rule for exemplars only: the 1-NN proxy's tolerance (``PROXY_TOLERANCE``) and
  whether 28-px items may travel at half resolution (``HALF_RES_FROM``).

The held-out ``clipart`` (label recipes only) is reported beside them and sets nothing.

Usage::

    python benchmarks/choices.py --json out/bench/choices.json                # fashion and digits
    python benchmarks/choices.py --scenarios clipart --only labels --json out/bench/choices-clipart.json
    python benchmarks/choices.py --merge out/bench/choices.json out/bench/choices-clipart.json \
        --json docs/results/choices.json
    python benchmarks/choices.py --render docs/results/choices.json --doc docs/results.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

BEGIN, END = "<!-- choices:begin -->", "<!-- choices:end -->"

LABEL_RECIPES = ("near", "far", "far_small", "far_easy")
LABEL_BUDGETS = (256, 1024, 2048, 4096)
HYBRID_CELLS = {  # scenario: (budgets, shares, label recipes)
    "digits": ((1024, 4096), (0.9, 0.5), ("far", "far_easy", "far_small")),
    "fashion": ((4096, 16384), (0.25,), ("near", "near_soft", "far_easy")),
}
# scenario: (its pool as AUTO calls it, (budget, exemplar share) cells)
REPEAT_CELLS = {"digits": ("far", ((1024, 0.9), (1024, 0.75), (4096, 0.75)))}
REPEAT_RULES = {  # variant: what the device does with a hybrid's exemplars
    "share 0.5": "exemplars ½ of images",
    "share 0.75": "exemplars ¾ of images",
    "labels, then both": "labels first, then both",
    "labels, then exemplars": "labels, then exemplars only",
}
EXEMPLAR_BUDGETS = (1024, 4096, 16384)
TOLERANCES = (0.0, 0.01, 0.03, 0.05, 0.1)
HALF_RES = (28, 64)  # HALF_RES_FROM: 28 lets the 28-px scenarios travel at half resolution, 64 does not
HELD_OUT = ("clipart",)  # reported, never used to set a constant


def _env(name: str, log):
    from equitable.runner import BenchConfig, _plan_setup, _setup

    cfg = BenchConfig(scenarios=(name,))
    env = _setup(name, cfg, log)
    target, pcfg = _plan_setup(env, cfg)
    return env, target, pcfg


def _plan(env, target, pcfg, budget: int, only: str, seed: int) -> dict:
    """One candidate, simulated by the planner (validation accuracy, short schedule)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from equitable.runner import BENCH_ROOT, KEY_SEED, _PoolStore, payload_budget

    from labelcast.codec.errors import BudgetError
    from labelcast.profiles import load_device
    from labelcast.sender.plan import plan_payload
    from labelcast.sender.selection import SelectConfig
    from labelcast.sender.send import PayloadSpec, Scored

    key = Ed25519PrivateKey.from_private_bytes(KEY_SEED)
    scored = env.extra.setdefault("scored-store", Scored(_PoolStore(env.x), env.extra["teacher"], env.logits))
    spec = PayloadSpec(key, BENCH_ROOT, len(env.x), env.segs, 1, 2**33)
    # DM runs per simulation seed: only a hybrid's candidate needs the distilled set, so the others skip it
    dm = pcfg.distill_iters if only.startswith("hybrid") else 0
    cfg = replace(pcfg, seed=seed, only=only, candidates=0, distill_iters=dm)
    try:
        res = plan_payload(
            scored, spec, payload_budget(budget), target, SelectConfig("auto", seed=seed), load_device("cpu-small"), cfg
        )
    except BudgetError as e:
        return {"accuracy": None, "note": str(e)}
    row = res["candidates"][0]
    return {
        "accuracy": row["predicted_accuracy"],
        "labels": row["labels"],
        "exemplars": row["exemplars"],
        "codec": row["exemplar_codec"],
        "bytes": row["payload_bytes"],
        "auto": res["auto"],
        "note": row["note"],
    }


@contextmanager
def _repeat_rule(variant: str):
    """The device's hybrid rule ``variant`` in force for the planner's simulation: ``share S`` sets
    ``EXEMPLAR_SHARE``; a two-phase variant trains on the labels alone for half the images, then, warm, on
    labels and exemplars (½ rule) or on the exemplars alone for the other half."""
    from labelcast.receiver import train as T
    from labelcast.receiver import trainset as TS
    from labelcast.sender import plan as P

    saved = (TS.EXEMPLAR_SHARE, TS.training_set, T.train_student, P._key)
    seen: dict = {}

    def rebuild(*a, **kw):
        ts = saved[1](*a, **kw)
        seen["labels"] = ts.counts["reference_items"]
        return ts

    def two_phase(x, targets, classes, pp, profile, cfg, **kw):
        n, half = seen["labels"], replace(cfg, train_samples=cfg.train_samples // 2)
        if n == 0 or n == len(x):
            return saved[2](x, targets, classes, pp, profile, cfg, **kw)
        m, first = saved[2](x[:n], targets[:n], classes, pp, profile, half, **kw)
        x2, t2 = (x, targets) if variant == "labels, then both" else (x[n:], targets[n:])
        m, info = saved[2](x2, t2, classes, pp, profile, half, warm=m.state_dict(), **kw)
        return m, {**info, "epochs": first["epochs"] + info["epochs"]}

    def key(*a, **kw):  # the plan cache keys the device's share rule; a two-phase schedule exists only here
        return {**saved[3](*a, **kw), "bench_rule": variant}

    try:
        if variant.startswith("share "):
            TS.EXEMPLAR_SHARE = float(variant.split()[1])
        else:
            TS.training_set, T.train_student, P._key = rebuild, two_phase, key
        yield
    finally:
        TS.EXEMPLAR_SHARE, TS.training_set, T.train_student, P._key = saved


def run(scenarios: tuple[str, ...], seeds: int, log=print, only: set[str] | None = None) -> dict:
    from labelcast.receiver import trainset as TS
    from labelcast.sender import plan as P

    out: dict = {
        "protocol": (
            "validation accuracy only: the planner's 1,000-item validation slice of the target's training split "
            f"(never shipped, never the test split); the planner's simulation, {P.PlanConfig.train_samples:,} "
            f"images, seeds 0..{seeds - 1}; budgets are payload bytes"
        ),
        "constants": {
            "shift": P.AUTO["shift"],
            "soft_min_per_class": P.AUTO["soft_min_per_class"],
            "hybrid_labels": dict((("far" if k else "near"), v) for k, v in P.HYBRID_LABELS.items()),
            "proxy_tolerance": P.PROXY_TOLERANCE,
            "half_res_from": P.HALF_RES_FROM,
            "exemplar_share": TS.EXEMPLAR_SHARE,
        },
        "scenarios": {},
        "rows": [],
    }
    t0 = time.time()
    for name in scenarios:
        env, target, pcfg = _env(name, log)
        sc: dict = {"classes": env.classes, "validation_items": int(len(target.y_val))}
        out["scenarios"][name] = sc

        def add(exp, budget, variant, seed, r, name=name, **kw):
            out["rows"].append(
                {
                    "scenario": name,
                    "experiment": exp,
                    "budget": budget,
                    "variant": variant,
                    "seed": seed,
                    **{k: v for k, v in r.items() if k != "auto"},
                    **kw,
                }
            )
            log(f"{name} {exp} {budget} {variant} seed {seed}: {r.get('accuracy')}")

        if not only or "labels" in only:
            for b in LABEL_BUDGETS:
                for recipe in LABEL_RECIPES:
                    for s in range(seeds):
                        r = _plan(env, target, pcfg, b, f"labels: {recipe}", s)
                        if r.get("auto") and not sc.get("auto"):
                            sc["auto"] = r["auto"]
                        add("labels", b, recipe, s, r)
        if (not only or "hybrid" in only) and name in HYBRID_CELLS:
            budgets, shares, recipes = HYBRID_CELLS[name]
            saved = dict(P.HYBRID_LABELS)
            try:
                for b in budgets:
                    for share in shares:
                        for recipe in recipes:
                            P.HYBRID_LABELS[True] = P.HYBRID_LABELS[False] = recipe
                            for s in range(seeds):
                                r = _plan(env, target, pcfg, b, f"hybrid: {int(share * 100)} % distilled + {recipe}", s)
                                add("hybrid", b, f"{int(share * 100)} % + {recipe}", s, r)
            finally:
                P.HYBRID_LABELS.clear()
                P.HYBRID_LABELS.update(saved)
        if (not only or "repeat" in only) and name in REPEAT_CELLS:
            pool, cells = REPEAT_CELLS[name]
            recipe = P.HYBRID_LABELS[pool == "far"]
            for b, share in cells:
                for variant in REPEAT_RULES:
                    for s in range(seeds):
                        with _repeat_rule(variant):
                            r = _plan(env, target, pcfg, b, f"hybrid: {int(share * 100)} % distilled + {recipe}", s)
                        if r.get("auto") and bool(r["auto"]["far"]) != (pool == "far"):
                            raise SystemExit(f"{name}: AUTO no longer calls the pool {pool}; fix REPEAT_CELLS")
                        sc.setdefault("auto", r["auto"])
                        add("repeat", b, variant, s, r, share=share, labels_recipe=recipe)
        if not only or "exemplars" in only:
            saved = (P.PROXY_TOLERANCE, P.HALF_RES_FROM)
            try:
                from equitable.runner import payload_budget

                for b in EXEMPLAR_BUDGETS:
                    memo: dict = {}
                    for half_from in HALF_RES:
                        for tol in TOLERANCES:
                            P.PROXY_TOLERANCE, P.HALF_RES_FROM = tol, half_from
                            # the planner's own pick for "exemplars only"; the same pick trains the same student
                            ex = P.choose_exemplars(target, P.exemplar_bytes(payload_budget(b), 1.0))
                            pick = None if ex is None else (ex["codec"], ex["quality"], ex["scale"], ex["n"])
                            for s in range(seeds):
                                if (pick, s) not in memo:
                                    memo[pick, s] = _plan(env, target, pcfg, b, "exemplars only", s)
                                r = memo[pick, s]
                                scale = None if ex is None else ex["scale"]
                                add(
                                    "exemplars",
                                    b,
                                    f"tolerance {tol}, half-res from {half_from}",
                                    s,
                                    r,
                                    tolerance=tol,
                                    half_res_from=half_from,
                                    scale=scale,
                                    quality=None if ex is None else ex["quality"],
                                )
            finally:
                P.PROXY_TOLERANCE, P.HALF_RES_FROM = saved
    out["seconds"] = round(time.time() - t0, 1)
    return out


def _cell(rows: list[dict]) -> tuple[float | None, float | None]:
    a = [r["accuracy"] for r in rows if r["accuracy"] is not None]
    if not a or len(a) < len(rows):
        return None, None
    return float(np.mean(a)), float(np.std(a))


def _fmt(m: float | None, s: float | None) -> str:
    return "does not fit" if m is None else f"{m:.3f} ± {s:.3f}"


def _labels(rows: list[dict], name: str, budget: int, recipe: str) -> list[dict]:
    return [
        x
        for x in rows
        if x["scenario"] == name and x["experiment"] == "labels" and x["budget"] == budget and x["variant"] == recipe
    ]


def _soft_min(rows: list[dict], res: dict, soft_min: int) -> str:
    """Where, on the far scenarios, soft labels (``far``) overtake hard EL2N-easy ones (``far_small``), by the
    soft payload's items per class: the interval a ``soft_min_per_class`` must lie in."""
    lose, win = [], []
    for name, sc in res["scenarios"].items():
        if not (sc.get("auto") or {}).get("far") or name in HELD_OUT:
            continue
        for b in LABEL_BUDGETS:
            soft, hard = _cell(_labels(rows, name, b, "far"))[0], _cell(_labels(rows, name, b, "far_small"))[0]
            if soft is None or hard is None:
                continue
            per_class = _labels(rows, name, b, "far")[0]["labels"] / sc["classes"]
            (win if soft > hard else lose).append(round(per_class, 1))
    if not lose or not win:
        return ""
    lo, hi = max(lose), min(win)
    ok = lo < soft_min <= hi
    return (
        f" On the far scenario, soft labels lose to hard EL2N-easy ones at ≤ {lo} soft-labelled items per class "
        f"and win from {hi}: `soft_min_per_class` = {soft_min} "
        + ("lies in between, and stays." if ok else f"does not lie in ({lo}, {hi}].")
    )


def _one_se(rows: list[dict], res: dict) -> str:
    """The planner's choice rule against plain argmax, on validation only: each (scenario, budget) of the label
    experiment chooses among its recipes on seed 0 (the planner's one simulation), and the choice is scored by
    the other seeds' mean."""
    from labelcast.sender.plan import choose_candidate

    seeds = sorted({x["seed"] for x in rows})
    if len(seeds) < 2:
        return ""
    gain, same, cells = [], 0, 0
    for name, sc in res["scenarios"].items():
        first = "far" if (sc.get("auto") or {}).get("far") else "near"
        order = [first] + [r for r in ("near", "near_soft", "far", "far_small", "far_easy") if r != first]
        for b in LABEL_BUDGETS:
            got = {r: _labels(rows, name, b, r) for r in order if r in LABEL_RECIPES}
            if any(not g or any(x["accuracy"] is None for x in g) for g in got.values()):
                continue
            first_seed = {r: next(x["accuracy"] for x in g if x["seed"] == seeds[0]) for r, g in got.items()}
            later = {r: float(np.mean([x["accuracy"] for x in g if x["seed"] != seeds[0]])) for r, g in got.items()}
            cand = [{"name": r, "predicted_accuracy": first_seed[r]} for r in got]
            rule = choose_candidate(cand, sc["validation_items"])["name"]
            best = max(got, key=lambda r: first_seed[r])
            if rule != best:
                gain.append(later[rule] - later[best])
            same += rule == best
            cells += 1
    if not cells:
        return ""
    return (
        f" The planner's choice rule (within one standard error of the best prediction, the first in prior order) "
        f"against plain argmax, choosing on seed {seeds[0]} and scored on the other seeds: the same pick in "
        f"{same} of {cells} cells, {np.mean(gain) * 100:+.2f} points on average where they differ"
        f" ({cells - same} cells)."
        if cells - same
        else f" The planner's choice rule and plain argmax, choosing on seed {seeds[0]}, pick the same recipe in "
        f"all {cells} cells."
    )


def _hybrid_verdict(hyb: list[dict], res: dict) -> str:
    """Per scenario: each label recipe's mean over its hybrid cells (budgets × shares) and seeds."""
    out = []
    k = res["constants"]["hybrid_labels"]
    for name, sc in res["scenarios"].items():
        mine = [r for r in hyb if r["scenario"] == name and r["accuracy"] is not None]
        if not mine:
            continue
        recipes = sorted({r["variant"].split(" + ", 1)[1] for r in mine})
        mean = {x: float(np.mean([r["accuracy"] for r in mine if r["variant"].endswith(" + " + x)])) for x in recipes}
        best = max(mean, key=mean.get)
        kind = "far" if (sc.get("auto") or {}).get("far") else "near"
        kept = k[kind]
        ranked = ", ".join(f"`{x}` {mean[x]:.3f}" for x in sorted(mean, key=mean.get, reverse=True))
        second = sorted(mean, key=mean.get, reverse=True)[1] if len(mean) > 1 else None
        close = (
            f" (`{second}` is within {(mean[best] - mean[second]) * 100:.1f} points: level within the noise)"
            if second and mean[best] - mean[second] < 0.01
            else ""
        )
        verdict = (
            f"`{kept}` is best and stays{close}"
            if best == kept
            else f"`{best}` leads `{kept}` by {(mean[best] - mean[kept]) * 100:.1f} points"
        )
        out.append(f"On `{name}` ({kind} pool), the mean over its hybrid cells: {ranked}; {verdict}.")
    return " ".join(out)


def _exemplar_verdict(ex: list[dict], k: dict) -> str:
    """The tolerance at the kept half-resolution rule, and the half-resolution rule at the kept tolerance: means
    over every (scenario, budget) cell and seed."""

    def mean(**kw) -> float:
        return float(np.mean([r["accuracy"] for r in ex if all(r[a] == v for a, v in kw.items())]))

    tol = {t: mean(half_res_from=k["half_res_from"], tolerance=t) for t in TOLERANCES}
    top = max(tol.values())
    best = [t for t in TOLERANCES if tol[t] >= top - 1e-9]
    half = {h: mean(half_res_from=h, tolerance=k["proxy_tolerance"]) for h in HALF_RES}
    tol_txt = ", ".join(f"{t}: {tol[t]:.3f}" for t in TOLERANCES)
    keep_tol = k["proxy_tolerance"] in best
    return (
        f"Mean over every cell, with half resolution from {k['half_res_from']} px — tolerance {tol_txt}: "
        + (
            f"{k['proxy_tolerance']} is among the best and stays. "
            if keep_tol
            else f"{k['proxy_tolerance']} is not the best ({best[0]} is). "
        )
        + f"Half resolution for the 28-px scenarios (from 28 px) averages {half[28]:.3f} against {half[64]:.3f} "
        f"without (from 64 px): the tiles upscaled teach a CNN less than the proxy says, so "
        + (f"{k['half_res_from']} stays." if half[k["half_res_from"]] >= max(half.values()) else "64 is not best.")
    )


def _repeat_table(rep: list[dict], share: float | None) -> list[str]:
    """The hybrid rule's table (one row per payload, one column per rule) and its verdict: the mean over the
    payloads of each rule."""
    kept = f"share {share:g}" if share is not None else None
    names = [v for v in REPEAT_RULES if any(r["variant"] == v for r in rep)]
    head = [REPEAT_RULES[v] + (" (kept)" if v == kept else "") for v in names]
    lines = [
        f"**`EXEMPLAR_SHARE` = {share:g}** (receiver/trainset.py): how the device trains a hybrid's exemplars "
        "beside its labels — repeated to a share of the images, or a two-phase schedule (the labels alone for "
        "half the images, then, warm, both or the exemplars alone).",
        "",
        "| payload | " + " | ".join(head) + " |",
        "|---|" + "---|" * len(names),
    ]
    payloads = []
    for r in rep:
        key = (r["scenario"], r["budget"], r["share"])
        if key not in payloads:
            payloads.append(key)
    means: dict[str, list[float]] = {v: [] for v in names}
    for key in payloads:
        grp = {
            v: [r for r in rep if (r["scenario"], r["budget"], r["share"]) == key and r["variant"] == v] for v in names
        }
        cells = {v: _cell(g) for v, g in grp.items()}
        best = max((v for v in names if cells[v][0] is not None), key=lambda v: cells[v][0], default=None)
        for v in names:
            if cells[v][0] is not None:
                means[v].append(cells[v][0])
        g0 = next(g[0] for g in grp.values() if g)
        what = (
            f"{key[0]} {key[1]:,} B, {int(key[2] * 100)} % exemplars ({g0.get('exemplars') or 0} + "
            f"{g0.get('labels') or 0:,} labels, `{g0.get('labels_recipe')}`)"
        )
        shown = [("**" + _fmt(*cells[v]) + "**") if v == best else _fmt(*cells[v]) for v in names]
        lines.append(f"| {what} | " + " | ".join(shown) + " |")
    avg = {v: float(np.mean(m)) for v, m in means.items() if len(m) == len(payloads)}
    ranked = ", ".join(f"{REPEAT_RULES[v]} {avg[v]:.3f}" for v in sorted(avg, key=avg.get, reverse=True))
    best = max(avg, key=avg.get)
    if kept in avg:
        lead = (avg[best] - avg[kept]) * 100
        order = sorted(avg, key=avg.get, reverse=True)
        gap = (avg[order[0]] - avg[order[1]]) * 100 if len(order) > 1 else 0.0
        verdict = (
            "the kept rule is best and stays"
            + (f" ({REPEAT_RULES[order[1]]} is {gap:.1f} points behind, within the seeds' spread)." if gap < 1 else ".")
            if best == kept
            else f"{REPEAT_RULES[best]} leads the kept rule by {lead:.1f} points"
            + (" (within the seeds' spread: the rule stays)." if lead < 1.0 else ".")
        )
    else:
        verdict = ""
    return lines + ["", f"Mean over the payloads: {ranked}; {verdict}", "", ""]


def render(res: dict) -> str:
    rows = res["rows"]
    k = res["constants"]
    lines = [
        f"Measured by `python benchmarks/choices.py` ({res['protocol']}; mean ± std over seeds; every number in "
        "`docs/results/choices.json`). The test split is never read.",
        "",
    ]
    # labels: the shift and soft_min_per_class
    lines += [
        f'**`AUTO["shift"]` = {k["shift"]} and `AUTO["soft_min_per_class"]` = {k["soft_min_per_class"]}.** '
        "The label recipes of `send --strategy auto` on each scenario's validation slice:",
        "",
        "| scenario (shift) | budget | " + " | ".join(LABEL_RECIPES) + " | best |",
        "|---|---|" + "---|" * len(LABEL_RECIPES) + "---|",
    ]
    verdict = {}
    for name, sc in res["scenarios"].items():
        shift = (sc.get("auto") or {}).get("shift")
        wins = {"near": 0, "far": 0}
        for b in LABEL_BUDGETS:
            cells = {r: _cell(_labels(rows, name, b, r)) for r in LABEL_RECIPES}
            if all(v[0] is None for v in cells.values()):
                continue
            best = max((r for r in cells if cells[r][0] is not None), key=lambda r: cells[r][0])
            wins["near" if best == "near" else "far"] += 1
            items = {r: [x.get("labels") for x in _labels(rows, name, b, r)][:1] for r in LABEL_RECIPES}

            def show(r, cells=cells, items=items, best=best):
                m, s = cells[r]
                txt = _fmt(m, s) + (f" ({items[r][0]:,})" if items[r] and items[r][0] else "")
                return f"**{txt}**" if r == best else txt

            lines.append(
                f"| {name} ({shift}) | {b:,} B | " + " | ".join(show(r) for r in LABEL_RECIPES) + f" | {best} |"
            )
        verdict[name] = (shift, wins)
    lines += ["", "(In brackets: the labels the payload carries.) "]
    tuned = {n: v for n, v in verdict.items() if n not in HELD_OUT}
    near = [v[0] for v in tuned.values() if v[0] is not None and v[1]["near"] > v[1]["far"]]
    far = [v[0] for v in tuned.values() if v[0] is not None and v[1]["far"] > v[1]["near"]]
    if near and far:
        lo, hi = max(near), min(far)
        ok = lo < k["shift"] < hi
        lines[-1] += (
            f"Near labels win on the scenarios of shift ≤ {lo}, far recipes on those of shift ≥ {hi}: a threshold in "
            f"({lo}, {hi}) separates them; {k['shift']} {'lies inside' if ok else 'does not'}"
            f"{', and stays' if ok else ''}."
        )
    for n, (shift, wins) in verdict.items():
        if n in HELD_OUT and shift is not None:
            won = "near" if wins["near"] > wins["far"] else "far"
            called = "far" if shift > k["shift"] else "near"
            lines[-1] += (
                f" On the held-out `{n}` (shift {shift}, no constant set on it) the rule calls the pool {called}; "
                f"{won} labels win at {max(wins.values())} of {sum(wins.values())} budgets"
                + (": the rule's call is right there." if won == called else ": the rule's call is wrong there.")
            )
    lines[-1] += _soft_min(rows, res, k["soft_min_per_class"]) + _one_se(rows, res)
    lines += ["", ""]
    # hybrids
    hyb = [r for r in rows if r["experiment"] == "hybrid"]
    if hyb:
        lines += [
            f"**`HYBRID_LABELS`** (far: `{k['hybrid_labels']['far']}`, near: `{k['hybrid_labels']['near']}`): the "
            "labels beside a hybrid's distilled exemplars.",
            "",
            "| scenario | budget | share + labels | validation | labels | exemplars |",
            "|---|---|---|---|---|---|",
        ]
        seen = []
        for r in hyb:
            key = (r["scenario"], r["budget"], r["variant"])
            if key in seen:
                continue
            seen.append(key)
            grp = [x for x in hyb if (x["scenario"], x["budget"], x["variant"]) == key]
            lines.append(
                f"| {key[0]} | {key[1]:,} B | {key[2]} | {_fmt(*_cell(grp))} | {grp[0].get('labels') or 0:,} | "
                f"{grp[0].get('exemplars') or 0} |"
            )
        lines += ["", _hybrid_verdict(hyb, res)]
        lines += ["", ""]
    rep = [r for r in rows if r["experiment"] == "repeat"]
    if rep:
        lines += _repeat_table(rep, k.get("exemplar_share"))
    ex = [r for r in rows if r["experiment"] == "exemplars"]
    if ex:
        lines += [
            f"**`PROXY_TOLERANCE` = {k['proxy_tolerance']} and `HALF_RES_FROM` = {k['half_res_from']}**: exemplars "
            "only (the target's own images), the codec picked by the 1-NN proxy rule under each setting.",
            "",
            "| scenario | budget | half-res from | " + " | ".join(f"tolerance {t}" for t in TOLERANCES) + " |",
            "|---|---|---|" + "---|" * len(TOLERANCES),
        ]
        for name in res["scenarios"]:
            for b in EXEMPLAR_BUDGETS:
                for hf in HALF_RES:
                    cells = []
                    for t in TOLERANCES:
                        grp = [
                            x
                            for x in ex
                            if x["scenario"] == name
                            and x["budget"] == b
                            and x["half_res_from"] == hf
                            and x["tolerance"] == t
                        ]
                        if not grp:
                            cells.append("—")
                            continue
                        m, s = _cell(grp)
                        g = grp[0]
                        half = ", half" if g.get("scale") == 2 else ""
                        cells.append(f"{_fmt(m, s)} ({g.get('codec')} q{g.get('quality')}{half}, {g.get('exemplars')})")
                    if any(c != "—" for c in cells):
                        lines.append(f"| {name} | {b:,} B | {hf} px | " + " | ".join(cells) + " |")
        lines += ["", "(In brackets: codec, quality, resolution, images.) " + _exemplar_verdict(ex, k)]
    return "\n".join(lines).rstrip() + "\n"


def splice(doc: str, text: str) -> str:
    """``doc`` with its choices block replaced by ``text``."""
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"no {BEGIN} … {END} block")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + BEGIN + "\n" + text + END + tail


def write_doc(doc: Path, text: str) -> None:
    doc.write_text(splice(doc.read_text(), text))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenarios", nargs="+", default=["fashion", "digits"], help="clipart: reported as held out")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--only", nargs="+", choices=["labels", "hybrid", "repeat", "exemplars"])
    ap.add_argument("--json", default="out/bench/choices.json")
    ap.add_argument("--merge", nargs="+", help="join JSON files of runs made apart (rows appended in order)")
    ap.add_argument("--render", help="render a JSON report instead of running")
    ap.add_argument("--doc", help="rewrite the choices block of this Markdown file")
    a = ap.parse_args()
    if a.merge:
        parts = [json.loads(Path(p).read_text()) for p in a.merge]
        res = parts[0]
        for p in parts[1:]:
            shared = res["constants"].keys() & p["constants"].keys()
            if any(p["constants"][c] != res["constants"][c] for c in shared) or p["protocol"] != res["protocol"]:
                raise SystemExit("the runs differ in their constants or protocol: not merged")
            # a run of one experiment records the constant it measures; the others' runs predate it
            res["constants"] = {**res["constants"], **p["constants"]}
            for name, sc in p["scenarios"].items():
                res["scenarios"].setdefault(name, {}).update({k: v for k, v in sc.items() if v is not None})
            res["rows"] += p["rows"]
            res["seconds"] = round(res["seconds"] + p["seconds"], 1)
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")
    elif a.render:
        res = json.loads(Path(a.render).read_text())
    else:
        res = run(tuple(a.scenarios), a.seeds, only=set(a.only) if a.only else None)
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")
    text = render(res)
    if a.doc:
        write_doc(Path(a.doc), text)
    else:
        print(text)


if __name__ == "__main__":
    main()
