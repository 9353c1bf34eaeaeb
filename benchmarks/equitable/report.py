"""The equitable benchmark's summary, table, plots and the results.md section."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["summarise", "plot", "markdown", "planner_rows", "update_results_md", "splice_results", "write_report"]


def _key(r: dict) -> Any:
    return r["budget"] if r["budget"] is not None else r.get("variant", "-")


def _summarise(rows: list[dict], methods) -> list[dict]:
    """Mean ± std per (method, budget or variant), ordered by bytes."""
    out = []
    for m in methods:
        rs = [r for r in rows if r["method"] == m]
        cells: dict[Any, list[dict]] = {}
        for r in rs:
            cells.setdefault(_key(r), []).append(r)
        part = []
        for cell in cells.values():
            ok = [r for r in cell if r["accuracy"] is not None]
            part.append(
                {
                    "method": m,
                    "budget": cell[0]["budget"],
                    "variant": cell[0].get("variant"),
                    "n": len(ok),
                    "bytes": float(np.mean([r["bytes"] for r in ok])) if ok else None,
                    "items": float(np.mean([r["items"] for r in ok])) if ok and ok[0]["items"] is not None else None,
                    "mean": float(np.mean([r["accuracy"] for r in ok])) if ok else None,
                    "std": float(np.std([r["accuracy"] for r in ok])) if ok else None,
                }
            )
        part.sort(key=lambda s: (s["bytes"] is None, s["bytes"] or 0, str(s["budget"])))
        out.extend(part)
    return out


def plot(result: dict, scenario: str, path: str | os.PathLike) -> None:
    """Accuracy against log bytes, one line per method, references as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sc = result["scenarios"][scenario]
    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    style = {
        "labelcast-auto": dict(color="k", marker="P", lw=2.5),
        "hybrid": dict(color="C8", marker="X", ls="-."),
        "labelcast": dict(color="C3", marker="o", lw=2.5),
        "labelcast-soft": dict(color="C1", marker="o", ls="--"),
        "random": dict(color="C0", marker="s"),
        "full-pool": dict(color="C3", marker="*", ms=14, ls="none"),
        "images": dict(color="C2", marker="^"),
        "model-fp16": dict(color="C4", marker="D"),
        "model-int8": dict(color="C5", marker="D", ls="--"),
        "distilled": dict(color="C6", marker="v"),
    }
    for m in result["config"]["methods"]:
        pts = [s for s in sc["summary"] if s["method"] == m and s["mean"] is not None]
        if not pts:
            continue
        pts.sort(key=lambda s: s["bytes"])
        label = m if m != "labelcast" else f"labelcast ({sc['strategy']})"
        ax.errorbar(
            [p["bytes"] for p in pts],
            [p["mean"] for p in pts],
            yerr=[p["std"] for p in pts],
            label=label,
            capsize=3,
            **style.get(m, {}),
        )
    ax.axhline(sc["teacher_accuracy"], color="k", ls="--", lw=1, label=f"teacher ({sc['teacher_accuracy']:.3f})")
    ref = sc.get("student_full_target")
    if ref:
        ax.axhline(ref["mean"], color="grey", ls=":", lw=1.5, label=f"student on full target ({ref['mean']:.3f})")
    ax.set_xscale("log", base=2)
    ticks = [b for b in result["config"]["budgets"]]
    ax.set_xticks(ticks, [f"{b >> 10} KiB" if b >= 1024 else f"{b} B" for b in ticks])
    ax.set_xlabel("bytes sent (payload; log scale)")
    ax.set_ylabel("student accuracy on held-out test split")
    seeds = result["config"]["seeds"]
    ax.set_title(f"{scenario}: accuracy per byte, one student recipe, mean ± std over {seeds} seed(s)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(result: dict) -> str:
    """The results.md section: recipe, per-scenario table (method × budget), the command."""
    cfg = result["config"]
    lines = [
        f"Regenerate: `{result['command']}` ({result['seconds'] / 60:.1f} min on "
        f"{result['machine']['cpus']} cores; every number in `{result['json']}`).",
        "",
        "Student recipe (every method): "
        + "; ".join(f"{k}: {v}" for k, v in result["recipe"].items())
        + ". Budgets are payload bytes; labelcast counts its whole signed payload, the baselines only"
        " their compressed data. Cells: accuracy mean ± std over seeds, with the bytes actually used"
        " and the number of items (labels, images or parameters)."
        " The labelcast lines (`labelcast-auto` and `hybrid` too) decode their signed payload with the device's"
        " own decoder and rebuild its training set with the device's `training_set`; they differ from `receive`"
        " only in the student recipe above (the device's default sees 100,000 images, at least 7 passes) and in"
        " holding no labels back for the A/B check.",
    ]
    for name, sc in result["scenarios"].items():
        budgets = [b for b in cfg["budgets"]]
        lines += [
            "",
            f"### {name}: teacher {sc['teacher_accuracy']:.3f}, student on full target "
            f"{sc['student_full_target']['mean']:.3f} ± {sc['student_full_target']['std']:.3f}; "
            f"labelcast strategy `{sc['strategy']}`",
            "",
            "| method | " + " | ".join(f"≤ {b:,} B" for b in budgets) + f" | > {budgets[-1]:,} B |",
            "|---|" + "---|" * (len(budgets) + 1),
        ]
        for m in cfg["methods"]:
            cells = []
            fixed = [s for s in sc["summary"] if s["method"] == m and s["budget"] is None and s["mean"] is not None]
            if fixed:  # fixed sizes: each point in the smallest budget column it fits, or beyond
                for i, b in enumerate(budgets):
                    lo = budgets[i - 1] if i else 0
                    cells.append("; ".join(_cell(s) for s in fixed if lo < s["bytes"] <= b) or "—")
                cells.append("; ".join(_cell(s) for s in fixed if s["bytes"] > budgets[-1]) or "—")
            else:
                rows = {s["budget"]: s for s in sc["summary"] if s["method"] == m}
                if not rows:
                    continue
                for b in budgets:
                    s = rows.get(b)
                    cells.append(_cell(s) if s and s["mean"] is not None else "does not fit")
                cells.append("")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines += _planner_lines(sc, budgets)
        lines += ["", f"![{name}](accuracy_vs_bytes_{name}.png)"]
    return "\n".join(lines)


def _competitors(sc: dict, b: int) -> list[dict]:
    """Every line the table shows at budget ``b`` but labelcast-auto's own: the methods run at that budget,
    and the fixed-size ones (the models, the whole pool labelled) whose bytes fit it."""
    out = []
    for s in sc["summary"]:
        if s["method"] == "labelcast-auto" or s["mean"] is None:
            continue
        if s["budget"] == b or (s["budget"] is None and s["bytes"] is not None and s["bytes"] <= b):
            name = s["method"] + (f" {s['variant']}" if s.get("variant") and s["variant"] != "-" else "")
            out.append({**s, "method": name})
    return out


def planner_rows(sc: dict, budgets) -> list[dict]:
    """Per budget: the planner's choice, its prediction (validation slice, short schedule) against the
    measured accuracy (test split, the recipe), and labelcast-auto against the best of every other line the
    table shows at that budget (the planner's own hybrid line and the models included)."""
    out = []
    summ = {(s["method"], s["budget"]): s for s in sc["summary"]}
    for b in budgets:
        runs = [r for r in sc["runs"] if r["method"] == "labelcast-auto" and r["budget"] == b and r["accuracy"]]
        if not runs:
            continue
        auto = summ[("labelcast-auto", b)]
        comp = _competitors(sc, b)
        best = max(comp, key=lambda s: s["mean"]) if comp else None
        out.append(
            {
                "budget": b,
                "choices": sorted({r["choice"] for r in runs}),
                "predicted": float(np.mean([r["predicted"] for r in runs])),
                "measured": auto["mean"],
                "measured_std": auto["std"],
                "best_other": best["method"] if best else None,
                "best_other_mean": best["mean"] if best else None,
                "best_other_std": best["std"] if best else None,
                # never worse: within one standard deviation (the larger of the two) of the best other line
                "never_worse": best is None or auto["mean"] >= best["mean"] - max(auto["std"], best["std"]),
            }
        )
    return out


def _planner_lines(sc: dict, budgets) -> list[str]:
    rows = planner_rows(sc, budgets)
    if not rows:
        return []
    lines = [
        "",
        "Planner (`labelcast-auto`): its choice, predicted accuracy (validation slice, short schedule) against"
        " the measured one (test split, the recipe), and the best of every other line in the table at that budget"
        " (models and the whole pool labelled where their bytes fit). Never worse: within one standard deviation"
        " (the larger of the two) of that line:",
        "",
        "| budget | choice | predicted | measured | best other | ≥ best − 1 std |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        other = f"{r['best_other']} {r['best_other_mean']:.3f}±{r['best_other_std']:.3f}" if r["best_other"] else "—"
        lines.append(
            f"| {r['budget']:,} B | {', '.join(r['choices'])} | {r['predicted']:.3f} | "
            f"{r['measured']:.3f}±{r['measured_std']:.3f} | {other} | {'yes' if r['never_worse'] else '**no**'} |"
        )
    return lines


def _cell(s: dict) -> str:
    what = "parameters" if s["method"].startswith("model") else "items"
    items = f", {int(round(s['items'])):,} {what}" if s.get("items") is not None else ""
    tag = f"{s['variant']}: " if s.get("variant") and s["method"].startswith("model") else ""
    return f"{tag}{s['mean']:.3f}±{s['std']:.3f} ({int(round(s['bytes'])):,} B{items})"


def splice_results(text: str, section: str, tag: str = "bench") -> str:
    """``text`` with the block between ``<!-- TAG:start -->`` and ``<!-- TAG:end -->`` replaced by ``section``
    (the markers appended under a heading when absent)."""
    start, end = f"<!-- {tag}:start -->", f"<!-- {tag}:end -->"
    block = f"{start}\n{section}\n{end}"
    if start in text and end in text:
        return text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    title = "## Equitable benchmark: labels vs. images vs. models vs. distilled data"
    return text.rstrip("\n") + f"\n\n{title}\n\n" + block + "\n"


def update_results_md(path: str | os.PathLike, section: str, tag: str = "bench") -> None:
    """Replace the text between the ``tag`` markers in ``path`` (append the markers when absent)."""
    p = Path(path)
    text = splice_results(p.read_text() if p.exists() else "# Results\n", section, tag)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, p)


def write_report(
    result: dict, json_path: str | os.PathLike, plots: str | os.PathLike | None, results_md, tag: str | None = None
) -> None:
    """Write the JSON, a plot per scenario and the results.md block(s): one ``bench-SCENARIO`` block per scenario
    unless ``tag`` names one block for them all."""
    result["json"] = str(json_path)
    jp = Path(json_path)
    jp.parent.mkdir(parents=True, exist_ok=True)
    tmp = jp.with_name(jp.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=float))
    os.replace(tmp, jp)
    if plots:
        for name in result["scenarios"]:
            plot(result, name, Path(plots) / f"accuracy_vs_bytes_{name}.png")
    if results_md and tag:
        update_results_md(results_md, markdown(result), tag)
    elif results_md:
        for name, sc in result["scenarios"].items():
            update_results_md(results_md, markdown({**result, "scenarios": {name: sc}}), f"bench-{name}")


summarise = _summarise
