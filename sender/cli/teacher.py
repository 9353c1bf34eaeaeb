"""``labelcast teacher train|inspect|calibrate``."""

from __future__ import annotations

from pathlib import Path

import click

from ..._progress import bar
from ...cli import InputError, emit
from ...receiver.errors import ModelError

_SPEC_HELP = (
    "Preprocessing spec: a preset (unit, fashion, imagenet, half), inline JSON such as "
    '\'{"size": [24, 32], "channels": 3, "mean": 0.5, "std": 0.5, "layout": "nhwc", "order": "bgr", '
    '"output": "probs"}\', or a .json file (docs/teachers.md).'
)


def preprocess_option(help_text: str = _SPEC_HELP):
    return click.option("--preprocess", "spec", default=None, help=help_text)


def io_options(f):
    f = click.option("--output", "output_name", default=None, help="Output to use, for models with several.")(f)
    return click.option("--input", "input_name", default=None, help="Input to use, for models with several.")(f)


def teacher_options(provider_help: str = "ONNX Runtime execution provider for scoring."):
    """The options every command that scores with a teacher takes, declared once: --preprocess, --input,
    --output, --provider (the function gets spec, input_name, output_name, provider)."""

    def wrap(f):
        f = click.option(
            "--provider",
            type=click.Choice(["auto", "cpu", "cuda", "tensorrt"]),
            default="cpu",
            show_default=True,
            help=provider_help,
        )(f)
        f = click.option(
            "--output", "output_name", default=None, help="Teacher output to use, for models with several."
        )(f)
        f = click.option("--input", "input_name", default=None, help="Teacher input to use, for models with several.")(
            f
        )
        return click.option(
            "--preprocess", "spec", default=None, help="Teacher preprocessing spec (default: its stored one)."
        )(f)

    return wrap


def engine_options(engine_help: str = "Scoring engine."):
    """--engine, --ray-address and --workers, declared once for score and send."""

    def wrap(f):
        f = click.option(
            "--workers",
            type=click.IntRange(1, None),
            default=None,
            help="Ray actors (default: one per CPU of the cluster).",
        )(f)
        f = click.option(
            "--ray-address", default=None, help="Existing Ray cluster address (default: start a local one)."
        )(f)
        return click.option(
            "--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True, help=engine_help
        )(f)

    return wrap


def parse_spec(spec: str | None):
    """An image preprocessing spec, or a text model's ``{"tokenizer": {…}}`` (docs/text.md), read the one way
    both ends read it (:func:`labelcast.receiver.serve.resolve_spec`); a bad one is a usage error."""
    from ...receiver.serve import resolve_spec

    try:
        return resolve_spec(spec)
    except (ValueError, ModelError) as e:
        raise click.BadParameter(str(e), param_hint="--preprocess") from None


def open_teacher(model: str, spec, input_name=None, output_name=None, provider: str = "cpu"):
    """A Teacher for the CLI (a model that does not match is a ModelError, printed without a usage line);
    its notes go to stderr."""
    from ..teacher import Teacher

    t = Teacher(model, parse_spec(spec), input_name=input_name, output_name=output_name, providers=provider)
    for note in t.notes:
        click.echo(note, err=True)
    return t


