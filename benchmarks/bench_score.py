"""``python -m training score`` at scale: tweets per second on one core and peak memory. Prints JSON and
writes ``benchmarks/results/score.json``.

    python benchmarks/bench_score.py --rows 1000000

Makes a synthetic Sentiment140 file (``training.synth``), writes its texts one tweet a line (``--input
lines``, default) or keeps the CSV (``--input csv``), then runs the command in a subprocess pinned to one
CPU (``sched_setaffinity``), measuring wall time and the child's peak RSS (``ru_maxrss``). A sample is
then timed in-process stage by stage (normalizer, ONNX graph) to show where the time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from serving.normalizer import normalize  # noqa: E402
from serving.runtime import SentimentModel, negative_probabilities  # noqa: E402
from training.data import read_tweets  # noqa: E402
from training.synth import write_synthetic  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "score.json"
TARGET_PER_S = 20_000
TARGET_RSS_MB = 300


def stage_breakdown(model_path: Path, texts: list[str]) -> dict:
    """Seconds per 1,000 tweets spent normalizing and in the graph, on one thread."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    model = SentimentModel.load(model_path)
    started = time.perf_counter()
    normalized = [normalize(text) for text in texts]
    normalize_s = time.perf_counter() - started
    started = time.perf_counter()
    for start in range(0, len(normalized), 4_096):
        negative_probabilities(model.session, normalized[start : start + 4_096])
    graph_s = time.perf_counter() - started
    started = time.perf_counter()
    for start in range(0, len(texts), 4_096):
        model.predict(texts[start : start + 4_096])
    predict_s = time.perf_counter() - started
    per_thousand = 1_000 / len(texts)
    return {
        "sample_tweets": len(texts),
        "normalize_ms_per_1000": round(normalize_s * per_thousand * 1_000, 2),
        "onnx_graph_ms_per_1000": round(graph_s * per_thousand * 1_000, 2),
        "predict_ms_per_1000": round(predict_s * per_thousand * 1_000, 2),
        "predict_tweets_per_s": round(len(texts) / predict_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--input", choices=("lines", "csv"), default="lines")
    parser.add_argument("--model", type=Path, default=ROOT / "model" / "sentiment.onnx")
    parser.add_argument("--sample", type=int, default=100_000, help="tweets timed stage by stage")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        csv_path = Path(folder) / "tweets.csv"
        write_synthetic(csv_path, args.rows, args.seed)
        texts = read_tweets(csv_path).texts
        source = csv_path
        if args.input == "lines":
            source = Path(folder) / "tweets.txt"
            with source.open("w", encoding="utf-8") as handle:
                for text in texts:
                    handle.write(text.replace("\n", " ").replace("\r", " ") + "\n")
        sample = texts[:: max(1, len(texts) // args.sample)][: args.sample]
        del texts
        out = Path(folder) / "scored.csv"
        core = min(os.sched_getaffinity(0))
        command = [sys.executable, "-m", "training", "score", str(source), "--out", str(out)]
        command += ["--model", str(args.model), "--no-progress"]
        started = time.perf_counter()
        done = subprocess.run(
            command,
            cwd=ROOT,
            capture_output=True,
            text=True,
            preexec_fn=lambda: os.sched_setaffinity(0, {core}),
            check=False,
        )
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"score failed ({done.returncode}): {done.stderr[-2000:]}")
        peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        with out.open(encoding="utf-8") as handle:
            scored = sum(1 for _ in handle) - 1
        result = {
            "command": " ".join(
                ["python -m training score", source.name, "--out", out.name, "--no-progress"]
            ),
            "input": args.input,
            "rows": args.rows,
            "scored_rows": scored,
            "input_mb": round(source.stat().st_size / 2**20, 1),
            "cpus": 1,
            "wall_s": round(wall, 2),
            "tweets_per_s": round(scored / wall),
            "peak_rss_mb": round(peak_rss_mb, 1),
            "target_tweets_per_s": TARGET_PER_S,
            "target_peak_rss_mb": TARGET_RSS_MB,
            "stages": stage_breakdown(args.model, sample),
            "python": sys.version.split()[0],
        }
    print(json.dumps(result, indent=2))
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
