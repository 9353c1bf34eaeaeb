"""Evaluate a classifier on labelled uint8 images (ONNX Runtime, or its TensorRT engine where one loads).

Labels are matched to the model's classes **by name** when both sides have names (the
teacher's and the student's are in their metadata): a folder holding only ``circle/`` and
``triangle/`` of a three-class model is scored against the model's indices of those two
names, and a folder whose name the model does not know is refused, naming it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..codec.errors import SourceError
from ..codec.preprocess import Preprocess
from ..results import EvaluateResult
from .serve import load_classifier

__all__ = ["evaluate", "match_classes"]


def _is_positional(names: list[str]) -> bool:
    """Names that are only positions ("0", "1", …): arrays without class names."""
    return names == [str(i) for i in range(len(names))]


def match_classes(data_names: list[str] | None, model_names: list[str] | None) -> tuple[np.ndarray | None, str]:
    """Index map data label → model class (None: labels are the model's indices already) and a note."""
    if not data_names or not model_names or _is_positional(model_names):
        return None, "the model carries no class names: labels taken as its class indices"
    if _is_positional(data_names):
        return None, "the data carries no class names: labels taken as the model's class indices"
    unknown = [n for n in data_names if n not in model_names]
    if unknown:
        raise SourceError(
            f"class folder(s) {', '.join(unknown)} are not among the model's classes ({', '.join(model_names)}); "
            "rename or remove them"
        )
    return np.array([model_names.index(n) for n in data_names], dtype=np.int64), "classes matched by name"


def evaluate(
    path: str | os.PathLike,
    x: np.ndarray,
    y: np.ndarray,
    batch: int = 512,
    *,
    class_names: list[str] | None = None,
    preprocess: Preprocess | str | dict | None = None,
    providers: str | list[str] = "auto",
    input_name: str | None = None,
    output_name: str | None = None,
) -> EvaluateResult:
    """Accuracy of the model at ``path`` on images ``x`` with labels ``y`` (named ``class_names``).

    ``x``: uint8 pixels, N×H×W or N×H×W×C, as the stores hold them (anything else is a ``SourceError`` that
    says how to convert); N×D float32/float16 feature vectors; text items as an object array of strings."""
    from ..codec.preprocess import check_images

    check_images(np.asarray(x) if not isinstance(x, np.ndarray) else x, y, class_names)
    model = load_classifier(path, preprocess, providers=providers, input_name=input_name, output_name=output_name)
    xa = x if isinstance(x, np.ndarray) else np.asarray(x)
    if xa.ndim == 2 and xa.dtype.kind == "f" and getattr(model, "modality", "") == "image":
        model.use_vectors(int(xa.shape[1]))  # feature vectors into a model whose flat input was guessed as pixels
    mapping, note = match_classes(class_names, model.classes)
    yy = np.asarray(y, dtype=np.int64)
    k = int(model.num_classes or 0)
    n_data = len(class_names) if class_names else int(yy.max(initial=-1)) + 1
    if mapping is None and k and (n_data > k or (class_names and n_data != k)):
        raise SourceError(
            f"{Path(path).name} has {k} classes and the data {n_data}: without names that match the model's "
            "own, its outputs cannot be compared with these labels (give class_names the model's names match, "
            "or store the model's with `teacher calibrate --classes`)"
        )
    if mapping is None and k and n_data < k:
        import warnings

        fewer = f"the model has {k} classes and the labels reach {n_data}: classes compared by number"
        warnings.warn(fewer, UserWarning, stacklevel=2)
        note = f"{note}; {fewer}" if note else fewer
    truth = mapping[yy] if mapping is not None else yy
    pred = model.predict(x, batch)
    ok = pred == truth
    names = model.classes or [str(i) for i in range(int(model.num_classes or (truth.max(initial=0) + 1)))]
    present = np.unique(truth)
    per_class = {names[c] if c < len(names) else str(c): round(float(ok[truth == c].mean()), 4) for c in present}
    return EvaluateResult(
        accuracy=round(float(ok.mean()) if ok.size else 0.0, 4),
        items=int(x.shape[0]),
        per_class_accuracy=per_class,
        backend=model.backend,
        provider=getattr(model, "provider", "tensorrt engine"),
        notes=[n for n in [note, *model.notes] if n],
    )
