"""The root of labelcast's error tree (stdlib only, so every layer — the profiles included — can join it).

Each layer raises its own subclasses (``labelcast.codec.errors``, ``labelcast.profiles.ProfileError``,
``labelcast.receiver.errors``, ``labelcast.sender.engines.EngineError``); a caller that wants every failure
labelcast reports catches :class:`LabelcastError`. ``exit_code`` is the CLI's exit status for the class.
"""

from __future__ import annotations

__all__ = ["LabelcastError", "ConfigError"]


class LabelcastError(Exception):
    """Base of every error labelcast raises on bad input or a failed check."""

    exit_code = 1


class ConfigError(LabelcastError, ValueError):
    """Settings that contradict each other or lack a part (e.g. the planner without target data): the
    caller's typing, so the CLI answers with its usage line; every other error is printed without it."""

    exit_code = 2
