"""The ``labelcast`` command: a lazy map from command names to modules.

Each command lives in its own module with its side (``labelcast.sender.cli.*``,
``labelcast.receiver.cli.*``) and is imported only when run or asked for help,
so ``labelcast receive --help`` works on a lean receiver install. The one-line
summaries below are what ``labelcast --help`` lists without importing anything;
a test checks that each equals the first line of its command's own help.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from typing import Any

import click

COMMANDS: dict[str, Any] = {
    "keygen": "labelcast.sender.cli.keygen:keygen",
    "reference": {
        "build": "labelcast.sender.cli.reference_build:build",
        "verify": "labelcast.receiver.cli.reference_verify:verify",
    },
    "teacher": {
        "train": "labelcast.sender.cli.teacher:train",
        "inspect": "labelcast.sender.cli.teacher:inspect",
        "calibrate": "labelcast.sender.cli.teacher:calibrate",
    },
    "student": {"pretrain": "labelcast.sender.cli.student:pretrain"},
    "score": "labelcast.sender.cli.score:score",
    "send": "labelcast.sender.cli.send:send",
    "link": {"plan": "labelcast.sender.cli.link:plan", "simulate": "labelcast.sender.cli.link:simulate"},
    "field": {"sketch": "labelcast.receiver.cli.field:sketch"},
    "reassemble": "labelcast.receiver.cli.reassemble:reassemble",
    "receive": "labelcast.receiver.cli.receive:receive",
    "evaluate": "labelcast.receiver.cli.evaluate:evaluate",
    "profiles": {"list": "labelcast.cli_profiles:list_cmd", "show": "labelcast.cli_profiles:show_cmd"},
    "model": {
        "status": "labelcast.receiver.cli.model:model_status",
        "promote": "labelcast.receiver.cli.model:model_promote",
        "rollback": "labelcast.receiver.cli.model:model_rollback",
    },
    "status": "labelcast.receiver.cli.model:status",
    "retry": "labelcast.receiver.cli.model:retry",
    "fleet": {
        "add": "labelcast.sender.cli.fleet:add",
        "list": "labelcast.sender.cli.fleet:list_cmd",
        "show": "labelcast.sender.cli.fleet:show",
        "remove": "labelcast.sender.cli.fleet:remove",
        "report": "labelcast.sender.cli.fleet:report",
    },
    "ingest": "labelcast.sender.cli.fleet:ingest",
    "repair": "labelcast.sender.cli.fleet:repair",
    "sources": "labelcast.cli_sources:sources",
    "demo": "labelcast.demo:demo",
    "bench": "labelcast.cli_bench:bench",
}

SUMMARY = {
    "keygen": "Make an Ed25519 key pair: OUT/ROLE.key (0600) and OUT/ROLE.pub.",
    "fleet": "The ground's fleet ledger: register devices, list and show them, an HTML report.",
    "fleet add": "Register a device by its receipt key (`keygen --role device`); its store root comes from REFERENCE.",
    "fleet list": "Every registered device: its head, last receipt and last accuracy.",
    "fleet show": "One device: its state and every payload sent to it, with what it reported.",
    "fleet remove": "Forget a device (its deliveries and receipts go with it; the payloads stay).",
    "fleet report": "One self-contained HTML page: every device, its head, last receipt, accuracy over rounds, what is "
    "pending.",
    "ingest": "Verify device receipts (.lcr files or folders of them) and update the fleet ledger.",
    "repair": "Frames for what the devices reported missing: fresh erasure-code blocks for the short stripes only.",
    "reference": "Build and verify reference stores.",
    "reference build": "Turn SOURCE (see `labelcast sources`) into a reference store with its manifest.",
    "reference verify": "Check a reference store: manifest integrity always; items with --full or --items.",
    "teacher": "Train, inspect or calibrate a teacher.",
    "teacher train": "Train a built-in teacher (a CNN; fastText-style on text) on labelled DATA; export ONNX.",
    "teacher inspect": "Show a teacher's input, outputs, classes and preprocessing (stored, given or guessed).",
    "teacher calibrate": "Describe MODEL once: store its preprocessing and its median confidence on its own domain.",
    "student": "Prepare the device's student on the ground (pretrained backbones).",
    "student pretrain": "Pretrain the device's student on the reference pool itself, without target labels.",
    "score": "Score every reference item with the teacher into OUT/logits.f32 (N × classes, float32).",
    "send": "Score the reference set, select, encode, sign and frame a payload into OUT.",
    "link": "Plan and simulate transmission over a link profile.",
    "link plan": "Frames, parity, delivery probability and time on the link for a payload.",
    "link simulate": "Pass FRAMES_DIR through a simulated link into OUT and measure how often it rebuilds.",
    "field": "The device's own field: what its captures look like, over its reference store.",
    "field sketch": "Sketch the device's unlabelled captures SOURCE over its reference store (for send --field).",
    "reassemble": "Rebuild a payload from FRAMES (a folder of frame files, or '-' for a frame stream on stdin).",
    "receive": "Verify INPUT (frames folder or payload file), then train and export a student.",
    "evaluate": "Accuracy of a classifier on labelled DATA; classes are matched to the model's by name.",
    "profiles": "List and show link and device profiles.",
    "profiles list": "List the built-in link and device profiles.",
    "profiles show": "Show one profile (a link or a device) by NAME or .toml path, with units.",
    "model": "A/B model slots on the device: status, promote, rollback.",
    "model status": "Show the active, previous and candidate models.",
    "model promote": "Make the candidate model active (the active one becomes previous).",
    "model rollback": "Return to the previous model (the active one becomes previous).",
    "status": "Summarise the device: models in service and the latest events.",
    "retry": "Try a refused or quarantined payload again (by id or id prefix, as `labelcast status` lists it).",
    "sources": "List the source forms every command takes, with one example each.",
    "demo": "Run a built-in scenario end to end and print a report.",
    "bench": "Labels vs. images vs. models vs. distilled data at equal bytes, one student recipe.",
}


class LazyGroup(click.Group):
    def __init__(self, *a: Any, lazy: dict[str, Any] | None = None, prefix: str = "", **k: Any) -> None:
        super().__init__(*a, **k)
        self.lazy = lazy or {}
        self.prefix = prefix

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        target = self.lazy.get(name)
        if target is None:
            return None
        full = f"{self.prefix}{name}"
        if isinstance(target, dict):
            return LazyGroup(name=name, lazy=target, prefix=f"{full} ", help=SUMMARY.get(full))
        mod, attr = target.split(":")
        return getattr(importlib.import_module(mod), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # one line per command from SUMMARY, without importing any command's module
        rows = [(n, SUMMARY.get(f"{self.prefix}{n}", "")) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, lazy=COMMANDS)
@click.version_option(package_name="labelcast")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """labelcast — send labels, not pixels, over thin links."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug or os.environ.get("LABELCAST_DEBUG") == "1"


