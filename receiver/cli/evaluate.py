"""``labelcast evaluate``."""

from __future__ import annotations

import click

from ...cli import emit


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--data", required=True, help="Labelled data: builtin:NAME:test, folder:PATH, npy:PATH, npz:PATH.")
@click.option("--labels", default=None, type=click.Path(exists=True, dir_okay=False), help="Labels .npy for npy:.")
@click.option("--preprocess", "spec", default=None, help="Preprocessing spec (default: the model's stored one).")
@click.option("--input", "input_name", default=None, help="Input to use, for models with several.")
@click.option("--output", "output_name", default=None, help="Output to use, for models with several.")
@click.option(
    "--provider",
    type=click.Choice(["auto", "cpu", "cuda", "tensorrt"]),
    default="auto",
    show_default=True,
    help="ONNX Runtime execution provider (a TensorRT engine beside the model is used when it loads).",
)
@click.option("--json", "as_json", is_flag=True, help="Last line: a JSON object with accuracy and items.")
def evaluate(model, data, labels, spec, input_name, output_name, provider, as_json) -> None:
    """Accuracy of a classifier on labelled DATA; classes are matched to the model's by name."""
    from ...codec.errors import SourceError
    from ...datasets.sources import load_labelled
    from ..errors import ModelError
    from ..evaluate import evaluate as do_eval
    from ..serve import OnnxClassifier, resolve_spec

    try:
        pp = resolve_spec(spec)
    except (ValueError, ModelError) as e:
        raise click.BadParameter(str(e), param_hint="--preprocess") from None
    try:
        probe = OnnxClassifier(model, pp, input_name=input_name, output_name=output_name)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--preprocess") from None
    folder = data.startswith("folder:") and probe.modality == "image"
    size, ch = (probe.preprocess.hw, probe.preprocess.channels) if folder else (None, None)
    try:
        x, y, names = load_labelled(data, size, ch, labels=labels)
        res = do_eval(
            model,
            x,
            y,
            class_names=names,
            preprocess=pp,
            providers=provider,
            input_name=input_name,
            output_name=output_name,
        )
    except SourceError as e:
        raise click.BadParameter(str(e), param_hint="--data") from None
    res.update(model=model, data=data)
    for n in res["notes"]:
        click.echo(n, err=True)
    per = ", ".join(f"{k} {v:.3f}" for k, v in res["per_class_accuracy"].items())
    emit(res, as_json, [f"accuracy {res['accuracy']:.4f} on {res['items']} items of {data} ({res['backend']})", per])
