"""Scale benchmark: the sender's pipeline at ImageNet-21K size (N = 14,197,122 in 21,841 groups).

    python benchmarks/scale.py [--items 14197122] [--ray-items 1000000] [--json out/bench/scale.json]

Tiny items (4×4 grey) and a tiny teacher keep it on one 2-core machine; the point
is that no stage holds O(N) bytes per item in RAM or does quadratic work.
Stages run in one subprocess that reports its peak RSS after each stage:
synthetic store + manifest build, scoring (local engine), selection
(random with class quota, 1%), encode, decode, selective verify of the k items.
Then local vs. Ray Data (local cluster, 2 workers) scoring on the same store.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import table, write_json  # noqa: E402

CHILD = r"""
import hashlib, json, resource, sys, time
import numpy as np
from pathlib import Path
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from labelcast.codec.manifest import ReferenceStore
from labelcast.codec.payload import build_payload, open_payload
from labelcast.codec.keys import TrustSet, key_id
from labelcast.codec.preprocess import Preprocess
from labelcast.sender.synth import synth_store
from labelcast.sender.teacher import TeacherConfig, train_and_export
from labelcast.sender.scoring import score_store
from labelcast.sender.teacher import Teacher
from labelcast.sender.selection import SelectConfig, pseudo_labels, select

work, n, classes = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rows = []
def stage(name, t, **kw):
    rows.append({"stage": name, "seconds": round(time.time() - t, 2),
                 "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), **kw})
    print(json.dumps(rows[-1]), flush=True)

t = time.time(); info = synth_store(work / "ref", n=n, groups=21841 if n > 1e6 else max(10, n // 650), size=4)
stage("synthetic store + manifest build", t, items=n)
t = time.time(); store = ReferenceStore(work / "ref")
stage("open store, check manifest and root", t)
x = store.read_range(0, 20000); y = (x.reshape(len(x), -1).mean(1) * classes // 256).astype(np.int64)
cfg = TeacherConfig(width=4, epochs=1, preprocess=Preprocess(size=4))
train_and_export(x, y, [str(i) for i in range(classes)], work / "t.onnx", cfg)
t = time.time(); logits = score_store(Teacher(work / "t.onnx"), store, work / "scores", batch=8192)
stage("score (local engine, ONNX Runtime)", t, items_per_s=round(n / (time.time() - t)))
t = time.time(); k = n // 100
idx = select(logits, k, SelectConfig("random", quota=True)); lab = pseudo_labels(logits)[idx]
stage("select (random + class quota, 1%)", t, k=int(idx.size))
key = Ed25519PrivateKey.from_private_bytes(bytes(32))
t = time.time(); data, sec = build_payload(idx, lab, n_items=n, classes=classes, root=store.root, key=key, sequence=1,
                                            expires_at=2**33, segments=store.manifest.segments)
stage("encode + sign", t, payload_bytes=len(data))
t = time.time(); p = open_payload(data, TrustSet({key_id(key.public_key()): key.public_key()}), store.root,
                                  n_items=n, segments=store.manifest.segments, now=0)
assert np.array_equal(p.indices, np.sort(idx))
stage("verify + decode", t)
t = time.time(); store.require_items(p.indices)
stage("selective verify of the k items", t, k=int(p.indices.size))
print("ROWS " + json.dumps(rows))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=14_197_122)
    ap.add_argument("--classes", type=int, default=32)
    ap.add_argument("--ray-items", type=int, default=1_000_000)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    out = {}
    with tempfile.TemporaryDirectory(dir="out" if Path("out").exists() else None) as d:
        p = subprocess.run(
            [sys.executable, "-c", CHILD, d, str(a.items), str(a.classes)], capture_output=True, text=True
        )
        if p.returncode:
            print(p.stdout, p.stderr[-3000:])
            raise SystemExit(1)
        rows = json.loads(next(line for line in p.stdout.splitlines() if line.startswith("ROWS "))[5:])
        table(
            rows,
            ["stage", "seconds", "peak_rss_mb", "items", "items_per_s", "k", "payload_bytes"],
            f"pipeline at N = {a.items:,} (peak RSS of the process so far, after each stage)",
        )
        out["pipeline"] = rows
    from labelcast.codec.manifest import ReferenceStore
    from labelcast.codec.preprocess import Preprocess
    from labelcast.sender.engines import score
    from labelcast.sender.synth import synth_store
    from labelcast.sender.teacher import TeacherConfig, train_and_export

    with tempfile.TemporaryDirectory(dir="out" if Path("out").exists() else None) as d:
        d = Path(d)
        synth_store(d / "ref", n=a.ray_items, groups=max(10, a.ray_items // 650), size=8)
        store = ReferenceStore(d / "ref")
        x = store.read_range(0, 5000)
        y = (x.reshape(len(x), -1).mean(1) * 10 // 256).astype("int64")
        train_and_export(
            x,
            y,
            [str(i) for i in range(10)],
            d / "t.onnx",
            TeacherConfig(width=8, epochs=1, preprocess=Preprocess(size=8)),
        )
        import time

        import ray

        t0 = time.time()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        startup = time.time() - t0
        res = []
        for engine in ("local", "ray"):
            _, secs = score(engine, d / "t.onnx", store, d / f"s-{engine}", batch=4096, workers=2, shard=1 << 17)
            res.append(
                {
                    "engine": engine,
                    "items": store.n,
                    "seconds": round(secs, 2),
                    "items_per_s": round(store.n / secs),
                    "cluster_start_s": round(startup, 1) if engine == "ray" else None,
                }
            )
        ray.shutdown()
        for r in res:
            r["x_local"] = round(r["items_per_s"] / res[0]["items_per_s"], 3)
        table(res, list(res[0]), "scoring: local engine vs. Ray Data (local cluster, 2 workers, same store and model)")
        out["engines"] = res
    write_json(a.json, out)


if __name__ == "__main__":
    main()
