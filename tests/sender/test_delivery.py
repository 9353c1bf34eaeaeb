"""Parity from each link's delivery model (issue #25)."""

from __future__ import annotations

import numpy as np
import pytest

from labelcast.codec.errors import IncompleteError
from labelcast.codec.framing import Reassembler, layout_for, make_frames
from labelcast.profiles import LinkProfile, list_profiles, load_link
from labelcast.sender.delivery import DeliveryModel, parity_for, success_probability
from labelcast.sender.linksim import LinkSim, delivery_trials, simulate

ARQ = [n for n in list_profiles("links") if load_link(n).retransmits]
LOSSY = [n for n in list_profiles("links") if not load_link(n).retransmits]


def test_every_profile_says_how_it_delivers():
    assert set(ARQ) >= {"iridium-sbd-mt", "iridium-sbd-mo", "iridium-certus-100"}
    assert set(LOSSY) >= {"lora-eu868-dr0", "acoustic-80bps", "mars-relay-uhf"}
    for n in list_profiles("links"):
        assert load_link(n).source  # every figure keeps its source


@pytest.mark.parametrize("name", ARQ)
def test_parity_is_zero_on_links_that_retransmit(name):
    link = load_link(name)
    for nbytes in (100, 5000, 200_000):
        assert parity_for(nbytes, link.frame_bytes, DeliveryModel.of(link), 0.99999) == 0


@pytest.mark.parametrize("name", LOSSY)
def test_parity_is_monotone_in_the_delivery_target(name):
    link = load_link(name)
    m = DeliveryModel.of(link)
    got = [parity_for(6000, link.frame_bytes, m, p) for p in (0.5, 0.9, 0.99, 0.999, 0.9999)]
    assert got == sorted(got) and got[-1] > got[0]


def test_parity_is_monotone_in_the_loss_rate():
    got = [parity_for(6000, 64, DeliveryModel(False, loss), 0.999) for loss in (0.0, 0.02, 0.05, 0.1, 0.2, 0.3)]
    assert got == sorted(got) and got[0] == 0 and got[-1] > got[1]


@pytest.mark.parametrize(
    "model", [DeliveryModel(False, 0.1), DeliveryModel(False, 0.02, cut_rate=0.2, cut_max=0.3)], ids=["iid", "cut"]
)
def test_the_predicted_probability_matches_the_simulated_one(model):
    for parity in (2, 6, 12):
        lay = layout_for(3000, 100, parity=parity)
        p = success_probability(lay, model)
        sim = delivery_trials(lay, model, runs=20_000, seed=parity)["rate"]
        se = max(np.sqrt(p * (1 - p) / 20_000), 1e-4)
        assert abs(sim - p) < 4 * se, (parity, p, sim)


def test_the_chosen_parity_meets_the_target_and_one_less_does_not():
    link = load_link("lora-eu868-dr0")
    m = DeliveryModel.of(link)
    par = parity_for(8000, link.frame_bytes, m, 0.999)
    assert success_probability(layout_for(8000, link.frame_bytes, parity=par), m) >= 0.999
    assert success_probability(layout_for(8000, link.frame_bytes, parity=par - 1), m) < 0.999


def test_an_arq_link_with_zero_parity_rejects_a_corrupted_frame_and_waits_for_its_retransmission():
    payload = np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    frames = make_frames(payload, 270, parity=0)
    arrived = simulate(frames, LinkSim(arq=True, loss=0.3, bit_error_frames=1.0, reorder=False, seed=1))
    r = Reassembler()
    for f in arrived[:2]:  # the corrupted copy of frame 0, then its clean retransmission
        r.add(f)
    assert r.dropped == 1
    with pytest.raises(IncompleteError) as e:
        r.payload()
    assert e.value.needed == len(frames) - 1
    for f in arrived[2:]:
        r.add(f)
    assert r.payload() == payload and r.dropped == len(frames)


def test_a_custom_profile_with_the_retired_fixed_parity_key_is_told_what_replaced_it(tmp_path):
    from labelcast.profiles import ProfileError

    p = tmp_path / "old.toml"
    p.write_text('base = "lora-eu868-dr0"\nfec_overhead_percent = 34\n')
    with pytest.raises(ProfileError, match="send --delivery"):
        load_link(str(p))
    assert LinkProfile("x").delivery == "lossy"
