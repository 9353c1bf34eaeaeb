"""Every command's help renders, its one-line summary is its own, and the defaults it shows are the code's."""

from __future__ import annotations

import importlib

import click
from click.testing import CliRunner

from labelcast.cli import COMMANDS, SUMMARY, cli


def _leaves(tree: dict, prefix: str = ""):
    for name, target in tree.items():
        full = f"{prefix}{name}"
        if isinstance(target, dict):
            yield full, None
            yield from _leaves(target, f"{full} ")
        else:
            mod, attr = target.split(":")
            yield full, getattr(importlib.import_module(mod), attr)


def test_every_command_and_group_has_a_one_line_summary_that_is_its_own():
    for name, cmd in _leaves(COMMANDS):
        assert SUMMARY.get(name), f"no summary for {name}"
        if cmd is not None:
            assert cmd.help.strip().splitlines()[0] == SUMMARY[name], name


def test_every_command_s_help_renders():
    runner = CliRunner()
    for name, _ in _leaves(COMMANDS):
        r = runner.invoke(cli, [*name.split(), "--help"])
        assert r.exit_code == 0, (name, r.output)
    top = runner.invoke(cli, ["--help"]).output
    for name in COMMANDS:
        assert f"{name} " in top and SUMMARY[name][:20] in top


def _option(cmd: click.Command, flag: str) -> click.Option:
    return next(p for p in cmd.params if isinstance(p, click.Option) and flag in p.opts)


def test_the_defaults_the_help_shows_are_the_code_s():
    from labelcast.receiver.cli.receive import receive
    from labelcast.receiver.students import ARCHS
    from labelcast.receiver.train import StudentConfig
    from labelcast.sender.budget import DEFAULT_BUDGET
    from labelcast.sender.cli.reference_build import build
    from labelcast.sender.cli.send import send
    from labelcast.sender.delivery import DEFAULT_TARGET
    from labelcast.sender.send import SendConfig

    assert f"default {StudentConfig().train_samples}" in _option(receive, "--train-samples").help
    assert all(a in _option(receive, "--arch").help for a in ARCHS)
    assert f"Default {DEFAULT_BUDGET}" in _option(send, "--budget").help
    assert _option(send, "--delivery").default == DEFAULT_TARGET == SendConfig().link.delivery
    assert _option(send, "--strategy").default == SendConfig().select.strategy
    size_help = _option(build, "--size").help
    assert "source's own" in size_help and "32 for folder" in size_help
    assert "3 for folder" in _option(build, "--channels").help


def test_every_send_option_named_like_a_config_field_reaches_that_field():
    from dataclasses import asdict

    from labelcast.sender.cli.send import _config, send

    opts = {p.name: p.default for p in send.params}
    opts.update(
        link="lora-eu868-dr0",
        budget=2048,
        validation_every=7,
        plan_candidates=3,
        plan_train_samples=900,
        names=True,
        soft_extra=5,
        provider="auto",
        workers=3,
        target="builtin:fashion:train",
        device="jetson-nano",
        seed=4,
    )
    cfg = _config(opts)
    assert cfg.link.profile == "lora-eu868-dr0" and cfg.link.budget == 2048
    assert cfg.validation_every == 7 and cfg.class_names is True
    assert cfg.plan.config.candidates == 3 and cfg.plan.config.train_samples == 900 and cfg.plan.config.seed == 4
    assert cfg.plan.target == "builtin:fashion:train" and cfg.plan.device == "jetson-nano"
    assert cfg.recipe.soft_extra == 5 and cfg.recipe.select.seed == 4
    assert cfg.engine.provider == "auto" and cfg.engine.workers == 3
    # every option that is not about the inputs, the output or the selection lands in one part of the config
    leaves: dict = {}

    def walk(d: dict, prefix: str = "") -> None:
        for k, v in d.items():
            walk(v, f"{prefix}{k}_") if isinstance(v, dict) else leaves.setdefault(k, []).append(prefix + k)

    walk(asdict(cfg))
    inputs = {"teacher", "reference", "key", "out", "as_json", "spec", "input_name", "output_name", "names", "plan"}
    inputs |= {"to", "ledger", "seal"}  # the fleet ledger chooses link and parent (and the key to seal to)
    selection = {"strategy", "quota", "alpha", "keyed", "seed", "link", "engine"}
    for name in {p.name for p in send.params} - inputs - selection:
        field = name.removeprefix("plan_")
        assert field in leaves, f"--{name} reaches no config field"


def test_an_error_of_the_data_prints_no_usage_line(tmp_path):
    """A usage line says "you typed it wrong"; a store that already exists is not a typing error (exit 2, no
    usage line). Options that contradict each other are (a ConfigError, with the usage line: test_plan.py)."""
    import numpy as np

    from tests.conftest import run_cli

    np.save(tmp_path / "pool.npy", np.zeros((20, 8, 8), np.uint8))
    assert run_cli("reference", "build", "npy:pool.npy", "--out", "ref", cwd=tmp_path)[0] == 0
    code, _, err = run_cli("reference", "build", "npy:pool.npy", "--out", "ref", cwd=tmp_path)
    assert code == 2 and "already holds a reference store" in err and "Usage:" not in err
