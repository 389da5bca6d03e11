"""``train``: compare candidate models on the validation split, pick one, measure it, export it.

The rules, in the order they are applied:

1. Every candidate is tuned and compared on the VALIDATION split only (``PredefinedSplit``: fit on the
   training split or its subsample, score on validation). Test sets are never looked at before step 4.
2. Winner: the highest validation macro-F1 (threshold 0.5), ROC-AUC breaking ties within 0.001, among
   the candidates the production graph can serve (``TweetSentimentModel``) whose feature count lies in
   ``[min_features, max_features]``; when none does, the best servable candidate of any size.
3. Threshold: the one that maximises the winner's validation macro-F1 (``metrics.choose_threshold``).
   No refit: the production model is exactly the one fitted on the training split, so the threshold
   and every validation figure describe the model that ships.
4. The winner (and the baseline, for comparison) are measured on the internal test split and on every
   external test set; with ``--export`` the ONNX file, the model card and its figures are written.
"""

from __future__ import annotations

import csv
import json
import pickle
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, PredefinedSplit, RandomizedSearchCV, train_test_split
from threadpoolctl import threadpool_limits

from training import plots, tracking
from training.candidates import DEFAULT_CANDIDATES, SEED, Candidate, all_candidates
from training.dataset import Dataset, Split
from training.metrics import PERF_COLUMNS, binary_metrics, choose_threshold, headline

console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)


@dataclass
class CandidateResult:
    """One fitted candidate with its validation figures (a row of ``perf_models.csv``)."""

    candidate: Candidate
    model: object
    metrics: dict
    validation_negative_probability: np.ndarray
    row: dict
    search_rows: list[dict] = field(default_factory=list)


@dataclass
class TrainingResult:
    results: dict[str, CandidateResult]
    winner: str
    threshold: float
    test_metrics: dict[str, dict]  # test set -> metrics of the winner
    baseline_test_metrics: dict[str, dict]  # same for the baseline (when it was a candidate)
    out_dir: Path
    export: dict | None = None


# -------------------------------------------------------------------------------- fitting and search


def negative_probability(model, texts: Sequence[str]) -> np.ndarray:
    """Column 0 of ``predict_proba``: every candidate family answers it."""
    return np.asarray(model.predict_proba(list(texts)))[:, 0]


def _training_rows(split: Split, size: int | None, seed: int) -> tuple[list[str], np.ndarray]:
    """The whole training split, or a stratified deterministic subsample of ``size`` rows."""
    if size is None or size >= len(split.texts):
        return list(split.texts), np.asarray(split.labels)
    texts, _, labels, _ = train_test_split(
        split.texts, split.labels, train_size=size, random_state=seed, stratify=split.labels
    )
    return list(texts), np.asarray(labels)


def _predefined_split(texts, labels, validation: Split):
    """Train rows in no fold (always fitted on), validation rows in fold 0 (always scored on)."""
    folds = PredefinedSplit([-1] * len(texts) + [0] * len(validation.texts))
    return folds, np.concatenate([labels, validation.labels]).astype(int)


def _search_rows(search) -> list[dict]:
    results = search.cv_results_
    return [
        {"params": results["params"][i], "validation_f1": float(results["mean_test_score"][i])}
        for i in range(len(results["params"]))
    ]


def _search(candidate: Candidate, texts, labels, validation: Split, seed: int):
    """Tune on validation: fit on ``texts`` (fold -1), score on the validation split (fold 0)."""
    folds, every_label = _predefined_split(texts, labels, validation)
    every_text = list(texts) + list(validation.texts)
    common = {"scoring": "f1_macro", "cv": folds, "refit": False, "n_jobs": 1, "error_score": "raise"}
    if candidate.search == "random":
        search = RandomizedSearchCV(
            candidate.build(), candidate.grid, n_iter=candidate.n_iter, random_state=seed, **common
        )
    else:
        search = GridSearchCV(candidate.build(), candidate.grid, **common)
    search.fit(every_text, every_label)
    return search.best_params_, _search_rows(search)


