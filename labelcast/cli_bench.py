"""``labelcast bench``: the equitable benchmark (a thin shell over ``benchmarks/equitable``).

The benchmark lives beside the other benchmarks in the source checkout, not in the installed
``labelcast`` package; this command finds it there.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

# the benchmark's methods (a test checks this list against benchmarks/equitable/runner.py)
METHODS = (
    "labelcast-auto",
    "hybrid",
    "labelcast",
    "labelcast-soft",
    "random",
    "full-pool",
    "images",
    "model-fp16",
    "model-int8",
    "distilled",
)


def load_equitable():
    """Import ``benchmarks/equitable`` from the source checkout this labelcast runs from."""
    root = Path(__file__).resolve().parent.parent / "benchmarks"
    if not (root / "equitable" / "__init__.py").is_file():
        raise click.UsageError(
            "labelcast bench runs from a source checkout (benchmarks/equitable is not part of the installed package)"
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import equitable

    return equitable


@click.command("bench")
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    type=click.Choice(["fashion", "digits", "clipart"]),
    help="Repeatable; default: fashion and digits (the scenarios the defaults were tuned on); clipart is the "
    "held-out scenario no constant was tuned on.",
)
@click.option(
    "--payload-bytes",
    "budgets",
    multiple=True,
    type=click.IntRange(64, 1 << 26),
    help="Payload budget in bytes before framing (send's --budget counts framed bytes), repeatable; "
    "default 256…64 KiB.",
)
@click.option("--seeds", type=click.IntRange(1, 20), default=None, help="Seeds per cell (default 3; --quick 1).")
@click.option("--method", "methods", multiple=True, type=click.Choice(METHODS), help="Repeatable; default: all.")
@click.option("--train-samples", type=click.IntRange(500, 10_000_000), default=None, help="Images each student sees.")
@click.option("--quick", is_flag=True, help="One seed, three budgets, shorter training: ≤ 5 min on 2 cores.")
@click.option("--work", default="out/bench/equitable", show_default=True, help="Teachers and models are kept here.")
@click.option("--json", "json_path", default="out/bench/equitable.json", show_default=True, help="Every number.")
@click.option("--plots", default="docs", show_default=True, help="Folder for the PNGs ('' for none).")
@click.option(
    "--results-md", default="docs/results.md", show_default=True, help="Section rewritten here ('' for none)."
)
@click.option(
    "--results-section",
    default=None,
    help="The block of --results-md rewritten: between <!-- NAME:start --> and <!-- NAME:end --> "
    "(default: a block bench-SCENARIO per scenario).",
)
@click.option(
    "--replot", type=click.Path(exists=True, dir_okay=False), help="Re-render plots and tables from a JSON report."
)
def bench(
    scenarios,
    budgets,
    seeds,
    methods,
    train_samples,
    quick,
    work,
    json_path,
    plots,
    results_md,
    results_section,
    replot,
) -> None:
    """Labels vs. images vs. models vs. distilled data at equal bytes, one student recipe.

    Prints a table per scenario, writes the JSON report, a PNG per scenario and
    the results section of docs/results.md.
    """
    import json

    eq = load_equitable()
    BenchConfig, markdown, run_bench, write_report = eq.BenchConfig, eq.markdown, eq.run_bench, eq.write_report

    if replot:
        with open(replot) as f:
            result = json.load(f)
        write_report(result, replot, plots or None, results_md or None, results_section)
        click.echo(markdown(result))
        return

    kw: dict = {"work": work}
    if scenarios:
        kw["scenarios"] = tuple(scenarios)
    if budgets:
        kw["budgets"] = tuple(sorted(set(budgets)))
    if seeds:
        kw["seeds"] = seeds
    if methods:
        kw["methods"] = tuple(m for m in METHODS if m in methods)
    if train_samples:
        kw["train_samples"] = train_samples
    cfg = BenchConfig.quick_config(**kw) if quick else BenchConfig(**kw)
    command = "labelcast " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "labelcast bench"
    result = run_bench(cfg, log=lambda m: click.echo(m, err=True), command=command)
    write_report(result, json_path, plots or None, results_md or None, results_section)
    click.echo(markdown(result))
    wrote = [json_path] + ([f"{plots}/accuracy_vs_bytes_*.png"] if plots else []) + ([results_md] if results_md else [])
    click.echo("\nwrote " + ", ".join(wrote))