@click.command()
@click.option(
    "--data",
    required=True,
    help="Labelled source: builtin:NAME:train, folder:PATH, npy:PATH, npz:PATH; text: jsonl:PATH:TEXT:LABEL, "
    "folder:PATH of .txt files, builtin:wordnet:train.",
)
@click.option("--labels", default=None, type=click.Path(exists=True, dir_okay=False), help="Labels .npy for npy:.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="ONNX file to write.")
@click.option("--epochs", type=click.IntRange(1, 1000), default=12, show_default=True, help="Training epochs.")
@click.option(
    "--width", type=click.IntRange(4, 512), default=32, show_default=True, help="Channels of the first block."
)
@click.option("--size", default=None, help="Input size S or HxW. Default: the data's own; 32 for folder: data.")
@click.option("--channels", type=click.Choice(["1", "3"]), default=None, help="Default: the data's own; 3 for folders.")
@preprocess_option("Normalisation the teacher learns with (default: pixels / 255 at the data's size and channels).")
@click.option(
    "--arch",
    type=click.Choice(["cnn", "mlp", "fasttext", "fasttext-small", "textcnn"]),
    default=None,
    help="The teacher's family. Default by the data: cnn (images), mlp (feature vectors, npy: N×D floats), "
    "fasttext (text; fasttext-small and textcnn too, docs/text.md).",
)
@click.option(
    "--validation",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.1,
    show_default=True,
    help="Fraction of every class held back (seeded) to report the exported teacher's validation accuracy; 0: none.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def train(data, labels, out, epochs, width, size, channels, spec, arch, validation, seed, as_json) -> None:
    """Train a built-in teacher (a CNN; fastText-style on text) on labelled DATA; export ONNX."""
    import math

    from ...codec.storage import check_space
    from ...datasets.sources import SourceError, load_labelled
    from ...receiver.text_models import TextTrainConfig
    from ..teacher import TeacherConfig, holdout_split, is_text, train_and_export

    if Path(out).is_dir():
        raise click.BadParameter(f"{out} is a folder; give the .onnx file to write", param_hint="--out")
    check_space(Path(out).absolute().parent, 1 << 20, what=f"the teacher {out}")  # before training, not after
    pp = parse_spec(spec)
    try:
        x, y, names = load_labelled(data, size, int(channels) if channels else None, labels=labels)
    except SourceError as e:
        raise click.BadParameter(str(e), param_hint="--data") from None
    text = is_text(x)
    tok = getattr(pp, "tokenizer", None)
    if pp is not None and text != (tok is not None):
        raise click.BadParameter(
            "the spec's kind (image or tokenizer) does not match the data", param_hint="--preprocess"
        )
    text_archs = ("fasttext", "fasttext-small", "textcnn")
    if arch is not None and text != (arch in text_archs):
        raise click.BadParameter(
            f"{arch} is a {'text' if arch in text_archs else 'image/vector'} teacher; the data holds "
            f"{'text' if text else 'images or vectors'}",
            param_hint="--arch",
        )
    cfg = TeacherConfig(
        seed=seed,
        epochs=epochs,
        width=width,
        preprocess=None if text else pp,
        text_arch=arch if text and arch else "fasttext",
        tokenizer=tok,
        arch="" if text or arch is None else arch,
    )
    tr, _ = holdout_split(y, validation, seed)  # the bar's length; train_and_export holds the same items back
    batch = min(TextTrainConfig.batch, len(tr)) if text else cfg.batch
    try:
        with bar(cfg.epochs * math.ceil(len(tr) / max(batch, 1)), "teacher", "step") as tick:
            result = train_and_export(x, y, names, out, cfg, tick, validation=validation)
    except ValueError as e:
        raise InputError(str(e)) from None  # the input's fault, not the typing: no usage line
    res = {"teacher": out, "items": result.n_items, "classes": names, "seconds": result.seconds}
    line = f"teacher {out}: trained on {result.n_items} items, {len(names)} classes in {result.seconds} s"
    if result.validation_items:
        res["validation"] = result["validation"]
        acc = result.validation_accuracy
        line += f"; validation accuracy {acc:.4f} on {result.validation_items} held-back items"
    emit(res, as_json, [line])


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@preprocess_option()
@io_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def inspect(model: str, spec, input_name, output_name, as_json: bool) -> None:
    """Show a teacher's input, outputs, classes and preprocessing (stored, given or guessed)."""
    t = open_teacher(model, spec, input_name, output_name)
    res = t.describe()
    pp = res["preprocess"]
    if res["modality"] == "text":
        tk = pp["tokenizer"]
        how = (
            f"  tokenizer ({res['preprocess_source']}): hashing v{tk['version']}, vocab {tk['vocab']}, "
            f"seed {tk['seed']}, {tk['length']} ids, char {tk['char_ngrams']}-grams, bigrams {tk['bigrams']}; "
            f"output {pp['output']}"
        )
    elif res["modality"] == "vector":
        v = pp["vector"]
        per = "per feature" if isinstance(v["mean"], list) else f"mean {v['mean']}, std {v['std']}"
        how = f"  preprocessing ({res['preprocess_source']}): vectors of {v['dim']} floats, standardised {per}; "
        how += f"output {v['output']}"
    else:
        how = (
            f"  preprocessing ({res['preprocess_source']}): size {pp['size']}, {pp['channels']} channel(s), "
            f"x·{pp['scale']:.6g}, mean {pp['mean']}, std {pp['std']}, {pp['layout']}, {pp['order']}, "
            f"output {pp['output']}"
        )
    lines = [
        f"{model}",
        f"  input   {res['input']['name']}: {res['input']['shape']} ({res['input']['layout']})"
        + (f", static batch {res['static_batch']}" if res["static_batch"] else ""),
        "  outputs "
        + ", ".join(f"{o['name']}: {o['shape']}" for o in res["outputs"])
        + f" (using {res['output_used']})",
        f"  classes {res['classes']}" + (f": {', '.join(res['class_names'])}" if res["class_names"] else ""),
        how,
        f"  median confidence on its own data: {res['train_confidence'] if res['train_confidence'] else 'unknown'}",
    ]
    lines += [f"  {n}" for n in res["notes"]]
    emit(res, as_json, lines)


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--data",
    required=True,
    help="Images of the teacher's own domain (its training or validation data), any source form.",
)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write here (default: MODEL in place).")
@click.option(
    "--classes",
    default=None,
    help="The model's class names in output order, comma-separated or a file with one per line "
    "(stored as labelcast.classes; payloads carry them to the devices).",
)
@preprocess_option()
@io_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def calibrate(model: str, data: str, out: str | None, classes, spec, input_name, output_name, as_json: bool) -> None:
    """Describe MODEL once: store its preprocessing and its median confidence on its own domain."""
    import numpy as np

    from ...datasets.sources import SourceError, open_source
    from ..teacher import calibrate as do_calibrate

    try:
        src = open_source(data)
        # at most 10,000 images, spread over the whole source (folders come class by class)
        pick = np.unique(np.linspace(0, src.n - 1, min(src.n, 10_000)).astype(np.int64)) if src.n else []
        x = np.concatenate([src.read(int(i), int(i) + 1)[0] for i in pick]) if len(pick) else np.empty((0, 1, 1, 1))
    except SourceError as e:
        raise click.BadParameter(str(e), param_hint="--data") from None
    try:
        res = do_calibrate(
            model,
            x,
            out,
            preprocess=parse_spec(spec),
            input_name=input_name,
            output_name=output_name,
            classes=_class_list(classes),
        )
    except ValueError as e:
        hint = "--classes" if "class names" in str(e) else "--data / --preprocess"
        raise click.BadParameter(str(e), param_hint=hint) from None
    for n in res.notes:
        click.echo(n, err=True)
    lines = [
        f"{res.model}: median confidence {res.train_confidence:.4f} over {res.images} images "
        "(labelcast.train_confidence), preprocessing stored (labelcast.preprocess)"
        + (f", classes {', '.join(res.classes)} (labelcast.classes)" if classes else "")
    ]
    emit(dict(res), as_json, lines)


def _class_list(value: str | None) -> list[str] | None:
    """``--classes``: a file with one name per line, or the names separated by commas."""
    if value is None:
        return None
    p = Path(value)
    names = p.read_text(encoding="utf-8").splitlines() if p.is_file() else value.split(",")
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise click.BadParameter("no class names given", param_hint="--classes")
    return names