def _search_classifier(candidate: Candidate, model, texts, labels, validation: Split):
    """Tune the final classifier of a fitted model on validation, its features computed only once.

    For a ``TweetSentimentModel`` the features are ``model.transform`` (NB-weighted as the model does)
    and the classifier is its logistic regression; for a ``Pipeline`` they are every step but the last.
    Neither depends on the searched parameters, so ``GridSearchCV`` refits only the classifier.
    """
    from scipy import sparse
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline):
        prefix = model.steps[-1][0] + "__"
        featurize, classifier = model[:-1].transform, model[-1]
    else:
        prefix = ""
        featurize, classifier = model.transform, model.classifier_
    features = sparse.vstack([featurize(texts), featurize(validation.texts)], format="csr")
    if getattr(model, "nb_weighting", False):
        features = sparse.csr_matrix(features.multiply(model.nb_ratio_[np.newaxis, :]))
    grids = candidate.grid if isinstance(candidate.grid, list) else [candidate.grid]
    grid = [{key.removeprefix(prefix): values for key, values in one.items()} for one in grids]
    folds, every_label = _predefined_split(texts, labels, validation)
    scoring = {"f1": "f1_macro", "roc_auc": "roc_auc"}
    search = GridSearchCV(clone(classifier), grid, scoring=scoring, cv=folds, refit=False, n_jobs=1)
    search.fit(features, every_label)
    results = search.cv_results_
    rows = [
        {
            "params": {prefix + key: value for key, value in params.items()},
            "validation_f1": float(results["mean_test_f1"][i]),
            "validation_roc_auc": float(results["mean_test_roc_auc"][i]),
        }
        for i, params in enumerate(results["params"])
    ]
    best = max(rows, key=lambda row: (round(row["validation_f1"], 3), row["validation_roc_auc"]))
    return dict(best["params"]), rows


def fit_candidate(candidate: Candidate, train: Split, validation: Split, seed: int = SEED) -> CandidateResult:
    """Search (when the candidate has a grid), fit the best parameters, score the validation split."""
    texts, labels = _training_rows(train, candidate.subsample, seed)
    best_params, search_rows, search_time = {}, [], 0.0
    model = clone(candidate.build())
    if candidate.search == "classifier":
        # Fit once, tune the classifier on the cached features, refit only if the best setting differs.
        started = time.perf_counter()
        model.fit(texts, labels)
        fit_time = time.perf_counter() - started
        started = time.perf_counter()
        best_params, search_rows = _search_classifier(candidate, model, texts, labels, validation)
        search_time = time.perf_counter() - started
        if any(model.get_params()[key] != value for key, value in best_params.items()):
            started = time.perf_counter()
            model = clone(model).set_params(**best_params).fit(texts, labels)
            fit_time = time.perf_counter() - started
    else:
        if candidate.search != "none" and candidate.grid:
            started = time.perf_counter()
            best_params, search_rows = _search(candidate, texts, labels, validation, seed)
            search_time = time.perf_counter() - started
        model.set_params(**best_params)
        started = time.perf_counter()
        model.fit(texts, labels)
        fit_time = time.perf_counter() - started
    started = time.perf_counter()
    p_negative = negative_probability(model, validation.texts)
    scoring_time = time.perf_counter() - started
    metrics = binary_metrics(validation.labels, p_negative)
    search_note = "none"
    if search_rows:
        kind = (
            "grid search of the classifier"
            if candidate.search == "classifier"
            else f"{candidate.search} search"
        )
        search_note = f"{kind}, {len(search_rows)} settings, scored on validation"
    if candidate.subsample and candidate.subsample < len(train.texts):
        search_note += f"; fitted on a {len(texts):,}-row stratified subsample of train (speed)"
    row = {
        "candidate": candidate.name,
        "description": candidate.description,
        **headline(metrics),
        "fit_time_s": round(fit_time, 2),
        "search_time_s": round(search_time, 2),
        "scoring_time_s": round(scoring_time, 3),
        "model_size_bytes": len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)),
        "n_features": _n_features(model),
        "train_rows": len(texts),
        "search": search_note,
        "best_params": json.dumps(_jsonable(best_params), sort_keys=True),
        "exportable": candidate.exportable,
    }
    return CandidateResult(candidate, model, metrics, p_negative, row, search_rows)


