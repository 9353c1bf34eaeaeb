"""Scale benchmark: the Ray engine against the local one, on one and two Ray nodes, and the whole sender
pipeline at ImageNet-21K size (N = 14,197,122 in 21,841 groups) with the Ray engine.

    python benchmarks/scale.py [--items 14197122] [--engine-items 1000000] [--size 16]
                               [--skip-pipeline] [--json docs/results/scale.json]
    python benchmarks/scale.py --render docs/results/scale.json   # only rewrite docs/scale.md's tables

Part 1 (engines, same store, same teacher, same run): items/s of the local engine (one process, ONNX
Runtime on both cores), Ray on one node (a ``ray start --head`` process with 2 CPUs, 2 actors) and Ray
on two nodes (a head and a worker started as separate ``ray start`` processes, 1 CPU and their own temp
folder each; the store at the same path for both). Ray timings count actor start-up and scoring, not
the cluster start (a real cluster is already up). Shards scored per node show where the work ran; the
payload built from each engine's scores must be byte-identical.

Part 2 (pipeline): a synthetic store of N RGB items (``--size``² × 3, on disk; the disk is checked
first) built in its own process, then one driver process runs scoring on the Ray engine (a 2-CPU
one-node cluster), selection (random with class quota, 1 %), encode + sign, framing, verify + decode and
the receiver's selective verify of the chosen items, reporting its own peak RSS after each stage; the
same at ``--engine-items`` shows how the driver's memory grows with N.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, md_grid, render_into, splice_blocks, table, write_json  # noqa: E402

BUILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[5])
from synth import synth_store
t = time.time()
synth_store(sys.argv[1], n=int(sys.argv[2]), groups=int(sys.argv[3]), size=int(sys.argv[4]), channels=3)
print(json.dumps({"seconds": round(time.time() - t, 1)}))
"""

DRIVER = r"""
import json, resource, sys, time
import numpy as np
from pathlib import Path
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from labelcast.codec.framing import make_frames
from labelcast.codec.keys import TrustSet, key_id
from labelcast.codec.manifest import ReferenceStore
from labelcast.codec.payload import build_payload, open_payload
from labelcast.sender.engines import RayRun, score
from labelcast.sender.selection import SelectConfig, pseudo_labels, select

ref, teacher, out, address = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4]
rows = []
def stage(name, t, **kw):
    rows.append({"stage": name, "seconds": round(time.time() - t, 2),
                 "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), **kw})
    print(json.dumps(rows[-1]), flush=True)

t = time.time(); store = ReferenceStore(ref); n = store.n
stage("open store, check manifest and root", t, items=n)
t = time.time(); run = RayRun()
logits, _ = score("ray", teacher, store, out / "scores", batch=4096, address=address, run=run)
stage("score (Ray engine)", t, items_per_s=round(n / (time.time() - t)), nodes=len(run["nodes"]))
t = time.time(); classes = logits.shape[1]; k = n // 100
idx = select(logits, k, SelectConfig("random", quota=True)); lab = pseudo_labels(logits)[idx]
stage("select (random + class quota, 1%)", t, k=int(idx.size))
key = Ed25519PrivateKey.from_private_bytes(bytes(32))
t = time.time(); data, _ = build_payload(idx, lab, n_items=n, classes=classes, root=store.root, key=key, sequence=1,
                                         expires_at=2**33, segments=store.manifest.segments)
stage("encode + sign", t, payload_bytes=len(data))
t = time.time(); frames = make_frames(data, 1024)
stage("frame (1 KiB frames, parity)", t, frames=len(frames))
t = time.time(); p = open_payload(data, TrustSet({key_id(key.public_key()): key.public_key()}), store.root,
                                  n_items=n, segments=store.manifest.segments, now=0)
assert np.array_equal(p.indices, np.sort(idx))
stage("verify + decode", t)
t = time.time(); store.require_items(p.indices)
stage("selective verify of the k items", t, k=int(p.indices.size))
print("ROWS " + json.dumps(rows))
"""


