"""Link planning: frames, parity, delivery probability and time on the link for a payload."""

from __future__ import annotations

from ..codec.framing import FrameLayout, layout_for
from ..profiles import LinkProfile
from .delivery import DEFAULT_TARGET, DeliveryModel, parity_for, success_probability

__all__ = ["link_plan"]

ALTERNATIVE_TARGETS = (0.9, 0.99, 0.999, 0.9999)


def _row(lay: FrameLayout, link: LinkProfile, model: DeliveryModel) -> dict:
    frames = lay.total_frames
    return {
        "frames": frames,
        "parity_frames": lay.parity,
        "framed_bytes": frames * link.frame_bytes,
        "success_probability": round(success_probability(lay, model), 6),
        "link_seconds": round(link.seconds_for(link.transmissions_for(frames)), 2),
    }


def link_plan(length: int, link: LinkProfile, overhead: int | None = None, delivery: float = DEFAULT_TARGET) -> dict:
    """How a ``length``-byte payload goes over ``link``: parity from the delivery target (or a fixed
    ``overhead`` per 100 data frames), the probability it rebuilds, time on the link (retries included on
    links that retransmit), and what other delivery targets would cost."""
    model = DeliveryModel.of(link)
    if overhead is not None:
        lay = layout_for(length, link.frame_bytes, overhead)
    else:
        lay = layout_for(length, link.frame_bytes, parity=parity_for(length, link.frame_bytes, model, delivery))
    alternatives = []
    if not link.retransmits:
        for target in ALTERNATIVE_TARGETS:
            try:
                par = parity_for(length, link.frame_bytes, model, target)
            except ValueError:
                continue
            alternatives.append(
                {"target": target, **_row(layout_for(length, link.frame_bytes, parity=par), link, model)}
            )
    frames = lay.total_frames
    return {
        "link": link.name,
        "delivery_model": "arq (retransmits: no parity)" if link.retransmits else "lossy",
        "loss_rate": link.loss_rate,
        "cut_rate": link.cut_rate,
        "payload_bytes": length,
        "data_frames": lay.data_blocks,
        "delivery_target": None if (overhead is not None or link.retransmits) else delivery,
        "overhead_percent": overhead,
        **_row(lay, link, model),
        "bytes_on_link": frames * (link.frame_bytes + link.frame_overhead_bytes),
        "expected_transmissions": round(link.transmissions_for(frames), 2),
        "passes": link.passes_for(frames),
        "alternatives": alternatives,
    }