def _n_features(model) -> int | None:
    if hasattr(model, "n_features_"):
        return int(model.n_features_)
    steps = getattr(model, "named_steps", {})
    for name in ("features", "tfidf"):
        if name in steps:
            step = steps[name]
            vocabularies = (
                [t.vocabulary_ for _, t in step.transformer_list]
                if name == "features"
                else [step.vocabulary_]
            )
            return int(sum(len(v) for v in vocabularies))
    return None


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


# -------------------------------------------------------------------------------- selection


def select_winner(
    results: dict[str, CandidateResult], min_features: int = 0, max_features: int | None = None
) -> str:
    """Rule 2 of the module docstring."""

    def key(name: str):
        metrics = results[name].metrics
        return (round(metrics["f1"], 3), metrics["roc_auc"] or 0.0)

    servable = [name for name, result in results.items() if result.candidate.exportable]
    if not servable:
        raise ValueError("no candidate can be exported: include baseline, logreg_tuned or nb_logreg")
    sized = [
        name
        for name in servable
        if (results[name].row["n_features"] or 0) >= min_features
        and (max_features is None or (results[name].row["n_features"] or 0) <= max_features)
    ]
    if not sized:
        console.print(
            f"[yellow]no servable candidate has {min_features:,} to {max_features or 'any'} features; "
            "choosing among all servable candidates[/yellow]"
        )
        sized = servable
    return max(sized, key=key)


def evaluate_sets(model, threshold: float, splits: dict[str, Split]) -> dict[str, dict]:
    """The model's metrics at ``threshold`` on each named split."""
    out = {}
    for name, split in splits.items():
        out[name] = binary_metrics(split.labels, negative_probability(model, split.texts), threshold)
    return out


# -------------------------------------------------------------------------------- reports


def write_perf_csv(results: dict[str, CandidateResult], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=PERF_COLUMNS)
        writer.writeheader()
        for result in results.values():
            writer.writerow(result.row)
    return path


def write_search_csv(results: dict[str, CandidateResult], path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["candidate", "params", "validation_f1", "validation_roc_auc"])
        for name, result in results.items():
            for row in result.search_rows:
                writer.writerow(
                    [
                        name,
                        json.dumps(_jsonable(row["params"]), sort_keys=True),
                        round(row["validation_f1"], 4),
                        round(row["validation_roc_auc"], 4) if "validation_roc_auc" in row else "",
                    ]
                )
    return path


def _print_table(results: dict[str, CandidateResult], winner: str | None = None) -> None:
    table = Table(title="Candidates on the validation split")
    shown = ("accuracy", "precision", "recall", "f1", "roc_auc", "fit_time_s", "n_features")
    for column in ("candidate", *shown):
        table.add_column(column)
    for name, result in results.items():
        row = result.row
        label = f"{name} *" if name == winner else name
        table.add_row(
            label,
            *(str(row[c]) for c in shown),
        )
    console.print(table)


# -------------------------------------------------------------------------------- the whole run


