"""Fit a selection to a link budget by search over k with the real encoder.

The cost of a selection is what actually goes on the link: the signed payload
cut into frames with the parity the link's delivery model needs
(:mod:`labelcast.sender.delivery`), ``frames × frame_bytes``. No formula: every
candidate k is encoded, signed and framed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..codec.errors import BudgetError
from ..codec.framing import FrameLayout, layout_for
from ..profiles import LinkProfile
from .delivery import DEFAULT_TARGET, DeliveryModel, parity_for, success_probability

__all__ = [
    "LinkSettings",
    "LinkBudget",
    "link_budget",
    "Encoded",
    "Fit",
    "fit_budget",
    "fit_payload",
    "largest_fitting",
]

DEFAULT_BUDGET = 8192  # bytes on the link when neither --budget nor --seconds is given


@dataclass(frozen=True)
class LinkBudget:
    """Bytes allowed on one link and how their parity is chosen.

    ``overhead`` (parity frames per 100 data frames) overrides the delivery target.
    """

    link: LinkProfile
    budget_bytes: int
    delivery: float = DEFAULT_TARGET
    overhead: int | None = None

    @property
    def frame_bytes(self) -> int:
        return self.link.frame_bytes

    @property
    def model(self) -> DeliveryModel:
        return DeliveryModel.of(self.link)

    @property
    def max_frames(self) -> int:
        return self.budget_bytes // self.frame_bytes

    def layout(self, length: int) -> FrameLayout:
        """The frames of a ``length``-byte payload with the parity this budget's rule requires."""
        if self.overhead is not None:
            return layout_for(length, self.frame_bytes, self.overhead)
        return layout_for(
            length, self.frame_bytes, parity=parity_for(length, self.frame_bytes, self.model, self.delivery)
        )

    def framed_bytes(self, length: int) -> int:
        return self.layout(length).total_frames * self.frame_bytes

    def final_layout(self, length: int) -> FrameLayout:
        """The required layout plus spare whole frames of the budget as extra parity, on links that lose
        frames (more loss tolerance, same data); an ARQ link gets no parity it cannot use, and ``overhead`` 0
        means none at all (a closed loop: the device reports what is missing and ``repair`` sends it)."""
        lay = self.layout(length)
        if (self.link.retransmits and self.overhead is None) or self.overhead == 0:
            return lay
        spare = max(0, self.max_frames - lay.total_frames)
        return layout_for(length, self.frame_bytes, parity=lay.parity + spare) if spare else lay

    def probability(self, lay: FrameLayout) -> float:
        return success_probability(lay, self.model)


@dataclass
class LinkSettings:
    """What ``send`` may put on the link: a profile and a budget in framed bytes, time, or a fixed fraction.

    Attributes:
        profile: link profile name or .toml path
        budget: bytes on the link (frames × frame size); None: 8 KiB
        seconds: or: time on the link, turned into a byte budget
        keep: fixed fraction of the reference set (overrides the budget)
        delivery: probability the payload rebuilds on a lossy link (parity follows)
        overhead: fixed parity frames per 100 data frames (overrides delivery)
    """

    profile: str = "iridium-sbd-mt"
    budget: int | None = None
    seconds: float | None = None
    keep: float | None = None
    delivery: float = DEFAULT_TARGET
    overhead: int | None = None

    def __post_init__(self) -> None:
        if self.keep is not None and not 0 < self.keep <= 1:
            raise ValueError(f"keep must be a fraction in (0, 1], not {self.keep}")

    def resolve(self) -> LinkBudget:
        """The byte budget these settings give on their link profile."""
        from ..profiles import load_link

        return link_budget(
            load_link(self.profile), self.budget, self.seconds, delivery=self.delivery, overhead=self.overhead
        )


