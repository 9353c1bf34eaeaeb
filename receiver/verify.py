"""Check a source folder against a store's provenance: missing, altered, extra, unreadable files."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..codec.manifest import ReferenceStore, read_provenance

__all__ = ["check_source"]

_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".pgm", ".ppm"}


def check_source(store: ReferenceStore, source: str) -> list[str]:
    """Problems found comparing ``folder:PATH`` with the manifest's provenance, by path."""
    if not source.startswith("folder:"):
        raise ValueError("only folder: sources can be checked against provenance")
    root = Path(source.split(":", 1)[1])
    prov_file = store.path / "provenance.lcp"
    if not prov_file.exists():
        return [f"{store.path} has no provenance.lcp to check against"]
    prov = read_provenance(prov_file)
    known = {p: (i, h) for i, (p, h) in enumerate(prov)}
    problems = []
    on_disk = {f.relative_to(root).as_posix() for f in root.rglob("*") if f.is_file() and f.suffix.lower() in _SUFFIXES}
    for rel, (i, h) in known.items():
        f = root / rel
        if rel not in on_disk:
            problems.append(f"item {i} ({rel}): missing from the source")
            continue
        try:
            got = hashlib.sha256(f.read_bytes()).digest()
        except OSError as e:
            problems.append(f"item {i} ({rel}): unreadable ({e.strerror})")
            continue
        if got != h:
            problems.append(f"item {i} ({rel}): altered (source hash differs)")
    for rel in sorted(on_disk - set(known)):
        problems.append(f"extra file {rel}: not in the manifest")
    return problems
