"""The errors the device side raises, in the one tree (:class:`labelcast.codec.errors.LabelcastError`):
a model that is not what it was said to be, an export that fails its own check, a payload hint the
device does not allow, a slot operation that is impossible. The codec's own (decode, trust, storage …)
stay in ``labelcast.codec.errors``; each layer keeps the errors it raises."""

from __future__ import annotations

from ..codec.errors import LabelcastError

__all__ = ["ModelError", "ExportError", "HintError", "SlotError"]


class ModelError(LabelcastError):
    """A model does not match what labelcast was told about it (inputs, outputs, shape, layout)."""

    exit_code = 20


class ExportError(LabelcastError):
    """A trained model could not be exported or did not match itself after export."""

    exit_code = 17


class HintError(LabelcastError):
    """A payload's training hint asks for something the device does not allow (a type, a range, code)."""

    exit_code = 22


class SlotError(LabelcastError):
    """A slot operation is impossible (no such model, nothing to roll back to)."""

    exit_code = 13
