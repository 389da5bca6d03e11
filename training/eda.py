"""Exploratory data analysis: what is in the tweet files, and what cleaning does to them.

Builds the dataset with the same machinery as training (``training.dataset``), so the counts in the
report are the ones the model is trained on, then writes ``eda.md`` (class balance, missing/empty,
duplicate and dropped counts, word-count statistics before and after normalization in the
count/mean/std/min/quartiles/max shape) with PNG histograms, and ``eda.json`` (the raw counts).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from training.config import SEED
from training.dataset import Dataset, LoadedFile, assemble_dataset, load_files

STATISTICS = ("count", "mean", "std", "min", "25%", "50%", "75%", "max")
FIGURES = {
    "before": "word_counts_before.png",
    "after": "word_counts_after.png",
    "balance": "class_balance.png",
}


def word_counts(texts: Sequence[str]) -> np.ndarray:
    """Whitespace-separated words per text (the normalizer's tokens, once normalized)."""
    return np.fromiter((len(text.split()) for text in texts), dtype=np.int32, count=len(texts))


def describe(counts: np.ndarray) -> pd.Series:
    """pandas ``describe`` of word counts: count, mean, std, min, 25%, 50%, 75%, max."""
    return pd.Series(counts, dtype="float64").describe()[list(STATISTICS)]


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _files_table(report: dict) -> pd.DataFrame:
    rows = []
    for name, counts in report["files"].items():
        rows.append(
            {
                "file": name,
                "role": counts["role"],
                "rows read": counts["read"],
                "negative": counts["negative"],
                "positive": counts["positive"],
                "negative share": _percent(counts["negative"], counts["read"]),
                "dropped (neutral)": counts["dropped"].get("neutral", 0),
                "empty after normalization": counts["empty_after_normalization"],
                "duplicates within file": counts["duplicates_within"],
                "removed: in a test set": counts.get("removed_external_test_overlap", "-"),
                "duplicates across files": counts.get("duplicates", "-"),
                "dropped: label tie": counts.get("conflicting_label_dropped", "-"),
                "kept": counts.get("kept", counts["read"]),
            }
        )
    return pd.DataFrame(rows)


def _splits_table(report: dict) -> pd.DataFrame:
    rows = [
        {
            "split": name,
            "rows": counts["rows"],
            "negative": counts["negative"],
            "positive": counts["positive"],
            "negative share": _percent(counts["negative"], counts["rows"]),
        }
        for name, counts in report["splits"].items()
    ]
    return pd.DataFrame(rows)


def word_count_tables(files: Sequence[LoadedFile]) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Overall before/after table, per-file table, and the raw counts (for the histograms)."""
    before = {f.name: word_counts(f.raw_texts) for f in files}
    after = {f.name: word_counts(f.texts) for f in files}
    labels = np.concatenate([f.labels for f in files])
    all_before, all_after = np.concatenate(list(before.values())), np.concatenate(list(after.values()))
    overall = pd.DataFrame(
        {"before normalization": describe(all_before), "after normalization": describe(all_after)}
    )
    per_file = pd.DataFrame(
        {
            **{(name, "before"): describe(counts) for name, counts in before.items()},
            **{(name, "after"): describe(after[name]) for name in before},
        }
    ).T.sort_index(level=0, sort_remaining=False)
    per_file.index = [f"{name} ({stage})" for name, stage in per_file.index]
    return overall, per_file, {"before": all_before, "after": all_after, "labels": labels}


def _histogram(counts: np.ndarray, labels: np.ndarray, title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    top = int(np.percentile(counts, 99.5)) + 2 if len(counts) else 2
    bins = np.arange(0, top + 1) - 0.5
    for label, name, color in ((0, "negative", "#c0392b"), (1, "positive", "#2874a6")):
        ax.hist(np.clip(counts[labels == label], 0, top), bins=bins, alpha=0.55, label=name, color=color)
    ax.set(title=title, xlabel="words per tweet", ylabel="tweets")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _balance_chart(splits: pd.DataFrame, path: Path) -> None:
    """Shares, not counts: a 359-tweet test set must stay readable next to a 150k-tweet train split."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    rows = splits["rows"].clip(lower=1)
    negative, positive = 100 * splits["negative"] / rows, 100 * splits["positive"] / rows
    names = [f"{name} (n={count:,})" for name, count in zip(splits["split"], splits["rows"], strict=True)]
    ax.barh(names, negative, color="#c0392b", label="negative")
    ax.barh(names, positive, left=negative, color="#2874a6", label="positive")
    for y, share in enumerate(negative):
        ax.text(share / 2, y, f"{share:.0f}%", ha="center", va="center", color="white", fontsize=8)
    ax.axvline(50, color="black", linewidth=0.8, linestyle=":")
    ax.invert_yaxis()
    ax.set(title="Class balance per split", xlabel="% of tweets", xlim=(0, 100))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _markdown(frame: pd.DataFrame, *, index: bool = True) -> str:
    return frame.to_markdown(index=index, floatfmt=".2f")


def write_report(dataset: Dataset, files: Sequence[LoadedFile], out: Path) -> Path:
    """Write ``eda.md``, ``eda.json`` and the PNG figures into ``out``; returns the Markdown path."""
    out.mkdir(parents=True, exist_ok=True)
    report = dataset.report
    overall, per_file, counts = word_count_tables(files)
    splits = _splits_table(report)
    _histogram(
        counts["before"], counts["labels"], "Words per tweet before normalization", out / FIGURES["before"]
    )
    _histogram(
        counts["after"], counts["labels"], "Words per tweet after normalization", out / FIGURES["after"]
    )
    _balance_chart(splits, out / FIGURES["balance"])

    files_table = _files_table(report)
    read = int(files_table["rows read"].sum())
    negative = int(files_table["negative"].sum())
    recipe = report["recipe"]
    lines = [
        "# Exploratory data analysis: labelled tweets",
        "",
        f"Normalizer version {recipe['normalizer_version']}, split seed {recipe['seed']} "
        f"(validation {recipe['validation_fraction']:.0%}, test {recipe['test_fraction']:.0%}); "
        f"training-data fingerprint `{dataset.fingerprint[:16]}`.",
        "",
        "## Files",
        "",
        f"{len(files_table)} files, {read:,} labelled tweets read ({_percent(negative, read)} negative). "
        "A missing text or label stops the reading with an error naming the file and line, so none is "
        "missing here. Neutral rows are dropped when read; a text that is empty after normalization "
        "carries nothing to learn and is dropped from training; texts also in a test set are removed from "
        "training; duplicates "
        "(after normalization) are kept once, with the majority label, and dropped when the labels tie. "
        "Test files are kept whole.",
        "",
        _markdown(files_table, index=False),
        "",
        "Duplicate texts whose copies disagree on the label: "
        f"{report['duplicate_texts_with_conflicting_labels']:,} ({report['rows_dropped_for_label_ties']:,} "
        "rows dropped on a tie, "
        f"{report['rows_outvoted_by_majority_label']:,} outvoted by the majority label).",
        "",
        "## Class balance per split",
        "",
        _markdown(splits, index=False),
        "",
        f"![class balance]({FIGURES['balance']})",
        "",
        "## Words per tweet, before and after normalization (all files)",
        "",
        _markdown(overall),
        "",
        f"![before]({FIGURES['before']})",
        "",
        f"![after]({FIGURES['after']})",
        "",
        "## Words per tweet, per file",
        "",
        _markdown(per_file),
        "",
        f"Leakage check: {report['leakage_check']}.",
        "",
    ]
    path = out / "eda.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    (out / "eda.json").write_text(
        json.dumps({"fingerprint": dataset.fingerprint, **report}, indent=2) + "\n", encoding="utf-8"
    )
    return path


def run_eda(
    train_files: Sequence[Path],
    external_tests: Mapping[str, Path],
    out: Path,
    *,
    train_only_files: Sequence[Path] = (),
    seed: int = SEED,
    progress: bool = True,
) -> Path:
    """Load the files once, build the dataset from them, write the report."""
    pool, external, only = load_files(train_files, external_tests, train_only_files, progress=progress)
    dataset = assemble_dataset(pool, external, only, seed=seed)
    return write_report(dataset, [*pool, *only, *external.values()], out)
