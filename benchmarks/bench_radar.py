"""Radar cost benchmark: what topic matching, the drift signals and the n-gram coverage outputs add to
predict. Prints one JSON document (and writes it with ``--out``).

    python -m benchmarks.bench_radar [--model model/sentiment.onnx] [--rounds 30] [--out FILE]

Same process, same texts (the labelled topic sample, cycled), samples of "before" and "after"
interleaved in rounds so machine noise hits both alike:

- before: ``SentimentModel.predict(texts, match_topics=False)``, the predict of the previous release;
- after: ``predict(texts)`` (topics matched in the same pass) + ``scored_signals`` (the new
  SentimentScored dimensions, histogram and topic pairs included).

Single texts: p50/p99 over every call; batch of 1,000: median wall time per round. Target: after adds at
most 10 % to each. The coverage outputs (unknown share) are measured on a model fitted here with the
production configuration (word 1-3 and char 2-5 n-grams, occurrence_l2) on the repository's generated
corpus, because the committed model predates them: session runs with and without the two outputs.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGET_OVERHEAD = 0.10


def _texts(count: int) -> list[str]:
    lines = (REPO_ROOT / "tests" / "data" / "topic_sample.jsonl").read_text(encoding="utf-8").splitlines()
    sample = [json.loads(line)["text"] for line in lines if line.strip()]
    return [sample[i % len(sample)] for i in range(count)]


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def measure_predict(model_path: Path, rounds: int) -> dict:
    from serving.runtime import SentimentModel

    model = SentimentModel.load(model_path)
    singles, batch = _texts(300), _texts(1000)

    def before(texts: list[str]) -> None:
        model.predict(texts, match_topics=False)

    def after(texts: list[str]) -> None:
        model.scored_signals(model.predict(texts))

    ways = {"before": before, "after": after}
    single_ms: dict[str, list[float]] = {name: [] for name in ways}
    batch_ms: dict[str, list[float]] = {name: [] for name in ways}
    for way in ways.values():  # warm-up
        way(batch)
        for text in singles[:50]:
            way([text])
    for _ in range(rounds):
        for name, way in ways.items():
            for text in singles:
                start = time.perf_counter()
                way([text])
                single_ms[name].append((time.perf_counter() - start) * 1e3)
            start = time.perf_counter()
            way(batch)
            batch_ms[name].append((time.perf_counter() - start) * 1e3)
    figures = {
        name: {
            "single_p50_ms": round(_percentile(single_ms[name], 50), 4),
            "single_p99_ms": round(_percentile(single_ms[name], 99), 4),
            "batch_1000_median_ms": round(statistics.median(batch_ms[name]), 3),
        }
        for name in ways
    }
    overhead = {
        key: round(figures["after"][key] / figures["before"][key] - 1, 4)
        for key in ("single_p50_ms", "single_p99_ms", "batch_1000_median_ms")
    }
    try:
        shown = str(model_path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        shown = model_path.name
    return {
        "model": shown,
        "single_calls_per_way": len(single_ms["before"]),
        "batch_rounds": rounds,
        **figures,
        "overhead": overhead,
        "target_overhead": TARGET_OVERHEAD,
        "within_target": all(
            overhead[key] <= TARGET_OVERHEAD for key in ("single_p99_ms", "batch_1000_median_ms")
        ),
    }


def measure_matcher(rounds: int) -> dict:
    """The matcher alone, per normalized text (its share of predict)."""
    from serving.normalizer import normalize
    from serving.topics import default_matcher

    matcher = default_matcher()
    texts = [normalize(text) for text in _texts(1000)]
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for text in texts:
            matcher.match(text)
        times.append((time.perf_counter() - start) / len(texts) * 1e6)
    longest = normalize(" ".join(_texts(200)))[:10_000]
    start = time.perf_counter()
    matcher.match(longest)
    return {
        "per_text_median_us": round(statistics.median(times), 3),
        "longest_normalized_text_chars": len(longest),
        "longest_normalized_text_ms": round((time.perf_counter() - start) * 1e3, 3),
    }


def measure_coverage(rounds: int) -> dict:
    """Session runs with and without the n-gram coverage outputs, on a production-configured model."""
    import onnxruntime as ort

    sys.path.insert(0, str(REPO_ROOT))
    from serving import contract
    from serving.normalizer import normalize
    from serving.runtime import _session_options
    from tests.tweet_corpus import generated_corpus
    from training.export.artifact import to_onnx
    from training.modeling.text_model import TweetSentimentModel

    texts, labels = generated_corpus(3000)
    model = TweetSentimentModel(
        word_ngram_range=(1, 3), char_ngram_range=(2, 5), norm="occurrence_l2", nb_weighting=True
    ).fit(texts, labels)
    session = ort.InferenceSession(
        to_onnx(model, {}).SerializeToString(), _session_options(), providers=["CPUExecutionProvider"]
    )
    single = [np.array([normalize(t)], dtype=object) for t in _texts(300)]
    batch = np.array([normalize(t) for t in _texts(1000)], dtype=object)
    ways = {
        "probability_only": [contract.PROBABILITY_OUTPUT],
        "with_coverage": [contract.PROBABILITY_OUTPUT, *contract.NGRAM_COVERAGE_OUTPUTS],
    }
    single_us: dict[str, list[float]] = {name: [] for name in ways}
    batch_ms: dict[str, list[float]] = {name: [] for name in ways}
    for outputs in ways.values():
        session.run(outputs, {contract.INPUT_NAME: batch})
    for _ in range(rounds):
        for name, outputs in ways.items():
            for one in single:
                start = time.perf_counter()
                session.run(outputs, {contract.INPUT_NAME: one})
                single_us[name].append((time.perf_counter() - start) * 1e6)
            start = time.perf_counter()
            session.run(outputs, {contract.INPUT_NAME: batch})
            batch_ms[name].append((time.perf_counter() - start) * 1e3)
    figures = {
        name: {
            "single_p50_us": round(_percentile(single_us[name], 50), 2),
            "single_p99_us": round(_percentile(single_us[name], 99), 2),
            "batch_1000_median_ms": round(statistics.median(batch_ms[name]), 3),
        }
        for name in ways
    }
    return {
        "model": "production configuration fitted on the generated corpus (3,000 texts)",
        "n_features": int(model.n_features_),
        **figures,
        "overhead": {
            key: round(figures["with_coverage"][key] / figures["probability_only"][key] - 1, 4)
            for key in ("single_p50_us", "single_p99_us", "batch_1000_median_ms")
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "model" / "sentiment.onnx")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    result = {
        "benchmark": "radar",
        "machine": {"python": platform.python_version(), "cpus": len(__import__("os").sched_getaffinity(0))},
        "predict": measure_predict(args.model, args.rounds),
        "matcher": measure_matcher(args.rounds),
        "coverage_outputs": measure_coverage(max(5, args.rounds // 3)),
    }
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
