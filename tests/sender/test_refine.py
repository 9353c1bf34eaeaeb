import numpy as np

from labelcast.sender.refine import refine
from labelcast.sender.selection import SelectConfig, pseudo_labels, rank_items, select


def test_refinement_replaces_contradicted_items_and_never_selects_twice():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(2000, 5)) * 3
    det = z.copy()
    det[:1000] = -det[:1000]  # the detector contradicts the teacher on the first half
    pl = pseudo_labels(z)
    cfg = SelectConfig(strategy="random", quota=True, seed=1)
    order = rank_items(z, cfg)
    sel = select(z, 200, cfg, order)
    new, rep = refine(sel, pl, order, z, det)
    assert new.size == sel.size == np.unique(new).size
    assert rep["flagged"] > 50 and rep["replaced"] > 0
    # every replacement comes from the half the detector agrees with
    added = np.setdiff1d(new, sel)
    assert (added >= 1000).all()
    # class counts are kept
    assert np.array_equal(np.bincount(pl[new], minlength=5), np.bincount(pl[sel], minlength=5))
