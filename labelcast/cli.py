"""The ``labelcast`` command: a lazy map from command names to modules.

Each command lives in its own module with its side (``labelcast.sender.cli.*``,
``labelcast.receiver.cli.*``) and is imported only when run or asked for help,
so ``labelcast receive --help`` works on a lean receiver install.
"""

from __future__ import annotations

import importlib
import json
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
    "score": "labelcast.sender.cli.score:score",
    "send": "labelcast.sender.cli.send:send",
    "link": {"plan": "labelcast.sender.cli.link:plan", "simulate": "labelcast.sender.cli.link:simulate"},
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
    "demo": "labelcast.demo:demo",
    "bench": "labelcast.cli_bench:bench",
}

HELP = {
    "reference": "Build and verify reference stores.",
    "teacher": "Train, inspect or calibrate a teacher.",
    "link": "Plan and simulate transmission over a link profile.",
    "profiles": "List and show link and device profiles.",
    "model": "A/B model slots on the device: status, promote, rollback.",
}


class LazyGroup(click.Group):
    def __init__(self, *a: Any, lazy: dict[str, Any] | None = None, **k: Any) -> None:
        super().__init__(*a, **k)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        target = self.lazy.get(name)
        if target is None:
            return None
        if isinstance(target, dict):
            return LazyGroup(name=name, lazy=target, help=HELP.get(name))
        mod, attr = target.split(":")
        return getattr(importlib.import_module(mod), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # list names without importing every module (short help would need the import)
        rows = [(n, HELP.get(n, "") if isinstance(self.lazy.get(n), dict) else "") for n in self.list_commands(ctx)]
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


def emit(result: dict, as_json: bool, lines: list[str] | None = None) -> None:
    """Print a command's result: human lines, or one JSON object as the last line."""
    if as_json:
        click.echo(json.dumps(result, sort_keys=True, default=str))
    else:
        for line in lines if lines is not None else [f"{k}: {v}" for k, v in result.items()]:
            click.echo(line)


def main(argv: list[str] | None = None) -> None:
    debug = os.environ.get("LABELCAST_DEBUG") == "1" or "--debug" in (argv if argv is not None else sys.argv[1:])
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
