"""Incremental payloads: a campaign of updates, sending only the difference (issue #21).

    python benchmarks/incremental.py [--scenario fashion] [--json docs/results/incremental.json]
    python benchmarks/incremental.py --render docs/results/incremental.json   # only rewrite docs/results.md's table

Round 0 sends a full payload at 4 KiB (framed, Iridium SBD MT) from a teacher that knows all classes
but the last. Then three rounds, each changing about 10 % of the device's labelled set:

1. **more items**: the same teacher, ~10 % more items (random-keyed: the index section codes counts only);
2. **a better teacher**: trained longer on more data — its labels for the held items are relabels;
3. **a new class**: a teacher that knows the last class too; items it now calls that class are
   relabelled, and ~10 % new items are added.

For each round: the delta's bytes against resending the full cumulative payload (goal ≤ 0.25×), and
on the device the delta's warm start (from the model trained on the parent set, a quarter of the
schedule) against training from scratch on the cumulative set (goal ≤ 0.3× the time, accuracy within
0.5 points), on the scenario's test split. Every payload goes through the real ``receive``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, md_grid, render_into, splice_block, table, write_json  # noqa: E402


def teacher(work: Path, name: str, x, y, names, epochs: int, seed: int):
    from labelcast.sender.teacher import Teacher, TeacherConfig, train_and_export

    path = work / f"{name}.onnx"
    if not path.exists():
        train_and_export(x, y, names, path, TeacherConfig(epochs=epochs, seed=seed))
    return Teacher(path)


def render(result: dict) -> str:
    """docs/results.md's campaign table from a JSON this wrote."""

    def num(key: str, fmt: str):
        return lambda r: None if r.get(key) is None else fmt.format(r[key])

    return md_grid(
        result["rows"],
        [
            ("round", "round"),
            ("items", "items"),
            ("added", "added"),
            ("relabelled", "relabelled"),
            ("changed", num("changed_pct", "{:.1f} %")),
            ("delta bytes", "bytes"),
            ("full payload of the same set", "full_bytes"),
            ("× full", num("x_full", "{:.3f}")),
            ("warm s", num("warm_s", "{:.1f}")),
            ("scratch s", num("scratch_s", "{:.1f}")),
            ("× time", num("x_time", "{:.3f}")),
            ("acc warm", num("acc_warm", "{:.4f}")),
            ("acc scratch", num("acc_scratch", "{:.4f}")),
            (
                "Δ points",
                lambda r: None if r.get("acc_diff_pts") is None else f"{r['acc_diff_pts']:+.2f}".replace("-", "−"),
            ),
        ],
    )


