"""Generated labelled tweets for fast pipeline tests (no real data needed)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

POSITIVE = ("love", "great", "awesome", "thanks", "best", "happy", "smooth", "friendly")
NEGATIVE = ("hate", "awful", "delayed", "lost", "worst", "cancelled", "rude", "stuck")
FILLER = ("flight", "bag", "crew", "seat", "today", "airline", "the", "my", "was", "gate", "paris", "again")


def tweets(count: int, seed: int, noise: float = 0.1) -> tuple[list[str], list[int]]:
    """``count`` distinct tweets; the label follows the sentiment words, flipped with chance ``noise``."""
    rng = np.random.default_rng(seed)
    texts, labels, seen = [], [], set()
    while len(texts) < count:
        label = int(rng.integers(0, 2))
        words = list(rng.choice(FILLER, size=int(rng.integers(3, 8))))
        words += list(rng.choice(POSITIVE if label else NEGATIVE, size=int(rng.integers(1, 3))))
        if rng.random() < 0.3:
            words.append(str(rng.choice(NEGATIVE if label else POSITIVE)))
        rng.shuffle(words)
        text = f"@user{int(rng.integers(1000))} " + " ".join(words) + f" {int(rng.integers(100_000))}"
        if text in seen:
            continue
        seen.add(text)
        texts.append(text)
        labels.append(label if rng.random() >= noise else 1 - label)
    return texts, labels


def write_labelled(path: Path, rows) -> Path:
    """A ``label,text`` CSV with a header, from (label, text) pairs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "text"])
        writer.writerows(rows)
    return path


def write_labelled_csv(path: Path, count: int, seed: int) -> Path:
    texts, labels = tweets(count, seed)
    return write_labelled(path, zip(labels, texts, strict=True))


def write_sentiment140(path: Path, count: int, seed: int) -> Path:
    """The Kaggle Sentiment140 layout: no header, six quoted columns, target 0/4, latin-1."""
    path.parent.mkdir(parents=True, exist_ok=True)
    texts, labels = tweets(count, seed)
    with path.open("w", newline="", encoding="latin-1") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL)
        for index, (text, label) in enumerate(zip(texts, labels, strict=True)):
            writer.writerow(
                [4 * label, 1_000_000 + index, "Mon May 11 03:17:40 UTC 2009", "NO_QUERY", "someone", text]
            )
    return path


def write_shared_layout(root: Path, rows: int = 300) -> Path:
    """A folder shaped like the shared labelled-tweet folder (the files ``shared_recipe`` expects)."""
    from training.dataset import SHARED_EXTERNAL, SHARED_HEADTAIL, SHARED_POOL

    for index, name in enumerate((*SHARED_POOL, SHARED_HEADTAIL, *SHARED_EXTERNAL.values())):
        writer = write_sentiment140 if name.startswith("sentiment140/t") else write_labelled_csv
        writer(root / name, rows, seed=100 + index)
    return root
