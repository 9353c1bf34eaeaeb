"""Render the API reference (docs/api.md) from the code: every name ``labelcast`` exports, with its signature,
return type and docstring; config classes with their fields; results with their typed attributes.

``make docs`` runs ``python -m labelcast._apidoc docs/api.md``; a test fails when the committed file differs
from what this renders, so the reference cannot drift from the code.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import sys
from pathlib import Path

import labelcast

SECTIONS = (
    ("Ground station", ("build_store", "Teacher", "TeacherConfig", "train_and_export", "calibrate", "send")),
    ("Send configuration", ("SendConfig", "LinkSettings", "Recipe", "SelectConfig", "EngineSettings")),
    ("Planner", ("PlanSettings", "PlanConfig")),
    ("Fleet", ("Ledger",)),
    ("Device", ("receive", "ReceiveConfig", "StudentConfig", "SemiConfig", "evaluate")),
    ("Both ends", ("TrustSet", "generate_keypair", "load_labelled")),
    ("Results", ("Result", "SendResult", "ReceiveResult", "EvaluateResult", "Calibration", "TrainResult")),
    ("Errors", ("LabelcastError",)),
)


def _doc(obj: object) -> str:
    return inspect.cleandoc(obj.__doc__ or "").strip()


def _signature(name: str, obj: object) -> str:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return f"{name}(…)"
    params, star = [], False
    for p in sig.parameters.values():
        if p.name == "self":
            continue
        if p.kind is p.KEYWORD_ONLY and not star:
            params.append("*")
        star = star or p.kind in (p.KEYWORD_ONLY, p.VAR_POSITIONAL)
        text = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "") + p.name
        if p.annotation is not inspect.Parameter.empty:
            text += f": {p.annotation}"
        if p.default is not inspect.Parameter.empty:
            text += f" = {_default(p.default)}"
        params.append(text)
    ret = sig.return_annotation
    shown = f"{name}({', '.join(params)})"
    return shown + (f" -> {ret}" if ret not in (inspect.Signature.empty, "None", None) else "")


def _default(v: object) -> str:
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return f"{type(v).__name__}()"
    return repr(v)


def _split_attributes(doc: str) -> tuple[str, dict[str, str]]:
    """A docstring's text before its ``Attributes:`` block, and that block as {field: meaning}."""
    head, sep, block = doc.partition("\nAttributes:\n")
    meanings: dict[str, str] = {}
    name = None
    for line in block.splitlines() if sep else []:
        if line.startswith("    ") and not line.startswith("        ") and ":" in line:
            name, _, text = line.strip().partition(":")
            meanings[name] = text.strip()
        elif name and line.strip():
            meanings[name] += " " + line.strip()
    return head.strip(), meanings


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _fields(cls: type, meanings: dict[str, str]) -> list[str]:
    rows = ["| field | type | default | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            d = _default(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            d = _default(f.default_factory())
        else:
            d = "required"
        rows.append(f"| `{f.name}` | `{_cell(str(f.type))}` | `{_cell(d)}` | {_cell(meanings.get(f.name, ''))} |")
    return rows


def _properties(cls: type) -> list[str]:
    rows = []
    for name, member in vars(cls).items():
        if isinstance(member, property):
            ret = inspect.signature(member.fget).return_annotation
            first = _doc(member.fget).split("\n\n")[0].replace("\n", " ")
            rows.append(f"- `{name}: {ret}`" + (f" — {first}" if first else ""))
    return rows


def _methods(cls: type) -> list[str]:
    rows = []
    for name, member in vars(cls).items():
        if name.startswith("_") or not inspect.isfunction(member):
            continue
        first = _doc(member).split("\n\n")[0].replace("\n", " ")
        rows.append(f"- `{_signature(name, member)}`" + (f" — {first}" if first else ""))
    return rows


def entry(name: str) -> list[str]:
    """The reference's section on one exported name."""
    obj = getattr(labelcast, name, None) or getattr(importlib.import_module("labelcast.results"), name)
    where = f"`{obj.__module__}`"
    out = [f"### `{name}`", "", f"from {where}", ""]
    if inspect.isclass(obj):
        init = obj if dataclasses.is_dataclass(obj) else obj.__init__
        if dataclasses.is_dataclass(obj) or "__init__" in vars(obj):
            out += ["```python", _signature(name, init), "```", ""]
        text, meanings = _split_attributes(_doc(obj))
        out += [text, ""]
        if dataclasses.is_dataclass(obj):
            out += [*_fields(obj, meanings), ""]
        props, methods = _properties(obj), _methods(obj)
        if props:
            out += ["Attributes:", "", *props, ""]
        if methods:
            out += ["Methods:", "", *methods, ""]
    else:
        out += ["```python", _signature(name, obj), "```", "", _doc(obj), ""]
    return out


def render() -> str:
    lines = [
        "# API reference",
        "",
        "Generated from the code by `make docs` (`python -m labelcast._apidoc docs/api.md`); a test keeps it",
        "current. Every name below imports from the top-level package: `from labelcast import send, SendConfig`.",
        "Long calls return typed results (a `dict` of the JSON report with typed attributes and `.to_json()`).",
        "",
    ]
    for title, names in SECTIONS:
        lines += [f"## {title}", ""]
        for n in names:
            lines += entry(n)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if argv:
        Path(argv[0]).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
