"""Progress bars for long work (on stderr; silent when stderr is not a terminal)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def bar(total: int | None, desc: str, unit: str = "it") -> Iterator[Callable[[int], None]]:
    from tqdm import tqdm

    disable = None if os.environ.get("LABELCAST_PROGRESS") != "0" else True
    with tqdm(total=total, desc=desc, unit=unit, disable=disable, leave=False, dynamic_ncols=True) as t:
        yield t.update