def run_training(
    dataset: Dataset,
    *,
    candidates: Sequence[str] = DEFAULT_CANDIDATES,
    out_dir: Path = Path("reports/train"),
    seed: int = SEED,
    mlflow_uri: str | None = None,
    export: Path | None = None,
    min_features: int = 0,
    max_features: int | None = None,
    production_params: dict | None = None,
    command_line: str = "",
) -> TrainingResult:
    """Everything ``train`` does once the dataset is built (tests call this directly)."""
    import joblib
    import mlflow

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    registry = all_candidates(production_params)
    unknown = [name for name in candidates if name not in registry]
    if unknown:
        raise ValueError(f"unknown candidates {unknown}; choose from {sorted(registry)}")

    uri = tracking.tracking_uri(mlflow_uri, out_dir / "mlruns")
    results: dict[str, CandidateResult] = {}
    with tracking.start(uri, "train") as parent:
        mlflow.log_params(
            tracking.flat_params(
                {
                    "seed": seed,
                    "candidates": ",".join(candidates),
                    "training_data_fingerprint": dataset.fingerprint,
                    "train_rows": len(dataset.train),
                    "validation_rows": len(dataset.validation),
                    "min_features": min_features,
                    "max_features": max_features,
                }
            )
        )
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
        )
        with progress:
            task = progress.add_task("candidates", total=len(candidates))
            # One thread per native pool (OpenMP in gradient boosting, BLAS): the machine is shared, and
            # spinning OpenMP workers on a busy machine cost more than they give.
            with threadpool_limits(limits=1):
                _fit_all(candidates, registry, dataset, seed, results, progress, task)

        winner = select_winner(results, min_features, max_features)
        model = results[winner].model
        threshold = choose_threshold(
            dataset.validation.labels, results[winner].validation_negative_probability
        )
        if hasattr(model, "threshold"):
            model.set_params(threshold=threshold)
        _print_table(results, winner)
        console.print(f"winner: [bold]{winner}[/bold], validation-chosen threshold {threshold:.2f}")

        test_splits = {"test": dataset.test, **dataset.external}
        test_metrics = evaluate_sets(model, threshold, test_splits)
        baseline_metrics = {}
        if "baseline" in results:
            baseline_metrics = evaluate_sets(results["baseline"].model, 0.5, test_splits)
        validation_metrics = binary_metrics(
            dataset.validation.labels, results[winner].validation_negative_probability, threshold
        )

        perf_csv = write_perf_csv(results, out_dir / "perf_models.csv")
        search_csv = write_search_csv(results, out_dir / "search_results.csv")
        chart = plots.comparison_chart([r.row for r in results.values()], out_dir / "candidates.png")
        joblib.dump(model, out_dir / "model.joblib")
        summary = {
            "winner": winner,
            "selection_rule": __doc__.split("2. ")[1].split("3. ")[0].strip().replace("\n   ", " "),
            "threshold": threshold,
            "params": _jsonable(model.get_params()),
            "n_features": results[winner].row["n_features"],
            "validation": validation_metrics,
            "test_metrics": test_metrics,
            "baseline_test_metrics": baseline_metrics,
            "training_data_fingerprint": dataset.fingerprint,
            "dataset_report": dataset.report,
            "command_line": command_line,
        }
        (out_dir / "summary.json").write_text(json.dumps(_jsonable(summary), indent=2), encoding="utf-8")
        mlflow.log_params({"winner": winner, "threshold": threshold})
        mlflow.log_metrics(tracking.flat_metrics({"validation": headline(validation_metrics)}))
        mlflow.log_metrics(tracking.flat_metrics({name: headline(m) for name, m in test_metrics.items()}))
        for artifact in (perf_csv, search_csv, chart, out_dir / "summary.json"):
            mlflow.log_artifact(str(artifact))

        training = TrainingResult(results, winner, threshold, test_metrics, baseline_metrics, out_dir)
        if export is not None:
            training.export = _export(training, dataset, Path(export), command_line)
            mlflow.log_param("onnx_model_version", training.export["model_version"])
            mlflow.log_artifact(str(export))
            card = Path(training.export["model_card"])
            mlflow.log_artifact(str(card))
        console.print(f"MLflow run {parent.info.run_id} in {uri}")
    return training


def _fit_all(candidates, registry, dataset: Dataset, seed: int, results: dict, progress, task) -> None:
    for name in candidates:
        progress.update(task, description=f"fitting {name}")
        result = fit_candidate(registry[name], dataset.train, dataset.validation, seed)
        results[name] = result
        _log_candidate(result)
        progress.advance(task)


def _log_candidate(result: CandidateResult) -> None:
    """One nested MLflow run per candidate, one nested run below it per search setting."""
    import mlflow

    params = _jsonable(result.model.get_params(deep=False)) if hasattr(result.model, "get_params") else {}
    with mlflow.start_run(run_name=result.candidate.name, nested=True):
        mlflow.log_params(tracking.flat_params({"candidate": result.candidate.name, **params}))
        mlflow.log_param("search", result.row["search"])
        mlflow.log_metrics(
            tracking.flat_metrics(
                {
                    **headline(result.metrics),
                    "fit_time_s": result.row["fit_time_s"],
                    "search_time_s": result.row["search_time_s"],
                    "scoring_time_s": result.row["scoring_time_s"],
                    "model_size_bytes": result.row["model_size_bytes"],
                }
            )
        )
        for index, search_row in enumerate(result.search_rows):
            with mlflow.start_run(run_name=f"{result.candidate.name}-{index}", nested=True):
                mlflow.log_params(tracking.flat_params(_jsonable(search_row["params"])))
                mlflow.log_metrics({k: v for k, v in search_row.items() if k.startswith("validation_")})


