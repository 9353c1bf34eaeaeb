"""``labelcast send``."""

from __future__ import annotations

import click

from ..._progress import bar
from ...cli import InputError, emit
from ...errors import ConfigError
from ..selection import STRATEGIES
from .teacher import engine_options, teacher_options


@click.command()
@click.option("--teacher", required=True, type=click.Path(exists=True, dir_okay=False), help="Teacher ONNX file.")
@click.option("--reference", required=True, type=click.Path(exists=True, file_okay=False), help="Reference store.")
@click.option("--key", required=True, type=click.Path(dir_okay=False), help="Private key (sender.key).")
@click.option(
    "--link", default=None, help="Link profile name or .toml path (default iridium-sbd-mt; with --to, the ledger's)."
)
@click.option(
    "--budget",
    type=click.IntRange(64, None),
    default=None,
    help="Bytes on the link (frames × frame size). Default 8192.",
)
@click.option(
    "--seconds",
    type=click.FloatRange(0, None, min_open=True),
    default=None,
    help="Time budget on the link instead of bytes.",
)
@click.option(
    "--keep",
    type=click.FloatRange(0, 1, min_open=True),
    default=None,
    help="Fixed fraction of the reference set (overrides the budget).",
)
@click.option(
    "--strategy",
    type=click.Choice(("auto", *STRATEGIES)),
    default="auto",
    show_default=True,
    help="auto: random-keyed (random items in the codec's keyed order, no position bits; best with a "
    "`reference build --clusters K` store) when the pool is near the teacher's domain, energy-high with "
    "soft labels (4 runner-ups, T = 2) when it is far (the teacher's median confidence on the pool has lost "
    "> 15 % of its margin over chance; EL2N-easy with hard labels if the budget leaves < 20 items per class).",
)
@click.option("--quota/--no-quota", default=True, show_default=True, help="Per-class quota over pseudo-labels.")
@click.option("--alpha", type=click.FloatRange(0, 1), default=0.0, show_default=True, help="Quota exponent.")
@click.option(
    "--keyed",
    is_flag=True,
    help="Keep the strategy's count per reference group but draw the items in the codec's keyed order "
    "(no position bits; for ranked strategies on content-clustered stores).",
)
@click.option(
    "--detector",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Second ONNX model: refine the selection (flag and replace contradicted items).",
)
@click.option("--soft", is_flag=True, help="Add soft labels (top classes with quantised probabilities).")
@click.option(
    "--soft-extra", type=click.IntRange(0, 8), default=2, show_default=True, help="Runner-up classes per soft label."
)
@click.option(
    "--soft-temperature",
    type=click.FloatRange(0, None, min_open=True),
    default=1.0,
    show_default=True,
    help="Soft labels are softmax(logits / T).",
)
@click.option(
    "--field",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="A device's field sketch (`labelcast field sketch`): the labels follow the class mix it sees, every "
    "class keeping a floor.",
)
@click.option(
    "--names/--no-names",
    default=None,
    help="Send the class names always / never (default: when they cost at most 5% of the budget, and on a "
    "delta only when the device's chain lacks them).",
)
@click.option(
    "--sequence", type=click.IntRange(1, None), default=None, help="Sequence number (default: counter beside the key)."
)
@click.option(
    "--expires-in",
    type=click.FloatRange(60, None),
    default=30 * 86400.0,
    show_default=True,
    help="Seconds until expiry.",
)
@click.option(
    "--delivery",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.999,
    show_default=True,
    help="Probability the payload rebuilds on a lossy link; parity follows the link's loss model "
    "(0 parity on links that retransmit, e.g. Iridium SBD).",
)
@click.option(
    "--overhead",
    type=click.IntRange(0, 1000),
    default=None,
    help="Fixed parity frames per 100 data frames (overrides --delivery). 0: no parity at all, spare budget "
    "unused (a closed loop: the device reports what is missing, `labelcast repair` sends only that).",
)
@click.option("--force", is_flag=True, help="Replace the payload and frames already in OUT.")
@click.option(
    "--semi/--no-semi",
    default=None,
    help="Tell a device on `receive --semi auto` to run (or skip) its semi-supervised round over the "
    "unlabelled store (a 10-11 B hint). Default: no hint; the device decides by labels per class.",
)
@click.option(
    "--validation-every",
    type=click.IntRange(0, None),
    default=10,
    show_default=True,
    help="Hold back every n-th labelled item for the device's A/B check (those are not trained on; the hint "
    "costs 15-18 B). 0: none, and a device that has a model keeps the new one aside.",
)
@engine_options()
@click.option(
    "--target",
    default=None,
    help="The sender's labelled target data (any source form): the planner simulates the device on a held-back "
    "slice of it and may send some of its images as exemplars. With the default --strategy auto it turns the "
    "planner on.",
)
@click.option(
    "--target-labels",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="Labels .npy for an npy: target.",
)
@click.option(
    "--plan/--no-plan",
    "plan",
    default=None,
    help="Simulate the device on the ground and send the best payload (default: with auto and --target).",
)
@click.option(
    "--plan-candidates",
    type=click.IntRange(0, None),
    default=0,
    show_default=True,
    help="Simulate only the first N candidates in prior order (0: all). The planner is bounded by work, never "
    "by the clock: the same inputs plan the same payload on a busy machine.",
)
@click.option(
    "--plan-train-samples",
    type=click.IntRange(500, None),
    default=12_000,
    show_default=True,
    help="Images each simulated student sees (the device's recipe on a short schedule).",
)
@click.option(
    "--distill-iters",
    "plan_distill_iters",
    type=click.IntRange(0, 100_000),
    default=300,
    show_default=True,
    help="DM iterations distilling the target into synthetic exemplars for the planner (once per target, "
    "cached; 0: send real target images only).",
)
@click.option("--device", default="cpu-small", show_default=True, help="The device profile the planner simulates.")
@click.option(
    "--parent",
    default=None,
    type=click.Path(exists=True),
    help="The previous outbox (or its send-report.json): send only the difference from the labelled set the "
    "device holds after it (relabels, new classes, new items); a full payload when that is smaller.",
)
@click.option(
    "--to",
    "to",
    multiple=True,
    help="Registered device (`fleet add`; repeatable for a group on one store): link, store and parent from the "
    "fleet ledger, and the payload recorded there.",
)
@click.option("--ledger", default=None, type=click.Path(dir_okay=False), help="The fleet ledger (with --to).")
@click.option(
    "--seal-to",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A device's device.pub: seal the payload to it (encrypted, a 16-byte tag instead of the 64-byte "
    "signature; only that device opens it, with receive --device-key). Repeated: a group payload, signed, its "
    "body readable by each device named (52 B each). docs/security.md.",
)
@click.option(
    "--announce-key",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="A new sender key's sender.pub, announced to the devices under this key (a rotation: they trust it "
    "from this payload on; costs ~90 B of hints). docs/security.md.",
)
@click.option(
    "--seal", is_flag=True, help="With --to: seal the payload to the devices' registered keys (one, or a group)."
)
@teacher_options()
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Outbox folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def send(**o) -> None:
    """Score the reference set, select, encode, sign and frame a payload into OUT."""
    from ...codec.manifest import ReferenceStore
    from ..send import send as do_send
    from .teacher import open_teacher

    if o["seal"] and not o["to"]:
        raise click.UsageError("--seal seals to the device named by --to; without the ledger give --seal-to FILE")
    cfg = _config(o)
    store = ReferenceStore(o["reference"])
    t = open_teacher(o["teacher"], o["spec"], o["input_name"], o["output_name"], o["provider"])
    try:
        with bar(store.n, "score", "item") as tick:
            if o["to"]:
                from ..ledger import Ledger, send_to

                with Ledger(o["ledger"]) as lg:
                    rep = send_to(lg, list(o["to"]), t, store, o["key"], o["out"], cfg, seal=o["seal"], progress=tick)
            else:
                rep = do_send(t, store, o["key"], o["out"], cfg, progress=tick)
    except ConfigError as e:  # options that contradict each other: the typing, so the usage line
        raise click.UsageError(str(e)) from None
    except (FileExistsError, ValueError) as e:
        raise InputError(str(e)) from None  # the input's fault, not the typing: no usage line
    emit(rep, o["as_json"], _lines(rep, o["out"]))


