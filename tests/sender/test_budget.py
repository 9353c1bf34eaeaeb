import hashlib

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from labelcast.codec.errors import BudgetError
from labelcast.codec.payload import build_payload
from labelcast.profiles import LinkProfile, load_link
from labelcast.sender.budget import Encoded, LinkBudget, fit_budget, fit_payload, largest_fitting
from labelcast.sender.delivery import DeliveryModel, success_probability

KEY = Ed25519PrivateKey.from_private_bytes(bytes(32))
ROOT = hashlib.sha256(b"r").digest()
N = 50_000
ORDER = np.random.default_rng(0).permutation(N)
LABELS = np.random.default_rng(1).integers(0, 10, N)


def build(k: int) -> Encoded:
    idx = ORDER[:k]
    p, sec = build_payload(idx, LABELS[idx], n_items=N, classes=10, root=ROOT, key=KEY, sequence=1, expires_at=2**40)
    return Encoded(p, sec, idx, LABELS[idx])


def lossy(frame: int) -> LinkProfile:
    return LinkProfile("test", frame_bytes=frame, delivery="lossy", loss_rate=0.1)


@pytest.mark.parametrize("budget,frame", [(1000, 270), (4096, 270), (8192, 51), (20_000, 1024)])
def test_fit_never_exceeds_budget_and_is_within_one_frame(budget, frame):
    b = LinkBudget(lossy(frame), budget, overhead=25)
    fit = fit_budget(build, N, b)
    assert fit.framed_bytes <= budget
    assert budget - fit.framed_bytes < frame  # spare whole frames become parity
    assert fit.layout.parity >= 0.25 * fit.layout.data_blocks
    assert b.framed_bytes(len(build(fit.k + 1).payload)) > budget or fit.k == N


@pytest.mark.parametrize("name", ["lora-eu868-dr0", "acoustic-80bps", "mars-relay-uhf", "lora-eu868-dr5"])
@pytest.mark.parametrize("budget", [2048, 8192])
def test_budget_search_never_exceeds_the_budget_with_the_parity_the_delivery_target_needs(name, budget):
    link = load_link(name)
    b = LinkBudget(link, budget, delivery=0.999)
    fit = fit_budget(build, N, b)
    assert fit.framed_bytes <= budget
    assert success_probability(fit.layout, DeliveryModel.of(link)) >= 0.999
    assert b.framed_bytes(len(build(fit.k + 1).payload)) > budget


def test_arq_link_gets_no_parity_and_no_padding_frames():
    b = LinkBudget(load_link("iridium-sbd-mt"), 2700)
    fit = fit_budget(build, N, b)
    assert fit.layout.parity == 0 and fit.framed_bytes <= 2700
    assert fit.layout.total_frames == fit.layout.data_blocks


def test_budget_too_small_is_a_typed_error():
    with pytest.raises(BudgetError, match="Raise --budget"):
        fit_budget(build, N, LinkBudget(lossy(270), 100, overhead=25))


@pytest.mark.parametrize("budget", [200, 1000, 9000])
def test_fit_payload_is_the_largest_k_whose_signed_payload_fits(budget):
    fit = fit_payload(build, N, budget)
    assert len(fit.payload) == fit.framed_bytes <= budget
    assert len(build(fit.k + 1).payload) > budget
    with pytest.raises(BudgetError):
        fit_payload(build, N, 50)  # a signature alone is 64 bytes


def test_largest_fitting_bisects_a_monotone_predicate():
    for limit in (0, 1, 2, 37, 1000):
        assert largest_fitting(lambda k, lim=limit: k <= lim, 1000) == limit