def _export(training: TrainingResult, dataset: Dataset, path: Path, command_line: str) -> dict:
    """ONNX file (through the parity gate), figures and model card next to it."""
    from training import model_card
    from training.onnx_export import export_model

    model = training.results[training.winner].model
    parity_texts = [
        *dataset.validation.texts,
        *dataset.test.texts,
        *(text for split in dataset.external.values() for text in split.texts),
    ]
    metadata = {
        "training_data_fingerprint": dataset.fingerprint,
        "test_metrics": {name: headline(m) | {"n": m["n"]} for name, m in training.test_metrics.items()},
        "threshold": training.threshold,
    }
    with console.status("exporting ONNX (parity gate on every evaluation text)"):
        exported = export_model(model, path, parity_texts, metadata)
    figures_dir = path.parent / "figures"
    figures = model_card.write_figures(training, dataset, figures_dir)
    facts = model_card.facts_from_run(training, dataset)
    card = model_card.write_card(facts, exported, figures, path.parent / "README.md", command_line)
    exported["model_card"] = str(card)
    exported["figures"] = [str(f) for f in figures.values()]
    (training.out_dir / "export.json").write_text(json.dumps(_jsonable(exported), indent=2), encoding="utf-8")
    return exported


# -------------------------------------------------------------------------------- command line


def command(
    data_dir: Annotated[
        Path, typer.Option(help="The labelled tweet folder (see shared_recipe for its files).")
    ],
    with_headtail: Annotated[
        bool, typer.Option(help="Add sentiment140/headtail100k.csv to the training split only.")
    ] = False,
    candidates: Annotated[
        list[str] | None,
        typer.Option(help=f"Candidates to compare (repeat). Default: {', '.join(DEFAULT_CANDIDATES)}."),
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Report folder: perf_models.csv, chart, summary, model.joblib.")
    ] = Path("reports/train"),
    mlflow_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else OUT/mlruns).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Split and search seed.")] = SEED,
    export: Annotated[
        Path | None,
        typer.Option(help="Write the winner here as ONNX, with README.md and figures/ beside it."),
    ] = None,
    min_features: Annotated[
        int, typer.Option(help="Smallest feature count the production model may have.")
    ] = 0,
    max_features: Annotated[
        int | None, typer.Option(help="Largest feature count (session creation grows with the vocabulary).")
    ] = None,
) -> None:
    """Compare candidate models on the validation split, pick and measure the winner, optionally export it."""
    from training.dataset import build_dataset, shared_recipe

    known = all_candidates()
    unknown = [name for name in candidates or () if name not in known]
    if unknown:
        raise typer.BadParameter(
            f"unknown {unknown}; choose from {', '.join(known)}", param_hint="--candidates"
        )
    try:
        recipe = shared_recipe(data_dir, with_headtail=with_headtail)
    except FileNotFoundError as error:
        raise typer.BadParameter(str(error), param_hint="--data-dir") from error
    dataset = build_dataset(**recipe, seed=seed)
    run_training(
        dataset,
        candidates=candidates or DEFAULT_CANDIDATES,
        out_dir=out,
        seed=seed,
        mlflow_uri=mlflow_uri,
        export=export,
        min_features=min_features,
        max_features=max_features,
        command_line=_command_line(
            data_dir, with_headtail, candidates, out, seed, export, min_features, max_features
        ),
    )


def _command_line(data_dir, with_headtail, candidates, out, seed, export, min_features, max_features) -> str:
    """The ``train`` invocation that reproduces a run (written into the model card)."""
    parts = ["python -m training train", f"--data-dir {data_dir}"]
    parts += ["--with-headtail"] if with_headtail else []
    parts += [f"--candidates {name}" for name in candidates or []]
    parts += [f"--out {out}", f"--seed {seed}"]
    parts += [f"--min-features {min_features}"] if min_features else []
    parts += [f"--max-features {max_features}"] if max_features else []
    parts += [f"--export {export}"] if export else []
    return " ".join(parts)
