"""Scale benchmark: ``train``'s code path on a synthetic 1.6M-row Sentiment140 file, on 2 cores.

Writes the file with ``training.synth`` (exact Kaggle format), then runs the steps ``train`` runs for
one candidate, timing each: read, normalize, dedupe/split, fit, evaluate, export (ONNX with the parity
gate). Prints one JSON document with the time per stage and the peak RSS of this process.

    nice -n 10 python benchmarks/bench_train_scale.py [--rows 1600000] [--candidate baseline]

Target: the whole training (read to export) within 15 minutes, peak RSS under 8 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

# Two cores at most, native thread pools included (set before numpy/scipy load them).
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "2")
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402

from serving.normalizer import normalize  # noqa: E402
from training.data import read_tweets  # noqa: E402
from training.dataset import LoadedFile, assemble_dataset  # noqa: E402
from training.export.artifact import export_model  # noqa: E402
from training.metrics import binary_metrics, headline, negative_probability  # noqa: E402
from training.modeling.candidates import all_candidates  # noqa: E402
from training.synth import write_synthetic  # noqa: E402

PARITY_TEXTS = 10_000


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_600_000)
    parser.add_argument("--candidate", default="baseline", help="a TweetSentimentModel candidate of train")
    parser.add_argument("--work-dir", type=Path, default=None, help="where the synthetic file goes (tmp)")
    args = parser.parse_args()

    stages: dict[str, float] = {}
    rss: dict[str, int] = {}
    process = psutil.Process()

    def timed(stage: str, function, *arguments, **keywords):
        started = time.perf_counter()
        result = function(*arguments, **keywords)
        stages[stage] = round(time.perf_counter() - started, 2)
        rss[stage] = process.memory_info().rss
        return result

    with tempfile.TemporaryDirectory(dir=args.work_dir) as folder:
        path = Path(folder) / "training.1600000.processed.noemoticon.csv"
        timed("synthesize (not part of train)", write_synthetic, path, args.rows)
        file_bytes = path.stat().st_size
        started_train = time.perf_counter()
        tweets = timed("read", read_tweets, path)
        texts = timed("normalize", lambda raw: [normalize(text) for text in raw], tweets.texts)
        loaded = LoadedFile(path.name, path, tweets.texts, texts, tweets.labels, dict(tweets.dropped))
        del tweets
        dataset = timed("dedupe_split", assemble_dataset, [loaded], {})
        del loaded, texts
        model = timed(
            "fit", all_candidates()[args.candidate].build().fit, dataset.train.texts, dataset.train.labels
        )

        def evaluate() -> dict:
            return {
                name: headline(binary_metrics(split.labels, negative_probability(model, split.texts)))
                for name, split in (("validation", dataset.validation), ("test", dataset.test))
            }

        metrics = timed("evaluate", evaluate)
        onnx_path = Path(folder) / "model.onnx"
        exported = timed(
            "export",
            export_model,
            model,
            onnx_path,
            dataset.validation.texts[:PARITY_TEXTS],
            {"training_data_fingerprint": dataset.fingerprint, "test_metrics": metrics},
        )
        train_seconds = time.perf_counter() - started_train

    peak = peak_rss_bytes()
    print(
        json.dumps(
            {
                "rows": args.rows,
                "file_bytes": file_bytes,
                "candidate": args.candidate,
                "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                "seconds_per_stage": stages,
                "train_seconds_read_to_export": round(train_seconds, 1),
                "rss_after_stage_mb": {k: round(v / 2**20) for k, v in rss.items()},
                "peak_rss_mb": round(peak / 2**20),
                "splits": dataset.report["splits"],
                "n_features": exported["n_features"],
                "onnx_bytes": exported["bytes"],
                "parity_max_abs_difference": exported["parity"]["max_abs_difference"],
                "metrics": metrics,
                "targets": {
                    "train_within_15_min": train_seconds <= 15 * 60,
                    "peak_rss_under_8_gb": peak < 8 * 2**30,
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
