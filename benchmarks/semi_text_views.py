"""Which view of a text store carries the task for the semi round's label propagation (an offline probe).

    python benchmarks/semi_text_views.py [--work out/bench/text-semi] [--labelled 11000] [--pool 10000]

On the wordnet store that ``benchmarks/semi.py --scenarios text`` builds (its teacher's scores over the store in
``WORK/logits.npy``): a seeded random ``--labelled`` texts take the teacher's labels (a 4,050-B payload labels about
11,000), ``--pool`` others are the unlabelled pool, and labels propagate over each view's 10-nearest-neighbour graph
as the round does (``labelcast.receiver.semi``). Each view is scored by its agreement with the teacher on the pool,
beside the round-1 student's (the 4,050-B student the semi bench left, when there is one). Views: the texts' hashed
words (``SemiConfig(text_input=True)``) and latent semantic analysis fitted on the whole store (tf-idf, truncated
SVD: what a feature index built once per store on the ground would hold).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="out/bench/text-semi")
    ap.add_argument("--labelled", type=int, default=11_000)
    ap.add_argument("--pool", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    from labelcast import evaluate
    from labelcast.codec.manifest import ReferenceStore
    from labelcast.receiver import semi as S

    work = Path(a.work)
    store = ReferenceStore(work / "ref")
    texts = store.read(np.arange(store.n))
    teacher = np.load(work / "logits.npy", mmap_mode="r")
    tl = np.asarray(teacher).argmax(1)
    classes = teacher.shape[1]
    order = np.random.default_rng(a.seed).permutation(store.n)
    lab, pool = order[: a.labelled], order[a.labelled : a.labelled + a.pool]
    both = np.concatenate([lab, pool])
    seeds = np.zeros((len(both), classes))
    seeds[np.arange(len(lab)), tl[lab]] = 1.0

    def agreement(view: np.ndarray) -> float:
        idx, sim = S.knn_graph(np.ascontiguousarray(view, dtype=np.float32), 10)
        z = S.propagate(idx, sim, seeds, 0.99, 20, 3.0)[len(lab) :]
        return round(float((z.argmax(1) == tl[pool]).mean()), 4)

    rows = []
    t = time.time()
    rows.append(
        {
            "view": "hashed words, whitened PCA 128",
            "agrees with teacher": agreement(S.input_features(texts[both], None, 128)),
            "seconds": round(time.time() - t, 1),
        }
    )
    tfidf = TfidfVectorizer(sublinear_tf=True, min_df=2).fit_transform(list(texts))
    for dims in (128, 256):
        t = time.time()
        z = TruncatedSVD(dims, random_state=0).fit_transform(tfidf)
        z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-8)
        rows.append(
            {
                "view": f"LSA over the whole store, {dims} dims",
                "agrees with teacher": agreement(z[both]),
                "seconds": round(time.time() - t, 1),
            }
        )
    student = sorted(work.glob("semi-runs/4050-*/off*/student.onnx"))
    if student:
        acc = evaluate(student[0], texts[pool], tl[pool])["accuracy"]
        rows.append(
            {
                "view": f"round-1 student ({student[0].parent.parent.name})",
                "agrees with teacher": round(float(acc), 4),
                "seconds": "",
            }
        )
    table(rows, list(rows[0]), f"text store views: propagation from {a.labelled:,} teacher labels, pool {a.pool:,}")


if __name__ == "__main__":
    main()
