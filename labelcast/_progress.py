"""Progress bars for long work (on stderr; silent when stderr is not a terminal or LABELCAST_PROGRESS=0).

``bar`` yields a :class:`Tick`: loops call ``tick(n)`` per step. Training loops also call
``tick.start(steps, batch)`` once they know their schedule (the bar then counts images, so it shows
images per second and the time left) and ``tick.info(epoch=…, loss=…)`` now and then. A plain
function works as a progress callback too: loops check for ``start``/``info`` before calling them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


class Tick:
    """The callable a loop reports its steps to, with its schedule and figures beside the bar."""

    def __init__(self, t) -> None:
        self._t = t
        self._scale = 1

    def __call__(self, n: int = 1) -> None:
        self._t.update(n * self._scale)

    def start(self, steps: int, batch: int = 1) -> None:
        """The loop's length: ``steps`` of ``batch`` images each (the bar counts images from here on)."""
        self._scale = max(1, int(batch))
        self._t.unit = "img" if self._scale > 1 else self._t.unit
        self._t.reset(total=steps * self._scale)

    def info(self, **fields: object) -> None:
        self._t.set_postfix({k: (round(v, 4) if isinstance(v, float) else v) for k, v in fields.items()}, refresh=False)


@contextlib.contextmanager
def bar(total: int | None, desc: str, unit: str = "it") -> Iterator[Tick]:
    from tqdm import tqdm

    disable = None if os.environ.get("LABELCAST_PROGRESS") != "0" else True
    with tqdm(total=total, desc=desc, unit=unit, disable=disable, leave=False, dynamic_ncols=True) as t:
        yield Tick(t)
