"""The model search behind the production configuration: feature settings x classifier settings.

``python -m training search --data-dir DIR --out reports/search [--headtail no --headtail yes]``

For each training-data choice (with or without the train-only Sentiment140 head/tail file) and each
feature setting of ``TweetSentimentModel`` (word/char n-grams, vocabulary sizes, sublinear tf, NB
weighting), the model is fitted once and its logistic regression is tuned on the cached features
(C, class weight). Every setting is scored on the VALIDATION split only and logged to MLflow; the
best one (macro-F1, ROC-AUC breaking ties within 0.001) among those with an allowed feature count is
what ``training/modeling/candidates.py`` ships as ``PRODUCTION_PARAMS``.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from training import tracking
from training.config import SEARCH_REPORTS, SEED
from training.modeling.text_model import TweetSentimentModel

BASE = {"word_ngram_range": (1, 3), "word_max_features": 200_000, "char_ngram_range": (2, 5)}
BASE |= {"char_max_features": 300_000, "sublinear_tf": True}
FEATURE_SETTINGS = {
    "w13-200k_c25-300k_sub": BASE,
    "w13-200k_c25-300k_rawtf": BASE | {"sublinear_tf": False},
    "w13-200k_c25-300k_sub_nb": BASE | {"nb_weighting": True},
    "w13-200k_c25-300k_occ_nb": BASE | {"sublinear_tf": False, "norm": "occurrence_l2", "nb_weighting": True},
    "w13-300k_c25-300k_sub": BASE | {"word_max_features": 300_000},
    "w13-300k_c25-300k_sub_nb": BASE | {"word_max_features": 300_000, "nb_weighting": True},
    "w13-200k_c36-300k_sub": BASE | {"char_ngram_range": (3, 6)},
    "w12-200k_c14-200k_sub": BASE
    | {"word_ngram_range": (1, 2), "char_ngram_range": (1, 4), "char_max_features": 200_000},
    "w13-400k_sub": BASE
    | {"word_max_features": 400_000, "char_ngram_range": None, "char_max_features": None},
    "baseline_w12-50k": {"word_ngram_range": (1, 2), "word_max_features": 50_000},
}
CLASSIFIER_GRID = [
    {"C": [0.25, 0.5, 1.0, 2.0, 4.0], "class_weight": [None]},
    {"C": [0.5, 1.0], "class_weight": ["balanced"]},
]
COLUMNS = ("headtail", "setting", "C", "class_weight", "validation_f1", "validation_roc_auc", "n_features")
COLUMNS += ("fit_time_s", "params")


def run_search(
    data_dir: Path,
    out: Path = SEARCH_REPORTS,
    *,
    headtail: Sequence[str] = ("no",),
    settings: Sequence[str] | None = None,
    mlflow_uri: str | None = None,
    seed: int = SEED,
    table: Path | None = None,
    echo: Callable[[str], None] = print,
) -> Path:
    """Search feature and classifier settings on the validation split; append to ``OUT/search.csv``.

    ``echo`` receives one line per setting (its best result); returns the CSV path."""
    import mlflow

    from training.dataset import build_dataset, shared_recipe
    from training.modeling.train import search_classifier
    from training.reporting.tables import write_search_table

    out.mkdir(parents=True, exist_ok=True)
    path = out / "search.csv"
    new_file = not path.exists()
    uri = tracking.tracking_uri(mlflow_uri, out / "mlruns")
    with path.open("a", newline="", encoding="utf-8") as handle, tracking.start(uri, "search"):
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        if new_file:
            writer.writeheader()
        for choice in headtail:
            dataset = build_dataset(**shared_recipe(data_dir, with_headtail=choice == "yes"), seed=seed)
            for name in settings or FEATURE_SETTINGS:
                params = FEATURE_SETTINGS[name]
                started = time.perf_counter()
                model = TweetSentimentModel(**params).fit(dataset.train.texts, dataset.train.labels)
                fit_time = time.perf_counter() - started
                _, rows = search_classifier(
                    model, CLASSIFIER_GRID, dataset.train.texts, dataset.train.labels, dataset.validation
                )
                for row in rows:
                    record = {
                        "headtail": choice,
                        "setting": name,
                        "C": row["params"]["C"],
                        "class_weight": row["params"]["class_weight"],
                        "validation_f1": round(row["validation_f1"], 4),
                        "validation_roc_auc": round(row["validation_roc_auc"], 4),
                        "n_features": model.n_features_,
                        "fit_time_s": round(fit_time, 1),
                        "params": json.dumps(
                            {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
                        ),
                    }
                    writer.writerow(record)
                    handle.flush()
                    with mlflow.start_run(run_name=f"{name}-{choice}", nested=True):
                        mlflow.log_params(
                            tracking.flat_params({k: record[k] for k in ("headtail", "setting", "C")})
                        )
                        mlflow.log_param("class_weight", record["class_weight"])
                        mlflow.log_metrics(
                            {k: float(record[k]) for k in ("validation_f1", "validation_roc_auc")}
                        )
                if table is not None:
                    write_search_table(path, table)
                best = max(rows, key=lambda r: (round(r["validation_f1"], 3), r["validation_roc_auc"]))
                echo(
                    f"{choice} {name}: {model.n_features_:,} features, fit {fit_time:.0f}s, "
                    f"best {best['params']} "
                    f"F1 {best['validation_f1']:.4f} AUC {best['validation_roc_auc']:.4f}"
                )
    return path