def link_budget(
    link: LinkProfile,
    budget: int | None = None,
    seconds: float | None = None,
    *,
    delivery: float = DEFAULT_TARGET,
    overhead: int | None = None,
) -> LinkBudget:
    """A byte budget from ``budget`` (bytes on the link) or ``seconds`` on it (expected, retries included)."""
    if budget is not None and budget < link.frame_bytes:
        raise BudgetError(
            f"a budget of {budget} B is less than one {link.frame_bytes}-byte frame of {link.name}; raise --budget"
        )
    if seconds is not None:
        per = link.seconds_for(link.transmissions_for(1))
        frames = int(seconds // per) if per > 0 else 1 << 16
        while frames > 0 and link.seconds_for(link.transmissions_for(frames)) > seconds:
            frames -= 1
        budget = min(frames, 1 << 16) * link.frame_bytes
        if budget == 0:
            raise BudgetError(f"not one frame of {link.name} fits in {seconds} s; raise --seconds")
    if not 0 < delivery < 1:
        raise ValueError("the delivery target must be a probability in (0, 1)")
    return LinkBudget(link, DEFAULT_BUDGET if budget is None else int(budget), delivery, overhead)


@dataclass
class Encoded:
    """One signed payload and exactly what it carries (what the device will decode)."""

    payload: bytes
    sections: dict[str, int]
    indices: np.ndarray
    labels: np.ndarray
    extra: dict = field(default_factory=dict)  # what else the build reports (e.g. refinement)


@dataclass
class Fit:
    k: int
    encoded: Encoded
    layout: FrameLayout | None  # None when fitted to payload bytes (fit_payload)
    framed_bytes: int
    tries: int

    @property
    def payload(self) -> bytes:
        return self.encoded.payload

    @property
    def frames(self) -> int:
        return self.layout.total_frames if self.layout is not None else 0


def largest_fitting(fits: Callable[[int], bool], k_max: int) -> int:
    """Largest k in [1, k_max] with ``fits(k)`` (0 if not even k = 1): bisection, cost grows with k."""
    if not fits(1):
        return 0
    lo, hi = 1, k_max
    if fits(hi):
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _cached(build: Callable[[int], Encoded]) -> tuple[Callable[[int], Encoded], dict[int, Encoded]]:
    cache: dict[int, Encoded] = {}

    def get(k: int) -> Encoded:
        if k not in cache:
            cache[k] = build(k)
        return cache[k]

    return get, cache


def fit_budget(build: Callable[[int], Encoded], k_max: int, budget: LinkBudget) -> Fit:
    """Largest k in [1, k_max] whose framed payload fits the budget; ``build(k)`` encodes the best k items."""
    get, cache = _cached(build)
    sizes: dict[int, int] = {}

    def framed(k: int) -> int:
        if k not in sizes:
            try:
                sizes[k] = budget.framed_bytes(len(get(k).payload))
            except ValueError:  # over the frame limit, or no parity reaches the target
                sizes[k] = math.inf  # type: ignore[assignment]
        return sizes[k]

    k = largest_fitting(lambda k: framed(k) <= budget.budget_bytes, k_max)
    if k == 0:
        need = framed(1)
        what = "more frames than a payload may have" if need == math.inf else f"{need} framed bytes"
        raise BudgetError(
            f"even one item needs {what} on {budget.link.name} "
            f"({'ARQ link: no parity' if budget.link.retransmits else f'delivery target {budget.delivery}'}); "
            f"the budget is {budget.budget_bytes}. Raise --budget or pick a link with larger frames."
        )
    enc = get(k)
    lay = budget.final_layout(len(enc.payload))
    return Fit(k, enc, lay, lay.total_frames * budget.frame_bytes, len(cache))


def fit_payload(build: Callable[[int], Encoded], k_max: int, max_bytes: int) -> Fit:
    """Largest k whose signed payload itself (before framing) is at most ``max_bytes``."""
    get, cache = _cached(build)
    k = largest_fitting(lambda k: len(get(k).payload) <= max_bytes, k_max)
    if k == 0:
        raise BudgetError(f"even one item needs a {len(get(1).payload)}-byte payload; the budget is {max_bytes}")
    enc = get(k)
    return Fit(k, enc, None, len(enc.payload), len(cache))