def teacher_for(store, path: Path, size: int) -> None:
    from labelcast.codec.preprocess import Preprocess
    from labelcast.sender.teacher import TeacherConfig, train_and_export

    x = store.read_range(0, min(store.n, 20000))
    m = x.reshape(len(x), -1).mean(1)
    y = np.searchsorted(np.quantile(m, np.linspace(0, 1, 11)[1:-1]), m).astype(np.int64)  # 10 brightness bands
    cfg = TeacherConfig(width=8, epochs=1, preprocess=Preprocess(size=size, channels=3))
    train_and_export(x, y, [f"band{i}" for i in range(10)], path, cfg)


def build(path: Path, n: int, size: int) -> float:
    need = n * (size * size * 3 + 32 + 8) * 1.1
    free = shutil.disk_usage(path.parent).free
    if need > free:
        raise SystemExit(f"a store of {n:,} items needs ~{need / 1e9:.1f} GB; {free / 1e9:.1f} GB free")
    groups = 21841 if n > 1_000_000 else max(10, n // 650)
    here = str(Path(__file__).parent)
    p = subprocess.run(
        [sys.executable, "-c", BUILD, str(path), str(n), str(groups), str(size), here], capture_output=True
    )
    if p.returncode:
        raise SystemExit(p.stderr.decode()[-3000:])
    return json.loads(p.stdout.decode().splitlines()[-1])["seconds"]


def payload_of(logits, store, key, out: Path) -> bytes:
    from labelcast.sender.selection import SelectConfig
    from labelcast.sender.send import LinkSettings, Recipe, SendConfig, send

    cfg = SendConfig(LinkSettings(budget=4096), Recipe(SelectConfig("margin", quota=True)), sequence=7, force=True)
    send(out.parent / "t.onnx", store, key, out, cfg, logits=np.asarray(logits), now=1_800_000_000)
    return (out / "payload.lcst").read_bytes()


def engines(d: Path, n: int, size: int) -> list[dict]:
    from raynodes import LocalRayCluster

    from labelcast.codec.keys import generate_keypair
    from labelcast.codec.manifest import ReferenceStore
    from labelcast.sender.engines import RayRun, score

    build(d / "ref", n, size)
    store = ReferenceStore(d / "ref")
    teacher_for(store, d / "t.onnx", size)
    key, _ = generate_keypair(d / "keys")
    rows, payloads = [], []
    for name, nodes, cpus in (("local", 0, 0), ("ray, 1 node × 2 CPUs", 1, 2), ("ray, 2 nodes × 1 CPU", 2, 1)):
        run = RayRun()
        t0 = time.time()
        if nodes:
            with LocalRayCluster(nodes, cpus) as c:
                up = time.time() - t0
                logits, secs = score(
                    "ray", d / "t.onnx", store, d / f"s{nodes}", batch=4096, address=c.address, run=run
                )
        else:
            up = None
            logits, secs = score("local", d / "t.onnx", store, d / "s0", batch=4096)
        payloads.append(payload_of(logits, store, key, d / f"out{nodes}"))
        per_node = sorted(run.get("nodes", {}).values(), reverse=True)
        rows.append({
            "engine": name, "items": n, "seconds": round(secs, 2), "items_per_s": round(n / secs),
            "cluster_start_s": None if up is None else round(up, 1), "actors": run.get("workers"),
            "shards_per_node": "/".join(map(str, per_node)) or None,
            "payload_same": payloads[-1] == payloads[0],
        })  # fmt: skip
        print(rows[-1], flush=True)
    for r in rows:
        r["x_local"] = round(r["items_per_s"] / rows[0]["items_per_s"], 3)
    if len(rows) == 3:
        rows[2]["x_one_node"] = round(rows[2]["items_per_s"] / rows[1]["items_per_s"], 3)
    return rows


def pipeline(d: Path, n: int, size: int) -> list[dict]:
    from raynodes import LocalRayCluster

    from labelcast.codec.manifest import ReferenceStore

    secs = build(d / "ref", n, size)
    teacher_for(ReferenceStore(d / "ref"), d / "t.onnx", size)
    with LocalRayCluster(1, 2) as c:
        p = subprocess.run(
            [sys.executable, "-c", DRIVER, str(d / "ref"), str(d / "t.onnx"), str(d), c.address],
            capture_output=True,
            text=True,
        )
    if p.returncode:
        raise SystemExit(p.stdout[-2000:] + p.stderr[-3000:])
    rows = json.loads(next(line for line in p.stdout.splitlines() if line.startswith("ROWS "))[5:])
    return [{"stage": "build synthetic store (own process)", "seconds": secs, "items": n}, *rows]


ENGINE_NAMES = {
    "local": "local (one process, ORT on both cores)",
    "ray, 1 node × 2 CPUs": "Ray, 1 node × 2 CPUs",
    "ray, 2 nodes × 1 CPU": "Ray, 2 nodes × 1 CPU (two `ray start` processes)",
}


def _note(r: dict) -> str:
    if "items_per_s" in r:
        return f"{r['items_per_s']:,} items/s"
    if "k" in r and r["stage"].startswith("select "):
        return f"k = {r['k']:,}"
    if "payload_bytes" in r:
        return f"{r['payload_bytes']:,} B"
    if "frames" in r:
        return f"{r['frames']} frames"
    return ""


def _n(n: int) -> str:
    return f"{n / 1e6:.1f}M".replace(".0M", "M")


def render(result: dict) -> dict[str, str]:
    """docs/scale.md's two tables from a JSON this wrote: the engines, and the pipeline's stages at each N."""
    eng = md_grid(
        result["engines"],
        [
            ("engine", lambda r: ENGINE_NAMES.get(r["engine"], r["engine"])),
            ("seconds", lambda r: f"{r['seconds']:.2f}"),
            ("items/s", "items_per_s"),
            ("× local", lambda r: f"{r['x_local']:.3f}"),
            ("× one node", lambda r: f"{r['x_one_node']:.3f}" if "x_one_node" in r else None),
            ("cluster start", lambda r: None if r["cluster_start_s"] is None else f"{r['cluster_start_s']:.0f} s"),
            ("actors", "actors"),
            ("shards per node", lambda r: (r["shards_per_node"] or "").replace("/", " / ") or None),
            ("payload identical", lambda r: "yes" if r["payload_same"] else "**no**"),
        ],
    )
    runs = sorted((int(k.split("_")[1]), v) for k, v in result.items() if k.startswith("pipeline_"))
    stages = [r["stage"] for r in runs[-1][1]]
    head = ["stage"]
    for n, _ in runs:
        head += [f"{_n(n)}: seconds", f"{_n(n)}: driver peak RSS"]
    lines = ["| " + " | ".join([*head, ""]) + " |", "|" + "---|" * (len(head) + 1)]
    for st in stages:
        cells, note = [st.replace("selective verify of the k items", "selective verify of the k items (receiver)")], ""
        for _, rows in runs:
            r = next((x for x in rows if x["stage"] == st), {})
            rss = r.get("driver_peak_rss_mb")
            cells += [f"{r['seconds']:.2f}" if "seconds" in r else "", f"{rss:,} MB" if rss else ""]
            note = _note(r) if r else note
        lines.append("| " + " | ".join([*cells, note]) + " |")
    return {"scale:engines": eng, "scale:pipeline": "\n".join(lines)}


splice = splice_blocks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--render", default=None, help="a JSON this wrote: only rewrite --doc's tables from it")
    ap.add_argument("--doc", default="docs/scale.md")
    ap.add_argument("--items", type=int, default=14_197_122)
    ap.add_argument("--engine-items", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--skip-pipeline", action="store_true")
    ap.add_argument("--work", default="out" if Path("out").exists() else None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if a.render:
        render_into(a.doc, a.render, render, splice)
        return
    out = {}
    with tempfile.TemporaryDirectory(dir=a.work) as d:
        out["engines"] = engines(Path(d), a.engine_items, a.size)
    cols = ["engine", "items", "seconds", "items_per_s", "x_local", "x_one_node", "cluster_start_s", "actors"]
    table(out["engines"], [*cols, "shards_per_node", "payload_same"], "scoring engines, same store and teacher")
    if not a.skip_pipeline:
        cols = ["stage", "seconds", "driver_peak_rss_mb", "items", "items_per_s", "nodes", "k", "payload_bytes"]
        for n in dict.fromkeys([a.engine_items, a.items]):
            with tempfile.TemporaryDirectory(dir=a.work) as d:
                out[f"pipeline_{n}"] = pipeline(Path(d), n, a.size)
            table(out[f"pipeline_{n}"], [*cols, "frames"], f"pipeline at N = {n:,}, Ray engine ({a.size}²×3 items)")
    out["command"] = " ".join(sys.argv)
    out["machine"] = machine()
    write_json(a.json, out)


if __name__ == "__main__":
    main()
