"""Tables a run writes (CSV for tools, Markdown and terminal tables for people), from the results handed in.

Results are duck-typed: a candidate result has ``row`` (one ``perf_models.csv`` row) and ``search_rows``
(one dict per searched setting), so this module never imports the trainer.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from training.metrics import PERF_COLUMNS


def jsonable(value):
    """Tuples as lists, numpy scalars as Python numbers, keys as strings: what ``json`` can write."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_perf_csv(results: Mapping, path: Path) -> Path:
    """``perf_models.csv``: one row per candidate, in the order they were fitted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=PERF_COLUMNS)
        writer.writeheader()
        for result in results.values():
            writer.writerow(result.row)
    return path


def write_search_csv(results: Mapping, path: Path) -> Path:
    """``search_results.csv``: every searched setting of every candidate, scored on validation."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["candidate", "params", "validation_f1", "validation_roc_auc"])
        for name, result in results.items():
            for row in result.search_rows:
                writer.writerow(
                    [
                        name,
                        json.dumps(jsonable(row["params"]), sort_keys=True),
                        round(row["validation_f1"], 4),
                        round(row["validation_roc_auc"], 4) if "validation_roc_auc" in row else "",
                    ]
                )
    return path


def print_candidates(console, results: Mapping, winner: str | None = None) -> None:
    """The candidate table on the terminal, the winner starred."""
    from rich.table import Table

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


def write_search_table(search_csv: Path, table: Path) -> Path:
    """Markdown view of ``search.csv``: every setting, best validation macro-F1 first."""
    with search_csv.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    rows.sort(key=lambda r: (-round(float(r["validation_f1"]), 3), -float(r["validation_roc_auc"])))
    lines = [
        "# Model search (validation split only)",
        "",
        "Produced by `python -m training search` (see `training/modeling/tune.py`): each feature setting of "
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
