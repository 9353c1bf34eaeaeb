"""``labelcast evaluate``."""

from __future__ import annotations

import click

from ...cli import emit


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--data", required=True, help="Labelled data: builtin:NAME:test, folder:PATH or npy:PATH.")
@click.option("--json", "as_json", is_flag=True, help="Last line: a JSON object with accuracy and items.")
def evaluate(model: str, data: str, as_json: bool) -> None:
    """Accuracy of an ONNX classifier on labelled DATA, with ONNX Runtime."""
    from ...datasets.sources import SourceError, load_labelled
    from ..evaluate import evaluate as do_eval
    from ..evaluate import load_session

    _, pp = load_session(model)
    try:
        x, y, _ = load_labelled(data, size=pp.size, channels=pp.channels)
    except SourceError as e:
        raise click.BadParameter(str(e), param_hint="--data") from None
    res = do_eval(model, x, y)
    res.update(model=model, data=data)
    emit(res, as_json, [f"accuracy {res['accuracy']:.4f} on {res['items']} items of {data}"])
