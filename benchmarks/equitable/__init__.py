"""The equitable benchmark (``labelcast bench``): labels vs. images vs. models vs. distilled data at equal bytes.

Split by job: ``runner`` (the protocol), ``images`` (sending target images), ``distill`` (the
distilled-images baseline), ``models`` (sending the model), ``report`` (tables, plots, results.md).
It lives beside the other benchmarks, out of the importable ``labelcast`` package; ``labelcast bench``
finds it in a source checkout.
"""

from .report import markdown, update_results_md, write_report
from .runner import METHODS, BenchConfig, recipe, run_bench

__all__ = ["METHODS", "BenchConfig", "recipe", "run_bench", "markdown", "update_results_md", "write_report"]
