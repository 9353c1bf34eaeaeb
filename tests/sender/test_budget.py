import hashlib

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from labelcast.codec.errors import BudgetError
from labelcast.codec.payload import build_payload
from labelcast.sender.budget import fit_budget, fit_payload, largest_fitting

KEY = Ed25519PrivateKey.from_private_bytes(bytes(32))
ROOT = hashlib.sha256(b"r").digest()
N = 50_000
ORDER = np.random.default_rng(0).permutation(N)
LABELS = np.random.default_rng(1).integers(0, 10, N)


def build(k):
    idx = ORDER[:k]
    return build_payload(idx, LABELS[idx], n_items=N, classes=10, root=ROOT, key=KEY, sequence=1, expires_at=2**40)


@pytest.mark.parametrize("budget,frame", [(1000, 270), (4096, 270), (8192, 51), (20_000, 1024)])
def test_fit_never_exceeds_budget_and_is_within_one_frame(budget, frame):
    fit = fit_budget(build, N, budget, frame, 25)
    assert fit.framed_bytes <= budget
    assert budget - fit.framed_bytes < frame  # spare whole frames become parity
    assert fit.parity >= 0.25 * (fit.frames - fit.parity)
    bigger = build(fit.k + 1)[0]
    from labelcast.sender.budget import framed_bytes

    assert framed_bytes(len(bigger), frame, 25)[1] > budget or fit.k == N


def test_budget_too_small_is_a_typed_error():
    with pytest.raises(BudgetError, match="Raise --budget"):
        fit_budget(build, N, 100, 270, 25)


@pytest.mark.parametrize("budget", [200, 1000, 9000])
def test_fit_payload_is_the_largest_k_whose_signed_payload_fits(budget):
    fit = fit_payload(build, N, budget)
    assert len(fit.payload) == fit.framed_bytes <= budget
    assert len(build(fit.k + 1)[0]) > budget
    with pytest.raises(BudgetError):
        fit_payload(build, N, 50)  # a signature alone is 64 bytes


def test_largest_fitting_bisects_a_monotone_predicate():
    for limit in (0, 1, 2, 37, 1000):
        assert largest_fitting(lambda k, lim=limit: k <= lim, 1000) == limit
