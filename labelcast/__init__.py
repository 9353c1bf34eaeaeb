"""labelcast: teach a model on a device at the end of a thin link by sending labels, not pixels.

The names most code needs are here, imported when first used (so a lean receiver install, which has no
sender, still imports ``labelcast``)::

    from labelcast import build_store, train_and_export, send, SendConfig, receive, ReceiveConfig, evaluate
    from labelcast import Teacher, TrustSet, generate_keypair, load_labelled, calibrate

Long calls return typed results (``SendResult``, ``ReceiveResult``, ``EvaluateResult``, ``Calibration``,
``TrainResult``): the JSON report as a ``dict``, typed attributes, ``.to_json()``. docs/api.md lists every name.

The packages: ``labelcast.codec`` (the contract), ``labelcast.sender`` (ground station),
``labelcast.receiver`` (device), ``labelcast.profiles`` (link and device profiles),
``labelcast.datasets`` (built-in demo data and image sources).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    # ground station
    "build_store": "labelcast.sender.reference",
    "Teacher": "labelcast.sender.teacher",
    "TeacherConfig": "labelcast.sender.teacher",
    "train_and_export": "labelcast.sender.teacher",
    "calibrate": "labelcast.sender.teacher",
    "send": "labelcast.sender.send",
    "SendConfig": "labelcast.sender.send",
    "LinkSettings": "labelcast.sender.budget",
    "Recipe": "labelcast.sender.recipe",
    "EngineSettings": "labelcast.sender.engines",
    "PlanSettings": "labelcast.sender.plan",
    "PlanConfig": "labelcast.sender.plan",
    "SelectConfig": "labelcast.sender.selection",
    "Ledger": "labelcast.sender.ledger",
    # device
    "receive": "labelcast.receiver.receive",
    "ReceiveConfig": "labelcast.receiver.receive",
    "StudentConfig": "labelcast.receiver.train",
    "SemiConfig": "labelcast.receiver.semi",
    "evaluate": "labelcast.receiver.evaluate",
    # both ends
    "TrustSet": "labelcast.codec.keys",
    "generate_keypair": "labelcast.codec.keys",
    "load_labelled": "labelcast.datasets.sources",
    "LabelcastError": "labelcast.errors",
    # what the long calls return
    "Result": "labelcast.results",
    "SendResult": "labelcast.results",
    "ReceiveResult": "labelcast.results",
    "EvaluateResult": "labelcast.results",
    "Calibration": "labelcast.results",
    "TrainResult": "labelcast.results",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'labelcast' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
