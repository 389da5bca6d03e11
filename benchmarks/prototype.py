"""The earlier prototype's way of serving, rebuilt as the baseline the benchmarks compare against: a
scikit-learn ``Pipeline`` (TF-IDF over word 1-2 grams, 50,000 features, then logistic regression) fitted on
raw tweets, pickled with joblib, and loaded back to score. Benchmark use only: serving never imports it.
"""

from __future__ import annotations

import csv
from pathlib import Path

import joblib
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

# (file under the data folder, label column, text column, encoding, label of "positive")
TRAINING_FILES = (
    ("sentiment140/training.sample20k.csv", 0, 5, "latin-1", "4"),
    ("tweet_sentiment_extraction/train_binary.csv", 0, 1, "utf-8", "1"),
    ("semeval/semeval2013_2016_binary.csv", 0, 1, "utf-8", "1"),
)
SCORING_FILES = (
    ("semeval/semeval2017_test_binary.csv", 0, 1, "utf-8", "1"),
    ("sentiment140/testdata.manual.2009.06.14.csv", 0, 5, "latin-1", "4"),
)


def read_labelled(data_dir: Path, files) -> tuple[list[str], list[int]]:
    """Texts and 0/1 labels from the shared CSV files (header rows and neutral rows are skipped)."""
    texts, labels = [], []
    for name, label_column, text_column, encoding, positive in files:
        with open(data_dir / name, encoding=encoding, newline="") as handle:
            for row in csv.reader(handle):
                label = row[label_column]
                if label not in ("0", positive) or not row[text_column].strip():
                    continue
                texts.append(row[text_column])
                labels.append(int(label == positive))
    return texts, labels


def prototype_pipeline() -> Pipeline:
    return Pipeline(
        [
            ("tfidf", TfidfVectorizer(ngram_range=(1, 2), max_features=50_000)),
            ("classifier", LogisticRegression(max_iter=1000)),
        ]
    )


def train_and_save(data_dir: Path, path: Path) -> dict:
    """Fit the prototype pipeline on the shared training files and pickle it to ``path``."""
    texts, labels = read_labelled(data_dir, TRAINING_FILES)
    pipeline = prototype_pipeline().fit(texts, labels)
    joblib.dump(pipeline, path)
    return {
        "training_texts": len(texts),
        "features": len(pipeline.named_steps["tfidf"].vocabulary_),
        "joblib_mb": round(path.stat().st_size / 2**20, 2),
    }