def splice(doc: str, text: str) -> str:
    return splice_block(doc, "incremental:table", text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="fashion", choices=["fashion", "digits"])
    ap.add_argument("--work", default="out/bench/incremental")
    ap.add_argument("--change", type=float, default=0.10, help="fraction of the set changed per round")
    ap.add_argument("--json", default=None)
    ap.add_argument("--render", default=None, help="a JSON this wrote: only rewrite --doc's table from it")
    ap.add_argument("--doc", default="docs/results.md")
    a = ap.parse_args()
    if a.render:
        render_into(a.doc, a.render, render, splice)
        return
    from labelcast.codec.keys import TrustSet, generate_keypair, load_private_key
    from labelcast.codec.manifest import ReferenceStore
    from labelcast.datasets.sources import load_labelled
    from labelcast.profiles import load_link
    from labelcast.receiver.receive import ReceiveConfig, receive
    from labelcast.receiver.serve import load_classifier
    from labelcast.sender.budget import link_budget
    from labelcast.sender.delta import delta_encoder, full_equivalent
    from labelcast.sender.reference import build_store
    from labelcast.sender.selection import SelectConfig, prefix_key
    from labelcast.sender.send import PayloadSpec, Recipe, encoder, fit_budget

    work = Path(a.work) / a.scenario
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "ref" / "manifest.lcm").exists():
        build_store(f"builtin:{a.scenario}", work / "ref")
    store = ReferenceStore(work / "ref")
    x, y, names = load_labelled(f"builtin:{a.scenario}:train")
    xt, yt, _ = load_labelled(f"builtin:{a.scenario}:test")
    last = len(names) - 1
    known = y != last
    # round 0/1: a teacher without the last class; round 2: a better one; round 3: all classes
    t_a = teacher(work, "teacher-a", x[known][: len(x) // 2], y[known][: len(x) // 2], names[:-1], 4, 0)
    t_b = teacher(work, "teacher-b", x[known], y[known], names[:-1], 12, 1)
    t_c = teacher(work, "teacher-c", x, y, names, 12, 2)
    if not (work / "keys" / "sender.key").exists():
        generate_keypair(work / "keys")
    key = load_private_key(work / "keys" / "sender.key")
    trust = TrustSet.from_files([work / "keys" / "sender.pub"])
    budget = link_budget(load_link("iridium-sbd-mt"), 4096)
    sel = SelectConfig("random-keyed")
    recipe = Recipe(sel)
    rows = []
    state, scratch_state = work / "state-chain", work / "state-scratch"
    import shutil

    shutil.rmtree(state, ignore_errors=True)
    shutil.rmtree(scratch_state, ignore_errors=True)
    spec0 = PayloadSpec(key, store.root, store.n, store.manifest.segments, 1, int(time.time()) + 86400)

    def device(data: bytes, out: str, st: Path) -> tuple[dict, float]:
        p = work / f"{out}.lcst"
        p.write_bytes(data)
        rep = receive(p, store, trust, work / out, ReceiveConfig(backbone="none"), state_dir=st)
        # a model that does not know a class yet gets every test item of that class wrong
        model = load_classifier(work / out / "student.onnx")
        known = model.classes or names
        pred = np.array(known)[model.predict(xt)]
        acc = round(float((pred == np.array(names)[yt]).mean()), 4)
        return rep, acc

    from labelcast.sender.send import Scored

    scored = Scored(store, t_a, t_a.logits(np.asarray(store.items)))
    fit = fit_budget(encoder(scored, recipe, spec0), store.n, budget)
    parent_bytes = len(fit.payload)
    rep, acc = device(fit.payload, "round0", state)
    from labelcast.codec.delta import LabelledSet

    order = np.argsort(fit.encoded.indices)
    parent = LabelledSet(store.n, scored.classes, fit.encoded.indices[order], fit.encoded.labels[order], names[:-1])
    rows.append(
        {
            "round": "0: full payload",
            "items": parent.k,
            "bytes": parent_bytes,
            "full_bytes": parent_bytes,
            "warm_s": rep["training"]["train_seconds"],
            "acc_warm": acc,
        }
    )
    for r, (what, t, extra) in enumerate(
        [("1: more items", t_a, a.change), ("2: a better teacher", t_b, 0.0), ("3: a new class", t_c, a.change)], 1
    ):
        scored = Scored(store, t, t.logits(np.asarray(store.items)))
        spec = spec0.with_(sequence=r + 1)
        build, _ = delta_encoder(scored, recipe, spec, parent, t.classes)
        enc = build(int(round(extra * parent.k)))
        result = enc.extra["result"]
        full = full_equivalent(result, spec, prefix_key(sel))
        rep_w, acc_w = device(enc.payload, f"round{r}-warm", state)
        full_payload, _ = __import__("labelcast.codec.payload", fromlist=["build_payload"]).build_payload(
            result.indices,
            result.labels,
            n_items=store.n,
            classes=result.classes,
            root=store.root,
            key=key,
            sequence=r + 1,
            expires_at=spec.expires_at,
            segments=store.manifest.segments,
            class_names=result.class_names,
            prefix_key=prefix_key(sel),
        )
        rep_s, acc_s = device(full_payload, f"round{r}-scratch", scratch_state / str(r))
        rows.append(
            {
                "round": what,
                **enc.extra["changes"],
                "items": result.k,
                "changed_pct": round(
                    100 * (enc.extra["changes"]["added"] + enc.extra["changes"]["relabelled"]) / parent.k, 1
                ),
                "bytes": len(enc.payload),
                "full_bytes": full,
                "x_full": round(len(enc.payload) / full, 3),
                "warm_s": rep_w["training"]["train_seconds"],
                "scratch_s": rep_s["training"]["train_seconds"],
                "x_time": round(rep_w["training"]["train_seconds"] / rep_s["training"]["train_seconds"], 3),
                "acc_warm": acc_w,
                "acc_scratch": acc_s,
                "acc_diff_pts": round(100 * (acc_w - acc_s), 2),
            }
        )
        parent = result
    cols = [
        "round",
        "items",
        "added",
        "relabelled",
        "changed_pct",
        "bytes",
        "full_bytes",
        "x_full",
        "warm_s",
        "scratch_s",
        "x_time",
        "acc_warm",
        "acc_scratch",
        "acc_diff_pts",
    ]
    table(rows, cols, f"{a.scenario}: a campaign of deltas (4 KiB first payload, Iridium SBD MT)")
    write_json(a.json, {"command": " ".join(sys.argv), "machine": machine(), "scenario": a.scenario, "rows": rows})


if __name__ == "__main__":
    main()