def _config(o: dict):
    """The SendConfig the options describe, one part per concern (an unknown link is a bad --link)."""
    from ...profiles import ProfileError, load_link
    from ..budget import LinkSettings
    from ..engines import EngineSettings
    from ..plan import PlanConfig, PlanSettings
    from ..recipe import Recipe
    from ..selection import SelectConfig
    from ..send import SendConfig

    o = {**o, "link": o["link"] or "iridium-sbd-mt"}
    try:
        load_link(o["link"])
    except ProfileError as e:
        raise click.BadParameter(str(e), param_hint="--link") from None
    sel = SelectConfig(o["strategy"], quota=o["quota"], alpha=o["alpha"], seed=o["seed"], keyed=o["keyed"])
    plan = _pick(PlanConfig, o, "plan_", seed=o["seed"])
    return _pick(
        SendConfig,
        o,
        link=_pick(LinkSettings, o, profile=o["link"]),
        recipe=_pick(Recipe, o, select=sel),
        engine=_pick(EngineSettings, o, name=o["engine"]),
        plan=_pick(PlanSettings, o, enabled=o["plan"], config=plan),
        class_names=o["names"],
    )


def _pick(cls, o: dict, prefix: str = "", **given):
    """``cls`` from the options named like its fields (after ``prefix``), and the ``given`` ones: no list of
    option names is kept by hand, and a part's options are found wherever the part is used."""
    from dataclasses import fields

    names = {f.name for f in fields(cls)} - given.keys()
    return cls(**{n: o[prefix + n] for n in names if prefix + n in o}, **given)


