"""``labelcast profiles list|show``."""

from __future__ import annotations

import dataclasses

import click

from .cli import emit


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_cmd(as_json: bool) -> None:
    """List the built-in link and device profiles."""
    from .profiles import list_profiles

    res = {"links": list_profiles("links"), "devices": list_profiles("devices")}
    emit(res, as_json, [f"links:   {', '.join(res['links'])}", f"devices: {', '.join(res['devices'])}"])


def _student_rows(prof, size: tuple[int, int], channels: int) -> list[dict]:
    """Each built-in student's size, MACs and the batch the trainer would plan at this device's budget."""
    import numpy as np

    from .receiver.students import ARCHS, describe_student
    from .receiver.train import plan_training

    x = np.zeros((1000, *size, channels), dtype=np.uint8)
    rows = []
    for arch in ARCHS:
        d = describe_student(arch, channels, size)
        try:
            from .receiver.train import StudentConfig

            plan = plan_training(x, 10, False, prof, StudentConfig(arch=arch))
            batch = plan["memory_plan"]["max_batch"]
        except Exception as e:  # BudgetError: this student does not fit the device
            batch = f"does not fit ({type(e).__name__})"
        rows.append({**d, "planned_batch": batch})
    return rows


def _rows(res: dict, units: dict, indent: str = "") -> list[str]:
    return [
        f"{indent}{k:{22 - len(indent)}} {v}{(' ' + units[k]) if k in units else ''}"
        for k, v in res.items()
        if not isinstance(v, dict)
    ]


@click.command("show")
@click.argument("name")
@click.option("--students", is_flag=True, help="Devices: each built-in student's parameters, MACs and planned batch.")
@click.option("--size", default="32", show_default=True, help="With --students: input size S or HxW.")
@click.option("--channels", type=click.Choice(["1", "3"]), default="3", show_default=True, help="With --students.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_cmd(name: str, students: bool, size: str, channels: str, as_json: bool) -> None:
    """Show one profile (a link or a device) by NAME or .toml path, with units."""
    from .datasets.sources import parse_size
    from .profiles import DeviceProfile, ProfileError, load_profile

    try:
        prof = load_profile(name)
    except ProfileError as e:
        raise click.BadParameter(str(e), param_hint="NAME") from None
    res = dataclasses.asdict(prof)
    lines = _rows(res, prof.units())
    if "return_link" in res:  # the link's return path: receipts and NAKs
        lines += ["[return] (device to ground)"] + _rows(res["return_link"], prof.return_link.units(), "  ")
    if students:
        if not isinstance(prof, DeviceProfile):
            raise click.UsageError("--students applies to device profiles")
        rows = _student_rows(prof, parse_size(size), int(channels))
        res["students"] = rows
        lines.append(f"students at {size} px × {channels} channel(s), budget {prof.budget_bytes >> 20} MiB:")
        lines += [
            f"  {r['arch']:16} {r['params']:>10,} params {r['macs']:>14,} MACs  batch {r['planned_batch']}"
            for r in rows
        ]
    emit(res, as_json, lines)