class InputError(click.ClickException):
    """Input the command cannot work on that is not a mistyped option (a store that already exists, a class
    without images, a payload that does not apply): ``Error: …`` and exit status 2, without the usage line
    that says the command was typed wrong."""

    exit_code = 2


def emit(result: dict, as_json: bool, lines: list[str] | None = None) -> None:
    """Print a command's result: human lines, or one JSON object as the last line."""
    if as_json:
        click.echo(json.dumps(result, sort_keys=True, default=str))
    else:
        for line in lines if lines is not None else [f"{k}: {v}" for k, v in result.items()]:
            click.echo(line)


class _Stderr(logging.Handler):
    """Log lines to whatever ``sys.stderr`` is when they are emitted."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(self.format(record) + "\n")


def _logging() -> None:
    """labelcast's log lines (e.g. where training runs, and why) on stderr, as plain text."""
    lg = logging.getLogger("labelcast")
    if not any(isinstance(h, _Stderr) for h in lg.handlers):
        lg.addHandler(_Stderr())
        lg.setLevel(logging.INFO)
        lg.propagate = False


def main(argv: list[str] | None = None) -> None:
    debug = os.environ.get("LABELCAST_DEBUG") == "1" or "--debug" in (argv if argv is not None else sys.argv[1:])
    _logging()
    try:
        from .codec.errors import LabelcastError
    except ImportError:  # pragma: no cover
        LabelcastError = RuntimeError  # type: ignore[misc,assignment]
    try:
        cli.main(args=argv, prog_name="labelcast", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except LabelcastError as e:
        if debug:
            raise
        click.echo(f"error: {e}", err=True)
        sys.exit(getattr(e, "exit_code", 1))
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
