"""``python -m training export``: write a fitted model as ``model/sentiment.onnx``, parity-checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

METADATA_SUFFIX = ".metadata.json"


def metadata_path(model_path: Path) -> Path:
    """``models/best.joblib`` -> ``models/best.metadata.json``: where training leaves the metadata."""
    return model_path.with_name(model_path.stem + METADATA_SUFFIX)


def read_parity_texts(path: Path) -> list[str]:
    """Tweet files (CSV, JSON, Sentiment140, .gz/.zip) through the project reader; anything else is
    read as one raw text per line."""
    if path.suffix.lower() in {".csv", ".json", ".gz", ".zip"}:
        from training.data import read_tweets

        return list(read_tweets(path).texts)
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def command(
    model: Annotated[Path, typer.Option(help="Fitted TweetSentimentModel saved with joblib.")],
    out: Annotated[Path, typer.Option(help="ONNX file to write.")] = Path("model/sentiment.onnx"),
    parity_texts: Annotated[
        list[Path] | None,
        typer.Option(help="Tweet files whose texts must score the same in ONNX (repeatable)."),
    ] = None,
    metadata: Annotated[
        Path | None,
        typer.Option(
            help=f"JSON object of metadata; default: <model stem>{METADATA_SUFFIX} beside the model."
        ),
    ] = None,
) -> None:
    """Export a fitted model to ONNX; the file is written only if onnxruntime matches scikit-learn
    within 1e-5 on the given texts plus built-in adversarial ones."""
    import joblib

    from training.onnx_export import ParityError, export_model
    from training.text_model import TweetSentimentModel

    if not model.is_file():
        raise typer.BadParameter(f"{model} does not exist", param_hint="--model")
    estimator = joblib.load(model)
    if not isinstance(estimator, TweetSentimentModel):
        raise typer.BadParameter(f"{model} holds a {type(estimator).__name__}, not a TweetSentimentModel")
    if metadata is not None and not metadata.is_file():
        raise typer.BadParameter(f"{metadata} does not exist", param_hint="--metadata")
    metadata_file = metadata or metadata_path(model)
    values = json.loads(metadata_file.read_text(encoding="utf-8")) if metadata_file.is_file() else {}
    if not isinstance(values, dict):
        raise typer.BadParameter(f"{metadata_file} must hold a JSON object")
    texts = [text for path in parity_texts or [] for text in read_parity_texts(path)]
    try:
        report = export_model(estimator, out, texts, values)
    except ParityError as error:
        typer.echo(f"refused to write {out}: {error}", err=True)
        raise typer.Exit(code=1) from error
    typer.echo(json.dumps(report, indent=2))
