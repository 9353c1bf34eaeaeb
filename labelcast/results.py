"""What the API's long calls return: typed reports (stdlib only, so every layer can return them).

Each result is the JSON report the CLI prints and writes (``send-report.json``, ``receive-report.json``) —
a ``dict``, so ``report["payload_bytes"]`` keeps working — with typed attributes for the fields most code
reads, and :meth:`Result.to_json` to print or write it. ``TrainResult`` also holds the trained torch model,
which is not part of its JSON.

=================  ==========================================  ==============================================
call               result                                      attributes
=================  ==========================================  ==============================================
``send``           :class:`SendResult`                         payload_bytes, framed_bytes, budget_bytes,
                                                               labels, strategy, classes, class_names_sent,
                                                               link_seconds, payload_sha256
``receive``        :class:`ReceiveResult`                      payload_sha256, sequence, classes, n_items,
                                                               validation_accuracy, dry_run
``evaluate``       :class:`EvaluateResult`                     accuracy, n_items, per_class_accuracy, notes
``calibrate``      :class:`Calibration`                        model, images, train_confidence, preprocess,
                                                               classes, notes
``train_and_export`` :class:`TrainResult`                      model, path, classes, n_items, epochs,
                                                               validation_accuracy, validation_items, seconds
=================  ==========================================  ==============================================
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["Result", "SendResult", "ReceiveResult", "EvaluateResult", "Calibration", "TrainResult"]


def _plain(v: Any) -> Any:
    """JSON for what ``json`` does not know: paths and numpy scalars/arrays as values, anything else as text."""
    if hasattr(v, "tolist"):
        return v.tolist()
    return str(v)


class Result(dict):
    """A JSON report with typed attributes; ``to_json()`` gives (and with ``path`` writes) its text.

    Attributes never shadow a ``dict`` method (``json`` calls ``.items()``): counts are ``n_items``."""

    def to_json(self, path: str | os.PathLike | None = None, *, indent: int | None = 2) -> str:
        """The report as JSON text; written to ``path`` (atomically) when given."""
        text = json.dumps(self, indent=indent, default=_plain)
        if path is not None:
            from .codec.storage import atomic_write  # a full disk is a StorageError, and the old file stays

            atomic_write(Path(path), text + "\n", what=f"report {path}")
        return text

    def __repr__(self) -> str:
        shown = {k: self[k] for k in list(self)[:6]}
        more = f", … {len(self) - 6} more" if len(self) > 6 else ""
        return f"{type(self).__name__}({shown!r}{more})"


class SendResult(Result):
    """What ``send`` did (``send-report.json``): the payload's size, its labels and its time on the link."""

    @property
    def payload_sha256(self) -> str:
        return str(self["payload_sha256"])

    @property
    def payload_bytes(self) -> int:
        """The signed (or sealed) payload's length, before framing."""
        return int(self["payload_bytes"])

    @property
    def framed_bytes(self) -> int:
        """Bytes on the link: every frame, parity included."""
        return int(self["framed_bytes"])

    @property
    def budget_bytes(self) -> int:
        return int(self["budget_bytes"])

    @property
    def labels(self) -> int:
        """Reference items labelled by the payload (a delta: the items it adds)."""
        return int(self["selected_items"])

    @property
    def strategy(self) -> str:
        return str(self["strategy"])

    @property
    def classes(self) -> int:
        return int(self["classes"])

    @property
    def class_names_sent(self) -> bool:
        """Whether the payload carries the class names (see ``SendConfig.class_names``)."""
        return bool(self.get("class_names", {}).get("sent"))

    @property
    def link_seconds(self) -> float:
        """Estimated time on the link for every frame (ARQ links: with their expected retransmissions)."""
        return float(self["link_seconds"])


class ReceiveResult(Result):
    """What ``receive`` did (``receive-report.json``): the payload it accepted and the student it trained."""

    @property
    def payload_sha256(self) -> str:
        return str(self["payload_sha256"])

    @property
    def sequence(self) -> int:
        return int(self["sequence"])

    @property
    def classes(self) -> int:
        return int(self["classes"])

    @property
    def n_items(self) -> int:
        """Labelled items the device holds after this payload (its chain's head)."""
        return int(self["chain"]["items"])

    @property
    def validation_accuracy(self) -> float | None:
        """The student's accuracy on the held-back labelled items (None: the payload held none back)."""
        v = self.get("validation")
        return float(v["accuracy"]) if v else None

    @property
    def dry_run(self) -> bool:
        return bool(self.get("dry_run"))


class EvaluateResult(Result):
    """A model's accuracy on labelled data (``evaluate``)."""

    @property
    def accuracy(self) -> float:
        return float(self["accuracy"])

    @property
    def n_items(self) -> int:
        return int(self["items"])

    @property
    def per_class_accuracy(self) -> dict[str, float]:
        return dict(self["per_class_accuracy"])

    @property
    def notes(self) -> list[str]:
        """How classes were matched and how the preprocessing was found (a guess also warns)."""
        return list(self["notes"])


class Calibration(Result):
    """What ``calibrate`` stored in the model: its preprocessing, median confidence and class names."""

    @property
    def model(self) -> str:
        """The file written (the model itself unless ``out`` was given)."""
        return str(self["model"])

    @property
    def images(self) -> int:
        return int(self["images"])

    @property
    def train_confidence(self) -> float:
        return float(self["train_confidence"])

    @property
    def preprocess(self) -> dict:
        return dict(self["preprocess"])

    @property
    def classes(self) -> list[str] | None:
        """The class names stored (``labelcast.classes``), or None when the model has none."""
        c = self.get("classes")
        return list(c) if c else None

    @property
    def notes(self) -> list[str]:
        return list(self.get("notes", []))


class TrainResult(Result):
    """A teacher trained and exported by ``train_and_export``; ``.model`` is the torch model (eval mode)."""

    def __init__(self, model: Any = None, **fields: Any) -> None:
        super().__init__(**fields)
        self.model = model

    @property
    def path(self) -> Path:
        """The ONNX file written."""
        return Path(self["path"])

    @property
    def classes(self) -> list[str]:
        return list(self["classes"])

    @property
    def n_items(self) -> int:
        """Items trained on (the validation share held back)."""
        return int(self["items"])

    @property
    def epochs(self) -> int:
        return int(self["epochs"])

    @property
    def validation_accuracy(self) -> float | None:
        """The exported model's accuracy on the held-back share (None: ``validation=0``)."""
        v = self.get("validation")
        return float(v["accuracy"]) if v else None

    @property
    def validation_items(self) -> int:
        v = self.get("validation")
        return int(v["items"]) if v else 0

    @property
    def seconds(self) -> float:
        return float(self["seconds"])
