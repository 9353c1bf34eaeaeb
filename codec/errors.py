"""The one error tree of labelcast.

Every malformed or untrusted input ends in a subclass of :class:`LabelcastError`
with a message a field operator can act on. Foreign exceptions are wrapped once,
at the boundary (``raise DecodeError(...) from e``). Bad arguments to the Python
API are plain :class:`ValueError`.

Each class carries ``exit_code``, the CLI's exit status for that class of failure.
"""

from __future__ import annotations

__all__ = [
    "LabelcastError",
    "DecodeError",
    "LimitError",
    "SignatureError",
    "UnknownKeyError",
    "KeyFileError",
    "ReplayError",
    "StaleError",
    "ExpiredError",
    "ReferenceMismatchError",
    "BudgetError",
    "FrameError",
    "IncompleteError",
    "StorageError",
]


class LabelcastError(Exception):
    """Base of every error labelcast raises on bad input or a failed check."""

    exit_code = 1


class DecodeError(LabelcastError):
    """The bytes are not a well-formed labelcast payload, frame or manifest."""

    exit_code = 3


class LimitError(DecodeError):
    """A declared length or count exceeds the format's limits (refused before allocating)."""


class SignatureError(LabelcastError):
    """The payload's signature does not verify with the trusted key and the local reference root."""

    exit_code = 4


class UnknownKeyError(SignatureError):
    """The payload names a key id that is not among the trusted keys."""


class KeyFileError(LabelcastError):
    """A key file is missing, malformed or has unsafe permissions."""

    exit_code = 10


class ReplayError(LabelcastError):
    """The payload's sequence number was already accepted (benign: nothing new to do)."""

    exit_code = 5


class StaleError(ReplayError):
    """The payload's sequence number is older than the last accepted one (rollback attempt)."""


class ExpiredError(LabelcastError):
    """The payload's expiry time has passed."""

    exit_code = 6


class ReferenceMismatchError(LabelcastError):
    """The local reference set differs from the one the sender used (item hash, root, manifest)."""

    exit_code = 7


class BudgetError(LabelcastError):
    """Nothing useful fits the byte or time budget."""

    exit_code = 8


class FrameError(DecodeError):
    """A frame is malformed or belongs to another payload."""

    exit_code = 9


class IncompleteError(LabelcastError):
    """Not enough frames arrived yet to rebuild the payload; ``needed`` says how many more."""

    exit_code = 11

    def __init__(self, message: str, needed: int = 0):
        super().__init__(message)
        self.needed = needed


class StorageError(LabelcastError):
    """Writing to disk failed (disk full, read-only, permissions); earlier state is intact."""

    exit_code = 12
