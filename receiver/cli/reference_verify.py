"""``labelcast reference verify``."""

from __future__ import annotations

import click

from ..._progress import bar
from ...cli import emit


@click.command()
@click.argument("refdir", type=click.Path(file_okay=False))
@click.option("--full", is_flag=True, help="Re-hash every stored item.")
@click.option("--items", default=None, help="Comma-separated item indices to re-hash (what receive does).")
@click.option("--source", default=None, help="Check a source (e.g. folder:PATH) against the manifest's provenance.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (includes the root).")
def verify(refdir: str, full: bool, items: str | None, source: str | None, as_json: bool) -> None:
    """Check a reference store: manifest integrity always; items with --full or --items."""
    import numpy as np

    from ...codec.errors import ReferenceMismatchError
    from ...codec.manifest import ReferenceStore
    from ..verify import check_source

    store = ReferenceStore(refdir)
    res: dict = {
        "reference": refdir,
        "items": store.n,
        "root": store.root.hex(),
        "manifest_sha256": store.manifest.sha256,
    }
    problems: list[str] = []
    if items:
        try:
            idx = np.array([int(v) for v in items.split(",") if v.strip()], dtype=np.int64)
        except ValueError:
            raise click.BadParameter("give comma-separated integers, e.g. 3,17,42", param_hint="--items") from None
        if idx.size and (idx.min() < 0 or idx.max() >= store.n):
            raise click.BadParameter(f"indices must be in 0..{store.n - 1}", param_hint="--items")
        problems += [str(p) for p in store.check_items(idx)]
        res["checked_items"] = int(idx.size)
    if full:
        with bar(store.n, "verify", "item") as tick:
            problems += [str(p) for p in store.check_items(None, progress=tick)]
        res["checked_items"] = store.n
    if source:
        problems += check_source(store, source)
    res["problems"] = problems
    res["ok"] = not problems
    emit(res, as_json, [f"root {res['root']}", *problems, "OK" if not problems else f"{len(problems)} problem(s)"])
    if problems:
        raise ReferenceMismatchError(f"{len(problems)} problem(s) in {refdir}: " + "; ".join(problems[:5]))
