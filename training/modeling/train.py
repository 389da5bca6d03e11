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

import json
import pickle
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, PredefinedSplit, RandomizedSearchCV, train_test_split
from threadpoolctl import threadpool_limits

from training import tracking
from training.config import DEFAULT_CANDIDATES, SEED, TRAIN_REPORTS
from training.dataset import Dataset, Split
from training.metrics import binary_metrics, choose_threshold, headline, negative_probability
from training.modeling.candidates import Candidate, all_candidates
from training.reporting import plots
from training.reporting.model_card import CardFacts
from training.reporting.tables import jsonable, print_candidates, write_perf_csv, write_search_csv

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


def _training_rows(split: Split, size: int | None, seed: int):
    """(texts, labels, sample weights or None): the whole training split, or a stratified deterministic
    subsample of ``size`` rows."""
    if size is None or size >= len(split.texts):
        return list(split.texts), np.asarray(split.labels), split.weights
    rows = np.arange(len(split.texts))
    chosen, _ = train_test_split(rows, train_size=size, random_state=seed, stratify=split.labels)
    weights = None if split.weights is None else split.weights[chosen]
    return [split.texts[i] for i in chosen], np.asarray(split.labels)[chosen], weights


def fit_params(model, weights: np.ndarray | None, validation_rows: int = 0) -> dict:
    """The ``fit`` keyword that carries sample weights to the model's classifier (none without weights);
    ``validation_rows`` appends weight 1 for the validation rows a predefined-split search also gets."""
    if weights is None:
        return {}
    weights = np.concatenate([weights, np.ones(validation_rows)])
    steps = getattr(model, "steps", None)
    return {f"{steps[-1][0]}__sample_weight": weights} if steps else {"sample_weight": weights}


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


def search_candidate(
    candidate: Candidate,
    texts,
    labels,
    validation: Split,
    seed: int = SEED,
    weights: np.ndarray | None = None,
):
    """Tune on validation: fit on ``texts`` (fold -1), score on the validation split (fold 0).
    ``weights`` are the training rows' sample weights (validation rows are only scored)."""
    folds, every_label = _predefined_split(texts, labels, validation)
    every_text = list(texts) + list(validation.texts)
    common = {"scoring": "f1_macro", "cv": folds, "refit": False, "n_jobs": 1, "error_score": "raise"}
    if candidate.search == "random":
        search = RandomizedSearchCV(
            candidate.build(), candidate.grid, n_iter=candidate.n_iter, random_state=seed, **common
        )
    else:
        search = GridSearchCV(candidate.build(), candidate.grid, **common)
    search.fit(every_text, every_label, **fit_params(candidate.build(), weights, len(validation.texts)))
    return search.best_params_, _search_rows(search)


def search_classifier(
    model, grid: dict | list, texts, labels, validation: Split, weights: np.ndarray | None = None
):
    """Tune the final classifier of a fitted model on validation, its features computed only once.

    A model that exposes ``classifier_input`` (what its fitted ``classifier_`` scores, as
    ``TweetSentimentModel`` does) is tuned on that; for a ``Pipeline`` the features are every step but
    the last. Neither depends on the searched parameters, so ``GridSearchCV`` refits only the classifier.
    Returns the best parameters and one row per setting.
    """
    from scipy import sparse
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline):
        prefix = model.steps[-1][0] + "__"
        featurize, classifier = model[:-1].transform, model[-1]
    else:
        prefix = ""
        featurize, classifier = model.classifier_input, model.classifier_
    features = sparse.vstack([featurize(texts), featurize(validation.texts)], format="csr")
    grids = grid if isinstance(grid, list) else [grid]
    grid = [{key.removeprefix(prefix): values for key, values in one.items()} for one in grids]
    folds, every_label = _predefined_split(texts, labels, validation)
    scoring = {"f1": "f1_macro", "roc_auc": "roc_auc"}
    search = GridSearchCV(clone(classifier), grid, scoring=scoring, cv=folds, refit=False, n_jobs=1)
    search.fit(features, every_label, **fit_params(classifier, weights, len(validation.texts)))
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
    texts, labels, weights = _training_rows(train, candidate.subsample, seed)
    best_params, search_rows, search_time = {}, [], 0.0
    model = clone(candidate.build())
    weighted = fit_params(model, weights)
    if candidate.search == "classifier":
        # Fit once, tune the classifier on the cached features, refit only if the best setting differs.
        started = time.perf_counter()
        model.fit(texts, labels, **weighted)
        fit_time = time.perf_counter() - started
        started = time.perf_counter()
        best_params, search_rows = search_classifier(
            model, candidate.grid, texts, labels, validation, weights
        )
        search_time = time.perf_counter() - started
        if any(model.get_params()[key] != value for key, value in best_params.items()):
            started = time.perf_counter()
            model = clone(model).set_params(**best_params).fit(texts, labels, **weighted)
            fit_time = time.perf_counter() - started
    else:
        if candidate.search != "none" and candidate.grid:
            started = time.perf_counter()
            best_params, search_rows = search_candidate(candidate, texts, labels, validation, seed, weights)
            search_time = time.perf_counter() - started
        model.set_params(**best_params)
        started = time.perf_counter()
        model.fit(texts, labels, **weighted)
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
        "n_features": n_features(model),
        "train_rows": len(texts),
        "search": search_note,
        "best_params": json.dumps(jsonable(best_params), sort_keys=True),
        "exportable": candidate.exportable,
    }
    return CandidateResult(candidate, model, metrics, p_negative, row, search_rows)


