"""The distilled-images baseline: DM with DSA, the product's own (``labelcast.sender.distill``), which
the planner also uses for its distilled exemplars."""

from __future__ import annotations

from labelcast.sender.distill import DSA_OPS, distill_dm, dsa

__all__ = ["distill_dm", "dsa", "DSA_OPS"]
