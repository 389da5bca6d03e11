"""The model search behind the production configuration: feature settings x classifier settings.

``python -m training.search --data-dir DIR --out reports/search [--headtail no --headtail yes]``

For each training-data choice (with or without the train-only Sentiment140 head/tail file) and each
feature setting of ``TweetSentimentModel`` (word/char n-grams, vocabulary sizes, sublinear tf, NB
weighting), the model is fitted once and its logistic regression is tuned on the cached features
(C, class weight). Every setting is scored on the VALIDATION split only and logged to MLflow; the
best one (macro-F1, ROC-AUC breaking ties within 0.001) among those with an allowed feature count is
what ``training/candidates.py`` ships as ``PRODUCTION_PARAMS``.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Annotated

import typer

from training import tracking
from training.candidates import SEED, Candidate
from training.text_model import TweetSentimentModel

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


def command(
    data_dir: Annotated[Path, typer.Option(help="The labelled tweet folder.")],
    out: Annotated[Path, typer.Option(help="Folder for search.csv.")] = Path("reports/search"),
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
    import mlflow

    from training.dataset import build_dataset, shared_recipe
    from training.train import _search_classifier

    out.mkdir(parents=True, exist_ok=True)
    path = out / "search.csv"
    new_file = not path.exists()
    uri = tracking.tracking_uri(mlflow_uri, out / "mlruns")
    with path.open("a", newline="", encoding="utf-8") as handle, tracking.start(uri, "search"):
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        if new_file:
            writer.writeheader()
        for choice in headtail or ["no"]:
            dataset = build_dataset(**shared_recipe(data_dir, with_headtail=choice == "yes"), seed=seed)
            for name in setting or FEATURE_SETTINGS:
                params = FEATURE_SETTINGS[name]
                started = time.perf_counter()
                model = TweetSentimentModel(**params).fit(dataset.train.texts, dataset.train.labels)
                fit_time = time.perf_counter() - started
                candidate = Candidate(name, name, lambda: None, grid=CLASSIFIER_GRID, search="classifier")
                _, rows = _search_classifier(
                    candidate, model, dataset.train.texts, dataset.train.labels, dataset.validation
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
                    write_table(path, table)
                best = max(rows, key=lambda r: (round(r["validation_f1"], 3), r["validation_roc_auc"]))
                typer.echo(
                    f"{choice} {name}: {model.n_features_:,} features, fit {fit_time:.0f}s, "
                    f"best {best['params']} "
                    f"F1 {best['validation_f1']:.4f} AUC {best['validation_roc_auc']:.4f}"
                )


def write_table(search_csv: Path, table: Path) -> Path:
    """Markdown view of ``search.csv``: every setting, best validation macro-F1 first."""
    with search_csv.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    rows.sort(key=lambda r: (-round(float(r["validation_f1"]), 3), -float(r["validation_roc_auc"])))
    lines = [
        "# Model search (validation split only)",
        "",
        "Produced by `python -m training.search` (see `training/search.py`): each feature setting of "
        "`TweetSentimentModel` fitted once on the training split, its logistic regression tuned on cached "
        "features; every figure is measured on the validation split (no test set is looked at). "
        "`headtail` = the train-only Sentiment140 head/tail file added to training.",
        "",
        "| headtail | setting | C | class weight | validation macro-F1 | validation ROC-AUC | features "
        "| fit (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['headtail']} | {r['setting']} | {r['C']} | {r['class_weight'] or 'none'} "
            f"| {r['validation_f1']} | {r['validation_roc_auc']} | {int(r['n_features']):,} "
            f"| {r['fit_time_s']} |"
        )
    lines += ["", "Settings:", ""]
    seen = {}
    for r in rows:
        seen.setdefault(r["setting"], r["params"])
    lines += [f"- `{name}`: `{params}`" for name, params in seen.items()]
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return table


if __name__ == "__main__":
    typer.run(command)