def _lines(rep: dict, out: str) -> list[str]:
    lines = [
        f"selected {rep['selected_items']} of {rep['reference_items']} items ({rep['strategy']}"
        + (f", auto: {'far' if rep['auto']['far'] else 'near'} pool" if rep.get("auto") else "")
        + ")"
        + (f" and {rep['exemplars']} exemplars" if rep.get("exemplars") else ""),
        f"payload {rep['payload_bytes']} B → {rep['frames']} frames of {rep['frame_bytes']} B on {rep['link']} "
        f"({rep['parity_frames']} parity, P(delivery) {rep['delivery']['probability']}), "
        f"~{rep['link_seconds']} s on the link",
    ]
    lines += [f"advice: {a}" for a in rep.get("advice", [])]
    lines += [f"warning: {w}" for w in rep.get("warnings", [])]
    d = rep.get("delta")
    if d:
        lines.append(
            f"delta on {d['parent'][:16]}: +{d['added']} items, {d['relabelled']} relabelled, {d['removed']} removed; "
            f"{d['delta_bytes']} B against {d['full_bytes']} B for the full set → sent {d['sent']}"
        )
    pl = rep.get("plan")
    if pl:
        lines.append(
            f"plan ({pl['seconds']} s{', cached' if pl['cached'] else ''}; predicted accuracy on "
            f"{pl['validation_items']} held-back target items, short schedule):"
        )
        dm = pl.get("distillation")
        if dm and not dm.get("note"):
            how = "cached" if dm["cached"] else f"{dm['seconds']} s"
            lines.append(f"  distilled exemplars: {dm['method']}, {dm['iters']} iterations, {how}")
        for c in pl["candidates"]:
            mark = "→" if c["name"] == pl["choice"] else " "
            acc = f"{c['predicted_accuracy']:.3f}" if c["predicted_accuracy"] is not None else c["note"]
            lines.append(f"  {mark} {c['name']:36} {c['labels']:>6} labels {c['exemplars']:>4} exemplars  {acc}")
    fl = rep.get("fleet")
    if fl:
        lines.append(f"for {', '.join(fl['to'])} (recorded in {fl['ledger']}): {fl['why']}")
    lines.append(f"outbox {out}: payload.lcst, frames/, send-report.json")
    return lines
