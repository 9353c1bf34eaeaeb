"""What a payload's training hints may ask of the device, checked before anything uses them.

A hint is signed by a trusted sender, yet it is still input: it chooses only among the device's own
registered students (never a ``pkg.module:factory`` — which code runs on the device is its operator's
choice, ``receive --student``), and every value must have its type and lie in its range. Anything else
is a :class:`HintError`, refused for good by the watcher (the same payload fails the same way again).

    student.arch           a registered image or text student (``profiles show DEVICE --students``)
    student.train_samples  int, 1 … 10^8
    student.shift          int, 0 … 16 (pixels)
    student.flip           bool
    student.mosaic         number, 0 … 1
    student.lr             number, (0, 1]
    student.augment        crop | roll | none
    student.finetune       all | head | last:N
    val_every              int, 0 or 2 … 2^31
    semi                   bool: run the semi-supervised round under ``--semi auto`` (receiver/semi.py)
    announce_key           64 hex digits: a new sender key (raw Ed25519), announced under a trusted one
                           (the device keeps it in STATE/trust/ and trusts it from then on; docs/security.md)
"""

from __future__ import annotations

import re

from .errors import HintError

__all__ = ["HintError", "student_hints", "check_hints"]


def _num(lo: float, hi: float, ints: bool = False, lo_open: bool = False):
    def check(v: object) -> bool:
        if isinstance(v, bool) or not isinstance(v, int if ints else int | float):
            return False
        return (lo < v if lo_open else lo <= v) and v <= hi

    return check


def _registered(v: object) -> bool:
    from .students import ARCHS
    from .text_models import TEXT_ARCHS

    return isinstance(v, str) and (v in ARCHS or v in TEXT_ARCHS)


STUDENT_HINTS = {
    "arch": (_registered, "a registered student (not a pkg.module:factory: that is the device operator's choice)"),
    "train_samples": (_num(1, 10**8, ints=True), "an integer 1 … 100,000,000"),
    "shift": (_num(0, 16, ints=True), "an integer 0 … 16"),
    "flip": (lambda v: isinstance(v, bool), "true or false"),
    "mosaic": (_num(0, 1), "a number 0 … 1"),
    "lr": (_num(0, 1, lo_open=True), "a number in (0, 1]"),
    "augment": (lambda v: v in ("crop", "roll", "none"), "crop, roll or none"),
    "finetune": (lambda v: isinstance(v, str) and bool(re.fullmatch(r"all|head|last:\d{1,3}", v)), "all|head|last:N"),
}


def student_hints(hints: dict) -> dict:
    """The payload's student hints, each checked; unknown names are ignored (a newer sender's)."""
    raw = hints.get("student") or {}
    if not isinstance(raw, dict):
        raise HintError(f"the payload's student hint is a {type(raw).__name__}, not an object; refused")
    out = {}
    for name, value in raw.items():
        rule = STUDENT_HINTS.get(name)
        if rule is None:
            continue
        ok, want = rule
        if not ok(value):
            raise HintError(f"the payload's hint student.{name} = {value!r} is not {want}; refused")
        out[name] = value
    return out


def check_hints(hints: dict) -> None:
    """Every hint the device reads, checked right after decoding, before anything uses them."""
    if not isinstance(hints, dict):
        raise HintError("the payload's hints are not an object; refused")
    student_hints(hints)
    k = hints.get("announce_key")
    if k is not None and not (isinstance(k, str) and re.fullmatch(r"[0-9a-f]{64}", k)):
        raise HintError("the payload's hint announce_key is not a raw Ed25519 public key in 64 hex digits; refused")
    if "semi" in hints and not isinstance(hints["semi"], bool):
        raise HintError(f"the payload's hint semi = {hints['semi']!r} is not true or false; refused")
    v = hints.get("val_every", 0)
    if not _num(0, 2**31, ints=True)(v) or v == 1:
        raise HintError(f"the payload's hint val_every = {v!r} is not 0 or an integer ≥ 2; refused")
