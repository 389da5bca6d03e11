"""Stock skl2onnx scoring graph vs the project's token-following graph, on the same fitted models.

For each vocabulary size the script fits one ``TweetSentimentModel`` on the shared training tweets,
writes it twice (``convert_sklearn`` of the equivalent TfidfVectorizer + LogisticRegression pipeline,
and ``training.export.artifact.to_onnx``), checks both against scikit-learn, then measures each file in a
fresh process: session creation, single-text latency p50/p99, a batch of 1,000 texts, process RSS after
the batch, file size. Prints one JSON document.

    nice -n 10 .venv/bin/python benchmarks/bench_onnx_graphs.py --data-dir "$SENTIMENT_DATA_DIR"

The stock graph materialises a dense [texts x features] float tensor; where a batch of 1,000 would need
more than ``--dense-budget-mb`` for it, the batch is scored in chunks and the JSON says so.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

# (features, model parameters): word 1-3 grams alone give 2.2M distinct n-grams on the shared data.
SIZES = {
    50_000: {"word_ngram_range": (1, 2), "word_max_features": 50_000},
    300_000: {"word_ngram_range": (1, 3), "word_max_features": 300_000},
    1_000_000: {"word_ngram_range": (1, 3), "word_max_features": 1_000_000},
}
TRAIN_FILES = (
    ("sentiment140/training.sample20k.csv", "sentiment140"),
    ("sentiment140/headtail100k.csv", "label_text"),
    ("semeval/semeval2013_2016_binary.csv", "label_text"),
    ("tweet_sentiment_extraction/train_binary.csv", "label_text"),
)
EVAL_FILE = "semeval/semeval2017_test_binary.csv"
# One thread per session: stable figures on a shared 2-core machine, and the setting a concurrent
# request handler would use anyway.
INTRA_OP_THREADS = 1


def read_labelled(data_dir: Path) -> tuple[list[str], list[int]]:
    """Raw texts and 0/1 labels of the shared training files (csv module only: no project reader)."""
    texts, labels = [], []
    for name, kind in TRAIN_FILES:
        path = data_dir / name
        if kind == "sentiment140":
            with path.open(encoding="latin-1", newline="") as handle:
                for row in csv.reader(handle):
                    if row[0] in ("0", "4"):
                        texts.append(row[5])
                        labels.append(1 if row[0] == "4" else 0)
        else:
            with path.open(encoding="utf-8", newline="") as handle:
                for row in csv.DictReader(handle):
                    texts.append(row["text"])
                    labels.append(int(row["label"]))
    return texts, labels


def read_eval_texts(data_dir: Path) -> list[str]:
    with (data_dir / EVAL_FILE).open(encoding="utf-8", newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


def stock_graph(model):
    """convert_sklearn of the same fitted vectorizer and classifier (NOTES: zipmap off; the word
    vectorizer's token pattern is passed through as the tokenizer regex)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType
    from sklearn.pipeline import Pipeline

    (vectorizer,) = model.vectorizers_
    pipeline = Pipeline([("tfidf", vectorizer), ("clf", model.classifier_)])
    return convert_sklearn(
        pipeline,
        initial_types=[("text", StringTensorType([None, 1]))],
        options={
            id(model.classifier_): {"zipmap": False},
            id(vectorizer): {"tokenexp": vectorizer.token_pattern},
        },
        target_opset={"": 18, "ai.onnx.ml": 3},
    )


def build(data_dir: Path, work: Path, sizes: list[int]) -> tuple[list[dict], Path]:
    import numpy as np

    from serving.normalizer import normalize
    from training.export.artifact import check_parity, to_onnx
    from training.modeling.text_model import TweetSentimentModel

    raw, labels = read_labelled(data_dir)
    texts = [normalize(t) for t in raw]
    keep = [i for i, t in enumerate(texts) if t]
    texts, y = [texts[i] for i in keep], np.asarray(labels)[keep]
    evaluation = [normalize(t) for t in read_eval_texts(data_dir)]
    texts_file = work / "texts.json"
    texts_file.write_text(json.dumps(evaluation[:2000]))
    print(f"training texts: {len(texts)}", file=sys.stderr)

    entries = []
    for size in sizes:
        started = time.perf_counter()
        model = TweetSentimentModel(**SIZES[size]).fit(texts, y)
        fit_s = time.perf_counter() - started
        ours, stock = work / f"ours_{size}.onnx", work / f"stock_{size}.onnx"
        started = time.perf_counter()
        ours.write_bytes(to_onnx(model, {}).SerializeToString())
        ours_export_s = time.perf_counter() - started
        parity = check_parity(model, ours, evaluation[:2000])
        started = time.perf_counter()
        stock.write_bytes(stock_graph(model).SerializeToString())
        stock_export_s = time.perf_counter() - started
        entries.append(
            {
                "features": model.n_features_,
                "params": {k: list(v) if isinstance(v, tuple) else v for k, v in SIZES[size].items()},
                "fit_s": round(fit_s, 1),
                "ours": {"file": str(ours), "export_s": round(ours_export_s, 1), "parity": parity},
                "stock": {
                    "file": str(stock),
                    "export_s": round(stock_export_s, 1),
                    "parity_max_abs_difference": stock_parity(model, stock, evaluation[:2000]),
                },
            }
        )
        print(f"built {size}: fit {fit_s:.0f}s", file=sys.stderr)
    return entries, texts_file


def stock_parity(model, path: Path, texts: list[str]) -> float:
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = []
    for start in range(0, len(texts), 100):
        batch = np.array(texts[start : start + 100], dtype=object).reshape(-1, 1)
        got.append(session.run(None, {"text": batch})[1][:, 0])
    return float(np.max(np.abs(np.concatenate(got) - model.negative_probability(texts))))


def measure(path: Path, kind: str, texts_file: Path, single_runs: int, batch_size: int, chunk: int) -> dict:
    """One graph, measured in this (fresh) process."""
    import numpy as np
    import onnxruntime as ort
    import psutil

    texts = json.loads(texts_file.read_text())
    process = psutil.Process()
    rss_before = process.memory_info().rss

    def feed(batch: list[str]) -> dict:
        array = np.array(batch, dtype=object)
        return {"text": array if kind == "ours" else array.reshape(-1, 1)}

    output = ["negative_probability"] if kind == "ours" else ["probabilities"]
    options = ort.SessionOptions()
    options.intra_op_num_threads = INTRA_OP_THREADS
    creations = []
    for _ in range(3):
        started = time.perf_counter()
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        creations.append(time.perf_counter() - started)
    for text in texts[:50]:
        session.run(output, feed([text]))
    single = []
    for i in range(single_runs):
        inputs = feed([texts[i % len(texts)]])
        started = time.perf_counter()
        session.run(output, inputs)
        single.append((time.perf_counter() - started) * 1000)
    batch = texts[:batch_size]
    batches = []
    for _ in range(5):
        started = time.perf_counter()
        for start in range(0, len(batch), chunk):
            session.run(output, feed(batch[start : start + chunk]))
        batches.append((time.perf_counter() - started) * 1000)
    result = {
        "session_creation_ms": round(statistics.median(creations) * 1000, 1),
        "single_p50_ms": round(float(np.percentile(single, 50)), 3),
        "single_p99_ms": round(float(np.percentile(single, 99)), 3),
        "batch_ms": round(statistics.median(batches), 1),
        "batch_size": len(batch),
        "batch_chunk": chunk if chunk < len(batch) else None,
        "rss_mb_after_batch": round(process.memory_info().rss / 2**20, 1),
        "rss_mb_before_session": round(rss_before / 2**20, 1),
        "file_mb": round(path.stat().st_size / 2**20, 2),
    }
    if kind == "ours":
        from serving.runtime import CHUNK_TEXTS, negative_probabilities

        started = time.perf_counter()
        session.run(None, {**feed(batch), "explain": np.array(True)})
        result["batch_with_explanations_ms"] = round((time.perf_counter() - started) * 1000, 1)
        chunked = []
        for _ in range(5):
            started = time.perf_counter()
            negative_probabilities(session, batch)
            chunked.append((time.perf_counter() - started) * 1000)
        result["batch_as_served_ms"] = round(statistics.median(chunked), 1)
        result["batch_as_served"] = (
            f"serving.runtime: length-sorted chunks of {CHUNK_TEXTS}, run side by side"
        )
    return result


def measure_apart(args, path, kind: str, texts_file: Path, chunk: int) -> dict:
    """``measure`` in a fresh process, so that every file starts from the same empty heap."""
    command = [
        sys.executable, __file__, "--single-runs", str(args.single_runs),
        "--batch-size", str(args.batch_size), "--measure", str(path), kind, str(texts_file), str(chunk),
    ]  # fmt: skip
    return json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--single-runs", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument(
        "--dense-budget-mb", type=int, default=400, help="stock graph: max dense tensor per run"
    )
    parser.add_argument(
        "--production", type=Path, help="also measure this exported model (e.g. model/sentiment.onnx)"
    )
    parser.add_argument(
        "--measure", nargs=4, metavar=("PATH", "KIND", "TEXTS", "CHUNK"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.measure:
        path, kind, texts_file, chunk = args.measure
        result = measure(Path(path), kind, Path(texts_file), args.single_runs, args.batch_size, int(chunk))
        print(json.dumps(result))
        return

    import onnxruntime

    with tempfile.TemporaryDirectory(prefix="bench_onnx_graphs_") as tmp:
        work = Path(tmp)
        entries, texts_file = build(args.data_dir, work, args.sizes)
        for entry in entries:
            dense_rows = max(1, int(args.dense_budget_mb * 2**20 / (4 * entry["features"])))
            for kind, chunk in (("ours", args.batch_size), ("stock", min(args.batch_size, dense_rows))):
                entry[kind].update(measure_apart(args, entry[kind].pop("file"), kind, texts_file, chunk))
                print(f"measured {kind} {entry['features']}", file=sys.stderr)
        production = None
        if args.production:
            production = {
                "file": str(args.production),
                **measure_apart(args, args.production, "ours", texts_file, args.batch_size),
            }
    print(
        json.dumps(
            {
                "benchmark": "onnx_scoring_graphs",
                "onnxruntime": onnxruntime.__version__,
                "cpu_count": os.cpu_count(),
                "intra_op_num_threads": INTRA_OP_THREADS,
                "load_average_at_end": os.getloadavg(),
                "texts": "SemEval-2017 test tweets, normalized (single: cycled; batch: first 1,000)",
                "stock": (
                    "skl2onnx convert_sklearn(TfidfVectorizer + LogisticRegression): dense TfIdfVectorizer"
                ),
                "ours": "training.export.ngram_graph: StringSplit/Tokenizer units coded by a LabelEncoder, "
                "integer n-gram keys, dense-table or int64 LabelEncoder lookups; these L2-normalised models "
                "count distinct n-grams per text with TopK (output negative_probability only, one run per "
                "batch, unless noted)",
                "results": entries,
                "production_model": production,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
