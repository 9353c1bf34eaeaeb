"""The one error tree of labelcast.

Every malformed or untrusted input ends in a subclass of :class:`LabelcastError`
with a message a field operator can act on. Foreign exceptions are wrapped once,
at the boundary (``raise DecodeError(...) from e``). Bad arguments to the Python
API are plain :class:`ValueError`.

Each class carries ``exit_code``, the CLI's exit status for that class of failure.
"""

from __future__ import annotations

from ..errors import LabelcastError

__all__ = [
    "LabelcastError",
    "DecodeError",
    "LimitError",
    "FrameError",
    "TrustError",
    "SealError",
    "SignatureError",
    "UnknownKeyError",
    "RevokedKeyError",
    "ReplayError",
    "StaleError",
    "ExpiredError",
    "KeyFileError",
    "ReferenceMismatchError",
    "BudgetError",
    "IncompleteError",
    "StorageError",
    "ParentError",
    "MissingParentError",
    "LockedError",
    "SourceError",
    "FieldError",
]


class DecodeError(LabelcastError):
    """The bytes are not a well-formed labelcast payload, frame or manifest."""

    exit_code = 3


class LimitError(DecodeError):
    """A declared length or count exceeds the format's limits (refused before allocating)."""


class FrameError(DecodeError):
    """A frame is malformed or belongs to another payload."""

    exit_code = 9


class TrustError(LabelcastError):
    """A payload was refused by a trust check. Its children are siblings, never nested:
    an attack (bad signature, rollback) and a harmless repeat (replay) must be told apart
    by their exact class, as python-tuf keeps its repository errors apart."""

    exit_code = 4


class SealError(TrustError):
    """A sealed payload or receipt was refused: sealed to another device, by another sender, or its tag does
    not verify (altered, or made for another reference store); or this device has no key to open it."""

    exit_code = 24


class SignatureError(TrustError):
    """The payload's signature does not verify with the trusted key and the local reference root."""

    exit_code = 4


class UnknownKeyError(TrustError):
    """The payload names a key id that is not among the trusted keys."""

    exit_code = 15


class RevokedKeyError(TrustError):
    """The payload is signed by a key that this device was told to revoke."""

    exit_code = 16


class ReplayError(TrustError):
    """The payload's sequence number was already accepted (benign: nothing new to do)."""

    exit_code = 5


class StaleError(TrustError):
    """The payload's sequence number is older than the last accepted one (a rollback attempt)."""

    exit_code = 14


class ExpiredError(TrustError):
    """The payload's expiry time has passed."""

    exit_code = 6


class KeyFileError(LabelcastError):
    """A key file is missing, malformed or has unsafe permissions."""

    exit_code = 10


class ReferenceMismatchError(LabelcastError):
    """The local reference set differs from the one the sender used (item hash, root, manifest)."""

    exit_code = 7


class BudgetError(LabelcastError):
    """Nothing useful fits the byte or time budget (or the device's memory)."""

    exit_code = 8


class IncompleteError(LabelcastError):
    """Not enough frames arrived yet to rebuild the payload; ``needed`` says how many more."""

    exit_code = 11

    def __init__(self, message: str, needed: int = 0):
        super().__init__(message)
        self.needed = needed


class StorageError(LabelcastError):
    """Writing to disk failed (disk full, read-only, permissions); earlier state is intact.
    ``path`` and ``needed`` (bytes, 0 when unknown) say where and how much, when known."""

    exit_code = 12

    def __init__(self, message: str, path: object = None, needed: int = 0):
        super().__init__(message)
        self.path = path
        self.needed = needed


class ParentError(LabelcastError):
    """A delta payload does not apply to this device's labelled set (its parent is not the head,
    or an operation names an item or class the set does not have). Nothing was changed."""

    exit_code = 19


class MissingParentError(ParentError):
    """A delta payload's parent has not been applied on this device yet. Not final: the watcher keeps the
    frames and tries again when the chain's head moves (the parent arrived) or when asked to."""


class LockedError(LabelcastError):
    """Another labelcast process (a watcher or a receive) holds this device's state folder."""

    exit_code = 21


class FieldError(LabelcastError):
    """A field sketch is malformed, or made for another reference store than the one it is used with."""

    exit_code = 25


class SourceError(LabelcastError, ValueError):
    """A source string, or the data behind it, is unusable (the message names the forms that would do)."""

    exit_code = 2