def n_features(model) -> int | None:
    """Size of the model's feature space (``None`` when its steps do not say)."""
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
        exportable = [name for name, candidate in all_candidates().items() if candidate.exportable]
        raise ValueError(f"no candidate can be exported: include one of {', '.join(exportable)}")
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


# -------------------------------------------------------------------------------- the whole run


def run_training(
    dataset: Dataset,
    *,
    candidates: Sequence[str] = DEFAULT_CANDIDATES,
    out_dir: Path = TRAIN_REPORTS,
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

    from training.export.artifact import write_metadata

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
        print_candidates(console, results, winner)
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
        training = TrainingResult(results, winner, threshold, test_metrics, baseline_metrics, out_dir)
        joblib.dump(model, out_dir / "model.joblib")
        write_metadata(out_dir / "model.joblib", model_metadata(training, dataset))
        summary = {
            "winner": winner,
            "selection_rule": __doc__.split("2. ")[1].split("3. ")[0].strip().replace("\n   ", " "),
            "threshold": threshold,
            "params": jsonable(model.get_params()),
            "n_features": results[winner].row["n_features"],
            "validation": validation_metrics,
            "test_metrics": test_metrics,
            "baseline_test_metrics": baseline_metrics,
            "training_data_fingerprint": dataset.fingerprint,
            "dataset_report": dataset.report,
            "command_line": command_line,
        }
        (out_dir / "summary.json").write_text(json.dumps(jsonable(summary), indent=2), encoding="utf-8")
        mlflow.log_params({"winner": winner, "threshold": threshold})
        mlflow.log_metrics(tracking.flat_metrics({"validation": headline(validation_metrics)}))
        mlflow.log_metrics(tracking.flat_metrics({name: headline(m) for name, m in test_metrics.items()}))
        for artifact in (perf_csv, search_csv, chart, out_dir / "summary.json"):
            mlflow.log_artifact(str(artifact))

        if export is not None:
            training.export = export_winner(training, dataset, Path(export), command_line)
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
        tracking.log_candidate(result)
        progress.advance(task)


def model_metadata(training: TrainingResult, dataset: Dataset) -> dict:
    """What the ONNX file records about the run: data fingerprint, test figures, threshold, and the
    validation score histogram."""
    return {
        "training_data_fingerprint": dataset.fingerprint,
        "test_metrics": {name: headline(m) | {"n": m["n"]} for name, m in training.test_metrics.items()},
        "threshold": training.threshold,
        # The drift baseline: the score-drift alert compares live traffic's histogram with this one.
        "validation_histogram": score_histogram(
            training.results[training.winner].validation_negative_probability
        ),
    }


def score_histogram(negative_probabilities, bins: int = 10) -> list[int]:
    """Counts of negative probabilities in ``bins`` equal bins over [0, 1] (1.0 in the last), the
    binning serving uses for the SentimentScored ``score_histogram``."""
    values = np.clip(np.asarray(negative_probabilities, dtype=np.float64), 0.0, 1.0)
    index = np.minimum((values * bins).astype(np.int64), bins - 1)
    return np.bincount(index, minlength=bins).astype(int).tolist()


def card_facts(training: TrainingResult, dataset: Dataset) -> CardFacts:
    """What the model card states, from this run."""
    winner = training.results[training.winner]
    return CardFacts(
        winner=training.winner,
        description=winner.candidate.description,
        params=dict(winner.model.get_params()),
        threshold=training.threshold,
        rows=[result.row for result in training.results.values()],
        test_metrics=training.test_metrics,
        baseline_test_metrics=training.baseline_test_metrics,
        report=dataset.report,
        fingerprint=dataset.fingerprint,
    )


def export_winner(training: TrainingResult, dataset: Dataset, path: Path, command_line: str) -> dict:
    """ONNX file (through the parity gate), figures and model card next to it."""
    from training.export.artifact import export_model
    from training.reporting import model_card

    model = training.results[training.winner].model
    parity_texts = [
        *dataset.validation.texts,
        *dataset.test.texts,
        *(text for split in dataset.external.values() for text in split.texts),
    ]
    with console.status("exporting ONNX (parity gate on every evaluation text)"):
        exported = export_model(model, path, parity_texts, model_metadata(training, dataset))
    splits = {"test": dataset.test, **dataset.external}
    curves = {name: (s.labels, negative_probability(model, s.texts)) for name, s in splits.items()}
    facts = card_facts(training, dataset)
    figures = model_card.write_figures(facts, curves, path.parent / "figures")
    card = model_card.write_card(facts, exported, figures, path.parent / "README.md", command_line)
    exported["model_card"] = str(card)
    exported["figures"] = [str(f) for f in figures.values()]
    (training.out_dir / "export.json").write_text(json.dumps(jsonable(exported), indent=2), encoding="utf-8")
    return exported
